//! Lists of names (an application's groups, scopes, audiences) held once
//! per distinct list and shared by every application that has it.
//!
//! Every node holds every application (100,000 at the reference scale),
//! and their lists repeat: a few dozen group lists, a handful of scope and
//! audience lists. Held per application they took some 280 bytes each
//! (vectors, strings, allocator headers); shared, an application holds a
//! pointer (16 bytes) to its list.
//!
//! The lists live in one process-wide pool, so that a list decoded anywhere
//! (the store, the binary copy, a change, a snapshot) finds the copy the
//! others hold. A list no application holds any more stays in the pool
//! until the pool has doubled since it last swept; then every list only the
//! pool holds goes. The pool is touched when a list is made, never when one
//! is read: the verify and token paths read through the pointer.

use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, LazyLock, Mutex};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Lists the pool may hold beyond twice those last found in use.
const SWEEP_SLACK: usize = 64;

/// A list of names, shared with every other equal list made while it lives.
#[derive(Clone)]
pub struct NameList(Arc<[String]>);

#[derive(Default)]
struct Pool {
    lists: HashSet<Arc<[String]>>,
    /// How many lists were in use at the last sweep.
    live: usize,
}

static POOL: LazyLock<Mutex<Pool>> = LazyLock::new(Mutex::default);

impl Pool {
    fn intern(&mut self, names: Vec<String>) -> Arc<[String]> {
        if let Some(list) = self.lists.get(names.as_slice()) {
            return Arc::clone(list);
        }
        if self.lists.len() >= 2 * self.live + SWEEP_SLACK {
            // A list only the pool holds cannot be taken up again but
            // through the pool, which is locked: this cannot race.
            self.lists.retain(|list| Arc::strong_count(list) > 1);
            self.live = self.lists.len();
        }
        let list: Arc<[String]> = names
            .into_iter()
            .map(|mut name| {
                name.shrink_to_fit();
                name
            })
            .collect();
        self.lists.insert(Arc::clone(&list));
        list
    }
}

impl NameList {
    pub fn new(names: Vec<String>) -> Self {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        Self(pool.intern(names))
    }

    /// Whether `self` and `other` are the one shared copy.
    pub fn shares(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// How many distinct lists the pool holds (some may be unused until
    /// the next sweep).
    pub fn pooled() -> usize {
        POOL.lock().unwrap_or_else(|e| e.into_inner()).lists.len()
    }
}

impl Default for NameList {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl From<Vec<String>> for NameList {
    fn from(names: Vec<String>) -> Self {
        Self::new(names)
    }
}

impl Deref for NameList {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.0
    }
}

impl<'a> IntoIterator for &'a NameList {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl PartialEq for NameList {
    fn eq(&self, other: &Self) -> bool {
        self.shares(other) || self.0 == other.0
    }
}

impl Eq for NameList {}

impl<T: AsRef<str>> PartialEq<[T]> for NameList {
    fn eq(&self, other: &[T]) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<T: AsRef<str>> PartialEq<Vec<T>> for NameList {
    fn eq(&self, other: &Vec<T>) -> bool {
        *self == other[..]
    }
}

impl<T: AsRef<str>, const N: usize> PartialEq<[T; N]> for NameList {
    fn eq(&self, other: &[T; N]) -> bool {
        *self == other[..]
    }
}

impl fmt::Debug for NameList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// As the list of strings it is: stored and sent records are unchanged.
impl Serialize for NameList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for NameList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(d).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list(names: &[&str]) -> NameList {
        NameList::new(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn equal_lists_are_one_copy() {
        let a = list(&["media", "team-name-list-test"]);
        let b = list(&["media", "team-name-list-test"]);
        let c = list(&["media"]);
        assert!(a.shares(&b));
        assert!(!a.shares(&c));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, ["media", "team-name-list-test"]);
        assert!(NameList::default().is_empty());
        assert!(NameList::default().shares(&NameList::new(vec![])));
    }

    #[test]
    fn order_matters() {
        let a = list(&["a-order-test", "b-order-test"]);
        let b = list(&["b-order-test", "a-order-test"]);
        assert!(!a.shares(&b));
        assert_ne!(a, b);
    }

    #[test]
    fn a_list_nobody_holds_is_swept() {
        // A pool of its own: the process-wide one is shared with every
        // test running at the same time.
        let mut pool = Pool::default();
        let kept = pool.intern(vec!["kept".into()]);
        for n in 0..10 * SWEEP_SLACK {
            drop(pool.intern(vec![format!("dropped-{n}")]));
        }
        assert!(pool.lists.len() <= 2 * pool.live + SWEEP_SLACK);
        assert!(
            pool.lists.len() < 2 * SWEEP_SLACK + 2,
            "{}",
            pool.lists.len()
        );
        assert!(pool.lists.contains(&kept));
        let again = pool.intern(vec!["kept".into()]);
        assert!(Arc::ptr_eq(&kept, &again));
    }

    #[test]
    fn the_pool_stays_within_twice_what_is_held() {
        let mut pool = Pool::default();
        let held: Vec<_> = (0..500)
            .map(|n| pool.intern(vec![format!("held-{n}")]))
            .collect();
        for n in 0..5_000 {
            drop(pool.intern(vec![format!("gone-{n}")]));
        }
        assert!(pool.lists.len() <= 2 * held.len() + SWEEP_SLACK + 1);
        assert!(held.iter().all(|list| pool.lists.contains(list)));
    }

    proptest! {
        /// Whatever the names, the JSON is the plain list's, both ways,
        /// and the list read back is the shared copy.
        #[test]
        fn encodes_as_a_plain_list(names in proptest::collection::vec(".{0,12}", 0..6)) {
            let interned = NameList::new(names.clone());
            let json = serde_json::to_string(&interned).unwrap();
            prop_assert_eq!(&json, &serde_json::to_string(&names).unwrap());
            let back: NameList = serde_json::from_str(&json).unwrap();
            prop_assert!(back.shares(&interned));
            prop_assert_eq!(&back[..], &names[..]);
        }
    }
}
