//! Kernels read a real store (parts, tail, merged persons) the same as the same events held
//! in memory under their canonical persons.

use std::sync::Arc;

use lodestar_analytics::funnel::{FunnelOrder, FunnelQuery};
use lodestar_analytics::{PersonSource, SnapshotSource, VecSource, funnel};
use lodestar_core::{FixedClock, JsonMap, Message, MessageKind, Timestamp};
use lodestar_store::{AppendBatch, EventStore, Store, StoreConfig};
use proptest::prelude::*;

const NAMES: [&str; 3] = ["view", "cart", "buy"];

/// A person's events as compared: (person, times, name ids, value bits).
type PersonEvents = (u64, Vec<i64>, Vec<u32>, Vec<u64>);

/// A person's events as a sorted set of (time, name id, value bits).
type EventSet = (u64, Vec<(i64, u32, u64)>);

fn msg(id: usize, user: Option<String>, anon: Option<String>, event: &str, ts: i64) -> Message {
    Message {
        message_id: format!("m{id}"),
        kind: MessageKind::Track,
        event: Some(event.to_string()),
        user_id: user,
        anonymous_id: anon,
        previous_id: None,
        group_id: None,
        category: None,
        timestamp: Timestamp(ts),
        original_timestamp: None,
        sent_at: None,
        received_at: Timestamp(ts),
        properties: JsonMap::new(),
        traits: JsonMap::new(),
        set_once: JsonMap::new(),
        context: JsonMap::new(),
        integrations: JsonMap::new(),
        channel: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Steps: (anonymous id, user id or none, event, minute, seal after it).
    #[test]
    fn snapshot_source_reads_canonical_persons(
        steps in proptest::collection::vec((0u8..6, proptest::option::of(0u8..3), 0usize..3, 0i64..600, proptest::bool::weighted(0.1)), 1..80),
        threads in 1usize..3,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            StoreConfig { data_dir: dir.path().to_path_buf(), maintenance_interval_ms: 0, seal_rows: 7, max_seal_rows: 7, compact_fanin: 2, ..StoreConfig::default() },
            Arc::new(FixedClock::new(Timestamp(1_700_000_000_000))),
        ).unwrap();
        let (p, _) = store.create_project("shop").unwrap();
        for (i, &(anon, user, event, minute, seal) ) in steps.iter().enumerate() {
            let mut m = msg(i, user.map(|u| format!("u{u}")), Some(format!("a{anon}")), NAMES[event], 1_700_000_000_000 + minute * 60_000);
            // Values: a number, a numeric string under a later key, or none.
            match i % 3 {
                0 => { m.properties.insert("revenue".into(), serde_json::json!(i)); }
                1 => { m.properties.insert("total".into(), serde_json::json!(format!("{i}.5"))); }
                _ => { m.properties.insert("plan".into(), serde_json::json!("pro")); }
            }
            store.append(p.id, AppendBatch { messages: vec![m], ..Default::default() }).unwrap().wait_blocking().unwrap();
            if seal {
                store.seal_now(p.id).unwrap();
                store.compact_now(p.id, false).unwrap();
            }
        }
        let snapshot = store.snapshot(p.id).unwrap();
        let source = SnapshotSource::new(&snapshot);
        // The same events, by canonical person, from the decoded messages.
        let mut rows: Vec<(u64, i64, u64, String, u64)> = Vec::new();
        snapshot.for_each_message(|person, seq, m| {
            let value = match (m.properties.get("revenue"), m.properties.get("total")) {
                (Some(v), _) => v.as_f64().unwrap(),
                (None, Some(v)) => v.as_str().unwrap().parse().unwrap(),
                _ => f64::NAN,
            };
            rows.push((person.0, m.timestamp.millis(), seq, m.event.clone().unwrap(), value.to_bits()));
            Ok(())
        }).unwrap();
        // Equal times in write order.
        rows.sort_by_key(|r| (r.0, r.1, r.2));
        let naive = VecSource::new(rows.iter().map(|(p, t, _, n, _)| (*p, *t, n.as_str())));
        let mut seen = Vec::new();
        for shard in 0..threads {
            source.for_each_person_with_values(shard, threads, &mut |person, ev| {
                let values: Vec<u64> = ev.values.iter().map(|v| v.to_bits()).collect();
                seen.push((person.0, ev.ts.to_vec(), ev.names.to_vec(), values));
            });
        }
        seen.sort();
        let name_id = |n: &str| snapshot.name_id(n).unwrap();
        let mut want: Vec<PersonEvents> = Vec::new();
        for (person, t, _, n, v) in &rows {
            match want.last_mut() {
                Some((p, ts, names, values)) if p == person => {
                    ts.push(*t);
                    names.push(name_id(n));
                    values.push(*v);
                }
                _ => want.push((*person, vec![*t], vec![name_id(n)], vec![*v])),
            }
        }
        prop_assert_eq!(&seen, &want);
        // Kept to some persons (every other one, and ids no one has): exactly their events.
        let mut some: Vec<u64> = want.iter().step_by(2).map(|w| w.0).collect();
        some.extend([0, 9_999]);
        let kept = SnapshotSource::filtered(&snapshot, &Default::default(), Some(some.clone()), 1).unwrap();
        let mut got = Vec::new();
        for shard in 0..threads {
            kept.for_each_person_with_values(shard, threads, &mut |person, ev| {
                let values: Vec<u64> = ev.values.iter().map(|v| v.to_bits()).collect();
                got.push((person.0, ev.ts.to_vec(), ev.names.to_vec(), values));
            });
        }
        got.sort();
        let want_some: Vec<PersonEvents> = want.iter().filter(|w| some.contains(&w.0)).cloned().collect();
        prop_assert_eq!(&got, &want_some);
        // Unordered: the same events per person, a person's calls consecutive.
        let mut unordered: Vec<PersonEvents> = Vec::new();
        for shard in 0..threads {
            source.for_each_person_unordered(shard, threads, &mut |person, ev| {
                match unordered.last_mut() {
                    Some(last) if last.0 == person.0 => {
                        last.1.extend_from_slice(ev.ts);
                        last.2.extend_from_slice(ev.names);
                        last.3.extend(ev.values.iter().map(|v| v.to_bits()));
                    }
                    _ => unordered.push((person.0, ev.ts.to_vec(), ev.names.to_vec(), ev.values.iter().map(|v| v.to_bits()).collect())),
                }
            });
        }
        let as_sets = |v: &[PersonEvents]| -> Vec<EventSet> {
            let mut out: Vec<EventSet> = v.iter().map(|(p, ts, names, values)| {
                let mut e: Vec<(i64, u32, u64)> = (0..ts.len()).map(|i| (ts[i], names[i], values[i])).collect();
                e.sort_unstable();
                (*p, e)
            }).collect();
            out.sort();
            out
        };
        prop_assert_eq!(unordered.len(), want.len(), "one run of calls per person");
        prop_assert_eq!(as_sets(&unordered), as_sets(&want));
        let rfm_q = lodestar_analytics::rfm::RfmQuery {
            purchase_events: vec![],
            from_ms: 1_700_000_000_000,
            to_ms: 1_700_000_000_000 + 600 * 60_000,
            scheme: lodestar_analytics::rfm::Scheme::Eight,
            list: 1000,
            threads,
        };
        let valued = VecSource::with_values(rows.iter().map(|(p, t, _, n, v)| (*p, *t, n.as_str(), f64::from_bits(*v))));
        let a = lodestar_analytics::rfm::rfm(&source, &rfm_q).unwrap();
        let b = lodestar_analytics::rfm::rfm(&valued, &rfm_q).unwrap();
        prop_assert_eq!((a.persons, a.grid_persons, a.list), (b.persons, b.grid_persons, b.list));
        for order in [FunnelOrder::Ordered, FunnelOrder::Strict, FunnelOrder::Any] {
            let mut q = FunnelQuery::new(&NAMES, 120 * 60_000, 1_700_000_000_000, 1_700_000_000_000 + 600 * 60_000);
            q.order = order;
            q.threads = threads;
            let a = funnel(&source, &q).unwrap();
            let b = funnel(&naive, &q).unwrap();
            prop_assert_eq!(a.steps, b.steps);
        }
    }
}
