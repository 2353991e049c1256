//! What every fit shares: options, the report, and the driver that minimises a model's mean
//! negative log-likelihood over log-parameters and turns the curvature at the optimum into
//! standard errors.

use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::optimize::{CoarseObjective, inverse_diagonal, minimize};

/// How hard to try, and with how many threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitOptions {
    /// Largest number of Nelder–Mead iterations (per run; the simplex is restarted once); it
    /// also bounds the Newton iterations that polish the optimum (at most 50 of those).
    pub max_iterations: usize,
    /// Convergence threshold on the largest absolute gradient component of the mean negative
    /// log-likelihood per customer, with respect to the log-parameters.
    pub tolerance: f64,
    /// Return a fit that did not converge (with `converged = false`) instead of
    /// [`ModelError::NotConverged`].
    pub allow_unconverged: bool,
    /// Threads that evaluate the likelihood (default 1: the caller's thread only; the caller
    /// decides whether a fit may use more cores). The result does not depend on it: the data
    /// are cut into the same chunks whatever the thread count.
    pub threads: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            max_iterations: 5000,
            tolerance: 1e-7,
            allow_unconverged: false,
            threads: 1,
        }
    }
}

/// How a fit went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Maximised log-likelihood of the whole data (summed over customers, with weights).
    pub log_likelihood: f64,
    /// Number of customers (sum of weights) fitted.
    pub customers: f64,
    /// Optimiser iterations (Nelder–Mead and Newton).
    pub iterations: usize,
    /// Likelihood evaluations.
    pub evaluations: usize,
    /// Largest absolute gradient component at the optimum (per customer, log-parameters).
    pub gradient_norm: f64,
    /// Gradient below the tolerance and a positive definite Hessian.
    pub converged: bool,
}

/// Result of [`fit_log_params`]: parameters, their standard errors and the report.
pub(crate) struct RawFit<const N: usize> {
    pub params: [f64; N],
    pub std_errors: Option<[f64; N]>,
    pub report: FitReport,
}

/// Minimises `mean_nll` (the negative log-likelihood divided by `total_weight`, a function of
/// the natural parameters) over log-parameters from `start`. `coarse`, when given, is the mean
/// negative log-likelihood of a subsample, used only to guide the initial simplex.
pub(crate) fn fit_log_params<const N: usize>(
    start: [f64; N],
    total_weight: f64,
    options: &FitOptions,
    coarse: Option<CoarseObjective<'_, N>>,
    mut mean_nll: impl FnMut(&[f64; N]) -> f64,
) -> Result<RawFit<N>, ModelError> {
    if !(options.tolerance > 0.0 && options.tolerance.is_finite()) {
        return Err(ModelError::InvalidParameter {
            name: "tolerance",
            value: options.tolerance,
            reason: "must be > 0",
        });
    }
    let u0 = start.map(f64::ln);
    let has_coarse = coarse.is_some();
    let mut coarse = coarse;
    let mut coarse_in_logs = |u: &[f64; N]| match coarse.as_mut() {
        Some(c) if u.iter().all(|v| v.abs() <= 50.0) => c(&u.map(f64::exp)),
        _ => f64::INFINITY,
    };
    let m = minimize(
        |u: &[f64; N]| {
            if u.iter().any(|v| v.abs() > 50.0) {
                return f64::INFINITY;
            }
            mean_nll(&u.map(f64::exp))
        },
        if has_coarse {
            Some(&mut coarse_in_logs as &mut dyn FnMut(&[f64; N]) -> f64)
        } else {
            None
        },
        u0,
        options.max_iterations,
        options.tolerance,
    );
    let params = m.x.map(f64::exp);
    // Cov(ln θ) = (W · H)⁻¹ with H the Hessian of the mean NLL in log-parameters; the delta
    // method gives SE(θᵢ) = θᵢ · SE(ln θᵢ).
    let std_errors = m.hessian.as_ref().and_then(inverse_diagonal).map(|d| {
        let mut se = [0.0; N];
        for i in 0..N {
            se[i] = params[i] * (d[i] / total_weight).sqrt();
        }
        se
    });
    let report = FitReport {
        log_likelihood: -m.f * total_weight,
        customers: total_weight,
        iterations: m.iterations,
        evaluations: m.evaluations,
        gradient_norm: m.gradient_norm,
        converged: m.converged,
    };
    if !report.converged && !options.allow_unconverged {
        return Err(ModelError::NotConverged {
            iterations: report.iterations,
            gradient_norm: report.gradient_norm,
        });
    }
    Ok(RawFit {
        params,
        std_errors,
        report,
    })
}

/// Fails unless every value is finite and positive.
pub(crate) fn check_positive(names: &[&'static str], values: &[f64]) -> Result<(), ModelError> {
    for (&name, &value) in names.iter().zip(values) {
        if !(value.is_finite() && value > 0.0) {
            return Err(ModelError::InvalidParameter {
                name,
                value,
                reason: "must be finite and > 0",
            });
        }
    }
    Ok(())
}

/// Panics unless `t` is a finite non-negative horizon (documented on every prediction).
pub(crate) fn check_horizon(t: f64) {
    assert!(
        t.is_finite() && t >= 0.0,
        "prediction horizon must be finite and >= 0, got {t}"
    );
}
