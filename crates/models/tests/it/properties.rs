//! Property tests: each likelihood against a naive implementation (the defining mixture
//! integrated numerically, or the closed form written with plain products), range and
//! monotonicity of the predictions, and the summary against a naive one.

use std::collections::BTreeMap;

use proptest::prelude::*;

use lodestar_models::bg_bb::{BgBbParams, Opportunities};
use lodestar_models::bg_nbd::BgNbdParams;
use lodestar_models::gamma_gamma::GammaGammaParams;
use lodestar_models::mbg_nbd::MbgNbdParams;
use lodestar_models::pareto_nbd::ParetoNbdParams;
use lodestar_models::special::ln_gamma;
use lodestar_models::summary::{SummaryOptions, TimeUnit, Transaction, summarize};
use lodestar_models::{PurchaseModel, Rfm};

fn close(ours: f64, naive: f64, tol: f64) -> bool {
    (ours - naive).abs() <= tol * naive.abs().max(1.0)
}

/// Π_{k<n} (a + k): Γ(a + n)/Γ(a) for integer n.
fn rising(a: f64, n: u32) -> f64 {
    (0..n).map(|k| a + f64::from(k)).product()
}

/// tanh-sinh quadrature of f over (0, 1); f receives p and 1 − p, both computed without
/// cancellation so that endpoint singularities are handled.
fn integrate_unit(f: impl Fn(f64, f64) -> f64) -> f64 {
    let h = 1.0 / 64.0;
    let mut sum = 0.0;
    for k in -416..=416 {
        let t = f64::from(k) * h;
        let s = std::f64::consts::FRAC_PI_2 * t.sinh();
        let (p, q) = if s < 0.0 {
            let e = (2.0 * s).exp();
            (e / (1.0 + e), 1.0 / (1.0 + e))
        } else {
            let e = (-2.0 * s).exp();
            (1.0 / (1.0 + e), e / (1.0 + e))
        };
        let w = std::f64::consts::FRAC_PI_2 * t.cosh() * 2.0 * p * q;
        if w > 0.0 && p > 0.0 && q > 0.0 {
            sum += w * f(p, q);
        }
    }
    sum * h
}

/// ∫ f over [lo, hi] by tanh-sinh.
fn integrate(lo: f64, hi: f64, f: impl Fn(f64) -> f64) -> f64 {
    (hi - lo) * integrate_unit(|p, _| f(lo + (hi - lo) * p))
}

fn params4() -> impl Strategy<Value = [f64; 4]> {
    [0.05f64..5.0, 0.1f64..50.0, 0.05f64..5.0, 0.1f64..50.0]
}

fn rfm() -> impl Strategy<Value = Rfm> {
    (0u32..20, 0.0f64..=1.0, 0.1f64..60.0).prop_map(|(x, frac, t)| {
        let tx = if x == 0 { 0.0 } else { frac * t };
        Rfm::new(x, tx, t).unwrap()
    })
}

/// BG/NBD likelihood, the closed form with plain products (no log-gamma).
fn naive_bg_nbd(&[r, alpha, a, b]: &[f64; 4], c: &Rfm) -> f64 {
    let (x, tx, t) = (c.frequency(), c.recency(), c.age());
    let g = rising(r, x) * alpha.powf(r);
    // B(a, b + x)/B(a, b) = Π (b + k)/(a + b + k), k < x.
    let alive = rising(b, x) / rising(a + b, x) * g / (alpha + t).powf(r + f64::from(x));
    // B(a + 1, b + x − 1)/B(a, b) = a Π_{k<x−1} (b + k) / Π_{k<x} (a + b + k).
    let dead = if x > 0 {
        a * rising(b, x - 1) / rising(a + b, x) * g / (alpha + tx).powf(r + f64::from(x))
    } else {
        0.0
    };
    (alive + dead).ln()
}

/// MBG/NBD likelihood with plain products.
fn naive_mbg_nbd(&[r, alpha, a, b]: &[f64; 4], c: &Rfm) -> f64 {
    let (x, tx, t) = (c.frequency(), c.recency(), c.age());
    let g = rising(r, x) * alpha.powf(r);
    let alive = rising(b, x + 1) / rising(a + b, x + 1) * g / (alpha + t).powf(r + f64::from(x));
    let dead = a * rising(b, x) / rising(a + b, x + 1) * g / (alpha + tx).powf(r + f64::from(x));
    (alive + dead).ln()
}

/// Pareto/NBD likelihood from its definition: alive at T, or died at τ ∈ (tₓ, T], with the
/// purchase and death rates integrated out (no hypergeometric function).
fn naive_pareto(&[r, alpha, s, beta]: &[f64; 4], c: &Rfm) -> f64 {
    let (x, tx, t) = (c.frequency(), c.recency(), c.age());
    let k = r + f64::from(x);
    let g = rising(r, x) * alpha.powf(r);
    let alive = g / (alpha + t).powf(k) * (beta / (beta + t)).powf(s);
    let died = integrate(tx, t, |tau| {
        g / (alpha + tau).powf(k) * s * beta.powf(s) / (beta + tau).powf(s + 1.0)
    });
    (alive + died).ln()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn bg_nbd_likelihood_is_the_closed_form(p in params4(), c in rfm()) {
        let params = BgNbdParams { r: p[0], alpha: p[1], a: p[2], b: p[3] };
        let (ours, naive) = (params.log_likelihood(&c), naive_bg_nbd(&p, &c));
        prop_assume!(naive.is_finite());
        prop_assert!(close(ours, naive, 1e-10), "{ours} vs {naive}");
    }

    #[test]
    fn mbg_nbd_likelihood_is_the_closed_form(p in params4(), c in rfm()) {
        let params = MbgNbdParams { r: p[0], alpha: p[1], a: p[2], b: p[3] };
        let (ours, naive) = (params.log_likelihood(&c), naive_mbg_nbd(&p, &c));
        prop_assume!(naive.is_finite());
        prop_assert!(close(ours, naive, 1e-10), "{ours} vs {naive}");
    }

    #[test]
    fn pareto_nbd_likelihood_is_the_mixture(p in params4(), c in rfm(), equal in any::<bool>()) {
        // Half of the cases with α = β exactly, where the ₂F₁ argument is 0.
        let p = if equal { [p[0], p[1], p[2], p[1]] } else { p };
        let params = ParetoNbdParams { r: p[0], alpha: p[1], s: p[2], beta: p[3] };
        let (ours, naive) = (params.log_likelihood(&c), naive_pareto(&p, &c));
        prop_assume!(naive.is_finite());
        prop_assert!(close(ours, naive, 1e-9), "{ours} vs {naive}");
        // Continuity across α = β: nudging β by a relative 1e-9 barely moves the likelihood.
        let nudged = ParetoNbdParams { beta: p[3] * (1.0 + 1e-9), ..params };
        prop_assert!(close(nudged.log_likelihood(&c), ours, 1e-7));
    }

    #[test]
    fn gamma_gamma_likelihood_is_the_mixture(p in 0.1f64..10.0, q in 0.1f64..10.0, gamma in 0.5f64..50.0, x in 1u32..15, m in 0.5f64..200.0) {
        let params = GammaGammaParams { p, q, gamma };
        let ours = params.log_likelihood(x, m).unwrap();
        // ∫ Gamma(m̄; px, νx) Gamma(ν; q, γ) dν over ν = eᵘ, trapezoid on a fine grid.
        let xf = f64::from(x);
        let px = p * xf;
        let log_f = |u: f64| {
            let nu = u.exp();
            px * (nu * xf).ln() + (px - 1.0) * m.ln() - nu * xf * m - ln_gamma(px)
                + q * gamma.ln() + q * u - gamma * nu - ln_gamma(q)
        };
        let h = 0.002;
        let naive: f64 = (-40_000..40_000).map(|i| log_f(f64::from(i) * h).exp() * h).sum::<f64>().ln();
        prop_assert!(close(ours, naive, 1e-9), "{ours} vs {naive}");
    }

    #[test]
    fn bg_bb_likelihood_is_the_closed_form(p in [0.05f64..5.0, 0.05f64..5.0, 0.05f64..5.0, 0.05f64..5.0], n in 0u32..12, a in 0u32..12, b in 0u32..12) {
        let tx = a.min(n);
        let x = if tx == 0 { 0 } else { 1 + b % tx };
        let o = Opportunities::new(x, tx, n).unwrap();
        let [al, be, ga, de] = p;
        let params = BgBbParams { alpha: al, beta: be, gamma: ga, delta: de };
        // B(α+x, β+y)/B(α,β) = Π(α+k) Π(β+j) / Π(α+β+m).
        let bab = |y: u32| rising(al, x) * rising(be, y) / rising(al + be, x + y);
        let mut naive = bab(n - x) * rising(de, n) / rising(ga + de, n);
        for i in 0..n - tx {
            naive += bab(tx - x + i) * ga * rising(de, tx + i) / rising(ga + de, tx + i + 1);
        }
        let ours = params.log_likelihood(&o);
        prop_assert!(close(ours, naive.ln(), 1e-10), "{ours} vs {}", naive.ln());
        let alive = params.prob_alive(&o, 1);
        prop_assert!((0.0..=1.0).contains(&alive));
        let (e1, e2) = (params.expected_transactions(&o, 1), params.expected_transactions(&o, 5));
        prop_assert!(0.0 <= e1 && e1 <= e2 && e2 <= 5.0);
    }

    #[test]
    fn predictions_are_probabilities_and_increase(p in params4(), c in rfm(), t1 in 0.0f64..100.0, dt in 0.0f64..100.0) {
        let t2 = t1 + dt;
        let bg = BgNbdParams { r: p[0], alpha: p[1], a: p[2], b: p[3] };
        let mbg = MbgNbdParams { r: p[0], alpha: p[1], a: p[2], b: p[3] };
        let pn = ParetoNbdParams { r: p[0], alpha: p[1], s: p[2], beta: p[3] };
        let models: [(&str, &dyn PurchaseModel); 3] = [("bg", &bg), ("mbg", &mbg), ("pn", &pn)];
        for (name, m) in models {
            let alive = m.prob_alive(&c);
            prop_assert!((0.0..=1.0).contains(&alive), "{name} P(alive) {alive}");
            let (e1, e2) = (m.expected_purchases(&c, t1), m.expected_purchases(&c, t2));
            // a ≈ 1 makes the BG formulas 0/0; skip the cases where they lose all precision.
            if name != "pn" && (p[2] - 1.0).abs() < 1e-3 { continue; }
            prop_assert!(e1 >= -1e-12 && e1 <= e2 * (1.0 + 1e-9) + 1e-12, "{name} E[Y] {e1} {e2}");
        }
        let (q1, q2) = (bg.prob_purchase_within(&c, t1), bg.prob_purchase_within(&c, t2));
        prop_assert!(0.0 <= q1 && q1 <= q2 && q2 <= bg.prob_alive(&c));
        if (p[2] - 1.0).abs() > 1e-2 {
            prop_assert!(q2 <= bg.expected_purchases(&c, t2) * (1.0 + 1e-9) + 1e-12);
        }
    }

    #[test]
    fn bg_nbd_expected_purchases_is_the_posterior_mean(p in params4(), c in rfm(), t in 0.1f64..100.0) {
        // E[Y(t) | data] = P(alive) · E[(1 − e^{−λpt})/p] over the posterior of an alive customer:
        // λ ~ Gamma(r + x, α + T) (integrated in closed form), p ~ Beta(a, b + x) (numerically).
        let [r, alpha, a, b] = p;
        prop_assume!((a - 1.0).abs() > 1e-2);
        let bg = BgNbdParams { r, alpha, a, b };
        let x = f64::from(c.frequency());
        let k = r + x;
        let u = alpha + c.age();
        let density = |p: f64, q: f64| ((a - 1.0) * p.ln() + (b + x - 1.0) * q.ln()).exp();
        let norm = integrate_unit(density);
        let mean = integrate_unit(|p, q| {
            let no_more = -(-k * (p * t / u).ln_1p()).exp_m1(); // 1 − (u/(u + pt))^k
            no_more / p * density(p, q)
        }) / norm;
        let naive = bg.prob_alive(&c) * mean;
        prop_assert!(close(bg.expected_purchases(&c, t), naive, 1e-7), "{} vs {naive}", bg.expected_purchases(&c, t));
    }

    #[test]
    fn summary_is_the_naive_one(
        rows in proptest::collection::vec((0u8..6, 0.0f64..60.0, -5.0f64..100.0), 0..60),
        end in 0.0f64..50.0,
        extra in proptest::option::of(0.0f64..30.0),
        weeks in any::<bool>(),
    ) {
        let unit = if weeks { TimeUnit::Weeks } else { TimeUnit::Days };
        let tx: Vec<_> = rows.iter().map(|&(c, t, a)| Transaction { customer: c, time_days: t, amount: a }).collect();
        let opts = SummaryOptions { calibration_end_day: end, holdout_end_day: extra.map(|e| end + e), unit };
        // Naive: customer → day → total.
        let mut days: BTreeMap<u8, BTreeMap<i64, f64>> = BTreeMap::new();
        for &(c, t, a) in &rows {
            *days.entry(c).or_default().entry(t.floor() as i64).or_default() += a;
        }
        let mut want = Vec::new();
        for (c, d) in &days {
            let cal: Vec<(i64, f64)> = d.iter().filter(|(day, _)| **day as f64 <= end).map(|(k, v)| (*k, *v)).collect();
            let Some(&(first, _)) = cal.first() else { continue };
            let x = cal.len() - 1;
            let last = cal.last().unwrap().0;
            let spend = if x == 0 { 0.0 } else { cal[1..].iter().map(|v| v.1).sum::<f64>() / x as f64 };
            let hold = opts.holdout_end_day.map(|h| d.keys().filter(|day| **day as f64 > end && **day as f64 <= h).count() as u32);
            want.push((*c, x as u32, (last - first) as f64 / unit.days(), (end - first as f64) / unit.days(), spend, hold));
        }
        match summarize(&tx, &opts) {
            Ok(got) => {
                prop_assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    prop_assert_eq!((g.customer, g.frequency, g.holdout_frequency), (w.0, w.1, w.5));
                    prop_assert!(close(g.recency, w.2, 1e-12) && close(g.age, w.3, 1e-12));
                    prop_assert!(close(g.mean_repeat_spend, w.4, 1e-9), "{} vs {}", g.mean_repeat_spend, w.4);
                }
            }
            Err(e) => {
                prop_assert_eq!(e.code(), "empty_data");
                prop_assert!(want.is_empty());
            }
        }
    }
}
