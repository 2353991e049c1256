//! The segment benchmark: a five-condition segment (two traits, a behavioural count over 30
//! days, the lifecycle stage, predicted CLV) over every profile of a store, and the cost per
//! incoming event of keeping dynamic segments current.
//!
//! usage:
//!   segment DATA_DIR profiles N     add N profiles without events (CRM imports: identify
//!                                   calls with traits), user ids crm-0 … crm-(N-1)
//!   segment DATA_DIR run [RUNS=5] [EVENTS=20000]
//!                                   fit CLV if no fit exists; load the profile table;
//!                                   evaluate the segment RUNS times; then append EVENTS
//!                                   events for random users and time the incremental round

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use std::sync::Arc;
use std::time::Instant;

use lodestar_analytics::jobs;
use lodestar_analytics::profiles::ProfileCache;
use lodestar_analytics::segment::{Node, SegmentQuery, segment_members};
use lodestar_core::{Message, MessageKind, SystemClock, Timestamp};
use lodestar_store::{AppendBatch, AppendPipeline, EventStore, Store, StoreConfig};
use serde_json::{Value, json};

/// "Now" for the benchmark: the day after the synthetic year (the shop's data start on
/// 2025-01-01 and run 365 days).
const NOW: i64 = 1_735_660_800_000 + 366 * 86_400_000;

const CITIES: [&str; 6] = ["上海", "北京", "杭州", "深圳", "成都", "广州"];

fn condition() -> Value {
    json!({"type": "and", "all": [
        {"type": "trait", "property": "city", "op": "in",
         "value": ["Shanghai", "Beijing", "Hangzhou", "上海", "北京", "杭州"]},
        {"type": "trait", "property": "plus_member", "op": "eq", "value": true},
        {"type": "did", "event": "Product Viewed", "min": 3, "days": 30},
        {"type": "stage", "in": ["growth", "maturity"]},
        {"type": "score", "score": "clv", "op": "gt", "value": 50}
    ]})
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() >= 3,
        "usage: segment DATA_DIR profiles N | segment DATA_DIR run [RUNS] [EVENTS]"
    );
    let config = StoreConfig {
        data_dir: std::path::PathBuf::from(&args[1]),
        ..StoreConfig::default()
    };
    let store = Store::open(config, Arc::new(SystemClock))?;
    let project = store.project("bench")?;
    let num = |i: usize, default: u64| -> anyhow::Result<u64> {
        Ok(args
            .get(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    match args[2].as_str() {
        "profiles" => add_profiles(&store, &project, num(3, 0)?)?,
        "run" => run(&store, &project, num(3, 5)? as usize, num(4, 20_000)?)?,
        other => anyhow::bail!("unknown command {other:?}"),
    }
    store.shutdown();
    Ok(())
}

fn message(kind: MessageKind, user: String, id: String, at: i64) -> Message {
    let mut m = Message::new(kind, id, Timestamp(at));
    m.user_id = Some(user);
    m.channel = Some("server".into());
    m
}

fn add_profiles(
    store: &Store,
    project: &lodestar_store::ProjectInfo,
    n: u64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut pipeline = AppendPipeline::new(store, project.id, 4);
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let mut m = message(
            MessageKind::Identify,
            format!("crm-{i}"),
            format!("crm-identify-{i}"),
            NOW - 400 * 86_400_000,
        );
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        m.traits = [
            ("city", json!(CITIES[(h % 6) as usize])),
            ("plus_member", json!(h % 7 == 0)),
            ("email", json!(format!("crm{i}@example.com"))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        batch.push(m);
        if batch.len() == 10_000 {
            pipeline.push(AppendBatch {
                messages: std::mem::take(&mut batch),
                ..Default::default()
            })?;
        }
    }
    pipeline.push(AppendBatch {
        messages: batch,
        ..Default::default()
    })?;
    let stored = pipeline.finish()?.stored;
    store.seal_now(project.id)?;
    println!(
        "profiles: {n} added ({stored} stored) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run(
    store: &Store,
    project: &lodestar_store::ProjectInfo,
    runs: usize,
    events: u64,
) -> anyhow::Result<()> {
    let threads = 2;
    let now = Timestamp(NOW);
    if store.model_fits(project.id)?.is_empty() {
        let started = Instant::now();
        let params = json!({"date_from": "2025-01-01", "date_to": "2025-12-31"});
        let (version, _) = jobs::fit_models(
            store,
            project,
            params.to_string().as_bytes(),
            now,
            threads,
            &|step| eprintln!("{step}"),
        )?;
        println!(
            "clv fit: version {version} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    // Two computed attributes, kept current with the segments.
    let mut settings = store.project_settings(project.id)?;
    settings.defaults.insert(
        "computed".into(),
        json!([
            {"name": "spend_30d", "event": "Order Completed", "agg": "sum", "days": 30},
            {"name": "views_30d", "event": "Product Viewed", "agg": "count", "days": 30}
        ]),
    );
    store.set_project_settings(project.id, &settings)?;
    let snapshot = store.snapshot(project.id)?;
    println!("store: {} events", snapshot.events());
    // LODESTAR_BENCH_CONDITION replaces the segment, for looking at one condition alone.
    let root: Node = match std::env::var("LODESTAR_BENCH_CONDITION") {
        Ok(text) => serde_json::from_str(&text)?,
        Err(_) => serde_json::from_value(condition())?,
    };
    let cache = ProfileCache::default();
    let started = Instant::now();
    let keys = root.trait_keys();
    let persons = cache.with_table(store, project, &snapshot, &keys, &[], (NOW, threads), |t| {
        t.len()
    })?;
    println!(
        "profile table: {persons} profiles, columns {keys:?} and 2 computed attributes, loaded in {:.1} s (once per server start)",
        started.elapsed().as_secs_f64()
    );
    let rules = jobs::stage_rules(&store.project_settings(project.id)?)?;
    let source = lodestar_analytics::SnapshotSource::new(&snapshot);
    let q = SegmentQuery {
        root: root.clone(),
        now: NOW,
        rules,
        sample: 0,
        threads,
        rfm: Default::default(),
    };
    let mut times = Vec::new();
    let mut size = 0;
    let mut tested = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let m =
            cache.with_table(store, project, &snapshot, &keys, &[], (NOW, threads), |t| {
                segment_members(&source, t, &q)
            })??;
        times.push(started.elapsed().as_secs_f64());
        size = m.members.len();
        tested = m.persons;
    }
    times.sort_by(f64::total_cmp);
    println!(
        "segment: {size} members of {tested} persons; {runs} runs, best {:.3} s, median {:.3} s ({threads} threads)",
        times[0],
        times[times.len() / 2]
    );
    drop(source);
    drop(snapshot);

    // Incremental: save it as a dynamic segment, append events, time the touched round.
    let name = "bench five conditions";
    let id = match store.segments(project.id)?.iter().find(|s| s.name == name) {
        Some(s) => s.id,
        None => {
            let params = json!({"name": name, "condition": condition()});
            jobs::create_segment(
                store,
                project,
                &cache,
                params.to_string().as_bytes(),
                now,
                threads,
            )?
            .id
        }
    };
    let since = jobs::refresh_segments_touched(store, project, &cache, 0, now, threads)?.seq;
    let mut batch = Vec::with_capacity(events as usize);
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    for i in 0..events {
        let user = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % 2_000_000;
        let mut m = message(
            MessageKind::Track,
            format!("u{user}"),
            format!("bench-{salt}-{i}"),
            NOW - 3_600_000 + i as i64,
        );
        m.event = Some("Product Viewed".into());
        batch.push(m);
    }
    let ticket = store.append(
        project.id,
        AppendBatch {
            messages: batch,
            ..Default::default()
        },
    )?;
    let stored = ticket.wait_blocking()?.stored;
    let started = Instant::now();
    let round = jobs::refresh_segments_touched(store, project, &cache, since, now, threads)?;
    let took = started.elapsed().as_secs_f64();
    println!(
        "incremental: {stored} new events for {} persons; one round {took:.3} s = {:.1} µs per event; segment {id}: {:?}",
        round.persons,
        took * 1e6 / stored.max(1) as f64,
        round.segments
    );
    Ok(())
}
