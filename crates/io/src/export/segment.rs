//! A saved segment's members with chosen attributes: written as a file (JSON lines, CSV,
//! Parquet) by [`export_segment`], or cut into JSON bodies for a webhook, one per batch of
//! members, by [`segment_batches`]. Sending the bodies is the caller's business (the server's
//! `webhook` module): nothing here knows HTTP.
//!
//! Both walk the project's profiles once more than they write: a first pass counts the
//! members found and sees which kinds of values each attribute holds, so that a Parquet
//! column gets one type and a webhook body says how many batches there are.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::time::Instant;

use lodestar_core::{Clock, ProjectId};
use lodestar_store::{EventStore, Profile};
use serde_json::{Map, Value, json};

use super::table::{Column, Datum, Kind};
use super::{ExportSummary, open_table, visit_profiles, write_json_line};
use crate::Format;
use crate::error::IoError;

/// The columns every segment export starts with, before the attributes.
const MEMBER_COLUMNS: [&str; 3] = ["person_id", "user_ids", "anonymous_ids"];

/// What a segment export lists: its members (ascending), the extra values per person (model
/// scores, stage …), and the attributes to write — trait names (dots reach into objects) or
/// names of those extra values.
pub struct SegmentExport<'a> {
    /// Members, ascending.
    pub members: &'a [u64],
    /// Extra values per person, looked up when a trait of that name is absent.
    pub extra: &'a HashMap<u64, Map<String, Value>>,
    /// Attribute columns, in order: distinct, none empty or named like a member column.
    pub attributes: &'a [String],
}

impl SegmentExport<'_> {
    /// Refuses attribute lists that would give two columns (or two keys) the same name.
    fn check(&self) -> Result<(), IoError> {
        for (i, a) in self.attributes.iter().enumerate() {
            let reason = if a.is_empty() {
                "an attribute name is empty".to_string()
            } else if MEMBER_COLUMNS.contains(&a.as_str()) {
                format!("{a:?} is a column of every segment export; leave it out")
            } else if self.attributes[..i].contains(a) {
                format!("{a:?} is named twice")
            } else {
                continue;
            };
            return Err(IoError::InvalidOption {
                option: "attributes",
                reason,
            });
        }
        Ok(())
    }

    fn is_member(&self, p: &Profile) -> bool {
        self.members.binary_search(&p.person.0).is_ok()
    }

    /// A trait (dots reach into objects), else the person's extra value of that name.
    fn value_of(&self, p: &Profile, name: &str) -> Value {
        let mut parts = name.split('.');
        let mut at = p.traits.get(parts.next().unwrap_or_default());
        for key in parts {
            at = at.and_then(|v| v.get(key));
        }
        at.cloned()
            .or_else(|| {
                self.extra
                    .get(&p.person.0)
                    .and_then(|m| m.get(name))
                    .cloned()
            })
            .unwrap_or(Value::Null)
    }

    /// `{person_id, user_ids, anonymous_ids, attributes: {…}}`: a JSON line, or one member of
    /// a webhook batch.
    fn member_json(&self, p: &Profile) -> Value {
        let attributes: Map<String, Value> = self
            .attributes
            .iter()
            .map(|a| (a.clone(), self.value_of(p, a)))
            .collect();
        json!({
            "person_id": p.person.0,
            "user_ids": p.user_ids,
            "anonymous_ids": p.anonymous_ids,
            "attributes": attributes,
        })
    }

    /// One table row; attribute values converted to their column's kind. Counts in
    /// `mismatched` the values that do not fit it (written as null).
    fn row(&self, p: &Profile, kinds: &[Kind], mismatched: &mut u64) -> Vec<Datum> {
        let mut row = vec![
            Datum::Int(p.person.0 as i64),
            Datum::List(p.user_ids.clone()),
            Datum::List(p.anonymous_ids.clone()),
        ];
        for (a, &kind) in self.attributes.iter().zip(kinds) {
            let datum = match (kind, self.value_of(p, a)) {
                (_, Value::Null) => Datum::Null,
                (Kind::OptFloat, Value::Number(n)) => n.as_f64().map_or(Datum::Null, Datum::Float),
                (Kind::OptBool, Value::Bool(b)) => Datum::Bool(b),
                (Kind::OptText, Value::String(s)) => Datum::Text(s),
                (Kind::OptText, other) => Datum::Text(other.to_string()),
                _ => {
                    *mismatched += 1;
                    Datum::Null
                }
            };
            row.push(datum);
        }
        row
    }
}

/// What the kinds of an attribute's values seen so far allow as its column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nothing,
    Numbers,
    Bools,
    Text,
}

impl Seen {
    fn and(self, value: &Value) -> Seen {
        let this = match value {
            Value::Null => return self,
            Value::Number(_) => Seen::Numbers,
            Value::Bool(_) => Seen::Bools,
            _ => Seen::Text,
        };
        match self {
            Seen::Nothing => this,
            same if same == this => same,
            _ => Seen::Text,
        }
    }

    /// All numbers → a double; all flags → a boolean; else (or nothing) text, objects and
    /// arrays as JSON text. Always nullable.
    fn kind(self) -> Kind {
        match self {
            Seen::Numbers => Kind::OptFloat,
            Seen::Bools => Kind::OptBool,
            Seen::Nothing | Seen::Text => Kind::OptText,
        }
    }
}

/// What a first pass over the members finds.
struct Survey {
    /// Members with a profile.
    members: u64,
    /// Each attribute's column kind.
    kinds: Vec<Kind>,
}

fn survey(
    store: &dyn EventStore,
    project: ProjectId,
    segment: &SegmentExport<'_>,
) -> Result<Survey, IoError> {
    let mut members = 0;
    let mut seen = vec![Seen::Nothing; segment.attributes.len()];
    visit_members(store, project, segment, |p| {
        members += 1;
        for (s, a) in seen.iter_mut().zip(segment.attributes) {
            *s = s.and(&segment.value_of(&p, a));
        }
        Ok(())
    })?;
    Ok(Survey {
        members,
        kinds: seen.into_iter().map(Seen::kind).collect(),
    })
}

/// Runs `f` on each member's profile, in the store's order (ascending person id).
fn visit_members(
    store: &dyn EventStore,
    project: ProjectId,
    segment: &SegmentExport<'_>,
    mut f: impl FnMut(Profile) -> Result<(), IoError>,
) -> Result<(), IoError> {
    visit_profiles(store, project, |p| {
        if segment.is_member(&p) { f(p) } else { Ok(()) }
    })
}

/// Writes a segment's members with the chosen attributes: `person_id`, `user_ids`,
/// `anonymous_ids`, then one column per attribute.
///
/// - **JSON lines**: `{person_id, user_ids, anonymous_ids, attributes: {…}}` per member,
///   values as they are.
/// - **CSV**: ids joined by `;`, attributes as text (strings as they are, other values as
///   JSON, absent ones empty), every cell neutralised.
/// - **Parquet**: `person_id` as `INT64 (INTEGER(64,false))`, the ids as `LIST` of `UTF8`,
///   each attribute typed from its values over all members: all numbers → `DOUBLE`, all
///   flags → `BOOLEAN`, else `UTF8` (objects and arrays as JSON text); nullable. A value that
///   changed kind between the typing pass and the writing pass is written as null (logged).
pub fn export_segment(
    store: &dyn EventStore,
    project: ProjectId,
    segment: &SegmentExport<'_>,
    format: Format,
    out: &mut (dyn Write + Send),
) -> Result<ExportSummary, IoError> {
    segment.check()?;
    let started = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut rows = 0u64;
    match format {
        Format::Jsonl => {
            visit_members(store, project, segment, |p| {
                write_json_line(&mut out, &segment.member_json(&p))?;
                rows += 1;
                Ok(())
            })?;
        }
        Format::Csv | Format::Parquet => {
            let kinds = match format {
                Format::Parquet => survey(store, project, segment)?.kinds,
                _ => vec![Kind::OptText; segment.attributes.len()],
            };
            let columns = columns(segment, &kinds);
            let sink: &mut (dyn Write + Send) = &mut out;
            let mut table = open_table(format, "segment", &columns, sink)?;
            let mut mismatched = 0;
            visit_members(store, project, segment, |p| {
                table.write(segment.row(&p, &kinds, &mut mismatched))?;
                rows += 1;
                Ok(())
            })?;
            table.finish()?;
            if mismatched > 0 {
                tracing::warn!(
                    mismatched,
                    "segment export: values changed kind while exporting; written as null"
                );
            }
        }
    }
    out.flush().map_err(IoError::Write)?;
    Ok(ExportSummary {
        format,
        rows,
        elapsed: started.elapsed(),
    })
}

fn columns(segment: &SegmentExport<'_>, kinds: &[Kind]) -> Vec<Column> {
    let members = MEMBER_COLUMNS
        .into_iter()
        .zip([Kind::UInt, Kind::TextList, Kind::TextList])
        .map(|(name, kind)| Column {
            name: name.into(),
            kind,
        });
    let attributes = segment
        .attributes
        .iter()
        .zip(kinds)
        .map(|(name, &kind)| Column {
            name: name.clone().into(),
            kind,
        });
    members.chain(attributes).collect()
}

/// What every webhook body of one export says besides its members.
#[derive(Debug, Clone, Copy)]
pub struct BatchEnvelope<'a> {
    /// The segment's id.
    pub segment_id: i64,
    /// The segment's name.
    pub segment_name: &'a str,
    /// This export's id (the same in every batch, and in every retry of a batch).
    pub export_id: &'a str,
    /// Members per batch, at least 1.
    pub batch_size: usize,
}

/// One webhook body: members `(number - 1) * batch_size` onwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookBatch {
    /// 1 for the first batch.
    pub number: u64,
    /// The batches planned when the export started (members found / batch size, rounded up).
    pub batches: u64,
    /// Members in this batch.
    pub members: u64,
    /// The JSON body: `{"segment": {"id", "name"}, "export_id", "batch", "batches",
    /// "members": [{person_id, user_ids, anonymous_ids, attributes}], "sent_at"}`.
    pub body: Vec<u8>,
}

/// Cuts a segment's members into webhook bodies of `envelope.batch_size` members and hands
/// each to `emit` as soon as it is full (one body in memory at a time). `sent_at` is
/// `clock`'s time when the body is finished. An error of `emit` stops the walk and is
/// returned as it is. Returns the batches emitted.
pub fn segment_batches(
    store: &dyn EventStore,
    project: ProjectId,
    segment: &SegmentExport<'_>,
    envelope: &BatchEnvelope<'_>,
    clock: &dyn Clock,
    emit: &mut dyn FnMut(WebhookBatch) -> Result<(), IoError>,
) -> Result<u64, IoError> {
    segment.check()?;
    if envelope.batch_size == 0 {
        return Err(IoError::InvalidOption {
            option: "batch_size",
            reason: "a batch holds at least one member".to_string(),
        });
    }
    let size = envelope.batch_size as u64;
    let batches = survey(store, project, segment)?.members.div_ceil(size);
    let mut open: Option<WebhookBatch> = None;
    let mut started = 0;
    let mut finish = |mut batch: WebhookBatch| -> Result<(), IoError> {
        let sent_at = clock.now().to_rfc3339();
        batch.body.extend_from_slice(b"],\"sent_at\":");
        serde_json::to_writer(&mut batch.body, &sent_at).map_err(json_error)?;
        batch.body.push(b'}');
        emit(batch)
    };
    visit_members(store, project, segment, |p| {
        let mut batch = match open.take() {
            Some(mut batch) => {
                batch.body.push(b',');
                batch
            }
            None => {
                started += 1;
                start_batch(envelope, started, batches)?
            }
        };
        serde_json::to_writer(&mut batch.body, &segment.member_json(&p)).map_err(json_error)?;
        batch.members += 1;
        if batch.members == size {
            finish(batch)
        } else {
            open = Some(batch);
            Ok(())
        }
    })?;
    if let Some(last) = open {
        finish(last)?;
    }
    Ok(started)
}

/// A body up to its first member: `{"segment": …, "export_id": …, "batch": k, "batches": n,
/// "members": [`.
fn start_batch(
    envelope: &BatchEnvelope<'_>,
    number: u64,
    batches: u64,
) -> Result<WebhookBatch, IoError> {
    let head = json!({"id": envelope.segment_id, "name": envelope.segment_name});
    let mut body = b"{\"segment\":".to_vec();
    serde_json::to_writer(&mut body, &head).map_err(json_error)?;
    body.extend_from_slice(b",\"export_id\":");
    serde_json::to_writer(&mut body, envelope.export_id).map_err(json_error)?;
    body.extend_from_slice(
        format!(",\"batch\":{number},\"batches\":{batches},\"members\":[").as_bytes(),
    );
    Ok(WebhookBatch {
        number,
        batches,
        members: 0,
        body,
    })
}

fn json_error(e: serde_json::Error) -> IoError {
    IoError::Write(e.into())
}
