//! Admin operations on the primary: every change is written to the store
//! (flushed) and then published to the in-memory directory, under one lock
//! so that concurrent admin writes are applied in a single order.
//!
//! One file per job, each an `impl Admin` block:
//! * `applications`: OAuth clients and their secrets
//! * `resources`: forward-auth rules
//! * `api_keys`: minting, listing and re-scoping API keys
//! * `revocation`: revoking a key, an access token, or all of an application's
//! * `signing_keys`: signing keys, their rotation and the fleet wait
//! * `audit`: the admin audit log
//! * `housekeeping`: the periodic work (copies beside sled, expired
//!   revocations, key usage, expired key-index entries) and the expiry gauge

mod api_keys;
mod applications;
mod audit;
mod housekeeping;
mod resources;
mod revocation;
mod signing_keys;

pub use api_keys::ApiKeyView;
pub use audit::{AUDIT_SCAN_LIMIT, AuditFilter};
pub use housekeeping::EXPIRY_WINDOWS;
pub use signing_keys::{
    KEY_RETENTION_SECS, RETIREMENT_CHECK_SECS, ScheduledRotation, SigningKeyView,
};

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::applications::FieldError;
use crate::crypto::random_bytes;
use crate::directory::Directory;
use crate::keys::{KeyError, KeyRing};
use crate::replication::Change;
use crate::store::{RecordWrite, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A failure of the node itself (randomness, key files, a copy
    /// beside the store, a worker thread): a 500 that says no more, logged
    /// with its cause. `context` says what was being done; the cause is
    /// the source, and also shown after it so that a log line of `{e}`
    /// keeps it. Causes are never secrets (no error here carries one).
    #[error("{context}: {source}")]
    Internal {
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{0}")]
    Unavailable(String),
}

pub struct Admin {
    store: Arc<Store>,
    directory: Arc<Directory>,
    keys: Arc<KeyRing>,
    keys_dir: PathBuf,
    issuer: String,
    /// How long outside verifiers may cache the JWKS: a new key waits this
    /// long (after every replica has it) before it signs.
    jwks_max_age: u64,
    rotation: Mutex<signing_keys::RotationWatch>,
    write: Mutex<()>,
}

impl AdminError {
    /// For `map_err`: the cause of an internal failure, with what was being
    /// done (`random_id().map_err(AdminError::internal("API key id"))`).
    pub fn internal<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
        context: &'static str,
    ) -> impl FnOnce(E) -> Self {
        move |e| AdminError::Internal {
            context,
            source: e.into(),
        }
    }
}

/// A client secret shown once, at creation or rotation.
pub struct NewSecret(pub String);

impl Admin {
    pub fn new(
        store: Arc<Store>,
        directory: Arc<Directory>,
        keys: Arc<KeyRing>,
        keys_dir: PathBuf,
        issuer: String,
        jwks_max_age: u64,
    ) -> Self {
        Self {
            store,
            directory,
            keys,
            keys_dir,
            issuer,
            jwks_max_age,
            rotation: Mutex::default(),
            write: Mutex::new(()),
        }
    }

    /// The change log replicas follow.
    pub fn change_log(&self) -> &crate::replication::log::ChangeLog {
        &self.store.changes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a change with its record (if any) and its log entry, flushed,
    /// then applies it here. Callers hold the admin lock.
    fn commit(
        &self,
        writes: impl IntoIterator<Item = RecordWrite>,
        change: Change,
        now: DateTime<Utc>,
    ) -> Result<u64, AdminError> {
        let entry = self.store.commit(writes, change)?;
        self.directory
            .apply(std::slice::from_ref(&entry), now.timestamp());
        Ok(entry.version)
    }

    /// Logs the current key set, for replicas. Callers hold the admin lock.
    fn publish_keys(&self, now: DateTime<Utc>) -> Result<u64, AdminError> {
        let keys = self.keys.snapshot();
        let change = Change::Keys {
            public_keys: keys.public_keys(),
            active_kid: keys.signer().map(|s| s.kid.clone()),
        };
        self.commit(None, change, now)
    }
}

/// API keys, revocation, signing keys and the audit log.
/// A store insert, with a taken key answered as the admin API's 409.
fn created(result: Result<u64, AdminError>, what: &str, key: &str) -> Result<(), AdminError> {
    match result {
        Err(AdminError::Store(StoreError::AlreadyExists)) => Err(AdminError::Conflict(format!(
            "{what} {key:?} already exists"
        ))),
        other => other.map(|_| ()),
    }
}

/// A store removal, with nothing to remove answered as the admin API's 404.
fn removed(result: Result<u64, AdminError>, what: &str, key: &str) -> Result<(), AdminError> {
    match result {
        Err(AdminError::Store(StoreError::Missing)) => {
            Err(AdminError::NotFound(format!("{what} {key:?}")))
        }
        other => other.map(|_| ()),
    }
}

fn key_error(e: KeyError) -> AdminError {
    match e {
        KeyError::UnknownKid(kid) => AdminError::NotFound(format!("signing key {kid:?}")),
        KeyError::Active(_) => AdminError::Conflict(e.to_string()),
        other => AdminError::internal("signing keys")(other),
    }
}

/// A random application generation: non-zero, and within JSON's exact
/// integers (53 bits) so that every client reads the claim unchanged.
fn new_generation() -> Result<u64, AdminError> {
    let bytes = random_bytes::<8>().map_err(AdminError::internal("application generation"))?;
    Ok((u64::from_le_bytes(bytes) & ((1 << 53) - 1)).max(1))
}

/// `prefix` and 16 lowercase hex digits.
fn generated_id(prefix: &str) -> Result<String, AdminError> {
    let bytes = random_bytes::<8>().map_err(AdminError::internal("generated id"))?;
    Ok(bytes.iter().fold(String::from(prefix), |mut id, b| {
        id.push_str(&format!("{b:02x}"));
        id
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::ApiError;
    use actix_web::ResponseError;

    /// An internal failure keeps its cause as its source (and in its log
    /// line), and the client still gets only a generic 500.
    #[test]
    fn internal_failures_keep_their_cause() {
        let e = AdminError::internal("application copy")(std::io::Error::other("disk full"));
        assert_eq!(e.to_string(), "application copy: disk full");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("disk full"));
        let answer = ApiError::from(e);
        assert_eq!(answer.status_code().as_u16(), 500);
        assert_eq!(answer.description(), "internal error; see the server log");
    }
}
