//! Audit-log validation: replaying a DID's log (nullified entries included) to check every
//! signature, the `prev` chain, the recovery rules and the `nullified` flags, and the same state
//! machine applied to one proposed operation for a directory.

use std::collections::HashMap;

use atp_data::Cid;
use atp_syntax::Did;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::PlcState;
use super::operation::{OpError, SignatureError, SignedOp};
use super::policy::{self, PolicyError};

/// How long after an operation a higher-priority rotation key may still nullify it.
pub const RECOVERY_WINDOW: TimeDelta = TimeDelta::hours(72);

/// One entry of `/<did>/log/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// The DID the operation belongs to.
    pub did: Did,
    /// The signed operation.
    pub operation: SignedOp,
    /// The operation's CID, as the directory computed it.
    #[serde(serialize_with = "cid_to_string", deserialize_with = "cid_from_string")]
    pub cid: Cid,
    /// Whether a later recovery operation displaced this one.
    pub nullified: bool,
    /// When the directory accepted the operation.
    #[serde(
        serialize_with = "time_to_string",
        deserialize_with = "time_from_string"
    )]
    pub created_at: DateTime<Utc>,
}

fn cid_to_string<S: Serializer>(cid: &Cid, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(cid)
}

fn cid_from_string<'de, D: Deserializer<'de>>(d: D) -> Result<Cid, D::Error> {
    let s = String::deserialize(d)?;
    atp_data::cid::parse(&s).map_err(serde::de::Error::custom)
}

fn time_to_string<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn time_from_string<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}

/// Why an audit log, or one operation in it, is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditFailure {
    /// The log has no entries.
    #[error("the log is empty")]
    EmptyLog,
    /// The entry belongs to another DID.
    #[error("entry is for {found}, not {expected}")]
    DidMismatch {
        /// The DID being audited.
        expected: Did,
        /// The entry's DID.
        found: Did,
    },
    /// The entry's `cid` is not the CID of its operation.
    #[error("entry cid is not the operation's CID {computed}")]
    CidMismatch {
        /// What the operation hashes to.
        computed: Cid,
    },
    /// The same operation appears twice.
    #[error("operation {cid} appears twice")]
    DuplicateOperation {
        /// Its CID.
        cid: Cid,
    },
    /// The first operation is not a genesis operation.
    #[error("the first operation must be a genesis operation (prev: null)")]
    MissingGenesis,
    /// A genesis operation after the first entry.
    #[error("unexpected genesis operation after the first entry")]
    UnexpectedGenesis,
    /// The genesis operation hashes to another DID.
    #[error("the genesis operation derives {derived}, not the DID being audited")]
    GenesisDidMismatch {
        /// The DID the genesis operation derives.
        derived: Did,
    },
    /// The operation is malformed for its position (e.g. `prev` is not a CID).
    #[error("improper operation: {0}")]
    Improper(#[from] OpError),
    /// `prev` names no earlier operation of this DID.
    #[error("prev {prev} is not an earlier operation of this DID")]
    BrokenPrev {
        /// The `prev` CID.
        prev: Cid,
    },
    /// `prev` names an operation that was nullified.
    #[error("prev {prev} was nullified")]
    PrevNullified {
        /// The `prev` CID.
        prev: Cid,
    },
    /// `prev` names a tombstone: the DID is deactivated.
    #[error("the DID was tombstoned by {prev}")]
    Tombstoned {
        /// The tombstone's CID.
        prev: Cid,
    },
    /// `sig` is not a canonical base64url encoding of 64 bytes.
    #[error("bad signature encoding: {0}")]
    BadSignatureEncoding(SignatureError),
    /// The signature is not valid: high-S, no allowed key verifies it, or a key is unusable.
    #[error("bad signature: {0}")]
    BadSignature(SignatureError),
    /// A fork is signed by a rotation key of the `prev` operation, but not one of strictly higher
    /// priority than the key that signed the operation it would displace.
    #[error(
        "recovery must be signed by a higher-priority rotation key than the displaced operation"
    )]
    InsufficientKeyPriority,
    /// A fork more than 72 hours after the first operation it would displace.
    #[error("recovery came {elapsed} after the displaced operation (limit 72h)")]
    LateRecovery {
        /// Time between the displaced operation and the fork.
        elapsed: TimeDelta,
    },
    /// `createdAt` does not increase strictly.
    #[error("createdAt {created_at} is not after {previous}")]
    TimestampOrder {
        /// The operation's time.
        created_at: DateTime<Utc>,
        /// The time it must follow.
        previous: DateTime<Utc>,
    },
    /// The entry's `nullified` flag disagrees with the replay.
    #[error("entry says nullified={claimed}, replay says {computed}")]
    NullifiedMismatch {
        /// The entry's flag.
        claimed: bool,
        /// What replaying the log gives.
        computed: bool,
    },
}

impl From<SignatureError> for AuditFailure {
    fn from(e: SignatureError) -> AuditFailure {
        match e {
            SignatureError::Base64 | SignatureError::Length { .. } => {
                AuditFailure::BadSignatureEncoding(e)
            }
            other => AuditFailure::BadSignature(other),
        }
    }
}

/// An audit failure at one entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit log entry {index}: {failure}")]
pub struct AuditError {
    /// Index of the failing entry (0 for an empty log).
    pub index: usize,
    /// What is wrong with it.
    pub failure: AuditFailure,
}

/// The result of a successful audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedLog {
    /// The state after the last non-nullified operation.
    pub state: PlcState,
    /// CID of that operation: the `prev` of the next update.
    pub head: Cid,
}

/// Why a directory refuses a proposed operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NewOpError {
    /// The operation breaks a limit for new operations ([`policy`]).
    #[error("operation refused by policy: {0}")]
    Policy(#[from] PolicyError),
    /// The stored log does not audit (it should have; this is a storage problem).
    #[error("stored log is invalid: {0}")]
    InvalidLog(AuditError),
    /// The operation does not follow the log: bad signature, wrong `prev`, late recovery, ...
    #[error("operation refused: {0}")]
    Rejected(AuditFailure),
}

/// What a directory must store for an accepted operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedOp {
    /// The operation's CID.
    pub cid: Cid,
    /// Its `prev`; `None` for a genesis operation.
    pub prev: Option<Cid>,
    /// CIDs of the operations it nullifies, oldest first.
    pub nullified: Vec<Cid>,
    /// The DID's state once it is applied.
    pub state: PlcState,
}

/// What the replay knows about one accepted operation.
#[derive(Debug)]
struct Node {
    created_at: DateTime<Utc>,
    /// The operation's rotation keys.
    rotation_keys: Vec<String>,
    /// The prefix of `rotation_keys` still allowed to sign a child.
    allowed_keys: Vec<String>,
    /// The most recent accepted child.
    last_child: Option<usize>,
    nullified: bool,
    tombstone: bool,
}

/// The replay state of one DID's log.
#[derive(Debug, Default)]
struct Chain {
    nodes: Vec<Node>,
    by_cid: HashMap<Cid, usize>,
    head: Option<usize>,
}

/// The effect of one applied operation.
struct Applied {
    prev: Option<Cid>,
    nullified: Vec<usize>,
}

impl Chain {
    /// Replays a stored log (entries in order), checking everything [`validate_audit_log`] does.
    fn replay(did: &Did, entries: &[LogEntry]) -> Result<Chain, AuditError> {
        let mut chain = Chain::default();
        for (index, entry) in entries.iter().enumerate() {
            let at = |failure| AuditError { index, failure };
            if &entry.did != did {
                return Err(at(AuditFailure::DidMismatch {
                    expected: did.clone(),
                    found: entry.did.clone(),
                }));
            }
            let computed = entry.operation.cid();
            if computed != entry.cid {
                return Err(at(AuditFailure::CidMismatch { computed }));
            }
            chain
                .apply(did, &entry.operation, computed, entry.created_at)
                .map_err(at)?;
        }
        for (index, (entry, node)) in entries.iter().zip(&chain.nodes).enumerate() {
            if entry.nullified != node.nullified {
                return Err(AuditError {
                    index,
                    failure: AuditFailure::NullifiedMismatch {
                        claimed: entry.nullified,
                        computed: node.nullified,
                    },
                });
            }
        }
        Ok(chain)
    }

    /// Applies one operation accepted at `created_at`, or says why it cannot follow the chain.
    fn apply(
        &mut self,
        did: &Did,
        op: &SignedOp,
        cid: Cid,
        created_at: DateTime<Utc>,
    ) -> Result<Applied, AuditFailure> {
        if self.by_cid.contains_key(&cid) {
            return Err(AuditFailure::DuplicateOperation { cid });
        }
        let applied = match op.op.prev_cid()? {
            None => self.check_genesis(did, op)?,
            Some(prev) => self.check_update(op, prev, created_at)?,
        };
        for &i in &applied.nullified {
            if let Some(node) = self.nodes.get_mut(i) {
                node.nullified = true;
            }
        }
        let index = self.nodes.len();
        let rotation_keys = op.op.rotation_keys();
        self.nodes.push(Node {
            created_at,
            allowed_keys: rotation_keys.clone(),
            rotation_keys,
            last_child: None,
            nullified: false,
            tombstone: op.op.is_tombstone(),
        });
        self.by_cid.insert(cid, index);
        self.head = Some(index);
        Ok(applied)
    }

    fn check_genesis(&self, did: &Did, op: &SignedOp) -> Result<Applied, AuditFailure> {
        if self.head.is_some() {
            return Err(AuditFailure::UnexpectedGenesis);
        }
        let derived = op.did()?;
        if &derived != did {
            return Err(AuditFailure::GenesisDidMismatch { derived });
        }
        op.verify(&op.op.rotation_keys())?;
        Ok(Applied {
            prev: None,
            nullified: Vec::new(),
        })
    }

    /// Checks an operation with a `prev`, and records it as the newest child of `prev`.
    fn check_update(
        &mut self,
        op: &SignedOp,
        prev: Cid,
        created_at: DateTime<Utc>,
    ) -> Result<Applied, AuditFailure> {
        let head = self.head.ok_or(AuditFailure::MissingGenesis)?;
        let p = *self
            .by_cid
            .get(&prev)
            .ok_or(AuditFailure::BrokenPrev { prev })?;
        let parent = self.node(p)?;
        if parent.nullified {
            return Err(AuditFailure::PrevNullified { prev });
        }
        if parent.tombstone {
            return Err(AuditFailure::Tombstoned { prev });
        }
        let key_index = match op.verify(&parent.allowed_keys) {
            Ok(i) => i,
            Err(SignatureError::NoMatchingKey | SignatureError::NoKeys)
                if parent.last_child.is_some() && op.verify(&parent.rotation_keys).is_ok() =>
            {
                return Err(AuditFailure::InsufficientKeyPriority);
            }
            Err(e) => return Err(e.into()),
        };
        let nullified = match parent.last_child {
            None => {
                ensure_after(created_at, parent.created_at)?;
                Vec::new()
            }
            Some(first) => {
                ensure_after(created_at, self.node(head)?.created_at)?;
                let elapsed = created_at - self.node(first)?.created_at;
                if elapsed > RECOVERY_WINDOW {
                    return Err(AuditFailure::LateRecovery { elapsed });
                }
                self.descendants(first)
            }
        };
        let child = self.nodes.len();
        if let Some(parent) = self.nodes.get_mut(p) {
            parent.allowed_keys.truncate(key_index);
            parent.last_child = Some(child);
        }
        Ok(Applied {
            prev: Some(prev),
            nullified,
        })
    }

    fn node(&self, i: usize) -> Result<&Node, AuditFailure> {
        // Indices come from `by_cid` and `last_child`, which only ever hold pushed nodes.
        self.nodes.get(i).ok_or(AuditFailure::EmptyLog)
    }

    /// `first` and the chain of last children after it: the operations a fork displaces.
    fn descendants(&self, first: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut next = Some(first);
        while let Some(i) = next {
            out.push(i);
            next = self.nodes.get(i).and_then(|n| n.last_child);
        }
        out
    }
}

fn ensure_after(created_at: DateTime<Utc>, previous: DateTime<Utc>) -> Result<(), AuditFailure> {
    if created_at > previous {
        Ok(())
    } else {
        Err(AuditFailure::TimestampOrder {
            created_at,
            previous,
        })
    }
}

/// Validates a full audit log (`/<did>/log/audit`: every operation, nullified ones included, in
/// the directory's order) and returns the DID's current state.
///
/// Checks, per entry: the DID, that `cid` is the operation's CID, the genesis DID derivation, the
/// `prev` chain, the signature (strict base64url, low-S) against the rotation keys of `prev` (the
/// genesis against its own), the recovery rules, tombstones, `createdAt` order, and finally that
/// every `nullified` flag matches the replay. Historical anomalies the reference accepts
/// (duplicate or empty rotation keys) pass; see [`policy`] for what new operations must meet.
pub fn validate_audit_log(did: &Did, entries: &[LogEntry]) -> Result<AuditedLog, AuditError> {
    let chain = Chain::replay(did, entries)?;
    let head = chain.head.and_then(|i| entries.get(i)).ok_or(AuditError {
        index: 0,
        failure: AuditFailure::EmptyLog,
    })?;
    Ok(AuditedLog {
        state: PlcState::after(did, &head.operation.op),
        head: head.cid,
    })
}

/// Decides whether a directory accepts `proposed` for `did`, given the stored log (in order,
/// nullified entries included) and the time of acceptance `now` (which becomes its `createdAt`).
///
/// The operation must first pass [`policy::check_new_op`]; then it must follow the log exactly as
/// [`validate_audit_log`] would require if it were appended. An empty log expects a genesis
/// operation deriving `did`.
pub fn validate_new_op(
    did: &Did,
    current_log: &[LogEntry],
    proposed: &SignedOp,
    now: DateTime<Utc>,
) -> Result<AcceptedOp, NewOpError> {
    policy::check_new_op(proposed)?;
    let mut chain = Chain::replay(did, current_log).map_err(NewOpError::InvalidLog)?;
    let cid = proposed.cid();
    let applied = chain
        .apply(did, proposed, cid, now)
        .map_err(NewOpError::Rejected)?;
    let nullified = applied
        .nullified
        .iter()
        .filter_map(|&i| current_log.get(i).map(|e| e.cid))
        .collect();
    Ok(AcceptedOp {
        cid,
        prev: applied.prev,
        nullified,
        state: PlcState::after(did, &proposed.op),
    })
}

#[cfg(test)]
mod tests;
