//! Predictions agree with the Python `lifetimes` package (0.11.3) to 1e-6 relative, using the
//! parameters `lifetimes` fitted (read from the fixture written by
//! `tests/lifetimes_reference.py`; both sides use the rounded CDNOW CSV for these customers).

use std::collections::HashMap;

use lodestar_models::bg_bb::{BgBbParams, Opportunities};
use lodestar_models::bg_nbd::BgNbdParams;
use lodestar_models::gamma_gamma::GammaGammaParams;
use lodestar_models::mbg_nbd::MbgNbdParams;
use lodestar_models::pareto_nbd::ParetoNbdParams;
use lodestar_models::{ClvHorizon, Discount, PurchaseModel, Rfm, customer_lifetime_value};

use crate::common::{fixture, rel_err};

const TOLERANCE: f64 = 1e-6;

struct Reference {
    params: HashMap<String, Vec<f64>>,
    /// Column name → value, per customer.
    customers: Vec<HashMap<String, f64>>,
    /// (x, t_x, n, P(alive at n+1), E[transactions in next 5]).
    patterns: Vec<(u32, u32, u32, f64, f64)>,
}

fn reference() -> Reference {
    let text = fixture("lifetimes_reference.txt");
    let mut r = Reference {
        params: HashMap::new(),
        customers: Vec::new(),
        patterns: Vec::new(),
    };
    let mut header: Vec<String> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f[0] {
            "params" => {
                r.params.insert(
                    f[1].to_string(),
                    f[2..].iter().map(|v| v.parse().unwrap()).collect(),
                );
            }
            "customers" => header = f[1..].iter().map(|s| s.to_string()).collect(),
            "customer" => r.customers.push(
                header
                    .iter()
                    .cloned()
                    .zip(f[1..].iter().map(|v| v.parse().unwrap()))
                    .collect(),
            ),
            "patterns" => {}
            "pattern" => r.patterns.push((
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].parse().unwrap(),
                f[5].parse().unwrap(),
            )),
            other => panic!("unexpected line kind {other}"),
        }
    }
    r
}

fn check(what: &str, id: f64, ours: f64, theirs: f64) {
    let err = rel_err(ours, theirs);
    assert!(
        err <= TOLERANCE,
        "{what} of customer {id}: ours {ours} lifetimes {theirs} (rel. error {err:e})"
    );
}

#[test]
fn continuous_time_models_match_lifetimes() {
    let r = reference();
    let p = &r.params["bg_nbd"];
    let bg = BgNbdParams {
        r: p[0],
        alpha: p[1],
        a: p[2],
        b: p[3],
    };
    let p = &r.params["pareto_nbd"];
    let pn = ParetoNbdParams {
        r: p[0],
        alpha: p[1],
        s: p[2],
        beta: p[3],
    };
    let p = &r.params["mbg_nbd"];
    let mbg = MbgNbdParams {
        r: p[0],
        alpha: p[1],
        a: p[2],
        b: p[3],
    };
    let p = &r.params["gamma_gamma"];
    let gg = GammaGammaParams {
        p: p[0],
        q: p[1],
        gamma: p[2],
    };
    // lifetimes' month in weeks is 4.345; its discount rate is per month.
    let horizon = ClvHorizon::steps(12, 4.345, Discount::PerStep(0.01)).unwrap();

    assert_eq!(r.customers.len(), 20);
    for c in &r.customers {
        let id = c["id"];
        let rfm = Rfm::new(c["x"] as u32, c["t_x"], c["T"]).unwrap();
        let models: [(&str, &dyn PurchaseModel); 3] = [("bg", &bg), ("pn", &pn), ("mbg", &mbg)];
        for (name, m) in models {
            check(
                &format!("{name} P(alive)"),
                id,
                m.prob_alive(&rfm),
                c[&format!("{name}_alive")],
            );
            check(
                &format!("{name} E[Y(10)]"),
                id,
                m.expected_purchases(&rfm, 10.0),
                c[&format!("{name}_exp10")],
            );
            check(
                &format!("{name} E[Y(52)]"),
                id,
                m.expected_purchases(&rfm, 52.0),
                c[&format!("{name}_exp52")],
            );
        }
        let spend = gg.expected_spend(rfm.frequency(), c["zbar"]).unwrap();
        check("Gamma-Gamma expected spend", id, spend, c["gg_spend"]);
        check(
            "BG/NBD CLV",
            id,
            customer_lifetime_value(&bg, &rfm, spend, &horizon),
            c["bg_clv12"],
        );
    }
}

#[test]
fn bg_bb_matches_lifetimes() {
    let r = reference();
    let p = &r.params["bg_bb"];
    let bb = BgBbParams {
        alpha: p[0],
        beta: p[1],
        gamma: p[2],
        delta: p[3],
    };
    assert_eq!(r.patterns.len(), 22);
    for &(x, tx, n, alive, exp5) in &r.patterns {
        let o = Opportunities::new(x, tx, n).unwrap();
        let id = f64::from(x * 100 + tx);
        check("BG/BB P(alive at n+1)", id, bb.prob_alive(&o, 1), alive);
        check(
            "BG/BB E[X(n, n+5)]",
            id,
            bb.expected_transactions(&o, 5),
            exp5,
        );
    }
}
