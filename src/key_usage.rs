//! When each API key was last accepted, at minute resolution, and from
//! which network. Every node notes it in memory; nothing on the verify
//! path writes to disk or takes a lock shared with other keys' requests:
//! the verified key's cache entry remembers the minute it was last noted
//! (one atomic load per request), and only when the minute changes is the
//! use written into one of [`SHARDS`] small maps.
//!
//! The primary persists what it noted (and what its replicas report) into
//! sled now and then; a replica reports what it noted to its primary every
//! [`REPORT_EVERY`] (`POST /internal/v1/usage`), see `replication`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::revocation::CredentialId;

const SHARDS: usize = 16;
/// How often a replica reports the uses it noted.
pub const REPORT_EVERY: Duration = Duration::from_secs(2);
/// The most uses in one report; more go in the next.
pub const MAX_REPORT: usize = 10_000;

/// One key's last use: the minute (unix seconds, a multiple of 60) and the
/// network of the client (/24 for IPv4, /64 for IPv6: enough to tell where
/// a key is used from, without keeping client addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub at: DateTime<Utc>,
    pub from: IpNet,
}

impl Usage {
    pub fn new(minute: i64, addr: IpAddr) -> Self {
        Self {
            at: DateTime::from_timestamp(minute * 60, 0).unwrap_or_default(),
            from: network_of(addr),
        }
    }

    /// The later of two uses.
    pub fn latest(self, other: Option<Usage>) -> Usage {
        match other {
            Some(other) if other.at > self.at => other,
            _ => self,
        }
    }
}

/// The network a client address is recorded as.
pub fn network_of(addr: IpAddr) -> IpNet {
    let prefix = match addr {
        IpAddr::V4(_) => 24,
        IpAddr::V6(_) => 64,
    };
    IpNet::new(addr, prefix)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(addr))
}

/// Uses noted since they were last taken (persisted or reported).
#[derive(Default)]
pub struct UsageBook {
    shards: [Mutex<HashMap<CredentialId, Usage>>; SHARDS],
}

impl UsageBook {
    fn shard(&self, id: &CredentialId) -> &Mutex<HashMap<CredentialId, Usage>> {
        &self.shards[usize::from(id[0]) % SHARDS]
    }

    /// Notes a use; the later one wins.
    pub fn note(&self, id: CredentialId, usage: Usage) {
        let mut shard = self.shard(&id).lock().unwrap_or_else(|e| e.into_inner());
        let entry = shard.entry(id).or_insert(usage);
        *entry = usage.latest(Some(*entry));
    }

    /// Notes many (a replica's report, or a report that failed to go).
    pub fn merge(&self, uses: impl IntoIterator<Item = (CredentialId, Usage)>) {
        for (id, usage) in uses {
            self.note(id, usage);
        }
    }

    /// The use noted for `id`, if any since the last `take`.
    pub fn get(&self, id: &CredentialId) -> Option<Usage> {
        self.shard(id)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied()
    }

    /// Takes every use noted so far.
    pub fn take(&self) -> Vec<(CredentialId, Usage)> {
        let mut all = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            all.extend(shard.drain());
        }
        all
    }

    pub fn is_empty(&self) -> bool {
        self.shards
            .iter()
            .all(|s| s.lock().unwrap_or_else(|e| e.into_inner()).is_empty())
    }
}

/// One entry of a replica's report.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReportedUse {
    pub id: String,
    pub at: DateTime<Utc>,
    pub from: IpNet,
}

/// `POST /internal/v1/usage`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    pub uses: Vec<ReportedUse>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_use_wins_and_networks_are_coarse() {
        let book = UsageBook::default();
        let a = Usage::new(100, "198.51.100.7".parse().unwrap());
        let b = Usage::new(99, "2001:db8::7".parse().unwrap());
        book.note([1; 16], a);
        book.note([1; 16], b);
        assert_eq!(book.get(&[1; 16]), Some(a));
        assert_eq!(a.from.to_string(), "198.51.100.0/24");
        assert_eq!(b.from.to_string(), "2001:db8::/64");
        assert_eq!(a.at.timestamp(), 6000);
        assert_eq!(book.take().len(), 1);
        assert!(book.is_empty());
    }
}
