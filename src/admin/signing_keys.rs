//! Signing keys on the primary: listing, rotation on a schedule that
//! outside verifiers survive, and retirement.
//!
//! A rotation publishes a new key at once and answers with the time it
//! will sign: `jwks_max_age` after every live replica serves it, so that
//! every JWKS copy a resource server may still hold (cached for the
//! `max-age` we send) has the key before a token names it. The primary's
//! key-schedule task (`advance_key_schedule`) then hands signing over, and
//! later drops the old key from the JWKS once no token it signed can be
//! live: `KEY_RETENTION_SECS` after it stopped signing, unless a live API
//! key was signed with it.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{Admin, AdminError, key_error};
use crate::applications::MAX_ACCESS_TOKEN_TTL;
use crate::keys::{KeyDir, KeyForm, KeyState, Schedule, StoredKey};
use crate::replication::fleet::{Fleet, LIVE_WITHIN_SECS};
use crate::verifier::LEEWAY_SECS;

/// How long a key that stopped signing stays in the JWKS: the longest
/// access-token lifetime, plus the verifiers' clock leeway.
pub const KEY_RETENTION_SECS: i64 = MAX_ACCESS_TOKEN_TTL as i64 + LEEWAY_SECS;
/// Added to `max-age` in the announced signing time: replicas serve a new
/// key within a second; this covers that and the JWKS's one-second clock.
const REPLICA_MARGIN_SECS: i64 = 2;
/// How often verify-only keys past their retention are checked again (the
/// check reads every API key record).
pub const RETIREMENT_CHECK_SECS: i64 = 300;

/// What `POST /admin/v1/keys/rotate` answers.
#[derive(Debug, Serialize)]
pub struct ScheduledRotation {
    pub kid: String,
    pub state: KeyState,
    pub published_at: DateTime<Utc>,
    pub signs_at: DateTime<Utc>,
}

/// One key as `GET /admin/v1/keys` shows it.
#[derive(Debug, Serialize)]
pub struct SigningKeyView {
    pub kid: String,
    pub state: KeyState,
    pub form: KeyForm,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    pub signs_at: Option<DateTime<Utc>>,
    pub signing_since: Option<DateTime<Utc>>,
    pub verify_only_since: Option<DateTime<Utc>>,
    /// When it leaves the JWKS (and stops verifying); `null` while it
    /// signs, and for a key kept by live API keys or without a recorded
    /// end of signing.
    pub leaves_jwks_at: Option<DateTime<Utc>>,
}

/// The primary's memory of a rotation in progress; rebuilt from the
/// schedule on disk after a restart.
#[derive(Default)]
pub(super) struct RotationWatch {
    loaded: bool,
    pending: Option<PendingRotation>,
    next_retirement_check: i64,
}

struct PendingRotation {
    kid: String,
    signs_at: DateTime<Utc>,
    /// The state version that carries the key to the replicas.
    version: u64,
    /// When every live replica was first seen to hold it.
    confirmed_at: Option<DateTime<Utc>>,
    /// Set when the rotation was found on disk after a restart.
    loaded_at: Option<DateTime<Utc>>,
}

impl Admin {
    fn key_dir(&self) -> Result<KeyDir, AdminError> {
        KeyDir::open(&self.keys_dir).map_err(key_error)
    }

    fn watch(&self) -> std::sync::MutexGuard<'_, RotationWatch> {
        self.rotation.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn max_age(&self) -> Duration {
        Duration::seconds(i64::try_from(self.jwks_max_age).unwrap_or(i64::MAX / 2))
    }

    /// Every signing key with its state and times.
    pub fn signing_keys(&self, now: DateTime<Utc>) -> Result<Vec<SigningKeyView>, AdminError> {
        // The scan of API key records first and without the lock (it can
        // be long, and holds only shrink: new API keys are signed by the
        // signing key); the directory under it, so that what is listed is
        // what the node signs with.
        let held = self.keys_held_by_api_keys(now)?;
        let (schedule, keys) = {
            let _writer = self.lock();
            let dir = self.key_dir()?;
            (dir.schedule(), dir.list().map_err(key_error)?)
        };
        Ok(keys
            .iter()
            .map(|key| {
                let times = schedule.times(&key.kid).cloned().unwrap_or_default();
                let state = schedule.state(key);
                let leaves_jwks_at = match (state, times.verify_only_since) {
                    (KeyState::VerifyOnly, Some(since)) if !held.holds(key) => retention_end(since),
                    _ => None,
                };
                SigningKeyView {
                    kid: key.kid.clone(),
                    state,
                    form: key.form,
                    created_at: key.created.into(),
                    published_at: times.published_at,
                    signs_at: times.signs_at.filter(|_| state == KeyState::Published),
                    signing_since: times.signing_since.filter(|_| state == KeyState::Signing),
                    verify_only_since: times
                        .verify_only_since
                        .filter(|_| state == KeyState::VerifyOnly),
                    leaves_jwks_at,
                }
            })
            .collect())
    }

    /// Publishes a new key now and schedules it to sign; answers at once.
    /// One rotation at a time: a second one while a key waits is a 409.
    pub fn rotate_signing_key(
        &self,
        fleet: &Fleet,
        now: DateTime<Utc>,
    ) -> Result<ScheduledRotation, AdminError> {
        let _writer = self.lock();
        let dir = self.key_dir()?;
        let mut schedule = dir.schedule();
        if let Some((kid, signs_at)) = schedule.pending(&dir.list().map_err(key_error)?) {
            return Err(AdminError::Conflict(format!(
                "key {kid} is published and starts signing at {}: one rotation at a time",
                signs_at.to_rfc3339()
            )));
        }
        let kid = dir.generate().map_err(key_error)?;
        let signs_at = now + self.max_age() + Duration::seconds(REPLICA_MARGIN_SECS);
        let times = schedule.entry(&kid);
        times.published_at = Some(now);
        times.signs_at = Some(signs_at);
        schedule.retain_present(&dir.list().map_err(key_error)?);
        if let Err(e) = dir.write_schedule(&schedule) {
            // Without its times the key would verify forever and never
            // sign: take it back.
            let _ = dir.retire(&kid);
            return Err(key_error(e));
        }
        // In the key set, so in the JWKS and the replicas' state: published.
        self.keys.replace(dir.load_or_init().map_err(key_error)?);
        let version = self.publish_keys(now)?;
        let mut watch = self.watch();
        watch.loaded = true;
        watch.pending = Some(PendingRotation {
            kid: kid.clone(),
            signs_at,
            version,
            // Without live replicas, every copy of the state has it now.
            confirmed_at: fleet.all_applied(version, now.timestamp()).then_some(now),
            loaded_at: None,
        });
        log::info!(
            "published signing key {kid}; it signs from {}",
            signs_at.to_rfc3339()
        );
        Ok(ScheduledRotation {
            kid,
            state: KeyState::Published,
            published_at: now,
            signs_at,
        })
    }

    /// The key-schedule step, run about every second on the primary:
    /// hands signing to a published key once it is due, and drops
    /// verify-only keys no live token can carry.
    pub fn advance_key_schedule(
        &self,
        fleet: &Fleet,
        now: DateTime<Utc>,
    ) -> Result<(), AdminError> {
        let due = self.due_rotation(fleet, now)?;
        if let Some(kid) = due {
            self.hand_over(&kid, now)?;
        }
        let check_retirement = {
            let mut watch = self.watch();
            let due = now.timestamp() >= watch.next_retirement_check;
            if due {
                watch.next_retirement_check = now.timestamp() + RETIREMENT_CHECK_SECS;
            }
            due
        };
        if check_retirement {
            self.retire_expired_keys(now)?;
        }
        Ok(())
    }

    /// The pending key, if it may sign now. Waits for every live replica
    /// to hold it, then for `max-age` after that if the announced time
    /// did not leave that much (and records the later time).
    fn due_rotation(
        &self,
        fleet: &Fleet,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, AdminError> {
        if !self.watch().loaded {
            self.load_pending(now)?;
        }
        let mut watch = self.watch();
        let Some(pending) = watch.pending.as_mut() else {
            return Ok(None);
        };
        // After a restart the fleet is known only once every live replica
        // has had time to ask again.
        let fleet_known = pending
            .loaded_at
            .is_none_or(|at| now.timestamp() - at.timestamp() > LIVE_WITHIN_SECS);
        if pending.confirmed_at.is_none()
            && fleet_known
            && fleet.all_applied(pending.version, now.timestamp())
        {
            pending.confirmed_at = Some(now);
            let earliest = now + self.max_age() + Duration::seconds(REPLICA_MARGIN_SECS);
            if earliest > pending.signs_at {
                pending.signs_at = earliest;
                let (kid, signs_at) = (pending.kid.clone(), earliest);
                drop(watch);
                self.postpone(&kid, signs_at)?;
                return Ok(None);
            }
        }
        Ok(
            (pending.confirmed_at.is_some() && now >= pending.signs_at)
                .then(|| pending.kid.clone()),
        )
    }

    /// After a restart: a key published but not yet signing is pending
    /// again, and waits for the replicas from the current version.
    fn load_pending(&self, now: DateTime<Utc>) -> Result<(), AdminError> {
        let dir = self.key_dir()?;
        let schedule = dir.schedule();
        let pending = schedule.pending(&dir.list().map_err(key_error)?);
        let mut watch = self.watch();
        if watch.loaded {
            return Ok(()); // a rotation got here first
        }
        watch.loaded = true;
        watch.pending = pending.map(|(kid, signs_at)| PendingRotation {
            kid,
            signs_at,
            version: self.directory.version(),
            confirmed_at: None,
            loaded_at: Some(now),
        });
        Ok(())
    }

    fn postpone(&self, kid: &str, signs_at: DateTime<Utc>) -> Result<(), AdminError> {
        let _writer = self.lock();
        let dir = self.key_dir()?;
        let mut schedule = dir.schedule();
        schedule.entry(kid).signs_at = Some(signs_at);
        dir.write_schedule(&schedule).map_err(key_error)?;
        log::warn!(
            "the replicas took long to learn key {kid}: it signs from {} instead",
            signs_at.to_rfc3339()
        );
        Ok(())
    }

    fn hand_over(&self, kid: &str, now: DateTime<Utc>) -> Result<(), AdminError> {
        let _writer = self.lock();
        let dir = self.key_dir()?;
        let result = dir.hand_over(kid, now);
        {
            let mut watch = self.watch();
            // Only this rotation's: another may have begun meanwhile.
            if watch.pending.as_ref().is_some_and(|p| p.kid == kid) {
                watch.pending = None;
            }
        }
        if let Err(e) = result {
            // Gone meanwhile (retired): nothing to sign with, nothing pending.
            return match key_error(e) {
                AdminError::NotFound(_) => Ok(()),
                other => Err(other),
            };
        }
        self.keys.replace(dir.load_or_init().map_err(key_error)?);
        self.publish_keys(now)?;
        log::info!("rotated the signing key; now signing with {kid}");
        Ok(())
    }

    /// Drops each verify-only key that stopped signing over
    /// `KEY_RETENTION_SECS` ago and that no live API key was signed with.
    fn retire_expired_keys(&self, now: DateTime<Utc>) -> Result<(), AdminError> {
        let dir = self.key_dir()?;
        if expired_keys(&dir.list().map_err(key_error)?, &dir.schedule(), now)
            .next()
            .is_none()
        {
            return Ok(());
        }
        // The long scan outside the lock: holds only shrink meanwhile.
        let held = self.keys_held_by_api_keys(now)?;
        let _writer = self.lock();
        let schedule = dir.schedule();
        let keys = dir.list().map_err(key_error)?;
        let mut retired = Vec::new();
        let mut failed = None;
        for key in expired_keys(&keys, &schedule, now) {
            if !held.holds(key) && !retired.contains(&key.kid) {
                match dir.retire(&key.kid) {
                    Ok(()) => retired.push(key.kid.clone()),
                    Err(e) => failed = Some(key_error(e)),
                }
            }
        }
        if !retired.is_empty() || failed.is_some() {
            // Whatever left the disk leaves memory and the replicas too.
            self.keys.replace(dir.load_or_init().map_err(key_error)?);
            self.publish_keys(now)?;
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if !retired.is_empty() {
            log::info!(
                "dropped verify-only keys {} from the JWKS: no live token can carry them",
                retired.join(", ")
            );
        }
        Ok(())
    }

    /// The signing keys live API keys may have been signed with, in one
    /// pass over the records.
    fn keys_held_by_api_keys(&self, now: DateTime<Utc>) -> Result<HeldKeys, AdminError> {
        let snapshot = self.directory.snapshot();
        let mut held = HeldKeys::default();
        self.store.api_keys.scan(|record| {
            let live = record.revoked_at.is_none()
                && record.expires_at.is_none_or(|exp| exp > now)
                && snapshot
                    .application(&record.client_id)
                    .is_some_and(|app| record.created_at.timestamp() >= app.not_before);
            if !live {
                return;
            }
            match &record.kid {
                Some(kid) => {
                    held.kids.insert(kid.clone());
                }
                None => held.unnamed = true,
            }
        })?;
        Ok(held)
    }

    /// Retires a key on every node: its file goes, the key set and the
    /// JWKS lose it, and replicas drop it with the state they are sent, so
    /// that whatever it signed stops verifying everywhere. Retiring the
    /// published key calls its rotation off.
    pub fn retire_signing_key(&self, kid: &str, now: DateTime<Utc>) -> Result<(), AdminError> {
        let _writer = self.lock();
        let dir = self.key_dir()?;
        let result = dir.retire(kid);
        if result.is_err() {
            // Some copies may be gone already: memory and replicas follow
            // the disk either way, so a key being retired is never left
            // trusted here while a retry finds nothing to retire.
            self.keys.replace(dir.load_or_init().map_err(key_error)?);
            self.publish_keys(now)?;
        }
        result.map_err(key_error)?;
        {
            let mut watch = self.watch();
            if watch.pending.as_ref().is_some_and(|p| p.kid == kid) {
                watch.pending = None;
            }
        }
        self.keys.replace(dir.load_or_init().map_err(key_error)?);
        self.publish_keys(now)?;
        log::warn!("retired signing key {kid}: what it signed no longer verifies");
        Ok(())
    }
}

/// What live API keys were signed with.
#[derive(Default)]
struct HeldKeys {
    kids: std::collections::HashSet<String>,
    /// A live API key minted before records named their key: any key may
    /// have signed it (file times are no evidence), so every key stays.
    unnamed: bool,
}

impl HeldKeys {
    fn holds(&self, key: &StoredKey) -> bool {
        self.unnamed || self.kids.contains(&key.kid)
    }
}

/// When a key that stopped signing at `since` leaves the JWKS.
fn retention_end(since: DateTime<Utc>) -> Option<DateTime<Utc>> {
    since.checked_add_signed(Duration::seconds(KEY_RETENTION_SECS))
}

/// Verify-only keys whose retention has passed.
fn expired_keys<'a>(
    keys: &'a [StoredKey],
    schedule: &'a Schedule,
    now: DateTime<Utc>,
) -> impl Iterator<Item = &'a StoredKey> {
    keys.iter().filter(move |key| {
        schedule.state(key) == KeyState::VerifyOnly
            && schedule
                .times(&key.kid)
                .and_then(|t| t.verify_only_since)
                .and_then(retention_end)
                .is_some_and(|end| now >= end)
    })
}
