//! What BG/NBD and MBG/NBD share: the likelihood, the fit and the predictions that are the same
//! in both, written once over the one thing that tells them apart.
//!
//! In both models a customer buys, while alive, as a Poisson process with rate λ ~ Gamma(r, α),
//! and drops out at each of x′ opportunities with probability p ~ Beta(a, b): BG/NBD after each
//! repeat purchase (x′ = x), MBG/NBD also after the first purchase (x′ = x + 1). Per customer:
//!
//! L = B(a, b + x′)/B(a, b) · Γ(r + x) αʳ / (Γ(r) (α + T)^(r+x))
//!   + [x′ > 0] B(a + 1, b + x′ − 1)/B(a, b) · Γ(r + x) αʳ / (Γ(r) (α + tₓ)^(r+x)).
//!
//! Each model's module keeps its public types, their `PurchaseModel` impl (thin wrappers that
//! document the model's own formulas) and the [`Dropout`] type that says what x′ is and how the
//! model evaluates its expected purchases; [`impl_shared_methods`] writes the other public
//! methods the two models share as thin wrappers over this module.

use crate::ModelError;
use crate::data::{Group, Rfm, RfmData};
use crate::fit::{FitOptions, RawFit, check_horizon, fit_log_params};
use crate::par::sum_rows;
use crate::special::{hyp2f1_scaled_many, ln_gamma, softplus_tail};

/// What tells the models apart: the dropout opportunities x′ of a customer with x repeat
/// purchases, given as the values the formulas need rather than as x′ itself, so that each model
/// keeps its own order of floating-point operations (b + x + 1 and b + (x + 1) may round
/// differently).
pub(crate) trait Dropout {
    /// (b + x′, a + b + x′): the Γ arguments of B(a, b + x′)/B(a, b) that depend on x.
    fn alive_gamma_args(a: f64, b: f64, x: u32) -> (f64, f64);

    /// b + x′ − 1, the denominator of the odds a/(b + x′ − 1) of "dropped out after the last
    /// purchase" against "alive"; `None` when x′ = 0 (the customer cannot have dropped out).
    fn dead_odds_denominator(b: f64, x: u32) -> Option<f64>;

    /// For parameters [r, α, a, b] and x, the ₂F₁ parameters (r+x, b+x′, a+b+x′−1) and the
    /// factor (a + b + x′ − 1)/(a − 1) of E[Y(t)] / P(alive) =
    /// factor · [1 − e^ln_ratio ₂F₁(r+x, b+x′; a+b+x′−1; z)], with z = t/(α + T + t) and
    /// `ln_ratio` = ln ((α + T)/(α + T + t))^(r+x).
    fn expected_purchases_terms(params: [f64; 4], x: f64) -> ([f64; 3], f64);
}

/// factor · [1 − e^ln_ratio · ₂F₁] from the scaled series; the series may be negative when
/// its c is (x = 0 and a + b < 1 in BG/NBD). NaN when the series did not converge.
fn expected_if_alive(factor: f64, ln_ratio: f64, series: Option<(f64, f64)>) -> f64 {
    let Some((scale, sum)) = series else {
        return f64::NAN;
    };
    let bracket = if sum > 0.0 {
        -(ln_ratio + scale + sum.ln()).exp_m1()
    } else {
        1.0 + (ln_ratio + scale + (-sum).ln()).exp()
    };
    factor * bracket
}

/// Implements the parameter type's methods that both models share, as thin wrappers over this
/// module: `array` and `from_array` ([r, α, a, b]), `validate`, `log_likelihood`,
/// `log_likelihood_data`, `fit` (returning the fitted type) and `prob_purchase_within`, with
/// x′ counted by the [`Dropout`] type.
macro_rules! impl_shared_methods {
    ($params:ident, $fitted:ident, $dropout:ty) => {
        impl $params {
            fn array(&self) -> [f64; 4] {
                [self.r, self.alpha, self.a, self.b]
            }

            fn from_array([r, alpha, a, b]: [f64; 4]) -> Self {
                Self { r, alpha, a, b }
            }

            /// Checks that every parameter is finite and positive.
            ///
            /// # Errors
            /// [`ModelError::InvalidParameter`] naming the first bad one.
            ///
            /// [`ModelError::InvalidParameter`]: crate::ModelError::InvalidParameter
            pub fn validate(&self) -> Result<(), $crate::ModelError> {
                $crate::fit::check_positive(&["r", "alpha", "a", "b"], &self.array())
            }

            /// Log-likelihood of one customer.
            pub fn log_likelihood(&self, c: &$crate::Rfm) -> f64 {
                let data =
                    $crate::RfmData::from_rfm(std::slice::from_ref(c)).expect("one checked point");
                $crate::beta_geometric::total_ll::<$dropout>(&self.array(), &data, 1)
            }

            /// Log-likelihood of all the data (weighted sum).
            pub fn log_likelihood_data(&self, data: &$crate::RfmData) -> f64 {
                $crate::beta_geometric::total_ll::<$dropout>(&self.array(), data, 1)
            }

            /// Fits the model by maximum likelihood.
            ///
            /// # Errors
            /// [`ModelError::AllZeroFrequency`] when nobody made a repeat purchase,
            /// [`ModelError::NotConverged`] (unless allowed by the options).
            ///
            /// [`ModelError::AllZeroFrequency`]: crate::ModelError::AllZeroFrequency
            /// [`ModelError::NotConverged`]: crate::ModelError::NotConverged
            pub fn fit(
                data: &$crate::RfmData,
                options: &$crate::FitOptions,
            ) -> Result<$fitted, $crate::ModelError> {
                let raw = $crate::beta_geometric::fit::<$dropout>(data, options)?;
                Ok($fitted {
                    params: Self::from_array(raw.params),
                    std_errors: raw.std_errors.map(Self::from_array),
                    report: raw.report,
                })
            }

            /// Probability that the customer has at least one purchase in the next `t` time
            /// units: P(alive) · (1 − ((α + T)/(α + T + t))^(r+x)).
            ///
            /// # Panics
            /// If `t` is negative or not finite.
            pub fn prob_purchase_within(&self, c: &$crate::Rfm, t: f64) -> f64 {
                $crate::beta_geometric::prob_purchase_within::<$dropout>(self.array(), c, t)
            }
        }
    };
}
pub(crate) use impl_shared_methods;

/// Σ w · ln L over the aggregated rows. Terms that depend only on x are computed once per
/// distinct x, ln(α + T) and ln(α + tₓ) once per distinct value; the loop over rows has one
/// exponential and one logarithm.
pub(crate) fn total_ll<D: Dropout>(
    &[r, alpha, a, b]: &[f64; 4],
    data: &RfmData,
    threads: usize,
) -> f64 {
    let (lg_r, lg_b, lg_ab) = (ln_gamma(r), ln_gamma(b), ln_gamma(a + b));
    let ln_alpha = alpha.ln();
    let ln_a = a.ln();
    let ln_age: Vec<f64> = data.age_values.iter().map(|t| (alpha + t).ln()).collect();
    let ln_rec: Vec<f64> = data
        .recency_values
        .iter()
        .map(|t| (alpha + t).ln())
        .collect();
    let rows = |g: &Group, lo: usize, hi: usize| {
        let x = f64::from(g.x);
        let k = r + x;
        let (b_x, ab_x) = D::alive_gamma_args(a, b, g.x);
        let base =
            ln_gamma(k) - lg_r + r * ln_alpha + lg_ab + ln_gamma(b_x) - lg_b - ln_gamma(ab_x);
        let weights = &data.weight[lo..hi];
        let ages = &data.age_index[lo..hi];
        let mut sum = 0.0;
        match D::dead_odds_denominator(b, g.x) {
            None => {
                for (&t, w) in ages.iter().zip(weights) {
                    sum += w * (-k * ln_age[t as usize]);
                }
            }
            Some(d) => {
                let c = ln_a - d.ln();
                let recencies = &data.recency_index[lo..hi];
                for ((&t, &tx), w) in ages.iter().zip(recencies).zip(weights) {
                    let a3 = -k * ln_age[t as usize];
                    let a4 = c - k * ln_rec[tx as usize];
                    let (hi, lo) = if a3 > a4 { (a3, a4) } else { (a4, a3) };
                    sum += w * (hi + softplus_tail(lo - hi));
                }
            }
        }
        sum + base * weights.iter().sum::<f64>()
    };
    sum_rows(&data.groups, data.weight.len(), threads, &rows)
}

/// Fits a model of the family by maximum likelihood, over [r, α, a, b].
///
/// # Errors
/// [`ModelError::AllZeroFrequency`] when nobody made a repeat purchase,
/// [`ModelError::NotConverged`] (unless allowed by the options).
pub(crate) fn fit<D: Dropout>(
    data: &RfmData,
    options: &FitOptions,
) -> Result<RawFit<4>, ModelError> {
    data.require_repeat()?;
    let w = data.total_weight;
    let sub = data.subsample();
    let mut coarse = sub
        .as_ref()
        .map(|d| move |p: &[f64; 4]| -total_ll::<D>(p, d, options.threads) / d.total_weight);
    fit_log_params(
        [1.0, data.rate_start(), 1.0, 1.0],
        w,
        options,
        coarse
            .as_mut()
            .map(|c| c as &mut dyn FnMut(&[f64; 4]) -> f64),
        |p| -total_ll::<D>(p, data, options.threads) / w,
    )
}

/// P(alive) = 1 / (1 + [x′ > 0] a/(b + x′ − 1) · ((α + T)/(α + tₓ))^(r+x)).
pub(crate) fn prob_alive<D: Dropout>([r, alpha, a, b]: [f64; 4], c: &Rfm) -> f64 {
    let ln_dead_odds = match D::dead_odds_denominator(b, c.frequency()) {
        None => f64::NEG_INFINITY,
        Some(d) => {
            let x = f64::from(c.frequency());
            (a / d).ln() + (r + x) * ((alpha + c.age()).ln() - (alpha + c.recency()).ln())
        }
    };
    1.0 / (1.0 + ln_dead_odds.exp())
}

/// Probability of at least one purchase in the next `t` time units:
/// P(alive) · (1 − ((α + T)/(α + T + t))^(r+x)).
///
/// # Panics
/// If `t` is negative or not finite.
pub(crate) fn prob_purchase_within<D: Dropout>(params: [f64; 4], c: &Rfm, t: f64) -> f64 {
    check_horizon(t);
    let [r, alpha, ..] = params;
    let k = r + f64::from(c.frequency());
    let none_if_alive = (k * ((alpha + c.age()).ln() - (alpha + c.age() + t).ln())).exp();
    prob_alive::<D>(params, c) * (1.0 - none_if_alive)
}

/// E[Y(t) | x, tₓ, T] =
/// (a + b + x′ − 1)/(a − 1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x′; a+b+x′−1; t/(α+T+t))]
/// · P(alive).
///
/// # Panics
/// If `t` is negative or not finite.
pub(crate) fn expected_purchases<D: Dropout>(params: [f64; 4], c: &Rfm, t: f64) -> f64 {
    let mut out = [0.0];
    expected_purchases_many::<D>(params, c, &[t], &mut out);
    out[0]
}

/// [`expected_purchases`] at several horizons `ts` (each ≥ 0) for one customer, the ₂F₁
/// series summed together ([`hyp2f1_scaled_many`]).
pub(crate) fn expected_purchases_many<D: Dropout>(
    params: [f64; 4],
    c: &Rfm,
    ts: &[f64],
    out: &mut [f64],
) {
    let [r, alpha, ..] = params;
    let x = f64::from(c.frequency());
    let big_t = c.age();
    let ([ha, hb, hc], factor) = D::expected_purchases_terms(params, x);
    let zs: Vec<f64> = ts
        .iter()
        .map(|&t| {
            check_horizon(t);
            t / (alpha + big_t + t)
        })
        .collect();
    let mut series = vec![None; ts.len()];
    hyp2f1_scaled_many(ha, hb, hc, &zs, &mut series);
    let alive = prob_alive::<D>(params, c);
    for (i, &t) in ts.iter().enumerate() {
        out[i] = if t == 0.0 {
            0.0
        } else {
            let ln_ratio = (r + x) * ((alpha + big_t).ln() - (alpha + big_t + t).ln());
            expected_if_alive(factor, ln_ratio, series[i]) * alive
        };
    }
}
