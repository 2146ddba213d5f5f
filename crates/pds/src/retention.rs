//! Event retention: firehose events older than `PDS_REPO_BACKFILL_LIMIT_MS` are pruned by the
//! background jobs (`jobs.rs`, every `PDS_JOBS_INTERVAL_MS`), never the newest stored event
//! (sequence numbers are never reused either way).

use std::time::Duration;

use chrono::{DateTime, Utc};
use pds_store::{Store, StoreError};

/// Deletes the events appended before `now - window`, except the newest; returns how many.
pub async fn prune_once(
    store: &Store,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let cutoff = now
        .checked_sub_signed(window)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    store.prune_events_keeping_last(cutoff).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use pds_store::{EventKind, NewEvent};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[tokio::test]
    async fn prunes_outside_the_window_but_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let did: atp_syntax::Did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap();
        let mut seqs = Vec::new();
        for t in [100, 200, 300] {
            let ev = NewEvent {
                kind: EventKind::Identity,
                body: vec![1],
            };
            seqs.push(store.append_event(&did, ev, at(t)).await.unwrap());
        }
        let hour = Duration::from_secs(3600);
        // Nothing is older than the window yet.
        assert_eq!(prune_once(&store, hour, at(1000)).await.unwrap(), 0);
        assert_eq!(store.first_seq().await.unwrap(), Some(seqs[0]));
        // Now the first two are.
        assert_eq!(prune_once(&store, hour, at(250 + 3600)).await.unwrap(), 2);
        assert_eq!(store.first_seq().await.unwrap(), Some(seqs[2]));
        // All are old: the newest stays.
        assert_eq!(prune_once(&store, hour, at(100_000)).await.unwrap(), 0);
        assert_eq!(store.first_seq().await.unwrap(), Some(seqs[2]));
    }
}
