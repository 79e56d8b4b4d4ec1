//! API keys: long-lived credentials an admin mints for an application.
//! A key is a JWT (`typ: apikey+jwt`) signed like an access token; only
//! its record is stored, never the key itself.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::applications::FieldError;

/// The longest lifetime an admin may give a key: ten years.
pub const MAX_API_KEY_LIFETIME: u64 = 10 * 366 * 86_400;
const MIN_API_KEY_LIFETIME: u64 = 60;
const MAX_NAME_LEN: usize = 128;

/// What the store keeps about a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// The key's `jti`.
    pub id: String,
    pub client_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The signing key it was signed with: that key stays in the JWKS
    /// while the API key lives. Unknown for keys minted before 0.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// `POST /admin/v1/applications/{client_id}/api-keys`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: Option<String>,
    /// Seconds until the key expires; without it the key never does.
    pub expires_in: Option<u64>,
}

impl NewApiKey {
    /// The validated name and lifetime.
    pub fn validate(&self) -> Result<(String, Option<u64>), FieldError> {
        let name = self
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| FieldError::new("name", "is required"))?;
        if name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                format!("must be 1-{MAX_NAME_LEN} characters without control characters"),
            ));
        }
        if let Some(secs) = self.expires_in
            && !(MIN_API_KEY_LIFETIME..=MAX_API_KEY_LIFETIME).contains(&secs)
        {
            return Err(FieldError::new(
                "expires_in",
                format!(
                    "must be between {MIN_API_KEY_LIFETIME} and {MAX_API_KEY_LIFETIME} seconds"
                ),
            ));
        }
        Ok((name.to_string(), self.expires_in))
    }
}

/// The claims of an API key (SPEC §5): no `exp` unless one was asked for.
#[derive(Debug, Serialize)]
pub struct ApiKeyClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub client_id: &'a str,
    pub jti: &'a str,
    pub iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// The application's generation (see `ApplicationRecord::generation`).
    #[serde(rename = "gen", skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
}
