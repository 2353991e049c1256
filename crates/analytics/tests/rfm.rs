//! RFM against a naive implementation of its definition: per buyer sums by plain loops,
//! scores by counting the buyers below (`1 + ⌊5k / n⌋`), layers by scanning the rules.

use std::collections::BTreeMap;

use lodestar_analytics::VecSource;
use lodestar_analytics::rfm::{LayerRule, RfmQuery, RfmResult, RfmSpec, Scheme, rfm};
use proptest::prelude::*;

const NAMES: [&str; 3] = ["Order Completed", "Refund", "Page Viewed"];
const DAY: i64 = 86_400_000;
const BASE: i64 = 1_772_323_200_000;

type Row = (u64, i64, &'static str, f64);

fn rows() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (
            1u64..40,
            0i64..(30 * 4),
            0usize..3,
            prop_oneof![Just(f64::NAN), (0u32..5).prop_map(|v| v as f64 * 10.0)],
        )
            .prop_map(|(p, q, n, v)| (p, BASE + q * DAY / 4, NAMES[n], v)),
        0..200,
    )
}

struct Naive {
    last: i64,
    freq: u64,
    money: f64,
}

fn naive_buyers(rows: &[Row], events: &[String], from: i64, to: i64) -> BTreeMap<u64, Naive> {
    let mut out: BTreeMap<u64, Naive> = BTreeMap::new();
    for &(p, t, n, v) in rows {
        let counts = if events.is_empty() {
            !v.is_nan()
        } else {
            events.iter().any(|e| e == n)
        };
        if t < from || t >= to || !counts {
            continue;
        }
        let b = out.entry(p).or_insert(Naive {
            last: i64::MIN,
            freq: 0,
            money: 0.0,
        });
        b.last = b.last.max(t);
        b.freq += 1;
        if !v.is_nan() {
            b.money += v;
        }
    }
    out
}

fn naive_score<T: PartialOrd>(x: &T, all: &[T]) -> u8 {
    let below = all.iter().filter(|y| *y < x).count();
    1 + (5 * below / all.len()) as u8
}

/// (person → (r, f, m, layer key)), per the definition.
fn naive(rows: &[Row], q: &RfmQuery) -> BTreeMap<u64, (u8, u8, u8, String)> {
    let buyers = naive_buyers(rows, &q.purchase_events, q.from_ms, q.to_ms);
    let lasts: Vec<i64> = buyers.values().map(|b| b.last).collect();
    let freqs: Vec<u64> = buyers.values().map(|b| b.freq).collect();
    let moneys: Vec<f64> = buyers.values().map(|b| b.money).collect();
    let n = buyers.len() as f64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n;
    let mean_last = mean(&lasts.iter().map(|&x| x as f64).collect::<Vec<_>>());
    let mean_f = mean(&freqs.iter().map(|&x| x as f64).collect::<Vec<_>>());
    let mean_m = mean(&moneys);
    buyers
        .iter()
        .map(|(&p, b)| {
            let r = naive_score(&b.last, &lasts);
            let f = naive_score(&b.freq, &freqs);
            let m = naive_score(&b.money, &moneys);
            let layer = match &q.scheme {
                Scheme::Segments(rules) => rules
                    .iter()
                    .find(|l| l.r[0] <= r && r <= l.r[1] && l.f[0] <= f && f <= l.f[1])
                    .map_or("other".to_string(), |l| l.key.clone()),
                Scheme::Eight => {
                    let high = (
                        b.last as f64 > mean_last,
                        b.freq as f64 > mean_f,
                        b.money > mean_m,
                    );
                    let tier = if high.2 { "important" } else { "general" };
                    let kind = match (high.0, high.1) {
                        (true, true) => "value",
                        (true, false) => "development",
                        (false, true) => "retention",
                        (false, false) => "win_back",
                    };
                    format!("{tier}_{kind}")
                }
            };
            (p, (r, f, m, layer))
        })
        .collect()
}

fn check(rows: &[Row], q: &RfmQuery, got: &RfmResult) -> Result<(), TestCaseError> {
    let want = naive(rows, q);
    prop_assert_eq!(got.persons as usize, want.len());
    let listed: BTreeMap<u64, (u8, u8, u8, String)> = got
        .list
        .iter()
        .map(|s| (s.person, (s.r, s.f, s.m, s.layer.clone())))
        .collect();
    prop_assert_eq!(&listed, &want);
    let mut per_layer: BTreeMap<String, u64> = BTreeMap::new();
    let mut grid = [[0u64; 5]; 5];
    for (r, f, _, layer) in want.values() {
        *per_layer.entry(layer.clone()).or_default() += 1;
        grid[*r as usize - 1][*f as usize - 1] += 1;
    }
    let got_layers: BTreeMap<String, u64> = got
        .layers
        .iter()
        .filter(|l| l.persons > 0)
        .map(|l| (l.key.clone(), l.persons))
        .collect();
    prop_assert_eq!(got_layers, per_layer);
    prop_assert_eq!(got.grid_persons, grid);
    let buyers = naive_buyers(rows, &q.purchase_events, q.from_ms, q.to_ms);
    for s in &got.list {
        let b = &buyers[&s.person];
        prop_assert_eq!(s.frequency, b.freq);
        prop_assert!((s.monetary - b.money).abs() < 1e-9);
        prop_assert_eq!(s.recency_days, (q.to_ms - b.last).div_euclid(DAY));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn rfm_matches_naive(
        rows in rows(),
        from_day in 0i64..10,
        len_days in 1i64..30,
        eight in any::<bool>(),
        any_valued in any::<bool>(),
        threads in 1usize..4,
    ) {
        let source = VecSource::with_values(rows.iter().copied());
        let q = RfmQuery {
            purchase_events: if any_valued { vec![] } else { vec!["Order Completed".into(), "Refund".into()] },
            from_ms: BASE + from_day * DAY,
            to_ms: BASE + (from_day + len_days) * DAY,
            scheme: if eight { Scheme::Eight } else { Scheme::Segments(LayerRule::defaults()) },
            list: 1_000,
            threads,
        };
        let got = rfm(&source, &q).unwrap();
        check(&rows, &q, &got)?;
    }
}

#[test]
fn hand_example() {
    // Five buyers, one per score; the newest, most frequent, biggest is a champion.
    let mut rows: Vec<Row> = Vec::new();
    for p in 1..=5u64 {
        for k in 0..p {
            rows.push((
                p,
                BASE + (p as i64) * DAY + k as i64,
                "Order Completed",
                100.0,
            ));
        }
    }
    rows.push((9, BASE, "Page Viewed", 5.0));
    let source = VecSource::with_values(rows.iter().copied());
    let spec: RfmSpec = serde_json::from_value(serde_json::json!({
        "date_from": "2026-03-01", "date_to": "2026-03-10", "list": 10
    }))
    .unwrap();
    let got = rfm(&source, &spec.query(2).unwrap()).unwrap();
    assert_eq!(got.persons, 5);
    assert_eq!(got.monetary, 1500.0);
    let top = &got.list[0];
    assert_eq!((top.person, top.r, top.f, top.m), (5, 5, 5, 5));
    assert_eq!(top.layer, "champions");
    assert_eq!(top.recency_days, 4);
    let bottom = got.list.iter().find(|s| s.person == 1).unwrap();
    assert_eq!((bottom.r, bottom.f, bottom.layer.as_str()), (1, 1, "lost"));
    let champions = got.layers.iter().find(|l| l.key == "champions").unwrap();
    assert_eq!(
        (champions.persons, champions.name_zh.as_str()),
        (1, "冠军客户")
    );
}

#[test]
fn bad_parameters_name_the_field() {
    let field = |json: serde_json::Value| {
        let spec: RfmSpec = serde_json::from_value(json).unwrap();
        spec.query(1).unwrap_err().field().to_string()
    };
    let base = |extra: serde_json::Value| {
        let mut v = serde_json::json!({"date_from": "2026-03-01", "date_to": "2026-03-10"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    assert_eq!(field(base(serde_json::json!({"scheme": "nine"}))), "scheme");
    assert_eq!(
        field(base(serde_json::json!({"layers": [
            {"key": "x", "name": "X", "name_zh": "X", "r": [1, 5], "f": [0, 5]}
        ]}))),
        "layers[0].f"
    );
    assert_eq!(
        field(base(serde_json::json!({"purchase_events": ["a", ""]}))),
        "purchase_events[1]"
    );
    assert_eq!(
        field(base(serde_json::json!({"date_to": "2026-02-01"}))),
        "date_to"
    );
}
