//! Every error the API can answer, and its HTTP status, in one table.
//!
//! | code | status | when |
//! |---|---|---|
//! | `payload_too_large`, `event_too_large` | 413 | a body or an event over the limits |
//! | other decoder codes (`invalid_json`, `missing_id`, …) | 400 | the request is malformed |
//! | `missing_write_key`, `invalid_write_key` | 401 | no or unknown write key |
//! | `unauthorized` | 401 | admin API without the admin token |
//! | `unknown_project` | 404 | no such project |
//! | `unknown_person`, `unknown_deletion` | 404 | no person has that id (or they were deleted); no such deletion job |
//! | `project_exists` | 409 | creating a project whose name is taken |
//! | `invalid_name` | 400 | a project name breaking the naming rule |
//! | `storage_unavailable`, `shutting_down` | 503 | not acknowledged as durable; retry (`Retry-After`; retries are deduplicated) |
//! | `invalid_parameter` | 400 | an analysis parameter is wrong (`field` names it) |
//! | `invalid_json` | 400 | an analysis request body is not the expected JSON |
//! | `unknown_analysis` | 404 | `/api/projects/{name}/analyses/{kind}` with an unknown kind |
//! | `unknown_segment` | 404 | no saved segment has that id |
//! | `webhook_failed` | 502 | a webhook export's receiver refused a batch or could not be reached after the retries; the body carries the delivery report (`delivery`) with the batch and the reason |
//! | `internal` | 500 | a bug or a damaged file; details only in the server log |

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use lodestar_ingest::IngestError;
use lodestar_store::StoreError;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// HTTP status.
    #[serde(skip)]
    pub status: u16,
    /// Stable code.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// Where in the request, when it is about one field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            field: None,
        }
    }

    /// No or unknown write key.
    pub fn unauthorized(code: &str, message: &str) -> ApiError {
        ApiError::new(401, code, message)
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> ApiError {
        let status = if e.is_too_large() { 413 } else { 400 };
        ApiError {
            status,
            code: e.code().to_string(),
            message: e.message().to_string(),
            field: Some(e.field().to_string()).filter(|f| !f.is_empty()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::UnknownProject(_)
            | StoreError::UnknownPerson
            | StoreError::UnknownDeletion(_) => ApiError::new(404, e.code(), e.to_string()),
            StoreError::ProjectExists(_) | StoreError::Conflict(_) => {
                ApiError::new(409, e.code(), e.to_string())
            }
            StoreError::InvalidName { .. } => ApiError::new(400, e.code(), e.to_string()),
            StoreError::Unavailable(_) | StoreError::ShuttingDown => {
                tracing::warn!(error = %e, "storage unavailable");
                ApiError::new(
                    503,
                    e.code(),
                    "events could not be made durable and are not acknowledged; retry later (retries are deduplicated by messageId)",
                )
            }
            _ => {
                tracing::error!(error = %e, "internal error");
                ApiError::new(500, "internal", "internal error; see the server log")
            }
        }
    }
}

impl From<lodestar_analytics::AnalyticsError> for ApiError {
    fn from(e: lodestar_analytics::AnalyticsError) -> ApiError {
        match e {
            lodestar_analytics::AnalyticsError::Invalid { field, message } => ApiError {
                status: 400,
                code: "invalid_parameter".to_string(),
                message,
                field: Some(field),
            },
            lodestar_analytics::AnalyticsError::Store(e) => e.into(),
        }
    }
}

impl From<lodestar_analytics::registry::RunError> for ApiError {
    fn from(e: lodestar_analytics::registry::RunError) -> ApiError {
        use lodestar_analytics::registry::RunError;
        match e {
            RunError::Unknown(_) => ApiError::new(404, "unknown_analysis", e.to_string()),
            RunError::Json { .. } => ApiError::new(400, "invalid_json", e.to_string()),
            RunError::Analysis(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = status == StatusCode::SERVICE_UNAVAILABLE;
        let mut response = (status, Json(self)).into_response();
        if retry {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        response
    }
}
