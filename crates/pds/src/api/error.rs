//! [`XrpcError`]: the one error type at the HTTP edge, and every `From` impl mapping service
//! and store errors to lexicon error names.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pds_store::StoreError;

use crate::service::account::AccountError;
use crate::service::blob::BlobError;
use crate::service::writer::WriteError;

/// An XRPC error response: `{"error", "message"}` with a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XrpcError {
    /// HTTP status.
    pub status: StatusCode,
    /// The lexicon error name.
    pub error: &'static str,
    /// Human-readable detail.
    pub message: String,
}

impl XrpcError {
    /// An error with this status and name.
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        XrpcError {
            status,
            error,
            message: message.into(),
        }
    }

    /// 400 `InvalidRequest`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }

    /// 401 `AuthenticationRequired`.
    pub fn auth_required(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "AuthenticationRequired", message)
    }

    /// 401 `AccountTakedown`: the credentials are right but the account is taken down.
    pub fn account_takedown() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "AccountTakedown",
            "Account has been taken down",
        )
    }

    /// 400 `InvalidToken` (the reference's status for bad session tokens).
    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidToken", message)
    }

    /// 500 `InternalServerError`; the detail is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "Internal Server Error",
        )
    }

    /// 501 `MethodNotImplemented`.
    pub fn not_implemented(nsid: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "MethodNotImplemented",
            format!("Method Not Implemented: {nsid}"),
        )
    }
}

impl IntoResponse for XrpcError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.error, "message": self.message});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for XrpcError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::HandleTaken { .. } => {
                Self::invalid_request("Handle already taken").named("HandleNotAvailable")
            }
            StoreError::EmailTaken { .. } => {
                Self::invalid_request("Email already taken").named("EmailNotAvailable")
            }
            StoreError::InviteCodeUnavailable { .. } => {
                Self::invalid_request("Provided invite code not available")
                    .named("InvalidInviteCode")
            }
            StoreError::AccountNotFound { did } => {
                Self::invalid_request(format!("Could not find repo: {did}")).named("RepoNotFound")
            }
            StoreError::DidTaken { .. } => Self::invalid_request("DID already registered"),
            StoreError::BlobNotFound { cid } => {
                Self::invalid_request(format!("Could not find blob: {cid}"))
            }
            other => Self::internal(other),
        }
    }
}

impl XrpcError {
    /// The same error under another lexicon name.
    pub fn named(mut self, error: &'static str) -> Self {
        self.error = error;
        self
    }
}

impl From<WriteError> for XrpcError {
    fn from(e: WriteError) -> Self {
        use atp_repo::RepoError;
        match e {
            WriteError::RepoNotFound { did } => {
                Self::invalid_request(format!("Could not find repo: {did}")).named("RepoNotFound")
            }
            WriteError::InvalidSwap(m) => Self::invalid_request(m).named("InvalidSwap"),
            WriteError::InvalidRequest(m) => Self::invalid_request(m),
            WriteError::Repo(
                e @ (RepoError::RecordExists { .. }
                | RepoError::RecordNotFound { .. }
                | RepoError::DuplicatePath { .. }
                | RepoError::RecordNotMap { .. }),
            ) => Self::invalid_request(e.to_string()),
            WriteError::Repo(other) => Self::internal(other),
            WriteError::Store(e) => e.into(),
            WriteError::Key(e) => Self::internal(format!("signing key: {e}")),
            e @ WriteError::Encode(_) => Self::internal(e),
        }
    }
}

impl From<AccountError> for XrpcError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::InvalidHandle(m) => Self::invalid_request(m).named("InvalidHandle"),
            AccountError::InvalidInviteCode(m) => {
                Self::invalid_request(m).named("InvalidInviteCode")
            }
            AccountError::InvalidRequest(m) => Self::invalid_request(m),
            AccountError::AuthFailed => Self::new(
                StatusCode::UNAUTHORIZED,
                "AuthenticationRequired",
                "Invalid identifier or password",
            ),
            AccountError::ExpiredToken => {
                Self::invalid_token("Token has been revoked").named("ExpiredToken")
            }
            AccountError::Store(e) => e.into(),
            AccountError::Internal(m) => Self::internal(m),
        }
    }
}

impl From<BlobError> for XrpcError {
    fn from(e: BlobError) -> Self {
        match e {
            e @ BlobError::TooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "BlobTooLarge", e.to_string())
            }
            BlobError::Io(e) => Self::internal(e),
            BlobError::Store(e) => e.into(),
            e @ BlobError::Takendown => Self::invalid_request(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_lexicon_names() {
        let e: XrpcError = StoreError::HandleTaken {
            handle: "a.test".into(),
        }
        .into();
        assert_eq!(
            (e.status, e.error),
            (StatusCode::BAD_REQUEST, "HandleNotAvailable")
        );
        let e: XrpcError = StoreError::Database {
            message: "disk".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("disk"));
    }
}
