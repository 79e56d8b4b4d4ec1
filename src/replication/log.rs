//! The primary's change log: every change to the replicated state, in
//! order, in sled (so it outlives restarts), each under its version and a
//! chain hash of everything before it.
//!
//! Versions count changes of one store: 1, 2, 3… The store's `epoch` (a
//! random id made when the store is) tells its versions from another
//! store's; the chain hash tells one history from another of the same
//! store (a restored backup that went on differently). A replica names
//! all three when it asks, and gets the changes after its version only
//! when all three agree; anything else is answered with a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::Change;
use crate::crypto::{b64url, random_id, sha256};

/// How many changes the log keeps: a replica further behind takes a
/// snapshot. At a few hundred bytes a change, some 20 MB of disk.
pub const LOG_KEEP: u64 = 50_000;
/// Compaction runs after this many appends.
const COMPACT_EVERY: u64 = 1_000;

const EPOCH_KEY: &[u8] = b"epoch";

/// One logged change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub version: u64,
    /// base64url of the first 16 bytes of SHA-256(previous hash ‖ change).
    pub hash: String,
    pub change: Change,
}

/// Where a history stands: the version reached and its chain hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub version: u64,
    pub hash: String,
}

/// The hash of the empty history.
pub fn origin_hash() -> String {
    b64url(&[0u8; 16])
}

/// The chain hash after `change` follows `previous`.
pub fn chain(previous: &str, change_json: &[u8]) -> String {
    let mut input = Vec::with_capacity(previous.len() + change_json.len());
    input.extend_from_slice(previous.as_bytes());
    input.extend_from_slice(change_json);
    b64url(&sha256(&input)[..16])
}

pub struct ChangeLog {
    tree: sled::Tree,
    epoch: String,
    last: std::sync::Mutex<Position>,
    appends: AtomicU64,
    keep: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("change log: {0}")]
    Sled(#[from] sled::Error),
    #[error("change log: unreadable entry {version}: {source}")]
    Corrupt {
        version: u64,
        source: serde_json::Error,
    },
    #[error("change log: {0}")]
    Other(String),
}

impl ChangeLog {
    /// Opens the log in `db`, making the store's epoch on first use.
    pub fn open(db: &sled::Db) -> Result<Self, LogError> {
        let tree = db.open_tree("changes")?;
        let meta = db.open_tree("replication")?;
        let epoch = match meta.get(EPOCH_KEY)? {
            Some(epoch) => String::from_utf8_lossy(&epoch).into_owned(),
            None => {
                let epoch = random_id().map_err(|e| LogError::Other(e.to_string()))?;
                meta.insert(EPOCH_KEY, epoch.as_bytes())?;
                db.flush()?;
                epoch
            }
        };
        let last = match tree.last()? {
            Some((_, value)) => {
                let entry = decode(&value)?;
                Position {
                    version: entry.version,
                    hash: entry.hash,
                }
            }
            None => Position {
                version: 0,
                hash: origin_hash(),
            },
        };
        Ok(Self {
            tree,
            epoch,
            last: std::sync::Mutex::new(last),
            appends: AtomicU64::new(0),
            keep: AtomicU64::new(LOG_KEEP),
        })
    }

    /// How many changes compaction keeps (`change_log_keep`).
    pub fn set_keep(&self, keep: u64) {
        self.keep.store(keep.max(1), Ordering::Relaxed);
    }

    pub fn keep(&self) -> u64 {
        self.keep.load(Ordering::Relaxed)
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// The last version and its hash.
    pub fn last(&self) -> Position {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The entry that would follow the log now, encoded for the tree.
    /// Callers write it (`Store::commit`) and then call `appended`; the
    /// admin lock keeps one writer at a time.
    pub fn next_entry(&self, change: Change) -> Result<(Entry, Vec<u8>), LogError> {
        let last = self.last();
        let change_json =
            serde_json::to_vec(&change).map_err(|e| LogError::Other(e.to_string()))?;
        let entry = Entry {
            version: last.version + 1,
            hash: chain(&last.hash, &change_json),
            change,
        };
        let bytes = serde_json::to_vec(&entry).map_err(|e| LogError::Other(e.to_string()))?;
        Ok((entry, bytes))
    }

    /// Records that `entry` is on disk; compacts now and then.
    pub fn appended(&self, entry: &Entry) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Position {
            version: entry.version,
            hash: entry.hash.clone(),
        };
        let keep = self.keep.load(Ordering::Relaxed);
        let every = COMPACT_EVERY.min(keep);
        if self.appends.fetch_add(1, Ordering::Relaxed) % every == every - 1
            && let Err(e) = self.compact(keep)
        {
            log::warn!("change log compaction failed: {e}");
        }
    }

    /// The hash of the history at `version`, if the log still has it.
    pub fn hash_at(&self, version: u64) -> Result<Option<String>, LogError> {
        if version == 0 {
            return Ok(Some(origin_hash()));
        }
        match self.tree.get(key(version))? {
            Some(value) => Ok(Some(decode(&value)?.hash)),
            None => Ok(None),
        }
    }

    /// Up to `limit` entries after `version`, in order.
    pub fn after(&self, version: u64, limit: usize) -> Result<Vec<Entry>, LogError> {
        self.after_within(version, limit, usize::MAX)
    }

    /// `after`, stopping once the entries taken encode to `max_bytes` or
    /// more (the first is always taken, whatever its size).
    pub fn after_within(
        &self,
        version: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, LogError> {
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for item in self
            .tree
            .range(key(version.saturating_add(1))..)
            .take(limit)
        {
            if bytes >= max_bytes {
                break;
            }
            let (_, value) = item?;
            bytes = bytes.saturating_add(value.len());
            entries.push(decode(&value)?);
        }
        Ok(entries)
    }

    /// Whether a replica at `position` of this log's epoch can continue
    /// with changes: its history is this one's, and the log still holds
    /// everything after it.
    pub fn continues(&self, position: &Position) -> Result<bool, LogError> {
        if position.version > self.last().version {
            return Ok(false);
        }
        Ok(
            self.hash_at(position.version)?.as_deref() == Some(position.hash.as_str())
                && (position.version == self.last().version
                    || self.tree.contains_key(key(position.version + 1))?),
        )
    }

    /// Whether every entry after `version` is still in the log.
    pub fn holds_after(&self, version: u64) -> Result<bool, LogError> {
        let last = self.last().version;
        Ok(version <= last && (version == last || self.tree.contains_key(key(version + 1))?))
    }

    /// Drops all but the last `keep` entries.
    pub fn compact(&self, keep: u64) -> Result<usize, LogError> {
        let last = self.last().version;
        let Some(cut) = last.checked_sub(keep) else {
            return Ok(0);
        };
        let mut removed = 0;
        for item in self.tree.range(..key(cut + 1)) {
            let (k, _) = item?;
            self.tree.remove(k)?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Big-endian, so that sled's key order is version order.
pub fn key(version: u64) -> [u8; 8] {
    version.to_be_bytes()
}

fn decode(value: &[u8]) -> Result<Entry, LogError> {
    serde_json::from_slice(value).map_err(|source| LogError::Corrupt { version: 0, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn revoke(n: u8) -> Change {
        Change::RevokeApiKey {
            id: b64url(&[n; 16]),
        }
    }

    #[test]
    fn versions_hashes_and_epoch_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (epoch, last) = {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.changes.last().version, 0);
            for n in 0..3 {
                store.commit(None, revoke(n)).unwrap();
            }
            (store.changes.epoch().to_string(), store.changes.last())
        };
        let store = Store::reopen(dir.path()).unwrap();
        assert_eq!(store.changes.epoch(), epoch);
        assert_eq!(store.changes.last(), last);
        assert_eq!(last.version, 3);
        let entry = store.commit(None, revoke(9)).unwrap();
        assert_eq!(
            entry.version, 4,
            "versions go on from the log, not the clock"
        );
        let other = Store::open(tempfile::tempdir().unwrap().path()).unwrap();
        assert_ne!(other.changes.epoch(), epoch, "each store its own epoch");
    }

    #[test]
    fn a_replica_continues_only_on_this_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let log = &store.changes;
        let origin = Position {
            version: 0,
            hash: origin_hash(),
        };
        assert!(log.continues(&origin).unwrap());
        let first = store.commit(None, revoke(1)).unwrap();
        store.commit(None, revoke(2)).unwrap();
        let at_first = Position {
            version: 1,
            hash: first.hash.clone(),
        };
        assert!(log.continues(&at_first).unwrap());
        let after: Vec<u64> = log
            .after(1, 10)
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(after, [2]);
        assert!(
            !log.continues(&Position {
                version: 1,
                hash: origin_hash()
            })
            .unwrap()
        );
        assert!(
            !log.continues(&Position {
                version: 3,
                hash: first.hash
            })
            .unwrap()
        );
        // The same changes in another order are another history.
        assert_ne!(
            chain(&origin_hash(), br#"{"a":1}"#),
            chain(&chain(&origin_hash(), br#"{"b":2}"#), br#"{"a":1}"#)
        );
    }

    #[test]
    fn compaction_keeps_the_tail_and_sends_older_replicas_to_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut entries = Vec::new();
        for n in 0..10 {
            entries.push(store.commit(None, revoke(n)).unwrap());
        }
        assert_eq!(store.changes.compact(4).unwrap(), 6);
        let kept: Vec<u64> = store
            .changes
            .after(0, 100)
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(kept, [7, 8, 9, 10]);
        let at = |e: &Entry| Position {
            version: e.version,
            hash: e.hash.clone(),
        };
        assert!(store.changes.continues(&at(&entries[6])).unwrap());
        assert!(!store.changes.continues(&at(&entries[2])).unwrap());
    }

    /// A refused write logs nothing: the log and the tables never disagree.
    #[test]
    fn a_refused_write_leaves_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let write = store.revoked_tokens.create_op("a", &1).unwrap();
        store.commit(Some(write), revoke(1)).unwrap();
        let again = store.revoked_tokens.create_op("a", &2).unwrap();
        assert!(matches!(
            store.commit(Some(again), revoke(2)),
            Err(crate::store::StoreError::AlreadyExists)
        ));
        let gone = store.revoked_tokens.delete_op("missing");
        assert!(matches!(
            store.commit(Some(gone), revoke(3)),
            Err(crate::store::StoreError::Missing)
        ));
        assert_eq!(store.changes.last().version, 1);
        assert_eq!(store.changes.after(0, 10).unwrap().len(), 1);
        assert_eq!(store.revoked_tokens.get("a").unwrap(), Some(1));
    }
}
