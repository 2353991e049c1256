//! Pareto/NBD (Schmittlein, Morrison & Colombo 1987, "Counting your customers: who are they and
//! what will they do next?", Management Science 33(1)), with the likelihood in the form of
//! Fader & Hardie (2005), "A note on deriving the Pareto/NBD model and related expressions".
//!
//! While alive, a customer buys as a Poisson process with rate λ ~ Gamma(r, α); their lifetime
//! is exponential with rate μ ~ Gamma(s, β). Per customer:
//!
//! L = Γ(r + x) αʳ βˢ / Γ(r) · { 1 / ((α + T)^(r+x) (β + T)ˢ) + s/(r + s + x) · A₀ },
//!
//! with, for α ≥ β (and the roles of the two swapped, with ₂F₁'s second argument r + x, when
//! α < β),
//!
//! A₀ = ₂F₁(r+s+x, s+1; r+s+x+1; (α−β)/(α+tₓ)) / (α+tₓ)^(r+s+x)
//!    − ₂F₁(r+s+x, s+1; r+s+x+1; (α−β)/(α+T)) / (α+T)^(r+s+x).
//!
//! Everything is computed in log space. The argument of ₂F₁ is |α − β| / (max(α, β) + t) ∈ [0, 1),
//! so the series has only positive terms and is exact (z = 0) when α = β: no special case for
//! α ≈ β is needed.

use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::clv::PurchaseModel;
use crate::data::{Group, Rfm, RfmData};
use crate::fit::{FitOptions, FitReport, check_horizon, check_positive, fit_log_params};
use crate::par::sum_rows;
use crate::special::{ln_gamma, ln_hyp2f1, log_add_exp, log_sub_exp, neg_expm1_over};

/// Pareto/NBD parameters; α and β are in the time unit of the data they were fitted on.
/// Predictions assume parameters that pass [`ParetoNbdParams::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParetoNbdParams {
    /// Shape of the purchase-rate gamma distribution.
    pub r: f64,
    /// Rate of the purchase-rate gamma distribution, per time unit.
    pub alpha: f64,
    /// Shape of the dropout-rate gamma distribution.
    pub s: f64,
    /// Rate of the dropout-rate gamma distribution, per time unit.
    pub beta: f64,
}

/// A fitted Pareto/NBD model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedParetoNbd {
    /// Maximum-likelihood estimates.
    pub params: ParetoNbdParams,
    /// Asymptotic standard errors, when the Hessian at the optimum is positive definite.
    pub std_errors: Option<ParetoNbdParams>,
    /// How the fit went.
    pub report: FitReport,
}

/// Per-frequency constants of the likelihood.
struct GroupTerms {
    /// ln Γ(r+x) − ln Γ(r) + r ln α + s ln β.
    base: f64,
    /// r + x.
    k: f64,
    /// ln(s / (r + s + x)).
    ln_weight: f64,
    /// ₂F₁ arguments a (= c − 1) and b.
    a: f64,
    b: f64,
}

impl ParetoNbdParams {
    fn array(&self) -> [f64; 4] {
        [self.r, self.alpha, self.s, self.beta]
    }

    fn from_array([r, alpha, s, beta]: [f64; 4]) -> Self {
        Self { r, alpha, s, beta }
    }

    /// Checks that every parameter is finite and positive.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] naming the first bad one.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_positive(&["r", "alpha", "s", "beta"], &self.array())
    }

    fn group_terms(&self, x: u32, lg_r: f64) -> GroupTerms {
        let Self { r, alpha, s, beta } = *self;
        let x = f64::from(x);
        let a = r + s + x;
        GroupTerms {
            base: ln_gamma(r + x) - lg_r + r * alpha.ln() + s * beta.ln(),
            k: r + x,
            ln_weight: (s / a).ln(),
            a,
            b: if alpha >= beta { s + 1.0 } else { r + x },
        }
    }

    /// (ln of the "alive at T" term, ln of the "died in (tₓ, T]" term), without `base`.
    fn ln_terms(&self, g: &GroupTerms, tx: f64, t: f64) -> (f64, f64) {
        let Self { alpha, s, beta, .. } = *self;
        let alive = -g.k * (alpha + t).ln() - s * (beta + t).ln();
        let rho = alpha.max(beta);
        let gap = (alpha - beta).abs();
        let l2 = ln_hyp2f1(g.a, g.b, g.a + 1.0, gap / (rho + tx)) - g.a * (rho + tx).ln();
        let l3 = ln_hyp2f1(g.a, g.b, g.a + 1.0, gap / (rho + t)) - g.a * (rho + t).ln();
        (alive, g.ln_weight + log_sub_exp(l2, l3))
    }

    /// Log-likelihood of one customer.
    pub fn log_likelihood(&self, c: &Rfm) -> f64 {
        let g = self.group_terms(c.frequency(), ln_gamma(self.r));
        let (alive, died) = self.ln_terms(&g, c.recency(), c.age());
        g.base + log_add_exp(alive, died)
    }

    /// Log-likelihood of all the data (weighted sum).
    pub fn log_likelihood_data(&self, data: &RfmData) -> f64 {
        self.total_ll(data, 1)
    }

    fn total_ll(&self, data: &RfmData, threads: usize) -> f64 {
        let lg_r = ln_gamma(self.r);
        let rows = |grp: &Group, lo: usize, hi: usize| {
            let g = self.group_terms(grp.x, lg_r);
            let mut sum = 0.0;
            for i in lo..hi {
                let (alive, died) = self.ln_terms(&g, data.recency[i], data.age[i]);
                sum += data.weight[i] * (g.base + log_add_exp(alive, died));
            }
            sum
        };
        sum_rows(&data.groups, data.weight.len(), threads, &rows)
    }

    /// Fits the model by maximum likelihood.
    ///
    /// # Errors
    /// [`ModelError::AllZeroFrequency`] when nobody made a repeat purchase,
    /// [`ModelError::NotConverged`] (unless allowed by the options).
    pub fn fit(data: &RfmData, options: &FitOptions) -> Result<FittedParetoNbd, ModelError> {
        data.require_repeat()?;
        let w = data.total_weight;
        let sub = data.subsample();
        let mut coarse = sub.as_ref().map(|d| {
            move |p: &[f64; 4]| -Self::from_array(*p).total_ll(d, options.threads) / d.total_weight
        });
        let raw = fit_log_params(
            [1.0, data.rate_start(), 1.0, data.rate_start()],
            w,
            options,
            coarse
                .as_mut()
                .map(|c| c as &mut dyn FnMut(&[f64; 4]) -> f64),
            |p| -Self::from_array(*p).total_ll(data, options.threads) / w,
        )?;
        Ok(FittedParetoNbd {
            params: Self::from_array(raw.params),
            std_errors: raw.std_errors.map(Self::from_array),
            report: raw.report,
        })
    }
}

impl PurchaseModel for ParetoNbdParams {
    /// The share of the likelihood from "alive at T": 1 / (1 + s/(r+s+x) · A₀ · (α+T)^(r+x) (β+T)ˢ).
    fn prob_alive(&self, c: &Rfm) -> f64 {
        let g = self.group_terms(c.frequency(), ln_gamma(self.r));
        let (alive, died) = self.ln_terms(&g, c.recency(), c.age());
        1.0 / (1.0 + (died - alive).exp())
    }

    /// E[Y(t) | x, tₓ, T] = (r + x)(β + T) / ((α + T)(s − 1)) · [1 − ((β + T)/(β + T + t))^(s−1)]
    /// · P(alive), evaluated stably at s = 1 (where the bracket over s − 1 becomes
    /// ln((β + T + t)/(β + T))).
    fn expected_purchases(&self, c: &Rfm, t: f64) -> f64 {
        check_horizon(t);
        let Self { r, alpha, s, beta } = *self;
        let big_t = c.age();
        let l = (beta + big_t).ln() - (beta + big_t + t).ln();
        (r + f64::from(c.frequency())) / (alpha + big_t)
            * (beta + big_t)
            * neg_expm1_over(s - 1.0, l)
            * self.prob_alive(c)
    }
}
