//! Merges every part of a project into one (what a fully compacted store looks like), to
//! measure scans and analyses against the number of parts.
//!
//! usage: compact_all DATA_DIR [PROJECT=bench]

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use lodestar_bench::{open_store, quiet_config};
use lodestar_store::{EventStore, StoreConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 2, "usage: compact_all DATA_DIR [PROJECT]");
    let store = open_store(StoreConfig {
        max_part_rows: usize::MAX,
        ..quiet_config(&args[1])
    })?;
    let project = store.project(args.get(2).map_or("bench", String::as_str))?;
    let started = std::time::Instant::now();
    let merged = store.compact_now(project.id, true)?;
    println!(
        "merged {merged} parts into one in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
