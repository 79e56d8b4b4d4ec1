//! API keys: minting (the key is shown once, only its record stored),
//! changing their scopes, and listing them with their last use.

use chrono::{DateTime, Utc};

use crate::api_keys::{
    ApiKeyClaims, ApiKeyPatch, ApiKeyRecord, KeyFilter, NewApiKey, validate_key_name,
};
use crate::crypto::random_id;
use crate::key_scopes::KeyScopes;
use crate::key_usage::Usage;
use crate::replication::Change;
use crate::revocation::{CredentialId, parse_id};

use super::{Admin, AdminError};

/// A key just signed: the JWT, the kid that signed it, its short form.
struct SignedKey {
    key: String,
    kid: String,
    short: Option<String>,
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
        let id = random_id().map_err(AdminError::internal("API key id"))?;
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
        let signed = self.sign_api_key(&claims)?;
        let record = ApiKeyRecord {
            id,
            client_id: client_id.to_string(),
            name,
            created_at: now,
            expires_at: exp.and_then(|exp| DateTime::from_timestamp(exp, 0)),
            revoked_at: None,
            kid: Some(signed.kid),
        };
        self.store_api_key(&record, scopes, now)?;
        log::info!("minted API key {} for {client_id}", record.id);
        Ok((self.view(record)?, signed.key, signed.short))
    }

    /// Signs `claims` with the active signing key. Callers hold the admin
    /// lock, so that the key cannot retire before the record names it.
    fn sign_api_key(&self, claims: &ApiKeyClaims<'_>) -> Result<SignedKey, AdminError> {
        let keys = self.keys.guard();
        let signer = keys
            .signer()
            .ok_or_else(|| AdminError::Unavailable("no signing key".into()))?;
        let input = crate::api_keys::signing_input(&signer.kid, claims)
            .map_err(AdminError::internal("API key claims"))?;
        let signature = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &signer.encoding,
            jsonwebtoken::Algorithm::EdDSA,
        )
        .map_err(AdminError::internal("API key signature"))?;
        Ok(SignedKey {
            short: crate::api_keys::short_form(&signer.kid, claims, &signature),
            key: format!("{input}.{signature}"),
            kid: signer.kid.clone(),
        })
    }

    /// Stores a minted key's scopes (if it has any), then its record. The
    /// scopes first: the key is shown only once both are stored, and a
    /// node without its scopes refuses it (it says it has some). Callers
    /// hold the admin lock.
    fn store_api_key(
        &self,
        record: &ApiKeyRecord,
        scopes: KeyScopes,
        now: DateTime<Utc>,
    ) -> Result<(), AdminError> {
        if !scopes.is_unlimited() {
            let write = self.store.api_key_scopes.put_op(&record.id, &scopes)?;
            let change = Change::SetApiKeyScopes {
                id: record.id.clone(),
                scopes,
            };
            self.commit(Some(write), change, now)?;
        }
        self.store.create_api_key(record)?;
        Ok(())
    }

    /// Renames a key and changes its scopes (`PATCH /api-keys/{id}`).
    pub fn update_api_key(
        &self,
        id: &str,
        patch: ApiKeyPatch,
        now: DateTime<Utc>,
    ) -> Result<ApiKeyView, AdminError> {
        let _writer = self.lock();
        let mut record = self.api_key_record(id)?;
        let parsed = parse_id(id).ok_or_else(|| no_api_key(id))?;
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

    /// The stored record of key `id`, or the admin API's 404.
    pub(super) fn api_key_record(&self, id: &str) -> Result<ApiKeyRecord, AdminError> {
        self.store.api_keys.get(id)?.ok_or_else(|| no_api_key(id))
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
            // Every key: one pass over the records, keeping only those the
            // filter may admit, so that a million revoked keys are never
            // held at once when a filter leaves them out.
            None => {
                let mut kept = Vec::new();
                self.store.api_keys.scan(|record| {
                    if !filter.is_active() || record.revoked_at.is_none() {
                        kept.push(record);
                    }
                })?;
                oldest_first(&mut kept);
                kept
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

    /// The records of an application's keys, oldest first: through the
    /// index, or, for an application with keys from before it, a scan.
    pub fn api_keys(&self, client_id: &str) -> Result<Vec<ApiKeyRecord>, AdminError> {
        self.application(client_id)?;
        let mut keys = Vec::new();
        match self.store.key_index.ids_of(client_id)? {
            Some(ids) => {
                for id in ids {
                    let record = self.store.api_keys.get(&id)?;
                    keys.extend(record.filter(|r| r.client_id == client_id));
                }
            }
            // Keys from before the index: found once by a pass over the
            // records, which then indexes them.
            None => {
                self.store.api_keys.scan(|record| {
                    if record.client_id == client_id {
                        keys.push(record);
                    }
                })?;
                let ids = keys.iter().map(|k| k.id.as_str());
                self.store.key_index.index_client(client_id, ids)?;
            }
        }
        oldest_first(&mut keys);
        Ok(keys)
    }

    /// The client of the API key `id`, if there is such a key: the Basic
    /// user name that goes with its short form.
    pub fn api_key_client(&self, id: &str) -> Result<Option<String>, AdminError> {
        Ok(self.store.api_keys.get(id)?.map(|record| record.client_id))
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
}

fn oldest_first(keys: &mut [ApiKeyRecord]) {
    keys.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// The admin API's 404 for an API key it does not have.
fn no_api_key(id: &str) -> AdminError {
    AdminError::NotFound(format!("API key {id:?}"))
}
