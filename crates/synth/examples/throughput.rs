//! Measures generation speed: messages per second, and orders-export rows per second.
//!
//! `cargo run --release -p lodestar-synth --example throughput -- [users] [csv_users]`
#![allow(clippy::print_stdout, reason = "an example reports what it measured")]

use std::time::Instant;

use lodestar_synth::{SynthConfig, generate, orders_csv};

fn main() {
    let mut args = std::env::args().skip(1);
    let users: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let csv_users: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);

    let config = SynthConfig {
        users,
        ..SynthConfig::default()
    };
    let started = Instant::now();
    let mut messages = 0u64;
    let mut bytes = 0usize;
    for m in generate(&config) {
        messages += 1;
        bytes += m.message_id.len();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "messages: {users} users, {messages} messages ({:.1} per user) in {secs:.2} s = {:.0} messages/s (ids {bytes} bytes)",
        messages as f64 / users as f64,
        messages as f64 / secs
    );

    let config = SynthConfig {
        users: csv_users,
        ..SynthConfig::default()
    };
    let started = Instant::now();
    let mut sink = std::io::sink();
    let rows = orders_csv(&config, &mut sink).expect("writing to a sink cannot fail");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "orders csv: {csv_users} users, {rows} rows in {secs:.2} s = {:.0} rows/s",
        rows as f64 / secs
    );
}
