//! Shared helpers of the benchmark programs in `src/bin/`. Benchmarks print their figures;
//! `docs/benchmarks.md` records them with the command that produced them.

use std::sync::Arc;
use std::time::Instant;

use lodestar_core::SystemClock;
use lodestar_store::{Store, StoreConfig};

/// The settings a benchmark opens an existing data folder with: no background maintenance,
/// so nothing but the measured work runs.
pub fn quiet_config(data_dir: &str) -> StoreConfig {
    StoreConfig {
        data_dir: data_dir.into(),
        maintenance_interval_ms: 0,
        ..StoreConfig::default()
    }
}

/// Opens a store on the wall clock.
pub fn open_store(config: StoreConfig) -> lodestar_store::Result<Arc<Store>> {
    Store::open(config, Arc::new(SystemClock))
}

/// Resident set size of this process, in KiB (Linux).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Runs `f` `runs` times and returns the seconds of each run.
pub fn time_runs<T>(runs: usize, mut f: impl FnMut() -> T) -> (Vec<f64>, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f());
        times.push(t.elapsed().as_secs_f64());
    }
    (times, last.expect("at least one run"))
}

/// The median of a sample.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
