//! The administrator's operations (`com.atproto.admin.*`): account views, moderation status of
//! accounts, records and blobs (takedowns), passwords, and the server's invite codes.
//!
//! A takedown hides its subject as the reference does: a taken-down account cannot log in, its
//! refresh tokens are revoked and its repository is not served; a taken-down record is left
//! out of `getRecord`, `listRecords` and `sync.getRecord`; a taken-down blob is not served by
//! `getBlob`. An account's status change and the `#account` event announcing its resulting
//! status are written in one transaction.

use atp_data::{Cid, Value};
use atp_syntax::{AtUri, Did, Nsid, RecordKey};
use chrono::Utc;
use pds_store::{
    Account, AccountStatusChange, EventKind, InviteCode, InviteCursor, InviteSort, NewEvent,
    StoreError,
};

use crate::service::account::{AccountError, event, hash_blocking, inactive_status};
use crate::service::credentials::ADMIN_ACCOUNT;
use crate::state::AppState;

/// An account with the invite information of the admin `accountView`.
#[derive(Debug, Clone)]
pub struct AccountInfo {
    /// The account.
    pub account: Account,
    /// The codes issued to it, with their uses.
    pub invites: Vec<InviteCode>,
    /// The code it was created with.
    pub invited_by: Option<InviteCode>,
}

async fn account_info_of(state: &AppState, account: Account) -> Result<AccountInfo, AccountError> {
    let store = state.store();
    let invites = store.list_invite_codes(account.did.as_str()).await?;
    let invited_by = store.invited_by(&account.did).await?;
    Ok(AccountInfo {
        account,
        invites,
        invited_by,
    })
}

/// The view of `did` (`None`: no such account), whatever its status.
pub async fn account_info(
    state: &AppState,
    did: &Did,
) -> Result<Option<AccountInfo>, AccountError> {
    match state.store().get_account(did).await? {
        Some(account) => Ok(Some(account_info_of(state, account).await?)),
        None => Ok(None),
    }
}

/// The views of the accounts of `dids` that exist, in the order given (once each).
pub async fn account_infos(
    state: &AppState,
    dids: &[Did],
) -> Result<Vec<AccountInfo>, AccountError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for did in dids.iter().filter(|d| seen.insert(*d)) {
        if let Some(info) = account_info(state, did).await? {
            out.push(info);
        }
    }
    Ok(out)
}

/// Up to `limit` account views ordered by DID after `after`, optionally only those whose email
/// address contains `email`.
pub async fn search_accounts(
    state: &AppState,
    email: Option<&str>,
    after: Option<&Did>,
    limit: usize,
) -> Result<Vec<AccountInfo>, AccountError> {
    let accounts = state.store().search_accounts(email, after, limit).await?;
    let mut out = Vec::with_capacity(accounts.len());
    for account in accounts {
        out.push(account_info_of(state, account).await?);
    }
    Ok(out)
}

/// A moderation subject (`com.atproto.admin.defs#repoRef`, `com.atproto.repo.strongRef`,
/// `com.atproto.admin.defs#repoBlobRef`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// An account and its repository.
    Repo(Did),
    /// A record.
    Record {
        /// The repository.
        did: Did,
        /// The collection.
        collection: Nsid,
        /// The record key.
        rkey: RecordKey,
    },
    /// A blob of an account.
    Blob {
        /// The account.
        did: Did,
        /// The blob.
        cid: Cid,
    },
}

impl Subject {
    /// The record subject named by `uri` (`at://<did or local handle>/<collection>/<rkey>`).
    pub async fn record(state: &AppState, uri: &AtUri) -> Result<Subject, AccountError> {
        let bad = || AccountError::InvalidRequest(format!("Not a record URI: {uri}"));
        let (Some(collection), Some(rkey)) = (uri.collection(), uri.rkey()) else {
            return Err(bad());
        };
        let did = match uri.authority().as_did() {
            Some(did) => did.clone(),
            None => {
                let handle = uri.authority().as_handle().ok_or_else(bad)?;
                match state.store().get_account_by_handle(handle).await? {
                    Some(account) => account.did,
                    None => return Err(bad()),
                }
            }
        };
        Ok(Subject::Record {
            did,
            collection: collection.clone(),
            rkey: rkey.clone(),
        })
    }
}

/// A `com.atproto.admin.defs#statusAttr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusAttr {
    /// Whether the status applies.
    pub applied: bool,
    /// Its reference (a takedown's moderation reference).
    pub reference: Option<String>,
}

impl StatusAttr {
    /// The attribute of a takedown reference (`None`: not taken down).
    fn of_takedown(takedown_ref: Option<&String>) -> StatusAttr {
        StatusAttr {
            applied: takedown_ref.is_some(),
            reference: takedown_ref.cloned(),
        }
    }

    /// The stored takedown reference: the given one, or the current time as the reference
    /// does; `None` when not applied.
    fn takedown_ref(&self) -> Option<String> {
        self.applied.then(|| {
            self.reference
                .clone()
                .unwrap_or_else(|| crate::sequencer::format_time(&Utc::now()))
        })
    }
}

/// The `#account` event announcing `account`'s current hosting status.
pub(crate) fn account_event(account: &Account) -> NewEvent {
    let mut fields = vec![
        ("did", Value::from(account.did.as_str())),
        ("active", Value::Bool(account.is_active())),
    ];
    if let Some(status) = inactive_status(account) {
        fields.push(("status", Value::from(status)));
    }
    event(EventKind::Account, fields)
}

/// Applies a takedown and/or deactivation to `subject` (deactivation only concerns accounts).
/// For an account, the `#account` event with its resulting status is always emitted (as the
/// reference does), in the transaction of the change. A record or blob that does not exist is
/// not an error (nothing changes), as in the reference.
pub async fn update_subject_status(
    state: &AppState,
    subject: &Subject,
    takedown: Option<&StatusAttr>,
    deactivated: Option<&StatusAttr>,
) -> Result<(), AccountError> {
    let store = state.store();
    match (subject, takedown) {
        (Subject::Repo(did), _) => {
            let change = AccountStatusChange {
                takedown: takedown.map(StatusAttr::takedown_ref),
                deactivated: deactivated.map(|d| d.applied),
            };
            let events = |account: &Account| vec![account_event(account)];
            store
                .update_account_status(did, change, events, Utc::now())
                .await?;
        }
        (
            Subject::Record {
                did,
                collection,
                rkey,
            },
            Some(t),
        ) => {
            store
                .set_record_takedown(did, collection, rkey, t.takedown_ref())
                .await?;
        }
        (Subject::Blob { did, cid }, Some(t)) => {
            // The database first; then the file moves into (or out of) quarantine. A move that
            // fails here is redone by the jobs and at start-up.
            store.set_blob_takedown(did, cid, t.takedown_ref()).await?;
            crate::service::blob::settle_quarantine(state, Some(did)).await?;
        }
        (_, None) => {}
    }
    Ok(())
}

/// What `getSubjectStatus` reports about a subject that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectStatus {
    /// The takedown.
    pub takedown: StatusAttr,
    /// The deactivation (accounts only).
    pub deactivated: Option<StatusAttr>,
    /// A record's current CID.
    pub record_cid: Option<Cid>,
}

/// The moderation status of `subject` (`None`: no such subject).
pub async fn subject_status(
    state: &AppState,
    subject: &Subject,
) -> Result<Option<SubjectStatus>, AccountError> {
    let store = state.store();
    Ok(match subject {
        Subject::Repo(did) => store.get_account(did).await?.map(|a| SubjectStatus {
            takedown: StatusAttr::of_takedown(a.takedown_ref.as_ref()),
            deactivated: Some(StatusAttr {
                applied: a.deactivated_at.is_some(),
                reference: None,
            }),
            record_cid: None,
        }),
        Subject::Record {
            did,
            collection,
            rkey,
        } => store
            .get_record(did, collection, rkey)
            .await?
            .map(|r| SubjectStatus {
                takedown: StatusAttr::of_takedown(r.takedown_ref.as_ref()),
                deactivated: None,
                record_cid: Some(r.cid),
            }),
        Subject::Blob { did, cid } => store.get_blob(did, cid).await?.map(|b| SubjectStatus {
            takedown: StatusAttr::of_takedown(b.takedown_ref.as_ref()),
            deactivated: None,
            record_cid: None,
        }),
    })
}

/// Sets `did`'s password; revokes its sessions (and any pending password-reset token).
pub async fn update_password(
    state: &AppState,
    did: &Did,
    password: String,
) -> Result<(), AccountError> {
    let hash = hash_blocking(password).await?;
    state.store().set_password(did, hash).await?;
    Ok(())
}

/// Allows or forbids `did` to receive invite codes. An unknown account is not an error (as the
/// reference).
pub async fn set_invites_disabled(
    state: &AppState,
    did: &Did,
    disabled: bool,
) -> Result<(), AccountError> {
    match state.store().set_invites_disabled(did, disabled).await {
        Ok(()) | Err(StoreError::AccountNotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Disables the given codes and every code issued to the given accounts; the administrator's
/// codes cannot be disabled by account.
pub async fn disable_invite_codes(
    state: &AppState,
    codes: Vec<String>,
    accounts: Vec<String>,
) -> Result<(), AccountError> {
    if accounts.iter().any(|a| a == ADMIN_ACCOUNT) {
        return Err(AccountError::InvalidRequest(
            "cannot disable admin invite codes".into(),
        ));
    }
    state.store().disable_invite_codes(codes, accounts).await?;
    Ok(())
}

/// The key of `code` in `sort` order.
fn sort_key(sort: InviteSort, code: &InviteCode) -> i64 {
    match sort {
        InviteSort::Recent => code.created_at.timestamp_millis(),
        InviteSort::Usage => i64::try_from(code.uses.len()).unwrap_or(i64::MAX),
    }
}

/// One page of the server's invite codes and the cursor of the next (`<key>::<code>`, as the
/// reference's keysets; absent after an empty page).
pub async fn list_invite_codes(
    state: &AppState,
    sort: InviteSort,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<InviteCode>, Option<String>), AccountError> {
    let after = cursor
        .map(|c| {
            c.split_once("::")
                .and_then(|(key, code)| {
                    Some(InviteCursor {
                        key: key.parse().ok()?,
                        code: code.to_owned(),
                    })
                })
                .ok_or_else(|| AccountError::InvalidRequest("Malformed cursor".into()))
        })
        .transpose()?;
    let codes = state
        .store()
        .list_all_invite_codes(sort, after, limit)
        .await?;
    let next = codes
        .last()
        .map(|c| format!("{}::{}", sort_key(sort, c), c.code));
    Ok((codes, next))
}
