//! The in-memory directory every node answers from: applications (with
//! their secret digests) today, resources and revocation state as they
//! arrive. Readers take a snapshot without locking; writers build a new
//! snapshot and swap it in whole, so no request ever sees half a change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::applications::ApplicationRecord;

#[derive(Default, Clone)]
pub struct Snapshot {
    /// Bumped by every change; replicas sync by it.
    pub version: u64,
    pub applications: HashMap<String, Arc<ApplicationRecord>>,
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
}

#[derive(Default)]
pub struct Directory {
    current: ArcSwap<Snapshot>,
    /// Serialises writers so that none of them loses another's change.
    write: Mutex<()>,
}

impl Directory {
    pub fn new(applications: Vec<ApplicationRecord>) -> Self {
        let snapshot = Snapshot {
            version: 1,
            applications: applications
                .into_iter()
                .map(|app| (app.client_id.clone(), Arc::new(app)))
                .collect(),
        };
        Self {
            current: ArcSwap::from_pointee(snapshot),
            write: Mutex::new(()),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Applies `change` to a copy of the current snapshot and publishes it.
    pub fn update(&self, change: impl FnOnce(&mut Snapshot)) {
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Snapshot::clone(&self.current.load());
        change(&mut next);
        next.version += 1;
        self.current.store(Arc::new(next));
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
}
