//! Segment exports that leave the server: the members of a saved segment posted to a webhook
//! in batches, and what the file export and the webhook share ([`load_segment`]).
//!
//! `lodestar-io` cuts the members into JSON bodies ([`lodestar_io::segment_batches`]) on a
//! blocking thread, one body at a time; they come here through a channel of one, so a large
//! segment is never held in memory, and the walk waits while a batch is being delivered.
//! Each batch is one `POST` with `Content-Type: application/json`, `X-Lodestar-Delivery:
//! <segment>-<export id>-<batch>` (the same on every retry, for the receiver to deduplicate)
//! and, with a secret, `X-Lodestar-Signature: sha256=<hex HMAC-SHA256 of the body>`.
//!
//! Retries ([`RetryPolicy`]): a connection error, a timeout, 429 and 5xx are retried with
//! exponential backoff (or after the receiver's `Retry-After`, capped); any other status
//! outside 2xx fails the export at once. The first batch that fails stops the export; the
//! [`DeliveryReport`] says what was sent and where and why it stopped.
//!
//! Only `http://` URLs: `https://` needs a TLS stack, which the binary does not carry yet.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Uri;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use lodestar_analytics::registry::RunError;
use lodestar_core::{Clock, JsonMap};
use lodestar_io::{BatchEnvelope, IoError, SegmentExport, WebhookBatch};
use lodestar_store::{ProjectInfo, SegmentRow, Store, StoreError};

use crate::error::ApiError;

/// Members per batch when the request names none.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// The most members a batch may hold.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// Headers Lodestar sets itself; a request may not set them.
const RESERVED_HEADERS: [&str; 6] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "x-lodestar-delivery",
    "x-lodestar-signature",
];

/// How much of a refusing receiver's answer is quoted in the report.
const QUOTED_BYTES: usize = 300;

/// A saved segment with what its exports read: its members (ascending) and every person's
/// model scores.
pub struct SegmentSource {
    /// The segment.
    pub row: SegmentRow,
    /// Its members, ascending.
    pub members: Vec<u64>,
    /// Each person's newest scores, for attributes that are not traits.
    pub scores: HashMap<u64, JsonMap>,
}

impl SegmentSource {
    /// The export of these members with `attributes`.
    pub fn export<'a>(&'a self, attributes: &'a [String]) -> SegmentExport<'a> {
        SegmentExport {
            members: &self.members,
            extra: &self.scores,
            attributes,
        }
    }
}

/// Reads segment `id` of `project` with its members and scores (blocking: SQLite).
pub fn load_segment(
    store: &Store,
    project: &ProjectInfo,
    id: i64,
) -> Result<SegmentSource, ExportError> {
    let row = store
        .segments(project.id)?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or(ExportError::UnknownSegment(id))?;
    let members = store.segment_members(project.id, id, 0, usize::MAX)?;
    let scores = lodestar_analytics::jobs::scores_by_person(store, project)?;
    Ok(SegmentSource {
        row,
        members,
        scores,
    })
}

/// What stops a segment export before or while it runs (a receiver refusing a batch is not
/// one: see [`DeliveryReport::failed`]).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A request field that cannot be used as given.
    #[error("{field}: {message}")]
    Invalid {
        /// The field (`url`, `batch_size`, `headers`, …).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No saved segment has this id.
    #[error("no segment {0}")]
    UnknownSegment(i64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the scores failed.
    #[error(transparent)]
    Scores(#[from] RunError),
    /// Writing the export failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A blocking task died.
    #[error("segment export task failed: {0}")]
    Task(String),
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> ApiError {
        match e {
            ExportError::Invalid { field, .. } => ApiError {
                field: Some(field.to_string()),
                ..ApiError::new(400, "invalid_parameter", e.to_string())
            },
            ExportError::UnknownSegment(_) => ApiError::new(404, "unknown_segment", e.to_string()),
            ExportError::Store(e) => e.into(),
            ExportError::Scores(e) => e.into(),
            ExportError::Io(IoError::InvalidOption { option, reason }) => ApiError {
                field: Some(option.to_string()),
                ..ApiError::new(400, "invalid_parameter", reason)
            },
            ExportError::Io(IoError::Store(e)) => e.into(),
            ExportError::Io(_) | ExportError::Task(_) => {
                tracing::error!(error = %e, "segment export failed");
                ApiError::new(500, "internal", "internal error; see the server log")
            }
        }
    }
}

/// A webhook export, as `POST …/segments/{id}/export/webhook` and `lodestar export segment
/// --webhook` ask for it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where to post: `http://host[:port]/path`.
    pub url: String,
    /// Traits or scores to send per member.
    #[serde(default)]
    pub attributes: Vec<String>,
    /// Members per batch (1 to [`MAX_BATCH_SIZE`]).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Key of the `X-Lodestar-Signature` HMAC; no signature without one.
    #[serde(default)]
    pub secret: Option<String>,
    /// Extra headers for every request (`Authorization`, …).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per batch, the first included.
    pub attempts: u32,
    /// The wait after the first failed attempt; doubled after each next one.
    pub first_backoff: Duration,
    /// The longest wait, a receiver's `Retry-After` included.
    pub max_wait: Duration,
    /// How long one attempt may take, connecting and reading the answer included.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, waiting 0.5 s, 1 s, 2 s, 4 s (or `Retry-After`, at most 30 s); 30 s an
    /// attempt.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`, after `attempt` failed.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let doubled = self
            .first_backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(16));
        retry_after.unwrap_or(doubled).min(self.max_wait)
    }
}

/// The segment a report is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentRef {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
}

/// What a webhook export did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryReport {
    /// This export's id (in every body and `X-Lodestar-Delivery`).
    pub export_id: String,
    /// The segment.
    pub segment: SegmentRef,
    /// The receiver.
    pub url: String,
    /// Members per batch.
    pub batch_size: usize,
    /// Batches planned.
    pub batches: u64,
    /// Batches the receiver accepted.
    pub batches_sent: u64,
    /// Members in those batches.
    pub members_sent: u64,
    /// HTTP attempts made, retries included.
    pub attempts: u64,
    /// Seconds taken.
    pub elapsed: f64,
    /// The batch that stopped the export, if one did.
    pub failed: Option<FailedBatch>,
}

/// A batch the receiver did not accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedBatch {
    /// Its number (1 for the first).
    pub batch: u64,
    /// Attempts made for it.
    pub attempts: u32,
    /// The receiver's last status, if it answered.
    pub status: Option<u16>,
    /// What went wrong on the last attempt.
    pub reason: String,
}

impl DeliveryReport {
    /// One line for people: what failed, where and why, or what was delivered.
    pub fn summary(&self) -> String {
        match &self.failed {
            Some(f) => format!(
                "webhook export of segment {} to {} failed at batch {} of {} after {} attempt(s): {}; {} batch(es) with {} members were delivered before",
                self.segment.id,
                self.url,
                f.batch,
                self.batches,
                f.attempts,
                f.reason,
                self.batches_sent,
                self.members_sent
            ),
            None => format!(
                "delivered {} members of segment {} to {} in {} batch(es), {} attempt(s), {:.1} s",
                self.members_sent,
                self.segment.id,
                self.url,
                self.batches_sent,
                self.attempts,
                self.elapsed
            ),
        }
    }
}

/// A checked webhook request.
struct Target {
    uri: Uri,
    secret: Option<Vec<u8>>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Target {
    fn new(request: &WebhookRequest) -> Result<Target, ExportError> {
        let invalid = |field, message: String| ExportError::Invalid { field, message };
        let uri: Uri = request
            .url
            .parse()
            .map_err(|e| invalid("url", format!("{:?} is not a URL: {e}", request.url)))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(invalid(
                    "url",
                    "https:// is not supported yet (no TLS stack in the binary); use http://, e.g. to a local relay".into(),
                ));
            }
            _ => {
                return Err(invalid(
                    "url",
                    format!("{:?} is not an http:// URL", request.url),
                ));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(invalid("url", format!("{:?} names no host", request.url)));
        }
        if !(1..=MAX_BATCH_SIZE).contains(&request.batch_size) {
            return Err(invalid(
                "batch_size",
                format!(
                    "{} is not between 1 and {MAX_BATCH_SIZE}",
                    request.batch_size
                ),
            ));
        }
        if request.secret.as_deref() == Some("") {
            return Err(invalid("secret", "the secret is empty".into()));
        }
        let mut headers = Vec::new();
        for (name, value) in &request.headers {
            let header = HeaderName::try_from(name.as_str())
                .map_err(|_| invalid("headers", format!("{name:?} is not a header name")))?;
            if RESERVED_HEADERS.contains(&header.as_str()) {
                return Err(invalid(
                    "headers",
                    format!("{name} is set by Lodestar and cannot be given"),
                ));
            }
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| invalid("headers", format!("the value of {name} is not valid")))?;
            headers.push((header, value));
        }
        Ok(Target {
            uri,
            secret: request.secret.as_ref().map(|s| s.as_bytes().to_vec()),
            headers,
        })
    }
}

/// Posts the members of segment `segment` of `project` to the request's URL, batch by
/// batch, and reports what was delivered. Runs until the last batch is accepted or one
/// fails; the walk over the store runs on a blocking thread.
pub async fn export_segment(
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    project: ProjectInfo,
    segment: i64,
    request: WebhookRequest,
    export_id: String,
    policy: RetryPolicy,
) -> Result<DeliveryReport, ExportError> {
    let started = Instant::now();
    let target = Target::new(&request)?;
    let (batches, mut rx) = tokio::sync::mpsc::channel::<WebhookBatch>(1);
    let loaded = {
        let store = Arc::clone(&store);
        let project = project.clone();
        tokio::task::spawn_blocking(move || load_segment(&store, &project, segment))
            .await
            .map_err(|e| ExportError::Task(e.to_string()))??
    };
    let mut report = DeliveryReport {
        export_id: export_id.clone(),
        segment: SegmentRef {
            id: loaded.row.id,
            name: loaded.row.name.clone(),
        },
        url: request.url.clone(),
        batch_size: request.batch_size,
        batches: 0,
        batches_sent: 0,
        members_sent: 0,
        attempts: 0,
        elapsed: 0.0,
        failed: None,
    };
    let attributes = request.attributes;
    let batch_size = request.batch_size;
    let producer = tokio::task::spawn_blocking(move || {
        let envelope = BatchEnvelope {
            segment_id: loaded.row.id,
            segment_name: &loaded.row.name,
            export_id: &export_id,
            batch_size,
        };
        lodestar_io::segment_batches(
            &*store,
            project.id,
            &loaded.export(&attributes),
            &envelope,
            &*clock,
            &mut |batch| batches.blocking_send(batch).map_err(|_| IoError::Cancelled),
        )
    });
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    while let Some(batch) = rx.recv().await {
        report.batches = batch.batches;
        let delivery = format!(
            "{}-{}-{}",
            report.segment.id, report.export_id, batch.number
        );
        let outcome = deliver(&client, &target, &policy, &delivery, batch.body.into()).await;
        report.attempts += u64::from(outcome.attempts);
        match outcome.refused {
            None => {
                report.batches_sent += 1;
                report.members_sent += batch.members;
            }
            Some((status, reason)) => {
                report.failed = Some(FailedBatch {
                    batch: batch.number,
                    attempts: outcome.attempts,
                    status,
                    reason,
                });
                break;
            }
        }
    }
    drop(rx);
    match producer.await {
        Ok(Ok(_)) => {}
        Ok(Err(IoError::Cancelled)) if report.failed.is_some() => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => return Err(ExportError::Task(e.to_string())),
    }
    report.elapsed = started.elapsed().as_secs_f64();
    Ok(report)
}

/// How one batch's delivery ended.
struct Outcome {
    attempts: u32,
    /// The last status (if the receiver answered) and why the batch was not accepted.
    refused: Option<(Option<u16>, String)>,
}

/// What one attempt gave.
enum Attempt {
    Accepted,
    /// Worth retrying (after `Retry-After`, if the receiver sent one).
    Retry {
        status: Option<u16>,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying would not help.
    Refused {
        status: u16,
        reason: String,
    },
}

/// Posts one batch, retrying as `policy` says.
async fn deliver(
    client: &Client<HttpConnector, Full<Bytes>>,
    target: &Target,
    policy: &RetryPolicy,
    delivery: &str,
    body: Bytes,
) -> Outcome {
    let signature = target
        .secret
        .as_ref()
        .map(|secret| signature_header(secret, &body));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let request = match build_request(target, delivery, signature.as_deref(), body.clone()) {
            Ok(request) => request,
            Err(e) => {
                return Outcome {
                    attempts: attempt,
                    refused: Some((None, format!("cannot build the request: {e}"))),
                };
            }
        };
        let result = match tokio::time::timeout(policy.timeout, post(client, request)).await {
            Ok(result) => result,
            Err(_) => Attempt::Retry {
                status: None,
                reason: format!("no answer within {} s", policy.timeout.as_secs_f64()),
                retry_after: None,
            },
        };
        match result {
            Attempt::Accepted => {
                return Outcome {
                    attempts: attempt,
                    refused: None,
                };
            }
            Attempt::Refused { status, reason } => {
                return Outcome {
                    attempts: attempt,
                    refused: Some((Some(status), reason)),
                };
            }
            Attempt::Retry {
                status,
                reason,
                retry_after,
            } => {
                if attempt >= policy.attempts {
                    return Outcome {
                        attempts: attempt,
                        refused: Some((status, reason)),
                    };
                }
                let wait = policy.backoff(attempt, retry_after);
                tracing::info!(delivery, attempt, %reason, wait_ms = wait.as_millis() as u64, "webhook batch retried");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn build_request(
    target: &Target,
    delivery: &str,
    signature: Option<&str>,
    body: Bytes,
) -> Result<hyper::Request<Full<Bytes>>, hyper::http::Error> {
    let mut request = hyper::Request::post(target.uri.clone());
    for (name, value) in &target.headers {
        request = request.header(name, value);
    }
    request = request
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, concat!("lodestar/", env!("CARGO_PKG_VERSION")))
        .header("x-lodestar-delivery", delivery);
    if let Some(signature) = signature {
        request = request.header("x-lodestar-signature", signature);
    }
    request.body(Full::new(body))
}

/// One attempt: sends, reads (the start of) the answer, classifies it.
async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    request: hyper::Request<Full<Bytes>>,
) -> Attempt {
    let authority = request
        .uri()
        .authority()
        .map_or_else(String::new, |a| a.to_string());
    let response = match client.request(request).await {
        Ok(response) => response,
        Err(e) => {
            let what = if e.is_connect() {
                format!("cannot connect to {authority}")
            } else {
                "the request failed".to_string()
            };
            return Attempt::Retry {
                status: None,
                reason: format!("{what}: {}", error_chain(&e)),
                retry_after: None,
            };
        }
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // Read the answer (so the connection can be reused), keeping its start for the report.
    let answer = Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if status.is_success() {
        return Attempt::Accepted;
    }
    let mut reason = format!("answered {status}");
    let quoted = String::from_utf8_lossy(&answer[..answer.len().min(QUOTED_BYTES)]);
    if !quoted.trim().is_empty() {
        reason.push_str(&format!(": {:?}", quoted.trim()));
    }
    if status.as_u16() == 429 || status.is_server_error() {
        Attempt::Retry {
            status: Some(status.as_u16()),
            reason,
            retry_after,
        }
    } else {
        if status.is_redirection() {
            reason.push_str(" (redirects are not followed)");
        }
        Attempt::Refused {
            status: status.as_u16(),
            reason,
        }
    }
}

/// An error with its causes: `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `sha256=<hex>`: the value of `X-Lodestar-Signature` for `body` signed with `secret`.
pub fn signature_header(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(secret, body)))
}

/// HMAC-SHA256 (RFC 2104) of `message` with `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The HMAC-SHA-256 test cases of RFC 4231, section 4.
    #[test]
    fn hmac_matches_rfc_4231() {
        let long_key = [0xaa; 131];
        let cases: [(&[u8], &[u8], &str); 6] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 20],
                &[0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                &[
                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                    23, 24, 25,
                ],
                &[0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                &long_key,
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                &long_key,
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, want) in cases {
            assert_eq!(hex::encode(hmac_sha256(key, data)), want);
        }
        // Test case 5: truncated to 128 bits.
        let mac = hmac_sha256(&[0x0c; 20], b"Test With Truncation");
        assert_eq!(hex::encode(&mac[..16]), "a3b6167473100ee06e0c796c2955552b");
    }

    #[test]
    fn backoff_doubles_and_honours_retry_after_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let waits: Vec<f64> = (1..=4)
            .map(|a| policy.backoff(a, None).as_secs_f64())
            .collect();
        assert_eq!(waits, [0.5, 1.0, 2.0, 4.0]);
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn requests_are_checked_before_anything_is_sent() {
        let ok = WebhookRequest {
            url: "http://127.0.0.1:9/hook".into(),
            attributes: vec![],
            batch_size: 500,
            secret: None,
            headers: BTreeMap::new(),
        };
        assert!(Target::new(&ok).is_ok());
        for (request, field) in [
            (
                WebhookRequest {
                    url: "https://example.com/hook".into(),
                    ..ok.clone()
                },
                "url",
            ),
            (
                WebhookRequest {
                    url: "ftp://example.com/".into(),
                    ..ok.clone()
                },
                "url",
            ),
            (
                WebhookRequest {
                    batch_size: 0,
                    ..ok.clone()
                },
                "batch_size",
            ),
            (
                WebhookRequest {
                    batch_size: MAX_BATCH_SIZE + 1,
                    ..ok.clone()
                },
                "batch_size",
            ),
            (
                WebhookRequest {
                    headers: BTreeMap::from([("Content-Type".into(), "text/plain".into())]),
                    ..ok.clone()
                },
                "headers",
            ),
            (
                WebhookRequest {
                    headers: BTreeMap::from([("bad header".into(), "x".into())]),
                    ..ok.clone()
                },
                "headers",
            ),
        ] {
            match Target::new(&request) {
                Err(ExportError::Invalid { field: f, .. }) => assert_eq!(f, field, "{request:?}"),
                Err(e) => panic!("{request:?}: {e}"),
                Ok(_) => panic!("{request:?} was accepted"),
            }
        }
    }
}
