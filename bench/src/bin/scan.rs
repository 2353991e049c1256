//! Scans (person, time, event) over every stored event of a project, the way lifecycle,
//! funnel and retention kernels read the store: per person, in time order. Reports events/s
//! with 1 and 2 threads, bytes on disk per event, and checks the columnar scan against a naive
//! scan that decodes every message body (on the first part, for time).
//!
//! usage: scan DATA_DIR [PROJECT=bench] [RUNS=5]

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use lodestar_bench::{median, open_store, quiet_config, rss_kib, time_runs};
use lodestar_store::{EventStore, Run, Snapshot};

/// What the scan computes: events per event name, persons, and sessions (runs of one
/// person's events with gaps under 30 minutes) — enough to touch every column it reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Tally {
    per_name: Vec<u64>,
    persons: u64,
    sessions: u64,
    events: u64,
}

const SESSION_GAP_MS: i64 = 30 * 60 * 1000;

fn tally_run(snapshot: &Snapshot, run: &Run<'_>, names: usize) -> Tally {
    let mut t = Tally {
        per_name: vec![0; names],
        ..Tally::default()
    };
    run.person_ranges(|person, start, end| {
        let _canonical = snapshot.canonical(person);
        t.persons += 1;
        let ts = &run.ts[start..end];
        let mut last = i64::MIN / 2;
        for (i, &time) in ts.iter().enumerate() {
            if time - last > SESSION_GAP_MS {
                t.sessions += 1;
            }
            last = time;
            t.per_name[run.names[start + i] as usize] += 1;
        }
        t.events += (end - start) as u64;
    });
    t
}

fn merge(mut a: Tally, b: Tally) -> Tally {
    for (x, y) in a.per_name.iter_mut().zip(b.per_name) {
        *x += y;
    }
    a.persons += b.persons;
    a.sessions += b.sessions;
    a.events += b.events;
    a
}

fn scan(snapshot: &Snapshot, threads: usize) -> Tally {
    let runs = snapshot.runs();
    let names = snapshot.names().len();
    // Split the work into row-balanced shares, one per thread.
    let mut shares: Vec<Vec<&Run<'_>>> = vec![Vec::new(); threads];
    let mut loads = vec![0usize; threads];
    let mut sorted: Vec<&Run<'_>> = runs.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.rows()));
    for r in sorted {
        let i = (0..threads).min_by_key(|&i| loads[i]).expect("threads > 0");
        loads[i] += r.rows();
        shares[i].push(r);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| {
                s.spawn(move || {
                    share.into_iter().fold(
                        Tally {
                            per_name: vec![0; names],
                            ..Tally::default()
                        },
                        |acc, r| merge(acc, tally_run(snapshot, r, names)),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("scan thread"))
            .fold(
                Tally {
                    per_name: vec![0; names],
                    ..Tally::default()
                },
                merge,
            )
    })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 2, "usage: scan DATA_DIR [PROJECT] [RUNS]");
    let project_name = args.get(2).cloned().unwrap_or_else(|| "bench".into());
    let runs: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let rss_before = rss_kib();
    let store = open_store(quiet_config(&args[1]))?;
    let project = store.project(&project_name)?;
    let snapshot = store.snapshot(project.id)?;
    let events = snapshot.events();
    println!(
        "store: {events} events in {} parts + {} tail rows; {} merged persons; rss after open {} MiB",
        snapshot.parts().len(),
        snapshot.tail().len(),
        snapshot.merged_persons().len(),
        rss_kib().saturating_sub(rss_before) / 1024
    );
    // Correctness: the columnar scan of the first part equals a naive scan decoding every body.
    if let Some(part) = snapshot.parts().first() {
        let run = &snapshot.runs()[0];
        let fast = tally_run(&snapshot, run, snapshot.names().len());
        let started = std::time::Instant::now();
        let mut naive = Tally {
            per_name: vec![0; snapshot.names().len()],
            ..Tally::default()
        };
        let mut last: Option<(u64, i64)> = None;
        let persons = part.persons();
        let offsets = part.person_offsets();
        let mut p = 0usize;
        let mut row = 0usize;
        for b in 0..part.blocks() {
            for body in part.block_bodies(b)? {
                while offsets[p + 1] as usize <= row {
                    p += 1;
                }
                let m: lodestar_core::Message = serde_json::from_slice(&body)?;
                let person = persons[p];
                let id = snapshot
                    .name_id(m.analytic_name())
                    .expect("name in dictionary");
                naive.per_name[id as usize] += 1;
                naive.events += 1;
                match last {
                    Some((lp, lt)) if lp == person => {
                        if m.timestamp.millis() - lt > SESSION_GAP_MS {
                            naive.sessions += 1;
                        }
                    }
                    _ => {
                        naive.persons += 1;
                        naive.sessions += 1;
                    }
                }
                last = Some((person, m.timestamp.millis()));
                row += 1;
            }
        }
        let naive_secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            fast == naive,
            "columnar scan disagrees with the naive scan: {fast:?} vs {naive:?}"
        );
        println!(
            "naive scan (decode every body) of part 1: {} events in {naive_secs:.2} s = {:.1} M events/s; columnar result identical",
            naive.events,
            naive.events as f64 / naive_secs / 1e6
        );
    }
    for threads in [1, 2] {
        let (times, tally) = time_runs(runs, || scan(&snapshot, threads));
        anyhow::ensure!(
            tally.events == events,
            "scan saw {} of {events} events",
            tally.events
        );
        let best = times.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "columnar scan, {threads} thread(s): median {:.3} s, best {best:.3} s = {:.0} M events/s (median), {} person blocks, {} sessions",
            median(&times),
            events as f64 / median(&times) / 1e6,
            tally.persons,
            tally.sessions
        );
    }
    let disk = store.disk_usage(project.id)?;
    println!(
        "disk: {disk} bytes = {:.1} bytes/event; rss now {} MiB",
        disk as f64 / events.max(1) as f64,
        rss_kib() / 1024
    );
    Ok(())
}
