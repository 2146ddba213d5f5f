//! The PDS's storage: one SQLite database holding every account, session, repository block,
//! record index entry, blob's metadata and the firehose event log.
//!
//! What this crate owns:
//! - [`Store`]: opening `<data dir>/pds.sqlite` (WAL, `synchronous=FULL`, foreign keys, busy
//!   timeout), versioned schema migrations, one writer thread with group commit and a pool of
//!   read-only connections;
//! - [`Store::commit_repo`]: the atomic repository write (blocks, records index, blob states,
//!   root with compare-and-set, event) for an `atp_repo::CommitData`;
//! - [`SqliteBlockStore`]: an account's blocks as an `atp_repo::BlockStore`;
//! - accounts ([`Store::create_account`] with the genesis commit), refresh tokens with rotation,
//!   app passwords, invite codes, email tokens, preferences, record reads, blob metadata, the
//!   event log ([`Store::events_after`], [`Store::subscribe_seq`]);
//! - [`RepoLocks`]: per-account serialization of repository writes.
//!
//! What it deliberately does not own: HTTP and XRPC, password hashing, JWTs, blob bytes (files
//! or object storage), the firehose wire format (event bodies are opaque bytes), the repository
//! logic itself (`atp-repo`), and policy (who may do what, expiry of tokens and codes).
//!
//! # Why one database file
//! A repository write must commit its blocks, its records index, the new root **and** its
//! firehose event atomically, in one transaction: if the event could be lost while the data
//! stays (or the other way round), subscribers such as relays would see a repository that
//! disagrees with the event stream and fall out of sync. Two SQLite files in WAL mode cannot
//! commit atomically together, so the reference PDS's layout (an account database, one
//! database per account, a separate sequencer database) cannot give that guarantee. This store
//! keeps everything in one file; the writer connection runs every write in one transaction
//! (batches of queued writes share a transaction and an fsync, each isolated by a savepoint; see
//! `db.rs`), and readers use their own connections, so reads never wait for writes.
//!
//! # Schema
//! Times are `INTEGER` milliseconds since the Unix epoch; CIDs are `BLOB`s (binary CID); DIDs,
//! handles, NSIDs, record keys and TIDs are `TEXT`. All tables are `STRICT`. Rows owned by an
//! account reference `account(did)` with `ON DELETE CASCADE`.
//! - `schema_version(version, applied_at)`: one row per applied migration (`migrations`).
//! - `meta(key, value)`: `last_seq` (last event number handed out), `seq_floor`.
//! - `account(did PK, handle UNIQUE NOCASE, email UNIQUE NOCASE NULL, password_hash NULL,
//!   created_at, email_confirmed_at, deactivated_at, delete_after, takedown_ref,
//!   invites_disabled, email_auth_factor_at)`.
//! - `refresh_token(id PK, did, app_password_name, expires_at, next_id)`: `next_id` is the token
//!   this one was rotated into (see `session`).
//! - `app_password(did, name, password_hash, privileged, created_at; PK (did, name))`.
//! - `invite_code(code PK, available_uses, disabled, for_account, created_by, created_at)` and
//!   `invite_code_use(code, used_by, used_at; PK (code, used_by))`.
//! - `repo_root(did PK, commit_cid, rev, data_cid, indexed_at)`: the current commit.
//! - `repo_block(did, cid, rev, bytes; PK (did, cid))`: every block with the revision of the
//!   commit that stored it (for `getRepo?since=`).
//! - `record(uri PK, did, collection, rkey, cid, rev, indexed_at, takedown_ref)`, unique on
//!   `(did, collection, rkey)`, indexed on `(did, cid)`: the records index.
//! - `blob(did, cid, mime_type, size, status, temp_key, created_at, takedown_ref, quarantined;
//!   PK (did, cid))` with `status` in `temporary`, `permanent`, `expected` (see `blob`);
//!   `quarantined` says where the file of a permanent blob is (see `admin`).
//! - `record_blob(record_uri, blob_cid, did; PK (record_uri, blob_cid))`: which record references
//!   which blob; cascades from `record`.
//! - `event(seq INTEGER PK, did, kind, body, time)`: the event log (see `event`).
//! - `email_token(did, purpose, token, requested_at; PK (did, purpose))`, unique on
//!   `(purpose, token)`.
//! - `account_pref(id PK, did, name, value_json)`.
//! - `import_block(did, cid, bytes, used; PK (did, cid))`, `import_record(did, collection, rkey, cid)`
//!   and `import_record_blob(did, collection, rkey, blob_cid, mime_type, size)`: the staging area of
//!   a repository import (`import`), emptied when the import is swapped in or refused.
//! - Index `event_by_did (did, seq)`: an account's events, deleted with the account.
//!
//! # Tricky bits
//! - Time is an argument (`now`) everywhere; the store never reads the clock.
//! - A commit deletes the blocks `atp-repo` lists as removed, except record blocks that another
//!   record of the same repository still points at (identical records share a CID).
//! - Every write is acknowledged only after its transaction committed; dropping the future of a
//!   queued write does not cancel it.
#![deny(clippy::unwrap_used, clippy::panic, clippy::print_stdout)]
#![warn(missing_docs)]

mod account;
mod admin;
mod blob;
mod blockstore;
mod db;
mod email;
mod error;
mod event;
mod import;
mod invite;
mod lock;
mod migrations;
mod pref;
mod record;
mod repo;
// sync: a whole repository read at once for a full export (getRepo)
mod repo_export;
mod scheduled;
mod session;
mod since_rev;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use account::{Account, CreatedAccount, ListedRepo, NewAccount};
pub use admin::{AccountStatusChange, InviteCursor, InviteSort, QuarantineMove};
pub use blob::{
    BlobCounts, BlobMeta, BlobStatus, MissingBlob, NewUpload, PromotedBlob, TempBlobFile,
    UnknownBlobStatus, UploadOutcome,
};
pub use blockstore::SqliteBlockStore;
pub use email::{EmailToken, EmailTokenPurpose, read_email_token};
pub use error::StoreError;
pub use event::{EventKind, NewEvent, StoredEvent, UnknownEventKind};
pub use import::{ImportOutcome, ImportStaging, ImportedHead, ResignedHead, StagedRecord};
pub use invite::{InviteCode, InviteCodeUse, NewInviteCode};
pub use lock::{RepoGuard, RepoLocks};
pub use pref::Preference;
pub use record::{ListRecords, MAX_LIST_LIMIT, StoredRecord};
pub use repo::{CommitOutcome, MissingBlobs, RepoCommit, RepoRoot};
pub use repo_export::RepoSnapshot;
pub use session::{AppPassword, REFRESH_GRACE, RefreshToken, Rotation};
pub use since_rev::SINCE_REV_LIMIT;

/// The database file's name inside the data directory.
pub const DB_FILE_NAME: &str = "pds.sqlite";
/// Read-only connections opened by [`Store::open`].
pub const DEFAULT_READERS: usize = 4;

/// The store: cheap to clone (all clones share the connections).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: db::Db,
    locks: RepoLocks,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) `<data_dir>/pds.sqlite` with [`DEFAULT_READERS`] readers,
    /// creating the directory if needed and migrating the schema. Blocking: call it at startup
    /// or from a blocking task.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Setup {
            reason: format!("cannot create {}: {e}", data_dir.display()),
        })?;
        Store::open_file(&data_dir.join(DB_FILE_NAME), DEFAULT_READERS)
    }

    /// Opens (creating if needed) the database file `path` with `readers` read-only connections
    /// (at least one), migrating the schema. Refuses a database whose schema is newer than this
    /// build ([`StoreError::SchemaTooNew`]). Must be called with no other process writing the
    /// file's schema; starts the writer thread.
    pub fn open_file(path: &Path, readers: usize) -> Result<Store, StoreError> {
        let mut writer = db::open_connection(path, db::Role::Writer)?;
        migrations::migrate(&mut writer)?;
        let db = db::Db::start(path, writer, readers)?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                locks: RepoLocks::new(),
                path: path.to_owned(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The schema version this build creates and understands.
    pub fn schema_version() -> u32 {
        migrations::latest_version()
    }

    /// Waits for and takes the repository lock of `did` (see [`RepoLocks`]); hold it from reading
    /// the head to the end of [`Store::commit_repo`] and the blob file work that follows.
    pub async fn lock_repo(&self, did: &atp_syntax::Did) -> RepoGuard {
        self.inner.locks.lock(did).await
    }

    /// The per-account repository locks.
    pub fn repo_locks(&self) -> &RepoLocks {
        &self.inner.locks
    }

    pub(crate) fn db(&self) -> &db::Db {
        &self.inner.db
    }
}
