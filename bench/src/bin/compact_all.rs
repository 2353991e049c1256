//! Merges every part of a project into one (what a fully compacted store looks like), to
//! measure scans and analyses against the number of parts.
//!
//! usage: compact_all DATA_DIR [PROJECT=bench]

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use std::sync::Arc;

use lodestar_core::SystemClock;
use lodestar_store::{EventStore, Store, StoreConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 2, "usage: compact_all DATA_DIR [PROJECT]");
    let store = Store::open(
        StoreConfig {
            data_dir: args[1].clone().into(),
            maintenance_interval_ms: 0,
            max_part_rows: usize::MAX,
            ..StoreConfig::default()
        },
        Arc::new(SystemClock),
    )?;
    let project = store.project(args.get(2).map_or("bench", String::as_str))?;
    let started = std::time::Instant::now();
    let merged = store.compact_now(project.id, true)?;
    println!(
        "merged {merged} parts into one in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
