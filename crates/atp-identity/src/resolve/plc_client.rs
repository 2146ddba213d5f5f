//! A client for a PLC directory's HTTP API (<https://web.plc.directory/api/redoc>).
//!
//! The directory URL is configuration, so it is trusted: plain `http` and loopback are fine
//! (a local directory in tests). Answers are still size-capped and checked: documents must be
//! for the DID asked for, audit logs are parsed entry by entry and can be validated with
//! [`crate::plc::validate_audit_log`] ([`PlcClient::audited_log`]).

use atp_syntax::Did;
use reqwest::Url;

use super::fetch::{FetchError, Fetcher};
use super::{Limits, USER_AGENT};
use crate::did_doc::{DidDocError, DidDocument};
use crate::plc::{AuditError, AuditedLog, LogEntry, PlcData, SignedOp, validate_audit_log};

/// Why a PLC directory request failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlcError {
    /// The directory URL is not a usable base URL.
    #[error("invalid PLC directory URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The directory does not know the DID (404).
    #[error("DID not registered with the PLC directory: {did}")]
    NotFound {
        /// The DID.
        did: Did,
    },
    /// The DID is deactivated (410, or 404 "not available" for a tombstoned DID).
    #[error("DID is tombstoned: {did}")]
    Tombstoned {
        /// The DID.
        did: Did,
    },
    /// The directory refused a submitted operation (4xx), with its message.
    #[error("PLC directory refused the operation (HTTP {status}): {message}")]
    Rejected {
        /// The status code (400 for an invalid operation, 409 for a race).
        status: u16,
        /// The directory's `message`, or the body as text.
        message: String,
    },
    /// The answer could not be used: not JSON of the expected shape, or data for another DID.
    #[error("invalid answer from the PLC directory for {did}: {reason}")]
    InvalidResponse {
        /// The DID asked about.
        did: Did,
        /// What was wrong.
        reason: String,
    },
    /// The DID document served is unusable (malformed, or for another DID).
    #[error("invalid DID document from the PLC directory: {0}")]
    InvalidDocument(#[from] DidDocError),
    /// One audit-log entry could not be parsed.
    #[error("audit log entry {index} is malformed: {reason}")]
    InvalidEntry {
        /// Index of the entry in the log.
        index: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// The audit log parsed but does not validate.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The request failed (network, timeout, size cap, unexpected status).
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

/// A PLC directory client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PlcClient {
    base: String,
    fetcher: Fetcher,
    limits: Limits,
}

impl PlcClient {
    /// A client for the directory at `base_url` (e.g. `https://plc.directory`); trusted, so any
    /// scheme (http or https) and any address.
    pub fn new(base_url: &str, limits: &Limits) -> Result<PlcClient, PlcError> {
        PlcClient::with_user_agent(base_url, limits, USER_AGENT)
    }

    /// [`PlcClient::new`] with another `User-Agent`.
    pub fn with_user_agent(
        base_url: &str,
        limits: &Limits,
        user_agent: &str,
    ) -> Result<PlcClient, PlcError> {
        let invalid = |reason: &str| PlcError::InvalidUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(invalid("must be an http(s) URL with a host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("must not have a query or fragment"));
        }
        let fetcher = Fetcher::trusted(limits, user_agent)?;
        Ok(PlcClient {
            base: base_url.trim_end_matches('/').to_owned(),
            fetcher,
            limits: limits.clone(),
        })
    }

    /// The directory's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, did: &Did, suffix: &str) -> Result<Url, PlcError> {
        let url = format!("{}/{did}{suffix}", self.base);
        Url::parse(&url).map_err(|e| PlcError::InvalidUrl {
            url,
            reason: e.to_string(),
        })
    }

    async fn get(&self, did: &Did, suffix: &str, limit: usize) -> Result<Vec<u8>, PlcError> {
        let url = self.url(did, suffix)?;
        self.fetcher
            .get(&url, limit)
            .await
            .map_err(|e| not_found_or(did, e))
    }

    fn parse<T: serde::de::DeserializeOwned>(did: &Did, body: &[u8]) -> Result<T, PlcError> {
        serde_json::from_slice(body).map_err(|e| PlcError::InvalidResponse {
            did: did.clone(),
            reason: e.to_string(),
        })
    }

    /// `GET /{did}`: the DID document, checked to be for `did`.
    pub async fn did_document(&self, did: &Did) -> Result<DidDocument, PlcError> {
        let body = self.get(did, "", self.limits.max_document_bytes).await?;
        let doc = DidDocument::parse(&body)?;
        doc.ensure_id(did)?;
        Ok(doc)
    }

    /// `GET /{did}/data`: the current PLC state, checked to be for `did`.
    pub async fn data(&self, did: &Did) -> Result<PlcData, PlcError> {
        let body = self
            .get(did, "/data", self.limits.max_document_bytes)
            .await?;
        let data: PlcData = Self::parse(did, &body)?;
        if &data.did != did {
            return Err(PlcError::InvalidResponse {
                did: did.clone(),
                reason: format!("data is for {}", data.did),
            });
        }
        Ok(data)
    }

    /// `GET /{did}/log/last`: the most recent operation (possibly a nullified one, as the
    /// directory stores it).
    pub async fn last_operation(&self, did: &Did) -> Result<SignedOp, PlcError> {
        let body = self
            .get(did, "/log/last", self.limits.max_document_bytes)
            .await?;
        Self::parse(did, &body)
    }

    /// `GET /{did}/log/audit`: every operation, nullified ones included, parsed entry by entry
    /// but not validated (see [`PlcClient::audited_log`]).
    pub async fn audit_log(&self, did: &Did) -> Result<Vec<LogEntry>, PlcError> {
        let body = self
            .get(did, "/log/audit", self.limits.max_log_bytes)
            .await?;
        let raw: Vec<serde_json::Value> = Self::parse(did, &body)?;
        raw.into_iter()
            .enumerate()
            .map(|(index, entry)| {
                serde_json::from_value(entry).map_err(|e| PlcError::InvalidEntry {
                    index,
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// The audit log, validated: every signature, the `prev` chain, the recovery rules and the
    /// `nullified` flags. Returns the entries and the resulting state.
    pub async fn audited_log(&self, did: &Did) -> Result<(Vec<LogEntry>, AuditedLog), PlcError> {
        let entries = self.audit_log(did).await?;
        let audited = validate_audit_log(did, &entries)?;
        Ok((entries, audited))
    }

    /// `POST /{did}`: submits a signed operation. A refusal carries the directory's message.
    pub async fn submit(&self, did: &Did, op: &SignedOp) -> Result<(), PlcError> {
        let url = self.url(did, "")?;
        let body = op.to_json();
        match self
            .fetcher
            .post_json(&url, &body, self.limits.max_document_bytes)
            .await
        {
            Ok(_) => Ok(()),
            Err(FetchError::Status { status, body, .. }) if (400..500).contains(&status) => {
                Err(PlcError::Rejected {
                    status,
                    message: error_message(&body),
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// 404 → not found (or tombstoned, when the directory says "not available"), 410 → tombstoned.
fn not_found_or(did: &Did, e: FetchError) -> PlcError {
    match e {
        FetchError::Status { status: 410, .. } => PlcError::Tombstoned { did: did.clone() },
        FetchError::Status {
            status: 404,
            ref body,
            ..
        } => {
            if error_message(body).contains("not available") {
                PlcError::Tombstoned { did: did.clone() }
            } else {
                PlcError::NotFound { did: did.clone() }
            }
        }
        other => PlcError::Fetch(other),
    }
}

/// The `message` of a JSON error body (`{"message": "..."}`), or the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned())
}
