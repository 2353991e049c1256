//! Portable elementary functions and samplers.
//!
//! The platform's `ln` and `exp` (glibc, musl, macOS libm) may round differently in the last
//! bit, and may even change with CPU features (FMA). Samplers built on them would make the
//! output machine-dependent. Everything here uses only IEEE-754 addition, multiplication,
//! division and square root, which every platform rounds the same way, so a draw is the same
//! bit pattern everywhere. Accuracy is a few units in the last place, far beyond what a
//! simulation needs.
//!
//! The same reason keeps `rand_distr` out of the generator: its samplers take `ln`, `exp`
//! and `powf` from `num-traits`, which switches to the platform library whenever any crate in
//! the build enables `num-traits/std`.

use crate::rng::Draw;

/// ln 2 split into a high part with trailing zero bits (so `k · LN2_HI` is exact) and the rest
/// (fdlibm's constants).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
const SQRT_HALF: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// `1 / (2k + 1)` for k = 0..=11: the series of atanh s / s in powers of s².
const ATANH_SERIES: [f64; 12] = {
    let mut c = [0.0; 12];
    let mut k = 0;
    while k < 12 {
        c[k] = 1.0 / (2 * k + 1) as f64;
        k += 1;
    }
    c
};

/// `1 / n!` for n = 0..=14.
const EXP_SERIES: [f64; 15] = {
    let mut c = [1.0; 15];
    let mut n = 1;
    while n < 15 {
        c[n] = c[n - 1] / n as f64;
        n += 1;
    }
    c
};

/// Natural logarithm. `ln(0) = -∞`; negative or NaN input gives NaN; `ln(∞) = ∞`.
pub(crate) fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    // x = m · 2^e with m in [√½, √2).
    let (mut bits, mut bias) = (x.to_bits(), 0i64);
    if bits >> 52 == 0 {
        // Subnormal: scale into the normal range first.
        bits = (x * 18_014_398_509_481_984.0).to_bits(); // 2^54
        bias = -54;
    }
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023 + bias;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m >= 2.0 * SQRT_HALF {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2 atanh s, s = (m − 1)/(m + 1), |s| < 0.172.
    let f = m - 1.0;
    let s = f / (m + 1.0);
    let s2 = s * s;
    let mut poly = 0.0;
    for c in ATANH_SERIES.iter().rev() {
        poly = poly * s2 + c;
    }
    let ln_m = 2.0 * s * poly;
    let e = e as f64;
    e * LN2_HI + (ln_m + e * LN2_LO)
}

/// The exponential function; overflows to `∞` above 709.78 and underflows to 0.
pub(crate) fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.782_712_893_384 {
        return f64::INFINITY;
    }
    if x < -745.2 {
        return 0.0;
    }
    // x = k ln 2 + r, |r| ≤ ½ ln 2.
    let k = (x * std::f64::consts::LOG2_E).round();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Taylor series to r^14 / 14!, below 2^-60 for |r| ≤ ½ ln 2.
    let mut sum = 0.0;
    for c in EXP_SERIES.iter().rev() {
        sum = sum * r + c;
    }
    scale_by_power_of_two(sum, k as i64)
}

/// `x · 2^k` for the exponents `exp` produces.
fn scale_by_power_of_two(x: f64, k: i64) -> f64 {
    let pow = |k: i64| f64::from_bits(((k + 1023) as u64) << 52);
    if k > 1023 {
        x * pow(1023) * pow(k - 1023)
    } else if k < -1022 {
        x * pow(-1022) * pow((k + 1022).max(-1022))
    } else {
        x * pow(k)
    }
}

/// A standard normal draw (Marsaglia's polar method).
pub(crate) fn normal<R: Draw + ?Sized>(rng: &mut R) -> f64 {
    loop {
        let u = 2.0 * rng.unit() - 1.0;
        let v = 2.0 * rng.unit() - 1.0;
        let s = u * u + v * v;
        if s > 0.0 && s < 1.0 {
            return u * (-2.0 * ln(s) / s).sqrt();
        }
    }
}

/// A Gamma distribution with the given shape and scale (mean `shape · scale`), sampled with
/// Marsaglia and Tsang's method (and the `U^(1/shape)` boost for shapes below one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gamma {
    shape: f64,
    scale: f64,
}

impl Gamma {
    /// `None` unless both parameters are finite and positive.
    pub(crate) fn new(shape: f64, scale: f64) -> Option<Gamma> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        (ok(shape) && ok(scale)).then_some(Gamma { shape, scale })
    }

    pub(crate) fn sample<R: Draw + ?Sized>(&self, rng: &mut R) -> f64 {
        self.scale * standard_gamma(self.shape, rng)
    }
}

fn standard_gamma<R: Draw + ?Sized>(shape: f64, rng: &mut R) -> f64 {
    if shape < 1.0 {
        let boost = exp(ln(1.0 - rng.unit()) / shape);
        return standard_gamma(shape + 1.0, rng) * boost;
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = rng.unit();
        let x2 = x * x;
        if u < 1.0 - 0.0331 * x2 * x2 || ln(u) < 0.5 * x2 + d * (1.0 - v + ln(v)) {
            return d * v;
        }
    }
}

/// A Beta distribution, sampled as `X / (X + Y)` with `X ~ Gamma(a)`, `Y ~ Gamma(b)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Beta {
    a: f64,
    b: f64,
}

impl Beta {
    /// `None` unless both shapes are finite and positive.
    pub(crate) fn new(a: f64, b: f64) -> Option<Beta> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        (ok(a) && ok(b)).then_some(Beta { a, b })
    }

    pub(crate) fn sample<R: Draw + ?Sized>(&self, rng: &mut R) -> f64 {
        loop {
            let x = standard_gamma(self.a, rng);
            let y = standard_gamma(self.b, rng);
            if x + y > 0.0 {
                return x / (x + y);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Stream, user_rng};

    #[test]
    fn ln_and_exp_match_std_closely() {
        let mut x = 1e-310;
        while x < 1e300 {
            let (ours, std) = (ln(x), x.ln());
            assert!(
                (ours - std).abs() <= 4.0 * f64::EPSILON * std.abs().max(1.0),
                "ln {x}: {ours} {std}"
            );
            x *= 1.37;
        }
        let mut y = -744.0;
        while y < 709.0 {
            let (ours, std) = (exp(y), y.exp());
            assert!(
                (ours - std).abs() <= 4.0 * f64::EPSILON * std,
                "exp {y}: {ours} {std}"
            );
            y += 0.731;
        }
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert!(ln(-1.0).is_nan());
        assert_eq!(exp(1_000.0), f64::INFINITY);
        assert_eq!(exp(-1_000.0), 0.0);
    }

    fn moments(mut draw: impl FnMut() -> f64, n: usize) -> (f64, f64) {
        let xs: Vec<f64> = (0..n).map(|_| draw()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (mean, var)
    }

    #[test]
    fn samplers_have_the_right_moments() {
        let mut rng = user_rng(3, 3, Stream::Profile);
        let n = 200_000;
        for (shape, scale) in [
            (0.243, 1.0 / 4.414),
            (3.74, 1.0 / 15.44),
            (1.2, 1.0),
            (6.25, 0.05),
        ] {
            let g = Gamma::new(shape, scale).unwrap();
            let (mean, var) = moments(|| g.sample(&mut rng), n);
            let (m, v) = (shape * scale, shape * scale * scale);
            // Standard error of the mean is sqrt(v / n); allow five of them.
            assert!(
                (mean - m).abs() < 5.0 * (v / n as f64).sqrt(),
                "gamma({shape}) mean {mean} vs {m}"
            );
            assert!(
                (var - v).abs() < 0.1 * v,
                "gamma({shape}) variance {var} vs {v}"
            );
        }
        let (a, b) = (0.793, 2.426);
        let beta = Beta::new(a, b).unwrap();
        let (mean, var) = moments(|| beta.sample(&mut rng), n);
        let m = a / (a + b);
        let v = a * b / ((a + b) * (a + b) * (a + b + 1.0));
        assert!(
            (mean - m).abs() < 5.0 * (v / n as f64).sqrt(),
            "beta mean {mean} vs {m}"
        );
        assert!((var - v).abs() < 0.05 * v, "beta variance {var} vs {v}");
        let (mean, var) = moments(|| normal(&mut rng), n);
        assert!(
            mean.abs() < 0.015 && (var - 1.0).abs() < 0.02,
            "normal {mean} {var}"
        );
        assert!(Gamma::new(0.0, 1.0).is_none() && Beta::new(1.0, f64::NAN).is_none());
    }
}
