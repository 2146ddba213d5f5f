//! Email tokens: one-time codes mailed to the account (confirm or change the address, reset
//! the password, delete the account, sign a PLC operation). One live token per account and
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
