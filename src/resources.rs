//! Resources: the forward-auth rules that say who may reach which host,
//! path and methods, as admins write them and the store keeps them.
//! `crate::rules` compiles them for matching.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::applications::{FieldError, IDENTIFIER_RULE, is_identifier, normalize_groups};
use crate::identity_headers::IdentityHeader;
use crate::parsed::checked_str;

/// A forward-auth rule as stored and shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resource {
    pub id: ResourceId,
    /// Lowercase host, or a pattern where `*` stands for exactly one label.
    pub host: HostPattern,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Uppercase method names; `None` allows every method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Empty denies everyone.
    pub allowed_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Identity header names replaced by this rule; an empty name drops the header.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub headers: HashMap<String, String>,
    /// `Authorization: Basic base64(client_id:api_key)` is accepted here.
    #[serde(default)]
    pub basic: bool,
    /// What a request without credentials is answered with: the Basic
    /// challenge instead of the session fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<Challenge>,
    /// The realm of the Basic challenge (default `gatehouse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A challenge a rule answers requests without credentials with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Challenge {
    Basic,
}

/// The realm of a Basic challenge when a rule names none.
pub const DEFAULT_REALM: &str = "gatehouse";
const MAX_REALM_LEN: usize = 128;

/// `POST /admin/v1/resources`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewResource {
    pub id: Option<String>,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    pub audience: Option<String>,
    #[serde(default)]
    pub headers: HashMap<String, String>,
    #[serde(default)]
    pub basic: bool,
    pub challenge: Option<Challenge>,
    pub realm: Option<String>,
}

/// `PATCH /admin/v1/resources/{id}`: absent fields stay; `null` clears an optional one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcePatch {
    pub host: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub path_prefix: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub methods: Option<Option<Vec<String>>>,
    pub allowed_groups: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub audience: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub headers: Option<Option<HashMap<String, String>>>,
    pub basic: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub challenge: Option<Option<Challenge>>,
    #[serde(default, deserialize_with = "nullable")]
    pub realm: Option<Option<String>>,
}

/// Tells "absent" (outer `None`, by `default`) from `null` (`Some(None)`).
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl Resource {
    /// Builds a validated resource from an admin request: `id` is the one
    /// it names, or one generated for it.
    pub fn create(id: String, new: NewResource, now: DateTime<Utc>) -> Result<Self, FieldError> {
        let id = ResourceId::parse(&id)?;
        let host = new
            .host
            .ok_or_else(|| FieldError::new("host", "is required"))?;
        let mut resource = Resource {
            id,
            host: HostPattern::parse(&host)?,
            path_prefix: None,
            methods: None,
            allowed_groups: Vec::new(),
            audience: None,
            headers: HashMap::new(),
            basic: false,
            challenge: None,
            realm: None,
            created_at: now,
            updated_at: now,
        };
        resource.apply(ResourcePatch {
            host: None,
            path_prefix: Some(new.path_prefix),
            methods: Some(new.methods),
            allowed_groups: Some(new.allowed_groups),
            audience: Some(new.audience),
            headers: Some(Some(new.headers)),
            basic: Some(new.basic),
            challenge: Some(new.challenge),
            realm: Some(new.realm),
        })?;
        Ok(resource)
    }

    /// Applies and validates a change; on error `self` is left unchanged.
    pub fn apply(&mut self, patch: ResourcePatch) -> Result<(), FieldError> {
        let mut next = self.clone();
        if let Some(host) = patch.host {
            next.host = HostPattern::parse(&host)?;
        }
        if let Some(prefix) = patch.path_prefix {
            next.path_prefix = prefix
                .map(|p| normalize_path_prefix(&p))
                .transpose()?
                .flatten();
        }
        if let Some(methods) = patch.methods {
            next.methods = methods.map(|m| normalize_methods(&m)).transpose()?;
        }
        if let Some(groups) = patch.allowed_groups {
            next.allowed_groups = normalize_groups("allowed_groups", &groups)?;
        }
        if let Some(audience) = patch.audience {
            next.audience = audience.map(|a| validate_audience(&a)).transpose()?;
        }
        if let Some(headers) = patch.headers {
            next.headers = normalize_header_overrides(headers.unwrap_or_default())?;
        }
        if let Some(basic) = patch.basic {
            next.basic = basic;
        }
        if let Some(challenge) = patch.challenge {
            next.challenge = challenge;
        }
        if let Some(realm) = patch.realm {
            next.realm = realm.map(|r| validate_realm(&r)).transpose()?;
        }
        *self = next;
        Ok(())
    }

    /// The realm of this rule's Basic challenge, if it has one.
    pub fn basic_realm(&self) -> Option<&str> {
        match self.challenge {
            Some(Challenge::Basic) => Some(self.realm.as_deref().unwrap_or(DEFAULT_REALM)),
            None => None,
        }
    }
}

/// A resource's id: 1–64 characters of `[a-z0-9._-]`, as client ids are.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId(Box<str>);

impl ResourceId {
    pub fn parse(id: &str) -> Result<Self, FieldError> {
        if is_identifier(id) {
            Ok(Self(id.into()))
        } else {
            Err(FieldError::new("id", IDENTIFIER_RULE))
        }
    }
}

checked_str!(ResourceId, FieldError);

/// The host a rule covers: `example.com`, `dav.example.com`,
/// `*.example.com`: lowercase labels of letters, digits and hyphens, where
/// `*` is one whole label. No port. Read with surrounding spaces, one final
/// dot and any case; held normalized (which parses as itself, so stored
/// rules read back unchanged).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPattern(Box<str>);

impl HostPattern {
    pub fn parse(host: &str) -> Result<Self, FieldError> {
        let bad = |why: &str| FieldError::new("host", why.to_string());
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() || host.len() > 253 {
            return Err(bad("must be a host name of 1-253 characters"));
        }
        if host.contains(':') {
            return Err(bad(
                "must not contain a port (ports are ignored when matching)",
            ));
        }
        for label in host.split('.') {
            let ok = label == "*"
                || (!label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            if !ok {
                return Err(bad(
                    "each label must be letters, digits and '-', or '*' standing for exactly one label",
                ));
            }
        }
        Ok(Self(host.into_boxed_str()))
    }
}

checked_str!(HostPattern, FieldError);

/// A prefix is stored in the canonical form request paths are read in
/// (decoded, dot segments resolved) without a trailing slash, so that
/// `/private/` covers `/private` too; `/` alone is the same as no prefix.
/// Characters that backends read differently have no place in it.
pub(crate) fn normalize_path_prefix(prefix: &str) -> Result<Option<String>, FieldError> {
    let bad = || {
        FieldError::new(
            "path_prefix",
            "must start with '/' and hold no '?', '#', ';', '\\' or control characters",
        )
    };
    if !prefix.starts_with('/') || prefix.len() > 1024 || prefix.contains(['?', '#']) {
        return Err(bad());
    }
    let canonical = crate::target::path::canonical(prefix).map_err(|_| bad())?;
    if canonical.contains([';', '\\', '#', '?']) {
        return Err(bad());
    }
    let trimmed = canonical.trim_end_matches('/');
    Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
}

pub(crate) fn normalize_methods(methods: &[String]) -> Result<Vec<String>, FieldError> {
    let mut out = Vec::with_capacity(methods.len());
    for (i, method) in methods.iter().enumerate() {
        let ok = !method.is_empty()
            && method.len() <= 32
            && method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-');
        if !ok {
            return Err(FieldError::new(
                format!("methods[{i}]"),
                "must be an HTTP method name",
            ));
        }
        out.push(method.to_ascii_uppercase());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A realm goes into a quoted-string of `WWW-Authenticate` as it is, and
/// clients show it in their password prompt: printable text, no quote or
/// backslash (which would end or escape the string), bounded.
fn validate_realm(realm: &str) -> Result<String, FieldError> {
    let realm = realm.trim();
    if realm.is_empty()
        || realm.chars().count() > MAX_REALM_LEN
        || realm
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(FieldError::new(
            "realm",
            format!("must be 1-{MAX_REALM_LEN} printable characters without '\"' or '\\'"),
        ));
    }
    Ok(realm.to_string())
}

fn validate_audience(audience: &str) -> Result<String, FieldError> {
    if audience.is_empty()
        || audience.len() > 256
        || audience.chars().any(|c| c.is_control() || c == ' ')
    {
        return Err(FieldError::new(
            "audience",
            "must be 1-256 characters without spaces",
        ));
    }
    Ok(audience.to_string())
}

/// Keys are default header names (any case), values valid header names or "".
fn normalize_header_overrides(
    headers: HashMap<String, String>,
) -> Result<HashMap<String, String>, FieldError> {
    let mut out = HashMap::new();
    for (key, value) in headers {
        let Some(header) = IdentityHeader::parse(&key) else {
            return Err(FieldError::new(
                format!("headers.{key}"),
                format!(
                    "is not an identity header; use one of {}",
                    IdentityHeader::titles()
                ),
            ));
        };
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if value.len() > 64 || !value.bytes().all(token) {
            return Err(FieldError::new(
                format!("headers.{key}"),
                "must be a header name, or empty to drop it",
            ));
        }
        out.insert(header.title().to_string(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_prefixes_are_stored_canonical() {
        let cases = [
            ("/private/", Some("/private")),
            ("/private", Some("/private")),
            ("//a/./b/../c//", Some("/a/c")),
            ("/my%20files", Some("/my files")),
            ("/", None),
            ("/x/..", None),
        ];
        for (given, stored) in cases {
            assert_eq!(
                normalize_path_prefix(given).unwrap().as_deref(),
                stored,
                "{given}"
            );
        }
        for bad in [
            "private", "/a;b", "/a\\b", "/a%5Cb", "/a%00", "/a?b", "/a#b", "/a%3Fb",
        ] {
            assert!(normalize_path_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_patterns_are_validated_and_lowercased() {
        assert_eq!(
            HostPattern::parse("Dav.Example.COM.").unwrap().as_str(),
            "dav.example.com"
        );
        assert_eq!(
            HostPattern::parse("*.example.com").unwrap().as_str(),
            "*.example.com"
        );
        assert!(HostPattern::parse("dav.example.com:8443").is_err());
        assert!(HostPattern::parse("*dav.example.com").is_err());
        assert!(HostPattern::parse("a..b").is_err());
        assert!(HostPattern::parse("").is_err());
    }

    /// A rule's id is checked as a client id is, under its own field name;
    /// a stored rule reads back as it was written, and one whose host is
    /// not a host pattern does not read.
    #[test]
    fn ids_and_hosts_are_checked_where_they_come_in() {
        assert_eq!(ResourceId::parse("dav-1").unwrap().as_str(), "dav-1");
        let err = ResourceId::parse("Dav").unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.message.as_str()),
            ("id", "must be 1-64 characters of a-z, 0-9, '.', '_' or '-'")
        );
        let now = Utc::now();
        let new = NewResource {
            host: Some("Dav.Example.COM".into()),
            ..Default::default()
        };
        let resource = Resource::create("dav".into(), new, now).unwrap();
        let json = serde_json::to_value(&resource).unwrap();
        assert_eq!(
            (&json["id"], &json["host"]),
            (&"dav".into(), &"dav.example.com".into())
        );
        let back: Resource = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
        let mut bad = json;
        bad["host"] = "dav.example.com:8443".into();
        assert!(serde_json::from_value::<Resource>(bad).is_err());
        let err = Resource::create("Bad Id".into(), NewResource::default(), now).unwrap_err();
        assert_eq!(err.field, "id", "the id is checked before the host");
    }

    #[test]
    fn header_overrides_name_known_headers() {
        let mut headers = HashMap::new();
        headers.insert("remote-user".to_string(), "X-User".to_string());
        headers.insert("Remote-Groups".to_string(), String::new());
        let normalized = normalize_header_overrides(headers).unwrap();
        assert_eq!(normalized["Remote-User"], "X-User");
        let mut bad = HashMap::new();
        bad.insert("Remote-Email".to_string(), "x".to_string());
        assert_eq!(
            normalize_header_overrides(bad).unwrap_err().field,
            "headers.Remote-Email"
        );
    }
}
