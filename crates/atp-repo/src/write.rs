//! The write path: turning record writes into a signed commit ([`CommitData`]), and storing it.
//!
//! [`format_commit`] is pure apart from reading blocks: it changes nothing in the store. The caller
//! (the PDS writer) persists the result with [`apply_commit`] or its own transaction, and maps it
//! into a `#commit` event.

use std::collections::BTreeSet;

use atp_crypto::Signer;
use atp_data::{Cid, Value};
use atp_syntax::{Did, Nsid, RecordKey, Tid};

use crate::blockstore::{BlockMap, BlockStore, StoreError};
use crate::commit::{CommitError, SignedCommit, UnsignedCommit, next_rev};
use crate::mst::{Mst, MstError, format_key};
use crate::proof::covering_proof_into;

/// One record write requested by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordWrite {
    /// Creates a record; fails if the path exists.
    Create {
        /// Collection NSID.
        collection: Nsid,
        /// Record key.
        rkey: RecordKey,
        /// The record (a map).
        record: Value,
    },
    /// Replaces a record; fails if the path does not exist.
    Update {
        /// Collection NSID.
        collection: Nsid,
        /// Record key.
        rkey: RecordKey,
        /// The new record (a map).
        record: Value,
    },
    /// Deletes a record; fails if the path does not exist.
    Delete {
        /// Collection NSID.
        collection: Nsid,
        /// Record key.
        rkey: RecordKey,
    },
}

impl RecordWrite {
    /// The repo path `collection/rkey`.
    pub fn path(&self) -> String {
        match self {
            RecordWrite::Create {
                collection, rkey, ..
            }
            | RecordWrite::Update {
                collection, rkey, ..
            }
            | RecordWrite::Delete { collection, rkey } => format_key(collection, rkey),
        }
    }
}

/// What an operation did to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteAction {
    /// The path was added.
    Create,
    /// The path's value changed.
    Update,
    /// The path was removed.
    Delete,
}

impl WriteAction {
    /// The firehose name: `create`, `update` or `delete`.
    pub fn as_str(&self) -> &'static str {
        match self {
            WriteAction::Create => "create",
            WriteAction::Update => "update",
            WriteAction::Delete => "delete",
        }
    }
}

/// One record operation of a commit, with the CIDs before and after (sync v1.1 `repoOp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOp {
    /// What happened.
    pub action: WriteAction,
    /// The repo path.
    pub path: String,
    /// The new record CID (`None` for deletes).
    pub cid: Option<Cid>,
    /// The previous record CID (`None` for creates).
    pub prev: Option<Cid>,
}

/// The current state of a repository: its latest commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoHead {
    /// CID of the commit block.
    pub cid: Cid,
    /// The commit.
    pub commit: SignedCommit,
}

impl RepoHead {
    /// Reads the commit block `cid` from the store.
    pub async fn load<S: BlockStore>(store: &S, cid: &Cid) -> Result<RepoHead, RepoError> {
        let bytes = store
            .get_block(cid)
            .await?
            .ok_or(RepoError::MissingCommit { cid: *cid })?;
        Ok(RepoHead {
            cid: *cid,
            commit: SignedCommit::from_cbor(&bytes)?,
        })
    }

    /// The repository's MST (not loaded yet).
    pub fn tree(&self) -> Mst {
        Mst::load(*self.commit.data())
    }
}

/// A formatted commit: everything needed to persist it and to announce it on the firehose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitData {
    /// CID of the new commit block.
    pub cid: Cid,
    /// The new commit.
    pub commit: SignedCommit,
    /// The new revision.
    pub rev: Tid,
    /// The previous revision (`None` for a new repository or a v2 predecessor).
    pub since: Option<Tid>,
    /// The previous commit's CID.
    pub prev: Option<Cid>,
    /// The new MST root.
    pub data: Cid,
    /// The previous MST root (sync v1.1 `prevData`).
    pub prev_data: Option<Cid>,
    /// The record operations, in write order.
    pub ops: Vec<RecordOp>,
    /// Blocks to store: new records, new MST nodes and the commit.
    pub new_blocks: BlockMap,
    /// Blocks no longer referenced by the changed paths: replaced MST nodes, replaced or deleted
    /// records, the previous commit. See [`crate::mst::MstDiff::removed_leaf_cids`] about identical
    /// records: a record block listed here may still be referenced by an unchanged key.
    pub removed_cids: BTreeSet<Cid>,
    /// The subset of `removed_cids` that are record blocks (the rest are MST nodes and the previous
    /// commit, which no other key can share). A store may delete these only after checking that no
    /// remaining record has the same CID.
    pub removed_record_cids: BTreeSet<Cid>,
    /// Blocks a sync v1.1 consumer needs to check and invert the ops: the commit, the new records,
    /// and the covering proof of every touched path in the new tree.
    pub relevant_blocks: BlockMap,
}

/// Why a write or commit failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// A create named a path that exists.
    #[error("record already exists: {path}")]
    RecordExists {
        /// The path.
        path: String,
    },
    /// An update or delete named a path that does not exist.
    #[error("record not found: {path}")]
    RecordNotFound {
        /// The path.
        path: String,
    },
    /// Two writes of one commit name the same path.
    #[error("path written twice in one commit: {path}")]
    DuplicatePath {
        /// The path.
        path: String,
    },
    /// A record is not a map.
    #[error("record at {path} is not a map")]
    RecordNotMap {
        /// The path.
        path: String,
    },
    /// The current commit belongs to another DID.
    #[error("repository belongs to {found}, not {expected}")]
    WrongDid {
        /// The DID asked for.
        expected: Did,
        /// The DID in the current commit.
        found: Did,
    },
    /// The previous revision is the largest possible TID.
    #[error("no revision after {last}")]
    RevExhausted {
        /// The previous revision.
        last: Tid,
    },
    /// The commit block named as head is not in the store.
    #[error("commit block {cid} not found")]
    MissingCommit {
        /// Its CID.
        cid: Cid,
    },
    /// A tree operation failed.
    #[error(transparent)]
    Mst(#[from] MstError),
    /// Building, signing or reading a commit failed.
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// The block store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A record's block: its DAG-CBOR bytes and CID. Records must be maps.
fn record_block(path: &str, record: &Value) -> Result<(Cid, Vec<u8>), RepoError> {
    if record.as_map().is_none() {
        return Err(RepoError::RecordNotMap {
            path: path.to_owned(),
        });
    }
    let bytes = atp_data::cbor::to_vec(record);
    Ok((atp_data::cid::cid_for_cbor(&bytes), bytes))
}

/// Applies `writes` to the tree, returning the new tree, the ops and the record blocks.
async fn apply_writes<S: BlockStore>(
    store: &S,
    mut tree: Mst,
    writes: &[RecordWrite],
) -> Result<(Mst, Vec<RecordOp>, BlockMap), RepoError> {
    let mut ops = Vec::with_capacity(writes.len());
    let mut records = BlockMap::new();
    let mut seen = BTreeSet::new();
    for write in writes {
        let path = write.path();
        if !seen.insert(path.clone()) {
            return Err(RepoError::DuplicatePath { path });
        }
        let (next, op) = match write {
            RecordWrite::Create { record, .. } | RecordWrite::Update { record, .. } => {
                let (cid, bytes) = record_block(&path, record)?;
                let (next, prev) = tree.insert(store, &path, cid).await?;
                let action = match (write, prev) {
                    (RecordWrite::Create { .. }, Some(_)) => {
                        return Err(RepoError::RecordExists { path });
                    }
                    (RecordWrite::Update { .. }, None) => {
                        return Err(RepoError::RecordNotFound { path });
                    }
                    (RecordWrite::Create { .. }, _) => WriteAction::Create,
                    _ => WriteAction::Update,
                };
                records.insert(cid, bytes);
                if prev == Some(cid) {
                    // Rewriting identical content changes nothing and is not an op.
                    continue;
                }
                (
                    next,
                    RecordOp {
                        action,
                        path,
                        cid: Some(cid),
                        prev,
                    },
                )
            }
            RecordWrite::Delete { .. } => {
                let (next, prev) = tree.delete(store, &path).await?;
                if prev.is_none() {
                    return Err(RepoError::RecordNotFound { path });
                }
                let op = RecordOp {
                    action: WriteAction::Delete,
                    path,
                    cid: None,
                    prev,
                };
                (next, op)
            }
        };
        tree = next;
        ops.push(op);
    }
    Ok((tree, ops, records))
}

/// Signs a v3 commit, returning it with its CID and block bytes.
fn sign_commit<K: Signer + ?Sized>(
    did: &Did,
    data: Cid,
    rev: &Tid,
    signer: &K,
) -> Result<(SignedCommit, Cid, Vec<u8>), RepoError> {
    let commit = UnsignedCommit::v3(did.clone(), data, rev.clone()).sign(signer)?;
    let bytes = commit.to_cbor();
    Ok((commit, atp_data::cid::cid_for_cbor(&bytes), bytes))
}

/// Formats the commit applying `writes` to the repository at `current` (`None`: a new, empty
/// repository). `clock` is the caller's TID clock reading; the new rev is the clock or one past
/// the current rev, whichever is greater. Reads blocks from `store`, writes nothing.
pub async fn format_commit<S: BlockStore, K: Signer + ?Sized>(
    store: &S,
    current: Option<&RepoHead>,
    did: &Did,
    writes: &[RecordWrite],
    signer: &K,
    clock: &Tid,
) -> Result<CommitData, RepoError> {
    let tree = current.map(RepoHead::tree).unwrap_or_default();
    Ok(
        format_commit_on(store, current, tree, did, writes, signer, clock)
            .await?
            .0,
    )
}

/// Like [`format_commit`], starting from `tree`, an [`Mst`] handle on the current head's data
/// (typically the tree this function returned for the previous commit, whose nodes are already
/// loaded: the commit then reads few or no blocks). Returns the new tree as well. A `tree` whose
/// root is not the head's data is ignored (the head's tree is loaded from `store` instead), so a
/// stale tree costs reads, never a wrong commit.
pub async fn format_commit_on<S: BlockStore, K: Signer + ?Sized>(
    store: &S,
    current: Option<&RepoHead>,
    tree: Mst,
    did: &Did,
    writes: &[RecordWrite],
    signer: &K,
    clock: &Tid,
) -> Result<(CommitData, Mst), RepoError> {
    if let Some(head) = current
        && head.commit.did() != did
    {
        return Err(RepoError::WrongDid {
            expected: did.clone(),
            found: head.commit.did().clone(),
        });
    }
    let expected = current.map_or_else(|| Mst::empty().root_cid(), |h| *h.commit.data());
    let old_tree = if tree.root_cid() == expected {
        tree
    } else {
        current.map(RepoHead::tree).unwrap_or_default()
    };
    let (new_tree, ops, records) = apply_writes(store, old_tree.clone(), writes).await?;
    let diff = Mst::diff(store, &old_tree, &new_tree).await?;

    let mut relevant_blocks = BlockMap::new();
    for write in writes {
        covering_proof_into(
            &new_tree,
            store,
            &write.path(),
            &diff.new_nodes,
            &mut relevant_blocks,
        )
        .await?;
    }
    let mut new_blocks = diff.new_nodes;
    for (cid, bytes) in records {
        if ops.iter().any(|op| op.cid == Some(cid)) {
            relevant_blocks.insert(cid, bytes.clone());
            new_blocks.insert(cid, bytes);
        }
    }

    let last_rev = current.and_then(|h| h.commit.rev());
    let rev = next_rev(last_rev, clock).ok_or_else(|| RepoError::RevExhausted {
        last: last_rev.cloned().unwrap_or_else(|| clock.clone()),
    })?;
    let (commit, cid, commit_bytes) = sign_commit(did, new_tree.root_cid(), &rev, signer)?;
    new_blocks.insert(cid, commit_bytes.clone());
    relevant_blocks.insert(cid, commit_bytes);

    let mut removed_record_cids = diff.removed_leaf_cids;
    removed_record_cids.retain(|c| !new_blocks.contains_key(c));
    let mut removed_cids: BTreeSet<Cid> = diff.removed_nodes;
    removed_cids.extend(removed_record_cids.iter().copied());
    if let Some(head) = current {
        removed_cids.insert(head.cid);
    }
    removed_cids.retain(|c| !new_blocks.contains_key(c));
    let data = new_tree.root_cid();
    let commit = CommitData {
        cid,
        rev,
        since: last_rev.cloned(),
        prev: current.map(|h| h.cid),
        data,
        prev_data: current.map(|h| *h.commit.data()),
        ops,
        new_blocks,
        removed_cids,
        removed_record_cids,
        relevant_blocks,
        commit,
    };
    Ok((commit, new_tree))
}

/// Formats the first commit of a new repository holding `records` (built in one pass, so this
/// is fast for large imports). Every record becomes a create op; all blocks are new and relevant.
pub fn format_genesis<K: Signer + ?Sized>(
    did: &Did,
    records: Vec<(Nsid, RecordKey, Value)>,
    signer: &K,
    clock: &Tid,
) -> Result<CommitData, RepoError> {
    let mut new_blocks = BlockMap::new();
    let mut entries = Vec::with_capacity(records.len());
    let mut ops = Vec::with_capacity(records.len());
    for (collection, rkey, record) in &records {
        let path = format_key(collection, rkey);
        let (cid, bytes) = record_block(&path, record)?;
        new_blocks.insert(cid, bytes);
        entries.push((path.clone(), cid));
        ops.push(RecordOp {
            action: WriteAction::Create,
            path,
            cid: Some(cid),
            prev: None,
        });
    }
    let tree = Mst::from_entries(entries).map_err(|e| match e {
        MstError::DuplicateKey { key } => RepoError::DuplicatePath { path: key },
        other => RepoError::Mst(other),
    })?;
    for item in tree.walk_loaded() {
        if let crate::mst::WalkItem::Node { cid, bytes } = item? {
            new_blocks.insert(cid, bytes);
        }
    }
    let (commit, cid, commit_bytes) = sign_commit(did, tree.root_cid(), clock, signer)?;
    new_blocks.insert(cid, commit_bytes);
    Ok(CommitData {
        cid,
        rev: clock.clone(),
        since: None,
        prev: None,
        data: tree.root_cid(),
        prev_data: None,
        ops,
        relevant_blocks: new_blocks.clone(),
        new_blocks,
        removed_cids: BTreeSet::new(),
        removed_record_cids: BTreeSet::new(),
        commit,
    })
}

/// Stores a formatted commit: puts its new blocks tagged with its rev, deletes the removed MST
/// nodes and previous commit, and returns the new head. (Keeping track of the head is the caller's job.)
///
/// Removed *record* blocks are kept: a generic [`BlockStore`] has no records index to tell whether
/// another key still holds an identical record, and deleting a shared block would corrupt the repo.
/// Stores with such an index (the PDS's SQLite store) delete them themselves.
pub async fn apply_commit<S: BlockStore>(
    store: &S,
    commit: &CommitData,
) -> Result<RepoHead, RepoError> {
    store.put_blocks(&commit.new_blocks, &commit.rev).await?;
    let removed: Vec<Cid> = commit
        .removed_cids
        .difference(&commit.removed_record_cids)
        .copied()
        .collect();
    store.delete_blocks(&removed).await?;
    Ok(RepoHead {
        cid: commit.cid,
        commit: commit.commit.clone(),
    })
}

/// Creates a repository: formats the genesis commit ([`format_genesis`]) and stores it.
pub async fn create_repo<S: BlockStore, K: Signer + ?Sized>(
    store: &S,
    did: &Did,
    records: Vec<(Nsid, RecordKey, Value)>,
    signer: &K,
    clock: &Tid,
) -> Result<(RepoHead, CommitData), RepoError> {
    let commit = format_genesis(did, records, signer, clock)?;
    let head = apply_commit(store, &commit).await?;
    Ok((head, commit))
}
