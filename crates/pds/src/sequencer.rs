//! The sequencer: turns the store's event log into `com.atproto.sync.subscribeRepos` frames and
//! fans them out to subscribers.
//!
//! Events are appended by `pds-store` in the transaction of the change they announce; the store
//! bumps a watch of the last sequence number after each commit. One fan-out task waits on that
//! watch, reads the new rows in order, encodes each frame **once** and broadcasts it on a bounded
//! [`broadcast`] channel; every live subscriber shares the same bytes.
//!
//! A [`Subscription`] with a cursor subscribes to the broadcast *before* it queries the log,
//! replays the log in pages until it is empty, then switches to the broadcast, skipping frames
//! it already replayed: no gap (everything not yet broadcast when it subscribed is in the log by
//! the time its replay reaches the end) and no duplicate. A subscriber whose receiver lags gets
//! `ConsumerTooSlow` and is closed (a lag during the initial catch-up instead restarts the
//! catch-up from the log, a few times).
//!
//! Frames are `header ‖ body`, both DAG-CBOR: `{op: 1, t: "#commit"}` then the stored body with
//! `seq` and `time` added; errors are `{op: -1}` then `{error, message}`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use atp_data::Value;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use pds_store::{Store, StoreError, StoredEvent};
use tokio::sync::{OnceCell, broadcast};

/// Live frames a subscriber may fall behind by before it is `ConsumerTooSlow`.
pub const BROADCAST_CAPACITY: usize = 2048;
/// Events read from the log per query.
const PAGE: usize = 500;
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
    running: OnceCell<()>,
}

impl std::fmt::Debug for Sequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequencer")
            .field("subscribers", &self.inner.tx.receiver_count())
            .finish_non_exhaustive()
    }
}

fn header(op: i64, t: Option<&str>) -> Vec<u8> {
    let mut m = BTreeMap::from([("op".to_owned(), Value::Integer(op))]);
    if let Some(t) = t {
        m.insert("t".to_owned(), Value::from(t));
    }
    atp_data::cbor::to_vec(&Value::Map(m))
}

/// The RFC 3339 form of an event time: milliseconds, `Z`.
pub fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Encodes a stored event as a frame: `{op: 1, t: "#<kind>"}` ‖ body with `seq` and `time`.
pub fn encode_event(event: &StoredEvent) -> Result<Frame, BadEventBody> {
    let bad = || BadEventBody { seq: event.seq };
    let Ok(Value::Map(mut body)) = atp_data::cbor::from_slice(&event.body) else {
        return Err(bad());
    };
    body.insert("seq".to_owned(), Value::Integer(event.seq));
    body.insert(
        "time".to_owned(),
        Value::from(format_time(&event.time).as_str()),
    );
    let mut bytes = header(1, Some(&format!("#{}", event.kind.as_str())));
    bytes.extend_from_slice(&atp_data::cbor::to_vec(&Value::Map(body)));
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

/// An `#info` frame: `{op: 1, t: "#info"}` ‖ `{name, message}`.
pub fn info_frame(name: &str, message: &str) -> Bytes {
    let mut bytes = header(1, Some("#info"));
    bytes.extend_from_slice(&atp_data::cbor::to_vec(&Value::Map(BTreeMap::from([
        ("name".to_owned(), Value::from(name)),
        ("message".to_owned(), Value::from(message)),
    ]))));
    Bytes::from(bytes)
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
                let store = self.inner.store.clone();
                let tx = self.inner.tx.clone();
                tokio::spawn(fan_out(store, tx, watch, last));
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

/// Reads each newly committed event once, encodes it and broadcasts it.
async fn fan_out(
    store: Store,
    tx: broadcast::Sender<Frame>,
    mut watch: tokio::sync::watch::Receiver<i64>,
    mut last: i64,
) {
    loop {
        let head = *watch.borrow_and_update();
        if head > last {
            if tx.receiver_count() == 0 {
                // Nobody listens: a later subscriber finds these in the log.
                last = head;
            } else {
                loop {
                    let page = match store.events_after(last, PAGE).await {
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
                        match encode_event(event) {
                            Ok(frame) => {
                                let _ = tx.send(frame);
                            }
                            Err(e) => tracing::error!(error = %e, "firehose: event skipped"),
                        }
                    }
                }
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
                let after = self.last.unwrap_or(0);
                let page = match self.store.events_after(after, PAGE).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(error = %e, "firehose: replay failed");
                        self.done = true;
                        return None;
                    }
                };
                if page.is_empty() {
                    self.replaying = false;
                    continue;
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
                continue;
            }
            match self.rx.recv().await {
                Ok(frame) => {
                    if self.last.is_some_and(|last| frame.seq <= last) {
                        continue;
                    }
                    self.last = Some(frame.seq);
                    self.delivered_live = true;
                    return Some(frame.bytes);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if self.last.is_some() && !self.delivered_live && self.catchups < MAX_CATCHUPS {
                        // Still catching up: subscribe again, then read the rest from the log.
                        self.rx = self.tx.subscribe();
                        self.replaying = true;
                        self.catchups += 1;
                        continue;
                    }
                    self.done = true;
                    return Some(error_frame("ConsumerTooSlow", "Stream consumer too slow"));
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.done = true;
                    return None;
                }
            }
        }
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
