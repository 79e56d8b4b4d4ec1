//! The durable store: sled, on the primary only. Every write is flushed to
//! disk before it returns, so whatever the service acknowledges survives a
//! `kill -9`.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::applications::ApplicationRecord;
use crate::crypto::SecretDigest;

const APPLICATIONS: &str = "applications";
const META: &str = "meta";
const ADMIN_TOKEN_DIGEST: &str = "admin_token_digest";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: corrupt record {key:?}: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    #[error("store: cannot encode record: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("already exists")]
    AlreadyExists,
}

pub struct Store {
    db: sled::Db,
    applications: sled::Tree,
    meta: sled::Tree,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir.join("db")).open()?;
        Ok(Self {
            applications: db.open_tree(APPLICATIONS)?,
            meta: db.open_tree(META)?,
            db,
        })
    }

    /// Inserts a new application; `AlreadyExists` if its client_id is taken.
    pub fn create_application(&self, app: &ApplicationRecord) -> Result<(), StoreError> {
        let value = encode(app)?;
        self.applications
            .compare_and_swap(app.client_id.as_bytes(), None::<&[u8]>, Some(value))?
            .map_err(|_| StoreError::AlreadyExists)?;
        self.flush()
    }

    pub fn put_application(&self, app: &ApplicationRecord) -> Result<(), StoreError> {
        self.applications
            .insert(app.client_id.as_bytes(), encode(app)?)?;
        self.flush()
    }

    /// Whether an application was there to remove.
    pub fn delete_application(&self, client_id: &str) -> Result<bool, StoreError> {
        let existed = self.applications.remove(client_id.as_bytes())?.is_some();
        self.flush()?;
        Ok(existed)
    }

    pub fn applications(&self) -> Result<Vec<ApplicationRecord>, StoreError> {
        self.applications
            .iter()
            .map(|item| {
                let (key, value) = item?;
                decode(&key, &value)
            })
            .collect()
    }

    pub fn admin_token_digest(&self) -> Result<Option<SecretDigest>, StoreError> {
        self.meta
            .get(ADMIN_TOKEN_DIGEST)?
            .map(|value| decode(ADMIN_TOKEN_DIGEST.as_bytes(), &value))
            .transpose()
    }

    pub fn set_admin_token_digest(&self, digest: &SecretDigest) -> Result<(), StoreError> {
        self.meta.insert(ADMIN_TOKEN_DIGEST, encode(digest)?)?;
        self.flush()
    }

    /// Forces everything written so far onto disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(StoreError::Encode)
}

fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|source| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}
