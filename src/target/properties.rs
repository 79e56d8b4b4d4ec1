//! Differential property test: paths generated from a grammar of
//! separators, encodings, dot segments, parameters, case and odd bytes
//! are resolved as several kinds of backend would resolve them, each
//! written here from scratch. Whenever gatehouse grants a request, every
//! backend's resolution must fall under a rule that grants it too.

use std::sync::Arc;

use chrono::Utc;
use proptest::prelude::*;

use crate::resources::{NewResource, Resource};
use crate::rules::RuleSet;
use crate::target::RequestTarget;
use crate::verifier::authorize_target;

const HOST: &str = "dav.example.com";

/// (prefix, groups, methods): read-only for `media` everywhere, an
/// upload area where `media` may write, and `/private` for `admins`.
type RuleSpec = (
    &'static str,
    &'static [&'static str],
    Option<&'static [&'static str]>,
);

const RULES: [RuleSpec; 3] = [
    ("/", &["media"], Some(&["GET", "HEAD", "PROPFIND"])),
    ("/x/upload", &["media"], None),
    ("/private", &["admins"], None),
];

fn rule_set() -> RuleSet {
    let resources: Vec<Arc<Resource>> = RULES
        .iter()
        .enumerate()
        .map(|(i, (prefix, groups, methods))| {
            let new = NewResource {
                host: Some(HOST.into()),
                path_prefix: Some(prefix.to_string()),
                methods: methods.map(|m| m.iter().map(|s| s.to_string()).collect()),
                allowed_groups: groups.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            Arc::new(Resource::create(format!("r{i}"), new, Utc::now()).unwrap())
        })
        .collect();
    RuleSet::new(&resources)
}

/// The reference decision for a path as one backend resolved it: the
/// longest prefix covering it at a segment boundary, compared the way
/// that backend compares names.
fn reference_grants(path: &str, method: &str, fold_case: bool) -> bool {
    let norm = |s: &str| {
        if fold_case {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let path = norm(path);
    let covering = RULES
        .iter()
        .filter(|(prefix, _, _)| {
            let prefix = norm(prefix.trim_end_matches('/'));
            path == prefix || path.starts_with(&format!("{prefix}/")) || prefix.is_empty()
        })
        .max_by_key(|(prefix, _, _)| prefix.trim_end_matches('/').len());
    covering.is_some_and(|(_, groups, methods)| {
        groups.contains(&"media") && methods.is_none_or(|m| m.contains(&method))
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(text).collect();
    String::from_utf8(bytes).ok()
}

/// Split on `/`, drop empty and `.` names, let `..` climb (never above root).
fn resolve(path: &str, separators: &[char]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for name in path.split(separators) {
        match name {
            "" | "." => {}
            ".." => {
                names.pop();
            }
            name => names.push(name),
        }
    }
    format!("/{}", names.join("/"))
}

/// The query goes; a plain Linux file server (Python's http.server) also
/// cuts at `#`, decodes everything, then resolves.
fn linux_file_server(uri: &str) -> Option<String> {
    let path = uri.split('?').next()?.split('#').next()?;
    Some(resolve(&percent_decode(path)?, &['/']))
}

/// wsgidav behind cheroot: `%2F` stays inside a name, the rest is decoded,
/// then dot segments are resolved.
fn wsgidav(uri: &str) -> Option<String> {
    let path = uri.split('?').next()?;
    let decoded: Vec<String> = path
        .split("%2F")
        .flat_map(|part| part.split("%2f"))
        .map(percent_decode)
        .collect::<Option<_>>()?;
    Some(resolve(&decoded.join("%2F"), &['/']))
}

/// A Java servlet container: `;` parameters go from each raw name first
/// (so `..;` is `..`), then decoding and dot segments.
fn java_servlet(uri: &str) -> Option<String> {
    let path = uri.split('?').next()?;
    let stripped: Vec<&str> = path
        .split('/')
        .map(|name| name.split(';').next().unwrap_or(""))
        .collect();
    Some(resolve(&percent_decode(&stripped.join("/"))?, &['/']))
}

/// A Windows server: `\` separates too, trailing dots and spaces vanish,
/// and names compare without case (see `reference_grants`).
fn windows_server(uri: &str) -> Option<String> {
    let path = uri.split('?').next()?;
    let decoded = percent_decode(path)?;
    let trimmed: Vec<&str> = decoded
        .split(['/', '\\'])
        .map(|name| {
            if name == "." || name == ".." {
                name
            } else {
                name.trim_end_matches(['.', ' '])
            }
        })
        .collect();
    Some(resolve(&trimmed.join("/"), &['/']))
}

/// A key-value backend: names are decoded one by one and kept as they
/// are, dot segments included once decoded.
fn object_store(uri: &str) -> Option<String> {
    let path = uri.split('?').next()?;
    let mut names = Vec::new();
    for name in path.split('/') {
        match name {
            "" | "." => {}
            ".." => {
                names.pop();
            }
            name => names.push(percent_decode(name)?),
        }
    }
    Some(format!("/{}", names.join("/")))
}

/// A framework that decodes the path, then strips `;` parameters and
/// splits off what follows a `?` or `#` once more.
fn decoding_framework(uri: &str) -> Option<String> {
    let path = uri.split('?').next()?;
    let decoded = percent_decode(path)?;
    let decoded = decoded.split(['?', '#']).next()?;
    let stripped: Vec<&str> = decoded
        .split('/')
        .map(|name| name.split(';').next().unwrap_or(""))
        .collect();
    Some(resolve(&stripped.join("/"), &['/']))
}

type Backend = (&'static str, fn(&str) -> Option<String>, bool);

const BACKENDS: [Backend; 6] = [
    ("decoding framework", decoding_framework, false),
    ("linux file server", linux_file_server, false),
    ("wsgidav", wsgidav, false),
    ("java servlet", java_servlet, false),
    ("windows", windows_server, true),
    ("object store", object_store, false),
];

fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/",
        "/",
        "/",
        "x",
        "upload",
        "private",
        "PRIVATE",
        "Private",
        "s",
        "f",
        ".",
        "..",
        "%2e",
        "%2E%2e",
        "%2f",
        "%2F",
        "%5c",
        "%5C",
        "\\",
        ";",
        ";x",
        "..;",
        "%252e",
        "%252f",
        "%25",
        "#",
        "?",
        " ",
        "%20",
        ",",
        "%70rivate",
        ".",
        "x.",
        "%00",
        "%0a",
        "//",
        "%C3%A9",
        "%ff",
        "*",
        "~",
        "'",
        "%3B",
        "%3b",
        "%3F",
        "%23",
        "%253B",
        "%253F",
    ])
}

fn uri() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.9),
        prop::collection::vec(piece(), 1..12),
    )
        .prop_map(|(leading_slash, pieces)| {
            let body = pieces.concat();
            if leading_slash {
                format!("/{body}")
            } else {
                body
            }
        })
}

/// `Err` names the backend that would serve a path the rules refuse,
/// when gatehouse grants `method uri`.
fn holds_for_every_backend(uri: &str, method: &str) -> Result<(), String> {
    let rules = rule_set();
    let groups = vec!["media".to_string()];
    let Ok(target) = RequestTarget::named(method, HOST, uri) else {
        return Ok(());
    };
    if authorize_target(&rules, &groups, None, false, &target).is_err() {
        return Ok(());
    }
    for (backend, resolve, fold_case) in BACKENDS {
        if let Some(path) = resolve(uri)
            && !reference_grants(&path, method, fold_case)
        {
            return Err(format!(
                "granted {method} {uri:?}, but {backend} serves {path:?}, which the rules refuse"
            ));
        }
    }
    Ok(())
}

proptest! {
    // Failures are kept below as named cases, not in a regressions file.
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_grant_holds_for_every_backend_reading(
        uri in uri(),
        method in prop::sample::select(vec!["GET", "PUT", "DELETE", "PROPFIND"]),
    ) {
        let verdict = holds_for_every_backend(&uri, method);
        prop_assert!(verdict.is_ok(), "{}", verdict.unwrap_err());
    }
}

/// What the property found when the gate read fewer ways (without the
/// extra readings, then without case folding).
#[test]
fn cases_the_property_once_found() {
    for (uri, method) in [
        ("%70rivate..", "PROPFIND"),
        ("PRIVATE/", "GET"),
        (";%2f%70rivate", "PROPFIND"),
    ] {
        assert_eq!(holds_for_every_backend(uri, method), Ok(()));
    }
}

/// The reference itself tells granted from refused, so the property can fail.
#[test]
fn the_reference_decision_discriminates() {
    assert!(reference_grants("/x/f", "GET", false));
    assert!(!reference_grants("/x/f", "PUT", false));
    assert!(reference_grants("/x/upload/a", "PUT", false));
    assert!(!reference_grants("/private/s", "GET", false));
    assert!(reference_grants("/PRIVATE/s", "GET", false));
    assert!(!reference_grants("/PRIVATE/s", "GET", true));
    assert_eq!(windows_server("/private./s").as_deref(), Some("/private/s"));
    assert_eq!(
        java_servlet("/x/..;/private/s").as_deref(),
        Some("/private/s")
    );
    assert_eq!(
        object_store("/private/%2e%2e/x").as_deref(),
        Some("/private/../x")
    );
    assert_eq!(
        wsgidav("/x%2F..%2Fprivate").as_deref(),
        Some("/x%2F..%2Fprivate")
    );
}

/// Explain reads a method, host and path (`RequestTarget::as_sent`) as
/// `/api/verify` reads them from a trusted proxy's `X-Forwarded-*`
/// headers: the same refusal, or the same method, host, readings and
/// reach over the tree.
fn reads_as_forwarded(method: &str, host: &str, uri: &str) -> Result<(), String> {
    let request = actix_web::test::TestRequest::default()
        .insert_header(("X-Forwarded-Method", method))
        .insert_header(("X-Forwarded-Host", host))
        .insert_header(("X-Forwarded-Uri", uri))
        .to_http_request();
    let forwarded = RequestTarget::of(&request, true, crate::target::HeaderFamily::Auto, &[]);
    let named = RequestTarget::as_sent(method, host, uri);
    let seen = |t: &RequestTarget| {
        (
            t.method.to_string(),
            t.host.to_string(),
            t.paths.iter().map(str::to_string).collect::<Vec<_>>(),
            t.recursive,
        )
    };
    match (forwarded, named) {
        (Ok(a), Ok(b)) if seen(&a) == seen(&b) => Ok(()),
        (Err(a), Err(b)) if a == b => Ok(()),
        (a, b) => Err(format!(
            "{method} {host:?} {uri:?}: verify reads {:?}, explain {:?}",
            a.as_ref().map(seen),
            b.as_ref().map(seen)
        )),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn explain_reads_the_target_as_verify_does(
        uri in uri(),
        padding in prop::sample::select(vec!["", " ", "\t", "  "]),
        host in prop::sample::select(vec![
            HOST, "DAV.Example.com", "dav.example.com:8443", "dav.example.com.",
            "dav.example.com,", "dav.example.com, DAV.example.com",
            "dav.example.com, other.example.com", "a b", "[::1]:80", "127.0.0.1", "é.example",
        ]),
        method in prop::sample::select(vec![
            "GET", "get", "PROPFIND", "propfind", "DELETE", "MOVE", "COPY", "LOCK", "PUT",
            "M-SEARCH",
        ]),
    ) {
        let uri = format!("{padding}{uri}{padding}");
        let verdict = reads_as_forwarded(method, host, &uri);
        prop_assert!(verdict.is_ok(), "{}", verdict.unwrap_err());
    }
}
