//! Gamma-Gamma model of spend per purchase (Fader, Hardie & Lee 2005, "RFM and CLV: using
//! iso-value curves for customer base analysis", Journal of Marketing Research 42(4); and
//! Fader & Hardie 2013, "The Gamma-Gamma model of monetary value").
//!
//! A customer's purchase amounts are Gamma(p, ν) with ν ~ Gamma(q, γ) across customers, and
//! spend is independent of the purchase process. Fitted on repeat buyers only: a customer with
//! x repeat purchases of mean m̄ contributes
//!
//! L = Γ(px + q) / (Γ(px) Γ(q)) · γ^q · m̄^(px−1) · x^(px) / (γ + m̄x)^(px+q).

use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::data::{Group, SpendData};
use crate::fit::{FitOptions, FitReport, check_positive, fit_log_params};
use crate::par::sum_rows;
use crate::special::ln_gamma;

/// Gamma-Gamma parameters; γ is in the currency of the data it was fitted on. Predictions
/// assume parameters that pass [`GammaGammaParams::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaParams {
    /// Shape of the per-purchase spend distribution.
    pub p: f64,
    /// Shape of the distribution of the spend rate ν across customers.
    pub q: f64,
    /// Rate of the distribution of ν across customers (currency units).
    pub gamma: f64,
}

/// A fitted Gamma-Gamma model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedGammaGamma {
    /// Maximum-likelihood estimates.
    pub params: GammaGammaParams,
    /// Asymptotic standard errors, when the Hessian at the optimum is positive definite.
    pub std_errors: Option<GammaGammaParams>,
    /// How the fit went.
    pub report: FitReport,
}

impl GammaGammaParams {
    fn array(&self) -> [f64; 3] {
        [self.p, self.q, self.gamma]
    }

    fn from_array([p, q, gamma]: [f64; 3]) -> Self {
        Self { p, q, gamma }
    }

    /// Checks that every parameter is finite and positive.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] naming the first bad one.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_positive(&["p", "q", "gamma"], &self.array())
    }

    /// Log-likelihood of one repeat buyer with `frequency` purchases of mean `mean_spend`.
    ///
    /// # Errors
    /// [`ModelError::NoRepeatBuyers`] for frequency 0, and the checks of
    /// [`SpendData::from_patterns`] on the mean spend.
    pub fn log_likelihood(&self, frequency: u32, mean_spend: f64) -> Result<f64, ModelError> {
        let data = SpendData::from_patterns(&[(frequency, mean_spend, 1.0)])?;
        Ok(Self::total_ll(&self.array(), &data, 1))
    }

    /// Log-likelihood of all the data (weighted sum).
    pub fn log_likelihood_data(&self, data: &SpendData) -> f64 {
        Self::total_ll(&self.array(), data, 1)
    }

    /// Σ w · ln L. With s = m̄x and ℓ = ln(γ + s), a row's terms after the per-x constants are
    /// −px (ℓ − ln s) − ln m̄ − q (ℓ − ln γ): one logarithm per row (ln s and ln m̄ are stored).
    fn total_ll(&[p, q, gamma]: &[f64; 3], data: &SpendData, threads: usize) -> f64 {
        let lg_q = ln_gamma(q);
        let ln_gamma_rate = gamma.ln();
        let rows = |g: &Group, lo: usize, hi: usize| {
            let px = p * f64::from(g.x);
            let base = ln_gamma(px + q) - ln_gamma(px) - lg_q;
            let mut sum = 0.0;
            let mut weights = 0.0;
            for i in lo..hi {
                let w = data.weight[i];
                let l = (gamma + data.total[i]).ln();
                sum +=
                    w * (-px * (l - data.ln_total[i]) - data.ln_mean[i] - q * (l - ln_gamma_rate));
                weights += w;
            }
            sum + base * weights
        };
        sum_rows(&data.groups, data.weight.len(), threads, &rows)
    }

    /// Fits the model by maximum likelihood.
    ///
    /// # Errors
    /// [`ModelError::NotConverged`] (unless allowed by the options). The data type already
    /// guarantees at least one repeat buyer.
    pub fn fit(data: &SpendData, options: &FitOptions) -> Result<FittedGammaGamma, ModelError> {
        let w = data.total_weight;
        let sub = data.subsample();
        let mut coarse = sub
            .as_ref()
            .map(|d| move |p: &[f64; 3]| -Self::total_ll(p, d, options.threads) / d.total_weight);
        let raw = fit_log_params(
            [1.0, 1.0, 1.0],
            w,
            options,
            coarse
                .as_mut()
                .map(|c| c as &mut dyn FnMut(&[f64; 3]) -> f64),
            |p| -Self::total_ll(p, data, options.threads) / w,
        )?;
        Ok(FittedGammaGamma {
            params: Self::from_array(raw.params),
            std_errors: raw.std_errors.map(Self::from_array),
            report: raw.report,
        })
    }

    /// Mean spend per purchase in the population, E[M] = pγ/(q − 1); `None` when q ≤ 1 (the
    /// mean is infinite).
    pub fn population_mean_spend(&self) -> Option<f64> {
        (self.q > 1.0).then(|| self.p * self.gamma / (self.q - 1.0))
    }

    /// Expected spend per purchase of a customer with `frequency` repeat purchases of mean
    /// `mean_spend`: (γ + m̄x) p / (px + q − 1), a weighted average of the population mean and
    /// the customer's own mean. A customer with x = 0 gets the population mean (`mean_spend`
    /// is then ignored). `None` when q ≤ 1 and x = 0 or px + q ≤ 1.
    pub fn expected_spend(&self, frequency: u32, mean_spend: f64) -> Option<f64> {
        let x = f64::from(frequency);
        if frequency == 0 {
            return self.population_mean_spend();
        }
        let den = self.p * x + self.q - 1.0;
        (den > 0.0).then(|| (self.gamma + mean_spend * x) * self.p / den)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_spend_shrinks_towards_the_population_mean() {
        let gg = GammaGammaParams {
            p: 6.25,
            q: 3.74,
            gamma: 15.44,
        };
        let population = gg.population_mean_spend().unwrap();
        assert!((population - 6.25 * 15.44 / 2.74).abs() < 1e-12);
        assert_eq!(gg.expected_spend(0, 123.0), Some(population));
        // A weighted average of the population mean and the customer's mean, with the
        // customer's weight px / (px + q − 1) growing with x.
        let one = gg.expected_spend(1, 100.0).unwrap();
        let many = gg.expected_spend(50, 100.0).unwrap();
        assert!(population < one && one < many && many < 100.0);
        let w = 6.25 / (6.25 + 2.74);
        assert!((one - ((1.0 - w) * population + w * 100.0)).abs() < 1e-9);
        assert_eq!(
            GammaGammaParams { q: 0.5, ..gg }.expected_spend(0, 1.0),
            None
        );
        assert_eq!(
            gg.log_likelihood(0, 1.0).unwrap_err().code(),
            "no_repeat_buyers"
        );
    }
}
