//! Input extractors that answer `400 InvalidRequest` on bad input before a handler runs.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::api::error::XrpcError;

/// A JSON request body.
#[derive(Debug)]
pub struct XrpcJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for XrpcJson<T> {
    type Rejection = XrpcError;

    async fn from_request(req: Request, state: &S) -> Result<Self, XrpcError> {
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
