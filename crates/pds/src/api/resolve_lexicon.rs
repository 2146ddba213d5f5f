//! `com.atproto.lexicon.resolveLexicon`: an NSID's published schema record, resolved and
//! verified by `service::lexicon_resolve` (DNS `_lexicon` authority, DID document, record proof).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;

use atp_syntax::Nsid;

use crate::api::error::XrpcError;
use crate::api::extract::{XrpcQuery, parse_param};
use crate::service::lexicon_resolve::{self, LexiconNotFound};
use crate::state::AppState;

/// resolveLexicon parameters.
#[derive(Debug, Deserialize)]
pub struct ResolveLexiconParams {
    nsid: String,
}

/// `com.atproto.lexicon.resolveLexicon`: `{cid, schema, uri}`; any failure is
/// `400 LexiconNotFound` (a malformed NSID is `InvalidRequest`).
pub async fn resolve_lexicon(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<ResolveLexiconParams>,
) -> Result<Json<Value>, XrpcError> {
    let nsid: Nsid = parse_param("nsid", &p.nsid)?;
    let resolved = lexicon_resolve::resolve_lexicon(&state, &nsid).await?;
    Ok(Json(resolved.to_json()))
}

impl From<LexiconNotFound> for XrpcError {
    fn from(e: LexiconNotFound) -> Self {
        XrpcError::invalid_request(e.0).named("LexiconNotFound")
    }
}
