//! Counters the store keeps about itself; the server renders them for Prometheus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::writer::AppendOutcome;

/// Upper bounds (seconds) of the commit-latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Cumulative bucket counts, total count and sum in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(b, c)| (*b, c.load(Ordering::Relaxed)))
            .collect();
        (
            buckets,
            self.count.load(Ordering::Relaxed),
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        )
    }
}

/// Store-wide counters, shared by every project.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    /// Events made durable.
    pub events_stored: AtomicU64,
    /// Events skipped as duplicates.
    pub events_duplicate: AtomicU64,
    /// Items put in the quarantine.
    pub events_rejected: AtomicU64,
    /// Warnings recorded.
    pub warnings: AtomicU64,
    /// Messages dropped because they carry a suppressed id.
    pub events_suppressed: AtomicU64,
    /// Failed commits (storage faults).
    pub storage_errors: AtomicU64,
    /// Parts sealed from the tail.
    pub parts_sealed: AtomicU64,
    /// Events moved from the tail log into parts.
    pub events_sealed: AtomicU64,
    /// Compactions finished.
    pub compactions: AtomicU64,
    /// Group-commit latency.
    pub commit_latency: Histogram,
}

impl StoreMetrics {
    pub(crate) fn observe_commit(&self, d: Duration) {
        self.commit_latency.observe(d);
    }

    pub(crate) fn record_outcome(&self, o: &AppendOutcome) {
        self.events_stored
            .fetch_add(o.stored as u64, Ordering::Relaxed);
        self.events_duplicate
            .fetch_add(o.duplicates as u64, Ordering::Relaxed);
        self.events_rejected
            .fetch_add(o.rejected as u64, Ordering::Relaxed);
        self.warnings
            .fetch_add(o.warnings as u64, Ordering::Relaxed);
        self.events_suppressed
            .fetch_add(o.suppressed as u64, Ordering::Relaxed);
    }
}
