//! Account deletion, shared by `com.atproto.admin.deleteAccount`, `com.atproto.server.deleteAccount`
//! and the scheduled deletion of deactivated accounts.
//!
//! The rows go in one transaction with the `#account` event (`active: false`, status
//! `deleted`), which is all the reference emits (no `#tombstone`: that message is deprecated);
//! as the reference, the account's earlier events leave the log with it. The files (blob bytes,
//! the signing key) are deleted after the commit: a crash in between leaves orphaned files,
//! never rows pointing at missing files. The DID document is left as it is (the reference does
//! not tombstone it either).

use atp_data::{Cid, Value};
use atp_syntax::Did;
use chrono::{DateTime, Utc};
use pds_store::EventKind;

use crate::service::account::{AccountError, event};
use crate::state::AppState;

/// The `#account` event announcing that `did` was deleted.
fn deleted_event(did: &Did) -> pds_store::NewEvent {
    event(
        EventKind::Account,
        vec![
            ("did", Value::from(did.as_str())),
            ("active", Value::Bool(false)),
            ("status", Value::from("deleted")),
        ],
    )
}

/// Deletes `did`: its rows and the `#account` event in one transaction (see the module docs),
/// then its blob files (quarantined ones too) and its signing key file. `AccountNotFound` if
/// there is no such account.
pub async fn delete_account(state: &AppState, did: &Did) -> Result<(), AccountError> {
    let store = state.store();
    // No commit of this repository may start while it is being deleted.
    let _guard = store.lock_repo(did).await;
    let temp_keys = store.blob_temp_keys(did).await?;
    let cids = store
        .delete_account(did, Some(deleted_event(did)), Utc::now())
        .await?;
    delete_files(state, did, &cids, &temp_keys).await;
    Ok(())
}

/// The scheduled deletion: deletes `did` as [`delete_account`] does only if, inside the
/// deleting transaction, it is still deactivated with a `delete_after` at or before `now`, so a
/// reactivation that lands after the job listed the account is never lost. Returns whether it
/// was deleted.
pub async fn delete_account_if_due(
    state: &AppState,
    did: &Did,
    now: DateTime<Utc>,
) -> Result<bool, AccountError> {
    let store = state.store();
    let _guard = store.lock_repo(did).await;
    let temp_keys = store.blob_temp_keys(did).await?;
    let Some(cids) = store
        .delete_account_if_due(did, Some(deleted_event(did)), now)
        .await?
    else {
        return Ok(false);
    };
    delete_files(state, did, &cids, &temp_keys).await;
    Ok(true)
}

/// Deletes a deleted account's files: blobs (`cids`), temporary uploads (`temp_keys`), their
/// directories and the signing key. Failures are logged (the rows are already gone).
async fn delete_files(state: &AppState, did: &Did, cids: &[Cid], temp_keys: &[String]) {
    let blobs = state.writer().blobs();
    for cid in cids {
        if let Err(e) = blobs.delete(did, cid).await {
            tracing::warn!(%did, %cid, error = %e, "deleting a blob file of a deleted account");
        }
    }
    for key in temp_keys {
        if let Err(e) = blobs.delete_temp(key).await {
            tracing::warn!(%did, error = %e, "deleting a temporary upload of a deleted account");
        }
    }
    if let Err(e) = blobs.remove_account_dir(did).await {
        tracing::warn!(%did, error = %e, "removing the blob directory of a deleted account");
    }
    if let Err(e) = state.writer().keys().delete(did) {
        tracing::warn!(%did, error = %e, "deleting the signing key of a deleted account");
    }
}
