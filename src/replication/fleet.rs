//! What the primary knows of its replicas: which state version each one
//! has applied, learnt from the `since` of its long-polls. Fleet-safe key
//! rotation waits on it: a new key signs only once every live replica
//! verifies with it.

use std::collections::HashMap;
use std::sync::Mutex;

/// A replica that has not asked for this long is not waited for: it is
/// not live, and its `/readyz` reports a stale copy anyway.
pub const LIVE_WITHIN_SECS: i64 = 30;

/// A replica as the primary last heard from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaContact {
    pub id: String,
    /// The state version it had applied.
    pub applied: u64,
    /// Unix seconds of its last request.
    pub last_seen: i64,
}

#[derive(Default)]
pub struct Fleet {
    /// Replica id → (version it has applied, unix seconds of its last request).
    replicas: Mutex<HashMap<String, (u64, i64)>>,
}

impl Fleet {
    /// A replica asked for changes after `applied`.
    pub fn heard_from(&self, replica: &str, applied: u64, now: i64) {
        if replica.is_empty() || replica.len() > 64 {
            return;
        }
        let mut replicas = self.replicas.lock().unwrap_or_else(|e| e.into_inner());
        replicas.retain(|_, (_, seen)| now - *seen <= LIVE_WITHIN_SECS);
        replicas.insert(replica.to_string(), (applied, now));
    }

    /// Every replica heard from lately, by id.
    pub fn replicas(&self) -> Vec<ReplicaContact> {
        let mut replicas: Vec<ReplicaContact> = self
            .replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, (applied, last_seen))| ReplicaContact {
                id: id.clone(),
                applied: *applied,
                last_seen: *last_seen,
            })
            .collect();
        replicas.sort_by(|a, b| a.id.cmp(&b.id));
        replicas
    }

    /// Whether every live replica has applied `version`.
    pub fn all_applied(&self, version: u64, now: i64) -> bool {
        self.replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|(_, seen)| now - *seen <= LIVE_WITHIN_SECS)
            .all(|(applied, _)| *applied >= version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_live_replicas_only() {
        let fleet = Fleet::default();
        assert!(
            fleet.all_applied(5, 100),
            "no replicas: nothing to wait for"
        );
        fleet.heard_from("a", 4, 100);
        fleet.heard_from("b", 5, 100);
        assert!(!fleet.all_applied(5, 100));
        fleet.heard_from("a", 5, 101);
        assert!(fleet.all_applied(5, 101));
        fleet.heard_from("b", 3, 102);
        assert!(fleet.all_applied(3, 102));
        assert!(
            fleet.all_applied(5, 102 + LIVE_WITHIN_SECS + 1),
            "silent replicas are not waited for"
        );
        let ids: Vec<(String, u64)> = fleet
            .replicas()
            .into_iter()
            .map(|r| (r.id, r.applied))
            .collect();
        assert_eq!(ids, [("a".to_string(), 5), ("b".to_string(), 3)]);
    }
}
