//! BG/BB on the donations data (11,104 donors of 1995, six yearly opportunities), rebuilt as
//! donation events: the published estimates, and every donor scored.

use lodestar_analytics::VecSource;
use lodestar_analytics::bgbb::{BgBbSpec, bgbb};

/// One donation event per (donor, year): first in 1995, the others as the pattern says.
fn donations() -> Vec<(u64, i64, &'static str, f64)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/tests/fixtures/donations.csv"
    );
    let year_start = |y: i16| {
        jiff::civil::date(y, 3, 1)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_millisecond()
    };
    let mut events = Vec::new();
    let mut donor = 0u64;
    for line in std::fs::read_to_string(path).unwrap().lines().skip(1) {
        let f: Vec<u32> = line.split(',').map(|v| v.parse().unwrap()).collect();
        let (x, recency, weight) = (f[0], f[1], f[3]);
        for _ in 0..weight {
            donor += 1;
            events.push((donor, year_start(1995), "Donation Made", 25.0));
            // x − 1 donations in the years before the last one, then the last at `recency`.
            for k in 1..x {
                events.push((donor, year_start(1995 + k as i16), "Donation Made", 25.0));
            }
            if x > 0 {
                events.push((
                    donor,
                    year_start(1995 + recency as i16),
                    "Donation Made",
                    25.0,
                ));
            }
            events.push((donor, year_start(1995) + 1, "Newsletter Opened", f64::NAN));
        }
    }
    events
}

#[test]
fn reproduces_the_published_donations_fit() {
    let source = VecSource::with_values(donations());
    let spec: BgBbSpec = serde_json::from_value(serde_json::json!({
        "events": ["Donation Made"], "interval": "year",
        "date_from": "1995-01-01", "date_to": "2001-12-31", "horizon": 5, "list": 20000
    }))
    .unwrap();
    let r = bgbb(&source, &spec.query(2).unwrap()).unwrap();
    assert_eq!(r.customers, 11_104);
    let p = &r.model.params;
    for (name, want) in [
        ("alpha", 1.204),
        ("beta", 0.750),
        ("gamma", 0.657),
        ("delta", 2.783),
    ] {
        let got = p[name].as_f64().unwrap();
        assert!(
            (got - want).abs() < 5e-4,
            "{name}: {got} against the published {want}"
        );
    }
    assert!(r.model.report.converged);
    // Every donor scored, ordered; a donor who gave every year is more likely alive than one
    // who gave once in 1995.
    assert_eq!(r.list.len(), 11_104);
    assert!(
        r.list
            .windows(2)
            .all(|w| w[0].expected_transactions >= w[1].expected_transactions)
    );
    let best = r.list.iter().find(|s| s.frequency == 6).unwrap();
    let lapsed = r.list.iter().find(|s| s.frequency == 0).unwrap();
    assert!(best.p_alive > lapsed.p_alive);
    assert_eq!((lapsed.recency, lapsed.periods), (0, 6));
}

#[test]
fn bad_parameters_name_the_field() {
    let field = |json: serde_json::Value| {
        let spec: BgBbSpec = serde_json::from_value(json).unwrap();
        spec.query(1).unwrap_err().field().to_string()
    };
    let base = |extra: serde_json::Value| {
        let mut v = serde_json::json!({"events": ["d"], "date_from": "2020-01-01", "date_to": "2021-01-01"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    assert_eq!(
        field(base(serde_json::json!({"interval": "day"}))),
        "interval"
    );
    assert_eq!(field(base(serde_json::json!({"events": []}))), "events");
    assert_eq!(field(base(serde_json::json!({"horizon": 0}))), "horizon");
    assert_eq!(
        field(base(serde_json::json!({"interval": "decade"}))),
        "interval"
    );
}
