//! Email tokens: one-time codes mailed to the account (confirm or change the address, reset
//! the password, delete the account, sign a PLC operation, sign in with the email factor). One live token per account and
//! purpose; requesting a new one replaces the old. Expiry is the caller's policy
//! (`requested_at` is returned).

use atp_syntax::Did;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use crate::Store;
use crate::db::{millis, parsed_at, time_at};
use crate::error::StoreError;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmailTokenPurpose {
    /// `confirmEmail`.
    ConfirmEmail,
    /// `updateEmail` when the current address is confirmed.
    UpdateEmail,
    /// `resetPassword`.
    ResetPassword,
    /// `deleteAccount`.
    DeleteAccount,
    /// `signPlcOperation`.
    PlcOperation,
    /// `createSession`'s `authFactorToken` (the email sign-in factor).
    AuthFactor,
}

impl EmailTokenPurpose {
    /// Every purpose.
    pub const ALL: [EmailTokenPurpose; 6] = [
        EmailTokenPurpose::ConfirmEmail,
        EmailTokenPurpose::UpdateEmail,
        EmailTokenPurpose::ResetPassword,
        EmailTokenPurpose::DeleteAccount,
        EmailTokenPurpose::PlcOperation,
        EmailTokenPurpose::AuthFactor,
    ];
}

impl EmailTokenPurpose {
    /// The stored name (as in the reference PDS).
    pub fn as_str(&self) -> &'static str {
        match self {
            EmailTokenPurpose::ConfirmEmail => "confirm_email",
            EmailTokenPurpose::UpdateEmail => "update_email",
            EmailTokenPurpose::ResetPassword => "reset_password",
            EmailTokenPurpose::DeleteAccount => "delete_account",
            EmailTokenPurpose::PlcOperation => "plc_operation",
            EmailTokenPurpose::AuthFactor => "auth_factor",
        }
    }
}

impl Store {
    /// Stores `token` as the account's live token for `purpose`, replacing any previous one.
    pub async fn set_email_token(
        &self,
        did: &Did,
        purpose: EmailTokenPurpose,
        token: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO email_token (did, purpose, token, requested_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (did, purpose) DO UPDATE
                     SET token = excluded.token, requested_at = excluded.requested_at",
                )?
                .execute(params![
                    did.as_str(),
                    purpose.as_str(),
                    token,
                    millis(&now)
                ])?;
                Ok(())
            })
            .await
    }

    /// When `token` was requested, if it is the account's live token for `purpose`.
    pub async fn check_email_token(
        &self,
        did: &Did,
        purpose: EmailTokenPurpose,
        token: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (did, token) = (did.clone(), token.to_owned());
        self.db()
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT requested_at FROM email_token
                         WHERE did = ?1 AND purpose = ?2 AND token = ?3",
                    )?
                    .query_row(params![did.as_str(), purpose.as_str(), token], |r| {
                        time_at(r, 0)
                    })
                    .optional()?)
            })
            .await
    }

    /// The account a live token belongs to, and when it was requested (`resetPassword` only
    /// has the token).
    pub async fn find_email_token(
        &self,
        purpose: EmailTokenPurpose,
        token: &str,
    ) -> Result<Option<(Did, DateTime<Utc>)>, StoreError> {
        let token = token.to_owned();
        self.db()
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT did, requested_at FROM email_token
                         WHERE purpose = ?1 AND token = ?2",
                    )?
                    .query_row(params![purpose.as_str(), token], |r| {
                        Ok((parsed_at(r, 0)?, time_at(r, 1)?))
                    })
                    .optional()?)
            })
            .await
    }

    /// Deletes the account's token for `purpose` (once used); returns whether it existed.
    pub async fn delete_email_token(
        &self,
        did: &Did,
        purpose: EmailTokenPurpose,
    ) -> Result<bool, StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| {
                Ok(conn
                    .prepare_cached("DELETE FROM email_token WHERE did = ?1 AND purpose = ?2")?
                    .execute(params![did.as_str(), purpose.as_str()])?
                    > 0)
            })
            .await
    }
}

/// An account's live token for one purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailToken {
    /// The token, as stored (upper case).
    pub token: String,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
}

impl std::fmt::Debug for EmailToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailToken")
            .field("requested_at", &self.requested_at)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The account's live token for `purpose`, if any (the caller compares it in constant time
    /// and applies its expiry policy).
    pub async fn get_email_token(
        &self,
        did: &Did,
        purpose: EmailTokenPurpose,
    ) -> Result<Option<EmailToken>, StoreError> {
        let did = did.clone();
        self.db()
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT token, requested_at FROM email_token
                         WHERE did = ?1 AND purpose = ?2",
                    )?
                    .query_row(params![did.as_str(), purpose.as_str()], |r| {
                        Ok(EmailToken {
                            token: r.get(0)?,
                            requested_at: time_at(r, 1)?,
                        })
                    })
                    .optional()?)
            })
            .await
    }

    /// Deletes the account's token for `purpose` only if it is still `token` (compare and
    /// delete: a token is used once even by concurrent requests); returns whether it did.
    pub async fn take_email_token(
        &self,
        did: &Did,
        purpose: EmailTokenPurpose,
        token: &str,
    ) -> Result<bool, StoreError> {
        let (did, token) = (did.clone(), token.to_owned());
        self.db()
            .write(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "DELETE FROM email_token WHERE did = ?1 AND purpose = ?2 AND token = ?3",
                    )?
                    .execute(params![did.as_str(), purpose.as_str(), token])?
                    > 0)
            })
            .await
    }

    /// Deletes every token of the account (its address changed); returns how many.
    pub async fn delete_all_email_tokens(&self, did: &Did) -> Result<usize, StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| {
                Ok(conn
                    .prepare_cached("DELETE FROM email_token WHERE did = ?1")?
                    .execute([did.as_str()])?)
            })
            .await
    }

    /// Deletes the tokens requested before `before` (expired); returns how many.
    pub async fn delete_email_tokens_before(
        &self,
        before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.db()
            .delete_before("DELETE FROM email_token WHERE requested_at < ?1", before)
            .await
    }
}

/// Reads an account's live token for `purpose` straight from the database file `db_path`,
/// opened read-only (no writer thread, no migration), so the operator CLI can read it while the
/// server runs. `account` is a DID or a handle (case-insensitive). `Ok(None)`: no such account;
/// `Ok(Some((did, None)))`: the account has no token for `purpose`. Blocking.
pub fn read_email_token(
    db_path: &std::path::Path,
    account: &str,
    purpose: EmailTokenPurpose,
) -> Result<Option<(Did, Option<EmailToken>)>, StoreError> {
    if !db_path.is_file() {
        return Err(StoreError::Setup {
            reason: format!("no database at {}", db_path.display()),
        });
    }
    let conn = crate::db::open_connection(db_path, crate::db::Role::Reader)?;
    let row = conn
        .query_row(
            "SELECT a.did, t.token, t.requested_at FROM account a
             LEFT JOIN email_token t ON t.did = a.did AND t.purpose = ?2
             WHERE a.did = ?1 OR a.handle = ?1",
            params![account, purpose.as_str()],
            |r| {
                let did: Did = parsed_at(r, 0)?;
                let token: Option<String> = r.get(1)?;
                let token = match token {
                    Some(token) => Some(EmailToken {
                        token,
                        requested_at: time_at(r, 2)?,
                    }),
                    None => None,
                };
                Ok((did, token))
            },
        )
        .optional()?;
    Ok(row)
}

impl std::str::FromStr for EmailTokenPurpose {
    type Err = String;

    /// Parses the stored name (`confirm_email`, `update_email`, `reset_password`,
    /// `delete_account`, `plc_operation`, `auth_factor`).
    fn from_str(s: &str) -> Result<Self, String> {
        EmailTokenPurpose::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = EmailTokenPurpose::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown token purpose {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}
