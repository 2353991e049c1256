//! Writes a synthetic "orders export" CSV (customer_id, order_date, amount, order_id,
//! channel, city) of about ROWS rows, for the import benchmark.
//!
//! usage: orders_csv OUT.csv ROWS [SEED=1]

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use lodestar_synth::SynthConfig;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 3, "usage: orders_csv OUT.csv ROWS [SEED]");
    let rows: u64 = args[2].parse()?;
    let seed: u64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1);
    // Calibrate users per order row on a small population, then size the real one.
    let probe = SynthConfig {
        seed,
        users: 20_000,
        ..SynthConfig::default()
    };
    let probe_rows = lodestar_synth::orders_csv(&probe, std::io::sink())?;
    let users = (rows as f64 * 20_000.0 / probe_rows.max(1) as f64).ceil() as u64;
    let config = SynthConfig {
        seed,
        users,
        ..SynthConfig::default()
    };
    let out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&args[1])?);
    let written = lodestar_synth::orders_csv(&config, out)?;
    println!(
        "wrote {written} order rows for {users} users to {}",
        args[1]
    );
    Ok(())
}
