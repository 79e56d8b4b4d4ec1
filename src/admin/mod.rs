//! Admin operations on the primary: every change is written to the store
//! (flushed) and then published to the in-memory directory, under one lock
//! so that concurrent admin writes are applied in a single order.
//! Signing keys and their rotation schedule are in `signing_keys`.

mod signing_keys;

pub use signing_keys::{
    KEY_RETENTION_SECS, RETIREMENT_CHECK_SECS, ScheduledRotation, SigningKeyView,
};

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::api_keys::{
    ApiKeyClaims, ApiKeyPatch, ApiKeyRecord, KeyFilter, NewApiKey, validate_key_name,
};
use crate::applications::{
    ApplicationPatch, ApplicationRecord, CLIENT_SECRET_PREFIX, DEFAULT_ACCESS_TOKEN_TTL,
    FieldError, MAX_SECRET_GRACE_PERIOD, NewApplication, PreviousSecret, SecretRotation,
    normalize_audiences, normalize_groups, normalize_scopes, validate_client_id, validate_name,
    validate_ttl,
};
use crate::audit::{AuditEntry, Outcome, audit_id};
use crate::crypto::{SecretDigest, random_bytes, random_id, random_secret};
use crate::directory::Directory;
use crate::key_scopes::KeyScopes;
use crate::key_usage::Usage;
use crate::keys::{KeyError, KeyRing};
use crate::replication::Change;
use crate::resources::{NewResource, Resource, ResourcePatch};
use crate::revocation::{CredentialId, parse_id};
use crate::store::{RecordWrite, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Unavailable(String),
}

/// The revoked-id copy is written again after this many logged changes.
const COPY_EVERY: u64 = 10_000;

pub struct Admin {
    store: Arc<Store>,
    directory: Arc<Directory>,
    keys: Arc<KeyRing>,
    keys_dir: PathBuf,
    issuer: String,
    /// How long outside verifiers may cache the JWKS: a new key waits this
    /// long (after every replica has it) before it signs.
    jwks_max_age: u64,
    rotation: Mutex<signing_keys::RotationWatch>,
    write: Mutex<()>,
    /// Expiry times of the live API keys that expire (unix seconds → how
    /// many), for the `api_keys_expiring` gauge: read from the store once,
    /// by the first housekeeping, then kept up by mints and revocations.
    expiries: Mutex<Option<std::collections::BTreeMap<i64, u32>>>,
}

/// An API key as listings show it: the record, its scopes, its last use.
#[derive(Debug, serde::Serialize)]
pub struct ApiKeyView {
    #[serde(flatten)]
    pub record: ApiKeyRecord,
    pub hosts: Option<Vec<String>>,
    pub path_prefixes: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    pub source_cidrs: Option<Vec<String>>,
    /// Minute resolution; `null` if never used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The network of the last use (/24 or /64), `null` if never used.
    pub last_used_from: Option<String>,
}

/// The windows of the `api_keys_expiring` gauge.
pub const EXPIRY_WINDOWS: [(&str, i64); 3] =
    [("1d", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400)];

/// A client secret shown once, at creation or rotation.
pub struct NewSecret(pub String);

impl Admin {
    pub fn new(
        store: Arc<Store>,
        directory: Arc<Directory>,
        keys: Arc<KeyRing>,
        keys_dir: PathBuf,
        issuer: String,
        jwks_max_age: u64,
    ) -> Self {
        Self {
            store,
            directory,
            keys,
            keys_dir,
            issuer,
            jwks_max_age,
            rotation: Mutex::default(),
            write: Mutex::new(()),
            expiries: Mutex::new(None),
        }
    }

    /// Housekeeping on the primary, every few seconds: each copy beside
    /// sled is written again once the log has moved `COPY_EVERY` changes
    /// past it (so a start never replays more than that, and the log still
    /// holds what it replays), and expired token revocations are dropped.
    pub fn housekeeping(&self, now: DateTime<Utc>) -> Result<(), AdminError> {
        self.directory.revocations.purge_expired(now.timestamp());
        // Within what the log keeps, so that a start can replay it.
        let every = COPY_EVERY.min(self.store.changes.keep() / 2).max(1);
        let last = self.store.changes.last().version;
        let (revoked_ids_at, applications_at) = self.store.copied_at();
        if last >= revoked_ids_at + every {
            self.write_revoked_ids_copy()?;
        }
        if last >= applications_at + every {
            self.write_application_copy()?;
        }
        let mut expired = Vec::new();
        self.store.revoked_tokens.scan_entries(|jti, exp| {
            if now.timestamp() > exp.saturating_add(crate::verifier::LEEWAY_SECS) {
                expired.push(jti);
            }
        })?;
        for jti in expired {
            self.store.revoked_tokens.delete(&jti)?;
        }
        self.persist_usage()?;
        self.load_expiries()?;
        Ok(())
    }

    /// Writes the API key uses noted in memory (this node's, and those its
    /// replicas reported) into the store, the later use winning, in one
    /// flushed batch. Off the request path: housekeeping, a replica's
    /// report, shutdown.
    pub fn persist_usage(&self) -> Result<(), AdminError> {
        let uses = self.directory.usage.take();
        if uses.is_empty() {
            return Ok(());
        }
        let mut merged = Vec::with_capacity(uses.len());
        for (id, usage) in &uses {
            let key = crate::crypto::b64url(id);
            // Only keys this store minted: a report naming others (from a
            // replica gone wrong) must not grow the table.
            if self.store.api_keys.get(&key)?.is_none() {
                continue;
            }
            let stored = self.store.api_key_usage.get(&key)?;
            merged.push((key, usage.latest(stored)));
        }
        let written = self
            .store
            .api_key_usage
            .put_many(merged.iter().map(|(k, u)| (k.as_str(), u)));
        if written.is_err() {
            // Kept for the next attempt.
            self.directory.usage.merge(uses);
        }
        Ok(written?)
    }

    /// The last use of key `id`: persisted, or noted since.
    fn last_used(&self, id: &str) -> Result<Option<Usage>, AdminError> {
        let stored = self.store.api_key_usage.get(id)?;
        let noted = parse_id(id).and_then(|id| self.directory.usage.get(&id));
        Ok(match noted {
            Some(noted) => Some(noted.latest(stored)),
            None => stored,
        })
    }

    /// Builds the expiry index once (a scan of the keys, off the request path).
    fn load_expiries(&self) -> Result<(), AdminError> {
        if self.lock_expiries().is_some() {
            return Ok(());
        }
        let mut index = std::collections::BTreeMap::new();
        // Under the admin lock, so that no mint or revocation slips between
        // the scan and the index.
        let _writer = self.lock();
        self.store.api_keys.scan(|key| {
            if key.revoked_at.is_none()
                && let Some(exp) = key.expires_at
            {
                *index.entry(exp.timestamp()).or_insert(0u32) += 1;
            }
        })?;
        *self.lock_expiries() = Some(index);
        Ok(())
    }

    fn lock_expiries(
        &self,
    ) -> std::sync::MutexGuard<'_, Option<std::collections::BTreeMap<i64, u32>>> {
        self.expiries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn index_expiry(&self, exp: Option<DateTime<Utc>>, delta: i64) {
        if let (Some(index), Some(exp)) = (self.lock_expiries().as_mut(), exp) {
            let count = index.entry(exp.timestamp()).or_insert(0);
            *count = u32::try_from((i64::from(*count) + delta).max(0)).unwrap_or(u32::MAX);
            if *count == 0 {
                index.remove(&exp.timestamp());
            }
        }
    }

    /// Live keys expiring within each of `EXPIRY_WINDOWS`, once the index
    /// is built.
    pub fn keys_expiring(&self, now: i64) -> Option<[u64; 3]> {
        if let Err(e) = self.load_expiries() {
            log::warn!("cannot read API key expiries: {e}");
        }
        let mut guard = self.lock_expiries();
        // Keys that have expired drop out.
        if let Some(index) = guard.as_mut() {
            *index = index.split_off(&now.saturating_add(1));
        }
        let index = guard.as_ref()?;
        let mut counts = [0u64; 3];
        for (count, (_, window)) in counts.iter_mut().zip(EXPIRY_WINDOWS) {
            *count = index
                .range(now.saturating_add(1)..=now.saturating_add(window))
                .map(|(_, n)| u64::from(*n))
                .sum();
        }
        Some(counts)
    }

    /// Writes the compact copy of the revoked API key ids (at shutdown,
    /// and by `housekeeping`).
    pub fn write_revoked_ids_copy(&self) -> Result<(), AdminError> {
        // The position before the ids: the copy holds at least what it names.
        let at = self.applied_position()?;
        let (ids, _) = self.directory.revocations.export();
        self.store
            .write_revoked_ids_copy(&at, ids)
            .map_err(|e| AdminError::Internal(format!("revoked-id copy: {e}")))
    }

    /// Writes the copy of the application records (at shutdown, and by
    /// `housekeeping`).
    pub fn write_application_copy(&self) -> Result<(), AdminError> {
        let at = self.applied_position()?;
        let snapshot = self.directory.snapshot();
        self.store
            .write_application_copy(&at, snapshot.applications().map(|app| &**app))
            .map_err(|e| AdminError::Internal(format!("application copy: {e}")))
    }

    /// The change-log position the directory has applied. Replaying from
    /// it is idempotent, so a copy may hold more than it names, never less.
    fn applied_position(&self) -> Result<crate::replication::log::Position, AdminError> {
        let version = self.directory.version();
        self.store.position_at(version)?.ok_or_else(|| {
            AdminError::Internal(format!("change log no longer holds version {version}"))
        })
    }

    /// The change log replicas follow.
    pub fn change_log(&self) -> &crate::replication::log::ChangeLog {
        &self.store.changes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn create_application(
        &self,
        new: NewApplication,
        now: DateTime<Utc>,
    ) -> Result<(ApplicationRecord, NewSecret), AdminError> {
        let client_id = match new.client_id {
            Some(id) => {
                validate_client_id(&id)?;
                id
            }
            None => generated_id("app-")?,
        };
        let name = match new.name {
            Some(name) => validate_name(&name)?,
            None => client_id.clone(),
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
            client_id: client_id.into(),
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
    fn modify(
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

    /// Writes a change with its record (if any) and its log entry, flushed,
    /// then applies it here. Callers hold the admin lock.
    fn commit(
        &self,
        record: Option<RecordWrite>,
        change: Change,
        now: DateTime<Utc>,
    ) -> Result<u64, AdminError> {
        let entry = self.store.commit(record, change)?;
        self.directory
            .apply(std::slice::from_ref(&entry), now.timestamp());
        Ok(entry.version)
    }

    /// Logs the current key set, for replicas. Callers hold the admin lock.
    fn publish_keys(&self, now: DateTime<Utc>) -> Result<u64, AdminError> {
        let keys = self.keys.current();
        let change = Change::Keys {
            public_keys: keys.public_keys(),
            active_kid: keys.signer().map(|s| s.kid.clone()),
        };
        self.commit(None, change, now)
    }
}

impl Admin {
    pub fn create_resource(
        &self,
        new: NewResource,
        now: DateTime<Utc>,
    ) -> Result<Resource, AdminError> {
        let id = match &new.id {
            Some(id) => {
                validate_client_id(id).map_err(|_| {
                    FieldError::new("id", "must be 1-64 characters of a-z, 0-9, '.', '_' or '-'")
                })?;
                id.clone()
            }
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

/// API keys, revocation, signing keys and the audit log.
impl Admin {
    /// Mints a key (shown once; only its record is stored).
    pub fn create_api_key(
        &self,
        client_id: &str,
        new: NewApiKey,
        now: DateTime<Utc>,
    ) -> Result<(ApiKeyView, String, Option<String>), AdminError> {
        let app = self.application(client_id)?;
        let (name, lifetime) = new.validate()?;
        let scopes = new.scopes()?;
        let scoped = !scopes.is_unlimited();
        let id = random_id().map_err(|e| AdminError::Internal(e.to_string()))?;
        let iat = app.issued_at(now.timestamp());
        let exp = lifetime.map(|secs| iat.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)));
        let claims = ApiKeyClaims {
            iss: &self.issuer,
            sub: client_id,
            client_id,
            jti: &id,
            iat,
            exp,
            generation: app.credential_generation(),
            scoped,
        };
        // Under the lock: a rotation's key-retention check sees either no
        // record or one naming the key that signed.
        let _writer = self.lock();
        let (key, kid, short) = {
            let keys = self.keys.guard();
            let signer = keys
                .signer()
                .ok_or_else(|| AdminError::Unavailable("no signing key".into()))?;
            let internal = |e: String| AdminError::Internal(e);
            let input = crate::api_keys::signing_input(&signer.kid, &claims)
                .map_err(|e| internal(e.to_string()))?;
            let signature = jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &signer.encoding,
                jsonwebtoken::Algorithm::EdDSA,
            )
            .map_err(|e| internal(e.to_string()))?;
            let short = crate::api_keys::short_form(&signer.kid, &claims, &signature);
            (format!("{input}.{signature}"), signer.kid.clone(), short)
        };
        let record = ApiKeyRecord {
            id,
            client_id: client_id.to_string(),
            name,
            created_at: now,
            expires_at: exp.and_then(|exp| DateTime::from_timestamp(exp, 0)),
            revoked_at: None,
            kid: Some(kid),
        };
        // The scopes first: the key is shown only once both are stored,
        // and a node without its scopes refuses it (it says it has some).
        if scoped {
            let write = self.store.api_key_scopes.put_op(&record.id, &scopes)?;
            let change = Change::SetApiKeyScopes {
                id: record.id.clone(),
                scopes,
            };
            self.commit(Some(write), change, now)?;
        }
        self.store.api_keys.create(&record.id, &record)?;
        self.index_expiry(record.expires_at, 1);
        log::info!("minted API key {} for {client_id}", record.id);
        Ok((self.view(record)?, key, short))
    }

    /// Renames a key and changes its scopes (`PATCH /api-keys/{id}`).
    pub fn update_api_key(
        &self,
        id: &str,
        patch: ApiKeyPatch,
        now: DateTime<Utc>,
    ) -> Result<ApiKeyView, AdminError> {
        let _writer = self.lock();
        let mut record = self
            .store
            .api_keys
            .get(id)?
            .ok_or_else(|| AdminError::NotFound(format!("API key {id:?}")))?;
        let parsed = parse_id(id).ok_or_else(|| AdminError::NotFound(format!("API key {id:?}")))?;
        let name = patch
            .name
            .as_deref()
            .map(|n| validate_key_name(Some(n)))
            .transpose()?;
        if patch.changes_scopes() {
            let current = self.scopes_of(&parsed);
            let next = patch.scope_fields().apply_to(&current)?;
            let known = self.directory.scoped_keys.get(&parsed).is_some();
            if next != current || !known && !next.is_unlimited() {
                let write = self.store.api_key_scopes.put_op(id, &next)?;
                let change = Change::SetApiKeyScopes {
                    id: id.to_string(),
                    scopes: next,
                };
                self.commit(Some(write), change, now)?;
                log::info!("changed the scopes of API key {id}");
            }
        }
        if let Some(name) = name
            && name != record.name
        {
            record.name = name;
            self.store.api_keys.put(id, &record)?;
        }
        self.view(record)
    }

    fn scopes_of(&self, id: &CredentialId) -> KeyScopes {
        self.directory
            .scoped_keys
            .get(id)
            .map(|s| s.scopes.clone())
            .unwrap_or_default()
    }

    fn view(&self, record: ApiKeyRecord) -> Result<ApiKeyView, AdminError> {
        let scopes = parse_id(&record.id)
            .map(|id| self.scopes_of(&id))
            .unwrap_or_default();
        let usage = self.last_used(&record.id)?;
        Ok(ApiKeyView {
            hosts: scopes.hosts,
            path_prefixes: scopes.path_prefixes,
            methods: scopes.methods,
            source_cidrs: scopes
                .source_cidrs
                .map(|c| c.iter().map(ToString::to_string).collect()),
            last_used_at: usage.map(|u| u.at),
            last_used_from: usage.map(|u| u.from.to_string()),
            record,
        })
    }

    /// Keys (one application's, or every one), oldest first, filtered.
    pub fn list_api_keys(
        &self,
        client_id: Option<&str>,
        filter: &KeyFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<ApiKeyView>, AdminError> {
        let records = match client_id {
            Some(client_id) => self.api_keys(client_id)?,
            None => {
                let mut all = self.store.api_keys.all()?;
                all.sort_by(|a, b| {
                    a.created_at
                        .cmp(&b.created_at)
                        .then_with(|| a.id.cmp(&b.id))
                });
                all
            }
        };
        let mut views = Vec::new();
        for record in records {
            let usage = self.last_used(&record.id)?;
            if filter.admits(&record, usage.as_ref(), now.timestamp()) {
                views.push(self.view(record)?);
            }
        }
        Ok(views)
    }

    /// The records of an application's keys, oldest first.
    pub fn api_keys(&self, client_id: &str) -> Result<Vec<ApiKeyRecord>, AdminError> {
        self.application(client_id)?;
        let mut keys: Vec<ApiKeyRecord> = self
            .store
            .api_keys
            .all()?
            .into_iter()
            .filter(|k| k.client_id == client_id)
            .collect();
        keys.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(keys)
    }

    /// The client of the API key `id`, if there is such a key: the Basic
    /// user name that goes with its short form.
    pub fn api_key_client(&self, id: &str) -> Result<Option<String>, AdminError> {
        Ok(self.store.api_keys.get(id)?.map(|record| record.client_id))
    }

    /// Revokes a key. Revoking it again changes nothing and succeeds.
    pub fn revoke_api_key(&self, id: &str, now: DateTime<Utc>) -> Result<(), AdminError> {
        let _writer = self.lock();
        let mut record = self
            .store
            .api_keys
            .get(id)?
            .ok_or_else(|| AdminError::NotFound(format!("API key {id:?}")))?;
        if record.revoked_at.is_none() && parse_id(id).is_some() {
            record.revoked_at = Some(now);
            let write = self.store.api_keys.put_op(id, &record)?;
            let change = Change::RevokeApiKey { id: id.to_string() };
            self.commit(Some(write), change, now)?;
            self.index_expiry(record.expires_at, -1);
            log::info!("revoked API key {id}");
        } else if let Some(parsed) = parse_id(id) {
            // Revoked on disk already (a retry after a failed flush, say):
            // this node honours it whatever happened to the first attempt.
            self.directory.revocations.revoke_api_key(parsed);
        }
        Ok(())
    }

    /// Invalidates every token and key the application was issued until now.
    pub fn revoke_tokens(
        &self,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<ApplicationRecord, AdminError> {
        let generation = new_generation()?;
        let app = self.modify(client_id, now, |app| {
            // Every credential issued so far carries the old generation.
            // not_before (the next second, so that tokens of this one are
            // refused too) still covers credentials older than generations.
            app.generation = generation;
            app.not_before = now.timestamp() + 1;
            Ok(())
        })?;
        log::info!("revoked every credential issued to {client_id} so far");
        Ok(app)
    }

    /// Revokes one access token (RFC 7009) until it expires.
    pub fn revoke_access_token(
        &self,
        jti: CredentialId,
        exp: i64,
        now: DateTime<Utc>,
    ) -> Result<(), AdminError> {
        let _writer = self.lock();
        let jti = crate::crypto::b64url(&jti);
        let write = self.store.revoked_tokens.put_op(&jti, &exp)?;
        self.commit(Some(write), Change::RevokeAccessToken { jti, exp }, now)?;
        Ok(())
    }

    /// Appends to the audit log (flushed).
    pub fn record_audit(
        &self,
        actor: String,
        action: String,
        target: String,
        status: u16,
        now: DateTime<Utc>,
    ) -> Result<(), AdminError> {
        let entry = AuditEntry {
            id: audit_id(self.store.next_sequence()?),
            at: now,
            actor,
            action,
            target,
            status,
            outcome: if status < 400 {
                Outcome::Success
            } else {
                Outcome::Failure
            },
        };
        self.store.audit.put(&entry.id, &entry)?;
        Ok(())
    }

    /// Newest first, `limit` entries older than `before`.
    pub fn audit(&self, before: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>, AdminError> {
        Ok(self.store.audit.page_back(before, limit)?)
    }

    /// `audit`, only the entries whose actor and action contain the
    /// filter's texts; with where the next page starts (`None` at the
    /// end). One page looks at no more than `AUDIT_SCAN_LIMIT` entries.
    pub fn audit_matching(
        &self,
        before: Option<&str>,
        limit: usize,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditEntry>, Option<String>), AdminError> {
        Ok(self
            .store
            .audit
            .page_back_where(before, limit, AUDIT_SCAN_LIMIT, |e| filter.admits(e))?)
    }
}

/// How many audit entries one filtered page looks at, at most.
pub const AUDIT_SCAN_LIMIT: usize = 10_000;

/// Which audit entries a listing shows: those whose actor and action
/// contain these texts (case-insensitive).
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
}

impl AuditFilter {
    pub fn admits(&self, entry: &AuditEntry) -> bool {
        let contains = |text: &str, part: &Option<String>| {
            part.as_deref()
                .is_none_or(|p| text.to_lowercase().contains(&p.to_lowercase()))
        };
        contains(&entry.actor, &self.actor) && contains(&entry.action, &self.action)
    }
}

/// A store insert, with a taken key answered as the admin API's 409.
fn created(result: Result<u64, AdminError>, what: &str, key: &str) -> Result<(), AdminError> {
    match result {
        Err(AdminError::Store(StoreError::AlreadyExists)) => Err(AdminError::Conflict(format!(
            "{what} {key:?} already exists"
        ))),
        other => other.map(|_| ()),
    }
}

/// A store removal, with nothing to remove answered as the admin API's 404.
fn removed(result: Result<u64, AdminError>, what: &str, key: &str) -> Result<(), AdminError> {
    match result {
        Err(AdminError::Store(StoreError::Missing)) => {
            Err(AdminError::NotFound(format!("{what} {key:?}")))
        }
        other => other.map(|_| ()),
    }
}

fn key_error(e: KeyError) -> AdminError {
    match e {
        KeyError::UnknownKid(kid) => AdminError::NotFound(format!("signing key {kid:?}")),
        KeyError::Active(_) => AdminError::Conflict(e.to_string()),
        other => AdminError::Internal(other.to_string()),
    }
}

fn new_client_secret() -> Result<NewSecret, AdminError> {
    random_secret(CLIENT_SECRET_PREFIX)
        .map(NewSecret)
        .map_err(|e| AdminError::Internal(e.to_string()))
}

/// A random application generation: non-zero, and within JSON's exact
/// integers (53 bits) so that every client reads the claim unchanged.
fn new_generation() -> Result<u64, AdminError> {
    let bytes = random_bytes::<8>().map_err(|e| AdminError::Internal(e.to_string()))?;
    Ok((u64::from_le_bytes(bytes) & ((1 << 53) - 1)).max(1))
}

/// `prefix` and 16 lowercase hex digits.
fn generated_id(prefix: &str) -> Result<String, AdminError> {
    let bytes = random_bytes::<8>().map_err(|e| AdminError::Internal(e.to_string()))?;
    Ok(bytes.iter().fold(String::from(prefix), |mut id, b| {
        id.push_str(&format!("{b:02x}"));
        id
    }))
}
