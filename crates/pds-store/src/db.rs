//! Connections: one writer thread with group commit, and a pool of read-only connections.
//!
//! - **Writes** are closures sent to a dedicated thread that owns the only writable connection.
//!   The thread takes every job queued at that moment (up to [`MAX_BATCH`]), runs them in one
//!   `BEGIN IMMEDIATE` transaction, each inside its own `SAVEPOINT` (a job that fails is rolled
//!   back alone and answered with its error), then commits once: one fsync for the whole batch.
//!   Callers are answered only after the `COMMIT` succeeded; if it fails, every job of the batch
//!   gets the error and nothing of the batch is written.
//!   A batch of one job needs no savepoint, and a batch whose jobs all failed is rolled back
//!   without an fsync. Transaction statements are prepared once and cached.
//! - **Checkpoints** run on their own thread and connection ([`checkpointer_loop`]), so the
//!   writer never copies the WAL into the database file (and never waits for that fsync) on a
//!   caller's time: the writer's automatic checkpoint is only a backstop for a WAL that grows
//!   past [`BACKSTOP_CHECKPOINT_PAGES`].
//! - **Reads** check out one of the read-only connections (a semaphore guards the pool) and run
//!   on a blocking task, inside a read transaction, so every read closure sees one consistent
//!   snapshot. Under WAL, reads never wait for the writer. Point lookups (a handful of indexed
//!   rows, microseconds) use [`Db::read_quick`] instead, which runs on the calling thread when a
//!   connection is free, saving two thread hand-offs per read.
//! - Reads that are not scans (point lookups, the firehose's new events) use a second, small
//!   pool of connections that do not map the database file ([`QUICK_READERS`]): a mapped
//!   connection drops its whole mapping (`munmap`, with a TLB shootdown) at the start of every
//!   read transaction that follows another connection's commit, which cost more than the lookup.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use atp_data::Cid;
use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use tokio::sync::{Semaphore, oneshot, watch};

use crate::error::StoreError;

/// Most jobs committed in one transaction.
pub(crate) const MAX_BATCH: usize = 64;
/// How long a connection waits for a lock held by another connection (or process).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection (rusqlite's default, 16, is fewer than the write path
/// uses, so statements were prepared again on every commit).
const STATEMENT_CACHE: usize = 128;
/// Page cache of a read-only connection, in KiB. Under WAL a reader's cache is dropped whenever
/// another connection has committed since its last read, so a large one buys little.
const READER_CACHE_KIB: i64 = 512;
/// Connections of the pool for point lookups and small reads (not mapped; see the module docs).
const QUICK_READERS: usize = 2;
/// How much of the database file each reader maps (SQLite `mmap_size`).
const READER_MMAP_BYTES: i64 = 1 << 30;
/// Page cache of the writer, in KiB (SQLite's default is 2000): a 200-record applyWrites touches
/// more pages than that, and a cache that overflows mid-transaction spills pages to the WAL
/// early and reads them back.
const WRITER_CACHE_KIB: i64 = 8192;
/// How often the checkpointer looks for committed work to copy into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);
/// WAL size (pages) at which the writer checkpoints by itself, should the checkpointer lag.
pub(crate) const BACKSTOP_CHECKPOINT_PAGES: i64 = 16_384;
/// WAL file size (bytes) kept after a checkpoint lets the log restart.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Which connection is being opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The one connection that writes (and migrates).
    Writer,
    /// A read-only connection that maps the database file (scans).
    Reader,
    /// A read-only connection that does not map the file (point lookups, small reads).
    QuickReader,
}

/// Opens a connection with the store's settings: WAL, `synchronous=FULL`, foreign keys, a busy
/// timeout; readers are also `query_only`.
pub(crate) fn open_connection(path: &Path, role: Role) -> Result<Connection, StoreError> {
    let flags = match role {
        Role::Writer => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Role::Reader | Role::QuickReader => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::Setup {
        reason: format!("cannot open {}: {e}", path.display()),
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if role == Role::Writer {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Setup {
                reason: format!("could not enable WAL (journal_mode is {mode})"),
            });
        }
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    } else {
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
        // Readers map the database file instead of copying pages into their own caches: large
        // scans (getRepo) read straight from the page cache of the OS. Mapped pages are the
        // kernel's to reclaim, so this adds no resident memory of our own.
        if role == Role::Reader {
            conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)?;
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    let fk: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    if !fk {
        return Err(StoreError::Setup {
            reason: "could not enable foreign keys".to_owned(),
        });
    }
    Ok(conn)
}

/// A type-erased write job, as the writer thread sees it.
trait WriteJob: Send {
    /// Runs the job inside its savepoint; `true` if it succeeded (keep its changes).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch is over; `failure` is set if the batch did not commit.
    fn finish(self: Box<Self>, failure: Option<&StoreError>);
}

/// A job with its closure, its result once run, and the caller's reply channel.
struct Pending<R, F> {
    work: Option<F>,
    result: Option<Result<R, StoreError>>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<R, F> WriteJob for Pending<R, F>
where
    R: Send,
    F: FnOnce(&Connection) -> Result<R, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, failure: Option<&StoreError>) {
        let answer = match (self.result, failure) {
            (Some(Err(e)), _) => Err(e),
            (_, Some(failure)) => Err(failure.clone()),
            (Some(Ok(value)), None) => Ok(value),
            (None, None) => Err(StoreError::TaskFailed {
                reason: "write job panicked".to_owned(),
            }),
        };
        // The caller may have gone away (cancelled request); the write stands either way.
        let _ = self.reply.send(answer);
    }
}

/// A pool of up to `permits` read-only connections, opened when first needed (an idle server
/// holds only those its start-up used: each costs memory).
struct Pool {
    conns: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
    path: Arc<PathBuf>,
    role: Role,
}

impl Pool {
    /// A pool of at most `max` connections, `eager` of them opened now.
    fn open(path: &Path, role: Role, max: usize, eager: usize) -> Result<Pool, StoreError> {
        let max = max.max(1);
        let conns = (0..eager.min(max))
            .map(|_| open_connection(path, role))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pool {
            conns: Arc::new(Mutex::new(conns)),
            permits: Arc::new(Semaphore::new(max)),
            path: Arc::new(path.to_owned()),
            role,
        })
    }

    /// A free connection, opened if none is (the caller holds a permit, so at most `max` exist).
    fn checkout(
        conns: &Mutex<Vec<Connection>>,
        path: &Path,
        role: Role,
    ) -> Result<Connection, StoreError> {
        match lock(conns).pop() {
            Some(conn) => Ok(conn),
            None => open_connection(path, role),
        }
    }

    /// Runs `work` on one of the pool's connections, on a blocking task, inside one read
    /// transaction (waits for a free connection).
    ///
    /// The connection and its permit travel with the blocking task and return to the pool when
    /// it ends, even if the caller's future was dropped meanwhile.
    async fn read<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::TaskFailed {
                reason: "the reader pool is closed".to_owned(),
            })?;
        let conns = Arc::clone(&self.conns);
        let (path, role) = (Arc::clone(&self.path), self.role);
        let task = tokio::task::spawn_blocking(move || {
            let conn = Pool::checkout(&conns, &path, role)?;
            let result = run_read(&conn, work);
            lock(&conns).push(conn);
            drop(permit);
            result
        });
        task.await.map_err(|e| StoreError::TaskFailed {
            reason: format!("read task failed: {e}"),
        })?
    }

    /// Runs `work` on the calling thread if a connection is free right now; gives it back
    /// otherwise.
    fn try_read_here<R, F>(&self, work: F) -> Result<Result<R, StoreError>, F>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError>,
    {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            return Err(work);
        };
        let conn = match Pool::checkout(&self.conns, &self.path, self.role) {
            Ok(conn) => conn,
            Err(e) => return Ok(Err(e)),
        };
        let result = run_read(&conn, work);
        lock(&self.conns).push(conn);
        drop(permit);
        Ok(result)
    }
}

/// The connections of one database file.
pub(crate) struct Db {
    jobs: mpsc::Sender<Box<dyn WriteJob>>,
    /// Mapped connections, for scans.
    readers: Pool,
    /// Unmapped connections, for point lookups and small reads.
    quick: Pool,
    last_seq: watch::Receiver<i64>,
    /// Write transactions committed so far (read by tests of group commit; the checkpointer
    /// watches it, and stops when it is dropped).
    #[cfg_attr(not(test), allow(dead_code))]
    commits: Arc<AtomicU64>,
}

impl Db {
    /// Starts the writer thread on `writer` (already migrated), with up to `readers` mapped
    /// read-only connections to `path` and [`QUICK_READERS`] unmapped ones, opened as needed.
    pub(crate) fn start(path: &Path, writer: Connection, readers: usize) -> Result<Db, StoreError> {
        let readers = Pool::open(path, Role::Reader, readers, 1)?;
        let quick = Pool::open(path, Role::QuickReader, QUICK_READERS, 0)?;
        // The checkpointer's connection: it writes the database file, so it is not read-only.
        let checkpoints = open_connection(path, Role::Writer)?;
        writer.pragma_update(None, "wal_autocheckpoint", BACKSTOP_CHECKPOINT_PAGES)?;
        writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        checkpoints.pragma_update(None, "wal_autocheckpoint", 0)?;
        let initial = crate::event::read_last_seq(&writer)?;
        let (seq_tx, seq_rx) = watch::channel(initial);
        let (tx, rx) = mpsc::channel::<Box<dyn WriteJob>>();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commits);
        let seen = Arc::downgrade(&commits);
        std::thread::Builder::new()
            .name("pds-store-writer".to_owned())
            .spawn(move || writer_loop(writer, rx, seq_tx, &counter))
            .map_err(|e| StoreError::Setup {
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        std::thread::Builder::new()
            .name("pds-store-checkpoint".to_owned())
            .spawn(move || checkpointer_loop(&checkpoints, &seen))
            .map_err(|e| StoreError::Setup {
                reason: format!("cannot start the checkpoint thread: {e}"),
            })?;
        Ok(Db {
            jobs: tx,
            readers,
            quick,
            last_seq: seq_rx,
            commits,
        })
    }

    /// Runs `work` on the writer connection inside a transaction (shared with other queued jobs,
    /// isolated by a savepoint) and returns its result once the transaction committed.
    pub(crate) async fn write<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn WriteJob> = Box::new(Pending {
            work: Some(work),
            result: None,
            reply,
        });
        self.jobs.send(job).map_err(|_| StoreError::TaskFailed {
            reason: "the writer thread has stopped".to_owned(),
        })?;
        answer.await.map_err(|_| StoreError::TaskFailed {
            reason: "the writer thread dropped the job".to_owned(),
        })?
    }

    /// Runs the one-parameter `delete` statement with `before` (as stored milliseconds) on the
    /// writer; returns how many rows it deleted.
    pub(crate) async fn delete_before(
        &self,
        delete: &'static str,
        before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.write(move |conn| Ok(conn.prepare_cached(delete)?.execute([millis(&before)])?))
            .await
    }

    /// Runs `work` on a read-only connection, inside one read transaction.
    ///
    /// The connection and its permit travel with the blocking task and return to the pool when
    /// it ends, even if the caller's future was dropped meanwhile.
    pub(crate) async fn read<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.readers.read(work).await
    }

    /// Like [`Db::read`], for point lookups that take microseconds: runs `work` on the calling
    /// thread when a connection of the quick pool is free right now (no hand-off to a blocking
    /// thread and back), else waits for one like [`Db::read`]. Never use it for scans or large
    /// batches: it blocks the async worker while it runs.
    pub(crate) async fn read_quick<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        match self.quick.try_read_here(work) {
            Ok(result) => result,
            Err(work) => self.read(work).await,
        }
    }

    /// The sequence number of the latest committed event, updated after every commit.
    pub(crate) fn subscribe_seq(&self) -> watch::Receiver<i64> {
        self.last_seq.clone()
    }

    /// Write transactions committed so far.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (a plain push or pop).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one cached statement that returns no rows (transaction control).
fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs `work` in a read transaction on a pooled connection, turning a panic into an error and
/// leaving no transaction open on the connection, which goes back to the pool.
fn run_read<R>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    std::panic::catch_unwind(AssertUnwindSafe(|| in_read_tx(conn, work))).unwrap_or_else(|_| {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        Err(StoreError::TaskFailed {
            reason: "read job panicked".to_owned(),
        })
    })
}

/// Runs `work` inside `BEGIN` … `COMMIT` on a read connection.
fn in_read_tx<R>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    exec(conn, "BEGIN DEFERRED")?;
    let result = work(conn);
    // A read transaction has nothing to keep: end it either way (the work's error comes first).
    let ended = exec(conn, "COMMIT");
    let value = result?;
    ended?;
    Ok(value)
}

/// The writer thread: batches queued jobs into one transaction each.
fn writer_loop(
    conn: Connection,
    jobs: mpsc::Receiver<Box<dyn WriteJob>>,
    last_seq: watch::Sender<i64>,
    commits: &AtomicU64,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (failure, committed) = match run_batch(&conn, &mut batch) {
            Ok(committed) => (None, committed),
            Err(e) => {
                tracing::error!(error = %e, jobs = batch.len(), "write batch failed");
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                (Some(e), false)
            }
        };
        if committed {
            commits.fetch_add(1, Ordering::Relaxed);
            // Publish before answering, so a caller whose write returned sees its event's seq.
            match crate::event::read_last_seq(&conn) {
                Ok(seq) => {
                    last_seq.send_if_modified(|current| {
                        let changed = *current != seq;
                        *current = seq;
                        changed
                    });
                }
                Err(e) => tracing::error!(error = %e, "cannot read the last event sequence"),
            }
        }
        for job in batch {
            job.finish(failure.as_ref());
        }
    }
}

/// Runs one batch in one transaction, each job in its savepoint (a lone job needs none), and
/// commits if any job succeeded; returns whether it committed. A batch with nothing to keep is
/// rolled back: no fsync for it.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn WriteJob>]) -> Result<bool, StoreError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let kept = if let [job] = batch {
        usize::from(run_guarded(conn, job.as_mut()))
    } else {
        let mut kept = 0;
        for job in batch {
            kept += usize::from(run_in_savepoint(conn, job.as_mut())?);
        }
        kept
    };
    if conn.is_autocommit() {
        return Err(StoreError::Database {
            message: "the transaction was rolled back by SQLite".to_owned(),
        });
    }
    if kept == 0 {
        exec(conn, "ROLLBACK")?;
        return Ok(false);
    }
    exec(conn, "COMMIT")?;
    Ok(true)
}

/// Runs one job, turning a panic into a failure; `true` if it succeeded.
fn run_guarded(conn: &Connection, job: &mut dyn WriteJob) -> bool {
    std::panic::catch_unwind(AssertUnwindSafe(|| job.run(conn))).unwrap_or(false)
}

/// Runs one job inside a savepoint, keeping its changes only if it succeeded; `true` if it did.
fn run_in_savepoint(conn: &Connection, job: &mut dyn WriteJob) -> Result<bool, StoreError> {
    exec(conn, "SAVEPOINT job")?;
    let ok = run_guarded(conn, job);
    if ok {
        exec(conn, "RELEASE job")?;
    } else {
        exec(conn, "ROLLBACK TO job")?;
        exec(conn, "RELEASE job")?;
    }
    Ok(ok)
}

/// The checkpointer thread: every [`CHECKPOINT_INTERVAL`] in which something was committed, copies
/// the WAL into the database file with a PASSIVE checkpoint (it never blocks the writer or the
/// readers), so the writer's commits pay only for their own WAL fsync. Stops once the store and
/// its writer thread are gone (the commit counter is then dropped).
fn checkpointer_loop(conn: &Connection, commits: &std::sync::Weak<AtomicU64>) {
    let mut done = 0;
    loop {
        std::thread::sleep(CHECKPOINT_INTERVAL);
        let Some(now) = commits.upgrade().map(|c| c.load(Ordering::Relaxed)) else {
            return;
        };
        if now == done {
            continue;
        }
        done = now;
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; the writer's backstop will run");
        }
    }
}

// ---- column conversions ----

/// A conversion failure for column `idx`, as rusqlite reports it.
fn bad_column(
    idx: usize,
    ty: Type,
    err: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, Box::new(err))
}

/// A CID stored as its binary form.
pub(crate) fn cid_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Cid> {
    let bytes: Vec<u8> = row.get(idx)?;
    atp_data::cid::from_bytes(&bytes).map_err(|e| bad_column(idx, Type::Blob, e))
}

/// A value stored as text and parsed with `FromStr` (DIDs, handles, TIDs, NSIDs, ...).
pub(crate) fn parsed_at<T>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.get(idx)?;
    text.parse().map_err(|e| bad_column(idx, Type::Text, e))
}

/// Error for a timestamp out of chrono's range.
#[derive(Debug, thiserror::Error)]
#[error("timestamp {0} ms is out of range")]
struct BadTime(i64);

/// A time stored as milliseconds since the Unix epoch.
pub(crate) fn time_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let ms: i64 = row.get(idx)?;
    DateTime::from_timestamp_millis(ms).ok_or_else(|| bad_column(idx, Type::Integer, BadTime(ms)))
}

/// An optional time stored as milliseconds since the Unix epoch.
pub(crate) fn opt_time_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let ms: Option<i64> = row.get(idx)?;
    ms.map(|ms| {
        DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| bad_column(idx, Type::Integer, BadTime(ms)))
    })
    .transpose()
}

/// Milliseconds since the Unix epoch, as stored.
pub(crate) fn millis(time: &DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// Whether a query returns at least one row.
pub(crate) fn exists(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params, |_| Ok(()))
        .optional()?
        .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(dir: &Path) -> Db {
        let path = dir.join("test.sqlite");
        let mut writer = open_connection(&path, Role::Writer).unwrap();
        crate::migrations::migrate(&mut writer).unwrap();
        writer
            .execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .unwrap();
        Db::start(&path, writer, 2).unwrap()
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> Result<i64, StoreError> + Send + 'static {
        move |conn| {
            conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
            Ok(v)
        }
    }

    async fn values(db: &Db) -> Vec<i64> {
        db.read(|conn| {
            let mut stmt = conn.prepare("SELECT v FROM t ORDER BY v")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quick_reads_see_every_committed_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = start(dir.path());
        let count = |conn: &Connection| -> Result<i64, StoreError> {
            Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
        };
        for v in 0..100 {
            db.write(insert(v)).await.unwrap();
            assert_eq!(db.read_quick(count).await.unwrap(), v + 1);
            assert_eq!(db.read(count).await.unwrap(), v + 1);
        }
        // A failing quick read leaves its connection usable, with no transaction open.
        let failed = db
            .read_quick(|conn| -> Result<(), StoreError> {
                conn.execute_batch("SELECT * FROM no_such_table")?;
                Ok(())
            })
            .await;
        assert!(failed.is_err());
        for _ in 0..4 {
            db.write(insert(1000)).await.ok();
            assert_eq!(db.read_quick(count).await.unwrap(), 101);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpointer_moves_commits_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = start(dir.path());
        let main_file = || {
            std::fs::metadata(dir.path().join("test.sqlite"))
                .unwrap()
                .len()
        };
        let before = main_file();
        for v in 0..20 {
            db.write(move |conn| {
                conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS pad (b BLOB);
                     INSERT INTO pad (b) VALUES (zeroblob(65536));",
                )?;
                Ok(())
            })
            .await
            .unwrap();
        }
        // 1.25 MiB committed, far below the writer's own checkpoint threshold: only the
        // checkpointer can have copied it into the database file.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while main_file() < before + 1_000_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file did not grow: {} bytes",
                main_file()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_jobs_share_one_transaction_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(start(dir.path()));
        // Occupy the writer so that the next jobs queue up.
        let slow = {
            let db = Arc::clone(&db);
            tokio::spawn(async move {
                db.write(|conn| {
                    std::thread::sleep(Duration::from_millis(200));
                    insert(0)(conn)
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = db.commits();
        let mut jobs = Vec::new();
        for v in 1..=10 {
            let db = Arc::clone(&db);
            jobs.push(tokio::spawn(async move { db.write(insert(v)).await }));
        }
        // A duplicate key fails alone; a panicking job fails alone.
        let dup = {
            let db = Arc::clone(&db);
            tokio::spawn(async move {
                db.write(|conn| {
                    conn.execute("INSERT INTO t (v) VALUES (100)", [])?;
                    // 0 was committed by the slow job: this always conflicts.
                    insert(0)(conn)
                })
                .await
            })
        };
        let boom = {
            let db = Arc::clone(&db);
            tokio::spawn(async move {
                db.write(|conn| -> Result<(), StoreError> {
                    conn.execute("INSERT INTO t (v) VALUES (200)", [])?;
                    panic!("job panics")
                })
                .await
            })
        };
        assert_eq!(slow.await.unwrap().unwrap(), 0);
        for (v, job) in (1..=10).zip(jobs) {
            assert_eq!(job.await.unwrap().unwrap(), v);
        }
        assert!(matches!(
            dup.await.unwrap(),
            Err(StoreError::Database { .. })
        ));
        assert!(matches!(
            boom.await.unwrap(),
            Err(StoreError::TaskFailed { .. })
        ));
        assert_eq!(values(&db).await, (0..=10).collect::<Vec<_>>());
        let batches = db.commits() - before;
        assert!(batches <= 3, "12 queued jobs took {batches} transactions");
    }
}
