//! Revocation: one API key, one access token (RFC 7009), or every
//! credential an application was issued so far.

use chrono::{DateTime, Utc};

use crate::applications::ApplicationRecord;
use crate::replication::Change;
use crate::revocation::{CredentialId, parse_id};

use super::{Admin, AdminError, new_generation};

impl Admin {
    /// Revokes a key. Revoking it again changes nothing and succeeds.
    pub fn revoke_api_key(&self, id: &str, now: DateTime<Utc>) -> Result<(), AdminError> {
        let _writer = self.lock();
        let mut record = self.api_key_record(id)?;
        if record.revoked_at.is_none() && parse_id(id).is_some() {
            record.revoked_at = Some(now);
            let write = self.store.api_keys.put_op(id, &record)?;
            let unindexed = self.store.key_index.revoked(&record);
            let change = Change::RevokeApiKey { id: id.to_string() };
            self.commit([write].into_iter().chain(unindexed), change, now)?;
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
}
