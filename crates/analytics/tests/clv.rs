//! The CLV analysis on the CDNOW sample (2,357 customers' purchases, 1997–1998) read as events:
//! the published BG/NBD estimates, and the holdout check against counts made here by hand.

use std::collections::BTreeMap;

use lodestar_analytics::VecSource;
use lodestar_analytics::clv::{ClvResult, ClvSpec, clv};
use lodestar_models::Rfm;
use lodestar_models::bg_nbd::BgNbdParams;
use lodestar_models::clv::PurchaseModel;

const DAY: i64 = 86_400_000;

/// (customer, day since 1970-01-01, dollars) from the models crate's fixture.
fn cdnow() -> Vec<(u64, i64, f64)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/tests/fixtures/CDNOW_sample.txt"
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let v: i64 = f[2].parse().unwrap();
            let date =
                jiff::civil::date((v / 10_000) as i16, (v / 100 % 100) as i8, (v % 100) as i8);
            let day = jiff::civil::date(1970, 1, 1)
                .until(date)
                .unwrap()
                .get_days() as i64;
            (f[1].parse().unwrap(), day, f[4].parse().unwrap())
        })
        .collect()
}

fn run(extra: serde_json::Value) -> (ClvResult, Vec<(u64, i64, f64)>) {
    let rows = cdnow();
    // Purchases at varied times of day, and other events that must not count.
    let mut events: Vec<(u64, i64, &str, f64)> = Vec::new();
    for (i, &(c, day, amount)) in rows.iter().enumerate() {
        let ts = day * DAY + (i as i64 % 86_400) * 997;
        events.push((c, ts, "Order Completed", amount));
        events.push((c, ts + 1, "Page Viewed", 5.0));
    }
    let source = VecSource::with_values(events);
    let mut params = serde_json::json!({
        "date_from": "1997-01-01", "date_to": "1997-09-30", "holdout_to": "1998-06-30",
        "timezone": "UTC", "list": 5000
    });
    params
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let spec: ClvSpec = serde_json::from_value(params).unwrap();
    (clv(&source, &spec.query(2).unwrap()).unwrap(), rows)
}

#[test]
fn reproduces_the_published_bg_nbd_fit_and_checks_the_holdout() {
    let (r, rows) = run(serde_json::json!({}));
    assert_eq!(r.customers, 2357);
    let p = &r.purchase_model.params;
    let close = |name: &str, want: f64, tol: f64| {
        let got = p[name].as_f64().unwrap();
        assert!(
            (got - want).abs() < tol,
            "{name}: {got} against the published {want}"
        );
    };
    close("r", 0.243, 5e-4);
    close("alpha", 4.414, 5e-3);
    close("a", 0.793, 5e-4);
    close("b", 2.426, 5e-3);
    assert!((r.purchase_model.report.log_likelihood - -9582.4).abs() < 0.05);
    assert!(r.purchase_model.report.converged);
    assert!(r.spend_model.is_some());

    // The holdout by hand: repeat purchase days from 1997-10-01 to 1998-06-30 of the
    // calibration's buyers, per calibration frequency.
    let start = jiff::civil::date(1970, 1, 1);
    let day_of = |y, m, d| start.until(jiff::civil::date(y, m, d)).unwrap().get_days() as i64;
    let (cal_end, hold_end) = (day_of(1997, 9, 30), day_of(1998, 6, 30));
    let mut days: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for &(c, d, _) in &rows {
        days.entry(c).or_default().push(d);
    }
    let bg: BgNbdParams = serde_json::from_value(p.clone()).unwrap();
    let mut actual_total = 0u64;
    let mut predicted_total = 0.0;
    let mut by_x: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
    for d in days.values_mut() {
        d.sort_unstable();
        d.dedup();
        let first = d[0];
        if first > cal_end {
            continue;
        }
        let cal: Vec<i64> = d.iter().copied().filter(|&x| x <= cal_end).collect();
        let x = cal.len() - 1;
        let hold = d.iter().filter(|&&x| x > cal_end && x <= hold_end).count() as u64;
        actual_total += hold;
        let weeks = |n: i64| n as f64 / 7.0;
        let c = Rfm::new(x as u32, weeks(cal[x] - first), weeks(cal_end - first)).unwrap();
        predicted_total += bg.expected_purchases(&c, weeks(hold_end - cal_end));
        let e = by_x.entry(x.min(7)).or_default();
        e.0 += 1;
        e.1 += hold;
    }
    let v = r.validation.as_ref().unwrap();
    assert_eq!(v.total_actual, actual_total);
    assert!((v.total_predicted - predicted_total).abs() < 1e-6 * predicted_total);
    for b in &v.by_frequency {
        let x: usize = b.frequency.trim_end_matches('+').parse().unwrap();
        let (n, hold) = by_x[&x];
        assert_eq!(b.customers, n, "x = {}", b.frequency);
        assert!((b.actual - hold as f64 / n as f64).abs() < 1e-12);
    }
    // The tracking data add up to the totals.
    let last = v.tracking.last().unwrap();
    assert_eq!(last.actual_cumulative, actual_total);
    assert!((last.predicted_cumulative - v.total_predicted).abs() < 1e-6 * predicted_total);
    assert_eq!(
        v.tracking.iter().map(|w| w.actual).sum::<u64>(),
        actual_total
    );
    // Every buyer scored; the list is ordered by CLV.
    assert_eq!(r.list.len(), 2357);
    assert!(r.list.windows(2).all(|w| w[0].clv >= w[1].clv));
    assert!(r.list.iter().all(|s| (0.0..=1.0).contains(&s.p_alive)));
}

#[test]
fn other_models_and_bad_parameters() {
    let (r, _) = run(serde_json::json!({"model": "pareto_nbd"}));
    let p = &r.purchase_model.params;
    // The published Pareto/NBD fit: r 0.553, α 10.578, s 0.606, β 11.669.
    assert!((p["r"].as_f64().unwrap() - 0.553).abs() < 5e-4, "{p}");
    assert!((p["s"].as_f64().unwrap() - 0.606).abs() < 5e-4, "{p}");
    let field = |json: serde_json::Value| {
        let spec: ClvSpec = serde_json::from_value(json).unwrap();
        spec.query(1).unwrap_err().field().to_string()
    };
    let base = serde_json::json!({"date_from": "1997-01-01", "date_to": "1997-09-30"});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    assert_eq!(field(with("holdout_to", "1997-09-30".into())), "holdout_to");
    assert_eq!(field(with("horizon_months", 0.into())), "horizon_months");
    assert_eq!(
        field(with("purchase_events", serde_json::json!(["x", ""]))),
        "purchase_events[1]"
    );
    // A window without purchases cannot support a fit: the error says so.
    let spec: ClvSpec = serde_json::from_value(serde_json::json!({
        "date_from": "2020-01-01", "date_to": "2020-02-01"
    }))
    .unwrap();
    let source = VecSource::with_values(vec![(1u64, 0i64, "Order Completed", 1.0)]);
    let err = clv(&source, &spec.query(1).unwrap()).unwrap_err();
    assert!(err.to_string().contains("cannot support a fit"), "{err}");
}
