//! Brute-force protection for credential checks. Failures are counted per
//! key (a client_id, or a client address) in a fixed window; past half the
//! limit each failure is answered more slowly, at the limit the key is
//! refused outright until its window ends.
//!
//! client_ids are public, so a client's key must never lock out its rightful
//! holder: callers check an address before the credentials and a client only
//! after a wrong secret (see `issuer::TokenIssuer::authenticate`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;

/// Upper bound on the memory the tracked keys take, in bytes (estimated
/// per entry), so that a spray of addresses or made-up client_ids cannot
/// grow it without limit.
const MAX_TRACKED_BYTES: u64 = 16 * 1024 * 1024;
/// What one entry costs besides its key's text: the cache's node, the
/// window behind its `Arc<Mutex<…>>`.
/// (Measured: 200k distinct keys cost about 40 MiB of RSS with 160 here,
/// so the estimate is what moka and the allocator really spend.)
const ENTRY_OVERHEAD: usize = 480;
const DELAY_STEP: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ThrottleKey {
    /// Only ever a well-formed client_id (see `ThrottleKey::client`).
    Client(String),
    Address(IpAddr),
}

impl ThrottleKey {
    /// The key for a presented client_id, if it is one: anything else (a
    /// 60 KB string in a Basic header, say) is counted by address alone.
    pub fn client(client_id: &str) -> Option<Self> {
        crate::applications::validate_client_id(client_id)
            .is_ok()
            .then(|| ThrottleKey::Client(client_id.to_string()))
    }

    fn weight(&self) -> u32 {
        let text = match self {
            ThrottleKey::Client(id) => id.len(),
            ThrottleKey::Address(_) => 0,
        };
        u32::try_from(text + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: i64,
    failures: u32,
}

pub struct Throttle {
    windows: Cache<ThrottleKey, Arc<Mutex<Window>>>,
    limit: u32,
    window_secs: i64,
    /// When the latest failure was counted. While no window can still be
    /// open, checks skip the cache: the common case, and the hot path of
    /// every verify and token request.
    last_failure: AtomicI64,
}

impl Throttle {
    pub fn new(limit: u32, window_secs: u64) -> Self {
        let window_secs = i64::try_from(window_secs).unwrap_or(i64::MAX).max(1);
        Self {
            windows: Cache::builder()
                .max_capacity(MAX_TRACKED_BYTES)
                .weigher(|key: &ThrottleKey, _| key.weight())
                .time_to_idle(Duration::from_secs(window_secs.unsigned_abs()))
                .build(),
            limit,
            window_secs,
            last_failure: AtomicI64::new(i64::MIN),
        }
    }

    /// No key can be locked out or hold failures at `now`: every window
    /// started at or before the latest failure, and that one has ended.
    fn quiet(&self, now: i64) -> bool {
        now >= self
            .last_failure
            .load(Ordering::Relaxed)
            .saturating_add(self.window_secs)
    }

    /// `Err(retry_after_secs)` if any of `keys` is locked out at `now`. The
    /// keys are only worked out when some window may still be open.
    pub fn check<K: AsRef<[ThrottleKey]>>(
        &self,
        now: i64,
        keys: impl FnOnce() -> K,
    ) -> Result<(), u64> {
        if self.quiet(now) {
            return Ok(());
        }
        let retry_after = keys()
            .as_ref()
            .iter()
            .filter_map(|key| self.windows.get(key))
            .filter_map(|window| {
                let window = *window.lock().unwrap_or_else(|e| e.into_inner());
                let ends = window.started + self.window_secs;
                (window.failures >= self.limit && now < ends).then(|| (ends - now).unsigned_abs())
            })
            .max();
        match retry_after {
            Some(secs) => Err(secs.max(1)),
            None => Ok(()),
        }
    }

    /// Counts a failure against every key and returns how long to hold the
    /// answer back.
    pub fn record_failure(&self, now: i64, keys: &[ThrottleKey]) -> Duration {
        self.last_failure.fetch_max(now, Ordering::Relaxed);
        let worst = keys
            .iter()
            .map(|key| {
                let window = self.windows.get_with(key.clone(), || {
                    Arc::new(Mutex::new(Window {
                        started: now,
                        failures: 0,
                    }))
                });
                let mut window = window.lock().unwrap_or_else(|e| e.into_inner());
                if now >= window.started + self.window_secs {
                    *window = Window {
                        started: now,
                        failures: 0,
                    };
                }
                window.failures = window.failures.saturating_add(1);
                window.failures
            })
            .max()
            .unwrap_or(0);
        let slow_from = self.limit / 2;
        if worst > slow_from {
            (DELAY_STEP * (worst - slow_from)).min(MAX_DELAY)
        } else {
            Duration::ZERO
        }
    }

    /// A successful authentication clears that key's failures. The common
    /// case, a key with no failures, costs a read rather than a cache write,
    /// and nothing at all while no failure is recent.
    pub fn record_success(&self, now: i64, key: impl FnOnce() -> Option<ThrottleKey>) {
        if self.quiet(now) {
            return;
        }
        let Some(key) = key() else {
            return;
        };
        if self.windows.contains_key(&key) {
            self.windows.invalidate(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_client_ids_become_keys() {
        assert_eq!(
            ThrottleKey::client("canister"),
            Some(ThrottleKey::Client("canister".into()))
        );
        assert_eq!(ThrottleKey::client(&"a".repeat(65)), None);
        assert_eq!(ThrottleKey::client("Not A Client"), None);
        assert_eq!(ThrottleKey::client(""), None);
    }

    /// A spray of distinct keys stays within the byte bound.
    #[test]
    fn memory_is_bounded_in_bytes() {
        let throttle = Throttle::new(10, 60);
        for i in 0..100_000u32 {
            let key = ThrottleKey::Client(format!("{i:0>64}"));
            throttle.record_failure(0, &[key]);
        }
        throttle.windows.run_pending_tasks();
        assert!(throttle.windows.weighted_size() <= MAX_TRACKED_BYTES);
        assert!(throttle.windows.entry_count() < 100_000);
    }

    #[test]
    fn locks_out_at_the_limit_until_the_window_ends() {
        let throttle = Throttle::new(4, 60);
        let key = [ThrottleKey::Client("c".into())];
        for _ in 0..3 {
            throttle.record_failure(100, &key);
            assert!(throttle.check(100, || &key).is_ok());
        }
        throttle.record_failure(100, &key);
        assert_eq!(throttle.check(110, || &key), Err(50));
        assert!(throttle.check(160, || &key).is_ok());
    }

    #[test]
    fn slows_down_past_half_the_limit() {
        let throttle = Throttle::new(10, 60);
        let key = [ThrottleKey::Address("10.0.0.1".parse().unwrap())];
        let delays: Vec<Duration> = (0..7).map(|_| throttle.record_failure(0, &key)).collect();
        assert_eq!(delays[4], Duration::ZERO);
        assert_eq!(delays[5], DELAY_STEP);
        assert_eq!(delays[6], DELAY_STEP * 2);
    }

    #[test]
    fn success_clears_a_client_but_keys_are_independent() {
        let throttle = Throttle::new(2, 60);
        let client = ThrottleKey::Client("c".into());
        let address = ThrottleKey::Address("10.0.0.1".parse().unwrap());
        let both = [client.clone(), address.clone()];
        throttle.record_failure(0, &both);
        throttle.record_failure(0, &both);
        assert!(throttle.check(0, || std::slice::from_ref(&client)).is_err());
        throttle.record_success(0, || Some(client.clone()));
        assert!(throttle.check(0, || [client]).is_ok());
        assert!(throttle.check(0, || [address]).is_err());
    }

    #[test]
    fn the_quiet_fast_path_never_hides_an_open_lockout() {
        let throttle = Throttle::new(2, 60);
        let locked = [ThrottleKey::Client("a".into())];
        let other = [ThrottleKey::Client("b".into())];
        assert!(throttle.check(0, || &locked).is_ok());
        throttle.record_failure(0, &locked);
        throttle.record_failure(0, &locked);
        // Failures of other keys, earlier or later, keep the check honest.
        throttle.record_failure(30, &other);
        assert_eq!(throttle.check(59, || &locked), Err(1));
        assert!(throttle.check(60, || &locked).is_ok());
        // A lockout reached again after a quiet spell is seen at once.
        throttle.record_failure(500, &locked);
        throttle.record_failure(500, &locked);
        assert_eq!(throttle.check(500, || &locked), Err(60));
        throttle.record_success(501, || Some(locked[0].clone()));
        assert!(throttle.check(501, || &locked).is_ok());
    }
}
