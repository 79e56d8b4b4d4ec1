//! When each key was published, signed and stopped signing, kept next to
//! the keys in `schedule.json`.
//!
//! A rotation publishes a key and names the time it will sign (`signs_at`):
//! outside verifiers cache the JWKS for its `max-age`, so a key must be in
//! every copy they hold before it signs. The previous key then verifies only,
//! until no token it signed can still be live. `keys/active` stays the one
//! word on which key signs; the schedule only adds times, and a key it does
//! not mention (from an earlier version) is simply without them.

use std::collections::BTreeMap;
use std::fs;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{KeyDir, KeyError, StoredKey};

const SCHEDULE_FILE: &str = "schedule.json";

/// What a key does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyState {
    /// In the JWKS, waiting for caches to hold it before it signs.
    Published,
    Signing,
    VerifyOnly,
}

/// The times of one key; each is unset until it happens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyTimes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
    /// When a published key is due to sign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signs_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_only_since: Option<DateTime<Utc>>,
}

/// Every key's times, by kid.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    #[serde(default)]
    pub keys: BTreeMap<String, KeyTimes>,
}

impl Schedule {
    pub fn times(&self, kid: &str) -> Option<&KeyTimes> {
        self.keys.get(kid)
    }

    pub fn entry(&mut self, kid: &str) -> &mut KeyTimes {
        self.keys.entry(kid.to_string()).or_default()
    }

    /// What `key` does: the active key signs; a key scheduled to sign that
    /// never has waits; everything else verifies only.
    pub fn state(&self, key: &StoredKey) -> KeyState {
        let times = self.times(&key.kid);
        if key.active {
            KeyState::Signing
        } else if times.is_some_and(|t| t.signs_at.is_some() && t.signing_since.is_none()) {
            KeyState::Published
        } else {
            KeyState::VerifyOnly
        }
    }

    /// The published key waiting to sign, if any, and when it is due.
    pub fn pending(&self, keys: &[StoredKey]) -> Option<(String, DateTime<Utc>)> {
        keys.iter()
            .filter(|k| self.state(k) == KeyState::Published)
            .find_map(|k| Some((k.kid.clone(), self.times(&k.kid)?.signs_at?)))
    }

    /// Forgets keys no longer on disk.
    pub fn retain_present(&mut self, keys: &[StoredKey]) {
        self.keys
            .retain(|kid, _| keys.iter().any(|k| &k.kid == kid));
    }
}

impl KeyDir {
    /// The schedule on disk; none yet is an empty one. One that cannot be
    /// read is taken as empty, loudly: keys without times are never retired
    /// on their own and no published key is pending, which only ever keeps
    /// keys longer (the next write replaces the damaged file).
    pub fn schedule(&self) -> Schedule {
        let path = self.path.join(SCHEDULE_FILE);
        let read = fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                serde_json::from_slice::<Schedule>(&bytes).map_err(|e| e.to_string())
            });
        match read {
            Ok(schedule) => schedule,
            Err(_) if !path.exists() => Schedule::default(),
            Err(e) => {
                log::error!("{}: {e}; taken as empty", path.display());
                Schedule::default()
            }
        }
    }

    /// Writes the schedule whole (temp file, rename, directory sync).
    pub fn write_schedule(&self, schedule: &Schedule) -> Result<(), KeyError> {
        let bytes = serde_json::to_vec_pretty(schedule).map_err(|e| KeyError::Io {
            path: self.path.join(SCHEDULE_FILE),
            source: std::io::Error::other(e),
        })?;
        self.replace_file(SCHEDULE_FILE, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::jwt_provider;

    #[test]
    fn states_follow_the_active_key_and_the_times() {
        jwt_provider::install();
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::open(dir.path()).unwrap();
        let first = keys.load_or_init().unwrap().signer().unwrap().kid.clone();
        assert_eq!(keys.schedule(), Schedule::default());
        let second = keys.generate().unwrap();
        let third = keys.generate().unwrap();
        let mut schedule = Schedule::default();
        let due = DateTime::from_timestamp(1_000, 0).unwrap();
        schedule.entry(&second).signs_at = Some(due);
        keys.write_schedule(&schedule).unwrap();
        let schedule = keys.schedule();
        let stored = keys.list().unwrap();
        let state = |kid: &str| schedule.state(stored.iter().find(|k| k.kid == kid).unwrap());
        assert_eq!(state(&first), KeyState::Signing);
        assert_eq!(state(&second), KeyState::Published);
        assert_eq!(state(&third), KeyState::VerifyOnly, "no times: verify-only");
        assert_eq!(schedule.pending(&stored), Some((second.clone(), due)));
    }

    /// Damaged: no times, so nothing is retired on its own account.
    #[test]
    fn a_damaged_schedule_is_taken_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::open(dir.path()).unwrap();
        fs::write(dir.path().join(SCHEDULE_FILE), "{not json").unwrap();
        assert_eq!(keys.schedule(), Schedule::default());
    }
}
