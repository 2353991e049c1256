//! The privacy admin API: delete a person (and suppress their ids), follow the job, read the
//! audit trail. Decode, call the store, encode; the rules live in `lodestar_store`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use lodestar_store::{DeletionRequest, EventStore, IdKind, PersonRef};

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{blocking, check_admin};

/// Body of `POST /api/projects/{name}/deletions` and `DELETE …/suppressions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PersonBody {
    user_id: Option<String>,
    anonymous_id: Option<String>,
    person: Option<u64>,
    /// Also drop every later message carrying one of the person's ids (default true).
    suppress: Option<bool>,
    /// Who asks, for the audit trail (default `api`).
    actor: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        field: Some(field.to_string()),
        ..ApiError::new(400, "invalid_parameter", message)
    }
}

fn parse_body(body: &[u8]) -> Result<PersonBody, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError {
        field: Some("body".into()),
        ..ApiError::new(
            400,
            "invalid_json",
            format!(
                "expected {{\"user_id\" | \"anonymous_id\" | \"person\": …, \"suppress\": true}}: {e}"
            ),
        )
    })
}

impl PersonBody {
    fn person(&self) -> Result<PersonRef, ApiError> {
        match (&self.user_id, &self.anonymous_id, self.person) {
            (Some(u), None, None) if !u.is_empty() => Ok(PersonRef::UserId(u.clone())),
            (None, Some(a), None) if !a.is_empty() => Ok(PersonRef::AnonymousId(a.clone())),
            (None, None, Some(p)) => Ok(PersonRef::Person(p)),
            _ => Err(invalid(
                "user_id",
                "give exactly one of user_id, anonymous_id, person",
            )),
        }
    }

    fn actor(&self) -> Result<String, ApiError> {
        let actor = self.actor.clone().unwrap_or_else(|| "api".to_string());
        if actor.is_empty() || actor.len() > 200 {
            return Err(invalid("actor", "between 1 and 200 characters"));
        }
        Ok(actor)
    }
}

/// `POST /api/projects/{name}/deletions {"user_id"|"anonymous_id"|"person": …, "suppress":
/// true, "actor": …}` → 202 with the job: the person is out of every read and lookup at
/// once; their stored rows are removed in the background.
pub(crate) async fn request_deletion(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let req = parse_body(&body)?;
    let request = DeletionRequest {
        person: req.person()?,
        actor: req.actor()?,
        suppress: req.suppress.unwrap_or(true),
    };
    let job = blocking(&state, "deletion request", move |s| {
        let id = s
            .store
            .request_deletion(project.id, request, s.clock.now())?;
        s.store.deletion(project.id, id)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"deletion": job}))).into_response())
}

/// `GET /api/projects/{name}/deletions`: every deletion job, newest first.
pub(crate) async fn list_deletions(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let jobs = blocking(&state, "deletions", move |s| s.store.deletions(project.id)).await?;
    Ok(Json(json!({"deletions": jobs})).into_response())
}

/// `GET /api/projects/{name}/deletions/{id}`: one job's status and counts.
pub(crate) async fn get_deletion(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((name, id)): Path<(String, i64)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let job = blocking(&state, "deletion", move |s| {
        s.store.deletion(project.id, id)
    })
    .await?;
    Ok(Json(json!({"deletion": job})).into_response())
}

/// `DELETE /api/projects/{name}/suppressions {"user_id"|"anonymous_id": …}`: takes an id
/// off the suppression list (audited); messages with it are stored again.
pub(crate) async fn unsuppress(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let req = parse_body(&body)?;
    let (kind, value) = match req.person()? {
        PersonRef::UserId(v) => (IdKind::User, v),
        PersonRef::AnonymousId(v) => (IdKind::Anonymous, v),
        PersonRef::Person(_) => {
            return Err(invalid(
                "person",
                "suppressions are by user_id or anonymous_id",
            ));
        }
    };
    let actor = req.actor()?;
    let removed = blocking(&state, "unsuppress", move |s| {
        s.store
            .unsuppress(project.id, kind, &value, &actor, s.clock.now())
    })
    .await?;
    Ok(Json(json!({"unsuppressed": removed})).into_response())
}

/// `GET /api/projects/{name}/audit?limit=&before=`: deletions and suppressions, newest
/// first.
pub(crate) async fn audit(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    Query(q): Query<crate::handlers::PageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers, peer)?;
    let project = state.store.project(&name)?;
    let limit = q.limit.unwrap_or(100).min(10_000);
    let rows = blocking(&state, "audit", move |s| {
        s.store.audit(project.id, limit, q.before)
    })
    .await?;
    Ok(Json(json!({"audit": rows})).into_response())
}
