//! `app.bsky.actor.getPreferences` / `putPreferences`: served by the PDS itself (never proxied
//! to an app view), as the reference does. Rules in `service::preferences`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::api::error::XrpcError;
use crate::api::extract::XrpcJson;
use crate::auth::{AccessAuth, Scope};
use crate::service::preferences;
use crate::state::AppState;

/// `app.bsky.actor.getPreferences`: the account's `app.bsky` preferences (app passwords do not
/// see `personalDetailsPref`; `declaredAgePref` is computed).
pub async fn get_preferences(
    State(state): State<AppState>,
    auth: AccessAuth,
) -> Result<Json<Value>, XrpcError> {
    let full = auth.scope == Scope::Access;
    let today = chrono::Utc::now().date_naive();
    let prefs = preferences::get(&state, &auth.did, full, today).await?;
    Ok(Json(json!({ "preferences": prefs })))
}

/// The NSID of putPreferences (its body is validated against the lexicon here: the lexicon
/// layer only covers `com.atproto.*`).
const PUT_PREFERENCES: &str = "app.bsky.actor.putPreferences";

/// `app.bsky.actor.putPreferences`: replaces the whole `app.bsky` set. The body must match the
/// lexicon (known preference types are checked against their schemas). Refused for a
/// taken-down account (the reference's `checkTakedown`).
pub async fn put_preferences(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<Value>,
) -> Result<(), XrpcError> {
    state
        .lexicons()
        .validate_input(PUT_PREFERENCES, &input)
        .map_err(|e| XrpcError::invalid_request(e.to_string()))?;
    let account = state.store().get_account(&auth.did).await?;
    if account.is_some_and(|a| a.takedown_ref.is_some()) {
        return Err(XrpcError::account_takedown());
    }
    let full = auth.scope == Scope::Access;
    preferences::put(&state, &auth.did, full, &input).await
}
