//! Request handlers: decode, call the store, encode.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use lodestar_ingest::{Decoded, Rejection, Route, decode_body, decode_request};
use lodestar_store::{AppendBatch, EventStore, ProjectInfo, Quarantined};

use crate::AppState;
use crate::error::ApiError;
use crate::webhook::{self, ExportError, WebhookRequest};

/// `POST /v1/{track|identify|page|screen|group|alias|batch}`
pub(crate) async fn ingest(
    State(state): State<Arc<AppState>>,
    Path(call): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let route_name = Route::from_path_segment(&call)
        .map(|r| r.as_str())
        .unwrap_or("unknown");
    let response = match ingest_inner(&state, &call, &headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    state
        .metrics
        .observe_request(route_name, response.status().as_u16(), started.elapsed());
    response
}

async fn ingest_inner(
    state: &AppState,
    call: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let route = Route::from_path_segment(call).ok_or_else(|| {
        ApiError::new(
            404,
            "unknown_route",
            format!(
                "no call named {call:?}; use track, identify, page, screen, group, alias or batch"
            ),
        )
    })?;
    let _permit = state
        .in_flight
        .acquire()
        .await
        .map_err(|_| ApiError::new(503, "shutting_down", "server is shutting down"))?;
    let raw = axum::body::to_bytes(body, state.limits.max_request_bytes + 1)
        .await
        .map_err(|_| ApiError {
            status: 413,
            code: "payload_too_large".into(),
            message: format!(
                "request body is over the limit of {} bytes",
                state.limits.max_request_bytes
            ),
            field: Some("body".into()),
        })?;
    let header_key = basic_auth_user(headers);
    // Authenticate from the header first, so bad bodies can be quarantined for the project.
    let header_project = match &header_key {
        Some(key) => Some(
            state
                .store
                .authenticate(key)
                .ok_or_else(|| ApiError::unauthorized("invalid_write_key", "unknown write key"))?,
        ),
        None => None,
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let received_at = state.clock.now();
    let decoded = decode_body(&raw, encoding, &state.limits).and_then(|body| {
        decode_request(route, &body, received_at, &state.limits, &mut || {
            uuid::Uuid::new_v4().to_string()
        })
    });
    let decoded: Decoded = match decoded {
        Ok(d) => d,
        Err(e) => {
            state.metrics.add_rejected(1);
            if let Some(project) = &header_project {
                // Keep the refused request in the quarantine too, so users see it.
                let preview = String::from_utf8_lossy(&raw[..raw.len().min(1024)]).to_string();
                let q = Quarantined {
                    code: e.code().to_string(),
                    message: e.message().to_string(),
                    field: e.field().to_string(),
                    raw: preview,
                };
                if let Ok(ticket) = state.store.append(
                    project.id,
                    AppendBatch {
                        rejected: vec![q],
                        ..Default::default()
                    },
                ) {
                    let _ = ticket.wait().await;
                }
            }
            return Err(e.into());
        }
    };
    let project: ProjectInfo = match header_project {
        Some(p) => p,
        None => {
            let key = decoded.write_key.as_deref().ok_or_else(|| {
                ApiError::unauthorized(
                    "missing_write_key",
                    "send the write key as the HTTP Basic user name or as writeKey in the body",
                )
            })?;
            state
                .store
                .authenticate(key)
                .ok_or_else(|| ApiError::unauthorized("invalid_write_key", "unknown write key"))?
        }
    };
    state
        .metrics
        .add_received((decoded.messages.len() + decoded.rejected.len()) as u64);
    state.metrics.add_rejected(decoded.rejected.len() as u64);
    let batch = AppendBatch {
        messages: decoded.messages,
        rejected: decoded.rejected.into_iter().map(quarantined).collect(),
        warnings: decoded.warnings.into_iter().map(quarantined).collect(),
    };
    let outcome = state.store.append(project.id, batch)?.wait().await?;
    Ok((
        StatusCode::OK,
        Json(json!({
            "success": true,
            "stored": outcome.stored,
            "duplicates": outcome.duplicates,
            "rejected": outcome.rejected,
            "warnings": outcome.warnings,
        })),
    )
        .into_response())
}

fn quarantined(r: Rejection) -> Quarantined {
    Quarantined {
        code: r.code.to_string(),
        message: r.message,
        field: r.field,
        raw: r.raw.to_string(),
    }
}

/// The user name of an HTTP Basic `Authorization` header (Segment sends the write key there,
/// with an empty password). A `Bearer` token is accepted as the key too.
fn basic_auth_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    if let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        return Some(token.trim().to_string()).filter(|t| !t.is_empty());
    }
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let user = decoded.split_once(':').map(|(u, _)| u).unwrap_or(&decoded);
    Some(user.to_string()).filter(|u| !u.is_empty())
}

/// Standard base64 (with or without padding).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let n = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    Some(out)
}

/// `GET /healthz`
pub(crate) async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.projects() {
        Ok(projects) => Json(json!({"status": "ok", "projects": projects.len()})).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /metrics` (Prometheus text format)
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.render(state.store.metrics());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub(crate) fn check_admin(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<(), ApiError> {
    match &state.admin_token {
        Some(token) => {
            let sent = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if sent.is_some_and(|s| constant_time_eq(s.trim().as_bytes(), token.as_bytes())) {
                Ok(())
            } else {
                Err(ApiError::unauthorized(
                    "unauthorized",
                    "the admin API needs 'Authorization: Bearer <admin token>'",
                ))
            }
        }
        None if peer.ip().is_loopback() => Ok(()),
        None => Err(ApiError::unauthorized(
            "unauthorized",
            "no admin token is configured; the admin API answers loopback clients only",
        )),
    }
}

/// Compares two secrets in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize)]
pub(crate) struct CreateProject {
    name: String,
}

/// `POST /api/admin/projects {"name": …}` → the project and its write key (shown once).
pub(crate) async fn create_project(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let req: CreateProject = serde_json::from_slice(&body).map_err(|e| ApiError {
        status: 400,
        code: "invalid_json".into(),
        message: format!("expected {{\"name\": \"…\"}}: {e}"),
        field: Some("name".into()),
    })?;
    let store = state.store.clone();
    let (info, key) = tokio::task::spawn_blocking(move || store.create_project(&req.name))
        .await
        .map_err(|_| ApiError::new(500, "internal", "internal error; see the server log"))??;
    Ok((
        StatusCode::CREATED,
        Json(json!({"project": info, "write_key": key})),
    )
        .into_response())
}

/// `GET /api/admin/projects`
pub(crate) async fn list_projects(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    Ok(Json(json!({"projects": state.store.projects()?})).into_response())
}

/// A page of a list, newest first: at most `limit` rows with ids below `before`
/// (`…/warnings`, `…/audit`).
#[derive(Debug, Deserialize)]
pub(crate) struct PageQuery {
    pub(crate) limit: Option<usize>,
    pub(crate) before: Option<i64>,
}

/// `GET /api/projects/{name}/warnings?limit=&before=`: the ingestion warnings and the
/// quarantine, newest first.
pub(crate) async fn warnings(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let rows = state
        .store
        .warnings(project.id, q.limit.unwrap_or(100).min(10_000), q.before)?;
    Ok(Json(json!({"warnings": rows})).into_response())
}

/// Query of `GET /api/projects/{name}/stage_changes`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct StreamQuery {
    /// Only ids above this.
    after: Option<i64>,
    /// At most this many (default 1000, at most 10,000).
    limit: Option<usize>,
}

/// `GET /api/projects/{name}/stage_changes?after=&limit=`: the lifecycle stage changes in
/// order, for automation to follow.
pub(crate) async fn stage_changes(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let rows = state.store.stage_changes(
        project.id,
        q.after.unwrap_or(0),
        q.limit.unwrap_or(1000).min(10_000),
    )?;
    Ok(Json(json!({"stage_changes": rows})).into_response())
}

/// Query of `POST /api/projects/{name}/stage_changes`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct RunDay {
    /// Record this day (`YYYY-MM-DD`) only; else every ended day not yet recorded.
    date: Option<String>,
}

/// `POST /api/projects/{name}/stage_changes?date=`: records stage changes now instead of at
/// the next hourly tick.
pub(crate) async fn run_stage_changes(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    Query(q): Query<RunDay>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let day = match q.date.as_deref() {
        Some(d) => Some(d.parse::<jiff::civil::Date>().map_err(|_| ApiError {
            field: Some("date".into()),
            ..ApiError::new(
                400,
                "invalid_parameter",
                format!("{d:?} is not a date like 2026-11-01"),
            )
        })?),
        None => None,
    };
    let days = blocking(&state, "stage changes", move |s| {
        lodestar_analytics::jobs::emit_stage_changes(
            &s.store,
            &project,
            s.clock.now(),
            day,
            s.analysis_threads,
        )
    })
    .await?;
    let days: Vec<_> = days
        .into_iter()
        .map(|(day, added)| json!({"day": day, "added": added}))
        .collect();
    Ok(Json(json!({"days": days})).into_response())
}

/// Runs a store- or CPU-heavy job off the async workers, with the shared state.
pub(crate) async fn blocking<T, E>(
    state: &Arc<AppState>,
    what: &str,
    job: impl FnOnce(&AppState) -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || job(&state).map_err(Into::into))
        .await
        .map_err(|e| ApiError::new(500, "internal", format!("{what} failed: {e}")))?
}

/// `POST /api/projects/{name}/models` with the `clv` analysis's parameters: fits the
/// customer-value models, keeps the fit as a new version and every buyer's scores.
pub(crate) async fn fit_models(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let (id, summary) = blocking(&state, "model fit", move |s| {
        lodestar_analytics::jobs::fit_models(
            &s.store,
            &project,
            &body,
            s.clock.now(),
            s.analysis_threads,
            &|step| tracing::info!(step, "model fit"),
        )
    })
    .await?;
    Ok(Json(json!({"id": id, "fit": summary})).into_response())
}

/// `GET /api/projects/{name}/models`: the fitted models, newest first.
pub(crate) async fn list_models(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    Ok(Json(json!({"models": state.store.model_fits(project.id)?})).into_response())
}

/// `GET /api/projects/{name}/persons/{person}/scores`: a person's model scores, newest fit
/// first.
pub(crate) async fn person_scores(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((name, person)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    Ok(Json(json!({"scores": state.store.person_scores(project.id, person)?})).into_response())
}

/// Query of `GET /api/projects/{name}/persons`: exactly one id.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct PersonQuery {
    user_id: Option<String>,
    anonymous_id: Option<String>,
    id: Option<u64>,
    /// Timeline events (default 100, at most 10,000).
    limit: Option<usize>,
}

/// `GET /api/projects/{name}/persons?user_id=|anonymous_id=|id=`: a person looked up by any
/// of their ids — profile, lifecycle stage now, model scores, latest events.
pub(crate) async fn person(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    Query(q): Query<PersonQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let given = [
        q.user_id.is_some(),
        q.anonymous_id.is_some(),
        q.id.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ApiError {
            field: Some("user_id".into()),
            ..ApiError::new(
                400,
                "invalid_parameter",
                "give exactly one of user_id, anonymous_id, id",
            )
        });
    }
    let view = blocking(&state, "person lookup", move |s| {
        lodestar_analytics::jobs::person_view(
            &s.store,
            &project,
            q.user_id.as_deref(),
            q.anonymous_id.as_deref(),
            q.id,
            s.clock.now(),
            q.limit.unwrap_or(100).min(10_000),
        )
    })
    .await?;
    match view {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(ApiError::new(
            404,
            "unknown_person",
            "no person has that id",
        )),
    }
}

/// `GET /api/projects/{name}/schema`: event names, trait keys, computed attributes, RFM
/// layers, scores and segments, for the segment builder's pickers.
pub(crate) async fn schema(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let schema = blocking(&state, "schema", move |s| {
        lodestar_analytics::jobs::schema(&s.store, &project)
    })
    .await?;
    Ok(Json(schema).into_response())
}

/// `POST /api/projects/{name}/segments/preview` with `{"condition": tree, "sample": N}`: the
/// segment's size and first members now.
pub(crate) async fn segment_preview(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let result = blocking(&state, "segment preview", move |s| {
        lodestar_analytics::jobs::segment_preview(
            &s.store,
            &project,
            &s.profiles,
            &body,
            s.clock.now(),
            s.analysis_threads,
        )
    })
    .await?;
    Ok(Json(result).into_response())
}

/// `POST /api/projects/{name}/segments` with `{"name", "condition"}` (dynamic) or
/// `{"name", "persons"}` (static): saves it and records its first members.
pub(crate) async fn create_segment(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let created = blocking(&state, "segment", move |s| {
        lodestar_analytics::jobs::create_segment(
            &s.store,
            &project,
            &s.profiles,
            &body,
            s.clock.now(),
            s.analysis_threads,
        )
    })
    .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `POST /api/projects/{name}/persons/edit`: adds or removes manual tags and records
/// consent per channel for persons given by user id or person id.
pub(crate) async fn edit_persons(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let edited = blocking(&state, "profiles", move |s| {
        lodestar_analytics::jobs::edit_profiles(&s.store, &project, &body, s.clock.now())
    })
    .await?;
    Ok(Json(edited).into_response())
}

/// `GET /api/projects/{name}/segments`: the saved segments with their sizes.
pub(crate) async fn list_segments(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    Ok(Json(json!({"segments": state.store.segments(project.id)?})).into_response())
}

/// Query of the segment member list.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct MembersQuery {
    /// Persons with ids above this.
    after: Option<u64>,
    /// At most this many (default 1000, at most 100,000).
    limit: Option<usize>,
}

/// `GET /api/projects/{name}/segments/{id}/members?after=&limit=`: members, ascending.
pub(crate) async fn segment_members(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((name, id)): Path<(String, i64)>,
    Query(q): Query<MembersQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let members = state.store.segment_members(
        project.id,
        id,
        q.after.unwrap_or(0),
        q.limit.unwrap_or(1000).min(100_000),
    )?;
    Ok(Json(json!({"members": members})).into_response())
}

/// Query of the segment event stream.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SegmentEventsQuery {
    /// One segment only.
    segment: Option<i64>,
    /// Ids above this.
    after: Option<i64>,
    /// At most this many (default 1000, at most 10,000).
    limit: Option<usize>,
}

/// `GET /api/projects/{name}/segment_events?segment=&after=&limit=`: `segment entered` /
/// `segment exited` in order, for journeys to follow.
pub(crate) async fn segment_events(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    Query(q): Query<SegmentEventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let rows = state.store.segment_events(
        project.id,
        q.segment,
        q.after.unwrap_or(0),
        q.limit.unwrap_or(1000).min(10_000),
    )?;
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({"id": r.id, "segment": r.segment, "person": r.person, "at": r.at,
                   "event": if r.entered { "segment entered" } else { "segment exited" }})
        })
        .collect();
    Ok(Json(json!({"segment_events": rows})).into_response())
}

/// Query of a segment export.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ExportQuery {
    /// `csv`, `jsonl` (default) or `parquet`.
    format: Option<String>,
    /// Traits or scores as columns, comma-separated.
    attributes: Option<String>,
}

/// `GET /api/projects/{name}/segments/{id}/export?format=csv|jsonl|parquet&attributes=plan,clv`:
/// the members with the chosen traits and scores.
pub(crate) async fn export_segment(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((name, id)): Path<(String, i64)>,
    Query(q): Query<ExportQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let (format, content_type) = match q.format.as_deref() {
        None | Some("jsonl") => (lodestar_io::Format::Jsonl, "application/x-ndjson"),
        Some("csv") => (lodestar_io::Format::Csv, "text/csv; charset=utf-8"),
        Some("parquet") => (
            lodestar_io::Format::Parquet,
            "application/vnd.apache.parquet",
        ),
        Some(other) => {
            return Err(ApiError {
                field: Some("format".into()),
                ..ApiError::new(
                    400,
                    "invalid_parameter",
                    format!("{other:?} is not one of csv, jsonl, parquet"),
                )
            });
        }
    };
    let attributes: Vec<String> = q
        .attributes
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    let body = blocking(
        &state,
        "segment export",
        move |s| -> Result<Vec<u8>, ExportError> {
            let source = webhook::load_segment(&s.store, &project, id)?;
            let mut out = Vec::new();
            lodestar_io::export_segment(
                &*s.store,
                project.id,
                &source.export(&attributes),
                format,
                &mut out,
            )?;
            Ok(out)
        },
    )
    .await?;
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// `POST /api/projects/{name}/segments/{id}/export/webhook` with `{"url", "attributes",
/// "batch_size", "secret", "headers"}`: posts the members to the URL in batches and answers
/// when the last one is accepted (200 with the delivery report) or one fails (502 with code
/// `webhook_failed`, the batch, the reason and the report).
pub(crate) async fn export_segment_webhook(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((name, id)): Path<(String, i64)>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let request: WebhookRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            400,
            "invalid_json",
            format!("expected {{\"url\": \"http://…\", \"attributes\": […], \"batch_size\": 500, \"secret\": …, \"headers\": {{…}}}}: {e}"),
        )
    })?;
    let report = webhook::export_segment(
        Arc::clone(&state.store),
        Arc::clone(&state.clock),
        project,
        id,
        request,
        uuid::Uuid::new_v4().simple().to_string(),
        state.webhook_retry,
    )
    .await?;
    if report.failed.is_some() {
        tracing::warn!(report = %report.summary(), "webhook export failed");
        let body = json!({
            "code": "webhook_failed",
            "message": report.summary(),
            "delivery": report,
        });
        return Ok((StatusCode::BAD_GATEWAY, Json(body)).into_response());
    }
    tracing::info!(report = %report.summary(), "webhook export delivered");
    Ok(Json(report).into_response())
}

/// `POST /api/projects/{name}/segments/refresh`: re-evaluates every dynamic segment now
/// instead of at the next hourly tick.
pub(crate) async fn refresh_segments(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let results = blocking(&state, "segment refresh", move |s| {
        let _round = s.segment_rounds.lock().expect("segment round lock");
        lodestar_analytics::jobs::refresh_segments(
            &s.store,
            &project,
            &s.profiles,
            s.clock.now(),
            s.analysis_threads,
        )
    })
    .await?;
    let results: Vec<_> = results
        .iter()
        .map(|(id, entered, exited)| json!({"segment": id, "entered": entered, "exited": exited}))
        .collect();
    Ok(Json(json!({"segments": results})).into_response())
}

/// `GET /api/projects/{name}/settings`: the project's time zone and default parameters per
/// analysis.
pub(crate) async fn get_settings(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    Ok(Json(state.store.project_settings(project.id)?).into_response())
}

/// `PUT /api/projects/{name}/settings`: replaces them, after checking the time zone and that
/// each analysis accepts its defaults (errors name the field, e.g. `defaults.rfm.scheme`).
pub(crate) async fn put_settings(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let settings: lodestar_store::ProjectSettings = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(400, "invalid_json", format!("the settings: {e}")))?;
    lodestar_analytics::registry::check_settings(&settings)?;
    state.store.set_project_settings(project.id, &settings)?;
    Ok(Json(settings).into_response())
}

/// `POST /api/projects/{name}/analyses/{kind}` with the analysis's parameters as a JSON body
/// (see `lodestar_analytics::registry`).
pub(crate) async fn analysis(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((name, kind)): Path<(String, String)>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let threads = state.analysis_threads;
    let store = state.store.clone();
    let run = move || -> Result<serde_json::Value, ApiError> {
        Ok(lodestar_analytics::registry::run_on_store(
            &store, &project, &kind, &body, threads,
        )?)
    };
    let value = tokio::task::spawn_blocking(run)
        .await
        .map_err(|e| ApiError::new(500, "internal", format!("analysis failed: {e}")))??;
    Ok(Json(value).into_response())
}

/// `POST /api/admin/projects/{name}/rotate_key` → the project and its new write key (shown
/// once); the old key is refused from the next request on.
pub(crate) async fn rotate_key(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let (info, key) = blocking(&state, "key rotation", move |s| s.store.rotate_key(&name)).await?;
    Ok(Json(json!({"project": info, "write_key": key})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_basic_auth_as_sdks_send_it() {
        let mut h = HeaderMap::new();
        // base64("WRITEKEY_SEG:") as captured from segment-analytics-python.
        h.insert(
            header::AUTHORIZATION,
            "Basic V1JJVEVLRVlfU0VHOg==".parse().unwrap(),
        );
        assert_eq!(basic_auth_user(&h).as_deref(), Some("WRITEKEY_SEG"));
        h.insert(
            header::AUTHORIZATION,
            "Basic V1JJVEVLRVlfUlM6".parse().unwrap(),
        );
        assert_eq!(basic_auth_user(&h).as_deref(), Some("WRITEKEY_RS"));
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(basic_auth_user(&h), None);
        h.insert(header::AUTHORIZATION, "Basic Og==".parse().unwrap()); // ":"
        assert_eq!(basic_auth_user(&h), None);
    }
}
