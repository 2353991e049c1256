//! HTTP counters and the Prometheus text rendering of all metrics.
//!
//! Names follow `lodestar_<area>_<what>_<unit>`; counters end in `_total`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lodestar_store::{Histogram, StoreMetrics};

/// Counters kept by the HTTP layer.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Histogram,
    received: AtomicU64,
    rejected: AtomicU64,
}

impl HttpMetrics {
    pub(crate) fn observe_request(&self, route: &'static str, status: u16, elapsed: Duration) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((route, status))
            .or_default() += 1;
        self.latency.observe(elapsed);
    }

    pub(crate) fn add_received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_rejected(&self, n: u64) {
        self.rejected.fetch_add(n, Ordering::Relaxed);
    }

    /// All metrics in the Prometheus text format.
    pub fn render(&self, store: &StoreMetrics) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "lodestar_events_received_total",
            "Events received by the ingestion API (valid or not).",
            self.received.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "lodestar_events_stored_total",
            "Events made durable.",
            store.events_stored.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "lodestar_events_duplicate_total",
            "Events skipped as duplicates of an earlier messageId.",
            store.events_duplicate.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "lodestar_events_rejected_total",
            "Events or requests refused as invalid.",
            self.rejected.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "lodestar_ingestion_warnings_total",
            "Warnings recorded about stored events.",
            store.warnings.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "lodestar_events_suppressed_total",
            "Messages acknowledged but dropped because they carry a suppressed id.",
            store.events_suppressed.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "lodestar_storage_errors_total",
            "Commits that failed (disk full, fsync error).",
            store.storage_errors.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "lodestar_parts_sealed_total",
            "Columnar parts sealed from the write buffer.",
            store.parts_sealed.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "lodestar_events_sealed_total",
            "Events moved from the tail log into columnar parts.",
            store.events_sealed.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "lodestar_compactions_total",
            "Part merges finished.",
            store.compactions.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP lodestar_http_requests_total Ingestion requests by route and status.\n# TYPE lodestar_http_requests_total counter"
        );
        for ((route, status), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "lodestar_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        histogram(
            &mut out,
            "lodestar_http_request_duration_seconds",
            "Ingestion request latency.",
            &self.latency,
        );
        histogram(
            &mut out,
            "lodestar_store_commit_duration_seconds",
            "Group-commit latency (including fsync).",
            &store.commit_latency,
        );
        out
    }
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let (buckets, count, sum) = h.snapshot();
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (bound, n) in buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
    );
}
