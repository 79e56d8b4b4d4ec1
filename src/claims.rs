//! The JWTs gatehouse signs: their header types and claim sets.

use serde::{Deserialize, Serialize};

/// RFC 9068 access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// API keys (explicitly typed, RFC 8725 §3.11).
pub const API_KEY_TYP: &str = "apikey+jwt";

/// `aud`: one value is written as a string, several as an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, value: &str) -> bool {
        match self {
            Audience::One(one) => one == value,
            Audience::Many(many) => many.iter().any(|a| a == value),
        }
    }
}

/// RFC 9068 §2.2 claims, plus `groups`, `scope` and the application's
/// generation (`gen`): a token is valid only while it is current, so
/// re-creation and `revoke-tokens` end it without a clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub client_id: String,
    pub aud: Audience,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The application's generation (see `ApplicationRecord::generation`).
    #[serde(rename = "gen", default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
}
