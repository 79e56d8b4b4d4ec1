//! Reading the forwarded request: one header family decides it.
//!
//! Caddy and Traefik name the request in `X-Forwarded-Method/Proto/Host/Uri`,
//! nginx in `X-Original-URL` and `X-Original-Method`. Both proxies also
//! pass the client's own headers on to the sub-request, so a client can add
//! the other family. Rules, in order:
//! * headers count only from a trusted peer;
//! * URI and URL headers are taken whole (a comma is a path character);
//!   only Host and Proto are lists, and their items must agree;
//! * with `forwarded_headers = "auto"`, a field named by both families must
//!   agree, or nothing is granted; a pinned family ignores the other;
//! * methods a backend may take instead (`X-HTTP-Method-Override` and kin)
//!   and a WebDAV `Destination` are checked too;
//! * a request carrying identity headers of its own (`Remote-*`, also
//!   written `Remote_*`, which CGI-style backends read the same, and any
//!   name a rule renames one to) is refused: the proxy must have stripped
//!   them, and did not;
//! * a WebDAV method that acts on a whole tree (Depth infinity) is marked
//!   `recursive`, so that rules below the path must grant it too.

use std::borrow::Cow;

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};

use super::RequestTarget;
use super::host::rule_host;
use super::path::{self, PathError};

/// Which header family names the original request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderFamily {
    /// Either; when a peer sends both, every field they share must agree.
    #[default]
    Auto,
    /// `X-Forwarded-Method/Proto/Host/Uri` only (Caddy, Traefik).
    XForwarded,
    /// `X-Original-URL` and `X-Original-Method` only (nginx, ingress-nginx).
    XOriginal,
}

/// Why the target could not be read one way; always a 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the X-Forwarded-* and X-Original-* headers name different requests")]
    ConflictingFamilies,
    #[error("a forwarded header holds conflicting values")]
    ConflictingValues,
    #[error("X-Original-URL is not an absolute URL")]
    OriginalUrl,
    #[error("the forwarded host is not a plain host name")]
    Host,
    #[error("the forwarded method is not an HTTP method name")]
    Method,
    #[error("the path holds control characters")]
    ControlBytes,
    #[error("the path is not UTF-8 once decoded")]
    NotUtf8,
    #[error("the path is too long")]
    PathTooLong,
    #[error("the path can be read in too many ways")]
    PathTooAmbiguous,
    #[error("the Destination header names another host or no URL")]
    Destination,
    #[error("the request carries identity (Remote-*) headers of its own")]
    IdentityHeaders,
}

impl TargetError {
    /// A stable label for metrics.
    pub fn reason(self) -> &'static str {
        match self {
            TargetError::ConflictingFamilies => "conflicting_families",
            TargetError::ConflictingValues => "conflicting_values",
            TargetError::OriginalUrl => "original_url",
            TargetError::Host => "bad_host",
            TargetError::Method => "bad_method",
            TargetError::ControlBytes => "path_control_bytes",
            TargetError::NotUtf8 => "path_not_utf8",
            TargetError::PathTooLong => "path_too_long",
            TargetError::PathTooAmbiguous => "path_too_ambiguous",
            TargetError::Destination => "bad_destination",
            TargetError::IdentityHeaders => "identity_headers",
        }
    }
}

impl From<PathError> for TargetError {
    fn from(e: PathError) -> Self {
        match e {
            PathError::ControlBytes => TargetError::ControlBytes,
            PathError::NotUtf8 => TargetError::NotUtf8,
            PathError::TooLong => TargetError::PathTooLong,
            PathError::TooAmbiguous => TargetError::PathTooAmbiguous,
        }
    }
}

// Lookups by a static name skip parsing the name on every request.
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const DESTINATION: HeaderName = HeaderName::from_static("destination");
const DEPTH: HeaderName = HeaderName::from_static("depth");
/// Headers by which frameworks let a client replace the method.
const METHOD_OVERRIDES: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];
const LONGEST_METHOD: usize = 32;

/// What one header family says; `None` where it is silent.
#[derive(Default)]
struct Named<'r> {
    method: Option<&'r str>,
    proto: Option<&'r str>,
    authority: Option<&'r str>,
    uri: Option<&'r str>,
}

impl<'r> RequestTarget<'r> {
    /// The target of the request a proxy asks about. `trusted`: whether the
    /// peer is a trusted proxy, whose forwarded headers count. `renamed`:
    /// the names rules give identity headers (lowercase, `_` as `-`).
    pub fn of(
        req: &'r HttpRequest,
        trusted: bool,
        family: HeaderFamily,
        renamed: &[String],
    ) -> Result<Self, TargetError> {
        let headers = req.headers();
        if headers
            .keys()
            .any(|name| is_identity_header(name.as_str(), renamed))
        {
            return Err(TargetError::IdentityHeaders);
        }
        let named = if trusted {
            named_by(headers, family)?
        } else {
            Named::default()
        };
        let method = method_name(named.method.unwrap_or(req.method().as_str()))?;
        let authority = match named.authority {
            Some(authority) => authority,
            None => match headers.get(header::HOST) {
                Some(host) => {
                    std::str::from_utf8(host.as_bytes()).map_err(|_| TargetError::Host)?
                }
                None => "",
            },
        };
        let host = rule_host(authority).ok_or(TargetError::Host)?;
        let uri = named.uri.unwrap_or("/");
        let mut target = RequestTarget {
            method_overrides: method_overrides(headers, &method)?,
            method,
            proto: lowercase(named.proto.unwrap_or("http")),
            authority,
            host,
            uri,
            paths: path::readings(uri)?,
            recursive: false,
        };
        target.recursive = acts_on_a_tree(&target, single(headers, &DEPTH)?);
        if target.methods().any(|m| m == "COPY" || m == "MOVE")
            && let Some(destination) = single(headers, &DESTINATION)?
        {
            let (authority, path) = split_destination(destination)?;
            let same_host =
                authority.is_none_or(|a| rule_host(a).is_some_and(|host| host == target.host));
            if !same_host {
                return Err(TargetError::Destination);
            }
            target.paths.extend(path::readings(path)?);
        }
        Ok(target)
    }
}

/// `Remote-…` in any case, with `_` for `-` as CGI, WSGI, PHP and Rack
/// backends read it, or a name a rule gives an identity header.
pub fn is_identity_header(name: &str, renamed: &[String]) -> bool {
    let folded = |b: u8| {
        if b == b'_' {
            b'-'
        } else {
            b.to_ascii_lowercase()
        }
    };
    let starts = name.len() >= 7
        && name
            .bytes()
            .take(7)
            .map(folded)
            .eq(b"remote-".iter().copied());
    starts
        || renamed
            .iter()
            .any(|r| r.len() == name.len() && name.bytes().map(folded).eq(r.bytes()))
}

/// RFC 4918: DELETE and MOVE act on a whole collection; COPY, LOCK and
/// PROPFIND too unless `Depth: 0` (or, for PROPFIND, `1`: the names and
/// properties of the members only) is asked for.
pub(super) fn acts_on_a_tree(target: &RequestTarget, depth: Option<&str>) -> bool {
    let shallow = |allowed: &[&str]| depth.is_some_and(|d| allowed.contains(&d));
    target.methods().any(|method| match method {
        "DELETE" | "MOVE" => true,
        "COPY" | "LOCK" => !shallow(&["0"]),
        "PROPFIND" => !shallow(&["0", "1"]),
        _ => false,
    })
}

/// The original request as the trusted peer's headers name it.
fn named_by(headers: &HeaderMap, family: HeaderFamily) -> Result<Named<'_>, TargetError> {
    let forwarded = || -> Result<Named<'_>, TargetError> {
        Ok(Named {
            method: single(headers, &X_FORWARDED_METHOD)?,
            proto: list(headers, &X_FORWARDED_PROTO)?,
            authority: list(headers, &X_FORWARDED_HOST)?,
            uri: single(headers, &X_FORWARDED_URI)?,
        })
    };
    let original = || -> Result<Named<'_>, TargetError> {
        let mut named = Named {
            method: single(headers, &X_ORIGINAL_METHOD)?,
            ..Named::default()
        };
        if let Some(url) = single(headers, &X_ORIGINAL_URL)? {
            let (proto, authority, uri) =
                split_absolute_url(url).ok_or(TargetError::OriginalUrl)?;
            named.proto = Some(proto);
            named.authority = Some(authority);
            named.uri = Some(uri);
        }
        Ok(named)
    };
    match family {
        HeaderFamily::XForwarded => forwarded(),
        HeaderFamily::XOriginal => original(),
        HeaderFamily::Auto => merge(forwarded()?, original()?),
    }
}

/// Field by field: what only one family names is taken from it; what
/// both name must agree.
fn merge<'r>(a: Named<'r>, b: Named<'r>) -> Result<Named<'r>, TargetError> {
    fn pick<'r>(
        a: Option<&'r str>,
        b: Option<&'r str>,
        same: impl Fn(&str, &str) -> bool,
    ) -> Result<Option<&'r str>, TargetError> {
        match (a, b) {
            (Some(a), Some(b)) if !same(a, b) => Err(TargetError::ConflictingFamilies),
            (a, b) => Ok(a.or(b)),
        }
    }
    let same_host = |a: &str, b: &str| rule_host(a).is_some_and(|a| rule_host(b) == Some(a));
    Ok(Named {
        method: pick(a.method, b.method, |a, b| a.eq_ignore_ascii_case(b))?,
        proto: pick(a.proto, b.proto, |a, b| a.eq_ignore_ascii_case(b))?,
        authority: pick(a.authority, b.authority, same_host)?,
        uri: pick(a.uri, b.uri, |a, b| a == b)?,
    })
}

/// A header taken whole: repeated, its copies must be identical. An
/// empty value counts as absent (nginx clears a header by emptying it).
fn single<'r>(headers: &'r HeaderMap, name: &HeaderName) -> Result<Option<&'r str>, TargetError> {
    let mut found: Option<&str> = None;
    for value in headers.get_all(name) {
        let value = field(
            std::str::from_utf8(value.as_bytes()).map_err(|_| TargetError::ConflictingValues)?,
        );
        match found {
            _ if value.is_empty() => {}
            Some(seen) if seen != value => return Err(TargetError::ConflictingValues),
            _ => found = Some(value),
        }
    }
    Ok(found)
}

/// A comma list (a header repeated along a proxy chain): every item must
/// name the same thing, since nobody can tell which hop is right.
fn list<'r>(headers: &'r HeaderMap, name: &HeaderName) -> Result<Option<&'r str>, TargetError> {
    let mut found: Option<&str> = None;
    for value in headers.get_all(name) {
        let value =
            std::str::from_utf8(value.as_bytes()).map_err(|_| TargetError::ConflictingValues)?;
        items_agree(&mut found, value)?;
    }
    Ok(found)
}

/// The items of one value of a comma list, each the same as `found`
/// (case aside), which takes the first.
pub(super) fn items_agree<'r>(
    found: &mut Option<&'r str>,
    value: &'r str,
) -> Result<(), TargetError> {
    for item in value.split(',').map(field).filter(|i| !i.is_empty()) {
        match *found {
            Some(seen) if !seen.eq_ignore_ascii_case(item) => {
                return Err(TargetError::ConflictingValues);
            }
            _ => *found = Some(item),
        }
    }
    Ok(())
}

/// A header value as a field: only spaces and tabs are HTTP's whitespace,
/// and trimmed (trimming Unicode spaces would read `/private/..\u{3000}`
/// as `/private/..`).
pub(super) fn field(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// An HTTP method token, uppercase.
pub(super) fn method_name(method: &str) -> Result<Cow<'_, str>, TargetError> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if method.is_empty() || method.len() > LONGEST_METHOD || !method.bytes().all(token) {
        return Err(TargetError::Method);
    }
    Ok(uppercase(method))
}

fn method_overrides<'r>(
    headers: &'r HeaderMap,
    method: &str,
) -> Result<Vec<Cow<'r, str>>, TargetError> {
    let mut overrides: Vec<Cow<str>> = Vec::new();
    for name in &METHOD_OVERRIDES {
        for value in headers.get_all(name) {
            let value = std::str::from_utf8(value.as_bytes()).map_err(|_| TargetError::Method)?;
            for item in value
                .split(',')
                .map(|i| i.trim_matches([' ', '\t']))
                .filter(|i| !i.is_empty())
            {
                let item = method_name(item)?;
                if item != method && !overrides.contains(&item) {
                    overrides.push(item);
                }
            }
        }
    }
    Ok(overrides)
}

fn uppercase(text: &str) -> Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_lowercase()) {
        Cow::Owned(text.to_ascii_uppercase())
    } else {
        Cow::Borrowed(text)
    }
}

fn lowercase(text: &str) -> Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}

/// `https://host:port/path?q` → (`https`, `host:port`, `/path?q`).
fn split_absolute_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme_ok = scheme
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if scheme.is_empty() || !scheme_ok {
        return None;
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, uri) = rest.split_at(end);
    Some((scheme, authority, if uri.is_empty() { "/" } else { uri }))
}

/// A `Destination` (RFC 4918 §10.3): an absolute URL, or an absolute path
/// on the same host.
fn split_destination(value: &str) -> Result<(Option<&str>, &str), TargetError> {
    if value.starts_with('/') {
        return Ok((None, value));
    }
    let (_, authority, uri) = split_absolute_url(value).ok_or(TargetError::Destination)?;
    Ok((Some(authority), uri))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn target_of(
        headers: &[(&str, &str)],
        trusted: bool,
        family: HeaderFamily,
    ) -> Result<(String, String, Vec<String>), TargetError> {
        let mut request = TestRequest::default().method(actix_web::http::Method::GET);
        for &(name, value) in headers {
            request = request.append_header((name, value));
        }
        let req = request.to_http_request();
        RequestTarget::of(&req, trusted, family, &["x-user".into()]).map(|t| {
            (
                t.methods().collect::<Vec<_>>().join(","),
                t.host.to_string(),
                t.paths.iter().map(str::to_string).collect(),
            )
        })
    }

    fn auto(headers: &[(&str, &str)]) -> Result<(String, String, Vec<String>), TargetError> {
        target_of(headers, true, HeaderFamily::Auto)
    }

    const CADDY: [(&str, &str); 4] = [
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "dav.example.com"),
        ("X-Forwarded-Uri", "/x/f"),
    ];
    const NGINX: [(&str, &str); 2] = [
        ("X-Original-URL", "https://dav.example.com/x/f"),
        ("X-Original-Method", "GET"),
    ];

    #[test]
    fn each_family_alone_names_the_request() {
        let expected = (
            "GET".to_string(),
            "dav.example.com".to_string(),
            vec!["/x/f".to_string()],
        );
        assert_eq!(auto(&CADDY), Ok(expected.clone()));
        assert_eq!(auto(&NGINX), Ok(expected.clone()));
        // Both, agreeing (ingress-nginx adds X-Forwarded-Host/Proto).
        let both: Vec<_> = NGINX
            .iter()
            .copied()
            .chain([
                ("X-Forwarded-Host", "DAV.example.com:443"),
                ("X-Forwarded-Proto", "https"),
            ])
            .collect();
        assert_eq!(auto(&both), Ok(expected));
    }

    /// The review's class 3: a client adds the other family through a
    /// proxy that passes it on.
    #[test]
    fn families_that_disagree_grant_nothing() {
        let forged_through_nginx: &[&[(&str, &str)]] = &[
            &[("X-Forwarded-Uri", "/x/f")],
            &[("X-Forwarded-Method", "PUT")],
            &[("X-Forwarded-Host", "other.example.com")],
            &[("X-Forwarded-Proto", "http")],
        ];
        for forged in forged_through_nginx {
            let mut headers = NGINX.to_vec();
            headers[0].1 = "https://dav.example.com/private/s";
            headers.extend_from_slice(forged);
            assert_eq!(
                auto(&headers),
                Err(TargetError::ConflictingFamilies),
                "{forged:?}"
            );
        }
        let mut through_caddy = CADDY.to_vec();
        through_caddy.push(("X-Original-URL", "https://dav.example.com/private/s"));
        assert_eq!(auto(&through_caddy), Err(TargetError::ConflictingFamilies));
        // A pinned family does not listen to the other at all.
        assert_eq!(
            target_of(&through_caddy, true, HeaderFamily::XForwarded).map(|t| t.2),
            Ok(vec!["/x/f".to_string()])
        );
        let mut through_nginx = NGINX.to_vec();
        through_nginx.push(("X-Forwarded-Uri", "/elsewhere"));
        assert_eq!(
            target_of(&through_nginx, true, HeaderFamily::XOriginal).map(|t| t.2),
            Ok(vec!["/x/f".to_string()])
        );
    }

    /// The review's class 1: commas are path characters.
    #[test]
    fn uri_headers_are_taken_whole() {
        let mut headers = CADDY.to_vec();
        headers[3].1 = "/x,/../private/s";
        assert_eq!(auto(&headers).unwrap().2, ["/private/s"]);
        let url = [("X-Original-URL", "https://dav.example.com/x,/../private/s")];
        assert_eq!(auto(&url).unwrap().2, ["/private/s"]);
        // Repeated copies must be the same.
        let mut repeated = CADDY.to_vec();
        repeated.push(("X-Forwarded-Uri", "/private/s"));
        assert_eq!(auto(&repeated), Err(TargetError::ConflictingValues));
    }

    #[test]
    fn host_lists_must_agree() {
        let mut headers = CADDY.to_vec();
        headers[2].1 = "dav.example.com, dav.example.com";
        assert_eq!(auto(&headers).unwrap().1, "dav.example.com");
        headers[2].1 = "dav.example.com, evil.example.com";
        assert_eq!(auto(&headers), Err(TargetError::ConflictingValues));
        headers[2].1 = "dav.example.com,";
        assert_eq!(auto(&headers).unwrap().1, "dav.example.com");
        let url = [("X-Original-URL", "https://dav.example.com,/x")];
        assert_eq!(auto(&url), Err(TargetError::Host));
        let at = [("X-Original-URL", "https://evil@dav.example.com/x")];
        assert_eq!(auto(&at), Err(TargetError::Host));
    }

    #[test]
    fn untrusted_peers_name_nothing_but_their_host() {
        let mut headers = CADDY.to_vec();
        headers.push(("Host", "dav.example.com"));
        let (method, host, paths) = target_of(&headers, false, HeaderFamily::Auto).unwrap();
        assert_eq!((method.as_str(), host.as_str()), ("GET", "dav.example.com"));
        assert_eq!(paths, ["/"]);
    }

    #[test]
    fn method_overrides_and_destinations_are_checked_too() {
        let mut headers = CADDY.to_vec();
        headers.push(("X-HTTP-Method-Override", "delete"));
        assert_eq!(auto(&headers).unwrap().0, "GET,DELETE");
        headers.push(("X-HTTP-Method", "G\u{e9}T"));
        assert!(auto(&headers).is_err());

        let mut copy = CADDY.to_vec();
        copy[0].1 = "COPY";
        copy.push(("Destination", "https://dav.example.com/private/s"));
        assert_eq!(auto(&copy).unwrap().2, ["/x/f", "/private/s"]);
        copy[4].1 = "/private;x/s";
        assert_eq!(
            auto(&copy).unwrap().2,
            ["/x/f", "/private;x/s", "/private/s"]
        );
        copy[4].1 = "https://other.example.com/x/g";
        assert_eq!(auto(&copy), Err(TargetError::Destination));
        copy[4].1 = "not a url";
        assert_eq!(auto(&copy), Err(TargetError::Destination));
        // Other methods carry no destination.
        let mut get = CADDY.to_vec();
        get.push(("Destination", "https://other.example.com/x"));
        assert_eq!(auto(&get).unwrap().2, ["/x/f"]);
    }

    #[test]
    fn identity_headers_from_the_client_are_refused() {
        for name in [
            "Remote-User",
            "remote-email",
            "Remote-Groups",
            "Remote_User",
            "REMOTE_GROUPS",
            "remote_-email",
            "X-User",
            "x_user",
        ] {
            let mut headers = CADDY.to_vec();
            headers.push((name, "admin"));
            assert_eq!(auto(&headers), Err(TargetError::IdentityHeaders), "{name}");
        }
    }

    #[test]
    fn bad_parts_are_refused_not_guessed() {
        let cases: &[(&[(&str, &str)], TargetError)] = &[
            (
                &[("X-Original-URL", "dav.example.com/x")],
                TargetError::OriginalUrl,
            ),
            (&[("X-Forwarded-Method", "GE T")], TargetError::Method),
            (&[("X-Forwarded-Uri", "/a%00")], TargetError::ControlBytes),
            (&[("X-Forwarded-Host", ".example.com")], TargetError::Host),
        ];
        for (headers, error) in cases {
            assert_eq!(auto(headers), Err(*error), "{headers:?}");
        }
    }
}
