//! Versioned schema migrations.
//!
//! [`MIGRATIONS`] is an ordered list of SQL scripts; migration `n` (1-based) brings the schema
//! from version `n - 1` to `n`. Each runs once, in its own `IMMEDIATE` transaction together with
//! its `schema_version` row, so a crash mid-migration leaves the previous version intact.
//! Migrations are append-only: never edit one that has shipped, add a new one.
//!
//! The table list and the meaning of every column are in the crate docs (`lib.rs`, "Schema").

use rusqlite::{Connection, TransactionBehavior, params};

use crate::error::StoreError;

/// The migrations, in order. Version = index + 1.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the whole initial schema.
    "
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE account (
        did TEXT PRIMARY KEY,
        handle TEXT NOT NULL COLLATE NOCASE UNIQUE,
        email TEXT COLLATE NOCASE UNIQUE,
        password_hash TEXT,
        created_at INTEGER NOT NULL,
        email_confirmed_at INTEGER,
        deactivated_at INTEGER,
        delete_after INTEGER,
        takedown_ref TEXT,
        invites_disabled INTEGER NOT NULL DEFAULT 0 CHECK (invites_disabled IN (0, 1))
    ) STRICT;

    CREATE TABLE refresh_token (
        id TEXT PRIMARY KEY,
        did TEXT NOT NULL REFERENCES account (did) ON DELETE CASCADE,
        app_password_name TEXT,
        expires_at INTEGER NOT NULL,
        next_id TEXT
    ) STRICT;
    CREATE INDEX refresh_token_by_did ON refresh_token (did, expires_at);

    CREATE TABLE app_password (
        did TEXT NOT NULL REFERENCES account (did) ON DELETE CASCADE,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        privileged INTEGER NOT NULL CHECK (privileged IN (0, 1)),
        created_at INTEGER NOT NULL,
        PRIMARY KEY (did, name)
    ) STRICT;

    CREATE TABLE invite_code (
        code TEXT PRIMARY KEY,
        available_uses INTEGER NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
        for_account TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX invite_code_by_account ON invite_code (for_account);

    CREATE TABLE invite_code_use (
        code TEXT NOT NULL REFERENCES invite_code (code) ON DELETE CASCADE,
        used_by TEXT NOT NULL,
        used_at INTEGER NOT NULL,
        PRIMARY KEY (code, used_by)
    ) STRICT;

    CREATE TABLE repo_root (
        did TEXT PRIMARY KEY REFERENCES account (did) ON DELETE CASCADE,
        commit_cid BLOB NOT NULL,
        rev TEXT NOT NULL,
        data_cid BLOB NOT NULL,
        indexed_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE repo_block (
        did TEXT NOT NULL REFERENCES account (did) ON DELETE CASCADE,
        cid BLOB NOT NULL,
        rev TEXT NOT NULL,
        bytes BLOB NOT NULL,
        PRIMARY KEY (did, cid)
    ) STRICT;

    CREATE TABLE record (
        uri TEXT PRIMARY KEY,
        did TEXT NOT NULL REFERENCES account (did) ON DELETE CASCADE,
        collection TEXT NOT NULL,
        rkey TEXT NOT NULL,
        cid BLOB NOT NULL,
        rev TEXT NOT NULL,
        indexed_at INTEGER NOT NULL,
        takedown_ref TEXT
    ) STRICT;
    CREATE UNIQUE INDEX record_by_path ON record (did, collection, rkey);
    CREATE INDEX record_by_cid ON record (did, cid);

    CREATE TABLE blob (
        did TEXT NOT NULL REFERENCES account (did) ON DELETE CASCADE,
        cid BLOB NOT NULL,
        mime_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('temporary', 'permanent', 'expected')),
        temp_key TEXT,
        created_at INTEGER NOT NULL,
        takedown_ref TEXT,
        PRIMARY KEY (did, cid)
    ) STRICT;
    CREATE INDEX blob_by_status ON blob (status, created_at);
    CREATE INDEX blob_by_did_status ON blob (did, status, cid);

    CREATE TABLE record_blob (
        record_uri TEXT NOT NULL REFERENCES record (uri) ON DELETE CASCADE,
        blob_cid BLOB NOT NULL,
        did TEXT NOT NULL,
        PRIMARY KEY (record_uri, blob_cid)
    ) STRICT;
    CREATE INDEX record_blob_by_blob ON record_blob (did, blob_cid);

    CREATE TABLE event (
        seq INTEGER PRIMARY KEY,
        did TEXT NOT NULL,
        kind TEXT NOT NULL,
        body BLOB NOT NULL,
        time INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX event_by_time ON event (time);

    CREATE TABLE email_token (
        did TEXT NOT NULL REFERENCES account (did) ON DELETE CASCADE,
        purpose TEXT NOT NULL,
        token TEXT NOT NULL,
        requested_at INTEGER NOT NULL,
        PRIMARY KEY (did, purpose)
    ) STRICT;
    CREATE UNIQUE INDEX email_token_by_token ON email_token (purpose, token);

    CREATE TABLE account_pref (
        id INTEGER PRIMARY KEY,
        did TEXT NOT NULL REFERENCES account (did) ON DELETE CASCADE,
        name TEXT NOT NULL,
        value_json TEXT NOT NULL
    ) STRICT;
    CREATE INDEX account_pref_by_did ON account_pref (did, id);
    ",
    // 2: admin: an account's events, for deleting them with the account.
    "CREATE INDEX event_by_did ON event (did, seq);",
    // 3: migration: staging area of repository imports (see `import.rs`).
    "
    CREATE TABLE import_block (
        did TEXT NOT NULL REFERENCES account (did) ON DELETE CASCADE,
        cid BLOB NOT NULL,
        bytes BLOB NOT NULL,
        used INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1)),
        PRIMARY KEY (did, cid)
    ) STRICT;
    CREATE TABLE import_record (
        did TEXT NOT NULL REFERENCES account (did) ON DELETE CASCADE,
        collection TEXT NOT NULL,
        rkey TEXT NOT NULL,
        cid BLOB NOT NULL,
        PRIMARY KEY (did, collection, rkey)
    ) STRICT;
    CREATE INDEX import_record_by_cid ON import_record (did, cid);
    CREATE TABLE import_record_blob (
        did TEXT NOT NULL REFERENCES account (did) ON DELETE CASCADE,
        collection TEXT NOT NULL,
        rkey TEXT NOT NULL,
        blob_cid BLOB NOT NULL,
        mime_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (did, collection, rkey, blob_cid)
    ) STRICT;
    ",
    // 4: email: when the email sign-in factor (updateEmail `emailAuthFactor`) was turned on.
    "ALTER TABLE account ADD COLUMN email_auth_factor_at INTEGER;",
    // 5: takedown: whether a blob's file sits in quarantine, and the file moves left to do
    // (taken down but not quarantined, or quarantined but no longer taken down).
    "
    ALTER TABLE blob ADD COLUMN quarantined INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX blob_quarantine_pending ON blob (did, cid)
        WHERE (takedown_ref IS NOT NULL) != quarantined;
    ",
];

/// The schema version this build creates and understands.
pub(crate) fn latest_version() -> u32 {
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}

/// Brings the schema up to [`latest_version`]; returns the version found before migrating.
/// Refuses a database whose version is newer than this build knows.
///
/// The version is read inside each migration's `IMMEDIATE` transaction, so two processes
/// opening a new database at once do not both apply a migration.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version INTEGER PRIMARY KEY,
            applied_at INTEGER NOT NULL
        ) STRICT",
    )?;
    let supported = latest_version();
    let mut first_seen = None;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found = schema_version(&tx)?;
        first_seen.get_or_insert(found);
        if found > supported {
            return Err(StoreError::SchemaTooNew { found, supported });
        }
        let Some(sql) = MIGRATIONS.get(found as usize) else {
            tx.commit()?;
            return Ok(first_seen.unwrap_or(found));
        };
        let version = found + 1;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at)
             VALUES (?1, CAST(unixepoch('subsec') * 1000 AS INTEGER))",
            params![version],
        )?;
        tx.commit()?;
        tracing::info!(version, "applied pds-store migration");
    }
}

/// The latest applied migration (0 for a new database).
pub(crate) fn schema_version(conn: &Connection) -> Result<u32, StoreError> {
    let version: Option<u32> =
        conn.query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))?;
    Ok(version.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn migrates_once_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 0);
        assert_eq!(schema_version(&conn).unwrap(), latest_version());
        let before = tables(&conn);
        assert!(before.contains(&"repo_block".to_owned()));
        assert_eq!(migrate(&mut conn).unwrap(), latest_version());
        assert_eq!(tables(&conn), before);
        let rows: u32 = conn
            .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, latest_version());
    }

    #[test]
    fn refuses_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, 0)",
            params![latest_version() + 1],
        )
        .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert_eq!(
            err,
            StoreError::SchemaTooNew {
                found: latest_version() + 1,
                supported: latest_version(),
            }
        );
    }
}
