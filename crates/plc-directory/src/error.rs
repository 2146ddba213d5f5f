//! The directory's one error type.

use atp_identity::plc::{AuditError, NewOpError};

/// Why a directory call failed.
///
/// Only [`DirectoryError::Rejected`] is the caller's fault (HTTP 400); everything else is a
/// problem on the directory's side (HTTP 500).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The proposed operation was refused (policy, signature, `prev`, late recovery, ...);
    /// nothing was stored.
    #[error("{0}")]
    Rejected(Box<NewOpError>),
    /// SQLite failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database could not be set up as required.
    #[error("database setup failed: {reason}")]
    Setup {
        /// What went wrong.
        reason: String,
    },
    /// The database was written by a newer version of this directory.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// The version found.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A stored row could not be read back.
    #[error("stored data for {did} is corrupt: {reason}")]
    Corrupt {
        /// The DID of the row.
        did: String,
        /// What was wrong.
        reason: String,
    },
    /// A DID's stored log no longer audits.
    #[error("stored log of {did} is invalid: {source}")]
    InvalidStoredLog {
        /// The DID.
        did: atp_syntax::Did,
        /// The audit failure.
        #[source]
        source: Box<AuditError>,
    },
    /// The clock gave a time that cannot be stored.
    #[error("the current time is out of range")]
    ClockOutOfRange,
    /// A blocking database task panicked or was cancelled.
    #[error("database task failed")]
    TaskFailed,
}

impl DirectoryError {
    /// Whether the caller is at fault (the operation was refused), as opposed to the directory.
    pub fn is_rejection(&self) -> bool {
        matches!(self, DirectoryError::Rejected(_))
    }
}
