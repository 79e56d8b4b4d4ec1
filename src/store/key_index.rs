//! The indexes beside the API key records, so that neither a listing nor
//! housekeeping reads every record: a store can hold a million revoked
//! keys, and sled keeps much of what a full scan reads in memory (some
//! 60 MiB for a million records, whatever its cache capacity).
//!
//! * by application: `client_id` `\0` key id → nothing (listings);
//! * by expiry, live keys only: expiry (8 bytes, ordered) key id → nothing
//!   (the `api_keys_expiring` gauge, counted from it).
//!
//! Entries are written in the transaction that writes the record (see
//! `Store::create_api_key` and `Store::commit`).
//!
//! A store from before the indexes is indexed once, when it is opened:
//! the expiry index from one pass over the records, and the applications
//! that already have keys are noted as not indexed yet instead of given an
//! entry per key at once (writing a million entries in one sled session
//! costs gigabytes of memory). The first listing of such an application
//! passes over the records once more and writes its entries
//! (`index_client`); every later one reads the index.

use super::{RecordOp, RecordWrite, StoreError, Table};
use crate::api_keys::ApiKeyRecord;

/// The key in `state` that says the store is indexed.
const INDEXED: &[u8] = b"indexed";

pub struct KeyIndex {
    by_client: sled::Tree,
    by_expiry: sled::Tree,
    /// Applications with keys from before the by-application index.
    unindexed_clients: sled::Tree,
    state: sled::Tree,
}

impl KeyIndex {
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            by_client: db.open_tree("api_keys_by_client")?,
            by_expiry: db.open_tree("api_keys_by_expiry")?,
            unindexed_clients: db.open_tree("api_keys_unindexed_clients")?,
            state: db.open_tree("api_key_index")?,
        })
    }

    /// Indexes a store from before the indexes (one pass over `records`);
    /// returns how many records it read, `None` if the store was indexed.
    /// A record that cannot be read is left out, with a warning: it was
    /// unreadable to listings before, and must not stop the node.
    pub(super) fn ensure(
        &self,
        records: &Table<ApiKeyRecord>,
    ) -> Result<Option<usize>, StoreError> {
        if self.state.get(INDEXED)?.is_some() {
            return Ok(None);
        }
        let mut clients = sled::Batch::default();
        let mut expiring = sled::Batch::default();
        let mut read = 0;
        records.scan_readable(|record| {
            read += 1;
            clients.insert(record.client_id.as_bytes(), &[]);
            if let Some(key) = expiry_key(&record) {
                expiring.insert(key, &[]);
            }
        })?;
        self.unindexed_clients.apply_batch(clients)?;
        self.by_expiry.apply_batch(expiring)?;
        self.state.insert(INDEXED, &[])?;
        Ok(Some(read))
    }

    /// Forgets that the store is indexed, so that the next open indexes
    /// it again: for tools that write key records past the indexes.
    pub fn forget(&self) -> Result<(), StoreError> {
        self.state.remove(INDEXED)?;
        self.by_expiry.clear()?;
        Ok(())
    }

    /// The entries a new key's record goes with.
    pub(super) fn entries_of(&self, record: &ApiKeyRecord) -> Vec<RecordWrite> {
        let mut writes = vec![put(
            &self.by_client,
            client_key(&record.client_id, &record.id),
        )];
        if let Some(key) = expiry_key(record) {
            writes.push(put(&self.by_expiry, key));
        }
        writes
    }

    /// What revoking the key of `record` removes: its expiry entry.
    pub fn revoked(&self, record: &ApiKeyRecord) -> Option<RecordWrite> {
        let key = expiry_entry(record.expires_at?.timestamp(), &record.id);
        Some(RecordWrite {
            tree: self.by_expiry.clone(),
            key,
            op: RecordOp::Remove,
        })
    }

    /// The ids of `client_id`'s keys, or `None` if it has keys from before
    /// the index that only a pass over the records finds.
    pub fn ids_of(&self, client_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        if self.unindexed_clients.contains_key(client_id.as_bytes())? {
            return Ok(None);
        }
        let prefix = client_key(client_id, "");
        self.by_client
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, _) = entry?;
                Ok(String::from_utf8_lossy(&key[prefix.len()..]).into_owned())
            })
            .collect::<Result<_, StoreError>>()
            .map(Some)
    }

    /// Indexes the keys of an application that had keys from before the
    /// index, found by a pass over the records: its entries first, then it
    /// is marked indexed (a crash between leaves it to be found again).
    /// Keys minted meanwhile wrote their own entries.
    pub fn index_client<'a>(
        &self,
        client_id: &str,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), StoreError> {
        let mut entries = sled::Batch::default();
        for id in ids {
            entries.insert(client_key(client_id, id), &[]);
        }
        self.by_client.apply_batch(entries)?;
        self.unindexed_clients.remove(client_id.as_bytes())?;
        Ok(())
    }

    /// The expiry (unix seconds) of every live key that expires after
    /// `after` and no later than `until`: a range of the index, so a read
    /// costs the keys that expire then, never the whole table.
    pub fn expiries(&self, after: i64, until: i64) -> Result<Vec<i64>, StoreError> {
        let (from, to) = (after.saturating_add(1), until.saturating_add(1));
        self.by_expiry
            .range(ordered(from).to_vec()..ordered(to).to_vec())
            .map(|entry| {
                let (key, _) = entry?;
                Ok(expiry_of(&key))
            })
            .filter_map(Result::transpose)
            .collect()
    }

    /// Drops the entries of keys that expired before `before`: they no
    /// longer count. Housekeeping passes a day ago, so that a clock that
    /// jumps ahead for a while drops nothing still live.
    pub fn drop_expired(&self, before: i64) -> Result<(), StoreError> {
        let mut expired = sled::Batch::default();
        let mut any = false;
        for entry in self.by_expiry.range(..ordered(before).to_vec()) {
            expired.remove(entry?.0);
            any = true;
        }
        // sled logs even an empty batch: housekeeping runs every few seconds.
        if any {
            self.by_expiry.apply_batch(expired)?;
        }
        Ok(())
    }
}

fn put(tree: &sled::Tree, key: Vec<u8>) -> RecordWrite {
    RecordWrite {
        tree: tree.clone(),
        key,
        op: RecordOp::Put(Vec::new()),
    }
}

/// `client_id` NUL `id`. Client ids never hold a NUL (`[a-z0-9._-]`), so
/// one application's prefix is never the start of another's.
fn client_key(client_id: &str, id: &str) -> Vec<u8> {
    [client_id.as_bytes(), &[0], id.as_bytes()].concat()
}

/// A time as 8 bytes that sort as the times do (the sign bit flipped).
fn ordered(secs: i64) -> [u8; 8] {
    ((secs as u64) ^ (1 << 63)).to_be_bytes()
}

/// A live key's entry in the expiry index, its expiry first; `None` for a
/// key that never expires or is revoked.
fn expiry_key(record: &ApiKeyRecord) -> Option<Vec<u8>> {
    if record.revoked_at.is_some() {
        return None;
    }
    Some(expiry_entry(record.expires_at?.timestamp(), &record.id))
}

fn expiry_entry(exp: i64, id: &str) -> Vec<u8> {
    [&ordered(exp)[..], id.as_bytes()].concat()
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
        assert_eq!(index.expiries(0, i64::MAX).unwrap(), [5_000, 6_000]);
        // Both ends of a window: after `after`, up to `until` inclusive.
        assert_eq!(index.expiries(0, 5_000).unwrap(), [5_000]);
        assert_eq!(index.expiries(0, 4_999).unwrap(), Vec::<i64>::new());
        assert_eq!(index.expiries(5_000, 6_000).unwrap(), [6_000]);

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
        assert_eq!(index.expiries(0, i64::MAX).unwrap(), [6_000]);
        // Still listed: listings show revoked keys.
        assert_eq!(
            sorted(index.ids_of("media").unwrap().unwrap()),
            ["aaaa", "bbbb"]
        );
        // An expired key no longer counts; its entry goes only once it is
        // older than what housekeeping is given.
        assert_eq!(index.expiries(6_000, i64::MAX).unwrap(), Vec::<i64>::new());
        index.drop_expired(6_000).unwrap();
        assert_eq!(index.expiries(0, i64::MAX).unwrap(), [6_000]);
        index.drop_expired(6_001).unwrap();
        assert_eq!(index.expiries(0, i64::MAX).unwrap(), Vec::<i64>::new());
    }

    /// Writes records past the indexes, as an older build (or the
    /// seeding tool) does.
    fn write_past_the_index(store: &Store, records: &[ApiKeyRecord]) {
        store
            .api_keys
            .put_many(records.iter().map(|r| (r.id.as_str(), r)))
            .unwrap();
    }

    #[test]
    fn a_store_from_before_the_indexes_is_indexed_once_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut revoked = record("cccc", "older", Some(8_000));
            revoked.revoked_at = Some(DateTime::from_timestamp(1_500, 0).unwrap());
            write_past_the_index(
                &store,
                &[
                    record("aaaa", "old", Some(7_000)),
                    record("bbbb", "old", None),
                    revoked,
                ],
            );
            store.key_index.forget().unwrap();
        }
        let store = Store::reopen(dir.path()).unwrap();
        let index = &store.key_index;
        // Only the live key that expires.
        assert_eq!(index.expiries(0, i64::MAX).unwrap(), [7_000]);
        // Applications with old keys are listed by a pass over the records
        // until their first listing indexes them; new ones by the index.
        assert_eq!(index.ids_of("old").unwrap(), None);
        assert_eq!(index.ids_of("older").unwrap(), None);
        store.create_api_key(&record("dddd", "old", None)).unwrap();
        index.index_client("old", ["aaaa", "bbbb"]).unwrap();
        assert_eq!(
            sorted(index.ids_of("old").unwrap().unwrap()),
            ["aaaa", "bbbb", "dddd"]
        );
        assert_eq!(index.ids_of("older").unwrap(), None);

        // Indexed once: records written past the index now stay out of it.
        write_past_the_index(&store, &[record("eeee", "later", Some(9_000))]);
        drop(store);
        let store = Store::reopen(dir.path()).unwrap();
        assert_eq!(store.key_index.ids_of("later").unwrap(), Some(vec![]));
        assert_eq!(store.key_index.expiries(0, i64::MAX).unwrap(), [7_000]);
    }

    #[test]
    fn an_unreadable_record_is_left_out_and_the_store_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            write_past_the_index(&store, &[record("aaaa", "old", Some(7_000))]);
            store
                .api_keys
                .tree
                .insert("zzzz", b"{not json".as_slice())
                .unwrap();
            store.key_index.forget().unwrap();
        }
        let store = Store::reopen(dir.path()).unwrap();
        assert_eq!(store.key_index.expiries(0, i64::MAX).unwrap(), [7_000]);
        assert_eq!(store.key_index.ids_of("old").unwrap(), None);
    }
}
