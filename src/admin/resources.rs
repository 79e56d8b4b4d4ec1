//! Resources (forward-auth rules): creating, listing, changing, deleting.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::replication::Change;
use crate::resources::{NewResource, Resource, ResourcePatch};

use super::{Admin, AdminError, created, generated_id, removed};

impl Admin {
    pub fn create_resource(
        &self,
        new: NewResource,
        now: DateTime<Utc>,
    ) -> Result<Resource, AdminError> {
        let id = match &new.id {
            Some(id) => id.clone(),
            None => generated_id("res-")?,
        };
        let resource = Resource::create(id, new, now)?;
        let _writer = self.lock();
        let write = self.store.resources.create_op(&resource.id, &resource)?;
        let change = Change::PutResource {
            resource: resource.clone(),
        };
        created(
            self.commit(Some(write), change, now),
            "resource",
            &resource.id,
        )?;
        log::info!(
            "created resource {} for host {}",
            resource.id,
            resource.host
        );
        Ok(resource)
    }

    pub fn resources(&self) -> Vec<Arc<Resource>> {
        let mut resources: Vec<_> = self
            .directory
            .snapshot()
            .resources
            .values()
            .cloned()
            .collect();
        resources.sort_by(|a, b| a.host.cmp(&b.host).then_with(|| a.id.cmp(&b.id)));
        resources
    }

    pub fn resource(&self, id: &str) -> Result<Arc<Resource>, AdminError> {
        self.directory
            .snapshot()
            .resources
            .get(id)
            .cloned()
            .ok_or_else(|| AdminError::NotFound(format!("resource {id:?}")))
    }

    pub fn update_resource(
        &self,
        id: &str,
        patch: ResourcePatch,
        now: DateTime<Utc>,
    ) -> Result<Resource, AdminError> {
        let _writer = self.lock();
        let mut resource = Resource::clone(&*self.resource(id)?);
        resource.apply(patch)?;
        resource.updated_at = now;
        let write = self.store.resources.put_op(&resource.id, &resource)?;
        let change = Change::PutResource {
            resource: resource.clone(),
        };
        self.commit(Some(write), change, now)?;
        Ok(resource)
    }

    pub fn delete_resource(&self, id: &str, now: DateTime<Utc>) -> Result<(), AdminError> {
        let _writer = self.lock();
        let change = Change::RemoveResource { id: id.to_string() };
        removed(
            self.commit(Some(self.store.resources.delete_op(id)), change, now),
            "resource",
            id,
        )?;
        log::info!("deleted resource {id}");
        Ok(())
    }
}
