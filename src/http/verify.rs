//! `/api/verify` (any method): the reverse proxy's forward-auth sub-request.
//! Bearer tokens are decided locally by `crate::verifier`; requests
//! without one fall back to the session upstream or the login redirect.

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};

use super::AppState;
use super::client_addr::{client_addr, trusted_peer};
use super::error::ApiError;
use crate::resources::{Resource, normalize_path};
use crate::throttle::ThrottleKey;
use crate::verifier::{Grant, Target, VerifyError};

pub async fn verify(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let trusted = &state.settings.trusted_proxies;
    let original = OriginalRequest::of(&req, trusted_peer(&req, trusted));
    // An unreadable Authorization header is decided (and throttled) like
    // any other bad token; no bearer at all goes to the session fallback.
    let bearer = match bearer_token(&req) {
        Ok(Some(bearer)) => Ok(bearer),
        Ok(None) => {
            state.metrics.verify_fallback();
            return session_fallback(&req, &state, &original).await;
        }
        Err(e) => Err(e),
    };
    let now = state.clock.now().timestamp();
    let address = || [ThrottleKey::Address(client_addr(&req, trusted))];
    state
        .verify_throttle
        .check(now, address)
        .map_err(|retry_after| ApiError::VerifyThrottled { retry_after })?;

    let target = Target {
        method: &original.method,
        host: &original.host,
        path: &original.path,
    };
    let decision = bearer.and_then(|bearer| {
        state.verifier.verify(
            &state.directory.current(),
            &state.keys.guard(),
            &state.directory.revocations,
            bearer,
            &target,
            now,
        )
    });
    match decision {
        Ok(grant) => {
            log::debug!(
                "verify {} {}{}: granted to {}",
                original.method,
                original.host,
                original.path,
                grant.token.client_id
            );
            state.metrics.verify_granted();
            Ok(identity_response(&grant))
        }
        Err(e) => {
            state.metrics.verify_denied(e.reason());
            if looks_forged(e) {
                state.verify_throttle.record_failure(&address(), now);
            }
            log::info!(
                "verify {} {}{}: denied: {e}",
                original.method,
                original.host,
                original.path
            );
            Err(e.into())
        }
    }
}

/// Failures that suggest guessing or forgery count towards the address's
/// lockout; an expired token or a missing rule does not, so that a client
/// retrying with a stale token is not locked out once it has a fresh one.
fn looks_forged(e: VerifyError) -> bool {
    matches!(
        e,
        VerifyError::TooLong
            | VerifyError::Malformed
            | VerifyError::Algorithm
            | VerifyError::Type
            | VerifyError::UnknownKey
            | VerifyError::Signature
    )
}

/// `Authorization: Bearer …`, scheme case-insensitive. Another scheme
/// (a browser's Basic, say) is no bearer token and goes to the fallback.
fn bearer_token(req: &HttpRequest) -> Result<Option<&str>, VerifyError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = std::str::from_utf8(value.as_bytes())
        .map_err(|_| VerifyError::Malformed)?
        .trim();
    let is_bearer = value
        .get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer"));
    if !is_bearer || value.len() > 6 && !value[6..].starts_with(' ') {
        return Ok(None);
    }
    match value[6..].trim() {
        "" => Err(VerifyError::Malformed),
        token => Ok(Some(token)),
    }
}

// Lookups by a static name skip parsing the name on every request.
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");

const REMOTE_USER: HeaderName = HeaderName::from_static("remote-user");
const REMOTE_NAME: HeaderName = HeaderName::from_static("remote-name");
const REMOTE_GROUPS: HeaderName = HeaderName::from_static("remote-groups");
const REMOTE_CLIENT_ID: HeaderName = HeaderName::from_static("remote-client-id");
const REMOTE_AUTH_METHOD: HeaderName = HeaderName::from_static("remote-auth-method");
const REMOTE_SCOPE: HeaderName = HeaderName::from_static("remote-scope");

/// The name a rule gives an identity header: the default, a rename, or
/// `None` when the rule drops it.
fn header_name(rule: &Resource, default: &HeaderName, title: &str) -> Option<HeaderName> {
    if rule.headers.is_empty() {
        return Some(default.clone());
    }
    rule.header_name(title)
        .and_then(|name| HeaderName::from_bytes(name.as_bytes()).ok())
}

/// 200 with the identity headers, under the names the rule chose.
fn identity_response(grant: &Grant) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    let mut set = |default: &HeaderName, title: &str, value: &HeaderValue| {
        if let Some(name) = header_name(&grant.rule, default, title) {
            response.insert_header((name, value.clone()));
        }
    };
    let values = &grant.token.headers;
    set(&REMOTE_USER, "Remote-User", &values.client_id);
    if let Ok(name) = HeaderValue::from_bytes(grant.application.name.as_bytes()) {
        set(&REMOTE_NAME, "Remote-Name", &name);
    }
    match &values.groups {
        Some(groups) => set(&REMOTE_GROUPS, "Remote-Groups", groups),
        // An API key's groups are its application's, as of now.
        None if !grant.groups().is_empty() => {
            if let Ok(groups) = HeaderValue::from_str(&grant.groups().join(",")) {
                set(&REMOTE_GROUPS, "Remote-Groups", &groups);
            }
        }
        None => {}
    }
    set(&REMOTE_CLIENT_ID, "Remote-Client-Id", &values.client_id);
    set(
        &REMOTE_AUTH_METHOD,
        "Remote-Auth-Method",
        &values.auth_method,
    );
    if let Some(scope) = &values.scope {
        set(&REMOTE_SCOPE, "Remote-Scope", scope);
    }
    response.finish()
}

/// The request the proxy is asking about, borrowed from the headers
/// where no normalisation is needed.
pub struct OriginalRequest<'r> {
    pub method: Cow<'r, str>,
    pub proto: Cow<'r, str>,
    /// As sent, port included: for rebuilding the URL.
    pub authority: &'r str,
    /// Lowercase, without port: for matching rules.
    pub host: Cow<'r, str>,
    /// Path and query as sent.
    pub uri: &'r str,
    /// Normalised path: for matching rules.
    pub path: Cow<'r, str>,
}

impl<'r> OriginalRequest<'r> {
    /// Reads `X-Forwarded-Method/Proto/Host/Uri` (Caddy, Traefik), then
    /// `X-Original-URL/-Method` (nginx), then `Host`. Forwarded headers
    /// count only from a trusted proxy.
    pub fn of(req: &'r HttpRequest, trusted: bool) -> Self {
        let forwarded = |name: HeaderName| -> Option<&'r str> {
            if !trusted {
                return None;
            }
            let value = req.headers().get(&name)?.as_bytes();
            // A header repeated along a proxy chain: the first hop's value.
            let first = value.split(|&b| b == b',').next()?;
            let value = std::str::from_utf8(first).ok()?.trim();
            (!value.is_empty()).then_some(value)
        };
        let original_url = forwarded(X_ORIGINAL_URL).and_then(split_absolute_url);
        let method = forwarded(X_FORWARDED_METHOD)
            .or_else(|| forwarded(X_ORIGINAL_METHOD))
            .unwrap_or(req.method().as_str());
        let proto = forwarded(X_FORWARDED_PROTO)
            .or(original_url.map(|u| u.0))
            .unwrap_or("http");
        let authority = forwarded(X_FORWARDED_HOST)
            .or(original_url.map(|u| u.1))
            .or_else(|| std::str::from_utf8(req.headers().get(header::HOST)?.as_bytes()).ok())
            .unwrap_or("");
        let uri = forwarded(X_FORWARDED_URI)
            .or(original_url.map(|u| u.2))
            .unwrap_or("/");
        Self {
            method: uppercase(method),
            proto: lowercase(proto),
            host: host_without_port(authority),
            path: normalize_path(uri),
            authority,
            uri,
        }
    }

    /// The URL the client asked for, for `rd=` on a login redirect.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.proto, self.authority, self.uri)
    }
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
    let (authority, uri) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    Some((scheme, authority, uri))
}

/// Lowercase host without port or trailing dot; `[v6]:port` keeps its brackets.
fn host_without_port(authority: &str) -> Cow<'_, str> {
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        }
    };
    lowercase(host.trim_end_matches('.'))
}

/// No bearer token: the session upstream decides, else a browser is sent
/// to the login page, else 401.
async fn session_fallback(
    req: &HttpRequest,
    state: &AppState,
    original: &OriginalRequest<'_>,
) -> Result<HttpResponse, ApiError> {
    if let Some(upstream) = &state.session_upstream {
        let addr = client_addr(req, &state.settings.trusted_proxies);
        return upstream.delegate(req, original, addr).await;
    }
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    match &state.settings.login_url {
        Some(login_url) if wants_html => {
            let separator = if login_url.contains('?') { '&' } else { '?' };
            let url = original.url();
            let rd =
                percent_encoding::utf8_percent_encode(&url, percent_encoding::NON_ALPHANUMERIC);
            Ok(HttpResponseBuilder::new(actix_web::http::StatusCode::FOUND)
                .insert_header((header::LOCATION, format!("{login_url}{separator}rd={rd}")))
                .finish())
        }
        _ => Err(VerifyError::MissingToken.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port_and_case() {
        assert_eq!(host_without_port("Dav.Example.com:8443"), "dav.example.com");
        assert_eq!(host_without_port("dav.example.com."), "dav.example.com");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("example.com"), "example.com");
    }

    #[test]
    fn absolute_urls_split() {
        assert_eq!(
            split_absolute_url("https://dav.example.com:8443/a/b?c"),
            Some(("https", "dav.example.com:8443", "/a/b?c"))
        );
        assert_eq!(
            split_absolute_url("https://host"),
            Some(("https", "host", "/"))
        );
        assert_eq!(split_absolute_url("/relative"), None);
    }
}
