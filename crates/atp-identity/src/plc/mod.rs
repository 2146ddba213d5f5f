//! `did:plc`, as pure code: operations, their signatures and CIDs, and audit-log validation.
//!
//! Spec: <https://web.plc.directory/spec/v0.1/did-plc>. Behaviour follows the reference
//! implementation (`did-method-plc`) and its Go port (`go-didplc`), whose interop vectors we run.
//!
//! # Terminology
//! - **Operation**: one signed change to a DID's state. Three shapes ([`UnsignedOp`]): a regular
//!   `plc_operation` (the whole new state: rotation keys, verification methods, `alsoKnownAs`,
//!   services, and `prev`), a `plc_tombstone` (deactivation, only `prev`), and the legacy `create`
//!   (genesis only, from before 2023).
//! - **Genesis**: the first operation (`prev: null`). The DID is derived from its hash
//!   ([`SignedOp::did`]).
//! - **`prev`**: the CID string of the operation this one follows. The CID is CIDv1 dag-cbor
//!   sha2-256 of the *signed* operation ([`SignedOp::cid`]).
//! - **Rotation keys**: the `did:key`s allowed to sign the *next* operation, in priority order
//!   (index 0 is the most powerful). A legacy create grants `[recoveryKey, signingKey]`, a
//!   tombstone grants none.
//! - **Audit log**: every operation the directory accepted for a DID, in order, each with its
//!   `createdAt` and a `nullified` flag ([`LogEntry`]).
//! - **Nullification / recovery**: within 72 hours, an operation may fork from an earlier `prev`,
//!   if it is signed by a rotation key of *strictly higher priority* than the one that signed the
//!   first operation it displaces. The displaced operations (that one and everything after it)
//!   become nullified.
//! - **[`PlcData`]**: the state after the last non-nullified operation, which renders to the DID
//!   document ([`crate::DidDocument::from_plc_data`]).
//!
//! # Tricky bits
//! - Signatures are checked over DAG-CBOR of the operation *without* the `sig` key (not with
//!   `sig: null`), and `prev: null` must be present on a genesis operation.
//! - `sig` must be canonical unpadded base64url (no `=`, no newline, zero trailing bits) and the
//!   signature low-S: otherwise one operation would have several valid encodings and so several
//!   CIDs. Both are enforced by [`SignedOp::verify`]; the interop vectors include each variant.
//! - Keys, handles and `prev` are kept as the exact strings that were signed.
//! - "Higher priority" is tracked per operation, the way go-didplc does it: each operation keeps
//!   the list of keys still allowed to sign a child of it. When a child is accepted, signed by the
//!   key at index `i`, that list is cut to `[..i]`, so a later fork from the same point needs a
//!   strictly lower index. Duplicate rotation keys thus behave like their first occurrence.
//! - The 72-hour window is measured from the `createdAt` of the first displaced operation to the
//!   `createdAt` of the fork; exactly 72 hours is still allowed.
//! - `createdAt` must increase strictly along the log (after the current head for a fork).
//! - A tombstone grants no keys, so nothing can follow it except a fork from *its* `prev` that
//!   nullifies it (a recovery of a deactivation, within the window).
//! - Historical logs are audited as the reference does (duplicate or empty rotation key lists are
//!   valid history). New operations submitted to a directory are held to stricter rules: see
//!   [`policy`].

mod audit;
mod operation;
pub mod policy;

use std::collections::BTreeMap;

use atp_syntax::Did;
use serde::{Deserialize, Serialize};

pub use audit::{
    AcceptedOp, AuditError, AuditFailure, AuditedLog, LogEntry, NewOpError, RECOVERY_WINDOW,
    validate_audit_log, validate_new_op,
};
pub use operation::{
    LegacyCreate, OpError, PlcOp, PlcService, SignatureError, SignedOp, TYPE_LEGACY_CREATE,
    TYPE_OPERATION, TYPE_TOMBSTONE, UnsignedOp, ensure_atproto_prefix, ensure_http_prefix,
};

use crate::did_doc::{ATPROTO_KEY_ID, ATPROTO_PDS_ID, ATPROTO_PDS_TYPE, DidDocument};

/// The current state of an active `did:plc`, as served at `/<did>/data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlcData {
    /// The DID.
    pub did: Did,
    /// Named signing keys, `did:key` strings.
    pub verification_methods: BTreeMap<String, String>,
    /// Keys controlling the DID, most powerful first.
    pub rotation_keys: Vec<String>,
    /// URIs naming the subject (`at://<handle>` for atproto).
    pub also_known_as: Vec<String>,
    /// Named services.
    pub services: BTreeMap<String, PlcService>,
}

impl PlcData {
    /// The state an operation sets (legacy creates normalised); `None` for a tombstone.
    pub fn from_op(did: &Did, op: &UnsignedOp) -> Option<PlcData> {
        let op = op.normalize()?;
        Some(PlcData {
            did: did.clone(),
            verification_methods: op.verification_methods,
            rotation_keys: op.rotation_keys,
            also_known_as: op.also_known_as,
            services: op.services,
        })
    }

    /// The `atproto` signing key (`did:key`), if declared.
    pub fn atproto_key(&self) -> Option<&str> {
        self.verification_methods
            .get(ATPROTO_KEY_ID)
            .map(String::as_str)
    }

    /// The `atproto_pds` endpoint, if declared with the PDS service type.
    pub fn pds_endpoint(&self) -> Option<&str> {
        self.services
            .get(ATPROTO_PDS_ID)
            .filter(|s| s.service_type == ATPROTO_PDS_TYPE)
            .map(|s| s.endpoint.as_str())
    }

    /// The DID document a directory serves for this state.
    pub fn to_did_document(&self) -> DidDocument {
        DidDocument::from_plc_data(self)
    }
}

/// Where a DID's log ends: an active state, or deactivated by a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlcState {
    /// The DID is active with this data.
    Active(PlcData),
    /// The last valid operation is a tombstone.
    Tombstoned,
}

impl PlcState {
    /// The state after `op` (legacy creates normalised).
    pub fn after(did: &Did, op: &UnsignedOp) -> PlcState {
        PlcData::from_op(did, op).map_or(PlcState::Tombstoned, PlcState::Active)
    }

    /// The data, if active.
    pub fn data(&self) -> Option<&PlcData> {
        match self {
            PlcState::Active(data) => Some(data),
            PlcState::Tombstoned => None,
        }
    }
}
