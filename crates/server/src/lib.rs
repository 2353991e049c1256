//! The HTTP layer of Lodestar: the Segment-compatible ingestion API, the admin API, health
//! and Prometheus metrics.
//!
//! This is the only crate that knows axum. Handlers decode the request (with
//! `lodestar-ingest`), call the store, and encode the response; every error becomes an HTTP
//! status in one place ([`error::ApiError`]). The one outgoing HTTP client is in [`webhook`]:
//! segment exports posted to a receiver in batches.

pub mod error;
mod handlers;
mod metrics;
mod privacy;
mod ui;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};

use lodestar_core::Clock;
use lodestar_ingest::Limits;
use lodestar_store::{EventStore, Store};

pub use metrics::HttpMetrics;

/// Settings of the HTTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Token for the admin API (`Authorization: Bearer …`). Without one, the admin API is
    /// open to loopback clients only.
    pub admin_token: Option<String>,
    /// Largest single event (bytes).
    pub max_event_bytes: usize,
    /// Largest request body, before and after decompression (bytes).
    pub max_request_bytes: usize,
    /// Timestamps further than this in the future are clamped to the receive time (ms).
    pub max_future_ms: i64,
    /// Most ingestion requests processed at once; more wait.
    pub max_in_flight: usize,
    /// HTTP worker threads. Default: one less than the cores (at least one), so each
    /// project's writer thread keeps a core to itself under load.
    pub worker_threads: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let limits = Limits::default();
        ServerConfig {
            listen: "127.0.0.1:8080".to_string(),
            admin_token: None,
            max_event_bytes: limits.max_event_bytes,
            max_request_bytes: limits.max_request_bytes,
            max_future_ms: limits.max_future_ms,
            max_in_flight: 512,
            worker_threads: None,
        }
    }
}

impl ServerConfig {
    /// The number of HTTP worker threads to run.
    pub fn worker_threads(&self) -> usize {
        self.worker_threads.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            cores.saturating_sub(1).max(1)
        })
    }

    /// The decoder limits these settings describe.
    pub fn limits(&self) -> Limits {
        Limits {
            max_event_bytes: self.max_event_bytes,
            max_request_bytes: self.max_request_bytes,
            max_future_ms: self.max_future_ms,
            ..Limits::default()
        }
    }
}

/// What every handler shares.
pub struct AppState {
    pub(crate) store: Arc<Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: Limits,
    pub(crate) admin_token: Option<String>,
    pub(crate) metrics: HttpMetrics,
    pub(crate) in_flight: tokio::sync::Semaphore,
    /// Threads one analysis uses.
    pub(crate) analysis_threads: usize,
    /// Profile tables for segments, kept current between questions.
    pub(crate) profiles: lodestar_analytics::profiles::ProfileCache,
    /// How webhook exports retry a batch.
    pub(crate) webhook_retry: webhook::RetryPolicy,
    /// Held by every round that updates segment memberships (minutely, hourly, on request),
    /// so that an older evaluation never overwrites a newer one.
    pub(crate) segment_rounds: std::sync::Mutex<()>,
}

impl AppState {
    /// Builds the shared state.
    pub fn new(store: Arc<Store>, clock: Arc<dyn Clock>, config: &ServerConfig) -> Arc<AppState> {
        Arc::new(AppState {
            store,
            clock,
            limits: config.limits(),
            admin_token: config.admin_token.clone(),
            metrics: HttpMetrics::default(),
            in_flight: tokio::sync::Semaphore::new(config.max_in_flight.max(1)),
            analysis_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            profiles: Default::default(),
            segment_rounds: std::sync::Mutex::new(()),
            webhook_retry: webhook::RetryPolicy::default(),
        })
    }
}

/// Every minute, re-evaluates each project's dynamic segments for the persons with events
/// written since the last round (see [`lodestar_analytics::jobs::refresh_segments_touched`]),
/// so that entries and exits follow the data within a minute; the hourly round handles time
/// passing.
async fn follow_segments(state: Arc<AppState>) {
    let minute = std::time::Duration::from_secs(60);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + minute, minute);
    let cursors = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    loop {
        tick.tick().await;
        let (state, cursors) = (Arc::clone(&state), Arc::clone(&cursors));
        let done = tokio::task::spawn_blocking(move || {
            let mut cursors = cursors.lock().expect("cursor lock");
            for project in state.store.projects().unwrap_or_default() {
                let since = cursors.get(&project.id).copied().unwrap_or(0);
                let _round = state.segment_rounds.lock().expect("segment round lock");
                match lodestar_analytics::jobs::refresh_segments_touched(
                    &state.store,
                    &project,
                    &state.profiles,
                    since,
                    state.clock.now(),
                    state.analysis_threads,
                ) {
                    Ok(round) => {
                        cursors.insert(project.id, round.seq);
                        for (segment, entered, exited) in round.segments {
                            if entered + exited > 0 {
                                tracing::info!(project = %project.name, segment, entered, exited, persons = round.persons, "segment followed");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(project = %project.name, error = %e, "segments not followed")
                    }
                }
            }
        })
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "segment task failed");
        }
    }
}

/// Loads each project's profile table (traits, scores, computed attributes) once at start, in
/// the background, so that the first segment preview or dashboard page does not wait for it.
async fn warm_profiles(state: Arc<AppState>) {
    let done = tokio::task::spawn_blocking(move || {
        for project in state.store.projects().unwrap_or_default() {
            let started = std::time::Instant::now();
            match lodestar_analytics::jobs::warm_profiles(
                &state.store,
                &project,
                &state.profiles,
                state.clock.now(),
                state.analysis_threads,
            ) {
                Ok(persons) => tracing::info!(project = %project.name, persons, ms = started.elapsed().as_millis() as u64, "profiles loaded"),
                Err(e) => tracing::warn!(project = %project.name, error = %e, "profiles not loaded"),
            }
        }
    })
    .await;
    if let Err(e) = done {
        tracing::warn!(error = %e, "profile task failed");
    }
}

/// Every hour, re-evaluates each project's dynamic segments and records its lifecycle stage
/// changes for the days that ended since the last time (see
/// [`lodestar_analytics::jobs::emit_stage_changes`]). The first round waits a minute, so that
/// start-up does not share the cores with it. Failures are logged and retried on the next
/// tick.
async fn record_derived(state: Arc<AppState>) {
    let hour = std::time::Duration::from_secs(3600);
    let first = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut tick = tokio::time::interval_at(first, hour);
    loop {
        tick.tick().await;
        let state = Arc::clone(&state);
        let done = tokio::task::spawn_blocking(move || {
            for project in state.store.projects().unwrap_or_default() {
                let now = state.clock.now();
                match lodestar_analytics::jobs::emit_stage_changes(
                    &state.store,
                    &project,
                    now,
                    None,
                    state.analysis_threads,
                ) {
                    Ok(days) => {
                        for (day, added) in days {
                            tracing::info!(project = %project.name, %day, added, "stage changes recorded");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(project = %project.name, error = %e, "stage changes not recorded")
                    }
                }
                let _round = state.segment_rounds.lock().expect("segment round lock");
                match lodestar_analytics::jobs::refresh_segments(
                    &state.store,
                    &project,
                    &state.profiles,
                    now,
                    state.analysis_threads,
                ) {
                    Ok(results) => {
                        for (segment, entered, exited) in results {
                            tracing::info!(project = %project.name, segment, entered, exited, "segment refreshed");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(project = %project.name, error = %e, "segments not refreshed")
                    }
                }
            }
        })
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "stage change task failed");
        }
    }
}

/// The application's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/{call}", post(handlers::ingest))
        .route("/healthz", get(handlers::healthz))
        .route("/", get(ui::index))
        .route("/app/{*path}", get(ui::asset))
        .route("/metrics", get(handlers::metrics))
        .route(
            "/api/admin/projects",
            post(handlers::create_project).get(handlers::list_projects),
        )
        .route(
            "/api/admin/projects/{name}/rotate_key",
            post(handlers::rotate_key),
        )
        .route("/api/projects/{name}/warnings", get(handlers::warnings))
        .route(
            "/api/projects/{name}/stage_changes",
            get(handlers::stage_changes).post(handlers::run_stage_changes),
        )
        .route(
            "/api/projects/{name}/models",
            get(handlers::list_models).post(handlers::fit_models),
        )
        .route("/api/projects/{name}/persons", get(handlers::person))
        .route("/api/projects/{name}/schema", get(handlers::schema))
        .route(
            "/api/projects/{name}/persons/edit",
            post(handlers::edit_persons),
        )
        .route(
            "/api/projects/{name}/segments/preview",
            post(handlers::segment_preview),
        )
        .route(
            "/api/projects/{name}/segments",
            get(handlers::list_segments).post(handlers::create_segment),
        )
        .route(
            "/api/projects/{name}/segments/refresh",
            post(handlers::refresh_segments),
        )
        .route(
            "/api/projects/{name}/segments/{id}/members",
            get(handlers::segment_members),
        )
        .route(
            "/api/projects/{name}/segments/{id}/export",
            get(handlers::export_segment),
        )
        .route(
            "/api/projects/{name}/segments/{id}/export/webhook",
            post(handlers::export_segment_webhook),
        )
        .route(
            "/api/projects/{name}/segment_events",
            get(handlers::segment_events),
        )
        .route(
            "/api/projects/{name}/persons/{person}/scores",
            get(handlers::person_scores),
        )
        .route(
            "/api/projects/{name}/settings",
            get(handlers::get_settings).put(handlers::put_settings),
        )
        .route(
            "/api/projects/{name}/analyses/{kind}",
            post(handlers::analysis),
        )
        .route(
            "/api/projects/{name}/deletions",
            post(privacy::request_deletion).get(privacy::list_deletions),
        )
        .route(
            "/api/projects/{name}/deletions/{id}",
            get(privacy::get_deletion),
        )
        .route(
            "/api/projects/{name}/suppressions",
            delete(privacy::unsuppress),
        )
        .route("/api/projects/{name}/audit", get(privacy::audit))
        .with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tokio::spawn(record_derived(Arc::clone(&state)));
    tokio::spawn(follow_segments(Arc::clone(&state)));
    tokio::spawn(warm_profiles(Arc::clone(&state)));
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
