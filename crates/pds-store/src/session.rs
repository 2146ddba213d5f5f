//! Sessions: refresh tokens (with rotation) and app passwords.
//!
//! # Refresh token rotation
//! A refresh token is identified by its JWT id (`id`). Following the reference PDS, rotating a
//! token does not revoke it at once: it stays valid for a grace period of [`REFRESH_GRACE`]
//! (or until its own expiry, if sooner), and rotating it again within that period returns the
//! *same* next token (`next_id`), so a client that retried a refresh after a lost response is not
//! logged out. Simplifications, documented here:
//! - the caller supplies the candidate next id and its expiry (no randomness in the store); on
//!   a repeated rotation they are ignored and the stored next token's id and expiry are returned;
//! - if the next token no longer exists (it was revoked, e.g. by logging out with it), rotating
//!   the old one fails as well, so a revoked session cannot be resurrected through its
//!   predecessor;
//! - each rotation deletes the account's expired tokens.

use std::time::Duration;

use atp_syntax::Did;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::db::{exists, millis, parsed_at, time_at};
use crate::error::StoreError;

/// How long a rotated refresh token stays usable.
pub const REFRESH_GRACE: Duration = Duration::from_secs(2 * 60 * 60);

/// A stored refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Its JWT id.
    pub id: String,
    /// The account.
    pub did: Did,
    /// The app password the session was created with (`None`: the account password).
    pub app_password_name: Option<String>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The token it was rotated into, if it was.
    pub next_id: Option<String>,
}

/// The result of a rotation: the token the client gets now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The account.
    pub did: Did,
    /// The app password of the session.
    pub app_password_name: Option<String>,
    /// The next token's id (the new JWT's `jti`).
    pub next_id: String,
    /// The next token's expiry (the new JWT's `exp`).
    pub next_expires_at: DateTime<Utc>,
    /// Whether this repeated an earlier rotation within the grace period.
    pub reused: bool,
}

/// A stored app password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPassword {
    /// Its name, unique per account.
    pub name: String,
    /// Its hash.
    pub password_hash: String,
    /// Whether it grants privileged access (DMs and such).
    pub privileged: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RefreshToken> {
    Ok(RefreshToken {
        id: row.get(0)?,
        did: parsed_at(row, 1)?,
        app_password_name: row.get(2)?,
        expires_at: time_at(row, 3)?,
        next_id: row.get(4)?,
    })
}

fn read_token(conn: &Connection, id: &str) -> Result<Option<RefreshToken>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, did, app_password_name, expires_at, next_id FROM refresh_token
             WHERE id = ?1",
        )?
        .query_row([id], token_from_row)
        .optional()?)
}

fn insert_token(conn: &Connection, token: &RefreshToken) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO refresh_token (id, did, app_password_name, expires_at, next_id)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        token.id,
        token.did.as_str(),
        token.app_password_name,
        millis(&token.expires_at),
        token.next_id
    ])?;
    Ok(())
}

/// The rotation itself (see the module docs).
fn rotate(
    conn: &Connection,
    id: &str,
    candidate_id: String,
    candidate_expires_at: DateTime<Utc>,
    now: &DateTime<Utc>,
) -> Result<Option<Rotation>, StoreError> {
    let Some(token) = read_token(conn, id)? else {
        return Ok(None);
    };
    conn.prepare_cached("DELETE FROM refresh_token WHERE did = ?1 AND expires_at <= ?2")?
        .execute(params![token.did.as_str(), millis(now)])?;
    let grace = chrono::Duration::from_std(REFRESH_GRACE).unwrap_or(chrono::Duration::zero());
    let grace_end = (*now + grace).min(token.expires_at);
    if grace_end <= *now {
        return Ok(None);
    }
    let (next_id, next_expires_at, reused) = match &token.next_id {
        Some(next_id) => match read_token(conn, next_id)? {
            Some(next) => (next.id, next.expires_at, true),
            None => {
                conn.prepare_cached("DELETE FROM refresh_token WHERE id = ?1")?
                    .execute([id])?;
                return Ok(None);
            }
        },
        None => {
            insert_token(
                conn,
                &RefreshToken {
                    id: candidate_id.clone(),
                    did: token.did.clone(),
                    app_password_name: token.app_password_name.clone(),
                    expires_at: candidate_expires_at,
                    next_id: None,
                },
            )?;
            (candidate_id, candidate_expires_at, false)
        }
    };
    conn.prepare_cached("UPDATE refresh_token SET expires_at = ?2, next_id = ?3 WHERE id = ?1")?
        .execute(params![id, millis(&grace_end), next_id])?;
    Ok(Some(Rotation {
        did: token.did,
        app_password_name: token.app_password_name,
        next_id,
        next_expires_at,
        reused,
    }))
}

impl Store {
    /// Stores a new refresh token (at login).
    pub async fn create_refresh_token(&self, token: RefreshToken) -> Result<(), StoreError> {
        self.db()
            .write(move |conn| insert_token(conn, &token))
            .await
    }

    /// A refresh token by id (expired ones included; check `expires_at`).
    pub async fn get_refresh_token(&self, id: &str) -> Result<Option<RefreshToken>, StoreError> {
        let id = id.to_owned();
        self.db().read(move |conn| read_token(conn, &id)).await
    }

    /// Rotates refresh token `id` (see the module docs). `candidate_id` and
    /// `candidate_expires_at` describe the next token if this is the first rotation. `None`: the
    /// token does not exist, expired, or its session was revoked.
    pub async fn rotate_refresh_token(
        &self,
        id: &str,
        candidate_id: String,
        candidate_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Rotation>, StoreError> {
        let id = id.to_owned();
        self.db()
            .write(move |conn| rotate(conn, &id, candidate_id, candidate_expires_at, &now))
            .await
    }

    /// Revokes one refresh token (logout); returns whether it existed.
    pub async fn delete_refresh_token(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.db()
            .write(move |conn| {
                Ok(conn
                    .prepare_cached("DELETE FROM refresh_token WHERE id = ?1")?
                    .execute([id])?
                    > 0)
            })
            .await
    }

    /// Revokes every refresh token of an account; returns how many.
    pub async fn delete_refresh_tokens(&self, did: &Did) -> Result<usize, StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| {
                Ok(conn
                    .prepare_cached("DELETE FROM refresh_token WHERE did = ?1")?
                    .execute([did.as_str()])?)
            })
            .await
    }

    /// Creates an app password; [`StoreError::AppPasswordExists`] if the name is taken.
    pub async fn create_app_password(
        &self,
        did: &Did,
        password: AppPassword,
    ) -> Result<(), StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| {
                if exists(
                    conn,
                    "SELECT 1 FROM app_password WHERE did = ?1 AND name = ?2",
                    params![did.as_str(), password.name],
                )? {
                    return Err(StoreError::AppPasswordExists {
                        name: password.name,
                    });
                }
                conn.prepare_cached(
                    "INSERT INTO app_password (did, name, password_hash, privileged, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    did.as_str(),
                    password.name,
                    password.password_hash,
                    password.privileged,
                    millis(&password.created_at)
                ])?;
                Ok(())
            })
            .await
    }

    /// The account's app passwords (with hashes, for login), oldest first.
    pub async fn list_app_passwords(&self, did: &Did) -> Result<Vec<AppPassword>, StoreError> {
        let did = did.clone();
        self.db()
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT name, password_hash, privileged, created_at FROM app_password
                     WHERE did = ?1 ORDER BY created_at, name",
                )?;
                let rows = stmt.query_map([did.as_str()], |r| {
                    Ok(AppPassword {
                        name: r.get(0)?,
                        password_hash: r.get(1)?,
                        privileged: r.get(2)?,
                        created_at: time_at(r, 3)?,
                    })
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
    }

    /// Deletes an app password and revokes the sessions created with it; returns whether it
    /// existed.
    pub async fn delete_app_password(&self, did: &Did, name: &str) -> Result<bool, StoreError> {
        let (did, name) = (did.clone(), name.to_owned());
        self.db()
            .write(move |conn| {
                let n = conn
                    .prepare_cached("DELETE FROM app_password WHERE did = ?1 AND name = ?2")?
                    .execute(params![did.as_str(), name])?;
                conn.prepare_cached(
                    "DELETE FROM refresh_token WHERE did = ?1 AND app_password_name = ?2",
                )?
                .execute(params![did.as_str(), name])?;
                Ok(n > 0)
            })
            .await
    }
}
