//! Resources: the forward-auth rules that say who may reach which host,
//! path and methods, and the compiled `RuleSet` that finds the most
//! specific rule for a request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::applications::{FieldError, normalize_groups};

/// A forward-auth rule as stored and shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resource {
    pub id: String,
    /// Lowercase host, or a pattern where `*` stands for exactly one label.
    pub host: String,
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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

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
}

/// Tells "absent" (outer `None`, by `default`) from `null` (`Some(None)`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The identity headers of a verify answer, by their default names.
pub const IDENTITY_HEADERS: [&str; 6] = [
    "Remote-User",
    "Remote-Name",
    "Remote-Groups",
    "Remote-Client-Id",
    "Remote-Auth-Method",
    "Remote-Scope",
];

impl Resource {
    /// Builds a validated resource from an admin request.
    pub fn create(id: String, new: NewResource, now: DateTime<Utc>) -> Result<Self, FieldError> {
        let mut resource = Resource {
            id,
            host: String::new(),
            path_prefix: None,
            methods: None,
            allowed_groups: Vec::new(),
            audience: None,
            headers: HashMap::new(),
            created_at: now,
            updated_at: now,
        };
        resource.apply(ResourcePatch {
            host: Some(
                new.host
                    .ok_or_else(|| FieldError::new("host", "is required"))?,
            ),
            path_prefix: Some(new.path_prefix),
            methods: Some(new.methods),
            allowed_groups: Some(new.allowed_groups),
            audience: Some(new.audience),
            headers: Some(Some(new.headers)),
        })?;
        Ok(resource)
    }

    /// Applies and validates a change; on error `self` is left unchanged.
    pub fn apply(&mut self, patch: ResourcePatch) -> Result<(), FieldError> {
        let mut next = self.clone();
        if let Some(host) = patch.host {
            next.host = normalize_host_pattern(&host)?;
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
        *self = next;
        Ok(())
    }

    /// The header name this rule uses for a default identity header, or
    /// `None` when the rule turns it off.
    pub fn header_name<'a>(&'a self, default: &'a str) -> Option<&'a str> {
        match self.headers.get(default) {
            Some(name) if name.is_empty() => None,
            Some(name) => Some(name),
            None => Some(default),
        }
    }
}

/// `example.com`, `dav.example.com`, `*.example.com`: lowercase labels of
/// letters, digits and hyphens, where `*` is one whole label. No port.
pub fn normalize_host_pattern(host: &str) -> Result<String, FieldError> {
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
    Ok(host)
}

/// A prefix starts with `/`; `/` alone is the same as no prefix.
fn normalize_path_prefix(prefix: &str) -> Result<Option<String>, FieldError> {
    if !prefix.starts_with('/')
        || prefix.len() > 1024
        || prefix
            .chars()
            .any(|c| c.is_control() || c == '?' || c == '#')
    {
        return Err(FieldError::new(
            "path_prefix",
            "must start with '/' and hold no '?', '#' or control characters",
        ));
    }
    let normalized = normalize_path(prefix);
    Ok((normalized != "/").then(|| normalized.into_owned()))
}

fn normalize_methods(methods: &[String]) -> Result<Vec<String>, FieldError> {
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
        let Some(default) = IDENTITY_HEADERS
            .iter()
            .find(|h| h.eq_ignore_ascii_case(&key))
        else {
            return Err(FieldError::new(
                format!("headers.{key}"),
                format!(
                    "is not an identity header; use one of {}",
                    IDENTITY_HEADERS.join(", ")
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
        out.insert((*default).to_string(), value);
    }
    Ok(out)
}

/// Normalises a request path before rules see it, so that `/public/../private`
/// or `/public/%2e%2e/private` cannot slip past a rule for `/private`:
/// percent-decodes, resolves dot segments and collapses repeated slashes.
/// A path that is already normal (the usual case) is borrowed as it is.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    let end = path
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    let path = &path[..end];
    if is_normal(path) {
        return Cow::Borrowed(path);
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let trailing = decoded.ends_with('/') && !segments.is_empty();
    let mut out = String::with_capacity(decoded.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Starts with `/`, and holds no escapes, backslashes, empty or dot
/// segments (an empty last segment is a trailing slash). One pass over the
/// bytes: this runs on every verify request.
fn is_normal(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if rest.bytes().any(|b| b == b'%' || b == b'\\') {
        return false;
    }
    let mut segments = rest.as_bytes().split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last) || segment == b"." || segment == b".." {
            return false;
        }
    }
    true
}

/// A compiled rule.
struct Rule {
    labels: Vec<String>,
    wildcards: usize,
    resource: Arc<Resource>,
}

/// All rules, ordered so that the first match is the most specific: exact
/// hosts before wildcards (fewer wildcard labels first), then longer path
/// prefixes before shorter ones.
#[derive(Default)]
pub struct RuleSet {
    exact: HashMap<String, Vec<Arc<Resource>>>,
    wildcard: Vec<Rule>,
}

impl RuleSet {
    pub fn new<'a>(resources: impl IntoIterator<Item = &'a Arc<Resource>>) -> Self {
        let mut set = RuleSet::default();
        for resource in resources {
            if resource.host.contains('*') {
                let labels: Vec<String> = resource.host.split('.').map(str::to_string).collect();
                let wildcards = labels.iter().filter(|l| *l == "*").count();
                set.wildcard.push(Rule {
                    labels,
                    wildcards,
                    resource: Arc::clone(resource),
                });
            } else {
                set.exact
                    .entry(resource.host.clone())
                    .or_default()
                    .push(Arc::clone(resource));
            }
        }
        let prefix_len = |r: &Resource| r.path_prefix.as_ref().map_or(0, String::len);
        for rules in set.exact.values_mut() {
            rules.sort_by(|a, b| {
                prefix_len(b)
                    .cmp(&prefix_len(a))
                    .then_with(|| a.id.cmp(&b.id))
            });
        }
        set.wildcard.sort_by(|a, b| {
            a.wildcards
                .cmp(&b.wildcards)
                .then_with(|| prefix_len(&b.resource).cmp(&prefix_len(&a.resource)))
                .then_with(|| a.resource.id.cmp(&b.resource.id))
        });
        set
    }

    /// The most specific rule for `host` (lowercase, no port) and `path`
    /// (normalised).
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<Resource>> {
        if let Some(rules) = self.exact.get(host)
            && let Some(rule) = rules.iter().find(|r| prefix_matches(r, path))
        {
            return Some(rule);
        }
        let labels: Vec<&str> = host.split('.').collect();
        self.wildcard
            .iter()
            .filter(|rule| {
                rule.labels.len() == labels.len()
                    && rule
                        .labels
                        .iter()
                        .zip(&labels)
                        .all(|(p, l)| p == "*" || p == l)
            })
            .map(|rule| &rule.resource)
            .find(|r| prefix_matches(r, path))
    }
}

/// `/dav` covers `/dav` and `/dav/…`, not `/davx`.
fn prefix_matches(resource: &Resource, path: &str) -> bool {
    match &resource.path_prefix {
        None => true,
        Some(prefix) if prefix.ends_with('/') => path.starts_with(prefix.as_str()),
        Some(prefix) => path
            .strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(id: &str, host: &str, prefix: Option<&str>) -> Arc<Resource> {
        let new = NewResource {
            host: Some(host.into()),
            path_prefix: prefix.map(str::to_string),
            allowed_groups: vec!["g".into()],
            ..Default::default()
        };
        Arc::new(Resource::create(id.into(), new, Utc::now()).unwrap())
    }

    #[test]
    fn most_specific_rule_wins() {
        let rules = [
            resource("wild", "*.example.com", None),
            resource("wild-dav", "*.example.com", Some("/dav")),
            resource("exact", "files.example.com", None),
            resource("exact-private", "files.example.com", Some("/private")),
        ];
        let set = RuleSet::new(&rules);
        let id = |host, path| set.find(host, path).map(|r| r.id.clone());
        assert_eq!(
            id("files.example.com", "/private/x").as_deref(),
            Some("exact-private")
        );
        assert_eq!(id("files.example.com", "/dav/x").as_deref(), Some("exact"));
        assert_eq!(
            id("other.example.com", "/dav/x").as_deref(),
            Some("wild-dav")
        );
        assert_eq!(id("other.example.com", "/davx").as_deref(), Some("wild"));
        // `*` is exactly one label.
        assert_eq!(id("a.b.example.com", "/"), None);
        assert_eq!(id("example.com", "/"), None);
    }

    #[test]
    fn host_patterns_are_validated_and_lowercased() {
        assert_eq!(
            normalize_host_pattern("Dav.Example.COM.").unwrap(),
            "dav.example.com"
        );
        assert_eq!(
            normalize_host_pattern("*.example.com").unwrap(),
            "*.example.com"
        );
        assert!(normalize_host_pattern("dav.example.com:8443").is_err());
        assert!(normalize_host_pattern("*dav.example.com").is_err());
        assert!(normalize_host_pattern("a..b").is_err());
        assert!(normalize_host_pattern("").is_err());
    }

    #[test]
    fn paths_are_normalised_before_matching() {
        assert_eq!(normalize_path("/public/../private/x"), "/private/x");
        assert_eq!(normalize_path("/public/%2e%2e/private"), "/private");
        assert_eq!(normalize_path("//a///b/?q=1"), "/a/b/");
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/../../etc"), "/etc");
        assert_eq!(normalize_path("/a/.b/c.d/"), "/a/.b/c.d/");
        assert!(matches!(
            normalize_path("/photos/?x"),
            Cow::Borrowed("/photos/")
        ));
        // The one-pass check sends every odd path to the full treatment.
        assert!(matches!(normalize_path("/"), Cow::Borrowed("/")));
        assert!(matches!(normalize_path("/a/b#f"), Cow::Borrowed("/a/b")));
        assert_eq!(normalize_path("/a/./b"), "/a/b");
        assert_eq!(normalize_path("/a/."), "/a");
        assert_eq!(normalize_path("/a/.."), "/");
        assert_eq!(normalize_path("/a\\b/../c"), "/a/c");
        assert_eq!(normalize_path("a/b"), "/a/b");
        assert_eq!(normalize_path("/a//"), "/a/");
        assert_eq!(normalize_path("/%61"), "/a");
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
