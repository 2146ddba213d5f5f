//! The route table: every XRPC method this server answers, and what happens to the rest.
//!
//! Unknown `com.atproto.*` methods answer `501 MethodNotImplemented`; other methods without a
//! route are forwarded to the app view or the `atproto-proxy` service (`proxy::catchall`).

pub mod actor;
pub mod admin;
pub mod email;
pub mod error;
pub mod extract;
pub mod identity;
pub mod lexicon;
pub mod migration;
pub mod proxy;
pub mod repo;
pub mod resolve_lexicon;
pub mod server;
pub mod service_auth;
pub mod subscribe;
pub mod sync;
pub mod temp;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::state::AppState;

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
        // email
        .route(
            "/com.atproto.server.requestEmailConfirmation",
            post(email::request_email_confirmation),
        )
        .route(
            "/com.atproto.server.confirmEmail",
            post(email::confirm_email),
        )
        .route(
            "/com.atproto.server.requestEmailUpdate",
            post(email::request_email_update),
        )
        .route("/com.atproto.server.updateEmail", post(email::update_email))
        .route(
            "/com.atproto.server.requestPasswordReset",
            post(email::request_password_reset),
        )
        .route(
            "/com.atproto.server.resetPassword",
            post(email::reset_password),
        )
        .route(
            "/com.atproto.server.requestAccountDelete",
            post(email::request_account_delete),
        )
        .route(
            "/com.atproto.server.deleteAccount",
            post(email::delete_account),
        )
        .route(
            "/com.atproto.identity.requestPlcOperationSignature",
            post(email::request_plc_operation_signature),
        )
        .route(
            "/com.atproto.admin.sendEmail",
            post(email::admin_send_email),
        )
        .route(
            "/com.atproto.admin.updateAccountEmail",
            post(email::admin_update_account_email),
        )
        // admin
        .route(
            "/com.atproto.admin.getAccountInfo",
            get(admin::get_account_info),
        )
        .route(
            "/com.atproto.admin.getAccountInfos",
            get(admin::get_account_infos),
        )
        .route(
            "/com.atproto.admin.searchAccounts",
            get(admin::search_accounts),
        )
        .route(
            "/com.atproto.admin.getInviteCodes",
            get(admin::get_invite_codes),
        )
        .route(
            "/com.atproto.admin.disableInviteCodes",
            post(admin::disable_invite_codes),
        )
        .route(
            "/com.atproto.admin.disableAccountInvites",
            post(admin::disable_account_invites),
        )
        .route(
            "/com.atproto.admin.enableAccountInvites",
            post(admin::enable_account_invites),
        )
        .route(
            "/com.atproto.admin.updateAccountHandle",
            post(admin::update_account_handle),
        )
        .route(
            "/com.atproto.admin.updateAccountPassword",
            post(admin::update_account_password),
        )
        .route(
            "/com.atproto.admin.getSubjectStatus",
            get(admin::get_subject_status),
        )
        .route(
            "/com.atproto.admin.updateSubjectStatus",
            post(admin::update_subject_status),
        )
        .route(
            "/com.atproto.admin.deleteAccount",
            post(admin::delete_account),
        )
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .route(
            "/com.atproto.repo.uploadBlob",
            post(repo::upload_blob).layer(DefaultBodyLimit::max(blob_limit)),
        )
        // migration
        .route(
            "/com.atproto.repo.importRepo",
            post(migration::import_repo).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/com.atproto.repo.listMissingBlobs",
            get(migration::list_missing_blobs),
        )
        .route(
            "/com.atproto.identity.getRecommendedDidCredentials",
            get(migration::get_recommended_did_credentials),
        )
        .route(
            "/com.atproto.identity.submitPlcOperation",
            post(migration::submit_plc_operation).layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .route(
            "/com.atproto.identity.signPlcOperation",
            post(migration::sign_plc_operation).layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
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
        // identity: resolution, preferences (served here, never proxied), service auth, temp
        .route(
            "/com.atproto.identity.resolveDid",
            get(identity::resolve_did),
        )
        .route(
            "/com.atproto.identity.resolveIdentity",
            get(identity::resolve_identity),
        )
        .route(
            "/com.atproto.identity.refreshIdentity",
            post(identity::refresh_identity),
        )
        .route(
            "/app.bsky.actor.getPreferences",
            get(actor::get_preferences),
        )
        .route(
            "/app.bsky.actor.putPreferences",
            post(actor::put_preferences),
        )
        .route(
            "/com.atproto.server.getServiceAuth",
            get(service_auth::get_service_auth),
        )
        .route(
            "/com.atproto.temp.checkSignupQueue",
            get(temp::check_signup_queue),
        )
        .route(
            "/com.atproto.temp.checkHandleAvailability",
            get(temp::check_handle_availability),
        )
        // lexicon resolution
        .route(
            "/com.atproto.lexicon.resolveLexicon",
            get(resolve_lexicon::resolve_lexicon),
        )
        .route("/_health", get(health))
        // lexicon: validates params and JSON bodies of every route above (keep it just before
        // the catch-all, so unserved methods still answer 501)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            lexicon::validate_xrpc,
        ))
        // proxy: methods forwarded with special handling; everything else unserved goes
        // through the catch-all (explicit routes always win over it)
        .route(
            "/app.bsky.actor.getProfile",
            get(proxy::read_after_write::get_profile),
        )
        .route(
            "/app.bsky.feed.getAuthorFeed",
            get(proxy::read_after_write::get_author_feed),
        )
        .route(
            "/app.bsky.feed.getPostThread",
            get(proxy::read_after_write::get_post_thread),
        )
        .route(
            "/app.bsky.feed.getTimeline",
            get(proxy::read_after_write::get_timeline),
        )
        .route("/app.bsky.feed.getFeed", get(proxy::get_feed))
        .route(
            "/com.atproto.moderation.createReport",
            post(proxy::create_report).layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .route("/{method}", axum::routing::any(proxy::catchall));
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
mod tests_lexicon;
#[cfg(test)]
mod tests_server;
#[cfg(test)]
mod tests_sync;
