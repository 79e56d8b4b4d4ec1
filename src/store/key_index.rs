//! The indexes beside the API key records, so that neither a listing nor
//! housekeeping reads every record: a store can hold a million revoked
//! keys, and sled keeps much of what a full scan reads in memory (some
//! 60 MiB for a million records, whatever its cache capacity).
//!
//! * by application: `client_id` `\0` key id → nothing (listings);
//! * by expiry, live keys only: expiry (8 bytes, ordered) key id → nothing
//!   (the `api_keys_expiring` gauge, rebuilt from it at start).
//!
//! Entries are written in the transaction that writes the record (see
//! `Store::create_api_key` and `Store::commit`).
//!
//! A store from before the indexes is indexed once, when it is opened:
//! the expiry index from one scan of the records, and the applications
//! that already have keys are noted instead of given an entry per key
//! (writing a million entries in one session would cost sled gigabytes of
//! memory at once): their listings scan, everybody else's read the index.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{RecordOp, RecordWrite, StoreError, Table};
use crate::api_keys::ApiKeyRecord;

/// Where the indexing state is kept in the `meta` tree.
const STATE_KEY: &[u8] = b"api_key_index";

/// Whether the indexes are complete, and for whom they are not.
#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexState {
    /// Applications with keys from before the by-application index.
    scanned_clients: BTreeSet<String>,
}

pub struct KeyIndex {
    by_client: sled::Tree,
    by_expiry: sled::Tree,
    meta: sled::Tree,
}

impl KeyIndex {
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            by_client: db.open_tree("api_keys_by_client")?,
            by_expiry: db.open_tree("api_keys_by_expiry")?,
            meta: db.open_tree("meta")?,
        })
    }

    /// Indexes a store from before the indexes (one scan of `records`);
    /// returns how many records it read, `None` if the store was indexed.
    pub(super) fn ensure(
        &self,
        records: &Table<ApiKeyRecord>,
    ) -> Result<Option<usize>, StoreError> {
        if self.meta.get(STATE_KEY)?.is_some() {
            return Ok(None);
        }
        let mut state = IndexState::default();
        let mut expiring = sled::Batch::default();
        let mut read = 0;
        records.scan(|record| {
            read += 1;
            if !state.scanned_clients.contains(&record.client_id) {
                state.scanned_clients.insert(record.client_id.clone());
            }
            if let Some(key) = expiry_key(&record) {
                expiring.insert(key, &[]);
            }
        })?;
        self.by_expiry.apply_batch(expiring)?;
        let state = serde_json::to_vec(&state).map_err(StoreError::Encode)?;
        self.meta.insert(STATE_KEY, state)?;
        Ok(Some(read))
    }

    /// Forgets that the store is indexed, so that the next open indexes
    /// it again: for tools that write key records past the indexes.
    pub fn forget(&self) -> Result<(), StoreError> {
        self.meta.remove(STATE_KEY)?;
        self.by_expiry.clear()?;
        Ok(())
    }

    /// The entries a new key's record goes with.
    pub(super) fn entries_of(&self, record: &ApiKeyRecord) -> Vec<RecordWrite> {
        let mut writes = vec![put(&self.by_client, client_key(record))];
        if let Some(key) = expiry_key(record) {
            writes.push(put(&self.by_expiry, key));
        }
        writes
    }

    /// What revoking the key of `record` removes: its expiry entry.
    pub fn revoked(&self, record: &ApiKeyRecord) -> Option<RecordWrite> {
        let key = expiry_key(&ApiKeyRecord {
            revoked_at: None,
            ..record.clone()
        })?;
        Some(RecordWrite {
            tree: self.by_expiry.clone(),
            key,
            op: RecordOp::Remove,
        })
    }

    /// The ids of `client_id`'s keys, or `None` if it has keys from before
    /// the index and only a scan of the records finds them all.
    pub fn ids_of(&self, client_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        if self.state()?.scanned_clients.contains(client_id) {
            return Ok(None);
        }
        let prefix = client_prefix(client_id);
        self.by_client
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, _) = entry?;
                Ok(String::from_utf8_lossy(&key[prefix.len()..]).into_owned())
            })
            .collect::<Result<_, StoreError>>()
            .map(Some)
    }

    /// The expiry (unix seconds) of every live key that expires after
    /// `now`; entries of keys that have expired are dropped on the way.
    pub fn expiries_after(&self, now: i64) -> Result<Vec<i64>, StoreError> {
        let mut expired = sled::Batch::default();
        let mut expiries = Vec::new();
        for entry in self.by_expiry.iter() {
            let (key, _) = entry?;
            let Some(exp) = expiry_of(&key) else {
                continue;
            };
            if exp > now {
                expiries.push(exp);
            } else {
                expired.remove(key);
            }
        }
        self.by_expiry.apply_batch(expired)?;
        Ok(expiries)
    }

    fn state(&self) -> Result<IndexState, StoreError> {
        match self.meta.get(STATE_KEY)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                key: String::from_utf8_lossy(STATE_KEY).into_owned(),
                source,
            }),
            None => Ok(IndexState::default()),
        }
    }
}

fn put(tree: &sled::Tree, key: Vec<u8>) -> RecordWrite {
    RecordWrite {
        tree: tree.clone(),
        key,
        op: RecordOp::Put(Vec::new()),
    }
}

/// Client ids never hold a NUL (`[a-z0-9._-]`), so one application's
/// prefix is never the start of another's.
fn client_prefix(client_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(client_id.len() + 1);
    key.extend_from_slice(client_id.as_bytes());
    key.push(0);
    key
}

fn client_key(record: &ApiKeyRecord) -> Vec<u8> {
    let mut key = client_prefix(&record.client_id);
    key.extend_from_slice(record.id.as_bytes());
    key
}

/// A live key's entry in the expiry index; `None` for a key that never
/// expires or is revoked. The expiry leads, with its sign bit flipped, so
/// that entries sort by time.
fn expiry_key(record: &ApiKeyRecord) -> Option<Vec<u8>> {
    if record.revoked_at.is_some() {
        return None;
    }
    let exp = record.expires_at?.timestamp();
    let mut key = ((exp as u64) ^ (1 << 63)).to_be_bytes().to_vec();
    key.extend_from_slice(record.id.as_bytes());
    Some(key)
}

fn expiry_of(key: &[u8]) -> Option<i64> {
    let ordered = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    Some((ordered ^ (1 << 63)) as i64)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::store::Store;

    fn record(id: &str, client_id: &str, expires_at: Option<i64>) -> ApiKeyRecord {
        let at = |secs| DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
        ApiKeyRecord {
            id: id.into(),
            client_id: client_id.into(),
            name: id.into(),
            created_at: at(1_000),
            expires_at: expires_at.map(at),
            revoked_at: None,
            kid: None,
        }
    }

    fn sorted(mut ids: Vec<String>) -> Vec<String> {
        ids.sort();
        ids
    }

    #[test]
    fn expiry_keys_order_as_times_do_and_read_back() {
        let times = [-3_000_000_000, -1, 0, 1, 1_700_000_000, 253_402_300_799];
        let keys: Vec<Vec<u8>> = times
            .iter()
            .map(|&t| expiry_key(&record("k", "c", Some(t))).unwrap())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (t, key) in times.iter().zip(&keys) {
            assert_eq!(expiry_of(key), Some(*t));
        }
    }

    #[test]
    fn a_minted_key_is_listed_and_counted_until_it_is_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let lasting = record("aaaa", "media", None);
        let expiring = record("bbbb", "media", Some(5_000));
        let other = record("cccc", "media-2", Some(6_000));
        for key in [&lasting, &expiring, &other] {
            store.create_api_key(key).unwrap();
        }
        let index = &store.key_index;
        assert_eq!(
            sorted(index.ids_of("media").unwrap().unwrap()),
            ["aaaa", "bbbb"]
        );
        // A client id that is another's prefix finds only its own keys.
        assert_eq!(index.ids_of("media-2").unwrap().unwrap(), ["cccc"]);
        assert_eq!(index.ids_of("medi").unwrap().unwrap(), Vec::<String>::new());
        assert_eq!(index.expiries_after(0).unwrap(), [5_000, 6_000]);

        let mut revoked = expiring.clone();
        revoked.revoked_at = Some(DateTime::from_timestamp(2_000, 0).unwrap());
        let writes = [store.api_keys.put_op("bbbb", &revoked).unwrap()]
            .into_iter()
            .chain(index.revoked(&revoked));
        store
            .commit(
                writes,
                crate::replication::Change::RevokeApiKey { id: "bbbb".into() },
            )
            .unwrap();
        assert_eq!(index.expiries_after(0).unwrap(), [6_000]);
        // Still listed: listings show revoked keys.
        assert_eq!(
            sorted(index.ids_of("media").unwrap().unwrap()),
            ["aaaa", "bbbb"]
        );
        // Expired entries no longer count, and are dropped.
        assert_eq!(index.expiries_after(6_000).unwrap(), Vec::<i64>::new());
        assert_eq!(index.expiries_after(0).unwrap(), Vec::<i64>::new());
    }

    #[test]
    fn a_store_from_before_the_indexes_is_indexed_once_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            // Written past the indexes, as an older build (or the seeding
            // tool) writes them.
            let old = [
                record("aaaa", "old", Some(7_000)),
                record("bbbb", "old", None),
                {
                    let mut revoked = record("cccc", "older", Some(8_000));
                    revoked.revoked_at = Some(DateTime::from_timestamp(1_500, 0).unwrap());
                    revoked
                },
            ];
            store
                .api_keys
                .put_many(old.iter().map(|r| (r.id.as_str(), r)))
                .unwrap();
            store.key_index.forget().unwrap();
        }
        let store = Store::reopen(dir.path()).unwrap();
        let index = &store.key_index;
        // Only the live key that expires.
        assert_eq!(index.expiries_after(0).unwrap(), [7_000]);
        // Applications with old keys are listed by a scan; new ones by the index.
        assert_eq!(index.ids_of("old").unwrap(), None);
        assert_eq!(index.ids_of("older").unwrap(), None);
        store.create_api_key(&record("dddd", "new", None)).unwrap();
        assert_eq!(index.ids_of("new").unwrap().unwrap(), ["dddd"]);
        // Indexed once: a second open reads nothing.
        assert_eq!(index.ensure(&store.api_keys).unwrap(), None);
    }
}
