//! Times BG/NBD and Gamma-Gamma fits on synthetic customers drawn from the models themselves,
//! and scoring every customer with them (P(alive), expected purchases in the next 52 weeks,
//! expected spend per purchase, CLV over 12 months of 4.345 weeks at 1 % a month).
//!
//! `cargo run --release --example fit_synthetic -- 1000000 [out.csv] [--threads N]` prints the
//! timings and the estimates; with a file name it also writes the customers (x, t_x, T, m̄ in
//! weeks) as CSV so that a peer (`bench/models.sh` runs Python `lifetimes`) can fit the same
//! data. Lines starting `params` and `scores` are read by that script.

#![allow(clippy::print_stdout, reason = "an example program reports on stdout")]

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use lodestar_models::bg_nbd::BgNbdParams;
use lodestar_models::clv::{ClvHorizon, Discount, PurchaseModel, discounted_purchases};
use lodestar_models::gamma_gamma::GammaGammaParams;
use lodestar_models::{FitOptions, Rfm, RfmData, SpendData};

#[path = "../tests/it/synthetic.rs"]
mod synthetic;

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
    let (rows, spend) = synthetic::simulate(
        n,
        0x9e37_79b9_7f4a_7c15,
        [truth.r, truth.alpha, truth.a, truth.b],
        [p, q, gamma],
    );
    // Mean spend rounded to whole cents, at least one cent.
    let spend: Vec<_> = spend
        .into_iter()
        .map(|(x, mean, w)| (x, ((mean * 100.0).round() / 100.0).max(0.01), w))
        .collect();

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
    let bg = fit.params;
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
    let gg = fit.params;
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
    println!("params bgnbd {} {} {} {}", bg.r, bg.alpha, bg.a, bg.b);
    println!("params gg {} {} {}", gg.p, gg.q, gg.gamma);

    // Every customer scored, as a profile update would. Customers with the same history
    // (x, tₓ, T) share P(alive) and expected purchases, so those are computed once per
    // distinct history, split over the threads; CLV is then spend × discounted purchases.
    let start = Instant::now();
    let horizon = ClvHorizon::steps(12, 4.345, Discount::PerStep(0.01)).expect("horizon");
    let threads = options.threads.max(1);
    let mut index: HashMap<(u32, u64, u64), u32> = HashMap::with_capacity(rows.len() / 4);
    let mut histories: Vec<Rfm> = Vec::new();
    let of_customer: Vec<u32> = rows
        .iter()
        .map(|r| {
            *index
                .entry((r.0, r.1.to_bits(), r.2.to_bits()))
                .or_insert_with(|| {
                    histories.push(Rfm::new(r.0, r.1, r.2).expect("valid customer"));
                    histories.len() as u32 - 1
                })
        })
        .collect();
    let chunk = histories.len().div_ceil(threads).max(1);
    // Per history: P(alive), purchases in 52 weeks, discounted purchases over the horizon.
    let per_history: Vec<[f64; 3]> = std::thread::scope(|scope| {
        let handles: Vec<_> = histories
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|c| {
                            [
                                bg.prob_alive(c),
                                bg.expected_purchases(c, 52.0),
                                discounted_purchases(&bg, c, &horizon),
                            ]
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("scoring thread"))
            .collect()
    });
    let (mut alive, mut purchases, mut spend_sum, mut clv) = (0.0, 0.0, 0.0, 0.0);
    for ((r, s), &h) in rows.iter().zip(&spend).zip(&of_customer) {
        let [p_alive, expected, discounted] = per_history[h as usize];
        let m = gg.expected_spend(r.0, s.1).unwrap_or(0.0);
        alive += p_alive;
        purchases += expected;
        spend_sum += m;
        clv += m * discounted;
    }
    println!("{} distinct histories among {n} customers", histories.len());
    println!(
        "scored {n} customers in {:.3} s (P(alive), 52-week purchases, spend, 12-month CLV)",
        start.elapsed().as_secs_f64()
    );
    println!("scores {alive} {purchases} {spend_sum} {clv}");
}
