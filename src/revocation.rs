//! Revoked credentials, in memory on every node, checked on every verify.
//!
//! Built for size: ids are the 16 random bytes behind their base64url
//! text. Revoked API keys live in a sorted array (16 bytes an id; 18.6 MB
//! for a million with its directory and filter, where a hash set took
//! 36 MB), searched through a directory of first bits and by
//! interpolation, plus a small hash set of recent revocations that is
//! merged into a new array once it fills, and a Bloom filter in front
//! that answers most lookups of ids not revoked; see [`ApiKeySet`]. The sets live outside the copy-on-write directory
//! snapshot, so that a revocation never copies them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;
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

/// Recent API key revocations are merged into the sorted array once there
/// are this many, or once there are more than 1/[`DELTA_SHARE`] of the
/// array's ids, whichever is fewer.
///
/// A merge copies the whole array and rebuilds its directory (some 16 ms
/// at a million ids, measured in release on a small VM), so the limit
/// amortises it: at a million ids, 8192 revocations between merges cost
/// some 2 µs each. The delta set then stays within
/// 16384 buckets of 17 bytes, some 280 KB, under 2% of the 16 MB array,
/// and a lookup in it costs about the same at any size up to that.
/// Revocations are admin actions, applied one at a time on the primary
/// and by replicas following its change log; startup and replica
/// snapshots come in bulk (`revoke_api_keys`, `replace`) and go straight
/// into the array.
const DELTA_LIMIT: usize = 8192;

/// Small arrays are merged into sooner: a merge into n ids costs O(n), so
/// merging every n/64 + 1 revocations costs each revocation the copy of
/// about 64 ids, and a node with fewer than 64 revoked keys keeps its
/// delta empty.
const DELTA_SHARE: usize = 64;

/// Interpolation steps in a crowded window before the search goes on by
/// halving: interpolation takes about log2(log2(n)) steps on uniform ids,
/// and the cap keeps the worst case, for ids that are anything but, at
/// `MAX_GUESSES + log2(n) + 1` probes.
const MAX_GUESSES: u32 = 6;

/// Windows this small are searched by halving: they span a cache line or two.
const SMALL_WINDOW: usize = 8;

/// At most 2^26 buckets in the directory (from 2^27 ids, 2 GB of them, on).
const MAX_DIRECTORY_BITS: u32 = 26;

/// An id as a number: big-endian, so that numbers order as bytes do.
#[inline]
fn word(id: &CredentialId) -> u128 {
    u128::from_be_bytes(*id)
}

/// An id's first 8 bytes as a number.
#[inline]
fn prefix(id: &CredentialId) -> u64 {
    (word(id) >> 64) as u64
}

/// An immutable, sorted, duplicate-free array of ids, and a directory
/// of where each range of first bits starts in it.
///
/// For uniform ids the directory's guess is what interpolation's first
/// guess would be, but exact to a few ids: a bucket averages under 4 ids
/// (a cache line), so a lookup takes two memory accesses where
/// interpolation alone, at a million ids, took six dependent ones on
/// average, each a cache miss (some 360 ns a lookup against 85). The directory costs 1 to 2 bytes an id.
/// Ids that are not uniform can crowd a bucket; a crowded bucket is
/// searched by interpolation and then by halving.
#[derive(Default)]
struct SortedIds {
    ids: Vec<CredentialId>,
    /// `starts[k]..starts[k + 1]`: the ids whose first `bits` bits are `k`.
    /// Empty when `ids` is.
    starts: Vec<u32>,
    bits: u32,
}

impl SortedIds {
    /// Sorts and deduplicates `ids`, and gives back any spare capacity.
    fn new(mut ids: Vec<CredentialId>) -> Self {
        ids.sort_unstable_by_key(word);
        ids.dedup();
        Self::from_sorted(ids)
    }

    /// `ids` must be sorted and duplicate-free.
    fn from_sorted(mut ids: Vec<CredentialId>) -> Self {
        ids.shrink_to_fit();
        let n = ids.len();
        if n == 0 || u32::try_from(n).is_err() {
            // More than 4G ids (64 GB) would need wider offsets: go without.
            return SortedIds {
                ids,
                starts: Vec::new(),
                bits: 0,
            };
        }
        // 2^bits buckets, n/4 < 2^bits <= n/2 (at least 2).
        let bits = (n.ilog2().saturating_sub(1)).clamp(1, MAX_DIRECTORY_BITS);
        let shift = 64 - bits;
        let mut starts = Vec::with_capacity((1 << bits) + 1);
        let mut i = 0;
        for k in 0..1u64 << bits {
            while ids.get(i).is_some_and(|id| prefix(id) >> shift < k) {
                i += 1;
            }
            starts.push(i as u32);
        }
        starts.push(n as u32);
        SortedIds { ids, starts, bits }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// Heap bytes, from capacities.
    fn heap_bytes(&self) -> usize {
        self.ids.capacity() * size_of::<CredentialId>() + self.starts.capacity() * size_of::<u32>()
    }

    /// The union of this array and `more` (sorted and duplicate-free).
    fn union(&self, more: &[CredentialId]) -> Self {
        let (a, b) = (self.ids.as_slice(), more);
        let mut ids = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
            let (x, y) = (word(x), word(y));
            ids.push(if x <= y { a[i] } else { b[j] });
            i += usize::from(x <= y);
            j += usize::from(y <= x);
        }
        ids.extend_from_slice(&a[i..]);
        ids.extend_from_slice(&b[j..]);
        Self::from_sorted(ids)
    }

    #[inline]
    fn contains(&self, id: &CredentialId) -> bool {
        self.search(id, &mut 0)
    }

    /// The directory, then interpolation search on the ids' first 8
    /// bytes while the window is large, then halving; `probes` counts
    /// the ids looked at.
    ///
    /// `ids[lo..hi]` is where `id` is if anywhere, and the first 8 bytes
    /// of every id there, and of `id`, lie within `lo_prefix..=hi_prefix`.
    /// Each step keeps that true whatever the ids are, so the guesses
    /// decide only the speed, never the answer.
    #[inline]
    fn search(&self, id: &CredentialId, probes: &mut u32) -> bool {
        let ids = self.ids.as_slice();
        let key = word(id);
        let key_prefix = prefix(id);
        let (mut lo, mut hi, mut lo_prefix, mut hi_prefix) = match self.bits {
            0 => (0, ids.len(), 0, u64::MAX),
            bits => {
                let shift = 64 - bits;
                let k = (key_prefix >> shift) as usize;
                let lo_prefix = (k as u64) << shift;
                (
                    self.starts[k] as usize,
                    self.starts[k + 1] as usize,
                    lo_prefix,
                    lo_prefix | (u64::MAX >> bits),
                )
            }
        };
        for _ in 0..MAX_GUESSES {
            let len = hi - lo;
            // A prefix at a bound (ids that share it) gives nothing to
            // interpolate on.
            if len <= SMALL_WINDOW || key_prefix == lo_prefix || key_prefix == hi_prefix {
                break;
            }
            let at = (key_prefix - lo_prefix) as f64 / (hi_prefix - lo_prefix) as f64;
            let pos = lo + ((at * len as f64) as usize).min(len - 1);
            *probes += 1;
            let probe = &ids[pos];
            match word(probe).cmp(&key) {
                std::cmp::Ordering::Less => (lo, lo_prefix) = (pos + 1, prefix(probe)),
                std::cmp::Ordering::Greater => (hi, hi_prefix) = (pos, prefix(probe)),
                std::cmp::Ordering::Equal => return true,
            }
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            *probes += 1;
            match word(&ids[mid]).cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }
}

/// Bits of filter an id, at most: for a blocked Bloom filter with
/// [`FILTER_PROBES`] bits an id, some 1% false positives (0.5% with the
/// headroom a filter is built with).
const FILTER_BITS_PER_ID: usize = 10;

/// Bits set (and tested) an id, all in one 512-bit block.
const FILTER_PROBES: u32 = 7;

/// 512 bits, one cache line.
#[derive(Default)]
#[repr(C, align(64))]
struct Block([AtomicU64; 8]);

/// A blocked Bloom filter over revoked ids: "no" is certain, and answers
/// most lookups (ids not revoked) from one cache line, with neither lock
/// nor search. Bits are only ever added; a filter is sized, when built,
/// for the ids it will hold until it is rebuilt.
#[derive(Default)]
struct Filter {
    blocks: Vec<Block>,
    /// How many ids it was sized for.
    sized_for: usize,
    seed: [u64; 2],
}

impl Filter {
    /// A filter for `ids` with room for `headroom` more and a quarter.
    fn of(ids: &[CredentialId], headroom: usize, seed: [u64; 2]) -> Self {
        let sized_for = (ids.len() + headroom).saturating_mul(5) / 4;
        let blocks = sized_for.saturating_mul(FILTER_BITS_PER_ID).div_ceil(512);
        let filter = Filter {
            blocks: (0..blocks).map(|_| Block::default()).collect(),
            sized_for,
            seed,
        };
        for id in ids {
            filter.insert(id);
        }
        filter
    }

    fn fits(&self, ids: usize) -> bool {
        ids <= self.sized_for
    }

    fn heap_bytes(&self) -> usize {
        self.blocks.capacity() * size_of::<Block>()
    }

    /// The block, and the bits to test in it, 9 bits for each.
    #[inline]
    fn locate(&self, id: &CredentialId) -> (&Block, u64) {
        fn mix(mut k: u64) -> u64 {
            // MurmurHash3's finaliser.
            k ^= k >> 33;
            k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
            k ^= k >> 33;
            k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            k ^ (k >> 33)
        }
        let w = word(id);
        let (hi, lo) = ((w >> 64) as u64 ^ self.seed[0], w as u64 ^ self.seed[1]);
        let h = mix(hi.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ lo);
        let block = ((u128::from(h) * self.blocks.len() as u128) >> 64) as usize;
        (&self.blocks[block], mix(h ^ 0x2545_f491_4f6c_dd1d))
    }

    fn insert(&self, id: &CredentialId) {
        if self.blocks.is_empty() {
            return;
        }
        let (block, mut bits) = self.locate(id);
        for _ in 0..FILTER_PROBES {
            let bit = (bits & 511) as usize;
            block.0[bit >> 6].fetch_or(1 << (bit & 63), Ordering::Release);
            bits >>= 9;
        }
    }

    /// `false` only for an id never inserted.
    #[inline]
    fn may_contain(&self, id: &CredentialId) -> bool {
        if self.blocks.is_empty() {
            return false;
        }
        let (block, mut bits) = self.locate(id);
        let mut all = true;
        for _ in 0..FILTER_PROBES {
            let bit = (bits & 511) as usize;
            all &= block.0[bit >> 6].load(Ordering::Acquire) & (1 << (bit & 63)) != 0;
            bits >>= 9;
        }
        all
    }
}

/// What readers load in one go: the array, and a filter that holds every
/// id of the array and of the delta.
#[derive(Default)]
struct Published {
    base: SortedIds,
    filter: Arc<Filter>,
}

/// Revoked API key ids: a sorted array that readers load without a lock
/// and writers replace whole, a small set of recent revocations (the
/// delta), and a filter in front of both.
///
/// A lookup asks the filter first, and is done there for nearly every id
/// that is not revoked. Otherwise it looks in the array, then in the
/// delta, and, if it found neither and a new array was published since
/// it loaded its own, in that. A merge publishes the new array first and
/// only then takes the merged ids out of the delta, so a reader that
/// misses an id in the delta finds a newer array that has it. A revocation
/// sets its bits in the filter before it goes into the delta, and a new
/// filter is built from the array it is published with, so the filter
/// never denies an id it should hold. Writers take `writer` for the whole
/// of a change, merges included (a merge is built there, outside every
/// lock a reader waits on). The delta never holds an id that the array
/// holds, outside of a merge.
///
/// Memory is the array's 16 bytes an id, its directory's 1 to 2, the
/// filter's 1 to 2 and the delta's table; while a merge or a replace
/// publishes, the old array lives on beside the new one until its last
/// reader lets go (for a million ids, some 36 MB for the 16 ms or so a
/// merge takes).
///
/// The filter's bits are atomics (Release to set, Acquire to read), so a
/// lookup takes no lock and writes no shared cache line (`ArcSwap` pins
/// the array in a slot of the reading thread's own); a lookup on another
/// thread sees a revocation once its stores are visible there, which in
/// practice is at once.
struct ApiKeySet {
    current: ArcSwap<Published>,
    /// Recent revocations, not yet in the array, as [`word`]s.
    delta: RwLock<HashSet<u128>>,
    /// The delta's size, written under its lock: readers skip the lock
    /// and the hash while it is 0.
    delta_len: AtomicUsize,
    writer: Mutex<()>,
    delta_limit: usize,
    /// Keys the filter's hash, so that which ids collide differs by node
    /// and run.
    seed: [u64; 2],
}

impl Default for ApiKeySet {
    fn default() -> Self {
        Self::with_delta_limit(DELTA_LIMIT)
    }
}

impl ApiKeySet {
    fn with_delta_limit(delta_limit: usize) -> Self {
        use std::hash::BuildHasher as _;
        let random = std::collections::hash_map::RandomState::new();
        ApiKeySet {
            current: ArcSwap::default(),
            delta: RwLock::default(),
            delta_len: AtomicUsize::new(0),
            writer: Mutex::new(()),
            delta_limit: delta_limit.max(1),
            seed: [random.hash_one(0u8), random.hash_one(1u8)],
        }
    }

    #[inline]
    fn contains(&self, id: &CredentialId) -> bool {
        let current = self.current.load();
        current.filter.may_contain(id) && self.contains_exactly(&current, id)
    }

    /// The array, then the delta, then the array again if a merge was
    /// published meanwhile: see the type's comment. An id the merge took
    /// out of the delta before the delta was read is in the array it
    /// published before that, and `current` (held, so its address is not
    /// reused) tells whether it is the one read. An Acquire load of a 0
    /// length follows the Release store of the merge that emptied it.
    fn contains_exactly(&self, current: &Arc<Published>, id: &CredentialId) -> bool {
        if current.base.contains(id) {
            return true;
        }
        if self.delta_len.load(Ordering::Acquire) != 0
            && self
                .delta
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&word(id))
        {
            return true;
        }
        let now = self.current.load();
        !Arc::ptr_eq(current, &now) && now.base.contains(id)
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a delta of `len` ids over `current` should be merged.
    fn full(&self, len: usize, current: &Published) -> bool {
        len >= self.delta_limit.min(current.base.len() / DELTA_SHARE + 1)
            || !current.filter.fits(current.base.len() + len)
    }

    fn insert(&self, id: CredentialId) {
        let _writer = self.lock_writer();
        let current = self.current.load_full();
        if current.base.contains(&id) {
            return;
        }
        let mut delta = self.delta.write().unwrap_or_else(|e| e.into_inner());
        if delta.contains(&word(&id)) {
            return;
        }
        if self.full(delta.len() + 1, &current) {
            drop(delta);
            self.merge(&current, vec![id]);
            return;
        }
        current.filter.insert(&id);
        delta.insert(word(&id));
        self.delta_len.store(delta.len(), Ordering::Release);
    }

    fn extend(&self, ids: impl IntoIterator<Item = CredentialId>) {
        let ids = ids.into_iter();
        let _writer = self.lock_writer();
        let current = self.current.load_full();
        let mut more: Vec<CredentialId> = ids.collect();
        let pending = self.delta_len.load(Ordering::Relaxed);
        if !self.full(pending + more.len(), &current) {
            // A few ids (a replica's, an admin's): into the delta.
            more.retain(|id| !current.base.contains(id));
            for id in &more {
                current.filter.insert(id);
            }
            let mut delta = self.delta.write().unwrap_or_else(|e| e.into_inner());
            delta.extend(more.iter().map(word));
            self.delta_len.store(delta.len(), Ordering::Release);
            return;
        }
        self.merge(&current, more);
    }

    /// Publishes the array ∪ delta ∪ `more` as the new array, then empties
    /// the delta of what was merged. Called with `writer` held.
    fn merge(&self, current: &Published, mut more: Vec<CredentialId>) {
        let merged: Vec<u128> = {
            let delta = self.delta.read().unwrap_or_else(|e| e.into_inner());
            delta.iter().copied().collect()
        };
        more.extend(merged.iter().map(|w| w.to_be_bytes()));
        let more = SortedIds::new(more);
        // The filter serves on while it has room for what comes until the
        // next merge; the new ids' bits go in before the array does.
        let filter = current
            .filter
            .fits(current.base.len() + more.len() + self.delta_limit)
            .then(|| {
                for id in &more.ids {
                    current.filter.insert(id);
                }
                Arc::clone(&current.filter)
            });
        let base = if current.base.len() == 0 {
            more
        } else {
            current.base.union(&more.ids)
        };
        let filter =
            filter.unwrap_or_else(|| Arc::new(Filter::of(&base.ids, self.delta_limit, self.seed)));
        self.current.store(Arc::new(Published { base, filter }));
        let mut delta = self.delta.write().unwrap_or_else(|e| e.into_inner());
        if delta.len() == merged.len() && merged.iter().all(|w| delta.contains(w)) {
            // As ever under `writer`. Clearing a full table also drops the
            // tombstones that removals would leave to grow it.
            delta.clear();
        } else {
            for w in &merged {
                delta.remove(w);
            }
        }
        self.delta_len.store(delta.len(), Ordering::Release);
    }

    /// Makes the set exactly `ids`. Ids in both the old and new set stay
    /// visible to readers throughout.
    fn replace(&self, ids: Vec<CredentialId>) {
        let base = SortedIds::new(ids);
        let filter = Arc::new(Filter::of(&base.ids, self.delta_limit, self.seed));
        let _writer = self.lock_writer();
        self.current.store(Arc::new(Published { base, filter }));
        let mut delta = self.delta.write().unwrap_or_else(|e| e.into_inner());
        delta.clear();
        self.delta_len.store(0, Ordering::Release);
    }

    /// Every id, sorted (the delta's among them).
    fn export(&self) -> Vec<CredentialId> {
        let _writer = self.lock_writer();
        let current = self.current.load_full();
        let delta = self.delta.read().unwrap_or_else(|e| e.into_inner());
        let mut ids = Vec::with_capacity(current.base.len() + delta.len());
        ids.extend_from_slice(&current.base.ids);
        ids.extend(delta.iter().map(|w| w.to_be_bytes()));
        if !delta.is_empty() {
            ids.sort_unstable_by_key(word);
        }
        ids
    }

    fn len(&self) -> usize {
        let _writer = self.lock_writer();
        self.current.load().base.len() + self.delta_len.load(Ordering::Relaxed)
    }

    /// Heap bytes held, from capacities: the array's and its directory's,
    /// the filter's, and the delta's table (buckets of an id and a control
    /// byte, plus a group's width).
    fn heap_bytes(&self) -> usize {
        let _writer = self.lock_writer();
        let current = self.current.load();
        let capacity = self
            .delta
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .capacity();
        let delta = match capacity {
            0 => 0,
            c => {
                let buckets = (c * 8 / 7).next_power_of_two();
                buckets * (size_of::<u128>() + 1) + 16
            }
        };
        current.base.heap_bytes() + current.filter.heap_bytes() + delta
    }
}

#[derive(Default)]
pub struct Revocations {
    api_keys: ApiKeySet,
    /// Revoked access tokens, by `jti`, with their `exp`: once a token has
    /// expired its revocation is no longer needed.
    access_tokens: RwLock<HashMap<CredentialId, i64>>,
    last_purge: AtomicI64,
}

impl Revocations {
    pub fn is_api_key_revoked(&self, id: &CredentialId) -> bool {
        self.api_keys.contains(id)
    }

    pub fn is_access_token_revoked(&self, jti: &CredentialId) -> bool {
        self.access_tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(jti)
    }

    pub fn revoke_api_key(&self, id: CredentialId) {
        self.api_keys.insert(id);
    }

    /// Revokes many API keys at once: a million at startup are sorted
    /// into the array in one go.
    pub fn revoke_api_keys(&self, ids: impl IntoIterator<Item = CredentialId>) {
        self.api_keys.extend(ids);
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
    /// A credential revoked both before and after stays revoked throughout.
    pub fn replace(
        &self,
        api_keys: Vec<CredentialId>,
        access_tokens: Vec<(CredentialId, i64)>,
        now: i64,
    ) {
        let tokens: HashMap<CredentialId, i64> = access_tokens
            .into_iter()
            .filter(|(_, exp)| now <= exp.saturating_add(LEEWAY_SECS))
            .collect();
        self.api_keys.replace(api_keys);
        *self
            .access_tokens
            .write()
            .unwrap_or_else(|e| e.into_inner()) = tokens;
    }

    /// Everything held, for a replica's copy: (API key ids, (jti, exp)).
    /// The API key ids come sorted.
    pub fn export(&self) -> (Vec<CredentialId>, Vec<(CredentialId, i64)>) {
        let keys = self.api_keys.export();
        // A poisoned lock still holds the set: exporting it empty would
        // hand replicas (and the revoked-id copy) nothing revoked.
        let tokens = self
            .access_tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(jti, exp)| (*jti, *exp))
            .collect();
        (keys, tokens)
    }

    /// How many revocations are held: (API keys, access tokens).
    pub fn len(&self) -> (usize, usize) {
        (
            self.api_keys.len(),
            self.access_tokens
                .read()
                .map(|s| s.len())
                .unwrap_or_default(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// Heap bytes the revoked API key ids take, counted from capacities
    /// (not lengths): 18.6 MB for a million (array, directory, filter).
    pub fn api_key_heap_bytes(&self) -> usize {
        self.api_keys.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// splitmix64: uniform ids without a dependency.
    fn random_ids(seed: u64, n: usize) -> Vec<CredentialId> {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        (0..n)
            .map(|_| ((u128::from(next()) << 64) | u128::from(next())).to_be_bytes())
            .collect()
    }

    fn id_of(w: u128) -> CredentialId {
        w.to_be_bytes()
    }

    fn with_delta_limit(limit: usize) -> Revocations {
        Revocations {
            api_keys: ApiKeySet::with_delta_limit(limit),
            ..Revocations::default()
        }
    }

    /// What must hold between any two operations.
    fn check_invariants(set: &ApiKeySet) {
        let current = set.current.load();
        let base = &current.base;
        assert!(base.ids.iter().all(|id| current.filter.may_contain(id)));
        assert!(base.ids.windows(2).all(|w| word(&w[0]) < word(&w[1])));
        let delta = set.delta.read().unwrap();
        assert_eq!(set.delta_len.load(Ordering::Relaxed), delta.len());
        assert!(delta.iter().all(|w| !base.contains(&w.to_be_bytes())));
        assert!(
            delta
                .iter()
                .all(|w| current.filter.may_contain(&w.to_be_bytes()))
        );
        assert!(
            !set.full(delta.len(), &current),
            "{} ids left unmerged",
            delta.len()
        );
    }

    /// The probes a search of the array takes.
    fn probes(set: &SortedIds, id: &CredentialId) -> (bool, u32) {
        let mut probes = 0;
        (set.search(id, &mut probes), probes)
    }

    /// Asks `set` about each `(word, whether it is in the set)`: every
    /// answer right, and none taking more probes than interpolation's
    /// guesses and then halving the whole set would.
    fn assert_answers_within_the_worst_case(
        set: &SortedIds,
        asks: impl IntoIterator<Item = (u128, bool)>,
    ) {
        let bound = MAX_GUESSES + usize::BITS - set.len().leading_zeros() + 1;
        let mut worst = 0;
        for (probe, want) in asks {
            let (found, probes) = probes(set, &id_of(probe));
            assert_eq!(found, want, "{probe:#x}");
            worst = worst.max(probes);
        }
        assert!(worst <= bound, "{worst} probes, bound {bound}");
    }

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
    fn an_empty_set_holds_nothing() {
        let revocations = Revocations::default();
        for id in [[0; 16], [0xff; 16], [0x80; 16]] {
            assert!(!revocations.is_api_key_revoked(&id));
        }
        assert_eq!(revocations.len(), (0, 0));
        assert!(revocations.is_empty());
        assert_eq!(revocations.export().0, Vec::<CredentialId>::new());
        assert_eq!(revocations.api_key_heap_bytes(), 0);
        revocations.revoke_api_keys([]);
        revocations.replace(vec![], vec![], 0);
        assert!(revocations.is_empty());
        assert!(!revocations.is_api_key_revoked(&[0; 16]));
    }

    #[test]
    fn the_extreme_ids_and_their_neighbours() {
        for limit in [1, 3, DELTA_LIMIT] {
            let revocations = with_delta_limit(limit);
            revocations.revoke_api_key([0; 16]);
            assert!(revocations.is_api_key_revoked(&[0; 16]));
            assert!(!revocations.is_api_key_revoked(&[0xff; 16]));
            revocations.revoke_api_key([0xff; 16]);
            for w in [0, u128::MAX] {
                assert!(revocations.is_api_key_revoked(&id_of(w)));
            }
            for w in [1, 2, u128::MAX - 1, u128::MAX / 2, 1 << 64, (1 << 64) - 1] {
                assert!(!revocations.is_api_key_revoked(&id_of(w)));
            }
            revocations.revoke_api_keys([id_of(1), id_of(u128::MAX - 1)]);
            for w in [0, 1, u128::MAX - 1, u128::MAX] {
                assert!(revocations.is_api_key_revoked(&id_of(w)));
            }
            assert!(!revocations.is_api_key_revoked(&id_of(2)));
            assert_eq!(revocations.len().0, 4);
            check_invariants(&revocations.api_keys);
        }
    }

    #[test]
    fn one_and_two_ids() {
        let one = SortedIds::new(vec![id_of(5)]);
        assert!(one.contains(&id_of(5)));
        assert!(!one.contains(&id_of(4)) && !one.contains(&id_of(6)));
        let two = SortedIds::new(vec![id_of(9), id_of(5)]);
        assert!(two.contains(&id_of(5)) && two.contains(&id_of(9)));
        for w in [0, 4, 6, 7, 8, 10, u128::MAX] {
            assert!(!two.contains(&id_of(w)));
        }
    }

    #[test]
    fn duplicates_count_once() {
        let revocations = with_delta_limit(4);
        revocations.revoke_api_keys([[1; 16], [1; 16], [2; 16], [1; 16]]);
        revocations.revoke_api_key([2; 16]);
        revocations.revoke_api_key([3; 16]);
        revocations.revoke_api_key([3; 16]);
        assert_eq!(revocations.len().0, 3);
        revocations.revoke_api_keys(vec![[4; 16]; 100]);
        assert_eq!(revocations.len().0, 4);
        assert_eq!(
            revocations.export().0,
            vec![[1; 16], [2; 16], [3; 16], [4; 16]]
        );
        revocations.replace(vec![[9; 16], [9; 16], [8; 16]], vec![], 0);
        assert_eq!(revocations.export().0, vec![[8; 16], [9; 16]]);
        assert!(!revocations.is_api_key_revoked(&[1; 16]));
        check_invariants(&revocations.api_keys);
    }

    #[test]
    fn ids_that_share_their_first_eight_bytes() {
        // Nothing to interpolate on: the search must halve, and stay right.
        let ids: Vec<CredentialId> = (0u64..5000)
            .map(|i| ((0x4242_4242_4242_4242u128 << 64) | u128::from(i * 3)).to_be_bytes())
            .collect();
        let set = SortedIds::new(ids);
        let bound = MAX_GUESSES + 14;
        for i in 0u64..15_000 {
            let id = ((0x4242_4242_4242_4242u128 << 64) | u128::from(i)).to_be_bytes();
            let (found, probes) = probes(&set, &id);
            assert_eq!(found, i % 3 == 0 && i < 15_000, "{i}");
            assert!(probes <= bound, "{probes} probes for {i}");
        }
        assert!(!set.contains(&[0x42; 16]));
        assert!(!set.contains(&[0x41; 16]));
    }

    #[test]
    fn clustered_ids_stay_within_the_worst_case() {
        // Dense runs far apart, and a lone id at each end: the guesses
        // are far off, and the halving bounds the probes.
        let mut words: Vec<u128> = vec![0, u128::MAX];
        for run in 0..4u128 {
            let start = run * (u128::MAX / 4) + 12345;
            words.extend((0..2500).map(|i| start + i * 2));
        }
        words.extend((0..64).map(|i| 1u128 << (i + 64)));
        let set = SortedIds::new(words.iter().copied().map(id_of).collect());
        let asks = words.iter().flat_map(|&w| {
            [
                (w, true),
                (w.wrapping_add(1), false),
                (w.wrapping_sub(1), false),
            ]
        });
        let asks = asks.map(|(probe, want)| (probe, want || words.contains(&probe)));
        assert_answers_within_the_worst_case(&set, asks);
    }

    #[test]
    fn skewed_ids_in_one_bucket_stay_within_the_worst_case() {
        // Distinct prefixes, crowded together and far from uniform, so
        // that interpolation guesses badly inside the bucket.
        let words: Vec<u128> = (0u128..20_000)
            .map(|i| ((0x8000_0000_0000_0000 + i * i * i) << 64) | 0x55)
            .collect();
        let set = SortedIds::new(words.iter().copied().map(id_of).collect());
        let asks = words.iter().flat_map(|&w| {
            [
                (w, true),
                (w + 1, false),
                (w - 1, false),
                (w + (1 << 64), false),
            ]
        });
        let asks = asks.map(|(probe, want)| (probe, want || words.binary_search(&probe).is_ok()));
        assert_answers_within_the_worst_case(&set, asks);
    }

    #[test]
    fn uniform_ids_take_a_few_probes() {
        let ids = random_ids(1, 1_000_000);
        let set = SortedIds::new(ids.clone());
        let (mut total, mut worst) = (0u64, 0);
        for id in ids.iter().step_by(97).chain(random_ids(2, 10_000).iter()) {
            let (_, probes) = probes(&set, id);
            total += u64::from(probes);
            worst = worst.max(probes);
        }
        let mean = total as f64 / (ids.len() / 97 + 1 + 10_000) as f64;
        // A bucket holds 3.8 ids on average; halving alone would take 20.
        assert!(mean < 3.0, "{mean} probes on average");
        assert!(worst <= MAX_GUESSES + 21, "{worst} probes");
    }

    #[test]
    fn the_filter_answers_most_misses() {
        for n in [0, 1, 100, 10_000, 1_000_000] {
            let revocations = Revocations::default();
            let ids = random_ids(8, n);
            revocations.revoke_api_keys(ids.iter().copied());
            let current = revocations.api_keys.current.load();
            assert!(ids.iter().all(|id| current.filter.may_contain(id)));
            let misses = random_ids(9, 100_000);
            let passed = misses
                .iter()
                .filter(|id| current.filter.may_contain(id))
                .count();
            // Some 0.5% when just built; at most 1.2% or so when full.
            assert!(passed < 1_000, "{passed} of 100000 past the filter at {n}");
        }
        // Ids far from uniform spread through the filter too.
        let revocations = Revocations::default();
        revocations.revoke_api_keys((0u32..100_000).map(|i| {
            let mut id = [0u8; 16];
            id[12..].copy_from_slice(&i.to_be_bytes());
            id
        }));
        let current = revocations.api_keys.current.load();
        let passed = (100_000u32..200_000)
            .filter(|i| {
                let mut id = [0u8; 16];
                id[12..].copy_from_slice(&i.to_be_bytes());
                current.filter.may_contain(&id)
            })
            .count();
        assert!(passed < 1_000, "{passed} of 100000 past the filter");
    }

    #[test]
    fn the_delta_is_merged_once_full() {
        let revocations = Revocations::default();
        let ids = random_ids(3, 3 * DELTA_LIMIT + 17);
        for (i, id) in ids.iter().enumerate() {
            revocations.revoke_api_key(*id);
            if i % 257 == 0 {
                check_invariants(&revocations.api_keys);
                assert!(
                    ids[..=i]
                        .iter()
                        .all(|id| revocations.is_api_key_revoked(id))
                );
            }
        }
        assert!(ids.iter().all(|id| revocations.is_api_key_revoked(id)));
        assert!(
            random_ids(4, 1000)
                .iter()
                .all(|id| !revocations.is_api_key_revoked(id))
        );
        assert!(revocations.api_keys.delta_len.load(Ordering::Relaxed) < DELTA_LIMIT);
        assert_eq!(revocations.len().0, ids.len());
        let mut sorted = ids.clone();
        sorted.sort_unstable_by_key(word);
        assert_eq!(revocations.export().0, sorted);
    }

    #[test]
    fn a_million_revoked_ids_are_found_and_their_heap_counted_to_the_byte() {
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
        // The array, its directory, and the filter (1.26M ids' worth).
        let filter = (1_008_192 * 5 / 4 * FILTER_BITS_PER_ID).div_ceil(512) * 64;
        assert_eq!(
            revocations.api_key_heap_bytes(),
            16_000_000 + 4 * (1 + (1 << 18)) + filter
        );
    }

    /// Issue 12: at most 32 MB for a million ids, counted from capacities,
    /// whether they come at once (startup with `revoke_api_keys`, a
    /// replica's `replace`) or one by one (startup today, admins).
    #[test]
    fn a_million_random_ids_fit_in_32_mb() {
        const LIMIT: usize = 32 << 20;
        let ids = random_ids(5, 1_000_000);

        let bulk = Revocations::default();
        bulk.revoke_api_keys(ids.iter().copied());
        let bytes = bulk.api_key_heap_bytes();
        // The array, its directory of 2^18 + 1 offsets, and the filter,
        // to the byte.
        let filter = (1_008_192 * 5 / 4 * FILTER_BITS_PER_ID).div_ceil(512) * 64;
        let array = 16_000_000 + 4 * (1 + (1 << 18)) + filter;
        assert_eq!(bytes, array);

        let one_by_one = Revocations::default();
        for id in &ids {
            one_by_one.revoke_api_key(*id);
        }
        let bytes = one_by_one.api_key_heap_bytes();
        let delta = one_by_one.api_keys.delta.read().unwrap().capacity();
        assert!(delta < DELTA_LIMIT * 2, "delta capacity {delta}");
        assert!(bytes <= array + 300_000 + filter / 4, "{bytes} bytes");
        assert!(bytes <= LIMIT);

        let replica = Revocations::default();
        replica.replace(bulk.export().0, vec![], 0);
        assert!(replica.api_key_heap_bytes() <= LIMIT);
        assert_eq!(replica.len().0, 1_000_000);
        assert!(
            ids.iter()
                .step_by(101)
                .all(|id| replica.is_api_key_revoked(id))
        );

        // What it replaces: a hash set of the same ids, from its capacity.
        let old: HashSet<CredentialId> = ids.iter().copied().collect();
        let buckets = (old.capacity() * 8 / 7).next_power_of_two();
        let old_bytes = buckets * (size_of::<CredentialId>() + 1);
        assert!(old_bytes > LIMIT, "{old_bytes}");
    }

    /// A reader never sees a revoked id un-revoked while merges and
    /// replaces (by supersets) go on beside it: readers look up ids the
    /// writer has just revoked, which are in the delta or on their way
    /// from it into a new array.
    #[test]
    fn readers_never_miss_an_id_during_merges() {
        let revocations = with_delta_limit(64);
        let early = random_ids(6, 20_000);
        revocations.revoke_api_keys(early[..10_000].iter().copied());
        for id in &early[10_000..] {
            revocations.revoke_api_key(*id);
        }
        let later = random_ids(7, 20_000);
        // How many of `later` are revoked: readers look among those.
        let revoked = AtomicUsize::new(0);
        let checks = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..3 {
                let (revocations, early, later) = (&revocations, &early, &later);
                let (revoked, checks) = (&revoked, &checks);
                s.spawn(move || {
                    let mut i = t;
                    loop {
                        let n = revoked.load(Ordering::Acquire);
                        if n == later.len() {
                            break;
                        }
                        // Mostly the newest few, sometimes any earlier one.
                        let id = match i % 4 {
                            0 => &early[i % early.len()],
                            1 if n > 0 => &later[i % n],
                            _ if n > 0 => &later[n - 1 - i % n.min(70)],
                            _ => &early[0],
                        };
                        assert!(revocations.is_api_key_revoked(id), "{id:?} missed");
                        checks.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                });
            }
            for (i, id) in later.iter().enumerate() {
                revocations.revoke_api_key(*id);
                if i % 5000 == 4999 {
                    let mut all = early.clone();
                    all.extend_from_slice(&later[..=i]);
                    revocations.replace(all, vec![], 0);
                }
                if i % 3000 == 0 {
                    revocations.revoke_api_keys(random_ids(i as u64, 200));
                }
                revoked.store(i + 1, Ordering::Release);
            }
        });
        assert!(checks.load(Ordering::Relaxed) > 10_000);
        assert!(later.iter().all(|id| revocations.is_api_key_revoked(id)));
    }

    /// Ids that make interpolation guess badly, and a few that recur.
    fn id() -> impl Strategy<Value = CredentialId> {
        const POOL: [CredentialId; 4] = [[0; 16], [0xff; 16], [0x80; 16], [0x7f; 16]];
        prop_oneof![
            2 => any::<[u8; 16]>(),
            2 => prop::sample::select(POOL.to_vec()),
            // One prefix, different tails.
            2 => (0u8..32, any::<u8>()).prop_map(|(a, b)| {
                let mut id = [0x42; 16];
                (id[14], id[15]) = (a, b);
                id
            }),
            // A tight cluster of prefixes.
            2 => (0u64..64, any::<bool>()).prop_map(|(i, tail)| {
                id_of(((0x8000_0000_0000_0000u128 + u128::from(i)) << 64) | u128::from(tail))
            }),
            // Near either end.
            1 => (0u128..16).prop_map(id_of),
            1 => (0u128..16).prop_map(|i| id_of(u128::MAX - i)),
        ]
    }

    #[derive(Clone, Debug)]
    enum Op {
        Revoke(CredentialId),
        Bulk(Vec<CredentialId>),
        Replace(Vec<CredentialId>),
        Lookup(CredentialId),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => id().prop_map(Op::Revoke),
            2 => prop::collection::vec(id(), 0..40).prop_map(Op::Bulk),
            1 => prop::collection::vec(id(), 0..200).prop_map(Op::Bulk),
            1 => prop::collection::vec(id(), 0..60).prop_map(Op::Replace),
            6 => id().prop_map(Op::Lookup),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 300,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// The set answers as a plain hash set would, whatever the order
        /// of revocations, bulk revocations, replaces and lookups.
        #[test]
        fn answers_as_a_hash_set_would(
            limit in prop::sample::select(vec![1usize, 2, 5, 16, DELTA_LIMIT]),
            ops in prop::collection::vec(op(), 1..80),
        ) {
            let revocations = with_delta_limit(limit);
            let exactly = |id: &CredentialId| {
                let set = &revocations.api_keys;
                set.contains_exactly(&set.current.load_full(), id)
            };
            let mut model: HashSet<CredentialId> = HashSet::new();
            for op in ops {
                match op {
                    Op::Revoke(id) => {
                        revocations.revoke_api_key(id);
                        model.insert(id);
                    }
                    Op::Bulk(ids) => {
                        revocations.revoke_api_keys(ids.iter().copied());
                        model.extend(ids);
                    }
                    Op::Replace(ids) => {
                        revocations.replace(ids.clone(), vec![], 0);
                        model = ids.into_iter().collect();
                    }
                    Op::Lookup(id) => {
                        prop_assert_eq!(revocations.is_api_key_revoked(&id), model.contains(&id));
                        // Past the filter too, which would answer most misses.
                        prop_assert_eq!(exactly(&id), model.contains(&id));
                    }
                }
                check_invariants(&revocations.api_keys);
                prop_assert_eq!(revocations.len().0, model.len());
                for id in &model {
                    prop_assert!(revocations.is_api_key_revoked(id));
                }
            }
            for id in &model {
                for near in [word(id).wrapping_add(1), word(id).wrapping_sub(1)] {
                    let near = id_of(near);
                    prop_assert_eq!(revocations.is_api_key_revoked(&near), model.contains(&near));
                    prop_assert_eq!(exactly(&near), model.contains(&near));
                }
            }
            let mut want: Vec<CredentialId> = model.into_iter().collect();
            want.sort_unstable();
            prop_assert_eq!(revocations.export().0, want);
        }
    }
}
