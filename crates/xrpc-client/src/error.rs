//! [`XrpcError`]: everything an XRPC call can fail with.

use reqwest::StatusCode;

/// Why an XRPC call failed.
#[derive(Debug, thiserror::Error)]
pub enum XrpcError {
    /// The base URL is not an absolute `http`/`https` URL.
    #[error("invalid base URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header name or value (including credentials) is not valid in HTTP.
    #[error("invalid header {name:?}")]
    InvalidHeader {
        /// The header name as given.
        name: String,
    },
    /// The parameters do not serialise to a flat map of scalars (or arrays of scalars).
    #[error("invalid query parameters: {reason}")]
    InvalidParams {
        /// What could not be encoded.
        reason: String,
    },
    /// The server answered with a non-2xx status. `error` and `message` come from the
    /// `{"error", "message"}` body; either is `None` when absent or when the body is not JSON.
    #[error("XRPC error {status}: {}{}", error.as_deref().unwrap_or("(no error name)"), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Response {
        /// HTTP status.
        status: StatusCode,
        /// The lexicon error name, e.g. `InvalidRequest`.
        error: Option<String>,
        /// Human-readable detail.
        message: Option<String>,
    },
    /// Connecting, sending or receiving failed (including timeouts).
    #[error("transport error: {0}")]
    Transport(#[source] reqwest::Error),
    /// A JSON body (request or response) could not be (de)serialised.
    #[error("cannot decode the response: {0}")]
    Decode(#[source] serde_json::Error),
    /// A JSON response body exceeded the configured cap.
    #[error("response body larger than {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
}

impl XrpcError {
    /// The HTTP status, for [`XrpcError::Response`]; `None` otherwise.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            XrpcError::Response { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The lexicon error name, for [`XrpcError::Response`] with a named error; `None` otherwise.
    pub fn error_name(&self) -> Option<&str> {
        match self {
            XrpcError::Response { error, .. } => error.as_deref(),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for XrpcError {
    fn from(e: reqwest::Error) -> Self {
        XrpcError::Transport(e)
    }
}
