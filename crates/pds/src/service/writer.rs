//! The ONE repository write path: createRecord, putRecord, deleteRecord and applyWrites all go
//! through [`RepoWriter::apply`].
//!
//! Under the account's repository lock: read the head, check `swapCommit` / `swapRecord`, turn the
//! requests into `atp_repo::RecordWrite`s (TID record keys by default), format and sign the commit
//! (`atp_repo::format_commit`), then persist blocks, records, blob states, the root and the
//! `#commit` event in one transaction (`Store::commit_repo`), and finally move newly referenced
//! blob files to permanent storage.

use std::collections::BTreeMap;
use std::sync::Mutex;

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
        }
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
        let _guard = self.store.lock_repo(did).await;
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
        let key = self.keys.load(did).map_err(WriteError::Key)?;
        let tid = self.next_tid();
        let blocks = self.store.block_store(did);
        let commit =
            atp_repo::format_commit(&blocks, Some(&head), did, &writes, &key, &tid).await?;
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
            self.finish_promotion(did, &promoted.cid, promoted.temp_key.as_deref())
                .await;
        }
        for cid in outcome.unreferenced_blobs {
            if let Err(e) = self.blobs.delete(did, &cid).await {
                tracing::warn!(%did, %cid, error = %e, "deleting an unreferenced blob file failed");
            }
        }
        Ok(applied)
    }

    /// Moves a promoted blob's file and confirms it; a failure is logged and retried at start-up.
    async fn finish_promotion(&self, did: &Did, cid: &Cid, temp_key: Option<&str>) {
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
