//! Lexicon validation at the HTTP edge: the layer that checks every served `com.atproto.*` call's
//! query parameters and JSON body against its schema ([`validate_xrpc`]), and the record check
//! shared by createRecord, putRecord and applyWrites ([`prepare_record`]).
//!
//! A refusal is `400 InvalidRequest` naming the field (`Input/text must not be longer than 300
//! graphemes`), before the handler runs, so nothing is written. A JSON body is parsed once here
//! and handed to [`crate::api::extract::XrpcJson`] through the request extensions.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use atp_lexicon::{Catalog, RecordValidity};
use atp_syntax::Nsid;

use crate::api::MAX_JSON_BODY;
use crate::api::error::XrpcError;
use crate::state::AppState;

/// A JSON request body already parsed (and validated) by [`validate_xrpc`].
#[derive(Debug, Clone)]
pub struct ParsedJson(pub serde_json::Value);

/// The NSID of an XRPC request path (`/xrpc/<nsid>` or, inside the nested router, `/<nsid>`).
fn method_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/xrpc").unwrap_or(path);
    rest.strip_prefix('/')
        .filter(|m| !m.is_empty() && !m.contains('/'))
}

/// Whether a content type is JSON (`application/json`, with parameters, or `+json`), as axum's
/// `Json` extractor decides.
fn is_json(request: &Request) -> bool {
    let Some(value) = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The layer: validates the parameters and JSON body of a `com.atproto.*` method against its
/// lexicon. Other methods and requests with an `atproto-proxy` header (the target service
/// validates) pass untouched. It is a route layer over the served methods only (added before
/// the catch-all route), so unserved methods still answer `501`.
pub async fn validate_xrpc(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(method) = method_of(request.uri().path()).filter(|m| m.starts_with("com.atproto."))
    else {
        return next.run(request).await;
    };
    if request.headers().contains_key("atproto-proxy") {
        return next.run(request).await;
    }
    let method = method.to_owned();
    let catalog = state.lexicons();
    if let Err(e) = check_params(catalog, &method, &request) {
        return e.into_response();
    }
    if request.method() != Method::POST || !catalog.json_input(&method) || !is_json(&request) {
        return next.run(request).await;
    }
    match check_body(catalog, &method, request).await {
        Ok(request) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn check_params(catalog: &Catalog, method: &str, request: &Request) -> Result<(), XrpcError> {
    // Undecodable query strings are left to the handler's own extractor.
    let Ok(axum::extract::Query(params)) =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(request.uri())
    else {
        return Ok(());
    };
    catalog
        .validate_params(method, &params)
        .map_err(|e| XrpcError::invalid_request(e.to_string()))
}

/// Reads and parses the body once, validates it, and passes it on (bytes for any extractor,
/// the parsed value for [`crate::api::extract::XrpcJson`]). Bodies that are not JSON at all go
/// on unparsed, so the handler's extractor reports them as it always did.
async fn check_body(
    catalog: &Catalog,
    method: &str,
    request: Request,
) -> Result<Request, XrpcError> {
    let (mut parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|e| XrpcError::invalid_request(format!("Failed to read the request body: {e}")))?;
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        catalog
            .validate_input(method, &json)
            .map_err(|e| XrpcError::invalid_request(e.to_string()))?;
        parts.extensions.insert(ParsedJson(json));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// A record about to be written to `collection`, as the reference PDS prepares it.
///
/// A record without `$type` gets the collection's. Unless `validate` is `Some(false)`, its
/// `$type` must be the collection and it is checked against the collection's lexicon: valid →
/// `Some(Valid)`; no lexicon → `Some(Unknown)`, or an error if `validate` is `Some(true)`.
/// `Some(false)` skips both checks and reports no status (`None`).
pub fn prepare_record(
    state: &AppState,
    collection: &Nsid,
    record: &serde_json::Value,
    validate: Option<bool>,
) -> Result<(atp_data::Value, Option<RecordValidity>), XrpcError> {
    let mut value = atp_data::json::record_from_json(record)
        .map_err(|e| XrpcError::invalid_request(format!("Invalid record: {e}")))?;
    if let atp_data::Value::Map(map) = &mut value {
        map.entry("$type".to_owned())
            .or_insert_with(|| atp_data::Value::String(collection.to_string()));
    }
    if validate == Some(false) {
        return Ok((value, None));
    }
    match value.type_name() {
        Some(t) if t == collection.as_str() => {}
        t => {
            return Err(XrpcError::invalid_request(format!(
                "Invalid $type: expected {collection}, got {}",
                t.unwrap_or("nothing")
            )));
        }
    }
    match state.lexicons().validate_record(collection, &value) {
        Ok(RecordValidity::Unknown) if validate == Some(true) => Err(XrpcError::invalid_request(
            format!("Lexicon not found: lex:{collection}"),
        )),
        Ok(status) => Ok((value, Some(status))),
        Err(e) => Err(XrpcError::invalid_request(format!(
            "Invalid {collection} record: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_from_paths() {
        assert_eq!(
            method_of("/xrpc/com.atproto.repo.createRecord"),
            Some("com.atproto.repo.createRecord")
        );
        assert_eq!(
            method_of("/com.atproto.repo.getRecord"),
            Some("com.atproto.repo.getRecord")
        );
        assert_eq!(method_of("/xrpc/"), None);
        assert_eq!(method_of("/xrpc/a/b"), None);
    }
}
