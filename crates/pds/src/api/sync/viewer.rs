//! Who reads a repository through the sync endpoints, as the reference's
//! `authorizationOrAdminTokenOptional`: nobody (no `Authorization` header), an account (an
//! access token, of any session kind) or the administrator (HTTP basic auth). Credentials that
//! are given must be valid: a bad token or admin password is refused, never read as "nobody".
//! The owner and the administrator may read a repository that is taken down or deactivated
//! (the reference's `isUserOrAdmin` / `assertRepoAvailability`).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use atp_syntax::Did;

use crate::api::error::XrpcError;
use crate::api::server::AdminAuth;
use crate::auth::AccessAuth;
use crate::state::AppState;

/// The caller of a sync read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// No credentials.
    Anonymous,
    /// An account, by a still-valid access token (whatever its status now).
    Account(Did),
    /// The administrator.
    Admin,
}

impl Viewer {
    /// Whether the caller is `did` itself or the administrator.
    pub fn is_owner_or_admin(&self, did: &Did) -> bool {
        match self {
            Viewer::Anonymous => false,
            Viewer::Account(caller) => caller == did,
            Viewer::Admin => true,
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = XrpcError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, XrpcError> {
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            return Ok(Viewer::Anonymous);
        };
        let header = header.as_bytes();
        if header.starts_with(b"Bearer ") {
            let auth = AccessAuth::from_request_parts(parts, state).await?;
            Ok(Viewer::Account(auth.did))
        } else if header.starts_with(b"Basic ") {
            AdminAuth::from_request_parts(parts, state).await?;
            Ok(Viewer::Admin)
        } else {
            Err(XrpcError::auth_required("Invalid authorization header"))
        }
    }
}
