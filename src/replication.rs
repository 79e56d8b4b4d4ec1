//! What a primary hands its replicas: the whole in-memory state, versioned.
//! Replicas long-poll `GET /internal/v1/state?since=VERSION&wait=SECS`
//! and apply a document whole.
//!
//! The document carries applications with their secret digests (so a
//! replica holding the signing key can issue tokens), rules, revocations and
//! the public keys. Put TLS between primary and replicas.

use serde::{Deserialize, Serialize};

use crate::applications::ApplicationRecord;
use crate::crypto::b64url;
use crate::directory::Directory;
use crate::keys::KeySet;
use crate::resources::Resource;

/// Names the replica asking, so the primary knows what each has applied.
pub const REPLICA_ID_HEADER: &str = "x-gatehouse-replica";

/// The longest a state request may wait for a change.
pub const MAX_WAIT_SECS: u64 = 30;

#[derive(Debug, Serialize, Deserialize)]
pub struct StateDocument {
    pub version: u64,
    pub applications: Vec<ApplicationRecord>,
    pub resources: Vec<Resource>,
    /// Revoked API key ids.
    pub revoked_api_keys: Vec<String>,
    /// Revoked access tokens: (jti, exp).
    pub revoked_access_tokens: Vec<(String, i64)>,
    /// Every key that verifies: (kid, x).
    pub public_keys: Vec<(String, String)>,
    /// The primary's issuer, for replicas configured without one.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The key the primary signs with: replicas sign with it (if they hold
    /// it) or not at all. Absent from primaries before key retirement.
    #[serde(default)]
    pub active_kid: Option<String>,
    /// The JWKS `max-age` the primary's rotations wait for: replicas serve
    /// it, so that no cache they fill outlasts the wait.
    #[serde(default)]
    pub jwks_max_age: Option<u64>,
}

/// The current state, labelled with a version read before it, so that a
/// replica asking again from that version never misses a change.
pub fn export(
    directory: &Directory,
    keys: &KeySet,
    issuer: &str,
    jwks_max_age: u64,
) -> StateDocument {
    let version = directory.version();
    let snapshot = directory.snapshot();
    let (revoked_keys, revoked_tokens) = directory.revocations.export();
    let mut applications: Vec<ApplicationRecord> = snapshot
        .applications
        .values()
        .map(|a| ApplicationRecord::clone(a))
        .collect();
    applications.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    let mut resources: Vec<Resource> = snapshot
        .resources
        .values()
        .map(|r| Resource::clone(r))
        .collect();
    resources.sort_by(|a, b| a.id.cmp(&b.id));
    StateDocument {
        version,
        applications,
        resources,
        revoked_api_keys: revoked_keys.iter().map(|id| b64url(id)).collect(),
        revoked_access_tokens: revoked_tokens
            .iter()
            .map(|(jti, exp)| (b64url(jti), *exp))
            .collect(),
        public_keys: keys.public_keys(),
        issuer: Some(issuer.to_string()),
        active_kid: keys.signer().map(|s| s.kid.clone()),
        jwks_max_age: Some(jwks_max_age),
    }
}
