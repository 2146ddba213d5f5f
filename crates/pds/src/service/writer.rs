//! The ONE repository write path: createRecord, putRecord, deleteRecord and applyWrites all go
//! through [`RepoWriter::apply`].
//!
//! Under the account's repository lock: read the head, check `swapCommit` / `swapRecord`, turn the
//! requests into `atp_repo::RecordWrite`s (TID record keys by default), format and sign the commit
//! (`atp_repo::format_commit_on`), then persist blocks, records, blob states, the root and the
//! `#commit` event in one transaction (`Store::commit_repo`), and finally move newly referenced
//! blob files to permanent storage.
//!
//! The commit and the blob moves run in a task of their own that holds the lock: a request
//! cancelled mid-commit (its client went away) cannot let the next write in before the queued
//! commit has landed.
//!
//! Two caches spare each commit work that does not change between commits: the parsed signing
//! key of each account (used while its file is unchanged), and the MST of recently written
//! repositories with the paths the last commit wrote still loaded (used while the stored head is
//! that commit), so a commit usually reads no tree node before writing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use atp_crypto::Keypair;
use atp_data::{Cid, Value};
use atp_repo::{CommitData, RecordWrite, RepoError};
use atp_syntax::{Did, Nsid, RecordKey, TidClock};
use chrono::Utc;
use pds_store::{EventKind, MissingBlobs, NewEvent, RepoCommit, Store, StoreError};

use crate::config::Config;
use crate::service::files::{BlobFiles, KeyFiles};

/// What a client asks to do to one record.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Create a record; `rkey: None` picks a TID.
    Create {
        /// Collection.
        collection: Nsid,
        /// Record key, or `None` for a fresh TID.
        rkey: Option<RecordKey>,
        /// The record.
        record: Value,
    },
    /// Create or replace a record (putRecord).
    Put {
        /// Collection.
        collection: Nsid,
        /// Record key.
        rkey: RecordKey,
        /// The record.
        record: Value,
        /// `None`: no check; `Some(None)`: the record must not exist; `Some(Some(cid))`: the record
        /// must currently have that CID.
        swap_record: Option<Option<Cid>>,
    },
    /// Replace an existing record (applyWrites `#update`).
    Update {
        /// Collection.
        collection: Nsid,
        /// Record key.
        rkey: RecordKey,
        /// The record.
        record: Value,
    },
    /// Delete a record.
    Delete {
        /// Collection.
        collection: Nsid,
        /// Record key.
        rkey: RecordKey,
        /// As for [`WriteOp::Put`].
        swap_record: Option<Option<Cid>>,
    },
}

/// The result of one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    /// `at://did/collection/rkey`.
    pub uri: String,
    /// The record's new CID (`None` for deletes).
    pub cid: Option<Cid>,
    /// Whether this was a create, update or delete.
    pub action: &'static str,
}

/// The result of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The new commit's CID.
    pub commit: Cid,
    /// Its revision.
    pub rev: String,
    /// One result per write, in order.
    pub results: Vec<WriteResult>,
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The account has no repository.
    #[error("could not find repo: {did}")]
    RepoNotFound {
        /// The account.
        did: Did,
    },
    /// `swapCommit` or `swapRecord` did not match.
    #[error("{0}")]
    InvalidSwap(String),
    /// The request is not acceptable.
    #[error("{0}")]
    InvalidRequest(String),
    /// The repository refused the writes.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encoding the event's CAR slice failed.
    #[error("encoding the commit event failed: {0}")]
    Encode(String),
    /// The account's signing key could not be read.
    #[error("signing key unavailable: {0}")]
    Key(std::io::Error),
}

/// The repository writer.
#[derive(Debug)]
pub struct RepoWriter {
    store: Store,
    keys: KeyFiles,
    blobs: BlobFiles,
    clock: Mutex<TidClock>,
    signing_keys: KeyCache,
    trees: TreeCache,
}

/// Most repositories whose tree is kept between commits.
const TREE_CACHE_MAX: usize = 64;
/// Most written paths kept loaded in a kept tree; a bigger commit keeps only the right edge.
const TREE_PATHS_MAX: usize = 16;

/// The MST of recently written repositories as the last commit left it, keeping loaded only the
/// paths that commit wrote and the right edge (where the next TID-keyed record goes), keyed by
/// account and tagged with that commit's CID: the next commit of the account starts from it
/// instead of reading the path from the root down again. Used only while the stored head is
/// still that commit (anything else that moves the head, an import for instance, just makes the
/// entry unused), and [`atp_repo::format_commit_on`] checks the tree's root against the head's
/// data anyway.
#[derive(Default)]
struct TreeCache {
    trees: Mutex<HashMap<Did, (Cid, atp_repo::Mst)>>,
}

impl std::fmt::Debug for TreeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeCache").finish_non_exhaustive()
    }
}

impl TreeCache {
    /// The tree of `head` if it is the one kept, else the head's tree to be loaded.
    fn take(&self, did: &Did, head: &atp_repo::RepoHead) -> atp_repo::Mst {
        let kept = self
            .trees
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(did);
        match kept {
            Some((commit, tree)) if commit == head.cid => tree,
            _ => head.tree(),
        }
    }

    /// Keeps `tree` as the tree of commit `commit`, with only the paths to `written` (unless
    /// there are many) and the right edge loaded: a few dozen nodes at most.
    fn keep(&self, did: &Did, commit: Cid, tree: &atp_repo::Mst, written: &[RecordWrite]) {
        let paths: Vec<String> = if written.len() <= TREE_PATHS_MAX {
            written.iter().map(RecordWrite::path).collect()
        } else {
            Vec::new()
        };
        let keys: Vec<&str> = paths.iter().map(String::as_str).collect();
        let tree = tree.keep_paths(&keys, true);
        let mut trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
        if trees.len() >= TREE_CACHE_MAX && !trees.contains_key(did) {
            trees.clear();
        }
        trees.insert(did.clone(), (commit, tree));
    }
}

/// Most signing keys kept in memory; the cache is emptied when it is full.
const KEY_CACHE_MAX: usize = 4096;

/// Signing keys already read and parsed, by account, each with the identity of the file it came
/// from: a key is used again only while its file is unchanged (one `stat` instead of reading and
/// parsing the file, which derives the public key: a scalar multiplication, on every commit).
#[derive(Default)]
struct KeyCache {
    keys: Mutex<HashMap<Did, (FileStamp, Arc<Keypair>)>>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache").finish_non_exhaustive()
    }
}

/// What identifies one version of a file: a rewrite or a replacement changes at least one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
    #[cfg(unix)]
    changed: (i64, i64),
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: (meta.dev(), meta.ino()),
            #[cfg(unix)]
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

fn now_micros() -> u64 {
    u64::try_from(Utc::now().timestamp_micros()).unwrap_or(0)
}

/// A random TID clock identifier (0..1024).
pub fn random_clock_id() -> u16 {
    (rand_core::RngCore::next_u32(&mut rand_core::OsRng) % 1024) as u16
}

impl RepoWriter {
    /// A writer over `store`, with keys and blobs where `config` says.
    pub fn new(store: Store, config: &Config) -> RepoWriter {
        RepoWriter {
            store,
            keys: KeyFiles::new(&config.data_dir),
            blobs: BlobFiles::new(&config.blobstore_dir),
            clock: Mutex::new(TidClock::new(random_clock_id())),
            signing_keys: KeyCache::default(),
            trees: TreeCache::default(),
        }
    }

    /// `did`'s signing key, from the cache while its file is unchanged.
    fn signing_key(&self, did: &Did) -> Result<Arc<Keypair>, WriteError> {
        let stamp =
            FileStamp::of(&std::fs::metadata(self.keys.key_path(did)).map_err(WriteError::Key)?);
        let mut cache = self
            .signing_keys
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((cached, key)) = cache.get(did)
            && *cached == stamp
        {
            return Ok(Arc::clone(key));
        }
        // Read under the lock: concurrent commits of one account wait for one read.
        let key = Arc::new(self.keys.load(did).map_err(WriteError::Key)?);
        if cache.len() >= KEY_CACHE_MAX {
            cache.clear();
        }
        // Should the file change between the `stat` and the read, the next commit sees a
        // different stamp and reads it again.
        cache.insert(did.clone(), (stamp, Arc::clone(&key)));
        Ok(key)
    }

    /// The next TID of this server's clock.
    pub fn next_tid(&self) -> atp_syntax::Tid {
        let mut clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
        clock.next(now_micros())
    }

    /// The account signing keys.
    pub fn keys(&self) -> &KeyFiles {
        &self.keys
    }

    /// The blob files.
    pub fn blobs(&self) -> &BlobFiles {
        &self.blobs
    }

    /// Applies `ops` to `did`'s repository as one commit (see the module docs).
    pub async fn apply(
        &self,
        did: &Did,
        ops: Vec<WriteOp>,
        swap_commit: Option<Cid>,
    ) -> Result<Applied, WriteError> {
        if ops.is_empty() {
            return Err(WriteError::InvalidRequest("no writes given".into()));
        }
        let guard = self.store.lock_repo(did).await;
        let head = self
            .store
            .repo_head(did)
            .await?
            .ok_or_else(|| WriteError::RepoNotFound { did: did.clone() })?;
        if let Some(swap) = swap_commit
            && swap != head.cid
        {
            return Err(WriteError::InvalidSwap(format!(
                "Commit was at {}",
                head.cid
            )));
        }
        let mut writes = Vec::with_capacity(ops.len());
        for op in ops {
            writes.push(self.resolve(did, op).await?);
        }
        let key = self.signing_key(did)?;
        let tid = self.next_tid();
        let blocks = self.store.block_store(did);
        let tree = self.trees.take(did, &head);
        let (commit, tree) =
            atp_repo::format_commit_on(&blocks, Some(&head), tree, did, &writes, &*key, &tid)
                .await?;
        let applied = applied(did, &writes, &commit);
        let event = NewEvent {
            kind: EventKind::Commit,
            body: commit_event_body(did, &commit)?,
        };
        let repo_commit = RepoCommit {
            record_blobs: record_blobs(&writes, &commit),
            commit,
            missing_blobs: MissingBlobs::Reject,
        };
        // From here on the commit must finish, or fail, with the lock held, even if the request
        // is cancelled (the client went away): once queued, the store commits it anyway, and a
        // next write let in early would be formatted on the old head. So the rest runs in its
        // own task, which owns the lock.
        let finish = Finish {
            store: self.store.clone(),
            blobs: self.blobs.clone(),
            did: did.clone(),
        };
        let commit_cid = repo_commit.commit.cid;
        tokio::spawn(async move {
            let _guard = guard;
            finish.commit(repo_commit, event).await
        })
        .await
        .map_err(|e| {
            WriteError::Store(StoreError::TaskFailed {
                reason: format!("commit task failed: {e}"),
            })
        })??;
        self.trees.keep(did, commit_cid, &tree, &writes);
        Ok(applied)
    }

    /// Checks a request against the current records and turns it into a repository write.
    async fn resolve(&self, did: &Did, op: WriteOp) -> Result<RecordWrite, WriteError> {
        Ok(match op {
            WriteOp::Create {
                collection,
                rkey,
                record,
            } => {
                let rkey = match rkey {
                    Some(rkey) => rkey,
                    None => self
                        .next_tid()
                        .as_str()
                        .parse()
                        .map_err(|_| WriteError::InvalidRequest("bad TID".into()))?,
                };
                RecordWrite::Create {
                    collection,
                    rkey,
                    record,
                }
            }
            WriteOp::Put {
                collection,
                rkey,
                record,
                swap_record,
            } => {
                let current = self.current(did, &collection, &rkey).await?;
                check_swap(swap_record, current)?;
                match current {
                    Some(_) => RecordWrite::Update {
                        collection,
                        rkey,
                        record,
                    },
                    None => RecordWrite::Create {
                        collection,
                        rkey,
                        record,
                    },
                }
            }
            WriteOp::Update {
                collection,
                rkey,
                record,
            } => RecordWrite::Update {
                collection,
                rkey,
                record,
            },
            WriteOp::Delete {
                collection,
                rkey,
                swap_record,
            } => {
                let current = self.current(did, &collection, &rkey).await?;
                check_swap(swap_record, current)?;
                RecordWrite::Delete { collection, rkey }
            }
        })
    }

    async fn current(
        &self,
        did: &Did,
        collection: &Nsid,
        rkey: &RecordKey,
    ) -> Result<Option<Cid>, WriteError> {
        Ok(self
            .store
            .get_record(did, collection, rkey)
            .await?
            .map(|r| r.cid))
    }
}

/// The part of a write that runs after formatting: commit, then move blob files.
struct Finish {
    store: Store,
    blobs: BlobFiles,
    did: Did,
}

impl Finish {
    /// Persists the commit and its event, then settles blob files.
    async fn commit(&self, repo_commit: RepoCommit, event: NewEvent) -> Result<(), WriteError> {
        let did = &self.did;
        let outcome = self
            .store
            .commit_repo(did, repo_commit, event, Utc::now())
            .await
            .map_err(|e| match e {
                StoreError::BlobNotFound { cid } => {
                    WriteError::InvalidRequest(format!("Could not find blob: {cid}"))
                }
                other => WriteError::Store(other),
            })?;
        for promoted in outcome.promoted_blobs {
            self.finish_promotion(&promoted.cid, promoted.temp_key.as_deref())
                .await;
        }
        for cid in outcome.unreferenced_blobs {
            if let Err(e) = self.blobs.delete(did, &cid).await {
                tracing::warn!(%did, %cid, error = %e, "deleting an unreferenced blob file failed");
            }
        }
        Ok(())
    }

    /// Moves a promoted blob's file and confirms it; a failure is logged and retried at start-up.
    async fn finish_promotion(&self, cid: &Cid, temp_key: Option<&str>) {
        let did = &self.did;
        if let Some(key) = temp_key
            && let Err(e) = self.blobs.promote(did, cid, key).await
        {
            tracing::error!(%did, %cid, error = %e, "moving a blob to permanent storage failed");
            return;
        }
        if let Err(e) = self.store.finish_blob_promotion(did, cid).await {
            tracing::error!(%did, %cid, error = %e, "confirming a blob promotion failed");
        }
    }
}

fn check_swap(expected: Option<Option<Cid>>, current: Option<Cid>) -> Result<(), WriteError> {
    match expected {
        Some(expected) if expected != current => Err(WriteError::InvalidSwap(format!(
            "Record was at {}",
            current.map_or_else(|| "null".to_owned(), |c| c.to_string())
        ))),
        _ => Ok(()),
    }
}

fn applied(did: &Did, writes: &[RecordWrite], commit: &CommitData) -> Applied {
    let results = writes
        .iter()
        .map(|w| {
            let path = w.path();
            let (action, cid) = match w {
                RecordWrite::Create { record, .. } | RecordWrite::Update { record, .. } => {
                    let cid = atp_data::cid::cid_for_cbor(&atp_data::cbor::to_vec(record));
                    let action = if matches!(w, RecordWrite::Create { .. }) {
                        "create"
                    } else {
                        "update"
                    };
                    (action, Some(cid))
                }
                RecordWrite::Delete { .. } => ("delete", None),
            };
            WriteResult {
                uri: format!("at://{did}/{path}"),
                cid,
                action,
            }
        })
        .collect();
    Applied {
        commit: commit.cid,
        rev: commit.rev.to_string(),
        results,
    }
}

/// The blobs referenced by each created or updated record that is an op of the commit.
fn record_blobs(
    writes: &[RecordWrite],
    commit: &CommitData,
) -> BTreeMap<String, Vec<atp_data::blob::BlobRef>> {
    let mut out = BTreeMap::new();
    for w in writes {
        if let RecordWrite::Create { record, .. } | RecordWrite::Update { record, .. } = w {
            let path = w.path();
            let refs = atp_data::blob::collect(record);
            if !refs.is_empty() && commit.ops.iter().any(|op| op.path == path) {
                out.insert(path, refs);
            }
        }
    }
    out
}

/// The `#commit` event body as DAG-CBOR, without `seq` and `time` (the sequencer adds them).
pub fn commit_event_body(did: &Did, commit: &CommitData) -> Result<Vec<u8>, WriteError> {
    let mut car = atp_data::car::CarWriter::new(Vec::new(), &[commit.cid])
        .map_err(|e| WriteError::Encode(e.to_string()))?;
    for (cid, bytes) in commit.relevant_blocks.iter() {
        car.write_block(cid, bytes)
            .map_err(|e| WriteError::Encode(e.to_string()))?;
    }
    let blocks = car
        .finish()
        .map_err(|e| WriteError::Encode(e.to_string()))?;
    let link_or_null = |c: Option<Cid>| c.map_or(Value::Null, Value::Link);
    let ops = commit
        .ops
        .iter()
        .map(|op| {
            let mut m = BTreeMap::from([
                ("action".to_owned(), Value::from(op.action.as_str())),
                ("path".to_owned(), Value::from(op.path.as_str())),
                ("cid".to_owned(), link_or_null(op.cid)),
            ]);
            if let Some(prev) = op.prev {
                m.insert("prev".to_owned(), Value::Link(prev));
            }
            Value::Map(m)
        })
        .collect();
    let mut body = BTreeMap::from([
        ("repo".to_owned(), Value::from(did.as_str())),
        ("rev".to_owned(), Value::from(commit.rev.as_str())),
        (
            "since".to_owned(),
            commit
                .since
                .as_ref()
                .map_or(Value::Null, |s| Value::from(s.as_str())),
        ),
        ("commit".to_owned(), Value::Link(commit.cid)),
        ("ops".to_owned(), Value::Array(ops)),
        ("blocks".to_owned(), Value::Bytes(blocks)),
        ("blobs".to_owned(), Value::Array(Vec::new())),
        ("rebase".to_owned(), Value::Bool(false)),
        ("tooBig".to_owned(), Value::Bool(false)),
    ]);
    if let Some(prev_data) = commit.prev_data {
        body.insert("prevData".to_owned(), Value::Link(prev_data));
    }
    Ok(atp_data::cbor::to_vec(&Value::Map(body)))
}
