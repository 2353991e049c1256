//! JSON lines: one Segment call per line, decoded by `lodestar-ingest`.

use std::fs::File;
use std::io::{BufRead, BufReader};

use lodestar_core::{MessageKind, Timestamp};
use lodestar_ingest::{Limits, Route, decode_request};
use lodestar_store::Quarantined;
use serde_json::Value;
use xxhash_rust::xxh3::Xxh3;

use super::ids::{HashWriter, Occurrences, content_message_id};
use super::{BOM, Problem, Run};
use crate::error::IoError;

/// The largest line decoded (see the module docs of [`crate::import`]).
const MAX_LINE_BYTES: usize = 1 << 20;

/// The fields a line's receive time is taken from, in order of preference.
const TIME_FIELDS: [&str; 4] = ["receivedAt", "sentAt", "timestamp", "originalTimestamp"];

/// Imports a JSON lines file.
pub(crate) fn import_jsonl(run: &mut Run<'_>, file: File) -> Result<(), IoError> {
    let mut input = BufReader::with_capacity(1 << 20, file);
    let limits = Limits {
        max_event_bytes: MAX_LINE_BYTES,
        max_request_bytes: MAX_LINE_BYTES,
        ..Limits::default()
    };
    let mut occurrences = Occurrences::default();
    let mut line = Vec::with_capacity(4096);
    let mut line_no = 0u64;
    let mut bytes = 0u64;
    let mut seen_content = false;
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|source| IoError::Read {
                path: run.path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        bytes += n as u64;
        let mut text = line.as_slice();
        if line_no == 1 {
            text = text.strip_prefix(BOM).unwrap_or(text);
        }
        let text = text.trim_ascii();
        if text.is_empty() {
            continue;
        }
        if !seen_content && text.starts_with(b"[") {
            return Err(IoError::InvalidFile {
                path: run.path.to_path_buf(),
                reason: "the file is one JSON array, not JSON lines; write one object per line (jq -c '.[]')"
                    .to_string(),
            });
        }
        seen_content = true;
        run.row();
        run.bytes_read = bytes;
        let raw = String::from_utf8_lossy(text);
        match decode_line(text, &limits, &mut occurrences) {
            Ok(Line { message, warnings }) => {
                for w in warnings {
                    run.warn(Quarantined {
                        code: w.code.to_string(),
                        message: w.message,
                        field: format!("line {line_no}, field {}", w.field),
                        raw: super::truncate(&raw, super::MAX_RAW_BYTES).to_string(),
                    });
                }
                run.accept(message)?;
            }
            Err(problem) => run.reject(line_no, problem, &raw)?,
        }
    }
    Ok(())
}

struct Line {
    message: lodestar_core::Message,
    warnings: Vec<lodestar_ingest::Rejection>,
}

fn decode_line(
    text: &[u8],
    limits: &Limits,
    occurrences: &mut Occurrences,
) -> Result<Line, Problem> {
    let root = match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(root)) => root,
        Ok(_) => {
            return Err(Problem::new(
                "invalid_body",
                "",
                "a line must be a JSON object",
            ));
        }
        Err(err) => {
            return Err(Problem::new(
                "invalid_json",
                "",
                format!("the line is not JSON: {err}"),
            ));
        }
    };
    if root.contains_key("batch") && !root.contains_key("type") {
        return Err(Problem::new(
            "invalid_body",
            "field batch",
            "the line holds a batch; write one call per line",
        ));
    }
    let route = match root.get("type") {
        None | Some(Value::Null) => Route::Track,
        Some(Value::String(name)) => match MessageKind::parse(name) {
            Some(kind) => Route::for_kind(kind),
            None => {
                return Err(Problem::new(
                    "unknown_type",
                    "field type",
                    "type is not one of track, identify, page, screen, group, alias",
                ));
            }
        },
        Some(_) => {
            return Err(Problem::new(
                "invalid_type",
                "field type",
                "type must be a string",
            ));
        }
    };
    let received_at = receive_time(&root)?;

    let mut assigned = false;
    let mut new_id = || {
        assigned = true;
        String::new()
    };
    let decoded = decode_request(route, text, received_at, limits, &mut new_id).map_err(|e| {
        Problem::new(
            e.code(),
            format!("field {}", e.field()),
            e.message().to_string(),
        )
    })?;
    let mut message = decoded
        .messages
        .into_iter()
        .next()
        .ok_or_else(|| Problem::new("invalid_body", "", "the line decoded to no message"))?;
    if assigned {
        let mut hasher = HashWriter(Xxh3::new());
        hasher.0.update(b"lodestar-jsonl\0");
        serde_json::to_writer(&mut hasher, &message)
            .map_err(|e| Problem::new("invalid_body", "", e.to_string()))?;
        let content = hasher.0.digest128();
        message.message_id = content_message_id("jsonl", content, occurrences.next(content));
    }
    Ok(Line {
        message,
        warnings: decoded.warnings,
    })
}

/// The receive time of a line: the first of [`TIME_FIELDS`] present. A `receivedAt` that
/// is not a time is an error here (the decoder does not read it); the others are checked
/// by the decoder with its own codes.
fn receive_time(root: &lodestar_core::JsonMap) -> Result<Timestamp, Problem> {
    for key in TIME_FIELDS {
        match root.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(text)) => {
                if let Some(at) = Timestamp::parse(text) {
                    return Ok(at);
                }
            }
            Some(_) => {}
        }
        if key == "receivedAt" {
            return Err(Problem::new(
                "invalid_timestamp",
                "field receivedAt",
                "receivedAt is not an ISO 8601 date-time",
            ));
        }
        // Present but not a time: the decoder refuses it with the field's own message.
        return Ok(Timestamp(0));
    }
    Err(Problem::new(
        "missing_timestamp",
        "",
        "the line has no timestamp, originalTimestamp, sentAt or receivedAt; an import has no receive time of its own",
    ))
}
