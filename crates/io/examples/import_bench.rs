//! Import throughput: generates an orders CSV, imports it into a fresh store, and prints
//! the summary and the rate.
//!
//! ```text
//! cargo run --release -p lodestar-io --example import_bench -- [ROWS] [--no-order-id]
//!     [--batch N] [--in-flight N] [--keep DIR] [--file ORDERS.csv]
//! ```
//!
//! ROWS defaults to 1,000,000. Customers are drawn from ROWS / 5 ids, so most have several
//! orders. With `--no-order-id` the file has no order id column and ids come from the
//! content rule. `--file` imports a file of your own instead. The generator is a
//! fixed-seed linear congruential sequence, so two runs import the same file. The store
//! runs with the default configuration (7-day dedup window, group commit) in a temporary
//! folder (or `--keep DIR`).

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![allow(missing_docs, reason = "an example binary")]

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lodestar_core::{FixedClock, Timestamp};
use lodestar_io::{ImportOptions, import_file};
use lodestar_store::{EventStore, Store, StoreConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: u64 = args
        .first()
        .filter(|a| a.parse::<u64>().is_ok())
        .map_or(Ok(1_000_000), |a| a.parse())?;
    let order_ids = !args.iter().any(|a| a == "--no-order-id");
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let defaults = ImportOptions::default();
    let options = ImportOptions {
        batch_rows: flag("--batch").unwrap_or(defaults.batch_rows),
        max_in_flight: flag("--in-flight").unwrap_or(defaults.max_in_flight),
        ..defaults
    };
    let keep = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);

    let scratch = tempfile::tempdir()?;
    let dir = keep.unwrap_or_else(|| scratch.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let given = args
        .iter()
        .position(|a| a == "--file")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    let csv = match given {
        Some(path) => path,
        None => {
            let csv = dir.join("orders.csv");
            let started = Instant::now();
            generate(&csv, rows, order_ids)?;
            println!(
                "generated {rows} rows ({:.1} MB) in {:.1} s",
                std::fs::metadata(&csv)?.len() as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
            csv
        }
    };
    let size = std::fs::metadata(&csv)?.len();

    let config = StoreConfig {
        data_dir: dir.join("data"),
        maintenance_interval_ms: 0,
        ..StoreConfig::default()
    };
    let store = Store::open(
        config,
        Arc::new(FixedClock::new(Timestamp(1_720_000_000_000))),
    )?;
    let project = store.create_project("bench")?.0.id;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let summary = import_file(&*store, project, &csv, &options, &mut |p| {
        if last_report.elapsed().as_secs() >= 5 {
            last_report = Instant::now();
            println!(
                "  {:>5.1}%  {} rows",
                100.0 * p.bytes_read as f64 / p.bytes_total.max(1) as f64,
                p.rows
            );
        }
    })?;
    let secs = started.elapsed().as_secs_f64();
    print!("{summary}");
    println!(
        "import: {:.1} s, {:.0} rows/s, {:.1} MB/s",
        secs,
        summary.rows as f64 / secs,
        size as f64 / 1e6 / secs
    );
    Ok(())
}

fn generate(path: &Path, rows: u64, order_ids: bool) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let channels = ["tmall", "jd", "web", "app", "wechat"];
    if order_ids {
        writeln!(out, "order_id,customer_id,order_date,amount,channel,sku")?;
    } else {
        writeln!(out, "customer_id,order_date,amount,channel,sku")?;
    }
    let customers = (rows / 5).max(1);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let start = 1_672_531_200; // 2023-01-01, in seconds
    for i in 0..rows {
        let customer = next() % customers;
        let at = start + (next() % (2 * 365 * 86_400)) as i64;
        let (days, secs) = (at.div_euclid(86_400), at.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        let cents = 500 + next() % 50_000;
        let channel = channels[(next() % 5) as usize];
        let sku = next() % 2_000;
        if order_ids {
            write!(out, "SO{i:09},")?;
        }
        writeln!(
            out,
            "C{customer:08},{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02},{}.{:02},{channel},SKU-{sku:04}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            cents / 100,
            cents % 100
        )?;
    }
    out.flush()
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
