//! A small unconstrained minimiser for the fits: Nelder–Mead on the log-parameters, then Newton
//! steps with a numerical gradient and Hessian to polish the optimum, plus the linear algebra
//! (Cholesky) the Newton steps and the standard errors need.
//!
//! Every function here is deterministic: the same objective and start give the same result.

#![allow(
    clippy::needless_range_loop,
    reason = "small dense linear algebra reads best with indices"
)]

/// Step (in log-parameters) of the central differences for the gradient and the Hessian:
/// truncation error about 1e-9 of the third derivative, rounding error about 1e-12.
const DERIVATIVE_STEP: f64 = 1e-4;
/// Side of the initial Nelder–Mead simplex, in log-parameters.
const SIMPLEX_STEP: f64 = 0.5;
/// Nelder–Mead stops once the simplex's values agree to this relative tolerance and its
/// vertices to [`NM_SIZE_TOLERANCE`] (Newton steps then polish quadratically).
const NM_VALUE_TOLERANCE: f64 = 1e-6;
/// See [`NM_VALUE_TOLERANCE`]; in log-parameters.
const NM_SIZE_TOLERANCE: f64 = 1e-2;
/// Newton iterations after Nelder–Mead, at most.
const MAX_NEWTON: usize = 50;
/// A Newton step (in log-parameters, i.e. relative change of the parameters) this small means
/// the optimum has been found to the resolution of the numerical derivatives.
const NEGLIGIBLE_STEP: f64 = 1e-7;
/// A predicted Newton decrease (gᵀH⁻¹g, relative to the objective) this small is below the
/// rounding noise of a likelihood summed over many customers.
const NEGLIGIBLE_DECREASE: f64 = 1e-12;

/// A cheaper approximation of the objective that only guides the initial simplex.
pub(crate) type CoarseObjective<'a, const N: usize> = &'a mut dyn FnMut(&[f64; N]) -> f64;

/// Where the minimiser stopped.
#[derive(Debug, Clone)]
pub(crate) struct Minimum<const N: usize> {
    /// The minimising point.
    pub x: [f64; N],
    /// The objective there.
    pub f: f64,
    /// Nelder–Mead plus Newton iterations.
    pub iterations: usize,
    /// Evaluations of the objective (not counting those of the coarse one).
    pub evaluations: usize,
    /// Largest absolute component of the gradient at `x`.
    pub gradient_norm: f64,
    /// Hessian positive definite, and the gradient below the tolerance or the Newton step
    /// negligible.
    pub converged: bool,
    /// The Hessian at `x`, when it is positive definite.
    pub hessian: Option<[[f64; N]; N]>,
}

/// Counts evaluations and maps non-finite values to +∞ so that the simplex moves away from them.
struct Objective<F> {
    f: F,
    evaluations: usize,
}

impl<F> Objective<F> {
    fn eval<const N: usize>(&mut self, x: &[f64; N]) -> f64
    where
        F: FnMut(&[f64; N]) -> f64,
    {
        self.evaluations += 1;
        let v = (self.f)(x);
        if v.is_finite() { v } else { f64::INFINITY }
    }
}

/// Minimises `f` from `x0`. `max_iterations` bounds the iterations of each Nelder–Mead run
/// and of each Newton polish (at most 50 of those); `tolerance` is the gradient threshold
/// (largest absolute component) for convergence.
///
/// Nelder–Mead stops early (a loose simplex), on `coarse` (a cheaper approximation of `f`,
/// such as the likelihood of a subsample) when given, and Newton steps on `f` finish the job;
/// if they do not converge, Nelder–Mead on `f` is restarted once from the best point and
/// polished again.
pub(crate) fn minimize<const N: usize, F>(
    f: F,
    coarse: Option<CoarseObjective<'_, N>>,
    x0: [f64; N],
    max_iterations: usize,
    tolerance: f64,
) -> Minimum<N>
where
    F: FnMut(&[f64; N]) -> f64,
{
    let mut obj = Objective { f, evaluations: 0 };
    let (x, fx, it) = match coarse {
        // The simplex only needs to get near the optimum: on large data it runs on a
        // subsample, and the Newton steps on the full objective finish the job.
        Some(c) => {
            let mut coarse = Objective {
                f: c,
                evaluations: 0,
            };
            let (x, _, it) = nelder_mead(&mut coarse, x0, max_iterations);
            (x, obj.eval(&x), it)
        }
        None => nelder_mead(&mut obj, x0, max_iterations),
    };
    let mut m = newton_polish(&mut obj, x, fx, max_iterations, tolerance);
    m.iterations += it;
    if !m.converged && max_iterations > 0 {
        let (x, fx, it) = nelder_mead(&mut obj, m.x, max_iterations);
        let iterations = m.iterations + it;
        let again = newton_polish(&mut obj, x, fx, max_iterations, tolerance);
        if again.converged || again.f <= m.f {
            m = again;
        }
        m.iterations += iterations;
    }
    m.evaluations = obj.evaluations;
    m
}

/// Newton steps with a numerical gradient and Hessian (then BFGS updates of it) and a
/// backtracking line search; the exact numerical Hessian is recomputed at the end.
fn newton_polish<const N: usize, F>(
    obj: &mut Objective<F>,
    mut x: [f64; N],
    mut fx: f64,
    max_iterations: usize,
    tolerance: f64,
) -> Minimum<N>
where
    F: FnMut(&[f64; N]) -> f64,
{
    let mut iterations = 0;
    let (mut gradient, mut h) = derivatives(obj, &x, fx);
    // After the first step the Hessian is carried forward by BFGS updates (a gradient costs 2N
    // evaluations, a Hessian 2N²); the exact one is recomputed at the end.
    let mut exact = true;
    // Set when the Newton step itself is below what the parameters can be resolved to: the
    // gradient then is as small as finite differences of this objective can show.
    let mut step_negligible = false;
    for _ in 0..MAX_NEWTON.min(max_iterations) {
        if max_abs(&gradient) < tolerance || !fx.is_finite() {
            break;
        }
        iterations += 1;
        let Some(step) = newton_direction(&h, &gradient) else {
            break;
        };
        let slope: f64 = step.iter().zip(&gradient).map(|(s, g)| s * g).sum();
        if cholesky(&h).is_some()
            && (max_abs(&step) < NEGLIGIBLE_STEP
                || -slope < NEGLIGIBLE_DECREASE * fx.abs().max(1.0))
        {
            step_negligible = true;
            break;
        }
        let mut t = 1.0;
        let mut improved = None;
        for _ in 0..40 {
            let mut trial = x;
            for i in 0..N {
                trial[i] += t * step[i];
            }
            let ft = obj.eval(&trial);
            if ft <= fx + 1e-4 * t * slope {
                improved = Some((trial, ft));
                break;
            }
            t *= 0.5;
        }
        let Some((nx, nf)) = improved else { break };
        let ng = self::gradient(obj, &nx);
        bfgs_update(&mut h, &nx, &x, &ng, &gradient);
        exact = false;
        x = nx;
        fx = nf;
        gradient = ng;
    }
    if !exact {
        (gradient, h) = derivatives(obj, &x, fx);
    }

    let gradient_norm = max_abs(&gradient);
    let hessian = cholesky(&h).map(|_| h);
    Minimum {
        x,
        f: fx,
        iterations,
        evaluations: 0,
        gradient_norm,
        converged: (gradient_norm < tolerance || step_negligible) && hessian.is_some(),
        hessian,
    }
}

/// BFGS update of the Hessian approximation `h` for the step from `x0` (gradient `g0`) to `x1`
/// (gradient `g1`); skipped when the curvature condition sᵀy > 0 fails.
fn bfgs_update<const N: usize>(
    h: &mut [[f64; N]; N],
    x1: &[f64; N],
    x0: &[f64; N],
    g1: &[f64; N],
    g0: &[f64; N],
) {
    let s: [f64; N] = std::array::from_fn(|i| x1[i] - x0[i]);
    let y: [f64; N] = std::array::from_fn(|i| g1[i] - g0[i]);
    let hs: [f64; N] = std::array::from_fn(|i| (0..N).map(|j| h[i][j] * s[j]).sum());
    let sy: f64 = (0..N).map(|i| s[i] * y[i]).sum();
    let shs: f64 = (0..N).map(|i| s[i] * hs[i]).sum();
    if !(sy > 1e-300 && shs > 1e-300) {
        return;
    }
    for i in 0..N {
        for j in 0..N {
            h[i][j] += y[i] * y[j] / sy - hs[i] * hs[j] / shs;
        }
    }
}

/// Central-difference gradient at `x`.
fn gradient<const N: usize, F>(obj: &mut Objective<F>, x: &[f64; N]) -> [f64; N]
where
    F: FnMut(&[f64; N]) -> f64,
{
    std::array::from_fn(|i| {
        let mut p = *x;
        p[i] += DERIVATIVE_STEP;
        let fp = obj.eval(&p);
        p[i] = x[i] - DERIVATIVE_STEP;
        (fp - obj.eval(&p)) / (2.0 * DERIVATIVE_STEP)
    })
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, g| {
        if g.abs() > m {
            g.abs()
        } else if g.is_nan() {
            f64::NAN
        } else {
            m
        }
    })
}

/// Nelder–Mead with the standard coefficients (reflection 1, expansion 2, contraction ½,
/// shrink ½). Stops when the simplex has collapsed in both value and size.
fn nelder_mead<const N: usize, F>(
    obj: &mut Objective<F>,
    x0: [f64; N],
    max_iterations: usize,
) -> ([f64; N], f64, usize)
where
    F: FnMut(&[f64; N]) -> f64,
{
    let mut simplex: Vec<([f64; N], f64)> = Vec::with_capacity(N + 1);
    simplex.push((x0, obj.eval(&x0)));
    for i in 0..N {
        let mut v = x0;
        v[i] += SIMPLEX_STEP;
        simplex.push((v, obj.eval(&v)));
    }
    let mut iterations = 0;
    while iterations < max_iterations {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, fbest) = simplex[0];
        let fworst = simplex[N].1;
        let size = simplex[1..]
            .iter()
            .flat_map(|(v, _)| v.iter().zip(&best).map(|(a, b)| (a - b).abs()))
            .fold(0.0, f64::max);
        if fbest.is_finite()
            && (fworst - fbest).abs() <= NM_VALUE_TOLERANCE * (fbest.abs() + 1e-12)
            && size < NM_SIZE_TOLERANCE
        {
            break;
        }
        iterations += 1;

        let mut centroid = [0.0; N];
        for (v, _) in &simplex[..N] {
            for i in 0..N {
                centroid[i] += v[i] / N as f64;
            }
        }
        let worst = simplex[N].0;
        let along = |t: f64| -> [f64; N] {
            let mut p = [0.0; N];
            for i in 0..N {
                p[i] = centroid[i] + t * (worst[i] - centroid[i]);
            }
            p
        };
        let reflected = along(-1.0);
        let fr = obj.eval(&reflected);
        if fr < simplex[0].1 {
            let expanded = along(-2.0);
            let fe = obj.eval(&expanded);
            simplex[N] = if fe < fr {
                (expanded, fe)
            } else {
                (reflected, fr)
            };
            continue;
        }
        if fr < simplex[N - 1].1 {
            simplex[N] = (reflected, fr);
            continue;
        }
        let (contracted, fc) = if fr < simplex[N].1 {
            let c = along(-0.5);
            (c, obj.eval(&c))
        } else {
            let c = along(0.5);
            (c, obj.eval(&c))
        };
        if fc < simplex[N].1.min(fr) {
            simplex[N] = (contracted, fc);
            continue;
        }
        // Shrink towards the best vertex.
        let best = simplex[0].0;
        for vertex in simplex.iter_mut().skip(1) {
            let mut v = vertex.0;
            for i in 0..N {
                v[i] = best[i] + 0.5 * (v[i] - best[i]);
            }
            *vertex = (v, obj.eval(&v));
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    (simplex[0].0, simplex[0].1, iterations)
}

/// Central-difference gradient and Hessian of the objective at `x` (where it is `fx`), from
/// 2N² + 1 evaluations less the one at `x`: the gradient reuses the Hessian's points on the axes.
fn derivatives<const N: usize, F>(
    obj: &mut Objective<F>,
    x: &[f64; N],
    fx: f64,
) -> ([f64; N], [[f64; N]; N])
where
    F: FnMut(&[f64; N]) -> f64,
{
    let h = DERIVATIVE_STEP;
    let mut gradient = [0.0; N];
    let mut hessian = [[0.0; N]; N];
    let mut at = |d: &[(usize, f64)]| {
        let mut p = *x;
        for &(i, s) in d {
            p[i] += s * h;
        }
        obj.eval(&p)
    };
    for i in 0..N {
        let (fp, fm) = (at(&[(i, 1.0)]), at(&[(i, -1.0)]));
        gradient[i] = (fp - fm) / (2.0 * h);
        hessian[i][i] = (fp - 2.0 * fx + fm) / (h * h);
        for j in 0..i {
            let v = (at(&[(i, 1.0), (j, 1.0)])
                - at(&[(i, 1.0), (j, -1.0)])
                - at(&[(i, -1.0), (j, 1.0)])
                + at(&[(i, -1.0), (j, -1.0)]))
                / (4.0 * h * h);
            hessian[i][j] = v;
            hessian[j][i] = v;
        }
    }
    (gradient, hessian)
}

/// The Newton direction −H⁻¹g, with H shifted by a multiple of the identity until it is
/// positive definite (a Levenberg-style safeguard far from the optimum).
fn newton_direction<const N: usize>(h: &[[f64; N]; N], g: &[f64; N]) -> Option<[f64; N]> {
    let scale = (0..N).map(|i| h[i][i].abs()).fold(0.0, f64::max).max(1e-12);
    let mut shift = 0.0;
    for _ in 0..30 {
        let mut m = *h;
        for (i, row) in m.iter_mut().enumerate() {
            row[i] += shift;
        }
        if let Some(l) = cholesky(&m) {
            let mut neg = *g;
            for v in &mut neg {
                *v = -*v;
            }
            return Some(cholesky_solve(&l, &neg));
        }
        shift = if shift == 0.0 {
            1e-8 * scale
        } else {
            shift * 10.0
        };
    }
    None
}

/// Lower-triangular L with L Lᵀ = A, or `None` when A is not (numerically) positive definite.
pub(crate) fn cholesky<const N: usize>(a: &[[f64; N]; N]) -> Option<[[f64; N]; N]> {
    let mut l = [[0.0; N]; N];
    for i in 0..N {
        for j in 0..=i {
            let mut s = a[i][j];
            for k in 0..j {
                s -= l[i][k] * l[j][k];
            }
            if i == j {
                if !(s > 0.0 && s.is_finite()) {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solves L Lᵀ x = b.
pub(crate) fn cholesky_solve<const N: usize>(l: &[[f64; N]; N], b: &[f64; N]) -> [f64; N] {
    let mut y = [0.0; N];
    for i in 0..N {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i][k] * y[k];
        }
        y[i] = s / l[i][i];
    }
    let mut x = [0.0; N];
    for i in (0..N).rev() {
        let mut s = y[i];
        for k in i + 1..N {
            s -= l[k][i] * x[k];
        }
        x[i] = s / l[i][i];
    }
    x
}

/// The diagonal of A⁻¹ for a positive definite A, or `None`.
pub(crate) fn inverse_diagonal<const N: usize>(a: &[[f64; N]; N]) -> Option<[f64; N]> {
    let l = cholesky(a)?;
    let mut out = [0.0; N];
    for (i, o) in out.iter_mut().enumerate() {
        let mut e = [0.0; N];
        e[i] = 1.0;
        *o = cholesky_solve(&l, &e)[i];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_rosenbrock() {
        let m = minimize(
            |p: &[f64; 2]| (1.0 - p[0]).powi(2) + 100.0 * (p[1] - p[0] * p[0]).powi(2),
            None,
            [-1.2, 1.0],
            5000,
            1e-5, // the central-difference gradient is biased by ~h²·f‴ ≈ 4e-6 here
        );
        assert!(m.converged, "{m:?}");
        assert!(
            (m.x[0] - 1.0).abs() < 1e-6 && (m.x[1] - 1.0).abs() < 1e-6,
            "{m:?}"
        );
    }

    #[test]
    fn coarse_objective_only_guides_the_simplex() {
        // The coarse objective's minimum is off by 0.01; the result is the true one.
        let mut coarse = |p: &[f64; 2]| (p[0] - 1.01).powi(2) + (p[1] + 0.99).powi(2);
        let m = minimize(
            |p: &[f64; 2]| (p[0] - 1.0).powi(2) + (p[1] + 1.0).powi(2) + p[0] * p[1] / 4.0,
            Some(&mut coarse),
            [0.0, 0.0],
            1000,
            1e-9,
        );
        // Minimum of the full objective: gradient 2(x − 1) + y/4 = 0, 2(y + 1) + x/4 = 0.
        let det = 4.0 - 1.0 / 16.0;
        let (x, y) = ((4.0 + 0.5) / det, (-4.0 - 0.5) / det);
        assert!(
            m.converged && (m.x[0] - x).abs() < 1e-8 && (m.x[1] - y).abs() < 1e-8,
            "{m:?}"
        );
    }

    #[test]
    fn non_finite_regions_are_avoided() {
        let m = minimize(
            |p: &[f64; 1]| {
                if p[0] < 0.0 {
                    f64::NAN
                } else {
                    (p[0] - 2.0).powi(2)
                }
            },
            None,
            [0.1],
            1000,
            1e-8,
        );
        assert!((m.x[0] - 2.0).abs() < 1e-6);
    }

    #[test]
    fn inverse_of_spd_matrix() {
        let a = [[4.0, 1.0], [1.0, 3.0]];
        let d = inverse_diagonal(&a).unwrap();
        assert!((d[0] - 3.0 / 11.0).abs() < 1e-15 && (d[1] - 4.0 / 11.0).abs() < 1e-15);
        assert!(inverse_diagonal(&[[1.0, 2.0], [2.0, 1.0]]).is_none());
    }
}
