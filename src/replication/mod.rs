//! Replication: how verify replicas follow their primary's state.
//!
//! * `log`: the primary's change log (in sled): versions, the store's
//!   epoch, a chain hash per change, compaction.
//! * `snapshot`: the whole state as one document, streamed.
//! * `primary`: what `GET /internal/v1/state` answers: the changes after a
//!   replica's version, a snapshot, or nothing new (long-poll).
//! * `follower`: the replica's loop that asks and applies.
//! * `fleet`: which version each replica has applied (rotation waits on it).
//!
//! The protocol: a replica asks `?since=V&epoch=E&hash=H&wait=S`. If `E` is
//! the primary's epoch, `H` the chain hash of the primary's own history at
//! `V`, and the log still holds what follows `V`, the answer is the changes
//! after `V` (`X-Gatehouse-State-Kind: changes`), at most `MAX_CHANGES`
//! and about `MAX_CHANGE_BYTES` at a time; otherwise it is a snapshot (`snapshot`). Both carry the epoch,
//! version and hash they bring the replica to. With nothing new the primary
//! waits up to `S` seconds, then answers 304. A replica that asks without an
//! epoch (before 0.2) always gets a snapshot, in the document form it knows.
//!
//! API key scopes travel as `set_api_key_scopes` changes (and in a
//! snapshot's `api_key_scopes`). A replica that enforces them says so
//! (`&features=scopes`); while the state holds a scoped key, the primary
//! answers any other replica 409 `replica_outdated`, so an old replica
//! goes stale rather than accepting a scoped key everywhere. Upgrade
//! replicas before the primary.
//!
//! The other way, a replica reports the API key uses it noted
//! (`crate::key_usage`) every `REPORT_EVERY`: `POST /internal/v1/usage`
//! with the replica token and `{"uses":[{"id","at","from"}]}` (at most
//! `MAX_REPORT` a request), answered 204 once the primary has persisted
//! them; a failed report is kept and sent again with the next.

pub mod fleet;
pub mod follower;
pub mod log;
pub mod primary;
pub mod snapshot;

use serde::{Deserialize, Serialize};

use crate::applications::ApplicationRecord;
use crate::resources::Resource;

pub use snapshot::StateDocument;

/// Names the replica asking, so the primary knows what each has applied.
pub const REPLICA_ID_HEADER: &str = "x-gatehouse-replica";
/// The answer's kind: `changes` or `snapshot` (absent from old primaries:
/// a snapshot).
pub const KIND_HEADER: &str = "x-gatehouse-state-kind";
pub const EPOCH_HEADER: &str = "x-gatehouse-epoch";
pub const VERSION_HEADER: &str = "x-gatehouse-state-version";
pub const HASH_HEADER: &str = "x-gatehouse-state-hash";

/// The feature a replica names when it enforces API key scopes.
pub const FEATURE_SCOPES: &str = "scopes";

/// The longest a state request may wait for a change.
pub const MAX_WAIT_SECS: u64 = 30;
/// The most changes in one answer; a replica further behind asks again.
pub const MAX_CHANGES: usize = 5_000;
/// Roughly the most bytes of changes in one answer (records are bounded by
/// the admin API's body limit, yet 5,000 large ones would make an answer
/// of hundreds of MB).
pub const MAX_CHANGE_BYTES: usize = 1 << 20;

/// One change to the replicated state. Each is a whole value (a record put,
/// a removal, an added revocation, the whole key set), so replaying changes
/// over a state that already has some of them ends in the same state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    PutApplication {
        application: ApplicationRecord,
    },
    RemoveApplication {
        client_id: String,
    },
    PutResource {
        resource: Resource,
    },
    RemoveResource {
        id: String,
    },
    RevokeApiKey {
        id: String,
    },
    RevokeAccessToken {
        jti: String,
        exp: i64,
    },
    /// An API key's scopes, whole (no limits: the key is unscoped again).
    SetApiKeyScopes {
        id: String,
        scopes: crate::key_scopes::KeyScopes,
    },
    /// The key set changed: every key that verifies, and the signer.
    Keys {
        public_keys: Vec<(String, String)>,
        active_kid: Option<String>,
    },
}

/// The body of a `changes` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangesDocument {
    pub epoch: String,
    /// The version and hash the changes bring the replica to.
    pub version: u64,
    pub hash: String,
    pub changes: Vec<log::Entry>,
    pub issuer: String,
    pub jwks_max_age: u64,
}
