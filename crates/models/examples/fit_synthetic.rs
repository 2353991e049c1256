//! Times BG/NBD and Gamma-Gamma fits on synthetic customers drawn from the models themselves.
//!
//! `cargo run --release --example fit_synthetic -- 1000000 [out.csv] [--threads N]` prints the
//! timings and the estimates; with a file name it also writes the customers (x, t_x, T, m̄ in
//! weeks) as CSV so that a peer (e.g. Python `lifetimes`) can fit the same data.

#![allow(clippy::print_stdout, reason = "an example program reports on stdout")]

use std::io::Write;
use std::time::Instant;

use lodestar_models::bg_nbd::BgNbdParams;
use lodestar_models::gamma_gamma::GammaGammaParams;
use lodestar_models::{FitOptions, RfmData, SpendData};

/// xorshift64* — enough randomness for a benchmark, no dependency.
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(1)
        .map_or(1_000_000, |s| s.parse().expect("customer count"));
    let mut options = FitOptions::default();
    if let Some(i) = args.iter().position(|a| a == "--threads") {
        options.threads = args[i + 1].parse().expect("thread count");
    }
    let truth = BgNbdParams {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };
    let (p, q, gamma) = (6.25, 3.74, 15.44);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    let mut rows = Vec::with_capacity(n);
    let mut spend = Vec::with_capacity(n);
    for _ in 0..n {
        // Cohort over a year, purchase days whole, in weeks.
        let age_days = 1.0 + (rng.uniform() * 365.0).floor();
        let lambda = rng.gamma(truth.r, truth.alpha) / 7.0; // per day
        let drop = rng.beta(truth.a, truth.b);
        let nu = rng.gamma(q, gamma);
        let (mut t, mut x, mut last, mut total) = (0.0, 0u32, 0.0, 0.0);
        loop {
            t += -rng.uniform().ln() / lambda;
            let day = t.floor();
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
        let mean = if x == 0 {
            0.0
        } else {
            (total / f64::from(x) * 100.0).round() / 100.0
        };
        rows.push((
            x,
            if x == 0 { 0.0 } else { last / 7.0 },
            age_days / 7.0,
            1.0,
        ));
        spend.push((x, mean.max(0.01), 1.0));
    }

    if let Some(path) = args.get(2).filter(|a| !a.starts_with("--")) {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create csv"));
        writeln!(f, "x,t_x,T,m").unwrap();
        for (r, s) in rows.iter().zip(&spend) {
            writeln!(f, "{},{},{},{}", r.0, r.1, r.2, s.1).unwrap();
        }
    }

    let start = Instant::now();
    let data = RfmData::from_patterns(&rows).expect("valid rows");
    let prepared = start.elapsed();
    let fit = BgNbdParams::fit(&data, &options).expect("BG/NBD fit");
    let bg_time = start.elapsed();
    println!(
        "BG/NBD: {n} customers, {} patterns; prepare {:.3} s, total {:.3} s; {:?}; LL {:.1}; {} iterations, {} evaluations",
        data.patterns(),
        prepared.as_secs_f64(),
        bg_time.as_secs_f64(),
        fit.params,
        fit.report.log_likelihood,
        fit.report.iterations,
        fit.report.evaluations
    );

    let start = Instant::now();
    let data = SpendData::from_patterns(&spend).expect("valid spend");
    if std::env::args().any(|a| a == "--eval-timing") {
        let t0 = Instant::now();
        let gg = GammaGammaParams { p, q, gamma };
        let mut acc = 0.0;
        for _ in 0..100 {
            acc += gg.log_likelihood_data(&data);
        }
        println!(
            "100 GG evaluations (1 thread): {:.3} s ({acc:.1})",
            t0.elapsed().as_secs_f64()
        );
        let rfm = RfmData::from_patterns(&rows).expect("valid rows");
        let t0 = Instant::now();
        let mut acc = 0.0;
        for _ in 0..100 {
            acc += truth.log_likelihood_data(&rfm);
        }
        println!(
            "100 BG/NBD evaluations (1 thread): {:.3} s ({acc:.1})",
            t0.elapsed().as_secs_f64()
        );
    }
    let prepared = start.elapsed();
    let fit = GammaGammaParams::fit(&data, &options).expect("Gamma-Gamma fit");
    println!(
        "Gamma-Gamma: {} repeat buyers, {} patterns; prepare {:.3} s, total {:.3} s; {:?}; {} iterations, {} evaluations",
        data.customers(),
        data.patterns(),
        prepared.as_secs_f64(),
        start.elapsed().as_secs_f64(),
        fit.params,
        fit.report.iterations,
        fit.report.evaluations
    );
}
