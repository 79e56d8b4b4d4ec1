//! The in-memory directory every node answers from: applications (with
//! their secret digests), resources and their compiled rules, and the
//! revocation state. Readers take a snapshot without locking;
//! writers build a new snapshot and swap it in whole, so no request ever
//! sees half a change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::applications::ApplicationRecord;
use crate::resources::Resource;
use crate::revocation::{CredentialId, Revocations};
use crate::rules::RuleSet;
use tokio::sync::watch;

#[derive(Default, Clone)]
pub struct Snapshot {
    /// Bumped by every change; replicas sync by it.
    pub version: u64,
    pub applications: HashMap<String, Arc<ApplicationRecord>>,
    pub resources: HashMap<String, Arc<Resource>>,
    /// Compiled from `resources` whenever they change.
    pub rules: Arc<RuleSet>,
}

impl Snapshot {
    pub fn application(&self, client_id: &str) -> Option<&Arc<ApplicationRecord>> {
        self.applications.get(client_id)
    }

    /// Every scope some application may ask for, sorted.
    pub fn scopes(&self) -> Vec<String> {
        let mut scopes: Vec<String> = self
            .applications
            .values()
            .flat_map(|app| app.scopes.iter().cloned())
            .collect();
        scopes.sort();
        scopes.dedup();
        scopes
    }

    fn recompile_rules(&mut self) {
        self.rules = Arc::new(RuleSet::new(self.resources.values()));
    }
}

pub struct Directory {
    current: ArcSwap<Snapshot>,
    /// Kept apart from the snapshot: a million revoked ids must not be
    /// copied by every admin write.
    pub revocations: Revocations,
    /// Serialises writers so that none of them loses another's change.
    write: Mutex<()>,
    /// The state version, snapshot and revocations alike; replicas
    /// long-poll on it.
    version: watch::Sender<u64>,
}

impl Default for Directory {
    fn default() -> Self {
        Self::new(Vec::new(), Vec::new())
    }
}

/// A whole state, as a replica receives it from its primary.
pub struct Replacement {
    pub version: u64,
    pub applications: Vec<ApplicationRecord>,
    pub resources: Vec<Resource>,
    pub revoked_api_keys: Vec<CredentialId>,
    pub revoked_access_tokens: Vec<(CredentialId, i64)>,
}

impl Directory {
    pub fn new(applications: Vec<ApplicationRecord>, resources: Vec<Resource>) -> Self {
        Self::starting_at(1, applications, resources)
    }

    /// A directory whose versions start at `version`. A primary starts at
    /// its start time in milliseconds, so that a restarted primary's
    /// versions are still newer than anything its replicas saw before.
    pub fn starting_at(
        version: u64,
        applications: Vec<ApplicationRecord>,
        resources: Vec<Resource>,
    ) -> Self {
        let mut snapshot = Snapshot {
            version,
            applications: applications
                .into_iter()
                .map(|app| (app.client_id.clone(), Arc::new(app)))
                .collect(),
            resources: resources
                .into_iter()
                .map(|r| (r.id.clone(), Arc::new(r)))
                .collect(),
            rules: Arc::default(),
        };
        snapshot.recompile_rules();
        Self {
            current: ArcSwap::from_pointee(snapshot),
            revocations: Revocations::default(),
            write: Mutex::new(()),
            version: watch::Sender::new(version),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The current snapshot for the length of one request: a borrowed
    /// guard, so the hot path does not touch the shared reference count.
    pub fn current(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Applies `change` to a copy of the current snapshot and publishes it.
    pub fn update(&self, change: impl FnOnce(&mut Snapshot)) {
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Snapshot::clone(&self.current.load());
        change(&mut next);
        next.version = self.version() + 1;
        let version = next.version;
        // Store first, publish second: a replica woken by the new version
        // must find the new state, or it would take the old state for it
        // and never ask again.
        self.current.store(Arc::new(next));
        self.version.send_replace(version);
    }

    /// Publishes a change made in place (revocations), after the change;
    /// callers hold the writers' lock, so no two changes share a version.
    fn bump_version(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// The current state version.
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// Wakes when the state version changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Takes over a primary's state. Revocations go first, so that no
    /// request in between sees a credential un-revoked.
    pub fn replace(&self, state: Replacement, now: i64) {
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.revocations
            .replace(state.revoked_api_keys, state.revoked_access_tokens, now);
        let mut snapshot = Snapshot {
            version: state.version,
            applications: state
                .applications
                .into_iter()
                .map(|app| (app.client_id.clone(), Arc::new(app)))
                .collect(),
            resources: state
                .resources
                .into_iter()
                .map(|r| (r.id.clone(), Arc::new(r)))
                .collect(),
            rules: Arc::default(),
        };
        snapshot.recompile_rules();
        self.current.store(Arc::new(snapshot));
        self.version.send_replace(state.version);
    }

    /// Publishes a change outside the directory that replicas copy too
    /// (the key set), after it was made.
    pub fn touch(&self) -> u64 {
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.bump_version();
        self.version()
    }

    pub fn revoke_api_key(&self, id: CredentialId) {
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.revocations.revoke_api_key(id);
        self.bump_version();
    }

    pub fn revoke_access_token(&self, jti: CredentialId, exp: i64, now: i64) {
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.revocations.revoke_access_token(jti, exp, now);
        self.bump_version();
    }

    pub fn put_application(&self, app: ApplicationRecord) {
        self.update(|s| {
            s.applications.insert(app.client_id.clone(), Arc::new(app));
        });
    }

    pub fn remove_application(&self, client_id: &str) {
        self.update(|s| {
            s.applications.remove(client_id);
        });
    }

    pub fn put_resource(&self, resource: Resource) {
        self.update(|s| {
            s.resources.insert(resource.id.clone(), Arc::new(resource));
            s.recompile_rules();
        });
    }

    pub fn remove_resource(&self, id: &str) {
        self.update(|s| {
            s.resources.remove(id);
            s.recompile_rules();
        });
    }
}
