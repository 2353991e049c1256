//! Times the analysis kernels on a store through the same reader the server uses: a 3-step
//! funnel with a 7-day window, 12-week retention, the weekly lifecycle, the five-stage
//! lifecycle and RFM, with 1 and 2 threads. The figures go to `docs/benchmarks.md`; the side-by-side with DuckDB and chDB
//! is `bench/analytics.sh`.
//!
//! usage: analyses DATA_DIR [PROJECT=bench] [RUNS=5] [FROM=2025-01-01] [TO=2025-12-31]

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use lodestar_analytics::rfm::{RfmSpec, rfm};
use lodestar_analytics::spec::{FunnelSpec, LifecycleSpec, RetentionSpec, StagesSpec};
use lodestar_analytics::{SnapshotSource, funnel, lifecycle, retention, stages};
use lodestar_bench::{median, open_store, quiet_config, time_runs};
use lodestar_store::EventStore;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() >= 2,
        "usage: analyses DATA_DIR [PROJECT] [RUNS] [FROM] [TO]"
    );
    let project_name = args.get(2).cloned().unwrap_or_else(|| "bench".into());
    let runs: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let from = args.get(4).cloned().unwrap_or_else(|| "2025-01-01".into());
    let to = args.get(5).cloned().unwrap_or_else(|| "2025-12-31".into());
    let store = open_store(quiet_config(&args[1]))?;
    let project = store.project(&project_name)?;
    let snapshot = store.snapshot(project.id)?;
    let events = snapshot.events();
    println!(
        "store: {events} events, {} parts, {} tail rows, {} merged persons",
        snapshot.parts().len(),
        snapshot.tail().len(),
        snapshot.merged_persons().len()
    );
    drop(snapshot);
    // Parts written before the value column existed are rewritten with it, as the server's
    // maintenance does one a round: a one-time migration, not part of any query.
    let started = std::time::Instant::now();
    let upgraded = store.upgrade_parts_now(project.id)?;
    if upgraded > 0 {
        println!(
            "upgraded {upgraded} parts to the value column in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let snapshot = store.snapshot(project.id)?;
    let (reader_secs, _) = time_runs(runs, || SnapshotSource::new(&snapshot));
    println!("reader setup: median {:.3} s", median(&reader_secs));
    let source = SnapshotSource::new(&snapshot);
    let funnel_spec = FunnelSpec {
        steps: vec![
            "Product Viewed".into(),
            "Checkout Started".into(),
            "Order Completed".into(),
        ],
        order: None,
        window: Some("7d".into()),
        dropped_at: None,
        max_persons: None,
        exclusions: Vec::new(),
        date_from: from.clone(),
        date_to: to.clone(),
        timezone: Some("Asia/Shanghai".into()),
    };
    let retention_spec = RetentionSpec {
        start_event: "Signed Up".into(),
        return_event: Some("Order Completed".into()),
        kind: None,
        interval: Some("week".into()),
        periods: Some(12),
        cumulative: None,
        date_from: from.clone(),
        date_to: to.clone(),
        timezone: Some("Asia/Shanghai".into()),
    };
    let lifecycle_spec = LifecycleSpec {
        event: None,
        interval: Some("week".into()),
        date_from: from.clone(),
        date_to: to.clone(),
        timezone: Some("Asia/Shanghai".into()),
    };
    let rfm_spec = RfmSpec {
        purchase_events: None,
        scheme: None,
        layers: None,
        list: None,
        date_from: from.clone(),
        date_to: to.clone(),
        timezone: Some("Asia/Shanghai".into()),
    };
    let stages_spec = StagesSpec {
        preset: Some("ecommerce".into()),
        rules: None,
        interval: Some("month".into()),
        members: None,
        members_limit: None,
        date_from: from,
        date_to: to,
        timezone: Some("Asia/Shanghai".into()),
    };
    for threads in [1, 2] {
        let q = funnel_spec.query(threads)?;
        let (t, r) = time_runs(runs, || funnel(&source, &q));
        let r = r?;
        println!(
            "funnel 3 steps 7d, {threads} thread(s): median {:.3} s = {:.0} M events/s; persons per step {:?}",
            median(&t),
            events as f64 / median(&t) / 1e6,
            r.steps.iter().map(|s| s.persons).collect::<Vec<_>>()
        );
        let q = retention_spec.query(threads)?;
        let (t, r) = time_runs(runs, || retention(&source, &q));
        let r = r?;
        println!(
            "retention 12 weeks, {threads} thread(s): median {:.3} s; first cohort {:?}",
            median(&t),
            r.cohorts.first().map(|c| &c.values)
        );
        let q = lifecycle_spec.query(threads)?;
        let (t, r) = time_runs(runs, || lifecycle(&source, &q));
        let r = r?;
        println!(
            "lifecycle weekly, {threads} thread(s): median {:.3} s; {} periods",
            median(&t),
            r.periods.len()
        );
        let q = stages_spec.query(threads)?;
        let (t, r) = time_runs(runs, || stages(&source, &q));
        let r = r?;
        println!(
            "stages (five-stage lifecycle, monthly), {threads} thread(s): median {:.3} s; at the end {:?}",
            median(&t),
            r.points.last().map(|p| &p.counts)
        );
        let q = rfm_spec.query(threads)?;
        let (t, r) = time_runs(runs, || rfm(&source, &q));
        let r = r?;
        // As the peers print them: by key, empty layers left out.
        let mut layers: Vec<(&str, u64)> = r
            .layers
            .iter()
            .filter(|l| l.persons > 0)
            .map(|l| (l.key.as_str(), l.persons))
            .collect();
        layers.sort_unstable();
        let layers: Vec<String> = layers.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "rfm, {threads} thread(s): median {:.3} s; {} buyers, monetary {:.2}; grid row R5 {:?}; {}",
            median(&t),
            r.persons,
            r.monetary,
            r.grid_persons[4],
            layers.join(", ")
        );
        // One instant, as the peers are asked: the end of the last date.
        let mut one = stages_spec.clone();
        one.date_from = one.date_to.clone();
        let q = one.query(threads)?;
        let (t, r) = time_runs(runs, || stages(&source, &q));
        let r = r?;
        let counts = &r.points[0].counts;
        let named: Vec<String> = r
            .stages
            .iter()
            .zip(counts)
            .map(|((s, _), c)| format!("{s:?} {c}"))
            .collect();
        println!(
            "stages at the end of {}, {threads} thread(s): median {:.3} s; {}",
            one.date_to,
            median(&t),
            named.join(", ")
        );
    }
    Ok(())
}
