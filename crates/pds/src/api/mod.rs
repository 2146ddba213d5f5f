//! The route table: every XRPC method this server answers, and what happens to the rest.
//!
//! Unknown `com.atproto.*` methods answer `501 MethodNotImplemented`; other unknown methods
//! answer `404 MethodNotFound` (there is no app view proxy yet).

pub mod error;
pub mod extract;
pub mod identity;
pub mod repo;
pub mod server;
pub mod subscribe;
pub mod sync;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path};
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::state::AppState;
use error::XrpcError;

/// Largest JSON request body, in bytes.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let blob_limit = usize::try_from(state.config().blob_upload_limit)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let xrpc = Router::new()
        .route(
            "/com.atproto.server.describeServer",
            get(server::describe_server),
        )
        .route(
            "/com.atproto.server.createAccount",
            post(server::create_account),
        )
        .route(
            "/com.atproto.server.createSession",
            post(server::create_session),
        )
        .route("/com.atproto.server.getSession", get(server::get_session))
        .route(
            "/com.atproto.server.refreshSession",
            post(server::refresh_session),
        )
        .route(
            "/com.atproto.server.deleteSession",
            post(server::delete_session),
        )
        .route(
            "/com.atproto.server.createAppPassword",
            post(server::create_app_password),
        )
        .route(
            "/com.atproto.server.listAppPasswords",
            get(server::list_app_passwords),
        )
        .route(
            "/com.atproto.server.revokeAppPassword",
            post(server::revoke_app_password),
        )
        .route(
            "/com.atproto.server.createInviteCode",
            post(server::create_invite_code),
        )
        .route(
            "/com.atproto.server.createInviteCodes",
            post(server::create_invite_codes),
        )
        .route(
            "/com.atproto.server.getAccountInviteCodes",
            get(server::get_account_invite_codes),
        )
        .route(
            "/com.atproto.server.deactivateAccount",
            post(server::deactivate_account),
        )
        .route(
            "/com.atproto.server.activateAccount",
            post(server::activate_account),
        )
        .route(
            "/com.atproto.server.checkAccountStatus",
            get(server::check_account_status),
        )
        .route(
            "/com.atproto.server.reserveSigningKey",
            post(server::reserve_signing_key),
        )
        .route(
            "/com.atproto.identity.updateHandle",
            post(identity::update_handle),
        )
        .route("/com.atproto.repo.createRecord", post(repo::create_record))
        .route("/com.atproto.repo.putRecord", post(repo::put_record))
        .route("/com.atproto.repo.deleteRecord", post(repo::delete_record))
        .route("/com.atproto.repo.applyWrites", post(repo::apply_writes))
        .route("/com.atproto.repo.getRecord", get(repo::get_record))
        .route("/com.atproto.repo.listRecords", get(repo::list_records))
        .route("/com.atproto.repo.describeRepo", get(repo::describe_repo))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .route(
            "/com.atproto.repo.uploadBlob",
            post(repo::upload_blob).layer(DefaultBodyLimit::max(blob_limit)),
        )
        .route("/com.atproto.sync.getBlob", get(sync::get_blob))
        .route(
            "/com.atproto.sync.subscribeRepos",
            get(subscribe::subscribe_repos),
        )
        .route(
            "/com.atproto.sync.getLatestCommit",
            get(sync::get_latest_commit),
        )
        .route("/com.atproto.sync.getRepo", get(sync::get_repo))
        .route("/com.atproto.sync.getCheckout", get(sync::get_checkout))
        .route("/com.atproto.sync.getRecord", get(sync::get_record))
        .route("/com.atproto.sync.getBlocks", get(sync::get_blocks))
        .route("/com.atproto.sync.getHead", get(sync::get_head))
        .route(
            "/com.atproto.sync.getRepoStatus",
            get(sync::get_repo_status),
        )
        .route("/com.atproto.sync.listBlobs", get(sync::list_blobs))
        .route("/com.atproto.sync.listRepos", get(sync::list_repos))
        .route(
            "/com.atproto.identity.resolveHandle",
            get(identity::resolve_handle),
        )
        .route("/_health", get(health))
        .route("/{method}", axum::routing::any(unknown_method));
    Router::new()
        .nest("/xrpc", xrpc)
        .route("/robots.txt", get(robots))
        .route(
            "/.well-known/atproto-did",
            get(identity::well_known_atproto_did),
        )
        .route("/", get(root))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn unknown_method(Path(method): Path<String>) -> XrpcError {
    if method.starts_with("com.atproto.") {
        XrpcError::not_implemented(&method)
    } else {
        XrpcError::new(StatusCode::NOT_FOUND, "MethodNotFound", "Method Not Found")
    }
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"version": env!("CARGO_PKG_VERSION")}))
}

async fn robots() -> &'static str {
    "# Hello!\n\n# Crawling the public API is allowed\nUser-agent: *\nAllow: /\n"
}

async fn root() -> &'static str {
    "This is an AT Protocol Personal Data Server (PDS).\n\nMost API routes are under /xrpc/\n"
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_server;
#[cfg(test)]
mod tests_sync;
