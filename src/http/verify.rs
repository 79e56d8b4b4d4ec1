//! `/api/verify` (any method): the reverse proxy's forward-auth sub-request.
//! Bearer tokens are decided locally by `crate::verifier`; requests
//! without one fall back to the session upstream or the login redirect.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};

use super::AppState;
use super::client_addr::{client_addr, trusted_peer};
use super::error::ApiError;
use crate::resources::Resource;
use crate::target::RequestTarget;
use crate::throttle::ThrottleKey;
use crate::verifier::{Grant, VerifyError};

pub async fn verify(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let trusted = &state.settings.trusted_proxies;
    let snapshot = state.directory.current();
    let target = RequestTarget::of(
        &req,
        trusted_peer(&req, trusted),
        state.settings.forwarded_headers,
        snapshot.rules.renamed_identity_headers(),
    )
    .inspect_err(|e| {
        state.metrics.verify_denied(e.reason());
        log::info!("verify: refused: {e}");
    })?;
    // An unreadable Authorization header is decided (and throttled) like
    // any other bad token; no bearer at all goes to the session fallback.
    let bearer = match bearer_token(&req) {
        Ok(Some(bearer)) => Ok(bearer),
        Ok(None) => {
            // No guard is held across the upstream's answer.
            drop(snapshot);
            state.metrics.verify_fallback();
            return session_fallback(&req, &state, &target).await;
        }
        Err(e) => Err(e),
    };
    let now = state.clock.now().timestamp();
    let address = || [ThrottleKey::Address(client_addr(&req, trusted))];
    state
        .verify_throttle
        .check(now, address)
        .map_err(|retry_after| ApiError::VerifyThrottled { retry_after })?;

    let decision = bearer.and_then(|bearer| {
        state.verifier.verify(
            &snapshot,
            &state.keys.guard(),
            &state.directory.revocations,
            bearer,
            &target,
            now,
        )
    });
    match decision {
        Ok(grant) => {
            if log::log_enabled!(log::Level::Debug) {
                log::debug!(
                    "verify {}: granted to {}",
                    target.for_log(),
                    grant.token.client_id
                );
            }
            state.metrics.verify_granted();
            Ok(identity_response(&grant))
        }
        Err(e) => {
            state.metrics.verify_denied(e.reason());
            if looks_forged(e) {
                state.verify_throttle.record_failure(&address(), now);
            }
            log::info!("verify {}: denied: {e}", target.for_log());
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

/// No bearer token: the session upstream decides, else a browser is sent
/// to the login page, else 401.
async fn session_fallback(
    req: &HttpRequest,
    state: &AppState,
    target: &RequestTarget<'_>,
) -> Result<HttpResponse, ApiError> {
    if let Some(upstream) = &state.session_upstream {
        let addr = client_addr(req, &state.settings.trusted_proxies);
        return upstream.delegate(req, target, addr).await;
    }
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    match &state.settings.login_url {
        Some(login_url) if wants_html => {
            let separator = if login_url.contains('?') { '&' } else { '?' };
            let url = target.url();
            let rd =
                percent_encoding::utf8_percent_encode(&url, percent_encoding::NON_ALPHANUMERIC);
            Ok(HttpResponseBuilder::new(actix_web::http::StatusCode::FOUND)
                .insert_header((header::LOCATION, format!("{login_url}{separator}rd={rd}")))
                .finish())
        }
        _ => Err(VerifyError::MissingToken.into()),
    }
}
