//! The SQLite store: schema migrations, and the few queries the directory needs.
//!
//! Everything here is synchronous and runs on a blocking thread (see [`crate::PlcDirectory`]).
//!
//! # Schema
//! - `schema_migrations(version, name, applied_at)`: created before anything else; one row per
//!   applied migration. Opening a database whose latest version is newer than this build knows is
//!   an error, never a silent downgrade.
//! - `operations(seq, did, cid, operation, nullified, created_at)`: every accepted operation, in
//!   acceptance order (`seq`), nullified ones included. `operation` is the signed operation's
//!   JSON, `created_at` milliseconds since the Unix epoch (what `createdAt` shows, so nothing is
//!   lost in the round trip). `(did, cid)` is unique.
//!
//! # Tricky bits
//! - `createdAt` is strictly increasing across the whole directory ([`next_created_at`]): the
//!   audit rules need it per DID, and `/export?after=` pages on it, so two operations may never
//!   share a millisecond.
//! - Accepting an operation (insert plus nullification of the operations it displaces) is one
//!   `IMMEDIATE` transaction on the single writer connection, with the log re-read inside it.

use std::path::Path;

use atp_data::Cid;
use atp_identity::plc::{self, LogEntry, NewOpError, SignedOp};
use atp_syntax::Did;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};

use crate::Submitted;
use crate::error::DirectoryError;

/// The migrations, in order; each runs once, in its own transaction.
const MIGRATIONS: &[(u32, &str, &str)] = &[(
    1,
    "operations",
    "CREATE TABLE operations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        did TEXT NOT NULL,
        cid TEXT NOT NULL,
        operation TEXT NOT NULL,
        nullified INTEGER NOT NULL DEFAULT 0 CHECK (nullified IN (0, 1)),
        created_at INTEGER NOT NULL,
        UNIQUE (did, cid)
    );
    CREATE INDEX operations_by_did ON operations (did, seq);
    CREATE INDEX operations_by_created_at ON operations (created_at);",
)];

/// The schema version this build creates and understands.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Which connection is being opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The one connection that writes (and migrates).
    Writer,
    /// A read-only connection.
    Reader,
}

/// Opens a connection with the directory's settings: WAL, `synchronous=FULL`, a busy timeout.
pub(crate) fn open_connection(path: &Path, role: Role) -> Result<Connection, DirectoryError> {
    let flags = match role {
        Role::Writer => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Role::Reader => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    if role == Role::Writer {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DirectoryError::Setup {
                reason: format!("could not enable WAL (journal_mode is {mode})"),
            });
        }
    } else {
        conn.pragma_update(None, "query_only", true)?;
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Brings the schema up to [`SCHEMA_VERSION`]; returns the version found before migrating.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, DirectoryError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )",
    )?;
    let found = schema_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(DirectoryError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
            params![version, name],
        )?;
        tx.commit()?;
        tracing::info!(version, name, "applied PLC directory migration");
    }
    Ok(found)
}

/// The latest applied migration (0 for a new database).
pub(crate) fn schema_version(conn: &Connection) -> Result<u32, DirectoryError> {
    let version: Option<u32> =
        conn.query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })?;
    Ok(version.unwrap_or(0))
}

/// A stored row, before its columns are parsed.
struct RawEntry {
    did: String,
    cid: String,
    operation: String,
    nullified: bool,
    created_at: i64,
}

impl RawEntry {
    const COLUMNS: &'static str = "did, cid, operation, nullified, created_at";

    fn from_row(row: &Row<'_>) -> rusqlite::Result<RawEntry> {
        Ok(RawEntry {
            did: row.get(0)?,
            cid: row.get(1)?,
            operation: row.get(2)?,
            nullified: row.get(3)?,
            created_at: row.get(4)?,
        })
    }

    fn parse(self) -> Result<LogEntry, DirectoryError> {
        let corrupt = |reason: String| DirectoryError::Corrupt {
            did: self.did.clone(),
            reason,
        };
        let did = Did::try_from(self.did.as_str()).map_err(|e| corrupt(e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_str(&self.operation).map_err(|e| corrupt(e.to_string()))?;
        let operation = SignedOp::from_json(json).map_err(|e| corrupt(e.to_string()))?;
        let cid = atp_data::cid::parse(&self.cid).map_err(|e| corrupt(e.to_string()))?;
        let created_at = DateTime::from_timestamp_millis(self.created_at)
            .ok_or_else(|| corrupt(format!("createdAt {} out of range", self.created_at)))?;
        Ok(LogEntry {
            did,
            operation,
            cid,
            nullified: self.nullified,
            created_at,
        })
    }
}

fn collect(
    rows: impl Iterator<Item = rusqlite::Result<RawEntry>>,
) -> Result<Vec<LogEntry>, DirectoryError> {
    rows.map(|row| row.map_err(DirectoryError::from).and_then(RawEntry::parse))
        .collect()
}

/// A DID's operations in acceptance order; nullified ones only if `include_nullified`.
pub(crate) fn log_entries(
    conn: &Connection,
    did: &Did,
    include_nullified: bool,
) -> Result<Vec<LogEntry>, DirectoryError> {
    let sql = format!(
        "SELECT {} FROM operations WHERE did = ?1 AND (?2 OR nullified = 0) ORDER BY seq",
        RawEntry::COLUMNS
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![did.as_str(), include_nullified], RawEntry::from_row)?;
    collect(rows)
}

/// The DID's last operation that is not nullified.
pub(crate) fn last_entry(conn: &Connection, did: &Did) -> Result<Option<LogEntry>, DirectoryError> {
    let sql = format!(
        "SELECT {} FROM operations WHERE did = ?1 AND nullified = 0 ORDER BY seq DESC LIMIT 1",
        RawEntry::COLUMNS
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.query_row(params![did.as_str()], RawEntry::from_row)
        .optional()?
        .map(RawEntry::parse)
        .transpose()
}

/// Up to `count` operations of every DID accepted strictly after `after`, oldest first.
pub(crate) fn export(
    conn: &Connection,
    after: Option<DateTime<Utc>>,
    count: usize,
) -> Result<Vec<LogEntry>, DirectoryError> {
    let sql = format!(
        "SELECT {} FROM operations WHERE created_at > ?1 ORDER BY created_at, seq LIMIT ?2",
        RawEntry::COLUMNS
    );
    let after_ms = after.map_or(i64::MIN, |t| t.timestamp_millis());
    let limit = i64::try_from(count).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![after_ms, limit], RawEntry::from_row)?;
    collect(rows)
}

/// `now` truncated to the millisecond, or 1 ms after the directory's latest `createdAt` if that
/// is not earlier: `createdAt` strictly increases across the directory.
fn next_created_at(conn: &Connection, now: DateTime<Utc>) -> Result<DateTime<Utc>, DirectoryError> {
    let latest: Option<i64> =
        conn.query_row("SELECT MAX(created_at) FROM operations", [], |r| r.get(0))?;
    let now_ms = now.timestamp_millis();
    let ms = match latest {
        Some(latest) if latest >= now_ms => latest.saturating_add(1),
        _ => now_ms,
    };
    DateTime::from_timestamp_millis(ms).ok_or(DirectoryError::ClockOutOfRange)
}

/// Validates `op` against the DID's stored log and, if it is accepted, stores it and marks the
/// operations it displaces as nullified, all in one transaction.
pub(crate) fn submit(
    conn: &mut Connection,
    did: &Did,
    op: &SignedOp,
    now: DateTime<Utc>,
) -> Result<Submitted, DirectoryError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let log = log_entries(&tx, did, true)?;
    let created_at = next_created_at(&tx, now)?;
    let accepted = plc::validate_new_op(did, &log, op, created_at).map_err(|e| match e {
        NewOpError::InvalidLog(source) => DirectoryError::InvalidStoredLog {
            did: did.clone(),
            source: Box::new(source),
        },
        refused => DirectoryError::Rejected(Box::new(refused)),
    })?;
    let json = serde_json::to_string(op).map_err(|e| DirectoryError::Corrupt {
        did: did.to_string(),
        reason: e.to_string(),
    })?;
    tx.execute(
        "INSERT INTO operations (did, cid, operation, nullified, created_at)
         VALUES (?1, ?2, ?3, 0, ?4)",
        params![
            did.as_str(),
            accepted.cid.to_string(),
            json,
            created_at.timestamp_millis()
        ],
    )?;
    nullify(&tx, did, &accepted.nullified)?;
    tx.commit()?;
    Ok(Submitted {
        cid: accepted.cid,
        created_at,
        nullified: accepted.nullified,
        state: accepted.state,
    })
}

fn nullify(conn: &Connection, did: &Did, cids: &[Cid]) -> Result<(), DirectoryError> {
    let mut stmt =
        conn.prepare_cached("UPDATE operations SET nullified = 1 WHERE did = ?1 AND cid = ?2")?;
    for cid in cids {
        let changed = stmt.execute(params![did.as_str(), cid.to_string()])?;
        if changed != 1 {
            return Err(DirectoryError::Corrupt {
                did: did.to_string(),
                reason: format!("operation {cid} to nullify is not stored"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    /// One millisecond, the resolution of `createdAt`.
    const MILLI: TimeDelta = TimeDelta::milliseconds(1);

    fn writer(dir: &tempfile::TempDir) -> Connection {
        let mut conn = open_connection(&dir.path().join("plc.sqlite"), Role::Writer).unwrap();
        migrate(&mut conn).unwrap();
        conn
    }

    #[test]
    fn migrations_apply_once_and_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plc.sqlite");
        let mut conn = open_connection(&path, Role::Writer).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 0);
        assert_eq!(schema_version(&conn).unwrap(), SCHEMA_VERSION);
        drop(conn);
        let mut conn = open_connection(&path, Role::Writer).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), SCHEMA_VERSION);
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, i64::from(SCHEMA_VERSION));
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = writer(&dir);
        conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?1, 'future')",
            params![SCHEMA_VERSION + 1],
        )
        .unwrap();
        match migrate(&mut conn) {
            Err(DirectoryError::SchemaTooNew { found, supported }) => {
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[test]
    fn created_at_is_truncated_and_strictly_increasing() {
        let dir = tempfile::tempdir().unwrap();
        let conn = writer(&dir);
        let now = DateTime::parse_from_rfc3339("2024-05-01T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let first = next_created_at(&conn, now).unwrap();
        assert_eq!(first.timestamp_millis(), now.timestamp_millis());
        assert!(first <= now && now - first < MILLI);
        conn.execute(
            "INSERT INTO operations (did, cid, operation, created_at) VALUES ('d', 'c', '{}', ?1)",
            params![first.timestamp_millis()],
        )
        .unwrap();
        // Same millisecond, and a clock that went back: both land 1 ms after the latest.
        assert_eq!(next_created_at(&conn, now).unwrap(), first + MILLI);
        assert_eq!(
            next_created_at(&conn, now - TimeDelta::hours(1)).unwrap(),
            first + MILLI
        );
        let later = now + TimeDelta::seconds(1);
        assert_eq!(
            next_created_at(&conn, later).unwrap().timestamp_millis(),
            later.timestamp_millis()
        );
    }

    #[test]
    fn corrupt_rows_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let conn = writer(&dir);
        let did = Did::try_from("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
        conn.execute(
            "INSERT INTO operations (did, cid, operation, created_at) VALUES (?1, 'x', 'not json', 0)",
            params![did.as_str()],
        )
        .unwrap();
        assert!(matches!(
            log_entries(&conn, &did, true),
            Err(DirectoryError::Corrupt { .. })
        ));
        assert!(matches!(
            last_entry(&conn, &did),
            Err(DirectoryError::Corrupt { .. })
        ));
    }
}
