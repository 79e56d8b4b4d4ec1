//! Applications (OAuth clients): creating, changing and deleting them,
//! and rotating their secrets. The records check their own fields
//! (`crate::applications`); this stores and publishes them.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::applications::{
    ApplicationPatch, ApplicationRecord, CLIENT_SECRET_PREFIX, NewApplication, SecretRotation,
};
use crate::crypto::{SecretDigest, random_secret};
use crate::replication::Change;

use super::{Admin, AdminError, NewSecret, created, generated_id, new_generation, removed};

impl Admin {
    pub fn create_application(
        &self,
        new: NewApplication,
        now: DateTime<Utc>,
    ) -> Result<(ApplicationRecord, NewSecret), AdminError> {
        let client_id = match &new.client_id {
            Some(id) => id.clone(),
            None => generated_id("app-")?,
        };
        let secret = new_client_secret()?;
        let app = ApplicationRecord::create(
            &client_id,
            new,
            SecretDigest::of(&secret.0),
            new_generation()?,
            now,
        )?;
        let _writer = self.lock();
        let write = self.store.applications.create_op(&app.client_id, &app)?;
        let change = Change::PutApplication {
            application: app.clone(),
        };
        created(
            self.commit(Some(write), change, now),
            "application",
            &app.client_id,
        )?;
        log::info!("created application {}", app.client_id);
        Ok((app, secret))
    }

    pub fn applications(&self) -> Vec<Arc<ApplicationRecord>> {
        let mut apps: Vec<_> = self.directory.snapshot().applications().cloned().collect();
        apps.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        apps
    }

    pub fn application(&self, client_id: &str) -> Result<Arc<ApplicationRecord>, AdminError> {
        self.directory
            .snapshot()
            .application(client_id)
            .cloned()
            .ok_or_else(|| AdminError::NotFound(format!("application {client_id:?}")))
    }

    pub fn update_application(
        &self,
        client_id: &str,
        patch: ApplicationPatch,
        now: DateTime<Utc>,
    ) -> Result<ApplicationRecord, AdminError> {
        self.modify(client_id, now, |app| Ok(app.apply(&patch)?))
    }

    pub fn delete_application(
        &self,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AdminError> {
        let _writer = self.lock();
        let change = Change::RemoveApplication {
            client_id: client_id.to_string(),
        };
        removed(
            self.commit(
                Some(self.store.applications.delete_op(client_id)),
                change,
                now,
            ),
            "application",
            client_id,
        )?;
        log::info!("deleted application {client_id}");
        Ok(())
    }

    /// Issues a new secret. With a grace period the old one keeps working
    /// that long, so clients can be re-configured without an outage.
    pub fn rotate_secret(
        &self,
        client_id: &str,
        rotation: SecretRotation,
        now: DateTime<Utc>,
    ) -> Result<(ApplicationRecord, NewSecret), AdminError> {
        let grace = rotation.grace()?;
        let secret = new_client_secret()?;
        let app = self.modify(client_id, now, |app| {
            app.rotate_secret(SecretDigest::of(&secret.0), grace, now);
            Ok(())
        })?;
        log::info!("rotated the secret of application {client_id}");
        Ok((app, secret))
    }

    /// Reads, changes, writes and publishes one application.
    pub(super) fn modify(
        &self,
        client_id: &str,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut ApplicationRecord) -> Result<(), AdminError>,
    ) -> Result<ApplicationRecord, AdminError> {
        let _writer = self.lock();
        let mut app = ApplicationRecord::clone(&*self.application(client_id)?);
        change(&mut app)?;
        app.updated_at = now;
        let write = self.store.applications.put_op(&app.client_id, &app)?;
        let change = Change::PutApplication {
            application: app.clone(),
        };
        self.commit(Some(write), change, now)?;
        Ok(app)
    }
}

fn new_client_secret() -> Result<NewSecret, AdminError> {
    random_secret(CLIENT_SECRET_PREFIX)
        .map(NewSecret)
        .map_err(AdminError::internal("client secret"))
}
