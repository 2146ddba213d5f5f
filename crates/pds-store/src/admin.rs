//! What the administrator API needs beyond the other modules: account status changes (takedown,
//! deactivation) written with the events that announce them, blob takedowns, the server-wide
//! list of invite codes, the code an account was invited with, and account search.
//!
//! Takedown references are opaque strings chosen by the caller (the moderation service's
//! reference, or a timestamp); `NULL` means "not taken down".
//!
//! A taken-down blob's file is moved out of the served location into quarantine (and back when
//! the takedown is lifted), as the reference's blob store does. The database changes first
//! ([`Store::set_blob_takedown`]); the column `quarantined` then records where the file is, once
//! it has moved ([`Store::set_blob_quarantined`]). A permanent blob whose takedown and
//! `quarantined` disagree has a move left to do ([`Store::pending_quarantine_moves`]), so a move
//! a crash interrupted is finished later; the moves themselves are idempotent.

use atp_data::Cid;
use atp_syntax::Did;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::account::{ACCOUNT_COLUMNS, Account, account_from_row};
use crate::db::millis;
use crate::error::StoreError;
use crate::event::{self, NewEvent};
use crate::invite::{InviteCode, read_codes};

/// An administrative change of an account's status; `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountStatusChange {
    /// `Some(Some(reference))`: take the account down; `Some(None)`: lift the takedown.
    /// Either way every refresh token of the account is revoked (as the reference does).
    pub takedown: Option<Option<String>>,
    /// `Some(true)`: deactivate now (no scheduled deletion); `Some(false)`: reactivate.
    pub deactivated: Option<bool>,
}

/// A blob file to move into quarantine or out of it ([`Store::pending_quarantine_moves`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineMove {
    /// The account.
    pub did: Did,
    /// The blob.
    pub cid: Cid,
    /// `true`: the blob is taken down, its file goes into quarantine; `false`: back out.
    pub quarantine: bool,
}

/// Order of [`Store::list_all_invite_codes`], newest or most used first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteSort {
    /// By creation time, then code, descending.
    Recent,
    /// By number of uses, then code, descending.
    Usage,
}

/// A position in [`Store::list_all_invite_codes`]: continue after the code `code` whose sort
/// key (creation time in milliseconds, or number of uses) is `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteCursor {
    /// The sort key of the last code of the previous page.
    pub key: i64,
    /// The last code of the previous page.
    pub code: String,
}

/// Applies `change` to the account row inside the current transaction.
fn apply_status_change(
    conn: &Connection,
    did: &Did,
    change: &AccountStatusChange,
    now: &DateTime<Utc>,
) -> Result<(), StoreError> {
    if !crate::db::exists(conn, "SELECT 1 FROM account WHERE did = ?1", [did.as_str()])? {
        return Err(StoreError::AccountNotFound { did: did.clone() });
    }
    if let Some(takedown) = &change.takedown {
        conn.prepare_cached("UPDATE account SET takedown_ref = ?2 WHERE did = ?1")?
            .execute(params![did.as_str(), takedown])?;
        conn.prepare_cached("DELETE FROM refresh_token WHERE did = ?1")?
            .execute([did.as_str()])?;
    }
    match change.deactivated {
        Some(true) => {
            conn.prepare_cached(
                "UPDATE account SET deactivated_at = ?2, delete_after = NULL WHERE did = ?1",
            )?
            .execute(params![did.as_str(), millis(now)])?;
        }
        Some(false) => {
            conn.prepare_cached(
                "UPDATE account SET deactivated_at = NULL, delete_after = NULL WHERE did = ?1",
            )?
            .execute([did.as_str()])?;
        }
        None => {}
    }
    Ok(())
}

fn read_account(conn: &Connection, did: &Did) -> Result<Option<Account>, StoreError> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM account WHERE did = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([did.as_str()], account_from_row)
        .optional()?)
}

impl Store {
    /// Applies `change` to the account and, in the same transaction, appends the events that
    /// `events` builds from the account as changed (e.g. `#account` with the resulting
    /// status), in order. Returns the changed account. [`StoreError::AccountNotFound`] if there
    /// is no such account (then nothing is written).
    pub async fn update_account_status<F>(
        &self,
        did: &Did,
        change: AccountStatusChange,
        events: F,
        now: DateTime<Utc>,
    ) -> Result<Account, StoreError>
    where
        F: FnOnce(&Account) -> Vec<NewEvent> + Send + 'static,
    {
        let did = did.clone();
        self.db()
            .write(move |conn| {
                apply_status_change(conn, &did, &change, &now)?;
                let account = read_account(conn, &did)?
                    .ok_or_else(|| StoreError::AccountNotFound { did: did.clone() })?;
                for event in events(&account) {
                    event::append(conn, &did, &event, &now)?;
                }
                Ok(account)
            })
            .await
    }

    /// Sets or clears the takedown reference of `did`'s blob `cid`; returns whether the blob
    /// exists.
    pub async fn set_blob_takedown(
        &self,
        did: &Did,
        cid: &Cid,
        takedown_ref: Option<String>,
    ) -> Result<bool, StoreError> {
        let (did, cid) = (did.clone(), cid.to_bytes());
        self.db()
            .write(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "UPDATE blob SET takedown_ref = ?3 WHERE did = ?1 AND cid = ?2",
                    )?
                    .execute(params![did.as_str(), cid, takedown_ref])?
                    > 0)
            })
            .await
    }

    /// Records where the file of `did`'s blob `cid` now is (`true`: in quarantine), after the
    /// caller moved it; returns whether the blob exists.
    pub async fn set_blob_quarantined(
        &self,
        did: &Did,
        cid: &Cid,
        quarantined: bool,
    ) -> Result<bool, StoreError> {
        let (did, cid) = (did.clone(), cid.to_bytes());
        self.db()
            .write(move |conn| {
                Ok(conn
                    .prepare_cached("UPDATE blob SET quarantined = ?3 WHERE did = ?1 AND cid = ?2")?
                    .execute(params![did.as_str(), cid, quarantined])?
                    > 0)
            })
            .await
    }

    /// The file moves a takedown or its lifting left to do, up to `limit` (all accounts when
    /// `did` is `None`): permanent blobs, out of temporary storage, whose takedown and
    /// `quarantined` disagree.
    pub async fn pending_quarantine_moves(
        &self,
        did: Option<&Did>,
        limit: usize,
    ) -> Result<Vec<QuarantineMove>, StoreError> {
        let did = did.map(|d| d.as_str().to_owned());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db()
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT did, cid, takedown_ref IS NOT NULL FROM blob
                     WHERE (takedown_ref IS NOT NULL) != quarantined
                       AND status = 'permanent' AND temp_key IS NULL
                       AND (?1 IS NULL OR did = ?1)
                     LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![did, limit], |r| {
                    Ok(QuarantineMove {
                        did: crate::db::parsed_at(r, 0)?,
                        cid: crate::db::cid_at(r, 1)?,
                        quarantine: r.get(2)?,
                    })
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    /// The temporary-storage keys of `did`'s blob files that are still in temporary storage
    /// (unreferenced uploads, and promotions whose move is pending).
    pub async fn blob_temp_keys(&self, did: &Did) -> Result<Vec<String>, StoreError> {
        let did = did.clone();
        self.db()
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT temp_key FROM blob WHERE did = ?1 AND temp_key IS NOT NULL",
                )?;
                let rows = stmt.query_map([did.as_str()], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    /// Up to `limit` invite codes of the whole server, with their uses, in `sort` order,
    /// starting after `after`.
    pub async fn list_all_invite_codes(
        &self,
        sort: InviteSort,
        after: Option<InviteCursor>,
        limit: usize,
    ) -> Result<Vec<InviteCode>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db()
            .read(move |conn| {
                let key = match sort {
                    InviteSort::Recent => "c.created_at",
                    InviteSort::Usage => {
                        "(SELECT COUNT(*) FROM invite_code_use u WHERE u.code = c.code)"
                    }
                };
                let sql = format!(
                    "SELECT c.code FROM invite_code c
                     WHERE ?1 IS NULL OR {key} < ?1 OR ({key} = ?1 AND c.code < ?2)
                     ORDER BY {key} DESC, c.code DESC LIMIT ?3"
                );
                let (after_key, after_code) = match &after {
                    Some(c) => (Some(c.key), c.code.clone()),
                    None => (None, String::new()),
                };
                let codes: Vec<String> = conn
                    .prepare_cached(&sql)?
                    .query_map(params![after_key, after_code, limit], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let mut out = Vec::with_capacity(codes.len());
                for code in codes {
                    out.extend(read_codes(conn, "code", &code)?);
                }
                Ok(out)
            })
            .await
    }

    /// The invite code `did` was created with, with its uses (`None`: none).
    pub async fn invited_by(&self, did: &Did) -> Result<Option<InviteCode>, StoreError> {
        let did = did.clone();
        self.db()
            .read(move |conn| {
                let code: Option<String> = conn
                    .prepare_cached(
                        "SELECT code FROM invite_code_use WHERE used_by = ?1
                         ORDER BY used_at LIMIT 1",
                    )?
                    .query_row([did.as_str()], |r| r.get(0))
                    .optional()?;
                match code {
                    Some(code) => Ok(read_codes(conn, "code", &code)?.into_iter().next()),
                    None => Ok(None),
                }
            })
            .await
    }

    /// Up to `limit` accounts (of every status) ordered by DID after `after`; with `email`,
    /// only those whose email address contains it (case-insensitively).
    pub async fn search_accounts(
        &self,
        email: Option<&str>,
        after: Option<&Did>,
        limit: usize,
    ) -> Result<Vec<Account>, StoreError> {
        let pattern = email.map(|e| {
            let escaped = e
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let after = after.map(|d| d.as_str().to_owned()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db()
            .read(move |conn| {
                let sql = format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM account
                     WHERE did > ?1 AND (?2 IS NULL OR email LIKE ?2 ESCAPE '\\')
                     ORDER BY did LIMIT ?3"
                );
                let rows = conn
                    .prepare_cached(&sql)?
                    .query_map(params![after, pattern, limit], account_from_row)?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }
}
