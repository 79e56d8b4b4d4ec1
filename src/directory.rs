//! The in-memory directory every node answers from: applications (with
//! their secret digests), resources and their compiled rules, and the
//! revocation state. Readers take a snapshot without locking;
//! writers build a new snapshot and swap it in whole, so no request ever
//! sees half a change.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::applications::ApplicationRecord;
use crate::key_scopes::{KeyScopes, ScopedKeys};
use crate::key_usage::UsageBook;
use crate::replication::Change;
use crate::replication::log::Entry;
use crate::resources::Resource;
use crate::revocation::{CredentialId, Revocations, parse_id};
use crate::rules::RuleSet;
use tokio::sync::watch;

#[derive(Default, Clone)]
pub struct Snapshot {
    applications: HashSet<ByClientId>,
    pub resources: HashMap<String, Arc<Resource>>,
    /// Compiled from `resources` whenever they change.
    pub rules: Arc<RuleSet>,
}

impl Snapshot {
    pub fn application(&self, client_id: &str) -> Option<&Arc<ApplicationRecord>> {
        self.applications.get(client_id).map(|app| &app.0)
    }

    /// Every application, in no particular order.
    pub fn applications(&self) -> impl ExactSizeIterator<Item = &Arc<ApplicationRecord>> {
        self.applications.iter().map(|app| &app.0)
    }

    fn put_application(&mut self, application: ApplicationRecord) {
        self.applications.replace(ByClientId::new(application));
    }

    /// Every scope some application may ask for, sorted.
    pub fn scopes(&self) -> Vec<String> {
        let mut scopes: Vec<String> = self
            .applications()
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
    /// The scopes of the API keys that have any; apart from the snapshot
    /// for the same reason.
    pub scoped_keys: ScopedKeys,
    /// The API key uses this node noted and has not yet persisted (a
    /// primary) or reported (a replica).
    pub usage: UsageBook,
    /// Serialises writers so that none of them loses another's change.
    write: Mutex<()>,
    /// The version of the last change applied, snapshot and revocations
    /// alike (on a primary, its change log's); replicas long-poll on it.
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
    /// Each in the allocation it was decoded into, so that taking them
    /// over moves no record.
    pub applications: Vec<Arc<ApplicationRecord>>,
    pub resources: Vec<Resource>,
    pub revoked_api_keys: Vec<CredentialId>,
    pub revoked_access_tokens: Vec<(CredentialId, i64)>,
    pub api_key_scopes: Vec<(CredentialId, KeyScopes)>,
}

impl Directory {
    pub fn new(applications: Vec<ApplicationRecord>, resources: Vec<Resource>) -> Self {
        Self::starting_at(0, applications, resources)
    }

    /// A directory at `version`: on a primary, its change log's last.
    pub fn starting_at(
        version: u64,
        applications: Vec<ApplicationRecord>,
        resources: Vec<Resource>,
    ) -> Self {
        let mut snapshot = Snapshot {
            applications: applications.into_iter().map(ByClientId::new).collect(),
            resources: resources
                .into_iter()
                .map(|r| (r.id.to_string(), Arc::new(r)))
                .collect(),
            rules: Arc::default(),
        };
        snapshot.recompile_rules();
        Self {
            current: ArcSwap::from_pointee(snapshot),
            revocations: Revocations::default(),
            scoped_keys: ScopedKeys::default(),
            usage: UsageBook::default(),
            write: Mutex::new(()),
            version: watch::Sender::new(version),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The current snapshot for the length of one request: a borrowed
    /// guard, so the hot path does not touch the shared reference count.
    pub fn guard(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Applies logged changes in order: the primary's just written, or
    /// those a replica received. Revocations go first, so that no request
    /// sees a credential un-revoked; records go in one new snapshot, so no
    /// request sees half a batch. The version moves last: whoever is woken
    /// by it finds the state it names.
    pub fn apply(&self, entries: &[Entry], now: i64) {
        let Some(last) = entries.last() else {
            return;
        };
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.apply_revocations(entries, now);
        if let Some(snapshot) = self.next_snapshot(entries) {
            self.current.store(Arc::new(snapshot));
        }
        self.version.send_replace(last.version);
    }

    /// The revocations and key scopes among `entries`, in order; a key
    /// revoked in the batch loses its scopes, and one already revoked gets
    /// none. Called with the writer's lock held.
    fn apply_revocations(&self, entries: &[Entry], now: i64) {
        let mut scope_edits = Vec::new();
        for entry in entries {
            match &entry.change {
                Change::RevokeApiKey { id } => {
                    if let Some(id) = parse_id(id) {
                        self.revocations.revoke_api_key(id);
                        scope_edits.push((id, None));
                    }
                }
                Change::SetApiKeyScopes { id, scopes } => {
                    if let Some(id) = parse_id(id)
                        && !self.revocations.is_api_key_revoked(&id)
                    {
                        scope_edits.push((id, Some(scopes.clone())));
                    }
                }
                Change::RevokeAccessToken { jti, exp } => {
                    if let Some(jti) = parse_id(jti) {
                        self.revocations.revoke_access_token(jti, *exp, now);
                    }
                }
                _ => {}
            }
        }
        self.scoped_keys.update(scope_edits);
    }

    /// The current snapshot with the application and resource changes
    /// among `entries` made (its rules compiled again if resources
    /// changed); `None` if there are none. Called with the writer's lock held.
    fn next_snapshot(&self, entries: &[Entry]) -> Option<Snapshot> {
        let records = entries.iter().filter(|e| {
            matches!(
                e.change,
                Change::PutApplication { .. }
                    | Change::RemoveApplication { .. }
                    | Change::PutResource { .. }
                    | Change::RemoveResource { .. }
            )
        });
        let mut next: Option<Snapshot> = None;
        let mut rules_changed = false;
        for entry in records {
            let snapshot = next.get_or_insert_with(|| Snapshot::clone(&self.current.load()));
            match &entry.change {
                Change::PutApplication { application } => {
                    snapshot.put_application(application.clone());
                }
                Change::RemoveApplication { client_id } => {
                    snapshot.applications.remove(client_id.as_str());
                }
                Change::PutResource { resource } => {
                    snapshot
                        .resources
                        .insert(resource.id.to_string(), Arc::new(resource.clone()));
                    rules_changed = true;
                }
                Change::RemoveResource { id } => {
                    snapshot.resources.remove(id);
                    rules_changed = true;
                }
                _ => {}
            }
        }
        let mut snapshot = next?;
        if rules_changed {
            snapshot.recompile_rules();
        }
        Some(snapshot)
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
        self.scoped_keys.replace(
            state
                .api_key_scopes
                .into_iter()
                .filter(|(id, _)| !self.revocations.is_api_key_revoked(id)),
        );
        let mut snapshot = Snapshot {
            applications: state.applications.into_iter().map(ByClientId).collect(),
            resources: state
                .resources
                .into_iter()
                .map(|r| (r.id.to_string(), Arc::new(r)))
                .collect(),
            rules: Arc::default(),
        };
        snapshot.recompile_rules();
        self.current.store(Arc::new(snapshot));
        self.version.send_replace(state.version);
    }
}

/// An application in the directory, found by its client id without a
/// second copy of the id as a key: 100,000 applications are held on every
/// node, so each of their bytes counts (see `ApplicationRecord`).
#[derive(Clone)]
struct ByClientId(Arc<ApplicationRecord>);

impl ByClientId {
    fn new(app: ApplicationRecord) -> Self {
        Self(Arc::new(app))
    }
}

impl Borrow<str> for ByClientId {
    fn borrow(&self) -> &str {
        &self.0.client_id
    }
}

impl Hash for ByClientId {
    // As `str` hashes, which `Borrow<str>` requires.
    fn hash<H: Hasher>(&self, state: &mut H) {
        str::hash(&self.0.client_id, state);
    }
}

impl PartialEq for ByClientId {
    fn eq(&self, other: &Self) -> bool {
        self.0.client_id == other.0.client_id
    }
}

impl Eq for ByClientId {}
