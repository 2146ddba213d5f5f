//! The store's one error type.

use atp_data::Cid;
use atp_syntax::Did;

/// Why a store call failed.
///
/// The variants up to [`StoreError::BlobNotFound`] describe a request the store refused (nothing
/// was written); the rest are failures on the store's side. The type is `Clone` because one
/// failed group commit answers several callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The repository's current commit is not the one the new commit builds on: another write
    /// landed first. Nothing was written; re-read the head and format the commit again.
    /// (The commit's own `prev` is the root that was expected.)
    #[error("repository {did} moved: its root is now {found:?}")]
    RootMoved {
        /// The account.
        did: Did,
        /// The stored root (`None`: no repository yet).
        found: Option<Cid>,
    },
    /// No account with this DID.
    #[error("account not found: {did}")]
    AccountNotFound {
        /// The DID.
        did: Did,
    },
    /// An account with this DID exists.
    #[error("an account already exists for {did}")]
    DidTaken {
        /// The DID.
        did: Did,
    },
    /// Another account has this handle (compared case-insensitively).
    #[error("handle already taken: {handle}")]
    HandleTaken {
        /// The handle.
        handle: String,
    },
    /// Another account has this email address (compared case-insensitively).
    #[error("email address already taken: {email}")]
    EmailTaken {
        /// The address.
        email: String,
    },
    /// The invite code does not exist, is disabled or is used up.
    #[error("invite code unavailable: {code}")]
    InviteCodeUnavailable {
        /// The code.
        code: String,
    },
    /// The account already has an app password with this name.
    #[error("app password already exists: {name}")]
    AppPasswordExists {
        /// The name.
        name: String,
    },
    /// A preference's name is outside the namespace being written.
    #[error("preference {name} is outside the namespace {namespace}")]
    PreferenceOutsideNamespace {
        /// The preference name (`$type`).
        name: String,
        /// The namespace being replaced.
        namespace: String,
    },
    /// A commit or block batch is not consistent with itself or with the request (wrong DID,
    /// malformed path, blob refs for a path without an op, ...).
    #[error("invalid commit for {did}: {reason}")]
    InvalidCommit {
        /// The account.
        did: Did,
        /// What is wrong.
        reason: String,
    },
    /// A block's bytes do not hash to its CID; nothing was written.
    #[error("block {cid} does not match its content hash")]
    HashMismatch {
        /// The claimed CID.
        cid: Cid,
    },
    /// A record references a blob that was never uploaded (only under
    /// [`MissingBlobs::Reject`](crate::MissingBlobs::Reject)).
    #[error("blob not found: {cid}")]
    BlobNotFound {
        /// The blob's CID.
        cid: Cid,
    },
    /// SQLite failed.
    #[error("database error: {message}")]
    Database {
        /// SQLite's description.
        message: String,
    },
    /// The database could not be opened or set up as required.
    #[error("database setup failed: {reason}")]
    Setup {
        /// What went wrong.
        reason: String,
    },
    /// The database was written by a newer version of this store.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// The version found.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A stored value could not be read back.
    #[error("stored data is corrupt: {reason}")]
    Corrupt {
        /// What was wrong.
        reason: String,
    },
    /// The writer thread or a reader task stopped (panicked, or the store is shutting down).
    #[error("store task failed: {reason}")]
    TaskFailed {
        /// What happened.
        reason: String,
    },
}

impl StoreError {
    /// Whether the request was refused (the caller's fault or a lost race), as opposed to a
    /// failure of the store.
    pub fn is_rejection(&self) -> bool {
        !matches!(
            self,
            StoreError::Database { .. }
                | StoreError::Setup { .. }
                | StoreError::SchemaTooNew { .. }
                | StoreError::Corrupt { .. }
                | StoreError::TaskFailed { .. }
        )
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::FromSqlConversionFailure(column, _, source) => StoreError::Corrupt {
                reason: format!("column {column}: {source}"),
            },
            other => StoreError::Database {
                message: other.to_string(),
            },
        }
    }
}

impl From<StoreError> for atp_repo::StoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::HashMismatch { cid } => atp_repo::StoreError::HashMismatch { cid },
            other => atp_repo::StoreError::Backend {
                message: other.to_string(),
            },
        }
    }
}
