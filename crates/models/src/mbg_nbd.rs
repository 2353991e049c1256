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

use crate::beta_geometric::{self as family, Dropout, impl_shared_methods};
use crate::clv::PurchaseModel;
use crate::data::Rfm;
use crate::fit::FitReport;

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

/// MBG/NBD's dropout opportunities: one after every purchase, the first included, x′ = x + 1.
enum EveryPurchaseDropout {}

impl Dropout for EveryPurchaseDropout {
    fn alive_gamma_args(a: f64, b: f64, x: u32) -> (f64, f64) {
        let x = f64::from(x);
        (b + x + 1.0, a + b + x + 1.0)
    }

    fn dead_odds_denominator(b: f64, x: u32) -> Option<f64> {
        Some(b + f64::from(x))
    }

    fn expected_purchases_terms([r, _, a, b]: [f64; 4], x: f64) -> ([f64; 3], f64) {
        ([r + x, b + x + 1.0, a + b + x], (a + b + x) / (a - 1.0))
    }
}

impl_shared_methods!(MbgNbdParams, FittedMbgNbd, EveryPurchaseDropout);

impl PurchaseModel for MbgNbdParams {
    /// 1 / (1 + a/(b + x) · ((α + T)/(α + tₓ))^(r+x)).
    fn prob_alive(&self, c: &Rfm) -> f64 {
        family::prob_alive::<EveryPurchaseDropout>(self.array(), c)
    }

    /// E[Y(t) | x, tₓ, T] =
    /// (a + b + x)/(a − 1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x+1; a+b+x; t/(α+T+t))]
    /// · P(alive).
    fn expected_purchases(&self, c: &Rfm, t: f64) -> f64 {
        family::expected_purchases::<EveryPurchaseDropout>(self.array(), c, t)
    }

    fn expected_purchases_many(&self, c: &Rfm, ts: &[f64], out: &mut [f64]) {
        family::expected_purchases_many::<EveryPurchaseDropout>(self.array(), c, ts, out);
    }
}
