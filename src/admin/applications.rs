//! Applications (OAuth clients): creating, changing and deleting them,
//! and rotating their secrets.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::applications::{
    ApplicationPatch, ApplicationRecord, CLIENT_SECRET_PREFIX, ClientId, DEFAULT_ACCESS_TOKEN_TTL,
    FieldError, MAX_SECRET_GRACE_PERIOD, NewApplication, PreviousSecret, SecretRotation,
    normalize_audiences, normalize_groups, normalize_scopes, validate_name, validate_ttl,
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
        let client_id = match new.client_id {
            Some(id) => ClientId::parse(&id)?,
            None => ClientId::parse(&generated_id("app-")?)?,
        };
        let name = match new.name {
            Some(name) => validate_name(&name)?,
            None => client_id.to_string(),
        };
        let secret = new_client_secret()?;
        let app = ApplicationRecord {
            groups: normalize_groups("groups", &new.groups)?.into(),
            scopes: normalize_scopes(&new.scopes)?.into(),
            audiences: normalize_audiences(&new.audiences)?.into(),
            access_token_ttl: validate_ttl(
                new.access_token_ttl.unwrap_or(DEFAULT_ACCESS_TOKEN_TTL),
            )?,
            active: new.active.unwrap_or(true),
            created_at: now,
            updated_at: now,
            secret: SecretDigest::of(&secret.0),
            previous_secret: None,
            // Credentials from an earlier application of the same client_id
            // must not come back to life.
            not_before: now.timestamp(),
            generation: new_generation()?,
            client_id,
            name: name.into(),
        };
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
        self.modify(client_id, now, |app| {
            if let Some(name) = &patch.name {
                app.name = validate_name(name)?.into();
            }
            if let Some(groups) = &patch.groups {
                app.groups = normalize_groups("groups", groups)?.into();
            }
            if let Some(scopes) = &patch.scopes {
                app.scopes = normalize_scopes(scopes)?.into();
            }
            if let Some(audiences) = &patch.audiences {
                app.audiences = normalize_audiences(audiences)?.into();
            }
            if let Some(ttl) = patch.access_token_ttl {
                app.access_token_ttl = validate_ttl(ttl)?;
            }
            if let Some(active) = patch.active {
                app.active = active;
            }
            Ok(())
        })
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
        if rotation.grace_period > MAX_SECRET_GRACE_PERIOD {
            return Err(FieldError::new(
                "grace_period",
                format!("must be at most {MAX_SECRET_GRACE_PERIOD} seconds"),
            )
            .into());
        }
        let secret = new_client_secret()?;
        let app = self.modify(client_id, now, |app| {
            app.previous_secret = (rotation.grace_period > 0).then(|| {
                Box::new(PreviousSecret {
                    digest: app.secret,
                    expires_at: now + chrono::Duration::seconds(i64::from(rotation.grace_period)),
                })
            });
            app.secret = SecretDigest::of(&secret.0);
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
        .map_err(|e| AdminError::Internal(e.to_string()))
}
