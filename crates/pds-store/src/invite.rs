//! Invite codes and their uses.
//!
//! A code has a number of available uses; each account created with it adds one
//! `invite_code_use` row, inside the account's creation transaction ([`consume`]), so two
//! concurrent sign-ups cannot both take the last use. `for_account` is the DID the code was
//! issued to, or `admin`.

use atp_syntax::Did;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::db::{millis, time_at};
use crate::error::StoreError;

/// A code to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInviteCode {
    /// The code.
    pub code: String,
    /// How many accounts may use it.
    pub available_uses: u32,
    /// Who it was issued to (a DID, or `admin`).
    pub for_account: String,
    /// Who created it (a DID, or `admin`).
    pub created_by: String,
}

/// A stored code with its uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteCode {
    /// The code.
    pub code: String,
    /// How many accounts may use it.
    pub available_uses: u32,
    /// Whether it was disabled.
    pub disabled: bool,
    /// Who it was issued to.
    pub for_account: String,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its uses, oldest first.
    pub uses: Vec<InviteCodeUse>,
}

impl InviteCode {
    /// Whether another account can use it.
    pub fn is_available(&self) -> bool {
        !self.disabled && self.uses.len() < self.available_uses as usize
    }
}

/// One use of a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteCodeUse {
    /// The account created with it.
    pub used_by: String,
    /// When.
    pub used_at: DateTime<Utc>,
}

/// Takes one use of `code` for `did`, or fails with [`StoreError::InviteCodeUnavailable`].
pub(crate) fn consume(
    conn: &Connection,
    code: &str,
    did: &Did,
    now: &DateTime<Utc>,
) -> Result<(), StoreError> {
    let available: Option<(i64, bool, i64)> = conn
        .prepare_cached(
            "SELECT available_uses, disabled,
                    (SELECT COUNT(*) FROM invite_code_use u WHERE u.code = c.code)
             FROM invite_code c WHERE code = ?1",
        )?
        .query_row([code], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match available {
        Some((uses, false, used)) if used < uses => {}
        _ => {
            return Err(StoreError::InviteCodeUnavailable {
                code: code.to_owned(),
            });
        }
    }
    conn.prepare_cached(
        "INSERT INTO invite_code_use (code, used_by, used_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![code, did.as_str(), millis(now)])?;
    Ok(())
}

/// Reads codes matching `filter` (`code = ?1` or `for_account = ?1`) with their uses.
pub(crate) fn read_codes(
    conn: &Connection,
    filter: &str,
    value: &str,
) -> Result<Vec<InviteCode>, StoreError> {
    let sql = format!(
        "SELECT code, available_uses, disabled, for_account, created_by, created_at
         FROM invite_code WHERE {filter} = ?1 ORDER BY created_at, code"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut codes = stmt
        .query_map([value], |r| {
            Ok(InviteCode {
                code: r.get(0)?,
                available_uses: r.get(1)?,
                disabled: r.get(2)?,
                for_account: r.get(3)?,
                created_by: r.get(4)?,
                created_at: time_at(r, 5)?,
                uses: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut uses = conn.prepare_cached(
        "SELECT used_by, used_at FROM invite_code_use WHERE code = ?1 ORDER BY used_at, used_by",
    )?;
    for code in &mut codes {
        code.uses = uses
            .query_map([&code.code], |r| {
                Ok(InviteCodeUse {
                    used_by: r.get(0)?,
                    used_at: time_at(r, 1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
    }
    Ok(codes)
}

impl Store {
    /// Creates invite codes (all or none; a code that exists already is an error).
    pub async fn create_invite_codes(
        &self,
        codes: Vec<NewInviteCode>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.db()
            .write(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "INSERT INTO invite_code (code, available_uses, for_account, created_by, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for c in &codes {
                    stmt.execute(params![
                        c.code,
                        c.available_uses,
                        c.for_account,
                        c.created_by,
                        millis(&now)
                    ])?;
                }
                Ok(())
            })
            .await
    }

    /// One code with its uses.
    pub async fn get_invite_code(&self, code: &str) -> Result<Option<InviteCode>, StoreError> {
        let code = code.to_owned();
        self.db()
            .read(move |conn| Ok(read_codes(conn, "code", &code)?.into_iter().next()))
            .await
    }

    /// The codes issued to `for_account` (a DID or `admin`), oldest first, with their uses.
    pub async fn list_invite_codes(
        &self,
        for_account: &str,
    ) -> Result<Vec<InviteCode>, StoreError> {
        let for_account = for_account.to_owned();
        self.db()
            .read(move |conn| read_codes(conn, "for_account", &for_account))
            .await
    }

    /// Disables the given codes and every code issued to the given accounts.
    pub async fn disable_invite_codes(
        &self,
        codes: Vec<String>,
        accounts: Vec<String>,
    ) -> Result<(), StoreError> {
        self.db()
            .write(move |conn| {
                let mut by_code =
                    conn.prepare_cached("UPDATE invite_code SET disabled = 1 WHERE code = ?1")?;
                for code in &codes {
                    by_code.execute([code])?;
                }
                let mut by_account = conn
                    .prepare_cached("UPDATE invite_code SET disabled = 1 WHERE for_account = ?1")?;
                for account in &accounts {
                    by_account.execute([account])?;
                }
                Ok(())
            })
            .await
    }
}
