//! The durable store: sled, on the primary only. Every write is flushed to
//! disk before it returns, so whatever the service acknowledges survives a
//! `kill -9`. A write to the replicated state goes in one transaction with
//! its entry in the change log (`commit`), so the log never misses a
//! change the tables have, nor the other way round.
//!
//! * `revoked_ids`, `application_copy`: the compact copies beside sled a
//!   start loads instead of scanning it
//! * `copy_file`: the framing both copies share
//! * `key_index`: the API keys by application and by expiry, so that no
//!   listing or housekeeping reads every key record

pub mod application_copy;
mod copy_file;
pub mod key_index;
pub mod revoked_ids;

use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api_keys::ApiKeyRecord;
use crate::applications::ApplicationRecord;
use crate::audit::AuditEntry;
use crate::crypto::SecretDigest;
use crate::replication::Change;
use crate::replication::log::{self as change_log, ChangeLog, Entry, LogError, Position};
use crate::resources::Resource;

const ADMIN_TOKEN_DIGEST: &str = "admin_token_digest";
const STORE_CACHE_BYTES: u64 = 16 * 1024 * 1024;

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
    #[error("no such record")]
    Missing,
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A record write that goes with a logged change.
pub struct RecordWrite {
    tree: sled::Tree,
    key: Vec<u8>,
    op: RecordOp,
}

enum RecordOp {
    /// Insert; `AlreadyExists` if the key is taken.
    Create(Vec<u8>),
    Put(Vec<u8>),
    /// Remove; `Missing` if there is nothing to remove.
    Delete,
    /// Remove whatever is there (an index entry).
    Remove,
}

/// One sled tree of JSON records of type `T`, keyed by their id.
pub struct Table<T> {
    db: sled::Db,
    tree: sled::Tree,
    records: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Table<T> {
    fn open(db: &sled::Db, name: &str) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.clone(),
            tree: db.open_tree(name)?,
            records: PhantomData,
        })
    }

    /// `create`, as part of a logged change (`Store::commit`).
    pub fn create_op(&self, key: &str, record: &T) -> Result<RecordWrite, StoreError> {
        Ok(self.op(key, RecordOp::Create(encode(record)?)))
    }

    /// `put`, as part of a logged change.
    pub fn put_op(&self, key: &str, record: &T) -> Result<RecordWrite, StoreError> {
        Ok(self.op(key, RecordOp::Put(encode(record)?)))
    }

    /// `delete`, as part of a logged change.
    pub fn delete_op(&self, key: &str) -> RecordWrite {
        self.op(key, RecordOp::Delete)
    }

    fn op(&self, key: &str, op: RecordOp) -> RecordWrite {
        RecordWrite {
            tree: self.tree.clone(),
            key: key.as_bytes().to_vec(),
            op,
        }
    }

    /// Inserts a new record; `AlreadyExists` if the key is taken.
    pub fn create(&self, key: &str, record: &T) -> Result<(), StoreError> {
        self.tree
            .compare_and_swap(key.as_bytes(), None::<&[u8]>, Some(encode(record)?))?
            .map_err(|_| StoreError::AlreadyExists)?;
        flush(&self.db)
    }

    pub fn put(&self, key: &str, record: &T) -> Result<(), StoreError> {
        self.tree.insert(key.as_bytes(), encode(record)?)?;
        flush(&self.db)
    }

    /// Writes many records in one batch, flushed once (bulk imports).
    pub fn put_many<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a str, &'a T)>,
    ) -> Result<(), StoreError>
    where
        T: 'a,
    {
        let mut batch = sled::Batch::default();
        for (key, record) in records {
            batch.insert(key.as_bytes(), encode(record)?);
        }
        self.tree.apply_batch(batch)?;
        flush(&self.db)
    }

    /// Whether there was a record to remove.
    pub fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let existed = self.tree.remove(key.as_bytes())?.is_some();
        flush(&self.db)?;
        Ok(existed)
    }

    pub fn get(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.tree
            .get(key.as_bytes())?
            .map(|value| decode(key.as_bytes(), &value))
            .transpose()
    }

    /// Up to `limit` records with keys before `before` (or from the end),
    /// last key first.
    pub fn page_back(&self, before: Option<&str>, limit: usize) -> Result<Vec<T>, StoreError> {
        let range = match before {
            Some(before) => self.tree.range(..before.as_bytes()),
            None => self.tree.range::<&[u8], _>(..),
        };
        range
            .rev()
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                decode(&key, &value)
            })
            .collect()
    }

    /// `page_back`, keeping only the records `keep` accepts: up to `limit`
    /// of them, and the key of the last record looked at (where a next
    /// page starts), which is `None` once the table is exhausted.
    /// Looks at no more than `scan_limit` records, so that a filter that
    /// matches nothing cannot read the whole table for one page.
    pub fn page_back_where(
        &self,
        before: Option<&str>,
        limit: usize,
        scan_limit: usize,
        mut keep: impl FnMut(&T) -> bool,
    ) -> Result<(Vec<T>, Option<String>), StoreError> {
        let range = match before {
            Some(before) => self.tree.range(..before.as_bytes()),
            None => self.tree.range::<&[u8], _>(..),
        };
        let mut kept = Vec::new();
        for (seen, item) in range.rev().enumerate() {
            let (key, value) = item?;
            let record = decode(&key, &value)?;
            if keep(&record) {
                kept.push(record);
            }
            if kept.len() == limit || seen + 1 == scan_limit {
                return Ok((kept, Some(String::from_utf8_lossy(&key).into_owned())));
            }
        }
        Ok((kept, None))
    }

    /// Calls `visit` with every record, one at a time: a large table is
    /// never held in memory whole.
    pub fn scan(&self, mut visit: impl FnMut(T)) -> Result<(), StoreError> {
        for item in self.tree.iter() {
            let (key, value) = item?;
            visit(decode(&key, &value)?);
        }
        Ok(())
    }

    /// `scan`, leaving out (with a warning) records that cannot be read.
    pub fn scan_readable(&self, mut visit: impl FnMut(T)) -> Result<(), StoreError> {
        for item in self.tree.iter() {
            let (key, value) = item?;
            match decode(&key, &value) {
                Ok(record) => visit(record),
                Err(e) => log::warn!("{e}; left out"),
            }
        }
        Ok(())
    }

    /// Calls `visit` with every key and record, one at a time.
    pub fn scan_entries(&self, mut visit: impl FnMut(String, T)) -> Result<(), StoreError> {
        for item in self.tree.iter() {
            let (key, value) = item?;
            visit(
                String::from_utf8_lossy(&key).into_owned(),
                decode(&key, &value)?,
            );
        }
        Ok(())
    }

    /// Every (key, record) pair.
    pub fn entries(&self) -> Result<Vec<(String, T)>, StoreError> {
        self.tree
            .iter()
            .map(|item| {
                let (key, value) = item?;
                Ok((
                    String::from_utf8_lossy(&key).into_owned(),
                    decode(&key, &value)?,
                ))
            })
            .collect()
    }

    pub fn all(&self) -> Result<Vec<T>, StoreError> {
        self.tree
            .iter()
            .map(|item| {
                let (key, value) = item?;
                decode(&key, &value)
            })
            .collect()
    }
}

/// The change-log versions of the last copies read or written.
#[derive(Default)]
struct CopiedAt {
    revoked_ids: AtomicU64,
    applications: AtomicU64,
}

pub struct Store {
    db: sled::Db,
    /// The data directory (sled's `db/` and the copies beside it).
    dir: std::path::PathBuf,
    copies: CopiedAt,
    pub applications: Table<ApplicationRecord>,
    pub resources: Table<Resource>,
    pub api_keys: Table<ApiKeyRecord>,
    /// The scopes of the API keys that have any (few, read whole at start).
    pub api_key_scopes: Table<crate::key_scopes::KeyScopes>,
    /// When each API key was last used, as persisted (see `key_usage`).
    pub api_key_usage: Table<crate::key_usage::Usage>,
    /// Revoked access tokens: `jti` → `exp`.
    pub revoked_tokens: Table<i64>,
    pub audit: Table<AuditEntry>,
    pub key_index: key_index::KeyIndex,
    meta: Table<SecretDigest>,
    /// Every change to the replicated state, in order.
    pub changes: ChangeLog,
}

impl Store {
    /// Opens a store a test has just dropped. sled's flusher thread lets
    /// go of the file lock a moment after the last handle is dropped (a
    /// new process never sees this), so a reopen waits up to 5 s for it.
    #[cfg(test)]
    pub fn reopen(dir: &Path) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Self::open(dir) {
                Err(e)
                    if std::time::Instant::now() < deadline && e.to_string().contains("lock") =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                result => return result,
            }
        }
    }

    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            // sled's default page cache is 1 GiB; what gatehouse keeps
            // there is read once at start and then served from memory.
            .cache_capacity(STORE_CACHE_BYTES)
            .open()?;
        let store = Self {
            applications: Table::open(&db, "applications")?,
            resources: Table::open(&db, "resources")?,
            api_keys: Table::open(&db, "api_keys")?,
            api_key_scopes: Table::open(&db, "api_key_scopes")?,
            api_key_usage: Table::open(&db, "api_key_usage")?,
            revoked_tokens: Table::open(&db, "revoked_tokens")?,
            audit: Table::open(&db, "audit")?,
            key_index: key_index::KeyIndex::open(&db)?,
            meta: Table::open(&db, "meta")?,
            changes: ChangeLog::open(&db)?,
            db,
            dir: dir.to_path_buf(),
            copies: CopiedAt::default(),
        };
        if let Some(read) = store.key_index.ensure(&store.api_keys)? {
            flush(&store.db)?;
            if read > 0 {
                log::info!(
                    "indexed the API keys of a store from before the index ({read} records, once)"
                );
            }
        }
        Ok(store)
    }

    /// Writes `writes` (a record and the index entries that go with it,
    /// or nothing) and appends `change` to the log in one transaction,
    /// flushed; returns the logged entry. Callers hold the admin lock, so
    /// entries are appended one at a time.
    pub fn commit(
        &self,
        writes: impl IntoIterator<Item = RecordWrite>,
        change: Change,
    ) -> Result<Entry, StoreError> {
        let (entry, bytes) = self.changes.next_entry(change)?;
        let log = RecordWrite {
            tree: self.changes.tree().clone(),
            key: change_log::key(entry.version).to_vec(),
            op: RecordOp::Put(bytes),
        };
        self.write_together(writes.into_iter().chain([log]).collect())?;
        // Committed: the log holds the entry whether or not the flush
        // works, so the next change must not reuse its version.
        self.changes.appended(&entry);
        flush(&self.db)?;
        Ok(entry)
    }

    /// Stores a new API key's record with its index entries, flushed;
    /// `AlreadyExists` if the id is taken. Not a logged change: replicas
    /// verify keys by their signature and learn only of revocations.
    pub fn create_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut writes = vec![self.api_keys.create_op(&record.id, record)?];
        writes.extend(self.key_index.entries_of(record));
        self.write_together(writes)?;
        flush(&self.db)
    }

    /// Applies `writes` in one sled transaction: all of them or none.
    fn write_together(&self, writes: Vec<RecordWrite>) -> Result<(), StoreError> {
        use sled::transaction::{TransactionError, Transactional, abort};
        // One view per write: no caller writes one tree twice.
        let trees: Vec<sled::Tree> = writes.iter().map(|write| write.tree.clone()).collect();
        debug_assert!(
            trees
                .iter()
                .enumerate()
                .all(|(i, tree)| trees[..i].iter().all(|t| t.name() != tree.name())),
            "one write per tree"
        );
        let result = trees[..].transaction(|views| {
            for (write, view) in writes.iter().zip(views) {
                let key = write.key.as_slice();
                match &write.op {
                    RecordOp::Create(value) => {
                        if view.get(key)?.is_some() {
                            return abort(StoreError::AlreadyExists);
                        }
                        view.insert(key, value.as_slice())?;
                    }
                    RecordOp::Put(value) => {
                        view.insert(key, value.as_slice())?;
                    }
                    RecordOp::Delete => {
                        if view.remove(key)?.is_none() {
                            return abort(StoreError::Missing);
                        }
                    }
                    RecordOp::Remove => {
                        view.remove(key)?;
                    }
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// The compact copy of the revoked API key ids, if it is this store's
    /// and the log continues from it.
    pub fn revoked_ids_copy(&self) -> Option<revoked_ids::RevokedIds> {
        let copy = revoked_ids::read(&self.dir)?;
        self.continues_from(&copy.epoch, &copy.at, &self.copies.revoked_ids)
            .then_some(copy)
    }

    /// Writes the compact copy: `ids` hold every revocation up to `at`.
    pub fn write_revoked_ids_copy(
        &self,
        at: &Position,
        ids: Vec<crate::revocation::CredentialId>,
    ) -> std::io::Result<()> {
        revoked_ids::write(&self.dir, self.changes.epoch(), at, ids)?;
        self.copies.revoked_ids.store(at.version, Ordering::Relaxed);
        Ok(())
    }

    /// The copy of the application records, if it is this store's and the
    /// log continues from it.
    pub fn application_copy(&self) -> Option<application_copy::Applications> {
        let copy = application_copy::read(&self.dir)?;
        self.continues_from(&copy.epoch, &copy.at, &self.copies.applications)
            .then_some(copy)
    }

    /// Writes the copy of the application records: they hold every change
    /// up to `at`.
    pub fn write_application_copy<'a>(
        &self,
        at: &Position,
        records: impl IntoIterator<Item = &'a ApplicationRecord>,
    ) -> std::io::Result<()> {
        application_copy::write(&self.dir, self.changes.epoch(), at, records)?;
        self.copies
            .applications
            .store(at.version, Ordering::Relaxed);
        Ok(())
    }

    /// The change-log versions of the copies last read or written.
    pub fn copied_at(&self) -> (u64, u64) {
        (
            self.copies.revoked_ids.load(Ordering::Relaxed),
            self.copies.applications.load(Ordering::Relaxed),
        )
    }

    /// The position `at` of a copy's history, as a change-log position.
    pub fn position_at(&self, version: u64) -> Result<Option<Position>, StoreError> {
        Ok(self
            .changes
            .hash_at(version)?
            .map(|hash| Position { version, hash }))
    }

    fn continues_from(&self, epoch: &str, at: &Position, copied_at: &AtomicU64) -> bool {
        let usable = epoch == self.changes.epoch() && self.changes.continues(at).unwrap_or(false);
        if usable {
            copied_at.store(at.version, Ordering::Relaxed);
        }
        usable
    }

    /// Forces everything onto disk (each write already did; this is for shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        flush(&self.db)
    }

    /// A number larger than any this store handed out before.
    pub fn next_sequence(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    pub fn admin_token_digest(&self) -> Result<Option<SecretDigest>, StoreError> {
        self.meta.get(ADMIN_TOKEN_DIGEST)
    }

    pub fn set_admin_token_digest(&self, digest: &SecretDigest) -> Result<(), StoreError> {
        self.meta.put(ADMIN_TOKEN_DIGEST, digest)
    }
}

fn flush(db: &sled::Db) -> Result<(), StoreError> {
    db.flush()?;
    Ok(())
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
