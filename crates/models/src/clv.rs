//! Customer lifetime value: expected spend per purchase × discounted expected purchases,
//! summed over monthly steps.
//!
//! Units: a month is 30.4375 days (365.25 / 12), i.e. about 4.348 weeks
//! ([`crate::summary::TimeUnit::month`]). The horizon is a number of such steps; the expected
//! purchases in step i are E[Y(i·m)] − E[Y((i−1)·m)] with m the step length in the purchase
//! model's time unit, and they are discounted by (1 + d)^i with d the per-step rate.

use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::data::Rfm;
use crate::summary::TimeUnit;

/// Days in a month: 365.25 / 12.
pub const MONTH_IN_DAYS: f64 = 30.4375;
/// Weeks in a month: 30.4375 / 7 ≈ 4.348.
pub const MONTH_IN_WEEKS: f64 = MONTH_IN_DAYS / 7.0;

/// A model of purchase counts conditional on a customer's history (x, tₓ, T), in the time unit
/// of the data the model was fitted on.
pub trait PurchaseModel {
    /// Probability that the customer is still alive (has not dropped out) at the end of the
    /// observation period T.
    fn prob_alive(&self, c: &Rfm) -> f64;

    /// Expected number of purchases in the next `t` time units (after T).
    ///
    /// # Panics
    /// If `t` is negative or not finite.
    fn expected_purchases(&self, c: &Rfm, t: f64) -> f64;

    /// [`PurchaseModel::expected_purchases`] at each of `ts` into `out` (a model may share
    /// work between the horizons).
    fn expected_purchases_many(&self, c: &Rfm, ts: &[f64], out: &mut [f64]) {
        for (o, &t) in out.iter_mut().zip(ts) {
            *o = self.expected_purchases(c, t);
        }
    }
}

/// The discount rate of future cash flows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Discount {
    /// An annual rate (0.10 = 10 % a year), converted to the equivalent monthly rate
    /// (1 + rate)^(1/12) − 1.
    Annual(f64),
    /// A rate per step (per month for the usual horizons) applied as is.
    PerStep(f64),
}

impl Discount {
    /// The discount rate per step.
    fn per_step(self) -> f64 {
        match self {
            Self::Annual(r) => (1.0 + r).powf(1.0 / 12.0) - 1.0,
            Self::PerStep(r) => r,
        }
    }
}

/// How far ahead, in how many steps, and how each step's cash flow is discounted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClvHorizon {
    steps: u32,
    step_length: f64,
    discount: Discount,
}

impl ClvHorizon {
    /// `months` monthly steps of 30.4375 days measured in `unit`.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] for a discount rate that is not finite or ≤ −1.
    pub fn months(months: u32, unit: TimeUnit, discount: Discount) -> Result<Self, ModelError> {
        Self::steps(months, unit.month(), discount)
    }

    /// `steps` steps of `step_length` model time units each (for example 4.345 weeks to
    /// compare with tools that use that month).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] for a step length that is not finite and positive or a
    /// discount rate that is not finite or ≤ −1.
    pub fn steps(steps: u32, step_length: f64, discount: Discount) -> Result<Self, ModelError> {
        if !(step_length.is_finite() && step_length > 0.0) {
            return Err(ModelError::InvalidParameter {
                name: "step_length",
                value: step_length,
                reason: "must be finite and > 0",
            });
        }
        let (Discount::Annual(rate) | Discount::PerStep(rate)) = discount;
        if !(rate.is_finite() && rate > -1.0) {
            return Err(ModelError::InvalidParameter {
                name: "discount",
                value: rate,
                reason: "must be finite and > -1",
            });
        }
        Ok(Self {
            steps,
            step_length,
            discount,
        })
    }

    /// Number of steps.
    pub fn step_count(&self) -> u32 {
        self.steps
    }

    /// Length of one step in model time units.
    pub fn step_length(&self) -> f64 {
        self.step_length
    }
}

/// Discounted expected purchases over the horizon:
/// Σᵢ (E[Y(i·m)] − E[Y((i−1)·m)]) / (1 + d)^i for i = 1..=steps.
pub fn discounted_purchases<M: PurchaseModel + ?Sized>(
    model: &M,
    c: &Rfm,
    horizon: &ClvHorizon,
) -> f64 {
    let d = horizon.discount.per_step();
    let ts: Vec<f64> = (1..=horizon.steps)
        .map(|i| f64::from(i) * horizon.step_length)
        .collect();
    let mut cumulative = vec![0.0; ts.len()];
    model.expected_purchases_many(c, &ts, &mut cumulative);
    let mut previous = 0.0;
    let mut factor = 1.0;
    let mut total = 0.0;
    for cumulative in cumulative {
        factor /= 1.0 + d;
        total += (cumulative - previous) * factor;
        previous = cumulative;
    }
    total
}

/// Customer lifetime value over the horizon: `expected_spend` (per purchase, e.g. from
/// [`crate::gamma_gamma::GammaGammaParams::expected_spend`]) × [`discounted_purchases`].
pub fn customer_lifetime_value<M: PurchaseModel + ?Sized>(
    model: &M,
    c: &Rfm,
    expected_spend: f64,
    horizon: &ClvHorizon,
) -> f64 {
    expected_spend * discounted_purchases(model, c, horizon)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A customer who buys exactly once per unit of time and never leaves.
    struct Steady;
    impl PurchaseModel for Steady {
        fn prob_alive(&self, _: &Rfm) -> f64 {
            1.0
        }
        fn expected_purchases(&self, _: &Rfm, t: f64) -> f64 {
            t
        }
    }

    #[test]
    fn annuity() {
        let c = Rfm::new(0, 0.0, 1.0).unwrap();
        let h = ClvHorizon::steps(12, 1.0, Discount::PerStep(0.01)).unwrap();
        let want: f64 = (1..=12).map(|i| 1.0 / 1.01f64.powi(i)).sum();
        assert!((customer_lifetime_value(&Steady, &c, 2.0, &h) - 2.0 * want).abs() < 1e-12);
        let h = ClvHorizon::months(12, TimeUnit::Days, Discount::Annual(0.0)).unwrap();
        assert!((discounted_purchases(&Steady, &c, &h) - 365.25).abs() < 1e-9);
        assert!((TimeUnit::Weeks.month() - 4.348).abs() < 1e-3);
        assert!(ClvHorizon::steps(1, 0.0, Discount::Annual(0.1)).is_err());
        assert!(ClvHorizon::steps(1, 1.0, Discount::Annual(-1.0)).is_err());
    }
}
