//! Account status: deactivation, reactivation and the migration checklist
//! (`checkAccountStatus`), and the PLC reads they share with handle updates.
//!
//! Each status change and the events that announce it are written in one transaction.

use atp_data::Value;
use atp_identity::plc::{PlcData, SignedOp};
use atp_syntax::Did;
use chrono::{DateTime, Utc};
use pds_store::{EventKind, ResignedHead, StoreError};

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
/// reference), after checking that its DID document names this server, our signing key for it
/// and (for `did:plc`) our rotation key. The repository lock is held from reading the head to the
/// write, so `#sync` carries the head the account is reactivated with. A head not signed with
/// the account's key here (an imported repository) is first re-committed: same data, a newer
/// revision, our signature, so that `getRepo` and `#sync` verify against the DID's current key.
pub async fn activate(state: &AppState, did: &Did) -> Result<(), AccountError> {
    check_did_document(state, did).await?;
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
    let resigned = resign_head(state, did).await?;
    let sync = match &resigned {
        Some(head) => sync_event_for(did, &head.commit, &head.bytes, &head.rev)?,
        None => sync_event(state, did).await?,
    };
    store
        .activate_account_with_head(did, resigned, vec![identity, active, sync], Utc::now())
        .await?;
    Ok(())
}

/// The head re-signed with the account's key, unless it already verifies with it.
async fn resign_head(state: &AppState, did: &Did) -> Result<Option<ResignedHead>, AccountError> {
    let internal = |e: String| AccountError::Internal(format!("re-signing {did}: {e}"));
    let head = state
        .store()
        .repo_head(did)
        .await?
        .ok_or_else(|| internal("no repository".into()))?;
    let key = state
        .writer()
        .keys()
        .load(did)
        .map_err(|e| internal(format!("signing key: {e}")))?;
    if head.commit.verify(&key.public_key()).is_ok() {
        return Ok(None);
    }
    let clock = state.writer().next_tid();
    let rev = atp_repo::next_rev(head.commit.rev(), &clock)
        .ok_or_else(|| internal("the revision cannot grow any more".into()))?;
    let data = *head.commit.data();
    let signed = atp_repo::UnsignedCommit::v3(did.clone(), data, rev.clone())
        .sign(&key)
        .map_err(|e| internal(e.to_string()))?;
    let bytes = signed.to_cbor();
    Ok(Some(ResignedHead {
        prev: head.cid,
        commit: atp_data::cid::cid_for_cbor(&bytes),
        bytes,
        rev,
        data,
    }))
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
    sync_event_for(did, &root.commit, &bytes, &root.rev)
}

/// A `#sync` event for the commit block `bytes` (CID `commit`) at revision `rev`.
fn sync_event_for(
    did: &Did,
    commit: &atp_data::Cid,
    bytes: &[u8],
    rev: &atp_syntax::Tid,
) -> Result<pds_store::NewEvent, AccountError> {
    let internal = |e: String| AccountError::Internal(format!("#sync for {did}: {e}"));
    let mut car = atp_data::car::CarWriter::new(Vec::new(), &[*commit])
        .map_err(|e| internal(e.to_string()))?;
    car.write_block(commit, bytes)
        .map_err(|e| internal(e.to_string()))?;
    let blocks = car.finish().map_err(|e| internal(e.to_string()))?;
    Ok(event(
        EventKind::Sync,
        vec![
            ("did", Value::from(did.as_str())),
            ("blocks", Value::Bytes(blocks)),
            ("rev", Value::from(rev.as_str())),
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

/// Whether `did`'s DID document names this server (see [`check_did_document`]).
async fn valid_did(state: &AppState, did: &Did) -> bool {
    check_did_document(state, did).await.is_ok()
}

/// Checks that `did`'s DID document names this server as its PDS, our signing key for the
/// account as its `atproto` key and, for `did:plc`, our PLC rotation key among its rotation keys
/// (the reference's checks and messages).
pub async fn check_did_document(state: &AppState, did: &Did) -> Result<(), AccountError> {
    let bad = |m: &str| AccountError::InvalidRequest(m.to_owned());
    let (endpoint, signing_key) = match did.method() {
        "plc" => {
            let (op, _) = plc_last_op(state, did)
                .await
                .map_err(|_| bad("Could not resolve DID"))?;
            let data = PlcData::from_op(did, &op.op).ok_or_else(|| bad("DID is tombstoned"))?;
            let rotation = state.secrets().plc_rotation_key.public_key().did_key();
            if !data.rotation_keys.contains(&rotation) {
                return Err(bad("Server rotation key not included in PLC DID data"));
            }
            (
                data.pds_endpoint().map(str::to_owned),
                data.atproto_key().map(str::to_owned),
            )
        }
        _ => {
            let resolver = state
                .resolver()
                .ok_or_else(|| bad("Could not resolve DID"))?;
            let doc = resolver
                .refresh_did(did)
                .await
                .map_err(|_| bad("Could not resolve DID"))?;
            (
                doc.pds_endpoint().ok().map(str::to_owned),
                doc.signing_key().ok().map(|k| k.did_key()),
            )
        }
    };
    if endpoint.as_deref() != Some(state.config().public_url().as_str()) {
        return Err(bad(
            "DID document atproto_pds service endpoint does not match PDS public url",
        ));
    }
    let key = state
        .writer()
        .keys()
        .load(did)
        .map_err(|e| AccountError::Internal(format!("signing key of {did}: {e}")))?;
    if signing_key.as_deref() != Some(key.public_key().did_key().as_str()) {
        return Err(bad(
            "DID document verification method does not match expected signing key",
        ));
    }
    Ok(())
}
