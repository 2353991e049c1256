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

use crate::beta_geometric::{self as family, Dropout, impl_shared_methods};
use crate::clv::PurchaseModel;
use crate::data::Rfm;
use crate::fit::FitReport;

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

/// BG/NBD's dropout opportunities: one after each repeat purchase, x′ = x.
enum RepeatDropout {}

impl Dropout for RepeatDropout {
    fn alive_gamma_args(a: f64, b: f64, x: u32) -> (f64, f64) {
        let x = f64::from(x);
        (b + x, a + b + x)
    }

    fn dead_odds_denominator(b: f64, x: u32) -> Option<f64> {
        (x > 0).then(|| b + f64::from(x) - 1.0)
    }

    fn expected_purchases_terms([r, _, a, b]: [f64; 4], x: f64) -> ([f64; 3], f64) {
        // c = a + b + x − 1 is negative when x = 0 and a + b < 1: then ₂F₁ may be negative.
        (
            [r + x, b + x, a + b + x - 1.0],
            (a + b + x - 1.0) / (a - 1.0),
        )
    }
}

impl_shared_methods!(BgNbdParams, FittedBgNbd, RepeatDropout);

impl PurchaseModel for BgNbdParams {
    /// 1 / (1 + [x > 0] a/(b + x − 1) · ((α + T)/(α + tₓ))^(r+x)).
    fn prob_alive(&self, c: &Rfm) -> f64 {
        family::prob_alive::<RepeatDropout>(self.array(), c)
    }

    /// E[Y(t) | x, tₓ, T] =
    /// (a + b + x − 1)/(a − 1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))]
    /// · P(alive).
    ///
    /// NaN only when a + b + x − 1 is exactly 0 or a negative integer (a pole of ₂F₁).
    fn expected_purchases(&self, c: &Rfm, t: f64) -> f64 {
        family::expected_purchases::<RepeatDropout>(self.array(), c, t)
    }

    fn expected_purchases_many(&self, c: &Rfm, ts: &[f64], out: &mut [f64]) {
        family::expected_purchases_many::<RepeatDropout>(self.array(), c, ts, out);
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
