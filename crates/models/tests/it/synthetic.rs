//! Seeded synthetic customers drawn from BG/NBD with Gamma-Gamma spend, for the tests and for
//! the `fit_synthetic` example, which includes this file (`#[path]`): keep it free of anything
//! else from the test binary.

/// xorshift64* with gamma and beta draws: enough randomness for tests and a benchmark, no
/// dependency.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }

    /// Gamma(shape, rate) by Marsaglia & Tsang (with the boost for shape < 1).
    fn gamma(&mut self, shape: f64, rate: f64) -> f64 {
        if shape < 1.0 {
            return self.gamma(shape + 1.0, rate) * self.uniform().powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let z = self.normal();
            let v = (1.0 + c * z).powi(3);
            if v > 0.0 && self.uniform().ln() < 0.5 * z * z + d - d * v + d * v.ln() {
                return d * v / rate;
            }
        }
    }

    fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a, 1.0);
        x / (x + self.gamma(b, 1.0))
    }
}

/// `n` BG/NBD customers (r, α per week, a, b) with Gamma-Gamma spend (p, q, γ), observed for
/// 1..=365 whole days, in weeks: (x, t_x, T, 1) and (x, m̄, 1) rows (m̄ = 0 when x = 0).
#[allow(clippy::type_complexity, reason = "two plain row lists")]
pub fn simulate(
    n: usize,
    seed: u64,
    bg: [f64; 4],
    gg: [f64; 3],
) -> (Vec<(u32, f64, f64, f64)>, Vec<(u32, f64, f64)>) {
    let [r, alpha, a, b] = bg;
    let [p, q, gamma] = gg;
    let mut rng = Rng(seed);
    let mut rows = Vec::with_capacity(n);
    let mut spend = Vec::with_capacity(n);
    for _ in 0..n {
        // Cohort over a year, purchase days whole, in weeks.
        let age_days = 1.0 + (rng.uniform() * 365.0).floor();
        let lambda = rng.gamma(r, alpha) / 7.0; // per day
        let drop = rng.beta(a, b);
        let nu = rng.gamma(q, gamma);
        let (mut t, mut x, mut last, mut total) = (0.0, 0u32, 0.0, 0.0);
        loop {
            t += -rng.uniform().ln() / lambda;
            let day: f64 = t.floor();
            if day > age_days {
                break;
            }
            if day > last {
                x += 1;
                last = day;
                total += rng.gamma(p, nu);
            }
            if rng.uniform() < drop {
                break;
            }
        }
        rows.push((
            x,
            if x == 0 { 0.0 } else { last / 7.0 },
            age_days / 7.0,
            1.0,
        ));
        spend.push((x, if x == 0 { 0.0 } else { total / f64::from(x) }, 1.0));
    }
    (rows, spend)
}
