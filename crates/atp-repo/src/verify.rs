//! Full verification of a stored repository, and of a CAR file (the relay / migration check).
//!
//! [`verify_repo`] checks, from a [`BlockStore`] holding the blocks: the commit is present and
//! well-formed, its signature (if a key is given; strict: 64-byte `r ‖ s`, low-S), every MST node
//! (present, hash, canonical encoding, key order within and across nodes, heights consistent with
//! the key layers, no empty intermediate node: together, the tree re-encodes to the same CIDs),
//! and every record (present, DAG-CBOR CID, strict DAG-CBOR map). Memory grows with the tree's
//! depth and the number of collections, not with the number of records (see [`crate::traverse`]).
//!
//! [`verify_car`] stages a CAR into a [`MemoryBlockStore`] ([`crate::import::stage_car`] checks
//! every block's hash on the way) and runs [`verify_repo`] on its single root.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io::Read;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use atp_crypto::PublicKey;
use atp_data::Cid;
use atp_data::car::CarError;
use atp_syntax::{Did, Tid};

use crate::blockstore::{BlockStore, MemoryBlockStore, StoreError};
use crate::commit::{CommitError, SignedCommit};
use crate::import::stage_car;
use crate::traverse::{Traversal, Visit};

/// What kind of block was expected where one is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    /// The commit block (the CAR root).
    Commit,
    /// An MST node.
    MstNode,
    /// The record at a repo path.
    Record {
        /// The repo path `collection/rkey`.
        key: Arc<str>,
    },
}

impl fmt::Display for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockKind::Commit => f.write_str("commit"),
            BlockKind::MstNode => f.write_str("MST node"),
            BlockKind::Record { key } => write!(f, "record {key}"),
        }
    }
}

/// Why a repository (or its CAR file) was refused. The messages start with the kind of failure
/// (`hash mismatch`, `missing block`, `bad signature`, `high-S signature`, `bad MST order`, ...).
///
/// Reasons are `Box<str>` to keep the error small (a CID alone is 96 bytes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Reading the input failed (not a verdict on its content).
    #[error("cannot read the CAR: {0}")]
    Io(#[source] std::io::Error),
    /// The CAR framing or header is invalid (truncated, bad varint, oversized block, ...).
    #[error("invalid CAR: {0}")]
    InvalidCar(#[source] CarError),
    /// A repository CAR must name exactly one root, the commit.
    #[error("invalid CAR: expected exactly one root (the commit), found {count}")]
    BadRoots {
        /// Number of roots in the header.
        count: usize,
    },
    /// A block's bytes do not hash to its CID.
    #[error("hash mismatch: block bytes do not match CID {cid}")]
    HashMismatch {
        /// The claimed CID.
        cid: Cid,
    },
    /// A block the repository links to is absent.
    #[error("missing block {cid} ({kind})")]
    MissingBlock {
        /// The missing block.
        cid: Cid,
        /// What it should have been.
        kind: BlockKind,
    },
    /// The commit block is not a well-formed commit.
    #[error("bad commit {cid}: {reason}")]
    BadCommit {
        /// The commit's CID.
        cid: Cid,
        /// What is wrong.
        reason: Box<str>,
    },
    /// The commit signature does not verify against the key.
    #[error("bad signature on commit {cid}: {reason}")]
    BadSignature {
        /// The commit's CID.
        cid: Cid,
        /// The verifier's reason.
        reason: atp_crypto::VerifyError,
    },
    /// The commit signature is high-S (it would verify, but atproto requires low-S).
    #[error("high-S signature on commit {cid}: atproto requires low-S signatures")]
    HighS {
        /// The commit's CID.
        cid: Cid,
    },
    /// An MST node is malformed or not canonical (encoding, prefix compression, heights, empty
    /// node, untrimmed root).
    #[error("bad MST node {cid}: {reason}")]
    BadMstNode {
        /// The node's CID.
        cid: Cid,
        /// What is wrong.
        reason: Box<str>,
    },
    /// Keys are not strictly ascending, within a node or across nodes.
    #[error("bad MST order in node {cid}: {reason}")]
    BadMstOrder {
        /// The node holding the out-of-order key.
        cid: Cid,
        /// Which keys.
        reason: Box<str>,
    },
    /// A record block is not a strict DAG-CBOR map (or its CID is not a DAG-CBOR CID).
    #[error("bad record {key}: {reason}")]
    BadRecord {
        /// The repo path (the CID is the tree's value for it).
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The block store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for VerifyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::HashMismatch { cid } => VerifyError::HashMismatch { cid },
            other => VerifyError::Store(other),
        }
    }
}

impl From<CarError> for VerifyError {
    fn from(e: CarError) -> Self {
        match e {
            CarError::Io(e) => VerifyError::Io(e),
            CarError::HashMismatch { cid } => VerifyError::HashMismatch { cid },
            other => VerifyError::InvalidCar(other),
        }
    }
}

/// Whether the commit signature was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureStatus {
    /// It verified against the given key.
    Valid,
    /// No key was given.
    NotChecked,
}

/// What a verified repository holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSummary {
    /// The account.
    pub did: Did,
    /// Commit format version (3, or 2 for legacy repositories).
    pub version: u8,
    /// The revision (`None` for version 2 commits).
    pub rev: Option<Tid>,
    /// The commit's CID.
    pub commit: Cid,
    /// The MST root CID.
    pub data: Cid,
    /// Whether the signature was checked.
    pub signature: SignatureStatus,
    /// Number of records (tree entries).
    pub records: u64,
    /// Records per collection (the part of the key before `/`), in name order.
    pub collections: BTreeMap<String, u64>,
    /// Number of MST nodes.
    pub mst_nodes: u64,
    /// Height of the root node.
    pub mst_height: u8,
}

/// Reads and parses the commit block `cid`.
pub async fn read_commit<S: BlockStore>(store: &S, cid: &Cid) -> Result<SignedCommit, VerifyError> {
    load_commit(store, cid).await.map(|(commit, _)| commit)
}

/// The commit block's parsed form and bytes.
pub(crate) async fn load_commit<S: BlockStore>(
    store: &S,
    cid: &Cid,
) -> Result<(SignedCommit, Vec<u8>), VerifyError> {
    let bytes = store
        .get_block(cid)
        .await?
        .ok_or(VerifyError::MissingBlock {
            cid: *cid,
            kind: BlockKind::Commit,
        })?;
    if !atp_data::cid::matches(cid, &bytes) {
        return Err(VerifyError::HashMismatch { cid: *cid });
    }
    let bad = |reason: String| VerifyError::BadCommit {
        cid: *cid,
        reason: reason.into(),
    };
    if cid.codec() != atp_data::cid::DAG_CBOR {
        return Err(bad("the commit CID is not a DAG-CBOR CID".to_owned()));
    }
    let commit = SignedCommit::from_cbor(&bytes).map_err(|e| bad(e.to_string()))?;
    Ok((commit, bytes))
}

/// Checks the commit signature against `key` (strict); no key → [`SignatureStatus::NotChecked`].
pub fn check_signature(
    commit: &SignedCommit,
    cid: &Cid,
    key: Option<&PublicKey>,
) -> Result<SignatureStatus, VerifyError> {
    let Some(key) = key else {
        return Ok(SignatureStatus::NotChecked);
    };
    match commit.verify(key) {
        Ok(()) => Ok(SignatureStatus::Valid),
        // A high-S signature is refused before any curve arithmetic; it is "high-S" only if its
        // low-S twin verifies, otherwise it is simply a bad signature.
        Err(CommitError::BadSignature(atp_crypto::VerifyError::HighS { .. })) => {
            match key.verify_lenient(&commit.commit.to_cbor(), &commit.sig) {
                Ok(()) => Err(VerifyError::HighS { cid: *cid }),
                Err(reason) => Err(VerifyError::BadSignature { cid: *cid, reason }),
            }
        }
        Err(CommitError::BadSignature(reason)) => {
            Err(VerifyError::BadSignature { cid: *cid, reason })
        }
        Err(other) => Err(VerifyError::BadCommit {
            cid: *cid,
            reason: other.to_string().into(),
        }),
    }
}

/// Verifies the repository whose commit block is `commit` in `store` (see the module docs).
pub async fn verify_repo<S: BlockStore>(
    store: &S,
    commit: &Cid,
    key: Option<&PublicKey>,
) -> Result<RepoSummary, VerifyError> {
    let signed = read_commit(store, commit).await?;
    let signature = check_signature(&signed, commit, key)?;
    let mut summary = RepoSummary {
        did: signed.did().clone(),
        version: signed.commit.version,
        rev: signed.rev().cloned(),
        commit: *commit,
        data: *signed.data(),
        signature,
        records: 0,
        collections: BTreeMap::new(),
        mst_nodes: 0,
        mst_height: 0,
    };
    let mut walk = Traversal::new(store, *signed.data());
    while let Some(visit) = walk.next().await? {
        match visit {
            Visit::Node { height, .. } => {
                if summary.mst_nodes == 0 {
                    summary.mst_height = height;
                }
                summary.mst_nodes += 1;
            }
            Visit::Record { key, cid, bytes } => {
                if let Some(bytes) = bytes {
                    check_record(&key, &cid, &bytes)?;
                }
                summary.records += 1;
                let collection = key.split_once('/').map_or(&*key, |(c, _)| c);
                match summary.collections.get_mut(collection) {
                    Some(count) => *count += 1,
                    None => {
                        summary.collections.insert(collection.to_owned(), 1);
                    }
                }
            }
        }
    }
    Ok(summary)
}

/// Checks a record block: DAG-CBOR CID, strict DAG-CBOR, a map.
pub(crate) fn check_record(key: &str, cid: &Cid, bytes: &[u8]) -> Result<(), VerifyError> {
    let bad = |reason: String| VerifyError::BadRecord {
        key: key.to_owned(),
        reason: format!("{reason} (record {cid})"),
    };
    if cid.codec() != atp_data::cid::DAG_CBOR {
        return Err(bad("the record CID is not a DAG-CBOR CID".to_owned()));
    }
    let value = atp_data::cbor::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if value.as_map().is_none() {
        return Err(bad("a record must be a map".to_owned()));
    }
    Ok(())
}

/// Verifies a whole repository CAR (the relay / migration check): exactly one root, every block's
/// hash, then [`verify_repo`] on the root. Blocks are staged in a [`MemoryBlockStore`] (so memory
/// holds the blocks); a server stages into its own store with [`stage_car`] and calls
/// [`verify_repo`].
pub fn verify_car<R: Read>(reader: R, key: Option<&PublicKey>) -> Result<RepoSummary, VerifyError> {
    let store = MemoryBlockStore::new();
    let staged = run_ready(stage_car(reader, &store, &Tid::from_u64(0)))??;
    let root = staged.root()?;
    run_ready(verify_repo(&store, &root, key))?
}

/// Runs a future that never waits (one over a [`MemoryBlockStore`]) to completion.
fn run_ready<F: Future>(future: F) -> Result<F::Output, VerifyError> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => Err(VerifyError::Store(StoreError::Backend {
            message: "the in-memory store unexpectedly waited".to_owned(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Callers wrap this error in their own; keep it under clippy's `result_large_err` limit.
    #[test]
    fn error_stays_small() {
        assert!(std::mem::size_of::<VerifyError>() < 128);
    }
}
