//! The HTTP API of the public PLC directory (`plc.directory`), over a [`PlcDirectory`].
//!
//! Routes, as the reference server (`did-method-plc` `packages/server/src/routes.ts`) and its
//! OpenAPI description define them:
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /_health` | `{"version": …}`; 503 with `error` if the database does not answer |
//! | `GET /{did}` | the DID document, `application/did+ld+json`; 404 unknown, 410 tombstoned |
//! | `GET /{did}/data` | the current [`atp_identity::PlcData`]; 404 unknown, 410 tombstoned |
//! | `GET /{did}/log` | the operations in effect (nullified ones left out) |
//! | `GET /{did}/log/audit` | every log entry `{did, operation, cid, nullified, createdAt}` |
//! | `GET /{did}/log/last` | the last operation in effect (a tombstone included) |
//! | `POST /{did}` | submit a signed operation: 200 if stored, 400 if refused (nothing stored) |
//! | `GET /export?after=&count=` | log entries of all DIDs as JSON lines, oldest first, ≤ 1000 |
//!
//! Every error body is `{"message": "…"}`: `DID not registered: <did>` (404), `DID not
//! available: <did>` (410), the refusal reason (400). Server-side failures answer 500 with a
//! generic message and are logged. Request bodies are limited to [`MAX_BODY_BYTES`] (413 beyond),
//! as the reference's `express.json({ limit: '100kb' })`.

use std::future::Future;
use std::sync::Arc;

use atp_identity::plc::{LogEntry, PlcState, SignedOp};
use atp_syntax::Did;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::clock::{Clock, SystemClock};
use crate::directory::{MAX_EXPORT_COUNT, PlcDirectory};
use crate::error::DirectoryError;

/// Largest accepted request body: 100 KiB, as the reference server.
pub const MAX_BODY_BYTES: usize = 100 * 1024;

/// The version `/_health` reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Content type of `GET /{did}`, as the reference sends it.
pub const DID_DOCUMENT_CONTENT_TYPE: &str = "application/did+ld+json; charset=utf-8";

/// What the HTTP handlers share: the directory and the clock giving new operations their time.
#[derive(Clone)]
pub struct HttpState {
    directory: PlcDirectory,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

impl HttpState {
    /// Serves `directory`, timing new operations with the system clock.
    pub fn new(directory: PlcDirectory) -> HttpState {
        HttpState::with_clock(directory, Arc::new(SystemClock))
    }

    /// Serves `directory`, timing new operations with `clock`.
    pub fn with_clock(directory: PlcDirectory, clock: Arc<dyn Clock>) -> HttpState {
        HttpState { directory, clock }
    }

    /// The directory served.
    pub fn directory(&self) -> &PlcDirectory {
        &self.directory
    }
}

/// The directory's routes (see the module docs).
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/_health", get(health))
        .route("/export", get(export))
        .route("/{did}", get(document).post(submit))
        .route("/{did}/data", get(data))
        .route("/{did}/log", get(op_log))
        .route("/{did}/log/audit", get(audit_log))
        .route("/{did}/log/last", get(last_op))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the directory on `listener` until the server fails.
pub async fn serve(listener: TcpListener, state: HttpState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

/// Serves the directory on `listener` until `shutdown` completes, then finishes the requests
/// in flight.
pub async fn serve_with_shutdown<F>(
    listener: TcpListener,
    state: HttpState,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// An error response: a status and `{"message": …}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn not_registered(did: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("DID not registered: {did}"))
    }

    fn not_available(did: &Did) -> ApiError {
        ApiError::new(StatusCode::GONE, format!("DID not available: {did}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "message": self.message }))).into_response()
    }
}

impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> ApiError {
        match e {
            DirectoryError::Rejected(reason) => {
                ApiError::new(StatusCode::BAD_REQUEST, reason.to_string())
            }
            other => {
                tracing::error!(error = %other, "PLC directory request failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The path's DID; a string that is not a DID is simply not registered.
fn lookup_did(path: Result<Path<String>, PathRejection>) -> ApiResult<Did> {
    let Path(raw) = path.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    raw.parse::<Did>()
        .map_err(|_| ApiError::not_registered(&raw))
}

async fn health(State(state): State<HttpState>) -> Response {
    match state.directory.health_check().await {
        Ok(()) => Json(json!({ "version": VERSION })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            let body = json!({ "version": VERSION, "error": "Service Unavailable" });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// The active state of a DID, or the 404 / 410 answer.
async fn active_data(state: &HttpState, did: &Did) -> ApiResult<atp_identity::PlcData> {
    match state.directory.resolve(did).await? {
        None => Err(ApiError::not_registered(did.as_str())),
        Some(PlcState::Tombstoned) => Err(ApiError::not_available(did)),
        Some(PlcState::Active(data)) => Ok(data),
    }
}

async fn document(
    State(state): State<HttpState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let did = lookup_did(path)?;
    let doc = active_data(&state, &did).await?.to_did_document();
    let body = serde_json::to_string(&doc).map_err(|e| {
        tracing::error!(error = %e, "serialising a DID document failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    })?;
    Ok(([(header::CONTENT_TYPE, DID_DOCUMENT_CONTENT_TYPE)], body).into_response())
}

async fn data(
    State(state): State<HttpState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<atp_identity::PlcData>> {
    let did = lookup_did(path)?;
    Ok(Json(active_data(&state, &did).await?))
}

async fn op_log(
    State(state): State<HttpState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Vec<SignedOp>>> {
    let did = lookup_did(path)?;
    let ops = state.directory.op_log(&did).await?;
    if ops.is_empty() {
        return Err(ApiError::not_registered(did.as_str()));
    }
    Ok(Json(ops))
}

async fn audit_log(
    State(state): State<HttpState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Vec<LogEntry>>> {
    let did = lookup_did(path)?;
    let entries = state.directory.audit_log(&did).await?;
    if entries.is_empty() {
        return Err(ApiError::not_registered(did.as_str()));
    }
    Ok(Json(entries))
}

async fn last_op(
    State(state): State<HttpState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<SignedOp>> {
    let did = lookup_did(path)?;
    match state.directory.last_op(&did).await? {
        Some(entry) => Ok(Json(entry.operation)),
        None => Err(ApiError::not_registered(did.as_str())),
    }
}

async fn submit(
    State(state): State<HttpState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<&'static str> {
    let Path(raw) = path.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let did: Did = raw
        .parse()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("Invalid DID: {e}")))?;
    let json: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("Invalid JSON: {e}")))?;
    let op = SignedOp::from_json(json).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Not a valid operation: {e}"),
        )
    })?;
    let span = tracing::info_span!("plc_submit", did = %did);
    state
        .directory
        .submit(&did, &op, state.clock.now())
        .instrument(span)
        .await?;
    Ok("OK")
}

/// `GET /export` query parameters, kept as text so that bad values get the reference's 400.
#[derive(Debug, Deserialize)]
struct ExportParams {
    after: Option<String>,
    count: Option<String>,
}

async fn export(
    State(state): State<HttpState>,
    query: Result<Query<ExportParams>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(params) = query.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let count = match params.count.as_deref() {
        None => MAX_EXPORT_COUNT,
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n.min(MAX_EXPORT_COUNT),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "Invalid count parameter",
                ));
            }
        },
    };
    let after = match params.after.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "Invalid after parameter"))?,
        ),
    };
    let entries = state.directory.export(after, count).await?;
    let mut body = String::new();
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            body.push('\n');
        }
        let line = serde_json::to_string(entry).map_err(|e| {
            tracing::error!(error = %e, "serialising an export line failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        })?;
        body.push_str(&line);
    }
    Ok(([(header::CONTENT_TYPE, "application/jsonlines")], body).into_response())
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not Found")
}
