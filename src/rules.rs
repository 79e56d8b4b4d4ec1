//! The compiled rule set: which resource (forward-auth rule) covers a host
//! and path. The most specific wins: exact host over wildcard (fewer
//! wildcard labels first), then longer path prefix over shorter.
//!
//! A path is looked up as it reads and with its case folded, because a
//! case-insensitive backend serves `/PRIVATE` from `/private`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::identity_headers::{DEFAULT_NAMES, IdentityNames};
use crate::resources::Resource;

/// A rule compiled for matching: its prefix without a trailing slash, so
/// that `/private/` (as older versions stored it) covers `/private` too.
struct Rule {
    prefix: Option<Box<str>>,
    resource: Arc<Resource>,
}

struct WildcardRule {
    labels: Vec<Box<str>>,
    wildcards: usize,
    rule: Rule,
}

#[derive(Default)]
pub struct RuleSet {
    exact: HashMap<String, Vec<Rule>>,
    wildcard: Vec<WildcardRule>,
    /// Whether some prefix has an uppercase letter: only then can folding a
    /// lowercase path change which rule it falls under.
    uppercase_prefixes: bool,
    /// The names rules give identity headers, lowercase with `_` as `-`:
    /// a client may not send them (see `target::forwarded`).
    renamed_identity_headers: Vec<String>,
    /// The identity header names of each rule (by id) that renames any.
    identity_names: HashMap<crate::resources::ResourceId, IdentityNames>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    AsIs,
    Folded,
}

impl RuleSet {
    pub fn new<'a>(resources: impl IntoIterator<Item = &'a Arc<Resource>>) -> Self {
        let mut set = RuleSet::default();
        for resource in resources {
            let prefix = resource
                .path_prefix
                .as_deref()
                .map(|p| p.trim_end_matches('/'))
                .filter(|p| !p.is_empty())
                .map(Box::from);
            set.uppercase_prefixes |= prefix
                .as_deref()
                .is_some_and(|p: &str| p.bytes().any(|b| b.is_ascii_uppercase()));
            if !resource.headers.is_empty() {
                let names = IdentityNames::of(&resource.headers);
                for name in names.renamed() {
                    if !set.renamed_identity_headers.contains(&name) {
                        set.renamed_identity_headers.push(name);
                    }
                }
                set.identity_names.insert(resource.id.clone(), names);
            }
            let rule = Rule {
                prefix,
                resource: Arc::clone(resource),
            };
            if resource.host.contains('*') {
                let labels: Vec<Box<str>> = resource.host.split('.').map(Box::from).collect();
                let wildcards = labels.iter().filter(|l| &***l == "*").count();
                set.wildcard.push(WildcardRule {
                    labels,
                    wildcards,
                    rule,
                });
            } else {
                set.exact
                    .entry(resource.host.to_string())
                    .or_default()
                    .push(rule);
            }
        }
        let prefix_len = |r: &Rule| r.prefix.as_deref().map_or(0, str::len);
        for rules in set.exact.values_mut() {
            rules.sort_by(|a, b| {
                prefix_len(b)
                    .cmp(&prefix_len(a))
                    .then_with(|| a.resource.id.cmp(&b.resource.id))
            });
        }
        set.wildcard.sort_by(|a, b| {
            a.wildcards
                .cmp(&b.wildcards)
                .then_with(|| prefix_len(&b.rule).cmp(&prefix_len(&a.rule)))
                .then_with(|| a.rule.resource.id.cmp(&b.rule.resource.id))
        });
        set
    }

    /// The most specific rule for `host` (lowercase, no port) and `path`
    /// (one reading, see `target::path`), as the path reads.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<Resource>> {
        self.find_as(host, path, Case::AsIs)
    }

    /// The rules `path` falls under as it reads and with its case folded;
    /// both the same where folding cannot matter. Each must grant.
    pub fn find_each_case(&self, host: &str, path: &str) -> [Option<&Arc<Resource>>; 2] {
        let as_is = self.find_as(host, path, Case::AsIs);
        let can_differ = self.uppercase_prefixes || path.bytes().any(|b| b.is_ascii_uppercase());
        let folded = if can_differ {
            self.find_as(host, path, Case::Folded)
        } else {
            as_is
        };
        [as_is, folded]
    }

    /// The rules whose prefix lies strictly below `path` (case folded):
    /// what a method acting on the whole tree at `path` reaches too.
    pub fn below<'s>(&'s self, host: &str, path: &str) -> impl Iterator<Item = &'s Arc<Resource>> {
        let path = path.trim_end_matches('/');
        self.for_host(host)
            .filter(move |rule| {
                rule.prefix.as_deref().is_some_and(|prefix| {
                    prefix.len() > path.len()
                        && prefix.as_bytes()[path.len()] == b'/'
                        && prefix
                            .get(..path.len())
                            .is_some_and(|head| head.eq_ignore_ascii_case(path))
                })
            })
            .map(|rule| &rule.resource)
    }

    /// Every rule in the order matching tries them: for each exact host
    /// (hosts in name order; no two compete), its rules longest prefix
    /// first; then the wildcard patterns, fewest wildcards first, then
    /// longest prefix. The first rule listed that covers a request is
    /// the one that decides it. (The console lists rules this way.)
    pub fn in_match_order(&self) -> impl Iterator<Item = &Arc<Resource>> {
        let mut hosts: Vec<&String> = self.exact.keys().collect();
        hosts.sort();
        hosts
            .into_iter()
            .flat_map(|host| self.exact.get(host).into_iter().flatten())
            .chain(self.wildcard.iter().map(|w| &w.rule))
            .map(|rule| &rule.resource)
    }

    /// The names rules give identity headers (lowercase, `_` as `-`).
    pub fn renamed_identity_headers(&self) -> &[String] {
        &self.renamed_identity_headers
    }

    /// The names `rule` (one of this set's) sends the identity headers under.
    pub fn identity_names(&self, rule: &Resource) -> Cow<'_, IdentityNames> {
        if rule.headers.is_empty() {
            return Cow::Borrowed(&DEFAULT_NAMES);
        }
        match self.identity_names.get(&rule.id) {
            Some(names) => Cow::Borrowed(names),
            // A rule of another set: compiled here.
            None => Cow::Owned(IdentityNames::of(&rule.headers)),
        }
    }

    fn find_as(&self, host: &str, path: &str, case: Case) -> Option<&Arc<Resource>> {
        self.for_host(host)
            .find(|r| r.covers(path, case))
            .map(|r| &r.resource)
    }

    /// The rules for `host`, most specific first: exact ones, then the
    /// wildcard patterns it matches.
    fn for_host<'s>(&'s self, host: &str) -> impl Iterator<Item = &'s Rule> {
        let exact = self.exact.get(host).into_iter().flatten();
        let labels: Vec<&str> = if self.wildcard.is_empty() {
            Vec::new()
        } else {
            host.split('.').collect()
        };
        let wildcard = self
            .wildcard
            .iter()
            .filter(move |w| {
                w.labels.len() == labels.len()
                    && w.labels
                        .iter()
                        .zip(&labels)
                        .all(|(pattern, label)| match &**pattern {
                            // `*` is exactly one label, never an empty one.
                            "*" => !label.is_empty(),
                            pattern => pattern == *label,
                        })
            })
            .map(|w| &w.rule);
        exact.chain(wildcard)
    }
}

impl Rule {
    /// `/dav` covers `/dav` and `/dav/…`, not `/davx`.
    fn covers(&self, path: &str, case: Case) -> bool {
        let Some(prefix) = self.prefix.as_deref() else {
            return true;
        };
        let Some(head) = path.get(..prefix.len()) else {
            return false;
        };
        let same = match case {
            Case::AsIs => head == prefix,
            Case::Folded => head.eq_ignore_ascii_case(prefix),
        };
        same && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::NewResource;
    use chrono::Utc;

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
        // `*` is exactly one label, and never an empty one.
        assert_eq!(id("a.b.example.com", "/"), None);
        assert_eq!(id("example.com", "/"), None);
        assert_eq!(id(".example.com", "/"), None);
    }

    /// The listing order is the order `find` tries: for any host and
    /// path, the first listed rule that covers it is the one found.
    #[test]
    fn rules_are_listed_in_the_order_matching_tries_them() {
        let rules = [
            resource("wild2", "*.*.com", None),
            resource("wild", "*.example.com", None),
            resource("wild-dav", "*.example.com", Some("/dav")),
            resource("exact", "files.example.com", None),
            resource("exact-private", "files.example.com", Some("/private")),
            resource("other", "a.example.com", Some("/x")),
        ];
        let set = RuleSet::new(&rules);
        let order: Vec<&str> = set.in_match_order().map(|r| r.id.as_str()).collect();
        assert_eq!(
            order,
            [
                "other",
                "exact-private",
                "exact",
                "wild-dav",
                "wild",
                "wild2"
            ]
        );
        for (host, path) in [
            ("files.example.com", "/private/x"),
            ("files.example.com", "/dav"),
            ("a.example.com", "/x/y"),
            ("a.example.com", "/dav/y"),
            ("b.example.com", "/"),
            ("b.other.com", "/"),
        ] {
            let first = set.in_match_order().find(|r| {
                let host_matches = if r.host.contains('*') {
                    let labels: Vec<&str> = host.split('.').collect();
                    let pattern: Vec<&str> = r.host.split('.').collect();
                    labels.len() == pattern.len()
                        && pattern
                            .iter()
                            .zip(&labels)
                            .all(|(p, l)| *p == "*" || p == l)
                } else {
                    r.host == host
                };
                let prefix = r.path_prefix.as_deref().unwrap_or("");
                host_matches
                    && path.starts_with(prefix)
                    && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
            });
            assert_eq!(
                first.map(|r| &r.id),
                set.find(host, path).map(|r| &r.id),
                "{host}{path}"
            );
        }
    }

    #[test]
    fn prefixes_cover_themselves_with_or_without_a_slash() {
        let mut stored = (*resource("old", "dav.example.com", Some("/private"))).clone();
        // As an earlier version stored `/private/`.
        stored.path_prefix = Some("/private/".into());
        let set = RuleSet::new(&[Arc::new(stored), resource("all", "dav.example.com", None)]);
        for path in ["/private", "/private/", "/private/s"] {
            assert_eq!(
                set.find("dav.example.com", path).unwrap().id,
                "old",
                "{path}"
            );
        }
        assert_eq!(set.find("dav.example.com", "/privates").unwrap().id, "all");
    }

    #[test]
    fn rules_below_a_path_are_found_for_tree_methods() {
        let set = RuleSet::new(&[
            resource("all", "dav.example.com", None),
            resource("share", "dav.example.com", Some("/share")),
            resource("locked", "dav.example.com", Some("/share/Locked")),
            resource("wild", "*.example.com", Some("/share/x")),
        ]);
        let below = |path| {
            let mut ids: Vec<&str> = set
                .below("dav.example.com", path)
                .map(|r| r.id.as_str())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(below("/"), ["locked", "share", "wild"]);
        assert_eq!(below("/share"), ["locked", "wild"]);
        assert_eq!(below("/share/"), ["locked", "wild"]);
        assert_eq!(below("/SHARE/locked"), Vec::<&str>::new());
        assert_eq!(below("/sha"), Vec::<&str>::new());
        assert_eq!(below("/share/Locked/s"), Vec::<&str>::new());
    }

    #[test]
    fn folded_case_finds_the_rule_a_case_insensitive_backend_applies() {
        let set = RuleSet::new(&[
            resource("all", "dav.example.com", None),
            resource("private", "dav.example.com", Some("/private")),
        ]);
        let ids = |path| {
            set.find_each_case("dav.example.com", path)
                .map(|r| r.map(|r| r.id.as_str()))
        };
        assert_eq!(ids("/PRIVATE/s"), [Some("all"), Some("private")]);
        assert_eq!(ids("/Private"), [Some("all"), Some("private")]);
        assert_eq!(ids("/private/s"), [Some("private"), Some("private")]);
        assert_eq!(ids("/photos"), [Some("all"), Some("all")]);
        // A multi-byte character where the prefix ends is no panic.
        assert_eq!(ids("/privat\u{e9}/s"), [Some("all"), Some("all")]);
    }
}
