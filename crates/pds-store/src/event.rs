//! The event log behind `com.atproto.sync.subscribeRepos`.
//!
//! Events are appended inside the transaction of the change they announce (a commit, an account
//! creation, ...), so the log never disagrees with the data. `seq` is assigned inside that
//! transaction as `max(last_seq + 1, seq_floor)`: `last_seq` (in `meta`) is the last number ever
//! handed out, so pruning old events never lets a number be reused, and `seq_floor` (also in
//! `meta`, set with [`Store::set_seq_floor`]) lets the server jump ahead, e.g. to a clock-based
//! value at startup.
//!
//! The stored `body` is the caller's encoded event *without* its `seq` and `time`: the sequencer
//! adds both (from the row) when it frames the event for a subscriber.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::watch;

use atp_syntax::Did;

use crate::Store;
use crate::db::{millis, parsed_at, time_at};
use crate::error::StoreError;

/// `meta` key of the last sequence number handed out.
const LAST_SEQ: &str = "last_seq";
/// `meta` key of the lowest sequence number the next event may get.
const SEQ_FLOOR: &str = "seq_floor";

/// The kind of an event, stored as text (`#commit` is `commit`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `#commit`: a repository commit.
    Commit,
    /// `#sync`: the repository's state was reset (import, recovery).
    Sync,
    /// `#identity`: the handle or DID document may have changed.
    Identity,
    /// `#account`: the account's hosting status changed.
    Account,
}

impl EventKind {
    /// The stored name, which is also the firehose message type without `#`.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Commit => "commit",
            EventKind::Sync => "sync",
            EventKind::Identity => "identity",
            EventKind::Account => "account",
        }
    }
}

/// An unknown event kind name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind {0:?}")]
pub struct UnknownEventKind(pub String);

impl std::str::FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "commit" => Ok(EventKind::Commit),
            "sync" => Ok(EventKind::Sync),
            "identity" => Ok(EventKind::Identity),
            "account" => Ok(EventKind::Account),
            other => Err(UnknownEventKind(other.to_owned())),
        }
    }
}

/// An event to append: its kind and its encoded body (without `seq` and `time`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The kind.
    pub kind: EventKind,
    /// The encoded event body.
    pub body: Vec<u8>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its sequence number.
    pub seq: i64,
    /// The account it is about.
    pub did: Did,
    /// The kind.
    pub kind: EventKind,
    /// The encoded body, as appended.
    pub body: Vec<u8>,
    /// When it was appended.
    pub time: DateTime<Utc>,
}

/// Reads one `meta` integer.
fn meta(conn: &Connection, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

/// Writes one `meta` integer.
fn set_meta(conn: &Connection, key: &str, value: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// The last sequence number handed out (0 if none).
pub(crate) fn read_last_seq(conn: &Connection) -> Result<i64, StoreError> {
    Ok(meta(conn, LAST_SEQ)?.unwrap_or(0))
}

/// Appends an event inside the current transaction; returns its sequence number.
pub(crate) fn append(
    conn: &Connection,
    did: &Did,
    event: &NewEvent,
    now: &DateTime<Utc>,
) -> Result<i64, StoreError> {
    let last = read_last_seq(conn)?;
    let floor = meta(conn, SEQ_FLOOR)?.unwrap_or(0);
    let seq = last
        .checked_add(1)
        .ok_or_else(|| StoreError::Corrupt {
            reason: "event sequence exhausted".to_owned(),
        })?
        .max(floor);
    conn.prepare_cached(
        "INSERT INTO event (seq, did, kind, body, time) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        seq,
        did.as_str(),
        event.kind.as_str(),
        event.body,
        millis(now)
    ])?;
    set_meta(conn, LAST_SEQ, seq)?;
    Ok(seq)
}

fn read_events_after(
    conn: &Connection,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, did, kind, body, time FROM event
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit], event_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        seq: row.get(0)?,
        did: parsed_at(row, 1)?,
        kind: parsed_at(row, 2)?,
        body: row.get(3)?,
        time: time_at(row, 4)?,
    })
}

impl Store {
    /// Appends an event on its own (one that announces no change of this store's data, e.g. an
    /// `#identity` event after a DID document change elsewhere); returns its sequence number. An
    /// event that announces a change here goes in the change's transaction instead (see
    /// [`Store::update_handle`], [`Store::deactivate_account`], ...).
    pub async fn append_event(
        &self,
        did: &Did,
        event: NewEvent,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let did = did.clone();
        self.db()
            .write(move |conn| append(conn, &did, &event, &now))
            .await
    }

    /// Sets the lowest sequence number the next event may get. Lowering it is allowed and
    /// harmless: sequence numbers never go back.
    pub async fn set_seq_floor(&self, floor: i64) -> Result<(), StoreError> {
        self.db()
            .write(move |conn| set_meta(conn, SEQ_FLOOR, floor))
            .await
    }

    /// The last sequence number handed out (0 if none), as of the latest commit.
    pub async fn last_seq(&self) -> Result<i64, StoreError> {
        self.db().read(read_last_seq).await
    }

    /// A receiver of the last sequence number, updated after every committed write batch; the
    /// firehose waits on it for new events.
    pub fn subscribe_seq(&self) -> watch::Receiver<i64> {
        self.db().subscribe_seq()
    }

    /// Up to `limit` events with `seq > after`, in order.
    pub async fn events_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db()
            .read(move |conn| read_events_after(conn, after, limit))
            .await
    }

    /// Like [`Store::events_after`] for a few events (keep `limit` small: the read runs on the
    /// calling thread when it can), on a connection that does not map the database file: for
    /// the firehose fan-out, which reads the events committed since its last read after every
    /// commit (a mapped connection would drop and rebuild its mapping each time).
    pub async fn new_events_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db()
            .read_quick(move |conn| read_events_after(conn, after, limit))
            .await
    }

    /// The sequence number of the oldest stored event (`None`: the log is empty).
    pub async fn first_seq(&self) -> Result<Option<i64>, StoreError> {
        self.db()
            .read(|conn| Ok(conn.query_row("SELECT MIN(seq) FROM event", [], |r| r.get(0))?))
            .await
    }

    /// Deletes events appended before `before`; returns how many. Sequence numbers are not reused.
    pub async fn prune_events(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        self.db()
            .delete_before("DELETE FROM event WHERE time < ?1", before)
            .await
    }

    /// Deletes events appended before `before` except the newest stored event, which is always
    /// kept (so a subscriber can always tell where the log ends); returns how many.
    pub async fn prune_events_keeping_last(
        &self,
        before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.db()
            .delete_before(
                "DELETE FROM event WHERE time < ?1
                 AND seq < (SELECT MAX(seq) FROM event)",
                before,
            )
            .await
    }
}
