//! What an API key may reach, beyond what its application's rules allow:
//! hosts, path prefixes, methods and client networks, each optional. Set
//! at minting, changed by `PATCH /admin/v1/api-keys/{id}`, replicated
//! through the change log, and held in memory on every node, for the keys
//! that have scopes only: a million unscoped keys cost nothing here.
//!
//! Scopes only ever narrow: verify first applies the rules, then these.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::applications::FieldError;
use crate::revocation::CredentialId;
use crate::target::RequestTarget;
use crate::verifier::VerifyError;

/// At most this many entries in each scope list.
pub const MAX_SCOPE_ENTRIES: usize = 32;

/// A key's scopes as stored, replicated and shown. `None`: not limited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyScopes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefixes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_cidrs: Option<Vec<IpNet>>,
}

impl KeyScopes {
    /// No limit at all: such a key is not held in memory.
    pub fn is_unlimited(&self) -> bool {
        self.hosts.is_none()
            && self.path_prefixes.is_none()
            && self.methods.is_none()
            && self.source_cidrs.is_none()
    }
}

/// One scoped key in a replica's snapshot.
#[derive(Debug, Serialize, Deserialize)]
pub struct ScopeEntry {
    pub id: String,
    pub scopes: KeyScopes,
}

/// The scope fields of a mint or a patch, as an admin writes them.
/// Outer `None`: absent (a patch leaves it); `Some(None)`: `null` (not limited).
#[derive(Debug, Default, Deserialize)]
pub struct ScopeFields {
    #[serde(default, deserialize_with = "crate::resources::nullable")]
    pub hosts: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "crate::resources::nullable")]
    pub path_prefixes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "crate::resources::nullable")]
    pub methods: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "crate::resources::nullable")]
    pub source_cidrs: Option<Option<Vec<String>>>,
}

type ScopeField = Option<Option<Vec<String>>>;

impl ScopeFields {
    /// The fields of a mint or a patch body (serde cannot flatten them into
    /// a body that refuses unknown fields).
    pub fn of(
        hosts: &ScopeField,
        path_prefixes: &ScopeField,
        methods: &ScopeField,
        source_cidrs: &ScopeField,
    ) -> Self {
        Self {
            hosts: hosts.clone(),
            path_prefixes: path_prefixes.clone(),
            methods: methods.clone(),
            source_cidrs: source_cidrs.clone(),
        }
    }

    /// Whether no field was given at all.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_none()
            && self.path_prefixes.is_none()
            && self.methods.is_none()
            && self.source_cidrs.is_none()
    }

    /// `scopes` with these fields applied and validated.
    pub fn apply_to(&self, scopes: &KeyScopes) -> Result<KeyScopes, FieldError> {
        let mut next = scopes.clone();
        if let Some(hosts) = &self.hosts {
            next.hosts = hosts.as_deref().map(normalize_hosts).transpose()?;
        }
        if let Some(prefixes) = &self.path_prefixes {
            next.path_prefixes = prefixes.as_deref().map(normalize_prefixes).transpose()?;
        }
        if let Some(methods) = &self.methods {
            next.methods = methods
                .as_deref()
                .map(|m| {
                    bounded("methods", m)?;
                    crate::resources::normalize_methods(m)
                })
                .transpose()?;
        }
        if let Some(cidrs) = &self.source_cidrs {
            next.source_cidrs = cidrs.as_deref().map(normalize_cidrs).transpose()?;
        }
        Ok(next)
    }
}

fn bounded<T>(field: &str, list: &[T]) -> Result<(), FieldError> {
    if list.is_empty() || list.len() > MAX_SCOPE_ENTRIES {
        return Err(FieldError::new(
            field,
            format!(
                "must list 1-{MAX_SCOPE_ENTRIES} entries (null, or leaving it out, means no limit)"
            ),
        ));
    }
    Ok(())
}

/// Exact hosts, or `*.` and a domain: one label in front of it.
fn normalize_hosts(hosts: &[String]) -> Result<Vec<String>, FieldError> {
    bounded("hosts", hosts)?;
    let mut out = Vec::with_capacity(hosts.len());
    for (i, host) in hosts.iter().enumerate() {
        let bad = || {
            FieldError::new(
                format!("hosts[{i}]"),
                "must be a host name, or '*.' and a domain name",
            )
        };
        let host = String::from(crate::resources::HostPattern::parse(host).map_err(|_| bad())?);
        let rest = host.strip_prefix("*.").unwrap_or(&host);
        if rest.contains('*') || !rest.contains('.') && host.starts_with('*') {
            return Err(bad());
        }
        out.push(host);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn normalize_prefixes(prefixes: &[String]) -> Result<Vec<String>, FieldError> {
    bounded("path_prefixes", prefixes)?;
    let mut out = Vec::with_capacity(prefixes.len());
    for (i, prefix) in prefixes.iter().enumerate() {
        let normalized = crate::resources::normalize_path_prefix(prefix)
            .map_err(|e| FieldError::new(format!("path_prefixes[{i}]"), e.message))?;
        out.push(normalized.unwrap_or_else(|| "/".to_string()));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn normalize_cidrs(cidrs: &[String]) -> Result<Vec<IpNet>, FieldError> {
    bounded("source_cidrs", cidrs)?;
    let mut out = Vec::with_capacity(cidrs.len());
    for (i, text) in cidrs.iter().enumerate() {
        let text = text.trim();
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| {
                FieldError::new(
                    format!("source_cidrs[{i}]"),
                    "must be an IP network (198.51.100.0/24, 2001:db8::/32) or address",
                )
            })?;
        out.push(net.trunc());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A host pattern compiled for matching.
#[derive(Debug)]
enum HostPattern {
    Exact(Box<str>),
    /// `*.example.com` as `.example.com`: one label in front of it.
    OneLabelUnder(Box<str>),
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(exact) => **exact == *host,
            HostPattern::OneLabelUnder(suffix) => host
                .strip_suffix(&**suffix)
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        }
    }
}

/// A key's scopes, compiled for the verify path, and as written.
#[derive(Debug)]
pub struct CompiledScopes {
    pub scopes: KeyScopes,
    hosts: Option<Vec<HostPattern>>,
    path_prefixes: Option<Vec<Box<str>>>,
    methods: Option<Vec<Box<str>>>,
    source_cidrs: Option<Vec<IpNet>>,
}

impl CompiledScopes {
    pub fn new(scopes: &KeyScopes) -> Self {
        Self {
            scopes: scopes.clone(),
            hosts: scopes.hosts.as_ref().map(|hosts| {
                hosts
                    .iter()
                    .map(|h| match h.strip_prefix('*') {
                        Some(suffix) => HostPattern::OneLabelUnder(suffix.into()),
                        None => HostPattern::Exact(h.as_str().into()),
                    })
                    .collect()
            }),
            path_prefixes: scopes
                .path_prefixes
                .as_ref()
                .map(|p| p.iter().map(|p| p.trim_end_matches('/').into()).collect()),
            methods: scopes
                .methods
                .as_ref()
                .map(|m| m.iter().map(|m| m.as_str().into()).collect()),
            source_cidrs: scopes.source_cidrs.clone(),
        }
    }

    /// Whether the key may reach `target` from the client address that
    /// `source` reads (only when the key is limited by address). As with
    /// rules, every reading of the path and every method a backend may
    /// take must fall inside.
    pub fn check(
        &self,
        target: &RequestTarget<'_>,
        source: impl FnOnce() -> IpAddr,
    ) -> Result<(), VerifyError> {
        if let Some(hosts) = &self.hosts
            && !hosts.iter().any(|p| p.matches(&target.host))
        {
            return Err(VerifyError::ScopeHost);
        }
        if let Some(methods) = &self.methods
            && !target.methods().all(|m| {
                methods
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(m))
            })
        {
            return Err(VerifyError::ScopeMethod);
        }
        if let Some(prefixes) = &self.path_prefixes
            && !target
                .paths
                .iter()
                .all(|path| prefixes.iter().any(|prefix| under(path, prefix)))
        {
            return Err(VerifyError::ScopePath);
        }
        if let Some(cidrs) = &self.source_cidrs {
            let addr = source();
            if !cidrs.iter().any(|net| net.contains(&addr)) {
                return Err(VerifyError::ScopeSource);
            }
        }
        Ok(())
    }
}

/// `/dav` covers `/dav` and `/dav/…`, not `/davx`; `` (from `/`) covers all.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || prefix.is_empty())
}

/// The scoped keys, by id: read without a lock on every verify of an API
/// key, replaced whole by the (rare) admin changes.
#[derive(Default)]
pub struct ScopedKeys {
    map: ArcSwap<ScopeMap>,
}

type ScopeMap = HashMap<CredentialId, Arc<CompiledScopes>, BuildHasherDefault<IdHasher>>;

impl ScopedKeys {
    /// The scopes of key `id`, if it has any.
    #[inline]
    pub fn get(&self, id: &CredentialId) -> Option<Arc<CompiledScopes>> {
        let map = self.map.load();
        if map.is_empty() {
            return None;
        }
        map.get(id).cloned()
    }

    /// Sets the scopes of key `id`. An entry stays even when the scopes
    /// no longer limit anything: a key minted with scopes says so in its
    /// claims, and is refused where its entry is missing (see `verifier`).
    pub fn set(&self, id: CredentialId, scopes: &KeyScopes) {
        self.update(vec![(id, Some(scopes.clone()))]);
    }

    pub fn remove(&self, id: &CredentialId) {
        self.update(vec![(*id, None)]);
    }

    /// Sets (`Some`) and removals (`None`), in order, with one copy of the
    /// map for the lot: a replica applying thousands of changes must not
    /// copy it once per change.
    pub fn update(&self, edits: Vec<(CredentialId, Option<KeyScopes>)>) {
        let map = self.map.load();
        if edits
            .iter()
            .all(|(id, s)| s.is_none() && !map.contains_key(id))
        {
            return;
        }
        let compiled: Vec<(CredentialId, Option<Arc<CompiledScopes>>)> = edits
            .into_iter()
            .map(|(id, s)| (id, s.map(|s| Arc::new(CompiledScopes::new(&s)))))
            .collect();
        self.map.rcu(|map| {
            let mut next = ScopeMap::clone(map);
            for (id, scopes) in &compiled {
                match scopes {
                    Some(scopes) => next.insert(*id, Arc::clone(scopes)),
                    None => next.remove(id),
                };
            }
            next
        });
    }

    /// Replaces every entry (a start, a replica's snapshot).
    pub fn replace(&self, entries: impl IntoIterator<Item = (CredentialId, KeyScopes)>) {
        let map: ScopeMap = entries
            .into_iter()
            .map(|(id, s)| (id, Arc::new(CompiledScopes::new(&s))))
            .collect();
        self.map.store(Arc::new(map));
    }

    /// Every entry, for a replica's snapshot.
    pub fn export(&self) -> Vec<(CredentialId, KeyScopes)> {
        self.map
            .load()
            .iter()
            .map(|(id, s)| (*id, s.scopes.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Ids are random: their first eight bytes are hash enough, and only an
/// admin puts ids here.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(byte);
        }
    }

    fn write_usize(&mut self, _: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: serde_json::Value) -> ScopeFields {
        serde_json::from_value(json).unwrap()
    }

    fn scopes(json: serde_json::Value) -> CompiledScopes {
        CompiledScopes::new(&fields(json).apply_to(&KeyScopes::default()).unwrap())
    }

    fn addr(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn every_scope_narrows() {
        let s = scopes(serde_json::json!({
            "hosts": ["dav.example.com", "*.files.example.com"],
            "methods": ["get", "PROPFIND"],
            "path_prefixes": ["/photos/"],
            "source_cidrs": ["198.51.100.0/24", "2001:db8::1"],
        }));
        let ok = |m, h, p, a| {
            let t = RequestTarget::named(m, h, p).unwrap();
            s.check(&t, || addr(a))
        };
        assert_eq!(
            ok("GET", "dav.example.com", "/photos/a", "198.51.100.9"),
            Ok(())
        );
        assert_eq!(
            ok("PROPFIND", "a.files.example.com", "/photos", "2001:db8::1"),
            Ok(())
        );
        assert_eq!(
            ok("GET", "a.b.files.example.com", "/photos", "198.51.100.9"),
            Err(VerifyError::ScopeHost)
        );
        assert_eq!(
            ok("GET", "files.example.com", "/photos", "198.51.100.9"),
            Err(VerifyError::ScopeHost)
        );
        assert_eq!(
            ok("PUT", "dav.example.com", "/photos/a", "198.51.100.9"),
            Err(VerifyError::ScopeMethod)
        );
        assert_eq!(
            ok("GET", "dav.example.com", "/photosx", "198.51.100.9"),
            Err(VerifyError::ScopePath)
        );
        assert_eq!(
            ok(
                "GET",
                "dav.example.com",
                "/photos/../private",
                "198.51.100.9"
            ),
            Err(VerifyError::ScopePath)
        );
        assert_eq!(
            ok("GET", "dav.example.com", "/photos/a", "203.0.113.1"),
            Err(VerifyError::ScopeSource)
        );
    }

    #[test]
    fn bad_scopes_name_their_field() {
        let bad = |json| {
            fields(json)
                .apply_to(&KeyScopes::default())
                .unwrap_err()
                .field
        };
        assert_eq!(bad(serde_json::json!({"hosts": []})), "hosts");
        assert_eq!(bad(serde_json::json!({"hosts": ["a.*.com"]})), "hosts[0]");
        assert_eq!(bad(serde_json::json!({"hosts": ["*"]})), "hosts[0]");
        assert_eq!(bad(serde_json::json!({"methods": ["G T"]})), "methods[0]");
        assert_eq!(
            bad(serde_json::json!({"path_prefixes": ["x"]})),
            "path_prefixes[0]"
        );
        assert_eq!(
            bad(serde_json::json!({"source_cidrs": ["nope"]})),
            "source_cidrs[0]"
        );
        let cleared = fields(serde_json::json!({"hosts": null}))
            .apply_to(&KeyScopes {
                hosts: Some(vec!["a.example.com".into()]),
                ..Default::default()
            })
            .unwrap();
        assert!(cleared.is_unlimited());
    }

    #[test]
    fn scoped_keys_keep_their_entry() {
        let keys = ScopedKeys::default();
        assert!(keys.get(&[1; 16]).is_none());
        let limited = KeyScopes {
            methods: Some(vec!["GET".into()]),
            ..Default::default()
        };
        keys.set([1; 16], &limited);
        assert!(keys.get(&[1; 16]).is_some());
        assert!(keys.get(&[2; 16]).is_none());
        // Widened to no limit: still known as a scoped key.
        keys.set([1; 16], &KeyScopes::default());
        let t = RequestTarget::named("PUT", "x.example.com", "/").unwrap();
        assert_eq!(
            keys.get(&[1; 16]).unwrap().check(&t, || addr("192.0.2.1")),
            Ok(())
        );
        keys.remove(&[1; 16]);
        assert!(keys.is_empty());
    }
}
