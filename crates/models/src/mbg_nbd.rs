//! MBG/NBD: modified BG/NBD (Batislam, Denizel & Filiztekin 2007, "Empirical validation and
//! comparison of models for customer base analysis", International Journal of Research in
//! Marketing 24(3)).
//!
//! As BG/NBD, except that a customer may also drop out right after the first purchase, so a
//! customer with x = 0 can be dead too. Per customer:
//!
//! L = B(a, b + x + 1)/B(a, b) · Γ(r + x) αʳ / (Γ(r) (α + T)^(r+x))
//!   + B(a + 1, b + x)/B(a, b) · Γ(r + x) αʳ / (Γ(r) (α + tₓ)^(r+x)).

use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::clv::PurchaseModel;
use crate::data::{Group, Rfm, RfmData};
use crate::fit::{FitOptions, FitReport, check_horizon, check_positive, fit_log_params};
use crate::par::sum_rows;
use crate::special::{ln_gamma, ln_hyp2f1, softplus_tail};

/// MBG/NBD parameters; α is in the time unit of the data it was fitted on.
/// Predictions assume parameters that pass [`MbgNbdParams::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MbgNbdParams {
    /// Shape of the purchase-rate gamma distribution.
    pub r: f64,
    /// Rate of the purchase-rate gamma distribution, per time unit.
    pub alpha: f64,
    /// First shape of the dropout-probability beta distribution.
    pub a: f64,
    /// Second shape of the dropout-probability beta distribution.
    pub b: f64,
}

/// A fitted MBG/NBD model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedMbgNbd {
    /// Maximum-likelihood estimates.
    pub params: MbgNbdParams,
    /// Asymptotic standard errors, when the Hessian at the optimum is positive definite.
    pub std_errors: Option<MbgNbdParams>,
    /// How the fit went.
    pub report: FitReport,
}

impl MbgNbdParams {
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

    /// Σ w · ln L over the aggregated rows (see the BG/NBD one for the layout).
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
            let base = ln_gamma(k) - lg_r + r * ln_alpha + lg_ab + ln_gamma(b + x + 1.0)
                - lg_b
                - ln_gamma(a + b + x + 1.0);
            let c = ln_a - (b + x).ln();
            let weights = &data.weight[lo..hi];
            let ages = &data.age_index[lo..hi];
            let recencies = &data.recency_index[lo..hi];
            let mut sum = 0.0;
            for ((&t, &tx), w) in ages.iter().zip(recencies).zip(weights) {
                let a3 = -k * ln_age[t as usize];
                let a4 = c - k * ln_rec[tx as usize];
                let (hi, lo) = if a3 > a4 { (a3, a4) } else { (a4, a3) };
                sum += w * (hi + softplus_tail(lo - hi));
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
    pub fn fit(data: &RfmData, options: &FitOptions) -> Result<FittedMbgNbd, ModelError> {
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
        Ok(FittedMbgNbd {
            params: Self::from_array(raw.params),
            std_errors: raw.std_errors.map(Self::from_array),
            report: raw.report,
        })
    }

    /// Probability of at least one purchase in the next `t` time units:
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

impl PurchaseModel for MbgNbdParams {
    /// 1 / (1 + a/(b + x) · ((α + T)/(α + tₓ))^(r+x)).
    fn prob_alive(&self, c: &Rfm) -> f64 {
        let x = f64::from(c.frequency());
        let ln_odds = (self.a / (self.b + x)).ln()
            + (self.r + x) * ((self.alpha + c.age()).ln() - (self.alpha + c.recency()).ln());
        1.0 / (1.0 + ln_odds.exp())
    }

    /// E[Y(t) | x, tₓ, T] =
    /// (a + b + x)/(a − 1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x+1; a+b+x; t/(α+T+t))]
    /// · P(alive).
    fn expected_purchases(&self, c: &Rfm, t: f64) -> f64 {
        check_horizon(t);
        if t == 0.0 {
            return 0.0;
        }
        let Self { r, alpha, a, b } = *self;
        let x = f64::from(c.frequency());
        let big_t = c.age();
        let z = t / (alpha + big_t + t);
        let ln_f = ln_hyp2f1(r + x, b + x + 1.0, a + b + x, z);
        let ln_ratio = (r + x) * ((alpha + big_t).ln() - (alpha + big_t + t).ln());
        let bracket = -(ln_ratio + ln_f).exp_m1();
        (a + b + x) / (a - 1.0) * bracket * self.prob_alive(c)
    }
}
