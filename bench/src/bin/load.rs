//! Loads synthetic shop data into a store through the normal write path (dedup, identity
//! resolution, group commit), then seals and compacts, and reports the rate.
//!
//! usage: load DATA_DIR USERS [DAYS=365] [SEED=1]

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use std::sync::Arc;
use std::time::Instant;

use lodestar_core::{SystemClock, Timestamp};
use lodestar_store::{AppendBatch, AppendPipeline, EventStore, Store, StoreConfig};
use lodestar_synth::SynthConfig;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 3, "usage: load DATA_DIR USERS [DAYS] [SEED]");
    let dir = std::path::PathBuf::from(&args[1]);
    let users: u64 = args[2].parse()?;
    let days: u32 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(365);
    let seed: u64 = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let config = StoreConfig {
        data_dir: dir,
        ..StoreConfig::default()
    };
    let store = Store::open(config, Arc::new(SystemClock))?;
    let project = match store.project("bench") {
        Ok(p) => p,
        Err(_) => store.create_project("bench")?.0,
    };
    let synth = SynthConfig {
        seed,
        users,
        days,
        start: Timestamp(1_735_660_800_000),
        ..SynthConfig::default()
    };
    let started = Instant::now();
    let mut pipeline = AppendPipeline::new(&*store, project.id, 4);
    let mut batch = Vec::with_capacity(10_000);
    let mut events = 0u64;
    for m in lodestar_synth::generate(&synth) {
        batch.push(m);
        events += 1;
        if batch.len() == 10_000 {
            pipeline.push(AppendBatch {
                messages: std::mem::take(&mut batch),
                ..Default::default()
            })?;
            if events.is_multiple_of(5_000_000) {
                eprintln!(
                    "{events} events, {:.0}/s",
                    events as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
    }
    pipeline.push(AppendBatch {
        messages: batch,
        ..Default::default()
    })?;
    let stored = pipeline.finish()?.stored;
    let appended = started.elapsed().as_secs_f64();
    store.seal_now(project.id)?;
    while store.compact_now(project.id, false)? > 0 {}
    let total = started.elapsed().as_secs_f64();
    let disk = store.disk_usage(project.id)?;
    println!(
        "load: {events} events ({stored} stored) for {users} users; append {appended:.1} s ({:.0} events/s); with sealing and compaction {total:.1} s; {} parts; {:.1} bytes/event on disk",
        events as f64 / appended,
        store.manifest(project.id)?.parts.len(),
        disk as f64 / events.max(1) as f64
    );
    Ok(())
}
