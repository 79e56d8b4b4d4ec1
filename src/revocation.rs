//! Revoked credentials, in memory on every node, checked on every verify.
//!
//! Built for size: ids are the 16 random bytes behind their base64url
//! text, so a million revoked ids take some 30 MB and a lookup is one hash
//! of 16 bytes. The sets live outside the copy-on-write directory
//! snapshot, so that a revocation never copies them.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::verifier::LEEWAY_SECS;

/// A credential id (API key id, access-token `jti`): 128 random bits.
pub type CredentialId = [u8; 16];

/// Parses the base64url text of a credential id; `None` if it is not one.
pub fn parse_id(text: &str) -> Option<CredentialId> {
    if text.len() != 22 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()
}

/// Expired token revocations are dropped at most this often.
const PURGE_INTERVAL_SECS: i64 = 60;

#[derive(Default)]
pub struct Revocations {
    api_keys: RwLock<HashSet<CredentialId>>,
    /// Revoked access tokens, by `jti`, with their `exp`: once a token has
    /// expired its revocation is no longer needed.
    access_tokens: RwLock<HashMap<CredentialId, i64>>,
    last_purge: AtomicI64,
}

impl Revocations {
    pub fn is_api_key_revoked(&self, id: &CredentialId) -> bool {
        self.api_keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    pub fn is_access_token_revoked(&self, jti: &CredentialId) -> bool {
        self.access_tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(jti)
    }

    pub fn revoke_api_key(&self, id: CredentialId) {
        self.api_keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
    }

    pub fn revoke_api_keys(&self, ids: impl IntoIterator<Item = CredentialId>) {
        self.api_keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(ids);
    }

    /// Revokes an access token until it expires anyway.
    pub fn revoke_access_token(&self, jti: CredentialId, exp: i64, now: i64) {
        self.purge_expired(now);
        self.access_tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(jti, exp);
    }

    /// Drops revocations of tokens that have expired (leeway included).
    pub fn purge_expired(&self, now: i64) {
        let last = self.last_purge.load(Ordering::Relaxed);
        if now - last < PURGE_INTERVAL_SECS
            || self
                .last_purge
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.access_tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, exp| now <= exp.saturating_add(LEEWAY_SECS));
    }

    /// Replaces every set at once (a replica taking its primary's state).
    pub fn replace(
        &self,
        api_keys: Vec<CredentialId>,
        access_tokens: Vec<(CredentialId, i64)>,
        now: i64,
    ) {
        let keys: HashSet<CredentialId> = api_keys.into_iter().collect();
        let tokens: HashMap<CredentialId, i64> = access_tokens
            .into_iter()
            .filter(|(_, exp)| now <= exp.saturating_add(LEEWAY_SECS))
            .collect();
        *self.api_keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        *self
            .access_tokens
            .write()
            .unwrap_or_else(|e| e.into_inner()) = tokens;
    }

    /// Everything held, for a replica's copy: (API key ids, (jti, exp)).
    pub fn export(&self) -> (Vec<CredentialId>, Vec<(CredentialId, i64)>) {
        let keys = self
            .api_keys
            .read()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let tokens = self
            .access_tokens
            .read()
            .map(|m| m.iter().map(|(jti, exp)| (*jti, *exp)).collect())
            .unwrap_or_default();
        (keys, tokens)
    }

    /// How many revocations are held: (API keys, access tokens).
    pub fn len(&self) -> (usize, usize) {
        (
            self.api_keys.read().map(|s| s.len()).unwrap_or_default(),
            self.access_tokens
                .read()
                .map(|s| s.len())
                .unwrap_or_default(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_text() {
        let id = [7u8; 16];
        let text = URL_SAFE_NO_PAD.encode(id);
        assert_eq!(parse_id(&text), Some(id));
        assert_eq!(parse_id("short"), None);
        assert_eq!(parse_id(&"!".repeat(22)), None);
    }

    #[test]
    fn token_revocations_end_when_the_token_would_have_expired() {
        let revocations = Revocations::default();
        revocations.revoke_access_token([1; 16], 1_000, 900);
        assert!(revocations.is_access_token_revoked(&[1; 16]));
        // Within the leeway the revocation is still needed.
        revocations.purge_expired(1_000 + LEEWAY_SECS);
        assert!(revocations.is_access_token_revoked(&[1; 16]));
        revocations.purge_expired(1_000 + LEEWAY_SECS + PURGE_INTERVAL_SECS + 1);
        assert!(!revocations.is_access_token_revoked(&[1; 16]));
    }

    #[test]
    fn a_million_revoked_ids_stay_small_and_fast() {
        let revocations = Revocations::default();
        revocations.revoke_api_keys((0u32..1_000_000).map(|i| {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_le_bytes());
            id
        }));
        assert_eq!(revocations.len().0, 1_000_000);
        let mut probe = [0u8; 16];
        probe[..4].copy_from_slice(&999_999u32.to_le_bytes());
        assert!(revocations.is_api_key_revoked(&probe));
        assert!(!revocations.is_api_key_revoked(&[0xff; 16]));
    }
}
