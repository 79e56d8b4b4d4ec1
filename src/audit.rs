//! The admin audit log: who (which admin token) did what, when, and how it
//! ended. Kept in sled, newest first.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increases with time; pages are cut by it.
    pub id: String,
    pub at: DateTime<Utc>,
    /// `admin:<fingerprint>`: the admin token's digest fingerprint, never the token.
    pub actor: String,
    /// Method and route, e.g. `POST /admin/v1/applications/{client_id}/api-keys`.
    pub action: String,
    /// The path acted on, e.g. `/admin/v1/applications/canister/api-keys`.
    pub target: String,
    pub status: u16,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

/// Audit ids sort in time order as text: zero-padded decimal.
pub fn audit_id(sequence: u64) -> String {
    format!("{sequence:020}")
}
