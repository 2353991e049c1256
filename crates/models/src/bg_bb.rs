//! BG/BB: beta-geometric / beta-Bernoulli model of discrete transaction opportunities (Fader,
//! Hardie & Shang 2010, "Customer-base analysis in a discrete-time noncontractual setting",
//! Marketing Science 29(6); the donations example of Fader, Hardie & Berger).
//!
//! In each of n opportunities after the first transaction, an alive customer transacts with
//! probability p ~ Beta(α, β), and before each opportunity they may die with probability
//! θ ~ Beta(γ, δ). A customer with x transactions, the last in opportunity tₓ, observed for n
//! opportunities contributes
//!
//! L = B(α+x, β+n−x)/B(α,β) · B(γ, δ+n)/B(γ,δ)
//!   + Σ_{i=0}^{n−tₓ−1} B(α+x, β+tₓ−x+i)/B(α,β) · B(γ+1, δ+tₓ+i)/B(γ,δ).

use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::fit::{FitOptions, FitReport, check_positive, fit_log_params};
use crate::special::{ln_beta, log_add_exp};

/// One customer's frequency x (transactions in the n opportunities), recency tₓ (the
/// opportunity of the last one; 0 when x = 0) and number of opportunities n, checked:
/// x ≤ tₓ ≤ n, and tₓ = 0 exactly when x = 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Opportunities {
    frequency: u32,
    recency: u32,
    periods: u32,
}

impl Opportunities {
    /// Checks and builds a customer's (x, tₓ, n).
    ///
    /// # Errors
    /// [`ModelError::RecencyExceedsAge`] when tₓ > n, [`ModelError::InvalidValue`] when
    /// x > tₓ or tₓ > 0 with x = 0.
    pub fn new(frequency: u32, recency: u32, periods: u32) -> Result<Self, ModelError> {
        Self::checked(frequency, recency, periods, 0)
    }

    fn checked(
        frequency: u32,
        recency: u32,
        periods: u32,
        index: usize,
    ) -> Result<Self, ModelError> {
        if recency > periods {
            return Err(ModelError::RecencyExceedsAge {
                index,
                recency: f64::from(recency),
                age: f64::from(periods),
            });
        }
        if frequency > recency {
            return Err(ModelError::InvalidValue {
                field: "frequency",
                index,
                value: f64::from(frequency),
                reason: "must not exceed the recency",
            });
        }
        if frequency == 0 && recency != 0 {
            return Err(ModelError::InvalidValue {
                field: "recency",
                index,
                value: f64::from(recency),
                reason: "must be 0 when frequency is 0",
            });
        }
        Ok(Self {
            frequency,
            recency,
            periods,
        })
    }

    /// x.
    pub fn frequency(&self) -> u32 {
        self.frequency
    }
    /// tₓ.
    pub fn recency(&self) -> u32 {
        self.recency
    }
    /// n.
    pub fn periods(&self) -> u32 {
        self.periods
    }
}

/// Aggregated BG/BB input: distinct (x, tₓ, n) patterns with weights (numbers of customers).
#[derive(Debug, Clone, PartialEq)]
pub struct BgBbData {
    rows: Vec<(Opportunities, f64)>,
    total_weight: f64,
}

impl BgBbData {
    /// From `(x, tₓ, n, weight)` patterns; equal patterns are merged.
    ///
    /// # Errors
    /// [`ModelError::EmptyData`], the checks of [`Opportunities::new`], and a weight that is
    /// not finite and positive.
    pub fn from_patterns(patterns: &[(u32, u32, u32, f64)]) -> Result<Self, ModelError> {
        if patterns.is_empty() {
            return Err(ModelError::EmptyData);
        }
        let mut rows: Vec<(Opportunities, f64)> = Vec::with_capacity(patterns.len());
        for (index, &(x, tx, n, w)) in patterns.iter().enumerate() {
            let o = Opportunities::checked(x, tx, n, index)?;
            if !w.is_finite() {
                return Err(ModelError::NonFinite {
                    field: "weight",
                    index,
                });
            }
            if w <= 0.0 {
                return Err(ModelError::InvalidValue {
                    field: "weight",
                    index,
                    value: w,
                    reason: "must be > 0",
                });
            }
            rows.push((o, w));
        }
        rows.sort_by_key(|r| (r.0.periods, r.0.frequency, r.0.recency));
        rows.dedup_by(|b, a| {
            let same = a.0 == b.0;
            if same {
                a.1 += b.1;
            }
            same
        });
        let total_weight = rows.iter().map(|r| r.1).sum();
        Ok(Self { rows, total_weight })
    }

    /// Number of customers (the sum of the weights).
    pub fn customers(&self) -> f64 {
        self.total_weight
    }
}

/// BG/BB parameters.
/// Predictions assume parameters that pass [`BgBbParams::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgBbParams {
    /// First shape of the transaction-probability beta distribution.
    pub alpha: f64,
    /// Second shape of the transaction-probability beta distribution.
    pub beta: f64,
    /// First shape of the dropout-probability beta distribution.
    pub gamma: f64,
    /// Second shape of the dropout-probability beta distribution.
    pub delta: f64,
}

/// A fitted BG/BB model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedBgBb {
    /// Maximum-likelihood estimates.
    pub params: BgBbParams,
    /// Asymptotic standard errors, when the Hessian at the optimum is positive definite.
    pub std_errors: Option<BgBbParams>,
    /// How the fit went.
    pub report: FitReport,
}

/// What the predictions for one customer (which condition on their history) start from: x and
/// n as numbers, the normalising constants ln B(α, β) and ln B(γ, δ), and the customer's
/// log-likelihood ln L.
struct CustomerTerms {
    x: f64,
    n: f64,
    lb_ab: f64,
    lb_gd: f64,
    ll: f64,
}

impl BgBbParams {
    fn array(&self) -> [f64; 4] {
        [self.alpha, self.beta, self.gamma, self.delta]
    }

    fn from_array([alpha, beta, gamma, delta]: [f64; 4]) -> Self {
        Self {
            alpha,
            beta,
            gamma,
            delta,
        }
    }

    /// Checks that every parameter is finite and positive.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] naming the first bad one.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_positive(&["alpha", "beta", "gamma", "delta"], &self.array())
    }

    /// ln B(α, β) and ln B(γ, δ), the normalising constants of every term.
    fn ln_norms(&self) -> (f64, f64) {
        (
            ln_beta(self.alpha, self.beta),
            ln_beta(self.gamma, self.delta),
        )
    }

    fn customer_terms(&self, o: &Opportunities) -> CustomerTerms {
        let (lb_ab, lb_gd) = self.ln_norms();
        CustomerTerms {
            x: f64::from(o.frequency),
            n: f64::from(o.periods),
            lb_ab,
            lb_gd,
            ll: self.ln_terms(o, lb_ab, lb_gd).1,
        }
    }

    /// ln of the "alive through n" term and of the whole likelihood, given ln B(α, β) and
    /// ln B(γ, δ).
    fn ln_terms(&self, o: &Opportunities, lb_ab: f64, lb_gd: f64) -> (f64, f64) {
        let Self {
            alpha,
            beta,
            gamma,
            delta,
        } = *self;
        let (x, tx, n) = (
            f64::from(o.frequency),
            f64::from(o.recency),
            f64::from(o.periods),
        );
        let alive = ln_beta(alpha + x, beta + n - x) - lb_ab + ln_beta(gamma, delta + n) - lb_gd;
        let mut ll = alive;
        for i in 0..o.periods - o.recency {
            let i = f64::from(i);
            ll = log_add_exp(
                ll,
                ln_beta(alpha + x, beta + tx - x + i) - lb_ab
                    + ln_beta(gamma + 1.0, delta + tx + i)
                    - lb_gd,
            );
        }
        (alive, ll)
    }

    /// Log-likelihood of one customer.
    pub fn log_likelihood(&self, o: &Opportunities) -> f64 {
        let (lb_ab, lb_gd) = self.ln_norms();
        self.ln_terms(o, lb_ab, lb_gd).1
    }

    /// Log-likelihood of all the data (weighted sum).
    pub fn log_likelihood_data(&self, data: &BgBbData) -> f64 {
        let (lb_ab, lb_gd) = self.ln_norms();
        data.rows
            .iter()
            .map(|(o, w)| w * self.ln_terms(o, lb_ab, lb_gd).1)
            .sum()
    }

    /// Fits the model by maximum likelihood.
    ///
    /// # Errors
    /// [`ModelError::AllZeroFrequency`] when nobody transacted,
    /// [`ModelError::NotConverged`] (unless allowed by the options).
    pub fn fit(data: &BgBbData, options: &FitOptions) -> Result<FittedBgBb, ModelError> {
        if data.rows.iter().all(|r| r.0.frequency == 0) {
            return Err(ModelError::AllZeroFrequency);
        }
        let w = data.total_weight;
        let raw = fit_log_params([1.0, 1.0, 1.0, 1.0], w, options, None, |p| {
            -Self::from_array(*p).log_likelihood_data(data) / w
        })?;
        Ok(FittedBgBb {
            params: Self::from_array(raw.params),
            std_errors: raw.std_errors.map(Self::from_array),
            report: raw.report,
        })
    }

    /// Probability that the customer is alive at opportunity n + `m` (m = 1: the next one):
    /// B(α+x, β+n−x)/B(α,β) · B(γ, δ+n+m)/B(γ,δ) / L.
    pub fn prob_alive(&self, o: &Opportunities, m: u32) -> f64 {
        let c = self.customer_terms(o);
        let (x, n) = (c.x, c.n);
        (ln_beta(self.alpha + x, self.beta + n - x) - c.lb_ab
            + ln_beta(self.gamma, self.delta + n + f64::from(m))
            - c.lb_gd
            - c.ll)
            .exp()
    }

    /// Expected number of transactions in the next `m` opportunities:
    /// 1/L · B(α+x+1, β+n−x)/B(α,β) · δ/(γ−1) · Γ(γ+δ)/Γ(1+δ)
    /// · [Γ(1+δ+n)/Γ(γ+δ+n) − Γ(1+δ+n+m)/Γ(γ+δ+n+m)].
    ///
    /// Written as a finite sum over the m opportunities, Σⱼ P(alive at n+j) · E[p | data], so it
    /// holds for every γ (including γ = 1, where the closed form has a removable singularity).
    pub fn expected_transactions(&self, o: &Opportunities, m: u32) -> f64 {
        let c = self.customer_terms(o);
        let (x, n) = (c.x, c.n);
        // P(alive at n + j and transact) = B(α+x+1, β+n−x)/B(α,β) · B(γ, δ+n+j)/B(γ,δ) / L.
        let head = ln_beta(self.alpha + x + 1.0, self.beta + n - x) - c.lb_ab - c.lb_gd - c.ll;
        (1..=m)
            .map(|j| (head + ln_beta(self.gamma, self.delta + n + f64::from(j))).exp())
            .sum()
    }
}
