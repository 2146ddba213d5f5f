//! A bounded cache with a TTL and stale-while-revalidate, over an injectable clock.
//!
//! An entry younger than [`CachePolicy::fresh_for`] is served as is. Until
//! [`CachePolicy::max_stale_age`] it is still served, but the first lookup in that window starts
//! one background refresh. A refresh that fails keeps the stale entry (the network being down
//! must not make known identities unresolvable); only a definite "not found" drops it. Older
//! entries are gone. When full, expired entries are dropped first, then the oldest one.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::handle::ResolveError;

/// A monotonic clock: time elapsed since an arbitrary origin.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Duration;
}

/// The real clock ([`Instant`] since construction).
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Mutex<Duration>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now.saturating_add(by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How long answers are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Age until which an entry is served without a refresh.
    pub fresh_for: Duration,
    /// Age after which an entry is dropped; in between it is served while a refresh runs.
    pub max_stale_age: Duration,
    /// Most entries kept (per cache: DID documents and handles each have one); 0 disables it.
    pub max_entries: usize,
}

impl Default for CachePolicy {
    /// Fresh for 1 hour, served stale up to 24 hours, 10 000 entries.
    fn default() -> CachePolicy {
        CachePolicy {
            fresh_for: Duration::from_secs(3600),
            max_stale_age: Duration::from_secs(24 * 3600),
            max_entries: 10_000,
        }
    }
}

impl CachePolicy {
    /// No caching at all.
    pub fn disabled() -> CachePolicy {
        CachePolicy {
            max_entries: 0,
            ..CachePolicy::default()
        }
    }
}

struct Entry<V> {
    value: V,
    fetched_at: Duration,
    refreshing: bool,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cached<V> {
    /// Young enough.
    Fresh(V),
    /// Too old to be fresh; `refresh` is true for the one caller that must start the refresh.
    Stale { value: V, refresh: bool },
    /// Absent or expired.
    Miss,
}

/// The cache itself.
pub(crate) struct SwrCache<K, V> {
    policy: CachePolicy,
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<K, Entry<V>>>,
}

impl<K, V> SwrCache<K, V>
where
    K: Clone + Eq + Hash + Send + 'static,
    V: Clone + Send + 'static,
{
    pub(crate) fn new(policy: CachePolicy, clock: Arc<dyn Clock>) -> SwrCache<K, V> {
        SwrCache {
            policy,
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<K, Entry<V>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lookup(&self, key: &K) -> Cached<V> {
        let now = self.clock.now();
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(key) else {
            return Cached::Miss;
        };
        let age = now.saturating_sub(entry.fetched_at);
        if age < self.policy.fresh_for {
            Cached::Fresh(entry.value.clone())
        } else if age < self.policy.max_stale_age {
            let refresh = !entry.refreshing;
            entry.refreshing = true;
            Cached::Stale {
                value: entry.value.clone(),
                refresh,
            }
        } else {
            entries.remove(key);
            Cached::Miss
        }
    }

    pub(crate) fn insert(&self, key: K, value: V) {
        if self.policy.max_entries == 0 {
            return;
        }
        let now = self.clock.now();
        let mut entries = self.entries();
        if !entries.contains_key(&key) && entries.len() >= self.policy.max_entries {
            let max_age = self.policy.max_stale_age;
            entries.retain(|_, e| now.saturating_sub(e.fetched_at) < max_age);
            if entries.len() >= self.policy.max_entries {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.fetched_at)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(
            key,
            Entry {
                value,
                fetched_at: now,
                refreshing: false,
            },
        );
    }

    pub(crate) fn remove(&self, key: &K) {
        self.entries().remove(key);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries().len()
    }

    /// Records the outcome of a fetch for `key`: a value replaces the entry, "not found" drops
    /// it, any other failure keeps the stale entry (and allows the next refresh).
    fn complete(&self, key: K, result: &Result<V, ResolveError>) {
        match result {
            Ok(value) => self.insert(key, value.clone()),
            Err(ResolveError::DidNotFound { .. } | ResolveError::HandleNotFound { .. }) => {
                self.remove(&key);
            }
            Err(_) => {
                if let Some(entry) = self.entries().get_mut(&key) {
                    entry.refreshing = false;
                }
            }
        }
    }

    /// The cached value, or the result of `fetch` (which is then cached). A stale value is
    /// returned at once while `fetch` runs in the background (on the current tokio runtime; inline
    /// when there is none, falling back to the stale value if it fails).
    pub(crate) async fn get_or_fetch<F, Fut>(
        self: &Arc<Self>,
        key: K,
        fetch: F,
    ) -> Result<V, ResolveError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, ResolveError>> + Send + 'static,
    {
        match self.lookup(&key) {
            Cached::Fresh(value)
            | Cached::Stale {
                value,
                refresh: false,
            } => Ok(value),
            Cached::Stale {
                value,
                refresh: true,
            } => {
                let refresh = fetch();
                let cache = Arc::clone(self);
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        runtime.spawn(async move {
                            let result = refresh.await;
                            cache.complete(key, &result);
                        });
                        Ok(value)
                    }
                    Err(_) => {
                        let result = refresh.await;
                        cache.complete(key, &result);
                        Ok(result.unwrap_or(value))
                    }
                }
            }
            Cached::Miss => {
                let result = fetch().await;
                if let Ok(value) = &result {
                    self.insert(key, value.clone());
                }
                result
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn cache(max_entries: usize) -> (Arc<ManualClock>, Arc<SwrCache<u32, String>>) {
        let clock = Arc::new(ManualClock::new());
        let policy = CachePolicy {
            max_entries,
            ..CachePolicy::default()
        };
        let cache = Arc::new(SwrCache::new(policy, Arc::clone(&clock) as Arc<dyn Clock>));
        (clock, cache)
    }

    #[test]
    fn fresh_then_stale_then_expired() {
        let (clock, cache) = cache(10);
        assert_eq!(cache.lookup(&1), Cached::Miss);
        cache.insert(1, "a".into());
        assert_eq!(cache.lookup(&1), Cached::Fresh("a".into()));
        clock.advance(HOUR - Duration::from_secs(1));
        assert_eq!(cache.lookup(&1), Cached::Fresh("a".into()));
        clock.advance(Duration::from_secs(1));
        // The first stale lookup starts the refresh, the next ones do not.
        assert_eq!(
            cache.lookup(&1),
            Cached::Stale {
                value: "a".into(),
                refresh: true
            }
        );
        assert_eq!(
            cache.lookup(&1),
            Cached::Stale {
                value: "a".into(),
                refresh: false
            }
        );
        clock.advance(23 * HOUR);
        assert_eq!(cache.lookup(&1), Cached::Miss);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn failed_refresh_keeps_the_stale_entry() {
        let (clock, cache) = cache(10);
        cache.insert(1, "a".into());
        clock.advance(2 * HOUR);
        assert!(matches!(
            cache.lookup(&1),
            Cached::Stale { refresh: true, .. }
        ));
        let failure = Err(ResolveError::Unavailable {
            reason: "down".into(),
        });
        cache.complete(1, &failure);
        // Still served, and the next lookup may try again.
        assert!(matches!(
            cache.lookup(&1),
            Cached::Stale { refresh: true, .. }
        ));
        let gone = Err(ResolveError::DidNotFound {
            did: "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap(),
        });
        cache.complete(1, &gone);
        assert_eq!(cache.lookup(&1), Cached::Miss);
    }

    #[test]
    fn bounded_in_size() {
        let (clock, cache) = cache(3);
        for k in 0..3 {
            cache.insert(k, k.to_string());
            clock.advance(Duration::from_secs(1));
        }
        cache.insert(3, "3".into());
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.lookup(&0), Cached::Miss, "oldest evicted");
        assert_eq!(cache.lookup(&3), Cached::Fresh("3".into()));
        // Replacing an existing key evicts nothing.
        cache.insert(3, "three".into());
        assert_eq!(cache.len(), 3);
        // Expired entries go first.
        clock.advance(25 * HOUR);
        cache.insert(4, "4".into());
        assert_eq!(cache.len(), 1);
        let (_, off) = self::cache(0);
        off.insert(1, "x".into());
        assert_eq!(off.len(), 0);
    }

    #[tokio::test]
    async fn stale_while_revalidate_runs_one_background_refresh() {
        let (clock, cache) = cache(10);
        let calls = Arc::new(AtomicUsize::new(0));
        let fetch = |value: &'static str| {
            let calls = Arc::clone(&calls);
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ResolveError>(value.to_owned())
            }
        };
        assert_eq!(cache.get_or_fetch(1, fetch("v1")).await.unwrap(), "v1");
        assert_eq!(cache.get_or_fetch(1, fetch("v2")).await.unwrap(), "v1");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "fresh: no fetch");
        clock.advance(2 * HOUR);
        // Stale: the old value comes back at once, the refresh runs in the background.
        assert_eq!(cache.get_or_fetch(1, fetch("v2")).await.unwrap(), "v1");
        for _ in 0..100 {
            if cache.lookup(&1) == Cached::Fresh("v2".into()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(cache.get_or_fetch(1, fetch("v3")).await.unwrap(), "v2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
