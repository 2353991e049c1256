//! Churn risk: the features and labels against a naive per-person computation (every event's
//! date converted on its own with jiff, plain loops), the AUC against a pair count, the
//! logistic fit against plain gradient descent, and the whole analysis on a synthetic
//! population whose churn follows from recency and a falling trend by construction.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use lodestar_analytics::VecSource;
use lodestar_analytics::churn::{
    ChurnQuery, ChurnResult, ChurnSpec, FeatureTable, auc, churn, features, fit_logistic,
    is_validation,
};
use proptest::prelude::*;

const NAMES: [&str; 5] = ["A", "B", "C", "D", "E"];
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2026-03-01T00:00:00Z: a week before the US clocks change.
const BASE: i64 = 1_772_323_200_000;

type Row = (u64, i64, &'static str);

fn spec(json: serde_json::Value) -> ChurnSpec {
    serde_json::from_value(json).unwrap()
}

/// The date of instant `ms` in zone `tz`, converted on its own.
fn date_in(tz: &str, ms: i64) -> Date {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap()
        .to_zoned(TimeZone::get(tz).unwrap())
        .date()
}

fn add_days(d: Date, n: i64) -> Date {
    d.checked_add(jiff::Span::new().days(n)).unwrap()
}

fn days_between(a: Date, b: Date) -> i64 {
    i64::from(a.until(b).unwrap().get_days())
}

/// Naive features at cut `c` (a day number since `from`) of one person's `(day, name)` events
/// in the range, as the module documentation defines them; none when not considered.
fn naive_at(
    ev: &[(i64, &str)],
    c: i64,
    q: &ChurnQuery,
    is_activity: &dyn Fn(&str) -> bool,
) -> Option<Vec<f64>> {
    let before: Vec<(i64, &str)> = ev.iter().copied().filter(|e| e.0 < c).collect();
    let last = before
        .iter()
        .filter(|e| is_activity(e.1))
        .map(|e| e.0)
        .max()?;
    if c - last > i64::from(q.lookback_days) {
        return None;
    }
    let first = before.iter().map(|e| e.0).min().unwrap();
    let ago = |d: i64, lo: i64, hi: i64| (lo..=hi).contains(&(c - d));
    let a = before
        .iter()
        .filter(|e| is_activity(e.1) && ago(e.0, 1, 30))
        .count() as f64;
    let b = before
        .iter()
        .filter(|e| is_activity(e.1) && ago(e.0, 31, 60))
        .count() as f64;
    let active: BTreeSet<i64> = before
        .iter()
        .filter(|e| is_activity(e.1) && ago(e.0, 1, 30))
        .map(|e| e.0)
        .collect();
    let names: BTreeSet<&str> = before
        .iter()
        .filter(|e| ago(e.0, 1, 90))
        .map(|e| e.1)
        .collect();
    let mut out = vec![
        ((c - last) as f64).ln_1p(),
        a.ln_1p(),
        active.len() as f64,
        (a - b) / (a + b + 1.0),
        names.len() as f64,
        ((c - first) as f64).ln_1p(),
    ];
    if let Some(conv) = &q.conversion_event {
        out.push(
            before
                .iter()
                .filter(|e| e.1 == conv && ago(e.0, 1, 90))
                .count() as f64,
        );
    }
    Some(out)
}

/// The naive feature table: (training rows with labels, scoring rows) by person.
type NaiveTable = (BTreeMap<u64, (Vec<f64>, bool)>, BTreeMap<u64, Vec<f64>>);

fn naive_features(rows: &[Row], tz: &str, q: &ChurnQuery) -> NaiveTable {
    let is_activity = |n: &str| q.activity.is_empty() || q.activity.iter().any(|a| a == n);
    let n_days = days_between(q.from, q.to) + 1;
    let cutoff = n_days - i64::from(q.window_days);
    let mut by_person: BTreeMap<u64, Vec<(i64, &str)>> = BTreeMap::new();
    for &(p, t, name) in rows {
        let d = date_in(tz, t);
        if d >= q.from && d <= q.to {
            by_person
                .entry(p)
                .or_default()
                .push((days_between(q.from, d), name));
        }
    }
    let (mut training, mut scoring) = (BTreeMap::new(), BTreeMap::new());
    for (p, ev) in &by_person {
        if let Some(v) = naive_at(ev, cutoff, q, &is_activity) {
            let churned = !ev.iter().any(|e| e.0 >= cutoff && is_activity(e.1));
            training.insert(*p, (v, churned));
        }
        if let Some(v) = naive_at(ev, n_days, q, &is_activity) {
            scoring.insert(*p, v);
        }
    }
    (training, scoring)
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
}

fn same_table(table: &FeatureTable, naive: &NaiveTable) -> std::result::Result<(), TestCaseError> {
    let (training, scoring) = naive;
    prop_assert_eq!(table.training.len(), training.len());
    for r in &table.training {
        let (v, churned) = &training[&r.person];
        prop_assert!(
            close(&r.values, v),
            "{} {:?} vs {:?}",
            r.person,
            r.values,
            v
        );
        prop_assert_eq!(r.churned, Some(*churned));
    }
    prop_assert_eq!(table.scoring.len(), scoring.len());
    for r in &table.scoring {
        prop_assert!(close(&r.values, &scoring[&r.person]), "{}", r.person);
        prop_assert_eq!(r.churned, None);
    }
    Ok(())
}

/// Rows of persons `1..8` over 150 days on whole hours (ties, exact day edges in every zone).
fn rows() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (1u64..8, 0i64..150 * 24, 0usize..NAMES.len())
            .prop_map(|(p, h, n)| (p, BASE + h * HOUR, NAMES[n])),
        0..120,
    )
}

fn zone() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("UTC"), Just("Asia/Shanghai"), Just("America/New_York")]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn features_match_a_naive_per_person_computation(
        rows in rows(),
        tz in zone(),
        start in 0i64..30,
        len in 2i64..130,
        window in 1u32..45,
        lookback in 1u32..100,
        activity in 0usize..3,
        conversion in 0usize..3,
    ) {
        let from = add_days(date_in("UTC", BASE), start);
        let to = add_days(from, len - 1);
        let window = window.min(len as u32 - 1);
        let activity: Vec<&str> = [vec![], vec!["A", "B"], vec!["C"]][activity].clone();
        let conversion = [None, Some("D"), Some("Z")][conversion];
        let s = spec(serde_json::json!({
            "date_from": from.to_string(), "date_to": to.to_string(), "timezone": tz,
            "window_days": window, "lookback_days": lookback,
            "activity_events": activity, "conversion_event": conversion,
        }));
        let source = VecSource::new(rows.iter().copied());
        let naive = naive_features(&rows, tz, &s.query(1).unwrap());
        for threads in [1, 3] {
            let table = features(&source, &s.query(threads).unwrap()).unwrap();
            same_table(&table, &naive)?;
        }
    }

    #[test]
    fn auc_matches_a_pair_count(
        data in proptest::collection::vec((0u8..6, any::<bool>()), 0..40),
    ) {
        let scores: Vec<f64> = data.iter().map(|d| f64::from(d.0) / 5.0).collect();
        let labels: Vec<bool> = data.iter().map(|d| d.1).collect();
        let (mut wins, mut pairs) = (0.0, 0.0);
        for i in 0..data.len() {
            for j in 0..data.len() {
                if labels[i] && !labels[j] {
                    pairs += 1.0;
                    if scores[i] > scores[j] {
                        wins += 1.0;
                    } else if scores[i] == scores[j] {
                        wins += 0.5;
                    }
                }
            }
        }
        let got = auc(&scores, &labels);
        if pairs == 0.0 {
            prop_assert_eq!(got, None);
        } else {
            let got = got.unwrap();
            prop_assert!((got - wins / pairs).abs() < 1e-12, "{} vs {}", got, wins / pairs);
        }
    }

    #[test]
    fn newton_matches_gradient_descent(
        data in proptest::collection::vec(
            ((-2.0f64..2.0, -2.0f64..2.0), any::<bool>()), 10..30),
        l2 in 0.5f64..5.0,
    ) {
        let x: Vec<Vec<f64>> = data.iter().map(|d| vec![d.0.0, d.0.1]).collect();
        let mut y: Vec<bool> = data.iter().map(|d| d.1).collect();
        // Both classes, so that the unpenalised intercept is finite.
        y[0] = true;
        y[1] = false;
        let fit = fit_logistic(&x, &y, l2);
        prop_assert!(fit.converged);
        let gd = gradient_descent(&x, &y, l2);
        for (a, b) in fit.coefficients.iter().zip(&gd) {
            prop_assert!((a - b).abs() < 1e-4, "{:?} vs {:?}", fit.coefficients, gd);
        }
    }
}

/// Minimises the documented objective by plain gradient descent with step 1/L.
fn gradient_descent(x: &[Vec<f64>], y: &[bool], l2: f64) -> Vec<f64> {
    let k = x[0].len() + 1;
    let lipschitz = x
        .iter()
        .map(|r| 1.0 + r.iter().map(|v| v * v).sum::<f64>())
        .sum::<f64>()
        / 4.0
        + l2;
    let mut beta = vec![0.0; k];
    for _ in 0..400_000 {
        let mut g = vec![0.0; k];
        for (r, &yi) in x.iter().zip(y) {
            let eta = beta[0] + r.iter().zip(&beta[1..]).map(|(v, b)| v * b).sum::<f64>();
            let p = 1.0 / (1.0 + (-eta).exp());
            let e = p - f64::from(u8::from(yi));
            g[0] += e;
            for j in 1..k {
                g[j] += e * r[j - 1];
            }
        }
        for j in 1..k {
            g[j] += l2 * beta[j];
        }
        if g.iter().all(|v| v.abs() < 1e-11) {
            break;
        }
        for j in 0..k {
            beta[j] -= g[j] / lipschitz;
        }
    }
    beta
}

#[test]
fn an_intercept_alone_fits_the_log_odds_of_the_mean() {
    // 3 of 10 churn: β₀ = ln(0.3 / 0.7); a constant-zero column gets β = 0 (penalised).
    let x = vec![vec![0.0]; 10];
    let y: Vec<bool> = (0..10).map(|i| i < 3).collect();
    let fit = fit_logistic(&x, &y, 1.0);
    assert!(fit.converged);
    assert!((fit.coefficients[0] - (0.3f64 / 0.7).ln()).abs() < 1e-12);
    assert_eq!(fit.coefficients[1], 0.0);
    // The objective is the negative log-likelihood there.
    let nll = -(3.0 * 0.3f64.ln() + 7.0 * 0.7f64.ln());
    assert!((fit.objective - nll).abs() < 1e-9);
}

#[test]
fn the_split_is_a_fixed_fifth() {
    let validation = (0..100_000u64).filter(|&p| is_validation(p)).count();
    assert!((19_000..21_000).contains(&validation), "{validation}");
    // Pinned: the split must not change between releases.
    let first: Vec<u64> = (0..40u64).filter(|&p| is_validation(p)).collect();
    assert_eq!(first, pinned_split());
}

/// `splitmix64(0)` is 0xE220A8397B1DCDAF (the reference generator's first output from seed
/// 0), which is 0 mod 5: person 0 is in the validation set.
fn pinned_split() -> Vec<u64> {
    vec![0, 1, 2, 13, 16, 18, 29, 30, 31, 35]
}

/// xorshift64*, seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// 2026-01-01T00:00:00Z.
const JAN1: i64 = 1_767_225_600_000;
/// 2026-01-01 to 2026-06-30.
const SYNTH_DAYS: i64 = 181;

/// Persons who arrive on a random day, are active on a day with a rate of their own, and quit
/// on a random day; over the 45 days before quitting their rate falls linearly to 0. So a
/// person who is about to stop (or has stopped) shows a long recency and a falling trend:
/// churn follows from both by construction.
fn synthetic(persons: u64) -> Vec<Row> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut rows = Vec::new();
    for p in 1..=persons {
        let start = (rng.unit() * 150.0) as i64;
        let rate = 0.15 + 0.7 * rng.unit();
        let quit = start + 10 + (-80.0 * (1.0 - rng.unit()).ln()) as i64;
        for d in start..quit.min(SYNTH_DAYS) {
            let fade = ((quit - d) as f64 / 45.0).min(1.0);
            if rng.unit() < rate * fade {
                for _ in 0..1 + rng.next() % 3 {
                    let name = ["Login", "Lesson Started", "Lesson Completed", "Note"]
                        [(rng.next() % 4) as usize];
                    rows.push((p, JAN1 + d * DAY + (rng.next() % DAY as u64) as i64, name));
                }
            }
        }
    }
    rows
}

fn run_synthetic(threads: usize) -> ChurnResult {
    let source = VecSource::new(synthetic(4_000));
    let s = spec(serde_json::json!({
        "date_from": "2026-01-01", "date_to": "2026-06-30",
        "conversion_event": "Lesson Completed", "list": 100_000,
    }));
    churn(&source, &s.query(threads).unwrap()).unwrap()
}

#[test]
fn a_synthetic_population_is_predicted() {
    let r = run_synthetic(2);
    // [2026-06-01, 2026-07-01) is the last 30 days.
    assert_eq!(r.cutoff, "2026-06-01");
    assert_eq!(r.as_of, "2026-06-30");
    assert!(r.fit.converged && r.fit.iterations < 20, "{:?}", r.fit);
    let v = r.validation.as_ref().unwrap();
    let auc = v.auc.unwrap();
    assert!(auc > 0.75, "auc {auc}");
    assert!(v.log_loss < v.baseline_log_loss, "{v:?}");
    let coef = |key: &str| {
        r.coefficients
            .iter()
            .find(|c| c.feature == key)
            .unwrap()
            .coefficient
    };
    assert!(coef("recency") > 0.0, "{:?}", r.coefficients);
    assert!(coef("trend") < 0.0, "{:?}", r.coefficients);
    // Calibration: ten deciles; the observed rate never falls by more than 0.1 from one
    // decile to the next, rises by more than 0.4 from the first to the last, and each
    // decile's mean prediction is within 0.1 of its observed rate.
    assert_eq!(v.calibration.len(), 10);
    for w in v.calibration.windows(2) {
        assert!(w[1].observed_rate >= w[0].observed_rate - 0.1, "{v:?}");
        assert!(w[1].mean_predicted >= w[0].mean_predicted);
    }
    assert!(v.calibration[9].observed_rate - v.calibration[0].observed_rate > 0.4);
    for b in &v.calibration {
        assert!((b.mean_predicted - b.observed_rate).abs() < 0.1, "{b:?}");
    }
    // Everyone scored is listed, highest risk first, and the histogram counts them.
    assert_eq!(r.list.len() as u64, r.scored);
    assert_eq!(r.risk_histogram.iter().sum::<u64>(), r.scored);
    assert!(r.list.windows(2).all(|w| w[0].risk >= w[1].risk));
    // The longest-inactive scored person: recency is what raises their risk most.
    let longest = r
        .list
        .iter()
        .max_by(|a, b| a.values[0].total_cmp(&b.values[0]))
        .unwrap();
    assert!(longest.values[0] > 60f64.ln_1p(), "{longest:?}");
    assert_eq!(longest.top_factors[0].feature, "recency", "{longest:?}");
    assert_eq!(longest.top_factors[0].name, "recency 最近活跃");
    assert!(longest.top_factors.len() <= 3);
    assert!(
        longest
            .top_factors
            .windows(2)
            .all(|w| w[0].contribution >= w[1].contribution && w[1].contribution > 0.0)
    );
    // Threads change nothing.
    assert_eq!(run_synthetic(1), r);
}

#[test]
fn bad_parameters_name_the_field() {
    let base = serde_json::json!({"date_from": "2026-01-01", "date_to": "2026-03-31"});
    let with = |extra: serde_json::Value| {
        let mut v = base.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        spec(v)
    };
    for (extra, field) in [
        (serde_json::json!({"window_days": 0}), "window_days"),
        (serde_json::json!({"window_days": 4000}), "window_days"),
        (serde_json::json!({"lookback_days": 0}), "lookback_days"),
        (serde_json::json!({"l2": 0.0}), "l2"),
        (serde_json::json!({"l2": -1.0}), "l2"),
        (serde_json::json!({"list": 1_000_000}), "list"),
        (
            serde_json::json!({"activity_events": ["a", ""]}),
            "activity_events[1]",
        ),
        (
            serde_json::json!({"conversion_event": ""}),
            "conversion_event",
        ),
        (serde_json::json!({"timezone": "Mars/Base"}), "timezone"),
        (serde_json::json!({"date_to": "2026-02-30"}), "date_to"),
        (serde_json::json!({"date_to": "2025-12-31"}), "date_to"),
        // 90 days of range, a 90-day window: no history before the cut-off.
        (serde_json::json!({"window_days": 90}), "date_from"),
    ] {
        let e = with(extra.clone()).query(1).unwrap_err();
        assert_eq!(e.field(), field, "{extra}: {e}");
    }
    assert!(
        serde_json::from_value::<ChurnSpec>(
            serde_json::json!({"date_from": "2026-01-01", "date_to": "2026-03-31", "bogus": 1})
        )
        .is_err()
    );
    // Too few persons, and only one class.
    let q = with(serde_json::json!({})).query(1).unwrap();
    let few = VecSource::new((1..5u64).map(|p| (p, JAN1 + 40 * DAY, "Login")));
    assert_eq!(churn(&few, &q).unwrap_err().field(), "activity_events");
    let loyal = VecSource::new(
        (1..200u64).flat_map(|p| [(p, JAN1 + 40 * DAY, "Login"), (p, JAN1 + 80 * DAY, "Login")]),
    );
    let e = churn(&loyal, &q).unwrap_err();
    assert_eq!(e.field(), "activity_events", "{e}");
    assert!(e.to_string().contains("both churned and retained"), "{e}");
}

#[test]
fn the_answer_serialises_with_its_documented_fields() {
    let r = run_synthetic(2);
    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "cutoff",
        "as_of",
        "window_days",
        "lookback_days",
        "intercept",
        "coefficients",
        "fit",
        "validation",
        "scored",
        "mean_risk",
        "expected_churners",
        "risk_histogram",
        "list",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    let names: Vec<&str> = r.coefficients.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), 7);
    assert_eq!(names[0], "recency 最近活跃");
    assert_eq!(v["list"][0]["top_factors"][0].as_object().unwrap().len(), 3);
}
