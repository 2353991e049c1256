//! Fixture loading and small numeric helpers shared by the tests.

use std::path::PathBuf;

use lodestar_models::summary::{CustomerSummary, SummaryOptions, TimeUnit, Transaction, summarize};

pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days-from-civil).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn yyyymmdd(s: &str) -> i64 {
    let v: i64 = s.parse().unwrap();
    days_from_civil(v / 10_000, v / 100 % 100, v % 100)
}

/// The raw CDNOW sample log: (sample customer id, day, dollars).
pub fn cdnow_transactions() -> Vec<Transaction<u32>> {
    fixture("CDNOW_sample.txt")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Transaction::on_day(f[1].parse().unwrap(), yyyymmdd(f[2]), f[4].parse().unwrap())
        })
        .collect()
}

/// The CDNOW sample summarised by the crate: calibration to 1997-09-30, holdout to 1998-06-30, weeks.
pub fn cdnow_summaries() -> Vec<CustomerSummary<u32>> {
    let options = SummaryOptions {
        calibration_end_day: days_from_civil(1997, 9, 30) as f64,
        holdout_end_day: Some(days_from_civil(1998, 6, 30) as f64),
        unit: TimeUnit::Weeks,
    };
    summarize(&cdnow_transactions(), &options).unwrap()
}

/// The rounded CSV summary distributed with the data: (id, x, t_x, T, zbar).
pub fn cdnow_csv() -> Vec<(u32, u32, f64, f64, f64)> {
    fixture("cdnow_customers_summary_with_transactions.csv")
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].parse().unwrap(),
            )
        })
        .collect()
}

/// |a − b| / max(|b|, tiny).
pub fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// Rounds to `digits` decimals (for comparing with published figures).
pub fn round_to(v: f64, digits: i32) -> f64 {
    let s = 10f64.powi(digits);
    (v * s).round() / s
}

/// xorshift64* with gamma and beta draws: seeded synthetic customers for the tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }

    /// Gamma(shape, rate) by Marsaglia & Tsang.
    pub fn gamma(&mut self, shape: f64, rate: f64) -> f64 {
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

    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a, 1.0);
        x / (x + self.gamma(b, 1.0))
    }
}

/// `n` BG/NBD customers (r, α per week, a, b) with Gamma-Gamma spend (p, q, γ), observed for
/// 1..=365 whole days, in weeks: (x, t_x, T) and (x, m̄) rows.
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
        let age_days = 1.0 + (rng.uniform() * 365.0).floor();
        let lambda = rng.gamma(r, alpha) / 7.0;
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
