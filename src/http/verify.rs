//! `/api/verify` (any method): the reverse proxy's forward-auth sub-request.
//! Bearer tokens and Basic credentials (an API key) are decided locally by
//! `crate::verifier`; requests without either get the rule's Basic
//! challenge, or fall back to the session upstream or the login redirect.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::AppState;
use super::client_addr::{client_addr, trusted_peer};
use super::error::ApiError;
use crate::key_usage::Usage;
use crate::rules::RuleSet;
use crate::target::RequestTarget;
use crate::throttle::ThrottleKey;
use crate::verifier::{
    self, Answer, AuthMethod, Credential, Grant, Inputs, MAX_TOKEN_LEN, Presented, VerifyError,
};

/// The forward-auth decision for one sub-request: the target the proxy
/// asks about, the credential presented, the verifier's decision, and the
/// answer (identity headers, a refusal, or the no-credential path).
pub async fn verify(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let trusted = &state.settings.trusted_proxies;
    let snapshot = state.directory.guard();
    let target = target_of(&req, &state, &snapshot.rules)?;
    // An unreadable Authorization header is decided (and throttled) like
    // any other bad token; no credential at all goes to the challenge of
    // the rule, or the session fallback. Basic where the rule did not ask
    // for it is no credential of ours (a browser's cached password for the
    // backend, say): not verified, and not counted as a failed login.
    let mut basic_buffer = Vec::new();
    let read = presented(&req, &mut basic_buffer);
    let (credential, basic) = match verifier::presented(&snapshot.rules, &target, read) {
        Presented::Verify { credential, basic } => (credential, basic),
        Presented::Nothing { ignored_basic } => {
            if ignored_basic {
                state
                    .metrics
                    .verify_denied(VerifyError::BasicNotAccepted.reason());
            }
            return without_credentials(&req, &state, snapshot, &target).await;
        }
    };
    let now = state.clock.now().timestamp();
    let address = || [ThrottleKey::Address(client_addr(&req, trusted))];
    state
        .verify_throttle
        .check(now, address)
        .map_err(|retry_after| ApiError::VerifyThrottled { retry_after })?;

    let decision = credential.and_then(|credential| {
        state.verifier.verify(
            &Inputs::of(&state.directory, &snapshot, &state.keys.guard()),
            credential,
            &target,
            || client_addr(&req, trusted),
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
            note_use(&state, &grant, now, || client_addr(&req, trusted));
            Ok(identity_response(&grant, &snapshot.rules))
        }
        Err(e) => refused(&req, &state, snapshot, &target, e, basic, now).await,
    }
}

/// The request the proxy asks about, read from the one header family
/// its settings trust (403 when it cannot be read one way).
fn target_of<'r>(
    req: &'r HttpRequest,
    state: &AppState,
    rules: &RuleSet,
) -> Result<RequestTarget<'r>, ApiError> {
    let trusted = trusted_peer(req, &state.settings.trusted_proxies);
    let headers = state.settings.forwarded_headers;
    RequestTarget::of(req, trusted, headers, rules.renamed_identity_headers()).map_err(|e| {
        state.metrics.verify_denied(e.reason());
        log::info!("verify: refused: {e}");
        e.into()
    })
}

/// The answer to a refused credential (`basic`: presented as Basic): 401
/// or 403, the rule's Basic challenge, or, for Basic where no rule takes
/// it, the no-credential path. Failures that look like guessing count
/// towards the client address's lockout.
async fn refused(
    req: &HttpRequest,
    state: &AppState,
    snapshot: arc_swap::Guard<std::sync::Arc<crate::directory::Snapshot>>,
    target: &RequestTarget<'_>,
    e: VerifyError,
    basic: bool,
    now: i64,
) -> Result<HttpResponse, ApiError> {
    let answer = match verifier::answer(&snapshot.rules, target, basic, e) {
        Answer::WithoutCredentials => None,
        Answer::Challenge { realm, reason } => Some(ApiError::BasicChallenge {
            realm: realm.to_string(),
            reason,
        }),
        Answer::Refused(e) => Some(e.into()),
    };
    state.metrics.verify_denied(e.reason());
    match answer {
        // Basic where no rule asked for it is no credential.
        None => without_credentials(req, state, snapshot, target).await,
        Some(answer) => {
            if looks_forged(e) || basic && !e.is_forbidden() {
                let address = client_addr(req, &state.settings.trusted_proxies);
                state
                    .verify_throttle
                    .record_failure(now, &[ThrottleKey::Address(address)]);
            }
            log::info!("verify {}: denied: {e}", target.for_log());
            Err(answer)
        }
    }
}

/// Notes that an API key was accepted, once per key and minute: an atomic
/// load on the verified key's cache entry, and only when the minute has
/// moved on a write into the node's usage book (see `key_usage`).
fn note_use(state: &AppState, grant: &Grant, now: i64, source: impl FnOnce() -> IpAddr) {
    let (AuthMethod::ApiKey, Some(id)) = (grant.token.method, &grant.token.jti) else {
        return;
    };
    let minute = now.div_euclid(60);
    let noted = &grant.token.last_noted;
    if noted.load(Ordering::Relaxed) != minute && noted.swap(minute, Ordering::Relaxed) != minute {
        state
            .directory
            .usage
            .note(*id, Usage::new(minute, source()));
    }
}

/// No credential: a rule with `challenge: basic` asks for one (401 with
/// the Basic challenge), anything else goes to the session fallback.
async fn without_credentials(
    req: &HttpRequest,
    state: &AppState,
    snapshot: arc_swap::Guard<std::sync::Arc<crate::directory::Snapshot>>,
    target: &RequestTarget<'_>,
) -> Result<HttpResponse, ApiError> {
    if let Some(realm) = verifier::challenge(&snapshot.rules, target) {
        state
            .metrics
            .verify_denied(VerifyError::MissingToken.reason());
        return Err(ApiError::BasicChallenge {
            realm: realm.to_string(),
            reason: VerifyError::MissingToken,
        });
    }
    // No guard is held across the upstream's answer.
    drop(snapshot);
    state.metrics.verify_fallback();
    session_fallback(req, state, target).await
}

/// Failures that suggest guessing or forgery count towards the address's
/// lockout; an expired token or a missing rule does not, so that a client
/// retrying with a stale token is not locked out once it has a fresh one.
/// (Every failed Basic login counts: that is a password being tried.)
fn looks_forged(e: VerifyError) -> bool {
    matches!(
        e,
        VerifyError::TooLong
            | VerifyError::Malformed
            | VerifyError::Algorithm
            | VerifyError::Type
            | VerifyError::UnknownKey
            | VerifyError::Signature
            | VerifyError::BasicMalformed
            | VerifyError::BasicUser
    )
}

/// The credential of the `Authorization` header: `Bearer <token>` or
/// `Basic <base64(client_id:api_key)>`, schemes case-insensitive. Another
/// scheme is no credential. Basic is decoded into `buffer`, once.
fn presented<'r>(
    req: &'r HttpRequest,
    buffer: &'r mut Vec<u8>,
) -> Result<Option<Credential<'r>>, VerifyError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = std::str::from_utf8(value.as_bytes())
        .map_err(|_| VerifyError::Malformed)?
        .trim();
    if let Some(token) = after_scheme(value, "bearer") {
        return match token {
            "" => Err(VerifyError::Malformed),
            token => Ok(Some(Credential::Bearer(token))),
        };
    }
    match after_scheme(value, "basic") {
        Some(encoded) => parse_basic(encoded, buffer).map(Some),
        None => Ok(None),
    }
}

/// What follows `scheme` and a space, if `value` is of that scheme.
fn after_scheme<'v>(value: &'v str, scheme: &str) -> Option<&'v str> {
    let head = value.get(..scheme.len())?;
    if !head.eq_ignore_ascii_case(scheme) {
        return None;
    }
    let rest = &value[scheme.len()..];
    if rest.is_empty() {
        return Some("");
    }
    rest.starts_with(' ').then(|| rest.trim())
}

/// The longest Basic value read: a client_id, a colon and the longest
/// token verify takes, in base64.
const MAX_BASIC_LEN: usize = (64 + 1 + MAX_TOKEN_LEN).div_ceil(3) * 4;

/// RFC 7617: base64 of `user-id ":" password`, the user-id without a
/// colon. Anything else, a control character included, is malformed.
pub fn parse_basic<'b>(
    encoded: &str,
    buffer: &'b mut Vec<u8>,
) -> Result<Credential<'b>, VerifyError> {
    if encoded.is_empty() || encoded.len() > MAX_BASIC_LEN {
        return Err(VerifyError::BasicMalformed);
    }
    *buffer = STANDARD
        .decode(encoded)
        .map_err(|_| VerifyError::BasicMalformed)?;
    let text = std::str::from_utf8(buffer).map_err(|_| VerifyError::BasicMalformed)?;
    let (user, key) = text.split_once(':').ok_or(VerifyError::BasicMalformed)?;
    // C0 controls and DEL by byte (no UTF-8 decoding on the hot path);
    // C1 controls are two-byte sequences, and no key or client_id has any.
    let control = |b: &u8| *b < 0x20 || *b == 0x7f;
    if user.is_empty() || key.is_empty() || buffer.iter().any(control) {
        return Err(VerifyError::BasicMalformed);
    }
    Ok(Credential::Basic { user, key })
}

/// 200 with the identity headers, under the names the rule chose.
fn identity_response(grant: &Grant, rules: &RuleSet) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    verifier::identity_headers(grant, rules, |name, value| {
        response.insert_header((name, value.clone()));
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn basic_values_split_once_at_the_first_colon() {
        let mut buffer = Vec::new();
        let value = STANDARD.encode("canister:a:b");
        match parse_basic(&value, &mut buffer).unwrap() {
            Credential::Basic { user, key } => assert_eq!((user, key), ("canister", "a:b")),
            other => panic!("{other:?}"),
        }
        for bad in [
            "",
            "!!!",
            "Y2FuaXN0ZXI",
            "Y2FuaXN0ZXI=",
            "OmtleQ==",
            "Y2FuaXN0ZXI6",
        ] {
            assert_eq!(
                parse_basic(bad, &mut buffer).err(),
                Some(VerifyError::BasicMalformed),
                "{bad}"
            );
        }
        let nul = STANDARD.encode("canister:k\0ey");
        assert!(parse_basic(&nul, &mut buffer).is_err());
        let huge = "A".repeat(MAX_BASIC_LEN + 4);
        assert!(parse_basic(&huge, &mut buffer).is_err());
        assert!(crate::fuzzing::basic_with_user("canister"));
    }

    /// A key minted with scopes is refused where they have not arrived,
    /// rather than taken as unscoped.
    #[test]
    fn a_scoped_key_without_its_scopes_is_refused() {
        assert_eq!(
            crate::fuzzing::scoped_key_without_its_scopes(),
            Err(VerifyError::ScopeUnknown)
        );
    }

    proptest! {
        /// Whatever a client sends as Basic, parsing never panics and
        /// nothing unsigned is ever granted.
        #[test]
        fn garbage_basic_never_panics_nor_grants(value in ".{0,300}") {
            crate::fuzzing::basic(&value);
        }

        #[test]
        fn garbage_basic_pairs_never_grant(user in "[^:]{0,40}", key in "[ -~]{0,400}") {
            crate::fuzzing::basic(&STANDARD.encode(format!("{user}:{key}")));
        }

        /// A real key is granted under its client's id and no other name.
        #[test]
        fn a_real_key_is_granted_only_to_its_client(user in "[a-z0-9._:-]{0,20}") {
            crate::fuzzing::basic_with_user(&user);
        }
    }
}
