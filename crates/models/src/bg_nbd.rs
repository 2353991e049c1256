//! BG/NBD: beta-geometric / negative binomial distribution model (Fader, Hardie & Lee 2005,
//! "Counting your customers the easy way: an alternative to the Pareto/NBD model",
//! Marketing Science 24(2)).
//!
//! While alive, a customer buys as a Poisson process with rate λ ~ Gamma(r, α) (α a rate, in
//! the data's time unit); after each purchase they drop out with probability p ~ Beta(a, b).
//! Per customer with x repeat purchases, last at tₓ, observed for T:
//!
//! L = B(a, b + x)/B(a, b) · Γ(r + x) αʳ / (Γ(r) (α + T)^(r+x))
//!   + [x > 0] B(a + 1, b + x − 1)/B(a, b) · Γ(r + x) αʳ / (Γ(r) (α + tₓ)^(r+x)).

use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::clv::PurchaseModel;
use crate::data::{Group, Rfm, RfmData};
use crate::fit::{FitOptions, FitReport, check_horizon, check_positive, fit_log_params};
use crate::par::sum_rows;
use crate::special::{hyp2f1_scaled, ln_gamma, softplus_tail};

/// BG/NBD parameters; α is in the time unit of the data it was fitted on.
/// Predictions assume parameters that pass [`BgNbdParams::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdParams {
    /// Shape of the purchase-rate gamma distribution.
    pub r: f64,
    /// Rate (scale⁻¹) of the purchase-rate gamma distribution, per time unit.
    pub alpha: f64,
    /// First shape of the dropout-probability beta distribution.
    pub a: f64,
    /// Second shape of the dropout-probability beta distribution.
    pub b: f64,
}

/// A fitted BG/NBD model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedBgNbd {
    /// Maximum-likelihood estimates.
    pub params: BgNbdParams,
    /// Asymptotic standard errors (inverse of the observed information), when the Hessian at
    /// the optimum is positive definite.
    pub std_errors: Option<BgNbdParams>,
    /// How the fit went.
    pub report: FitReport,
}

impl BgNbdParams {
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
    pub fn validate(&self) -> Result<(), ModelError> {
        check_positive(&["r", "alpha", "a", "b"], &self.array())
    }

    /// Log-likelihood of one customer.
    pub fn log_likelihood(&self, c: &Rfm) -> f64 {
        let data = RfmData::from_rfm(std::slice::from_ref(c)).expect("one checked point");
        Self::total_ll(&self.array(), &data, 1)
    }

    /// Log-likelihood of all the data (weighted sum).
    pub fn log_likelihood_data(&self, data: &RfmData) -> f64 {
        Self::total_ll(&self.array(), data, 1)
    }

    /// Σ w · ln L over the aggregated rows. Terms that depend only on x are computed once per
    /// distinct x, ln(α + T) and ln(α + tₓ) once per distinct value; the loop over rows has
    /// one exponential and one logarithm.
    fn total_ll(&[r, alpha, a, b]: &[f64; 4], data: &RfmData, threads: usize) -> f64 {
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
            let base = ln_gamma(k) - lg_r + r * ln_alpha + lg_ab + ln_gamma(b + x)
                - lg_b
                - ln_gamma(a + b + x);
            let weights = &data.weight[lo..hi];
            let ages = &data.age_index[lo..hi];
            let mut sum = 0.0;
            if g.x == 0 {
                for (&t, w) in ages.iter().zip(weights) {
                    sum += w * (-k * ln_age[t as usize]);
                }
            } else {
                let c = ln_a - (b + x - 1.0).ln();
                let recencies = &data.recency_index[lo..hi];
                for ((&t, &tx), w) in ages.iter().zip(recencies).zip(weights) {
                    let a3 = -k * ln_age[t as usize];
                    let a4 = c - k * ln_rec[tx as usize];
                    let (hi, lo) = if a3 > a4 { (a3, a4) } else { (a4, a3) };
                    sum += w * (hi + softplus_tail(lo - hi));
                }
            }
            sum + base * weights.iter().sum::<f64>()
        };
        sum_rows(&data.groups, data.weight.len(), threads, &rows)
    }

    /// Fits the model by maximum likelihood.
    ///
    /// # Errors
    /// [`ModelError::AllZeroFrequency`] when nobody made a repeat purchase,
    /// [`ModelError::NotConverged`] (unless allowed by the options).
    pub fn fit(data: &RfmData, options: &FitOptions) -> Result<FittedBgNbd, ModelError> {
        data.require_repeat()?;
        let w = data.total_weight;
        let sub = data.subsample();
        let mut coarse = sub
            .as_ref()
            .map(|d| move |p: &[f64; 4]| -Self::total_ll(p, d, options.threads) / d.total_weight);
        let raw = fit_log_params(
            [1.0, data.rate_start(), 1.0, 1.0],
            w,
            options,
            coarse
                .as_mut()
                .map(|c| c as &mut dyn FnMut(&[f64; 4]) -> f64),
            |p| -Self::total_ll(p, data, options.threads) / w,
        )?;
        Ok(FittedBgNbd {
            params: Self::from_array(raw.params),
            std_errors: raw.std_errors.map(Self::from_array),
            report: raw.report,
        })
    }

    /// ln of the odds term a/(b + x − 1) · ((α + T)/(α + tₓ))^(r+x) that separates "dropped
    /// out after the last purchase" from "alive" (−∞ when x = 0: such a customer is alive).
    fn ln_dead_odds(&self, c: &Rfm) -> f64 {
        let x = f64::from(c.frequency());
        if c.frequency() == 0 {
            return f64::NEG_INFINITY;
        }
        (self.a / (self.b + x - 1.0)).ln()
            + (self.r + x) * ((self.alpha + c.age()).ln() - (self.alpha + c.recency()).ln())
    }

    /// Probability that the customer has at least one purchase in the next `t` time units:
    /// P(alive) · (1 − ((α + T)/(α + T + t))^(r+x)).
    ///
    /// # Panics
    /// If `t` is negative or not finite.
    pub fn prob_purchase_within(&self, c: &Rfm, t: f64) -> f64 {
        check_horizon(t);
        let k = self.r + f64::from(c.frequency());
        let none_if_alive =
            (k * ((self.alpha + c.age()).ln() - (self.alpha + c.age() + t).ln())).exp();
        self.prob_alive(c) * (1.0 - none_if_alive)
    }
}

impl PurchaseModel for BgNbdParams {
    /// 1 / (1 + [x > 0] a/(b + x − 1) · ((α + T)/(α + tₓ))^(r+x)).
    fn prob_alive(&self, c: &Rfm) -> f64 {
        1.0 / (1.0 + self.ln_dead_odds(c).exp())
    }

    /// E[Y(t) | x, tₓ, T] =
    /// (a + b + x − 1)/(a − 1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))]
    /// · P(alive).
    ///
    /// NaN only when a + b + x − 1 is exactly 0 or a negative integer (a pole of ₂F₁).
    fn expected_purchases(&self, c: &Rfm, t: f64) -> f64 {
        check_horizon(t);
        if t == 0.0 {
            return 0.0;
        }
        let Self { r, alpha, a, b } = *self;
        let x = f64::from(c.frequency());
        let big_t = c.age();
        let z = t / (alpha + big_t + t);
        let ln_ratio = (r + x) * ((alpha + big_t).ln() - (alpha + big_t + t).ln());
        // c = a + b + x − 1 is negative when x = 0 and a + b < 1: then ₂F₁ may be negative.
        let Some((scale, sum)) = hyp2f1_scaled(r + x, b + x, a + b + x - 1.0, z) else {
            return f64::NAN;
        };
        let bracket = if sum > 0.0 {
            -(ln_ratio + scale + sum.ln()).exp_m1()
        } else {
            1.0 + (ln_ratio + scale + (-sum).ln()).exp()
        };
        (a + b + x - 1.0) / (a - 1.0) * bracket * self.prob_alive(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_parameters_of_known_data() {
        let params = BgNbdParams {
            r: 0.243,
            alpha: 4.414,
            a: 0.793,
            b: 2.426,
        };
        let c = Rfm::new(2, 30.43, 38.86).unwrap();
        let p = params.prob_alive(&c);
        assert!(p > 0.0 && p < 1.0);
        let zero = Rfm::new(0, 0.0, 38.86).unwrap();
        assert_eq!(params.prob_alive(&zero), 1.0);
        assert!(params.expected_purchases(&c, 10.0) > 0.0);
    }
}
