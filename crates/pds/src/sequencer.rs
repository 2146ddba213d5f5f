//! The sequencer: turns the store's event log into `com.atproto.sync.subscribeRepos` frames and
//! fans them out to subscribers.
//!
//! Events are appended by `pds-store` in the transaction of the change they announce; the store
//! bumps a watch of the last sequence number after each commit. One fan-out task waits on that
//! watch, reads the new rows in order, encodes each frame **once**, appends it to a bounded
//! in-memory window of recent frames ([`RECENT_FRAMES`] / [`RECENT_BYTES`]) and broadcasts it on a
//! bounded [`broadcast`] channel; every subscriber shares the same bytes.
//!
//! A [`Subscription`] with a cursor subscribes to the broadcast *before* it replays, then replays
//! up to the present in batches: from the log (pages of [`PAGE`] events, encoded for it alone)
//! while its cursor is older than the recent window, then from the window itself (shared frames,
//! no query, no encoding); then it switches to the broadcast, skipping frames it already
//! replayed. No gap: a frame is in the window before it is broadcast, so whatever is not in the
//! window when the replay reaches its end is broadcast after the subscription started, and no
//! duplicate. A subscriber whose receiver lags gets `ConsumerTooSlow` and is closed (a lag during
//! the initial catch-up instead restarts the catch-up, a few times).
//!
//! The window mirrors the log: an account deletion (which deletes the account's events from the
//! log) drops its frames from the window too.
//!
//! Frames are `header ‖ body`, both DAG-CBOR: `{t: "#commit", op: 1}` then the stored body with
//! `seq` and `time` inserted (without decoding the body: its `blocks` are copied as they are);
//! errors are `{op: -1}` then `{error, message}`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use atp_data::Value;
use atp_data::cbor::{Encoder, InsertError};
use atp_syntax::Did;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use pds_store::{EventKind, Store, StoreError, StoredEvent};
use tokio::sync::{OnceCell, broadcast};

/// Live frames a subscriber may fall behind by before it is `ConsumerTooSlow`.
pub const BROADCAST_CAPACITY: usize = 2048;
/// Events read from the log per query (what one replaying subscriber holds at most).
const PAGE: usize = 256;
/// Events the fan-out reads from the log per query (on the calling thread: a few at a time).
const FAN_OUT_PAGE: usize = 64;
/// Most frames kept in the recent window.
pub const RECENT_FRAMES: usize = 16_384;
/// Most bytes kept in the recent window.
pub const RECENT_BYTES: usize = 32 << 20;
/// Frames a replaying subscriber takes from the recent window at a time.
const WINDOW_BATCH: usize = 1024;
/// How far back a cursor may replay (the reference PDS's default `repoBackfillLimitMs`): older
/// events are skipped and the subscriber is told with `#info` `OutdatedCursor`.
pub const BACKFILL_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// How many times a lag during the initial catch-up restarts it from the log.
const MAX_CATCHUPS: u32 = 5;

/// One encoded frame with the sequence number of its event.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The event's sequence number.
    pub seq: i64,
    /// `header ‖ body`, shared by every subscriber.
    pub bytes: Bytes,
}

/// An event whose stored body is not a DAG-CBOR map.
#[derive(Debug, thiserror::Error)]
#[error("event {seq}: the stored body is not a DAG-CBOR map")]
pub struct BadEventBody {
    /// The event's sequence number.
    pub seq: i64,
}

/// The firehose fan-out. Cheap to clone.
#[derive(Clone)]
pub struct Sequencer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    tx: broadcast::Sender<Frame>,
    recent: Arc<RwLock<Recent>>,
    running: OnceCell<()>,
}

impl std::fmt::Debug for Sequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequencer")
            .field("subscribers", &self.inner.tx.receiver_count())
            .finish_non_exhaustive()
    }
}

/// A frame in the recent window.
#[derive(Debug, Clone)]
struct Recent1 {
    seq: i64,
    time: DateTime<Utc>,
    did: Did,
    bytes: Bytes,
}

/// The newest frames, in order: every event of the log with `seq > base` that encodes (and was
/// not deleted since) is in `frames`. `base` is `None` until the fan-out starts.
#[derive(Debug, Default)]
struct Recent {
    base: Option<i64>,
    frames: VecDeque<Recent1>,
    bytes: usize,
}

impl Recent {
    fn push(&mut self, frame: Recent1) {
        self.bytes += frame.bytes.len();
        self.frames.push_back(frame);
        while self.frames.len() > RECENT_FRAMES || self.bytes > RECENT_BYTES {
            let Some(old) = self.frames.pop_front() else {
                break;
            };
            self.bytes -= old.bytes.len();
            self.base = Some(old.seq);
        }
    }

    /// Drops the frames of `did` older than `seq` (its events were deleted from the log).
    fn forget(&mut self, did: &Did, seq: i64) {
        self.frames.retain(|f| f.seq >= seq || f.did != *did);
        self.bytes = self.frames.iter().map(|f| f.bytes.len()).sum();
    }

    /// Up to `max` frames after `after`, if the window covers everything after it (`None`: read
    /// the log instead). An empty batch means the window has nothing newer.
    fn after(&self, after: i64, max: usize) -> Option<Vec<Recent1>> {
        if self.base.is_none_or(|base| after < base) {
            return None;
        }
        let start = self.frames.partition_point(|f| f.seq <= after);
        Some(self.frames.range(start..).take(max).cloned().collect())
    }
}

fn read(lock: &RwLock<Recent>) -> RwLockReadGuard<'_, Recent> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write(lock: &RwLock<Recent>) -> RwLockWriteGuard<'_, Recent> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// `{t, op}` (DAG-CBOR key order: `t` before `op`), or `{op}` without `t`.
fn write_header(out: &mut Vec<u8>, op: i64, t: Option<&str>) {
    let mut enc = Encoder::new(out);
    match t {
        Some(t) => enc.map(2).str("t").str(t).str("op").int(op),
        None => enc.map(1).str("op").int(op),
    };
}

fn header(op: i64, t: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    write_header(&mut out, op, t);
    out
}

/// The RFC 3339 form of an event time: milliseconds, `Z`.
pub fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn type_tag(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Commit => "#commit",
        EventKind::Sync => "#sync",
        EventKind::Identity => "#identity",
        EventKind::Account => "#account",
    }
}

/// Encodes a stored event as a frame: `{t: "#<kind>", op: 1}` ‖ body with `seq` and `time`.
/// The body's entries are checked and copied, not decoded and re-encoded.
pub fn encode_event(event: &StoredEvent) -> Result<Frame, BadEventBody> {
    let bad = || BadEventBody { seq: event.seq };
    let mut bytes = Vec::with_capacity(event.body.len() + 64);
    write_header(&mut bytes, 1, Some(type_tag(event.kind)));
    let mut seq = Vec::with_capacity(9);
    Encoder::new(&mut seq).int(event.seq);
    let mut time = Vec::with_capacity(26);
    Encoder::new(&mut time).str(&format_time(&event.time));
    match atp_data::cbor::insert_map_entries(
        &event.body,
        &[("seq", &seq), ("time", &time)],
        &mut bytes,
    ) {
        Ok(()) => {}
        // A body that carries its own `seq` or `time`: ours replace them.
        Err(InsertError::Exists(_)) => {
            let Ok(Value::Map(mut body)) = atp_data::cbor::from_slice(&event.body) else {
                return Err(bad());
            };
            body.insert("seq".to_owned(), Value::Integer(event.seq));
            body.insert(
                "time".to_owned(),
                Value::from(format_time(&event.time).as_str()),
            );
            Encoder::new(&mut bytes).value(&Value::Map(body));
        }
        Err(_) => return Err(bad()),
    }
    Ok(Frame {
        seq: event.seq,
        bytes: Bytes::from(bytes),
    })
}

/// An error frame: `{op: -1}` ‖ `{error, message}`.
pub fn error_frame(error: &str, message: &str) -> Bytes {
    let mut bytes = header(-1, None);
    bytes.extend_from_slice(&atp_data::cbor::to_vec(&Value::Map(BTreeMap::from([
        ("error".to_owned(), Value::from(error)),
        ("message".to_owned(), Value::from(message)),
    ]))));
    Bytes::from(bytes)
}

/// An `#info` frame: `{t: "#info", op: 1}` ‖ `{name, message}`.
pub fn info_frame(name: &str, message: &str) -> Bytes {
    let mut bytes = header(1, Some("#info"));
    bytes.extend_from_slice(&atp_data::cbor::to_vec(&Value::Map(BTreeMap::from([
        ("name".to_owned(), Value::from(name)),
        ("message".to_owned(), Value::from(message)),
    ]))));
    Bytes::from(bytes)
}

/// Whether an event announces an account deletion (`#account`, status `deleted`): the store
/// deleted the account's earlier events with it.
fn is_deletion(event: &StoredEvent) -> bool {
    event.kind == EventKind::Account
        && atp_data::cbor::from_slice(&event.body)
            .ok()
            .and_then(|body| {
                body.get("status")
                    .and_then(Value::as_str)
                    .map(|s| s == "deleted")
            })
            .unwrap_or(false)
}

impl Sequencer {
    /// A sequencer over `store`. The fan-out task starts with the first subscriber (or
    /// [`Sequencer::start`]).
    pub fn new(store: Store) -> Sequencer {
        Sequencer::with_capacity(store, BROADCAST_CAPACITY)
    }

    /// A sequencer whose subscribers may fall behind by `capacity` live frames (at least 1).
    pub fn with_capacity(store: Store, capacity: usize) -> Sequencer {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Sequencer {
            inner: Arc::new(Inner {
                store,
                tx,
                recent: Arc::new(RwLock::new(Recent::default())),
                running: OnceCell::new(),
            }),
        }
    }

    /// Server start-up: raises the store's sequence floor to `max(last seq + 1, now in µs)`, so
    /// sequence numbers never go back even if the event log was emptied or restored from an
    /// older backup, and starts the fan-out. Returns the floor.
    pub async fn start(&self, now: DateTime<Utc>) -> Result<i64, StoreError> {
        let last = self.inner.store.last_seq().await?;
        let floor = last.saturating_add(1).max(now.timestamp_micros());
        self.inner.store.set_seq_floor(floor).await?;
        self.ensure_running().await?;
        Ok(floor)
    }

    /// Starts the fan-out task once. Its starting point is read before this returns, so a
    /// subscriber that subscribes afterwards sees every later event either live or in the log.
    async fn ensure_running(&self) -> Result<(), StoreError> {
        self.inner
            .running
            .get_or_try_init(|| async {
                let watch = self.inner.store.subscribe_seq();
                let last = self.inner.store.last_seq().await?;
                write(&self.inner.recent).base = Some(last);
                let store = self.inner.store.clone();
                let tx = self.inner.tx.clone();
                let recent = Arc::clone(&self.inner.recent);
                tokio::spawn(fan_out(store, tx, recent, watch, last));
                Ok::<(), StoreError>(())
            })
            .await
            .map(|_| ())
    }

    /// A new subscription: live only without a cursor, else replay from `cursor` (exclusive)
    /// then live. `now` decides which events are past the backfill window.
    pub async fn subscribe(
        &self,
        cursor: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Subscription, StoreError> {
        self.ensure_running().await?;
        let rx = self.inner.tx.subscribe();
        let cutoff = now - chrono::Duration::from_std(BACKFILL_WINDOW).unwrap_or_default();
        let mut sub = Subscription {
            store: self.inner.store.clone(),
            tx: self.inner.tx.clone(),
            recent: Arc::clone(&self.inner.recent),
            rx,
            pending: VecDeque::new(),
            last: cursor,
            replaying: cursor.is_some(),
            delivered_live: false,
            catchups: 0,
            cutoff,
            done: false,
        };
        if let Some(cursor) = cursor {
            let head = self.inner.store.last_seq().await?;
            if cursor > head {
                sub.pending
                    .push_back(error_frame("FutureCursor", "Cursor in the future."));
                sub.done = true;
            } else if let Some(next) = self.inner.store.events_after(cursor, 1).await?.first()
                && next.time < cutoff
            {
                sub.pending.push_back(info_frame(
                    "OutdatedCursor",
                    "Requested cursor exceeded limit. Possibly missing events",
                ));
            }
        }
        Ok(sub)
    }
}

/// Reads each newly committed event once, encodes it, keeps it in the recent window and
/// broadcasts it.
async fn fan_out(
    store: Store,
    tx: broadcast::Sender<Frame>,
    recent: Arc<RwLock<Recent>>,
    mut watch: tokio::sync::watch::Receiver<i64>,
    mut last: i64,
) {
    loop {
        let head = *watch.borrow_and_update();
        while head > last {
            let page = match store.new_events_after(last, FAN_OUT_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "firehose: reading the event log failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if page.is_empty() {
                break;
            }
            for event in &page {
                last = event.seq;
                let frame = match encode_event(event) {
                    Ok(frame) => frame,
                    Err(e) => {
                        tracing::error!(error = %e, "firehose: event skipped");
                        continue;
                    }
                };
                {
                    // In the window before it is broadcast (see the module docs).
                    let mut window = write(&recent);
                    if is_deletion(event) {
                        window.forget(&event.did, event.seq);
                    }
                    window.push(Recent1 {
                        seq: event.seq,
                        time: event.time,
                        did: event.did.clone(),
                        bytes: frame.bytes.clone(),
                    });
                }
                let _ = tx.send(frame);
            }
        }
        if watch.changed().await.is_err() {
            return;
        }
    }
}

/// One subscriber's stream of frames; see the module documentation.
#[derive(Debug)]
pub struct Subscription {
    store: Store,
    tx: broadcast::Sender<Frame>,
    recent: Arc<RwLock<Recent>>,
    rx: broadcast::Receiver<Frame>,
    pending: VecDeque<Bytes>,
    /// The last sequence number delivered (or the cursor).
    last: Option<i64>,
    replaying: bool,
    delivered_live: bool,
    catchups: u32,
    cutoff: DateTime<Utc>,
    done: bool,
}

impl Subscription {
    /// The next frame; `None` when the stream is over (after an error frame, or when the
    /// sequencer is gone). Cancel-safe: state changes only after each await completes.
    pub async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                return Some(bytes);
            }
            if self.done {
                return None;
            }
            if self.replaying {
                if let Err(e) = self.replay_batch().await {
                    tracing::error!(error = %e, "firehose: replay failed");
                    self.done = true;
                    return None;
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(frame) => {
                    if let Some(bytes) = self.live(frame) {
                        return Some(bytes);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.lagged(),
                Err(broadcast::error::RecvError::Closed) => {
                    self.done = true;
                    return None;
                }
            }
        }
    }

    /// A frame that is ready now without waiting (buffered replay frames, or live frames
    /// already broadcast), so that a writer can send several before flushing.
    pub fn try_next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                return Some(bytes);
            }
            if self.done || self.replaying {
                return None;
            }
            match self.rx.try_recv() {
                Ok(frame) => {
                    if let Some(bytes) = self.live(frame) {
                        return Some(bytes);
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.lagged(),
                Err(_) => return None,
            }
        }
    }

    /// A live frame, unless it was replayed already.
    fn live(&mut self, frame: Frame) -> Option<Bytes> {
        if self.last.is_some_and(|last| frame.seq <= last) {
            return None;
        }
        self.last = Some(frame.seq);
        self.delivered_live = true;
        Some(frame.bytes)
    }

    /// The receiver fell behind the broadcast buffer.
    fn lagged(&mut self) {
        if self.last.is_some() && !self.delivered_live && self.catchups < MAX_CATCHUPS {
            // Still catching up: subscribe again, then replay the rest.
            self.rx = self.tx.subscribe();
            self.replaying = true;
            self.catchups += 1;
            return;
        }
        self.done = true;
        self.pending
            .push_back(error_frame("ConsumerTooSlow", "Stream consumer too slow"));
    }

    /// Queues the next replayed frames, from the recent window if it covers the cursor, else
    /// from the log; switches to live when there is nothing more.
    async fn replay_batch(&mut self) -> Result<(), StoreError> {
        let after = self.last.unwrap_or(0);
        let cached = read(&self.recent).after(after, WINDOW_BATCH);
        if let Some(batch) = cached {
            if batch.is_empty() {
                self.replaying = false;
            }
            for frame in batch {
                self.last = Some(frame.seq);
                if frame.time >= self.cutoff {
                    self.pending.push_back(frame.bytes);
                }
            }
            return Ok(());
        }
        let page = self.store.events_after(after, PAGE).await?;
        if page.is_empty() {
            self.replaying = false;
        }
        for event in &page {
            self.last = Some(event.seq);
            if event.time < self.cutoff {
                continue;
            }
            match encode_event(event) {
                Ok(frame) => self.pending.push_back(frame.bytes),
                Err(e) => tracing::error!(error = %e, "firehose: event skipped"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atp_syntax::Did;
    use pds_store::{EventKind, NewEvent};

    fn did() -> Did {
        "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap()
    }

    async fn append(store: &Store, n: i64, time: DateTime<Utc>) -> i64 {
        let body = atp_data::cbor::to_vec(&Value::Map(BTreeMap::from([
            ("did".to_owned(), Value::from(did().as_str())),
            ("n".to_owned(), Value::Integer(n)),
        ])));
        let event = NewEvent {
            kind: EventKind::Identity,
            body,
        };
        store.append_event(&did(), event, time).await.unwrap()
    }

    fn decode(bytes: &[u8]) -> (Value, Value) {
        let (header, used) = atp_data::cbor::from_slice_prefix(bytes).unwrap();
        (header, atp_data::cbor::from_slice(&bytes[used..]).unwrap())
    }

    async fn next(sub: &mut Subscription) -> Option<(Value, Value)> {
        tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("frame within 5 s")
            .map(|b| decode(&b))
    }

    fn seq_of(frame: &(Value, Value)) -> i64 {
        frame.1.get("seq").and_then(Value::as_i64).unwrap()
    }

    async fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let store = tokio::task::spawn_blocking(move || Store::open(&path))
            .await
            .unwrap()
            .unwrap();
        (dir, store)
    }

    #[test]
    fn frames_have_header_and_body() {
        let time = DateTime::parse_from_rfc3339("2024-05-06T07:08:09.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let event = StoredEvent {
            seq: 42,
            did: did(),
            kind: EventKind::Account,
            body: atp_data::cbor::to_vec(&Value::Map(BTreeMap::from([(
                "active".to_owned(),
                Value::Bool(true),
            )]))),
            time,
        };
        let frame = encode_event(&event).unwrap();
        let (header, body) = decode(&frame.bytes);
        assert_eq!(header.get("op"), Some(&Value::Integer(1)));
        assert_eq!(header.get("t").and_then(Value::as_str), Some("#account"));
        assert_eq!(body.get("seq"), Some(&Value::Integer(42)));
        assert_eq!(
            body.get("time").and_then(Value::as_str),
            Some("2024-05-06T07:08:09.123Z")
        );
        assert_eq!(body.get("active"), Some(&Value::Bool(true)));
        let bad = StoredEvent {
            body: vec![0x01],
            ..event
        };
        assert!(encode_event(&bad).is_err());
        let (header, body) = decode(&error_frame("FutureCursor", "m"));
        assert_eq!(header.as_map().map(BTreeMap::len), Some(1));
        assert_eq!(header.get("op"), Some(&Value::Integer(-1)));
        assert_eq!(
            body.get("error").and_then(Value::as_str),
            Some("FutureCursor")
        );
    }

    #[tokio::test]
    async fn replay_then_live_without_gap_or_duplicate() {
        let (_dir, store) = open().await;
        let seq = Sequencer::new(store.clone());
        let now = Utc::now();
        let mut seqs = Vec::new();
        for n in 0..5 {
            seqs.push(append(&store, n, now).await);
        }
        let mut sub = seq.subscribe(Some(seqs[1]), now).await.unwrap();
        // Appended after subscribing but before the replay reads the log.
        seqs.push(append(&store, 5, now).await);
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(seq_of(&next(&mut sub).await.unwrap()));
        }
        assert_eq!(got, seqs[2..]);
        seqs.push(append(&store, 6, now).await);
        assert_eq!(seq_of(&next(&mut sub).await.unwrap()), seqs[6]);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), sub.next())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn outdated_future_and_too_slow() {
        let (_dir, store) = open().await;
        let seq = Sequencer::with_capacity(store.clone(), 4);
        let now = Utc::now();
        let old = now - chrono::Duration::days(2);
        let first = append(&store, 0, old).await;
        let recent = append(&store, 1, now).await;

        let mut sub = seq.subscribe(Some(0), now).await.unwrap();
        let (header, body) = next(&mut sub).await.unwrap();
        assert_eq!(header.get("t").and_then(Value::as_str), Some("#info"));
        assert_eq!(
            body.get("name").and_then(Value::as_str),
            Some("OutdatedCursor")
        );
        assert_eq!(seq_of(&next(&mut sub).await.unwrap()), recent);
        let mut sub = seq.subscribe(Some(first), now).await.unwrap();
        assert_eq!(seq_of(&next(&mut sub).await.unwrap()), recent);

        let mut sub = seq.subscribe(Some(recent + 1), now).await.unwrap();
        let (header, body) = next(&mut sub).await.unwrap();
        assert_eq!(header.get("op"), Some(&Value::Integer(-1)));
        assert_eq!(
            body.get("error").and_then(Value::as_str),
            Some("FutureCursor")
        );
        assert!(next(&mut sub).await.is_none());

        let mut slow = seq.subscribe(None, now).await.unwrap();
        let mut last = recent;
        for n in 0..10 {
            last = append(&store, n, now).await;
        }
        // Let the fan-out broadcast all ten into a channel of four.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (header, body) = next(&mut slow).await.unwrap();
        assert_eq!(
            header.get("op"),
            Some(&Value::Integer(-1)),
            "{body:?} (last {last})"
        );
        assert_eq!(
            body.get("error").and_then(Value::as_str),
            Some("ConsumerTooSlow")
        );
        assert!(next(&mut slow).await.is_none());
    }

    /// Frames replayed from the recent window are the frames the log gives, and a cursor older
    /// than the window replays from the log, then from the window, then live.
    #[tokio::test]
    async fn window_replay_is_log_replay() {
        let (_dir, store) = open().await;
        let now = Utc::now();
        let early = append(&store, 0, now).await;
        let seq = Sequencer::new(store.clone());
        seq.start(now).await.unwrap();
        let mut seqs = vec![early];
        for n in 1..40 {
            seqs.push(append(&store, n, now).await);
        }
        // Wait until the fan-out has read them all.
        for _ in 0..100 {
            if read(&seq.inner.recent).frames.len() == 39 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(read(&seq.inner.recent).base, Some(early));
        for cursor in [0, early, seqs[20]] {
            let from_log: Vec<Bytes> = store
                .events_after(cursor, 1000)
                .await
                .unwrap()
                .iter()
                .map(|e| encode_event(e).unwrap().bytes)
                .collect();
            let mut sub = seq.subscribe(Some(cursor), now).await.unwrap();
            for want in &from_log {
                let got = tokio::time::timeout(Duration::from_secs(5), sub.next())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(&got, want, "cursor {cursor}");
            }
            // Caught up: the next one is live, sent once.
            assert!(sub.try_next().is_none());
            let live = append(&store, 99, now).await;
            assert_eq!(seq_of(&next(&mut sub).await.unwrap()), live);
            assert!(
                tokio::time::timeout(Duration::from_millis(100), sub.next())
                    .await
                    .is_err()
            );
        }
    }

    #[test]
    fn the_window_is_bounded_and_forgets_deleted_accounts() {
        let did_a = did();
        let did_b: Did = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb".parse().unwrap();
        let mut window = Recent {
            base: Some(0),
            ..Recent::default()
        };
        let frame = |seq: i64, did: &Did| Recent1 {
            seq,
            time: Utc::now(),
            did: did.clone(),
            bytes: Bytes::from(vec![0u8; 100]),
        };
        for seq in 1..=10 {
            window.push(frame(seq, if seq % 2 == 0 { &did_a } else { &did_b }));
        }
        assert_eq!(window.after(0, 100).map(|f| f.len()), Some(10));
        assert_eq!(window.after(7, 2).map(|f| f[0].seq), Some(8));
        assert_eq!(window.after(10, 100).map(|f| f.len()), Some(0));
        // did_a's events before 9 were deleted (9 would be its deletion event; 10 came after).
        window.forget(&did_a, 9);
        let left: Vec<i64> = window.frames.iter().map(|f| f.seq).collect();
        assert_eq!(left, [1, 3, 5, 7, 9, 10]);
        assert_eq!(window.bytes, 600);
        for seq in 11..=(RECENT_FRAMES as i64 + 20) {
            window.push(frame(seq, &did_b));
        }
        assert_eq!(window.frames.len(), RECENT_FRAMES);
        let base = window.base.unwrap();
        assert_eq!(window.frames.front().map(|f| f.seq), Some(base + 1));
        assert!(window.after(base - 1, 1).is_none(), "older than the window");
        assert!(window.after(base, 1).is_some());

        let deleted = StoredEvent {
            seq: 1,
            did: did(),
            kind: EventKind::Account,
            body: atp_data::cbor::to_vec(&Value::Map(BTreeMap::from([
                ("active".to_owned(), Value::Bool(false)),
                ("status".to_owned(), Value::from("deleted")),
            ]))),
            time: Utc::now(),
        };
        assert!(is_deletion(&deleted));
        let deactivated = StoredEvent {
            body: atp_data::cbor::to_vec(&Value::Map(BTreeMap::from([
                ("active".to_owned(), Value::Bool(false)),
                ("status".to_owned(), Value::from("deactivated")),
            ]))),
            ..deleted.clone()
        };
        assert!(!is_deletion(&deactivated));
    }

    /// The frame of a body that already carries `seq`/`time` replaces them, as before.
    #[test]
    fn stored_seq_and_time_are_replaced() {
        let time = Utc::now();
        let event = StoredEvent {
            seq: 7,
            did: did(),
            kind: EventKind::Identity,
            body: atp_data::cbor::to_vec(&Value::Map(BTreeMap::from([
                ("did".to_owned(), Value::from(did().as_str())),
                ("seq".to_owned(), Value::Integer(1)),
            ]))),
            time,
        };
        let (header, body) = decode(&encode_event(&event).unwrap().bytes);
        assert_eq!(header.get("t").and_then(Value::as_str), Some("#identity"));
        assert_eq!(body.get("seq"), Some(&Value::Integer(7)));
        assert_eq!(
            body.get("time").and_then(Value::as_str),
            Some(format_time(&time).as_str())
        );
    }

    #[tokio::test]
    async fn start_raises_the_floor() {
        let (_dir, store) = open().await;
        let seq = Sequencer::new(store.clone());
        let now = Utc::now();
        let floor = seq.start(now).await.unwrap();
        assert_eq!(floor, now.timestamp_micros());
        assert_eq!(append(&store, 0, now).await, floor);
        assert_eq!(append(&store, 1, now).await, floor + 1);
        let earlier = now - chrono::Duration::days(1);
        let again = Sequencer::new(store.clone()).start(earlier).await.unwrap();
        assert_eq!(again, floor + 2);
    }
}
