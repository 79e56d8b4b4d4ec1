//! The primary's periodic work: the copies beside sled, expired token
//! revocations, API key usage, and expired entries of the key index.

use chrono::{DateTime, Utc};

use super::{Admin, AdminError};

/// The revoked-id copy is written again after this many logged changes.
const COPY_EVERY: u64 = 10_000;

/// The windows of the `api_keys_expiring` gauge.
pub const EXPIRY_WINDOWS: [(&str, i64); 3] =
    [("1d", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400)];

impl Admin {
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
        // A day back, so that a clock that jumps ahead drops no live key.
        self.store
            .key_index
            .drop_expired(now.timestamp().saturating_sub(86_400))?;
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

    /// Live keys expiring within each of `EXPIRY_WINDOWS`, read from the
    /// store's expiry index up to the longest window (for `/metrics`, off
    /// the async workers): no copy of the counts to keep in step.
    pub fn keys_expiring(&self, now: i64) -> Option<[u64; 3]> {
        let longest = EXPIRY_WINDOWS.iter().map(|(_, w)| *w).max().unwrap_or(0);
        let expiries = self
            .store
            .key_index
            .expiries(now, now.saturating_add(longest))
            .inspect_err(|e| log::warn!("cannot read API key expiries: {e}"))
            .ok()?;
        let mut counts = [0u64; 3];
        for (count, (_, window)) in counts.iter_mut().zip(EXPIRY_WINDOWS) {
            let until = now.saturating_add(window);
            *count = expiries.iter().filter(|&&exp| exp <= until).count() as u64;
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
            .map_err(AdminError::internal("revoked-id copy"))
    }

    /// Writes the copy of the application records (at shutdown, and by
    /// `housekeeping`).
    pub fn write_application_copy(&self) -> Result<(), AdminError> {
        let at = self.applied_position()?;
        let snapshot = self.directory.snapshot();
        self.store
            .write_application_copy(&at, snapshot.applications().map(|app| &**app))
            .map_err(AdminError::internal("application copy"))
    }

    /// The change-log position the directory has applied. Replaying from
    /// it is idempotent, so a copy may hold more than it names, never less.
    fn applied_position(&self) -> Result<crate::replication::log::Position, AdminError> {
        let version = self.directory.version();
        self.store.position_at(version)?.ok_or_else(|| {
            AdminError::internal("copy position")(format!(
                "change log no longer holds version {version}"
            ))
        })
    }
}
