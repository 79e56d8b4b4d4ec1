//! The admin audit log: appending, and reading it newest first.

use chrono::{DateTime, Utc};

use crate::audit::{AuditEntry, Outcome, audit_id};

use super::{Admin, AdminError};

impl Admin {
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
