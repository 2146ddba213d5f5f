//! Account status: deactivation, reactivation and the migration checklist
//! (`checkAccountStatus`), and the PLC reads they share with handle updates.
//!
//! Each status change and the events that announce it are written in one transaction.

use atp_data::Value;
use atp_identity::plc::{PlcData, SignedOp};
use atp_syntax::Did;
use chrono::{DateTime, Utc};
use pds_store::{EventKind, StoreError};

use crate::service::account::{AccountError, event};
use crate::state::{AppState, Plc};

/// `did`'s latest PLC operation and its CID.
pub async fn plc_last_op(
    state: &AppState,
    did: &Did,
) -> Result<(SignedOp, atp_data::Cid), AccountError> {
    match state.plc() {
        Plc::Embedded(dir) => {
            let entry = dir
                .last_op(did)
                .await
                .map_err(|e| AccountError::Internal(format!("reading the PLC log: {e}")))?
                .ok_or_else(|| AccountError::Internal(format!("no PLC log for {did}")))?;
            Ok((entry.operation, entry.cid))
        }
        Plc::Remote(client) => {
            let op = client
                .last_operation(did)
                .await
                .map_err(|e| AccountError::Internal(format!("reading the PLC log: {e}")))?;
            let cid = op.cid();
            Ok((op, cid))
        }
    }
}

/// Deactivates `did` (deletable after `delete_after`) and announces it with `#account`.
pub async fn deactivate(
    state: &AppState,
    did: &Did,
    delete_after: Option<DateTime<Utc>>,
) -> Result<(), AccountError> {
    let ev = event(
        EventKind::Account,
        vec![
            ("did", Value::from(did.as_str())),
            ("active", Value::Bool(false)),
            ("status", Value::from("deactivated")),
        ],
    );
    state
        .store()
        .deactivate_account(did, Utc::now(), delete_after, vec![ev])
        .await?;
    Ok(())
}

/// Reactivates `did` and announces it with `#identity`, `#account` and `#sync` (as the
/// reference). The repository lock is held from reading the head for `#sync` to the write, so
/// `#sync` carries the head the account is reactivated with.
pub async fn activate(state: &AppState, did: &Did) -> Result<(), AccountError> {
    let store = state.store();
    let _guard = store.lock_repo(did).await;
    let account = store
        .get_account(did)
        .await?
        .ok_or_else(|| StoreError::AccountNotFound { did: did.clone() })?;
    let identity = event(
        EventKind::Identity,
        vec![
            ("did", Value::from(did.as_str())),
            ("handle", Value::from(account.handle.as_str())),
        ],
    );
    let active = event(
        EventKind::Account,
        vec![
            ("did", Value::from(did.as_str())),
            ("active", Value::Bool(true)),
        ],
    );
    let sync = sync_event(state, did).await?;
    store
        .activate_account(did, vec![identity, active, sync], Utc::now())
        .await?;
    Ok(())
}

/// A `#sync` event carrying the current commit block (a CAR rooted at it) and its revision.
async fn sync_event(state: &AppState, did: &Did) -> Result<pds_store::NewEvent, AccountError> {
    use atp_repo::BlockStore;
    let internal = |e: String| AccountError::Internal(format!("#sync for {did}: {e}"));
    let root = state
        .store()
        .repo_root(did)
        .await?
        .ok_or_else(|| internal("no repository".into()))?;
    let bytes = state
        .store()
        .block_store(did)
        .get_block(&root.commit)
        .await
        .map_err(|e| internal(e.to_string()))?
        .ok_or_else(|| internal("commit block missing".into()))?;
    let mut car = atp_data::car::CarWriter::new(Vec::new(), &[root.commit])
        .map_err(|e| internal(e.to_string()))?;
    car.write_block(&root.commit, &bytes)
        .map_err(|e| internal(e.to_string()))?;
    let blocks = car.finish().map_err(|e| internal(e.to_string()))?;
    Ok(event(
        EventKind::Sync,
        vec![
            ("did", Value::from(did.as_str())),
            ("blocks", Value::Bytes(blocks)),
            ("rev", Value::from(root.rev.as_str())),
        ],
    ))
}

/// What `checkAccountStatus` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountStatus {
    /// Not deactivated.
    pub activated: bool,
    /// The DID document names this server and the account's signing key.
    pub valid_did: bool,
    /// Current commit CID.
    pub repo_commit: String,
    /// Current revision.
    pub repo_rev: String,
    /// Stored blocks.
    pub repo_blocks: u64,
    /// Indexed records.
    pub indexed_records: u64,
    /// Stored preferences.
    pub private_state_values: u64,
    /// Blobs that records reference.
    pub expected_blobs: u64,
    /// Of those, the ones stored here.
    pub imported_blobs: u64,
}

/// Preference namespaces counted as private state.
const PREF_NAMESPACES: [&str; 2] = ["app", "chat"];

/// The migration checklist of `did`.
pub async fn check(state: &AppState, did: &Did) -> Result<AccountStatus, AccountError> {
    let store = state.store();
    let account = store
        .get_account(did)
        .await?
        .ok_or_else(|| StoreError::AccountNotFound { did: did.clone() })?;
    let root = store
        .repo_root(did)
        .await?
        .ok_or_else(|| AccountError::InvalidRequest(format!("No repo root for {did}")))?;
    let repo_blocks = store.block_store(did).count().await?;
    let indexed_records = store.count_records(did).await?;
    let mut private_state_values = 0u64;
    for ns in PREF_NAMESPACES {
        private_state_values += store.get_preferences(did, ns).await?.len() as u64;
    }
    let blobs = store.blob_counts(did).await?;
    Ok(AccountStatus {
        activated: account.deactivated_at.is_none(),
        valid_did: valid_did(state, did).await,
        repo_commit: root.commit.to_string(),
        repo_rev: root.rev.to_string(),
        repo_blocks,
        indexed_records,
        private_state_values,
        expected_blobs: blobs.expected,
        imported_blobs: blobs.imported,
    })
}

/// Whether `did`'s PLC data names this server as its PDS and our signing key as its key.
async fn valid_did(state: &AppState, did: &Did) -> bool {
    if did.method() != "plc" {
        return false;
    }
    let Ok((op, _)) = plc_last_op(state, did).await else {
        return false;
    };
    let Some(data) = PlcData::from_op(did, &op.op) else {
        return false;
    };
    let Ok(key) = state.writer().keys().load(did) else {
        return false;
    };
    data.pds_endpoint() == Some(state.config().public_url().as_str())
        && data.atproto_key() == Some(key.public_key().did_key().as_str())
}
