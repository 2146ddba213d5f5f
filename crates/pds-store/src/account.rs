//! Accounts: creation (with the repository's genesis commit), lookups and updates.
//!
//! Handles and email addresses are unique and compared case-insensitively (`COLLATE NOCASE`,
//! ASCII case folding); they are stored as given. Password hashes are opaque strings: hashing
//! and verifying are the server's business.

use atp_data::Cid;
use atp_syntax::{Did, Handle};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::db::{exists, millis, opt_time_at, parsed_at, time_at};
use crate::error::StoreError;
use crate::event::{self, NewEvent};
use crate::invite;
use crate::repo::{self, RepoCommit};

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The account's DID.
    pub did: Did,
    /// Its handle, as stored.
    pub handle: Handle,
    /// Its email address.
    pub email: Option<String>,
    /// Its password hash (`None`: no password login).
    pub password_hash: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When the email address was confirmed.
    pub email_confirmed_at: Option<DateTime<Utc>>,
    /// When it was deactivated (`None`: active).
    pub deactivated_at: Option<DateTime<Utc>>,
    /// When a deactivated account may be deleted.
    pub delete_after: Option<DateTime<Utc>>,
    /// Moderation takedown reference (`Some`: taken down).
    pub takedown_ref: Option<String>,
    /// Whether the account may not create invite codes.
    pub invites_disabled: bool,
    /// When the email sign-in factor was turned on (`None`: off): a password login then also
    /// needs a code mailed to the (confirmed) address.
    pub email_auth_factor_at: Option<DateTime<Utc>>,
}

impl Account {
    /// Whether the account is active: not deactivated and not taken down.
    pub fn is_active(&self) -> bool {
        self.deactivated_at.is_none() && self.takedown_ref.is_none()
    }
}

/// A new account's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// The DID.
    pub did: Did,
    /// The handle.
    pub handle: Handle,
    /// The email address.
    pub email: Option<String>,
    /// The password hash.
    pub password_hash: Option<String>,
    /// An invite code to consume (one use), atomically with the creation.
    pub invite_code: Option<String>,
    /// Create it deactivated (an account migrating in).
    pub deactivated: bool,
}

/// What [`Store::create_account`] committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedAccount {
    /// The sequence numbers of the events, in the order given.
    pub seqs: Vec<i64>,
    /// CID of the genesis commit.
    pub commit: Cid,
}

pub(crate) const ACCOUNT_COLUMNS: &str =
    "did, handle, email, password_hash, created_at, email_confirmed_at,
     deactivated_at, delete_after, takedown_ref, invites_disabled, email_auth_factor_at";

/// How many columns [`ACCOUNT_COLUMNS`] names (the index of the first column after them).
pub(crate) const ACCOUNT_COLUMN_COUNT: usize = 11;

pub(crate) fn account_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        did: parsed_at(row, 0)?,
        handle: parsed_at(row, 1)?,
        email: row.get(2)?,
        password_hash: row.get(3)?,
        created_at: time_at(row, 4)?,
        email_confirmed_at: opt_time_at(row, 5)?,
        deactivated_at: opt_time_at(row, 6)?,
        delete_after: opt_time_at(row, 7)?,
        takedown_ref: row.get(8)?,
        invites_disabled: row.get(9)?,
        email_auth_factor_at: opt_time_at(row, 10)?,
    })
}

/// Fails if another account than `did` uses `handle` (case-insensitively).
fn check_handle_free(conn: &Connection, did: &Did, handle: &Handle) -> Result<(), StoreError> {
    if exists(
        conn,
        "SELECT 1 FROM account WHERE handle = ?1 AND did != ?2",
        params![handle.as_str(), did.as_str()],
    )? {
        return Err(StoreError::HandleTaken {
            handle: handle.to_string(),
        });
    }
    Ok(())
}

/// Fails if another account than `did` uses `email` (case-insensitively).
fn check_email_free(conn: &Connection, did: &Did, email: &str) -> Result<(), StoreError> {
    if exists(
        conn,
        "SELECT 1 FROM account WHERE email = ?1 AND did != ?2",
        params![email, did.as_str()],
    )? {
        return Err(StoreError::EmailTaken {
            email: email.to_owned(),
        });
    }
    Ok(())
}

/// Fails with [`StoreError::AccountNotFound`] unless exactly one row changed.
fn expect_one(changed: usize, did: &Did) -> Result<(), StoreError> {
    if changed == 0 {
        return Err(StoreError::AccountNotFound { did: did.clone() });
    }
    Ok(())
}

/// Appends `events` in order inside the current transaction; returns their sequence numbers.
fn append_all(
    conn: &Connection,
    did: &Did,
    events: &[NewEvent],
    now: &DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    events
        .iter()
        .map(|event| event::append(conn, did, event, now))
        .collect()
}

/// The account row, invite use, genesis and events, inside the current transaction.
fn create(
    conn: &Connection,
    account: &NewAccount,
    genesis: &RepoCommit,
    events: &[NewEvent],
    now: &DateTime<Utc>,
) -> Result<CreatedAccount, StoreError> {
    let did = &account.did;
    if exists(conn, "SELECT 1 FROM account WHERE did = ?1", [did.as_str()])? {
        return Err(StoreError::DidTaken { did: did.clone() });
    }
    check_handle_free(conn, did, &account.handle)?;
    if let Some(email) = &account.email {
        check_email_free(conn, did, email)?;
    }
    conn.prepare_cached(
        "INSERT INTO account (did, handle, email, password_hash, created_at, deactivated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        did.as_str(),
        account.handle.as_str(),
        account.email,
        account.password_hash,
        millis(now),
        account.deactivated.then(|| millis(now)),
    ])?;
    if let Some(code) = &account.invite_code {
        invite::consume(conn, code, did, now)?;
    }
    repo::apply(conn, did, genesis, now)?;
    let seqs = append_all(conn, did, events, now)?;
    Ok(CreatedAccount {
        seqs,
        commit: genesis.commit.cid,
    })
}

impl Store {
    /// Creates an account in one transaction: the row, the invite code use, the repository's
    /// genesis commit (`genesis.commit.prev` must be `None`) and `events` (e.g. `#identity`,
    /// `#account`, `#commit`), in that order.
    pub async fn create_account(
        &self,
        account: NewAccount,
        genesis: RepoCommit,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<CreatedAccount, StoreError> {
        self.db()
            .write(move |conn| create(conn, &account, &genesis, &events, &now))
            .await
    }

    /// The account with this DID.
    pub async fn get_account(&self, did: &Did) -> Result<Option<Account>, StoreError> {
        self.account_where("did", did.as_str().to_owned()).await
    }

    /// The account with this handle (case-insensitive).
    pub async fn get_account_by_handle(
        &self,
        handle: &Handle,
    ) -> Result<Option<Account>, StoreError> {
        self.account_where("handle", handle.as_str().to_owned())
            .await
    }

    /// The account with this email address (case-insensitive).
    pub async fn get_account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError> {
        self.account_where("email", email.to_owned()).await
    }

    async fn account_where(
        &self,
        column: &'static str,
        value: String,
    ) -> Result<Option<Account>, StoreError> {
        // Every column asked for here is unique and indexed: a point lookup.
        self.db()
            .read_quick(move |conn| {
                let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM account WHERE {column} = ?1");
                Ok(conn
                    .prepare_cached(&sql)?
                    .query_row([value], account_from_row)
                    .optional()?)
            })
            .await
    }

    /// Changes the handle and appends `events` (e.g. `#identity`), in that order, in one
    /// transaction; returns the events' sequence numbers. [`StoreError::HandleTaken`] if another
    /// account has it (then nothing is written, events included).
    pub async fn update_handle(
        &self,
        did: &Did,
        handle: &Handle,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let (did, handle) = (did.clone(), handle.clone());
        self.db()
            .write(move |conn| {
                check_handle_free(conn, &did, &handle)?;
                let n = conn
                    .prepare_cached("UPDATE account SET handle = ?2 WHERE did = ?1")?
                    .execute(params![did.as_str(), handle.as_str()])?;
                expect_one(n, &did)?;
                append_all(conn, &did, &events, &now)
            })
            .await
    }

    /// Changes the email address (and clears its confirmation and the email sign-in factor, as
    /// the reference: codes must not go to an unconfirmed inbox); [`StoreError::EmailTaken`] if
    /// another account has it.
    pub async fn update_email(&self, did: &Did, email: &str) -> Result<(), StoreError> {
        let (did, email) = (did.clone(), email.to_owned());
        self.db()
            .write(move |conn| {
                check_email_free(conn, &did, &email)?;
                let n = conn
                    .prepare_cached(
                        "UPDATE account
                         SET email = ?2, email_confirmed_at = NULL, email_auth_factor_at = NULL
                         WHERE did = ?1",
                    )?
                    .execute(params![did.as_str(), email])?;
                expect_one(n, &did)
            })
            .await
    }

    /// Turns the email sign-in factor on (`Some(now)`; an earlier time is kept) or off
    /// (`None`), only while `email` is still the account's address (case-insensitively) and,
    /// to turn it on, confirmed: the check and the write are one statement, so a concurrent
    /// address change wins. Returns whether the account matched.
    pub async fn set_email_auth_factor(
        &self,
        did: &Did,
        email: &str,
        on: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let (did, email) = (did.clone(), email.to_owned());
        self.db()
            .write(move |conn| {
                let n = match on {
                    Some(now) => conn
                        .prepare_cached(
                            "UPDATE account
                             SET email_auth_factor_at = COALESCE(email_auth_factor_at, ?3)
                             WHERE did = ?1 AND email = ?2 AND email_confirmed_at IS NOT NULL",
                        )?
                        .execute(params![did.as_str(), email, millis(&now)])?,
                    None => conn
                        .prepare_cached(
                            "UPDATE account SET email_auth_factor_at = NULL
                             WHERE did = ?1 AND email = ?2",
                        )?
                        .execute(params![did.as_str(), email])?,
                };
                Ok(n > 0)
            })
            .await
    }

    /// Records that the email address was confirmed at `now`.
    pub async fn confirm_email(&self, did: &Did, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.update_account(did, "email_confirmed_at", Some(millis(&now)))
            .await
    }

    /// Sets the password hash, and in the same transaction revokes every refresh token of the
    /// account and deletes its `reset_password` email token.
    pub async fn set_password(&self, did: &Did, password_hash: String) -> Result<(), StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| {
                let n = conn
                    .prepare_cached("UPDATE account SET password_hash = ?2 WHERE did = ?1")?
                    .execute(params![did.as_str(), password_hash])?;
                expect_one(n, &did)?;
                conn.prepare_cached("DELETE FROM refresh_token WHERE did = ?1")?
                    .execute([did.as_str()])?;
                conn.prepare_cached(
                    "DELETE FROM email_token WHERE did = ?1 AND purpose = 'reset_password'",
                )?
                .execute([did.as_str()])?;
                Ok(())
            })
            .await
    }

    /// Deactivates the account at `now` (it may be deleted after `delete_after`) and appends
    /// `events` (e.g. `#account` with status `deactivated`), in that order, in one transaction;
    /// returns the events' sequence numbers.
    pub async fn deactivate_account(
        &self,
        did: &Did,
        now: DateTime<Utc>,
        delete_after: Option<DateTime<Utc>>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<i64>, StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| {
                let n = conn
                    .prepare_cached(
                        "UPDATE account SET deactivated_at = ?2, delete_after = ?3 WHERE did = ?1",
                    )?
                    .execute(params![
                        did.as_str(),
                        millis(&now),
                        delete_after.as_ref().map(millis)
                    ])?;
                expect_one(n, &did)?;
                append_all(conn, &did, &events, &now)
            })
            .await
    }

    /// Reactivates the account and appends `events` (e.g. `#identity`, `#account`, `#sync`), in
    /// that order, in one transaction; returns the events' sequence numbers.
    pub async fn activate_account(
        &self,
        did: &Did,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| {
                let n = conn
                    .prepare_cached(
                        "UPDATE account SET deactivated_at = NULL, delete_after = NULL
                         WHERE did = ?1",
                    )?
                    .execute([did.as_str()])?;
                expect_one(n, &did)?;
                append_all(conn, &did, &events, &now)
            })
            .await
    }

    /// Sets or clears the account's takedown reference.
    pub async fn set_account_takedown(
        &self,
        did: &Did,
        takedown_ref: Option<String>,
    ) -> Result<(), StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| {
                let n = conn
                    .prepare_cached("UPDATE account SET takedown_ref = ?2 WHERE did = ?1")?
                    .execute(params![did.as_str(), takedown_ref])?;
                expect_one(n, &did)
            })
            .await
    }

    /// Allows or forbids the account to create invite codes.
    pub async fn set_invites_disabled(&self, did: &Did, disabled: bool) -> Result<(), StoreError> {
        self.update_account(did, "invites_disabled", Some(i64::from(disabled)))
            .await
    }

    async fn update_account(
        &self,
        did: &Did,
        column: &'static str,
        value: Option<i64>,
    ) -> Result<(), StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| {
                let sql = format!("UPDATE account SET {column} = ?2 WHERE did = ?1");
                let n = conn
                    .prepare_cached(&sql)?
                    .execute(params![did.as_str(), value])?;
                expect_one(n, &did)
            })
            .await
    }

    /// Deletes the account and everything it owns (repository, records, blobs rows, sessions,
    /// preferences, tokens) in one transaction, appending `event` (e.g. `#account` with status
    /// `deleted`) if given. Returns the CIDs of the blobs that had files (permanent or
    /// temporary), so the caller can delete them afterwards. Its past events are deleted from
    /// the log (as the reference's `deleteAllForUser`), so `event` is the only one left.
    pub async fn delete_account(
        &self,
        did: &Did,
        event: Option<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Cid>, StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| delete_account_rows(conn, &did, event.as_ref(), &now))
            .await
    }
}

/// [`Store::delete_account`] inside the current transaction.
pub(crate) fn delete_account_rows(
    conn: &Connection,
    did: &Did,
    event: Option<&NewEvent>,
    now: &DateTime<Utc>,
) -> Result<Vec<Cid>, StoreError> {
    let blobs = {
        let mut stmt =
            conn.prepare_cached("SELECT cid FROM blob WHERE did = ?1 AND status != 'expected'")?;
        let rows = stmt.query_map([did.as_str()], |r| crate::db::cid_at(r, 0))?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    // ON DELETE CASCADE removes every row that references the account.
    let n = conn
        .prepare_cached("DELETE FROM account WHERE did = ?1")?
        .execute([did.as_str()])?;
    expect_one(n, did)?;
    conn.prepare_cached("DELETE FROM event WHERE did = ?1")?
        .execute([did.as_str()])?;
    if let Some(event) = event {
        event::append(conn, did, event, now)?;
    }
    Ok(blobs)
}

/// One repository in [`Store::list_repos`]: the account and its current root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRepo {
    /// The account (its DID, hosting status, ...).
    pub account: Account,
    /// The repository's current root.
    pub root: crate::repo::RepoRoot,
}

impl Store {
    /// Up to `limit` accounts that have a repository, with their roots, ordered by DID, starting
    /// after `after` (a cursor: the last DID of the previous page). Accounts of every status are
    /// listed (taken down and deactivated included).
    pub async fn list_repos(
        &self,
        after: Option<&Did>,
        limit: usize,
    ) -> Result<Vec<ListedRepo>, StoreError> {
        let after = after.map(|d| d.as_str().to_owned()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db()
            .read(move |conn| {
                let columns = ACCOUNT_COLUMNS
                    .split(',')
                    .map(|c| format!("a.{}", c.trim()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT {columns}, r.commit_cid, r.rev, r.data_cid
                     FROM account a JOIN repo_root r ON r.did = a.did
                     WHERE a.did > ?1 ORDER BY a.did LIMIT ?2"
                );
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![after, limit], |row| {
                    Ok(ListedRepo {
                        account: account_from_row(row)?,
                        root: crate::repo::RepoRoot {
                            commit: crate::db::cid_at(row, ACCOUNT_COLUMN_COUNT)?,
                            rev: parsed_at(row, ACCOUNT_COLUMN_COUNT + 1)?,
                            data: crate::db::cid_at(row, ACCOUNT_COLUMN_COUNT + 2)?,
                        },
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }
}
