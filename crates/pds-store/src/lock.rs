//! Per-account serialization of repository writes.
//!
//! A repository write reads the head, formats a commit with `atp_repo::format_commit` (async,
//! reading blocks) and then commits it. Two writes to one account must not interleave, or the
//! second would be formatted on a stale head. [`RepoLocks`] hands out one async mutex per DID;
//! the server holds the [`RepoGuard`] from before reading the head until the commit (and the
//! blob file moves that follow it) are done. Writes to different accounts do not wait for each
//! other.
//!
//! The lock is an optimisation and a courtesy, not the safety net: [`crate::Store::commit_repo`]
//! compares the stored root with the commit's `prev` inside its transaction and refuses a stale
//! commit ([`crate::StoreError::RootMoved`]) even without it. Without the lock, formatting can
//! also fail outright: a racing commit may already have deleted the old head's MST nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use atp_syntax::Did;
use tokio::sync::OwnedMutexGuard;

type Slots = HashMap<Did, Arc<tokio::sync::Mutex<()>>>;

/// One async mutex per account, created on demand and dropped when nobody holds or waits for it.
#[derive(Debug, Default)]
pub struct RepoLocks {
    slots: Arc<Mutex<Slots>>,
}

/// Holds an account's repository lock; released on drop.
#[derive(Debug)]
pub struct RepoGuard {
    did: Did,
    guard: Option<OwnedMutexGuard<()>>,
    slots: Arc<Mutex<Slots>>,
}

impl RepoLocks {
    /// A map with no locks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for and takes `did`'s lock.
    pub async fn lock(&self, did: &Did) -> RepoGuard {
        let mutex = {
            let mut slots = lock_slots(&self.slots);
            Arc::clone(slots.entry(did.clone()).or_default())
        };
        let guard = mutex.lock_owned().await;
        RepoGuard {
            did: did.clone(),
            guard: Some(guard),
            slots: Arc::clone(&self.slots),
        }
    }

    /// Number of accounts with a lock currently held or awaited.
    pub fn len(&self) -> usize {
        lock_slots(&self.slots).len()
    }

    /// Whether no lock is held or awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RepoGuard {
    /// The account whose lock this is.
    pub fn did(&self) -> &Did {
        &self.did
    }
}

impl Drop for RepoGuard {
    fn drop(&mut self) {
        // Release the mutex first (this drops the guard's own reference to it).
        drop(self.guard.take());
        let mut slots = lock_slots(&self.slots);
        // Every holder or waiter clones the Arc under this same map lock, so a count of one
        // (the map's own) means nobody can be using or about to use this mutex.
        if slots
            .get(&self.did)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            slots.remove(&self.did);
        }
    }
}

/// Locks the map; it stays consistent even if a holder panicked (plain inserts and removes).
fn lock_slots(slots: &Mutex<Slots>) -> MutexGuard<'_, Slots> {
    slots.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn did(s: &str) -> Did {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn serializes_one_account_and_cleans_up() {
        let locks = Arc::new(RepoLocks::new());
        let a = did("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa");
        let b = did("did:plc:bbbbbbbbbbbbbbbbbbbbbbbb");
        let held = locks.lock(&a).await;
        // Another account is not blocked.
        let other = tokio::time::timeout(Duration::from_secs(1), locks.lock(&b))
            .await
            .unwrap();
        drop(other);
        // The same account is.
        let waiter = {
            let locks = Arc::clone(&locks);
            let a = a.clone();
            tokio::spawn(async move { locks.lock(&a).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(held);
        let second = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.did(), &a);
        assert_eq!(locks.len(), 1);
        drop(second);
        assert!(locks.is_empty());
    }
}
