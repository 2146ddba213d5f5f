//! Input extractors that answer `400 InvalidRequest` on bad input before a handler runs.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::api::error::XrpcError;
use crate::api::lexicon::ParsedJson;

/// A JSON request body. When the lexicon layer ([`crate::api::lexicon::validate_xrpc`]) has
/// already parsed and validated it, that value is used instead of parsing the bytes again.
#[derive(Debug)]
pub struct XrpcJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for XrpcJson<T> {
    type Rejection = XrpcError;

    async fn from_request(mut req: Request, state: &S) -> Result<Self, XrpcError> {
        if let Some(ParsedJson(json)) = req.extensions_mut().remove::<ParsedJson>() {
            return serde_json::from_value(json)
                .map(XrpcJson)
                .map_err(|e| XrpcError::invalid_request(format!("Invalid request body: {e}")));
        }
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(v)| XrpcJson(v))
            .map_err(|e| XrpcError::invalid_request(e.body_text()))
    }
}

/// Query parameters.
#[derive(Debug)]
pub struct XrpcQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for XrpcQuery<T> {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, XrpcError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| XrpcQuery(v))
            .map_err(|e| XrpcError::invalid_request(e.body_text()))
    }
}

/// Parses a string parameter into a syntax type, naming the parameter on failure.
pub fn parse_param<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, XrpcError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| XrpcError::invalid_request(format!("Invalid {name}: {e}")))
}

/// A `limit` parameter: `default` when absent, refused outside `1..=max` (the lexicon layer
/// checks the same range first; this keeps handlers safe when called without it).
pub fn page_limit(limit: Option<i64>, default: usize, max: usize) -> Result<usize, XrpcError> {
    match limit {
        None => Ok(default),
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                XrpcError::invalid_request(format!("limit must be between 1 and {max}"))
            }),
    }
}

/// A `cursor` parameter that holds a CID (the last item of the previous page).
pub fn cid_cursor(cursor: Option<&str>) -> Result<Option<atp_data::Cid>, XrpcError> {
    cursor
        .map(|c| {
            atp_data::cid::parse(c)
                .map_err(|e| XrpcError::invalid_request(format!("Invalid cursor: {e}")))
        })
        .transpose()
}
