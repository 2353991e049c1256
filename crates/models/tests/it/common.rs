//! Fixture loading and small numeric helpers shared by the tests.

use std::fmt::Debug;
use std::path::PathBuf;
use std::str::FromStr;

use lodestar_models::RfmData;
use lodestar_models::summary::{CustomerSummary, SummaryOptions, TimeUnit, Transaction, summarize};

pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The rows of a CSV fixture after its header line, each built by `row` from its fields.
fn csv_rows<T>(name: &str, row: impl Fn(&[&str]) -> T) -> Vec<T> {
    fixture(name)
        .lines()
        .skip(1)
        .map(|l| row(&l.split(',').collect::<Vec<_>>()))
        .collect()
}

/// One field of a fixture, parsed (a fixture that does not parse is a broken test).
fn field<T: FromStr<Err: Debug>>(s: &str) -> T {
    s.parse().unwrap()
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
    let v: i64 = field(s);
    days_from_civil(v / 10_000, v / 100 % 100, v % 100)
}

/// The raw CDNOW sample log: (sample customer id, day, dollars).
pub fn cdnow_transactions() -> Vec<Transaction<u32>> {
    fixture("CDNOW_sample.txt")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Transaction::on_day(field(f[1]), yyyymmdd(f[2]), field(f[4]))
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

/// The CDNOW sample summarised by the crate, as model input.
pub fn cdnow_rfm() -> RfmData {
    RfmData::from_summaries(&cdnow_summaries()).unwrap()
}

/// The rounded CSV summary distributed with the data: (id, x, t_x, T, zbar).
pub fn cdnow_csv() -> Vec<(u32, u32, f64, f64, f64)> {
    csv_rows("cdnow_customers_summary_with_transactions.csv", |f| {
        (
            field(f[0]),
            field(f[1]),
            field(f[2]),
            field(f[3]),
            field(f[4]),
        )
    })
}

/// The donations data: (x, t_x, n, donors).
pub fn donations() -> Vec<(u32, u32, u32, f64)> {
    csv_rows("donations.csv", |f| {
        (field(f[0]), field(f[1]), field(f[2]), field(f[3]))
    })
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
