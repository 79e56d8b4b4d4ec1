//! API keys: long-lived credentials an admin mints for an application.
//! A key is a JWT (`typ: apikey+jwt`) signed like an access token; only
//! its record is stored, never the key itself.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::applications::FieldError;
use crate::key_scopes::{KeyScopes, ScopeFields};
use crate::key_usage::Usage;

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
    #[serde(default, deserialize_with = "crate::resources::nullable")]
    pub hosts: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "crate::resources::nullable")]
    pub path_prefixes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "crate::resources::nullable")]
    pub methods: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "crate::resources::nullable")]
    pub source_cidrs: Option<Option<Vec<String>>>,
}

/// `PATCH /admin/v1/api-keys/{id}`: absent fields stay; a scope set to
/// `null` no longer limits the key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::resources::nullable")]
    pub hosts: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "crate::resources::nullable")]
    pub path_prefixes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "crate::resources::nullable")]
    pub methods: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "crate::resources::nullable")]
    pub source_cidrs: Option<Option<Vec<String>>>,
}

impl ApiKeyPatch {
    pub fn scope_fields(&self) -> ScopeFields {
        ScopeFields::of(
            &self.hosts,
            &self.path_prefixes,
            &self.methods,
            &self.source_cidrs,
        )
    }

    pub fn changes_scopes(&self) -> bool {
        !self.scope_fields().is_empty()
    }
}

/// A key's name: trimmed, 1-128 characters, no control characters.
pub fn validate_key_name(name: Option<&str>) -> Result<String, FieldError> {
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| FieldError::new("name", "is required"))?;
    if name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            format!("must be 1-{MAX_NAME_LEN} characters without control characters"),
        ));
    }
    Ok(name.to_string())
}

impl NewApiKey {
    /// The key's scopes, validated.
    pub fn scopes(&self) -> Result<KeyScopes, FieldError> {
        ScopeFields::of(
            &self.hosts,
            &self.path_prefixes,
            &self.methods,
            &self.source_cidrs,
        )
        .apply_to(&KeyScopes::default())
    }

    /// The validated name and lifetime.
    pub fn validate(&self) -> Result<(String, Option<u64>), FieldError> {
        let name = validate_key_name(self.name.as_deref())?;
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
        Ok((name, self.expires_in))
    }
}

/// The longest duration a filter takes: a hundred years.
const MAX_FILTER_SECS: i64 = 100 * 366 * 86_400;

/// `30m`, `12h`, `7d` (also `s` and `w`) as seconds, for the listing
/// filters `unused_for` and `expires_within`.
pub fn parse_duration(field: &str, text: &str) -> Result<i64, FieldError> {
    let bad = || {
        FieldError::new(
            field,
            "must be a whole number and a unit: s, m, h, d or w (e.g. 30m, 12h, 7d)",
        )
    };
    let text = text.trim();
    let split = text.char_indices().last().map(|(i, _)| i).ok_or_else(bad)?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let count: i64 = digits.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    count
        .checked_mul(unit)
        .filter(|secs| *secs <= MAX_FILTER_SECS)
        .ok_or_else(|| FieldError::new(field, "must be at most a hundred years"))
}

/// Which keys a listing shows.
#[derive(Debug, Default, Clone)]
pub struct KeyFilter {
    /// Keys not used within this many seconds (or never used).
    pub unused_for: Option<i64>,
    /// Keys that expire within this many seconds (and have not yet).
    pub expires_within: Option<i64>,
}

impl KeyFilter {
    /// Whether any filter is set (and so revoked keys are left out).
    pub fn is_active(&self) -> bool {
        self.unused_for.is_some() || self.expires_within.is_some()
    }

    /// Revoked keys are left out of both filters: they are done with.
    pub fn admits(&self, record: &ApiKeyRecord, last_used: Option<&Usage>, now: i64) -> bool {
        if self.is_active() && record.revoked_at.is_some() {
            return false;
        }
        if let Some(window) = self.unused_for
            && last_used.is_some_and(|u| u.at.timestamp() > now.saturating_sub(window))
        {
            return false;
        }
        if let Some(window) = self.expires_within {
            let Some(exp) = record.expires_at.map(|e| e.timestamp()) else {
                return false;
            };
            if exp <= now || exp > now.saturating_add(window) {
                return false;
            }
        }
        true
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
    /// Minted with scopes: a node that does not hold them (yet) refuses it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub scoped: bool,
}

/// An API key's JOSE header, in the one form minting writes it.
#[derive(Serialize)]
struct KeyHeader<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// The signing input of an API key (`header.claims`, base64url), with
/// header and claims serialised in one fixed form: what minting signs, and
/// what the short form below is rebuilt into.
pub fn signing_input(kid: &str, claims: &ApiKeyClaims<'_>) -> Result<String, serde_json::Error> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::to_vec(&KeyHeader {
        alg: "EdDSA",
        typ: crate::claims::API_KEY_TYP,
        kid,
    })?;
    let claims = serde_json::to_vec(claims)?;
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    ))
}

/// The short form of an API key starts so. A JWT never does (`eyJ`).
pub const SHORT_PREFIX: &str = "ghk1_";

const FLAG_EXP: u8 = 1;
const FLAG_GEN: u8 = 2;
const FLAG_SCOPED: u8 = 4;
const SIGNATURE_LEN: usize = 64;

/// The same key in at most 190 characters, for the Basic password of
/// clients that cut passwords at 255 bytes (cadaver and davfs2, through
/// neon; Windows' credential prompt). A JWT key is some 400. It holds what
/// the JWT holds that the verifier cannot know: the kid, the key id, the
/// times, the generation, whether it is scoped, and the signature, in
/// bytes; the issuer is the verifier's own, and the client is the Basic
/// user name. `expand_short` rebuilds the very JWT that was signed, which
/// is then verified as any key is.
pub fn short_form(kid: &str, claims: &ApiKeyClaims<'_>, signature: &str) -> Option<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let kid = URL_SAFE_NO_PAD.decode(kid).ok()?;
    let jti = URL_SAFE_NO_PAD.decode(claims.jti).ok()?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    if kid.len() != 32 || jti.len() != 16 || signature.len() != SIGNATURE_LEN {
        return None;
    }
    let mut flags = 0;
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(&kid);
    bytes.extend_from_slice(&jti);
    bytes.extend_from_slice(&claims.iat.to_be_bytes());
    if let Some(exp) = claims.exp {
        flags |= FLAG_EXP;
        bytes.extend_from_slice(&exp.to_be_bytes());
    }
    if let Some(generation) = claims.generation {
        flags |= FLAG_GEN;
        bytes.extend_from_slice(&generation.to_be_bytes());
    }
    if claims.scoped {
        flags |= FLAG_SCOPED;
    }
    bytes[0] = flags;
    bytes.extend_from_slice(&signature);
    Some(format!("{SHORT_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The id of the API key a short form stands for (its `jti`), read
/// without verifying anything; `None` for anything that is not one.
pub fn short_form_id(short: &str) -> Option<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let encoded = short.strip_prefix(SHORT_PREFIX)?;
    if encoded.len() > 200 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    bytes
        .get(1 + 32..1 + 32 + 16)
        .map(|id| URL_SAFE_NO_PAD.encode(id))
}

/// The JWT a short form stands for, given the issuer and the client (the
/// Basic user name); `None` for anything that is not a short form.
pub fn expand_short(short: &str, issuer: &str, client_id: &str) -> Option<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let encoded = short.strip_prefix(SHORT_PREFIX)?;
    if encoded.len() > 200 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    let (&flags, mut rest) = bytes.split_first()?;
    if flags & !(FLAG_EXP | FLAG_GEN | FLAG_SCOPED) != 0 {
        return None;
    }
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    let number = |b: &[u8]| -> Option<[u8; 8]> { b.try_into().ok() };
    let kid = URL_SAFE_NO_PAD.encode(take(32)?);
    let jti = URL_SAFE_NO_PAD.encode(take(16)?);
    let iat = i64::from_be_bytes(number(take(8)?)?);
    let exp = match flags & FLAG_EXP {
        0 => None,
        _ => Some(i64::from_be_bytes(number(take(8)?)?)),
    };
    let generation = match flags & FLAG_GEN {
        0 => None,
        _ => Some(u64::from_be_bytes(number(take(8)?)?)),
    };
    let signature = take(SIGNATURE_LEN)?;
    let signature = URL_SAFE_NO_PAD.encode(signature);
    if !rest.is_empty() {
        return None;
    }
    let claims = ApiKeyClaims {
        iss: issuer,
        sub: client_id,
        client_id,
        jti: &jti,
        iat,
        exp,
        generation,
        scoped: flags & FLAG_SCOPED != 0,
    };
    let input = signing_input(&kid, &claims).ok()?;
    Some(format!("{input}.{signature}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_form_expands_to_the_signed_key() {
        use base64::Engine as _;
        let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([9u8; 64]);
        for (exp, generation, scoped) in
            [(None, None, false), (Some(1_900_000_000), Some(42), true)]
        {
            let claims = ApiKeyClaims {
                iss: "https://auth.example.com",
                sub: "canister",
                client_id: "canister",
                jti: "AAECAwQFBgcICQoLDA0ODw",
                iat: 1_800_000_000,
                exp,
                generation,
                scoped,
            };
            let jwt = format!("{}.{signature}", signing_input(&kid, &claims).unwrap());
            let short = short_form(&kid, &claims, &signature).unwrap();
            assert!(
                short.len() <= 200 && jwt.len() > 255,
                "{} {}",
                short.len(),
                jwt.len()
            );
            assert_eq!(
                expand_short(&short, "https://auth.example.com", "canister").as_deref(),
                Some(jwt.as_str())
            );
            // Another client or issuer rebuilds another JWT: its signature fails.
            assert_ne!(
                expand_short(&short, "https://auth.example.com", "other").as_deref(),
                Some(jwt.as_str())
            );
        }
        for bad in [
            "ghk1_",
            "ghk1_!!",
            "ghk1_AAAA",
            "eyJhbGciOi",
            &format!("ghk1_{}", "A".repeat(300)),
        ] {
            assert_eq!(expand_short(bad, "i", "c"), None, "{bad}");
        }
    }

    #[test]
    fn durations_read_as_written() {
        assert_eq!(parse_duration("d", "30m").unwrap(), 1800);
        assert_eq!(parse_duration("d", "12h").unwrap(), 43_200);
        assert_eq!(parse_duration("d", "7d").unwrap(), 604_800);
        assert_eq!(parse_duration("d", "2w").unwrap(), 1_209_600);
        for bad in [
            "",
            "d",
            "7",
            "7x",
            "-7d",
            "7 d",
            "1.5h",
            "9999999999999d",
            "7é",
        ] {
            assert_eq!(parse_duration("f", bad).unwrap_err().field, "f", "{bad}");
        }
    }
}
