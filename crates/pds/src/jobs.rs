//! Background jobs: one task that runs every periodic job each `PDS_JOBS_INTERVAL_MS` (default
//! one minute; the first round runs at start-up).
//!
//! Every job reads what is due from the database and keeps no state of its own, so scheduled
//! work survives restarts: an account whose `delete_after` passed while the server was down is
//! deleted in the first round after start-up. The jobs:
//! - scheduled account deletion: deactivated accounts whose `delete_after` (set by
//!   `deactivateAccount`) has passed, through
//!   `service::account_delete::delete_account_if_due` (the schedule re-checked in the deleting
//!   transaction);
//! - temporary uploads no record references, older than `PDS_BLOB_TEMP_TTL_MS` (default one
//!   hour): the row and the file;
//! - expired email codes (older than `email_tokens::TOKEN_TTL`);
//! - firehose event retention (`retention::prune_once`, `PDS_REPO_BACKFILL_LIMIT_MS`);
//! - blob files a takedown (or its lifting) still has to move into or out of quarantine
//!   (`service::blob::settle_quarantine`).
//!
//! A failing job is logged and retried the next round; the others still run. Crawler
//! notifications stay their own task (`crawlers.rs`): they follow the event log, not a clock.
//! A later periodic job is one more `async fn(&AppState, now)` called from [`run_once`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use pds_store::StoreError;

use crate::service::{account_delete, email_tokens};
use crate::state::AppState;

/// Most items one job handles per round (the rest waits for the next round).
const BATCH: usize = 100;

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Accounts deleted because their `delete_after` passed.
    pub accounts_deleted: usize,
    /// Temporary uploads removed.
    pub uploads_removed: usize,
    /// Expired email codes removed.
    pub tokens_removed: usize,
    /// Firehose events pruned.
    pub events_pruned: usize,
    /// Blob files moved into or out of quarantine (takedowns whose move was interrupted).
    pub quarantine_moves: usize,
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn before(now: DateTime<Utc>, age: Duration) -> DateTime<Utc> {
    now.checked_sub_signed(chrono_duration(age))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Deletes the deactivated accounts whose `delete_after` is at or before `now`.
pub async fn delete_scheduled_accounts(
    state: &AppState,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let due = state.store().accounts_due_for_deletion(now, BATCH).await?;
    let mut deleted = 0;
    for did in due {
        // The account may be reactivated meanwhile: the deletion re-checks the schedule in its
        // own transaction and then does nothing.
        match account_delete::delete_account_if_due(state, &did, now).await {
            Ok(true) => {
                tracing::info!(%did, "deleted a deactivated account as scheduled (deleteAfter)");
                deleted += 1;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(%did, error = %e, "scheduled account deletion failed"),
        }
    }
    Ok(deleted)
}

/// Removes temporary uploads made before `now - ttl` that no record references.
pub async fn remove_stale_uploads(
    state: &AppState,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<usize, StoreError> {
    let store = state.store();
    let stale = store.stale_temporary_blobs(before(now, ttl), BATCH).await?;
    let mut removed = 0;
    for blob in stale {
        // Under the repository lock, no commit can be adopting this upload meanwhile.
        let _guard = store.lock_repo(&blob.did).await;
        let Some(temp_key) = store.delete_temporary_blob(&blob.did, &blob.cid).await? else {
            continue;
        };
        removed += 1;
        if !temp_key.is_empty()
            && let Err(e) = state.writer().blobs().delete_temp(&temp_key).await
        {
            tracing::warn!(did = %blob.did, cid = %blob.cid, error = %e, "deleting a stale upload's file");
        }
    }
    Ok(removed)
}

/// Runs every job once; failures are logged, not returned.
pub async fn run_once(state: &AppState, now: DateTime<Utc>) -> Round {
    fn logged(name: &str, result: Result<usize, StoreError>) -> usize {
        result.unwrap_or_else(|e| {
            tracing::warn!(job = name, error = %e, "background job failed");
            0
        })
    }
    let config = state.config();
    let round = Round {
        accounts_deleted: logged(
            "scheduled account deletion",
            delete_scheduled_accounts(state, now).await,
        ),
        uploads_removed: logged(
            "stale upload removal",
            remove_stale_uploads(state, now, config.blob_temp_ttl).await,
        ),
        tokens_removed: logged(
            "expired email code removal",
            state
                .store()
                .delete_email_tokens_before(before(now, email_tokens::TOKEN_TTL))
                .await,
        ),
        events_pruned: logged(
            "firehose event retention",
            crate::retention::prune_once(state.store(), config.repo_backfill_limit, now).await,
        ),
        quarantine_moves: logged(
            "blob quarantine moves",
            crate::service::blob::settle_quarantine(state, None).await,
        ),
    };
    if round != Round::default() {
        tracing::info!(?round, "background jobs");
    }
    round
}

/// Starts the scheduler: [`run_once`] now, then every `PDS_JOBS_INTERVAL_MS`.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config().jobs_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            run_once(&state, Utc::now()).await;
        }
    })
}
