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
//!   revocations, key usage, the expiry gauge)

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
    #[error("{0}")]
    Internal(String),
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
    /// Expiry times of the live API keys that expire (unix seconds → how
    /// many), for the `api_keys_expiring` gauge: read from the store once,
    /// by the first housekeeping, then kept up by mints and revocations.
    expiries: Mutex<Option<std::collections::BTreeMap<i64, u32>>>,
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
            expiries: Mutex::new(None),
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
        record: Option<RecordWrite>,
        change: Change,
        now: DateTime<Utc>,
    ) -> Result<u64, AdminError> {
        let entry = self.store.commit(record, change)?;
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
        other => AdminError::Internal(other.to_string()),
    }
}

/// A random application generation: non-zero, and within JSON's exact
/// integers (53 bits) so that every client reads the claim unchanged.
fn new_generation() -> Result<u64, AdminError> {
    let bytes = random_bytes::<8>().map_err(|e| AdminError::Internal(e.to_string()))?;
    Ok((u64::from_le_bytes(bytes) & ((1 << 53) - 1)).max(1))
}

/// `prefix` and 16 lowercase hex digits.
fn generated_id(prefix: &str) -> Result<String, AdminError> {
    let bytes = random_bytes::<8>().map_err(|e| AdminError::Internal(e.to_string()))?;
    Ok(bytes.iter().fold(String::from(prefix), |mut id, b| {
        id.push_str(&format!("{b:02x}"));
        id
    }))
}
