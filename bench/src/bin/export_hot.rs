//! Writes the hot columns of a project's events — canonical person, time (ms), event name,
//! write order, value (empty for none) — as CSV, through the same reader the analyses use, for loading the same
//! data into DuckDB and chDB in `bench/analytics.sh`.
//!
//! usage: export_hot DATA_DIR PROJECT OUT.csv

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use lodestar_analytics::{PersonSource, SnapshotSource};
use lodestar_bench::{open_store, quiet_config};
use lodestar_store::EventStore;
use std::io::Write;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 4,
        "usage: export_hot DATA_DIR PROJECT OUT.csv"
    );
    let store = open_store(quiet_config(&args[1]))?;
    let project = store.project(&args[2])?;
    let snapshot = store.snapshot(project.id)?;
    let source = SnapshotSource::new(&snapshot);
    let names: Vec<String> = source
        .names()
        .iter()
        .map(|n| n.replace('"', "\"\""))
        .collect();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&args[3])?);
    writeln!(out, "person,ts,event,ord,value")?;
    let mut rows = 0u64;
    let mut failed = None;
    source.for_each_person_with_values(0, 1, &mut |person, ev| {
        for i in 0..ev.len() {
            // `ord` is the position in the person's stream: ties in time keep write order.
            let v = ev.values[i];
            let written = if v.is_nan() {
                writeln!(
                    out,
                    "{},{},\"{}\",{},",
                    person.0, ev.ts[i], names[ev.names[i] as usize], i
                )
            } else {
                writeln!(
                    out,
                    "{},{},\"{}\",{},{}",
                    person.0, ev.ts[i], names[ev.names[i] as usize], i, v
                )
            };
            if let Err(e) = written {
                failed.get_or_insert(e);
            }
        }
        rows += ev.len() as u64;
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    out.flush()?;
    println!("{rows} events written to {}", args[3]);
    Ok(())
}
