//! `POST /oauth/token`: turns the form and the `Authorization` header into
//! a `TokenRequest` (RFC 6749 §2.3.1, §3.2, §4.4) and the issuer's answer
//! into JSON.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::AppState;
use super::body::{media_type, read_limited};
use super::client_addr::client_addr;
use super::error::ApiError;
use super::primary_relay::{RELAY_TOKEN_HEADER, RELAYED_ADDR_HEADER};
use crate::applications::{ApplicationRecord, credential_groups};
use crate::crypto::b64url;
use crate::issuer::{ClientAuthMethod, ClientCredentials, TokenError, TokenRequest};
use crate::revocation::CredentialId;
use crate::throttle::ThrottleKey;
use crate::verifier::{AuthMethod, Inputs, VerifiedToken, VerifyError};

/// Token requests are a handful of short parameters.
pub const TOKEN_BODY_LIMIT: usize = 8 * 1024;
const FORM: &str = "application/x-www-form-urlencoded";

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(&req, payload.into_inner(), TOKEN_BODY_LIMIT).await?;
    let request = parse_token_request(&req, &body)?;
    let addr = client_addr(&req, &state.settings.trusted_proxies);
    match state.issuer.issue(request, addr, state.clock.now()) {
        Ok(issued) => {
            state.metrics.token_issued();
            Ok(HttpResponse::Ok().json(TokenResponse {
                access_token: issued.access_token,
                token_type: "Bearer",
                expires_in: issued.expires_in,
                scope: issued.scope,
            }))
        }
        Err(e) => Err(held_back(e).await),
    }
}

/// A failed client authentication is answered late when failures pile up
/// (the throttle's `delay`), without blocking the worker.
async fn held_back(e: TokenError) -> ApiError {
    if let TokenError::InvalidClient { delay, .. } = &e
        && !delay.is_zero()
    {
        actix_web::rt::time::sleep(*delay).await;
    }
    e.into()
}

/// A form POSTed by an authenticating client (token, introspection,
/// revocation endpoints): its parameters and its credentials.
struct ClientForm {
    params: Vec<(String, String)>,
    credentials: Option<ClientCredentials>,
}

impl ClientForm {
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_token_request(req: &HttpRequest, body: &Bytes) -> Result<TokenRequest, TokenError> {
    let form = parse_client_form(req, body)?;
    let mut request = TokenRequest::default();
    for (name, value) in &form.params {
        match name.as_str() {
            "grant_type" => request.grant_type = Some(value.clone()),
            "scope" => request.scope = Some(value.clone()),
            "resource" => request.resources.push(value.clone()),
            "audience" => request.audience = Some(value.clone()),
            _ => {} // RFC 6749 §3.2: unrecognised parameters are ignored.
        }
    }
    request.credentials = form.credentials;
    Ok(request)
}

/// Reads the form strictly (RFC 6749 §3.2: no repeated parameters) and
/// the client's credentials from Basic or the body (§2.3.1), not both.
fn parse_client_form(req: &HttpRequest, body: &Bytes) -> Result<ClientForm, TokenError> {
    if media_type(req).as_deref() != Some(FORM) {
        return Err(TokenError::InvalidRequest(format!(
            "the request body must be {FORM}"
        )));
    }
    let params = parse_form(body)?;
    let mut body_client_id = None;
    let mut body_secret = None;
    // Checked before authentication, so linear in the parameters.
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (name, value) in &params {
        // RFC 6749 §3.2: parameters must not repeat. RFC 8707 allows
        // several `resource` parameters.
        if name != "resource" && !seen.insert(name.as_str()) {
            return Err(TokenError::InvalidRequest(format!(
                "parameter {name:?} appears more than once"
            )));
        }
        match name.as_str() {
            "client_id" => body_client_id = Some(value.clone()),
            "client_secret" => body_secret = Some(value.clone()),
            _ => {}
        }
    }

    let basic = basic_credentials(req)?;
    let credentials = match (basic, body_client_id, body_secret) {
        (Some(_), _, Some(_)) => {
            return Err(TokenError::InvalidRequest(
                "use either HTTP Basic or client_secret in the body, not both".into(),
            ));
        }
        (Some(basic), Some(id), None) if id != basic.client_id => {
            return Err(TokenError::InvalidRequest(
                "client_id in the body differs from the Basic credentials".into(),
            ));
        }
        (Some(basic), _, None) => Some(basic),
        (None, Some(client_id), secret) => Some(ClientCredentials {
            client_id,
            secret: secret.unwrap_or_default(),
            method: ClientAuthMethod::Post,
        }),
        (None, None, Some(_)) => {
            return Err(TokenError::InvalidRequest(
                "client_secret was sent without client_id".into(),
            ));
        }
        (None, None, None) => None,
    };
    Ok(ClientForm {
        params,
        credentials,
    })
}

/// Reads the form and authenticates the client, for introspection and
/// revocation. Returns the authenticated client's id and the `token`.
async fn authenticated_request(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(String, String), ApiError> {
    let body = read_limited(req, payload.into_inner(), TOKEN_BODY_LIMIT).await?;
    authenticate_form(req, &body, state).await
}

/// The authenticated client's id and the `token` parameter of `body`.
async fn authenticate_form(
    req: &HttpRequest,
    body: &Bytes,
    state: &AppState,
) -> Result<(String, String), ApiError> {
    let form = parse_client_form(req, body)?;
    let credentials = form.credentials.as_ref().ok_or(TokenError::InvalidClient {
        basic_used: true,
        delay: std::time::Duration::ZERO,
    })?;
    let addr = relayed_client_addr(req, state)
        .unwrap_or_else(|| client_addr(req, &state.settings.trusted_proxies));
    let app = match state
        .issuer
        .authenticate(credentials, addr, state.clock.now())
    {
        Ok(app) => app,
        Err(e) => return Err(held_back(e).await),
    };
    let token = form
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenError::InvalidRequest("the token parameter is required".into()))?;
    Ok((app.client_id.to_string(), token.to_string()))
}

/// The client's address as a replica relaying its request names it. Believed
/// only with the replica token, so that `trusted_proxies` need not include
/// the replicas (which would trust their forwarded headers everywhere).
fn relayed_client_addr(req: &HttpRequest, state: &AppState) -> Option<std::net::IpAddr> {
    let expected = state.settings.replica_token.as_ref()?;
    let presented = req.headers().get(RELAY_TOKEN_HEADER)?;
    if !crate::crypto::constant_time_eq(presented.as_bytes(), expected.expose().as_bytes()) {
        return None;
    }
    req.headers()
        .get(RELAYED_ADDR_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// `POST /oauth/introspect` (RFC 7662). A client learns about its own
/// credentials only: anything else, valid or not, is `{"active": false}`.
pub async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (client_id, token) = authenticated_request(&req, payload, &state).await?;
    let inspected = inspect(&state, &token, state.clock.now().timestamp());
    let body = match inspected {
        Ok((token, app)) if token.client_id == client_id => {
            let groups = credential_groups(token.method, &token.groups, Some(&app));
            json!({
                "active": true,
                "client_id": token.client_id,
                "sub": token.client_id,
                "iss": state.issuer_url.get().as_str(),
                "token_type": match token.method {
                    AuthMethod::ClientCredentials => "Bearer",
                    AuthMethod::ApiKey => "api_key",
                },
                "auth_method": token.method.as_str(),
                "scope": token.scope,
                "groups": groups,
                "aud": token.aud,
                "iat": token.iat,
                "exp": token.exp,
                "jti": token.jti.map(|j| b64url(&j)),
            })
        }
        _ => json!({ "active": false }),
    };
    Ok(HttpResponse::Ok().json(body))
}

/// What this node's state says of a credential a client presented, whatever
/// the target: where introspection and revocation both start.
fn inspect(
    state: &AppState,
    token: &str,
    now: i64,
) -> Result<(Arc<VerifiedToken>, Arc<ApplicationRecord>), VerifyError> {
    state.verifier.inspect(
        &Inputs::of(
            &state.directory,
            &state.directory.snapshot(),
            &state.keys.snapshot(),
        ),
        token,
        now,
    )
}

/// `POST /oauth/revoke` (RFC 7009). A client revokes only its own
/// credentials; for anything else the answer is the same 200, and nothing
/// happens (§2.2: invalid tokens cause no error).
pub async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(&req, payload.into_inner(), TOKEN_BODY_LIMIT).await?;
    let (client_id, token) = authenticate_form(&req, &body, &state).await?;
    let now = state.clock.now();
    count_revocation(&state, &client_id, now.timestamp())?;
    // A replica has no store to write to: the primary carries the
    // revocation out (and authenticates the client again), and every
    // replica learns it with the next state, within a second. The local
    // authentication first keeps bad credentials (and their throttle) here.
    if let Some(relay) = &state.primary_relay {
        let addr = client_addr(&req, &state.settings.trusted_proxies);
        let token = state
            .settings
            .replica_token
            .as_ref()
            .map(|t| t.expose())
            .unwrap_or_default();
        return relay.relay(&req, "/oauth/revoke", body, addr, token).await;
    }
    let inspected = inspect(&state, &token, now.timestamp());
    let Ok((token, _)) = inspected else {
        return Ok(HttpResponse::Ok().finish());
    };
    if token.client_id != client_id {
        log::info!(
            "{client_id} tried to revoke a credential of {}",
            token.client_id
        );
        return Ok(HttpResponse::Ok().finish());
    }
    let Some(jti) = token.jti else {
        return Ok(HttpResponse::Ok().finish());
    };
    store_revocation(state, token.method, jti, token.exp, now).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Every revocation counts against the client's `revocation_limit`,
/// whatever it names; over the limit, it is refused.
fn count_revocation(state: &AppState, client_id: &str, now: i64) -> Result<(), ApiError> {
    let client = [ThrottleKey::Client(client_id.to_string())];
    if let Err(retry_after) = state.revocation_limit.check(now, || &client) {
        return Err(TokenError::TooManyAttempts { retry_after }.into());
    }
    state.revocation_limit.record_failure(now, &client);
    Ok(())
}

/// Revokes the API key, or the access token until it expires, on the
/// blocking pool (the store flushes to disk).
async fn store_revocation(
    state: web::Data<AppState>,
    method: AuthMethod,
    jti: CredentialId,
    exp: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    web::block(move || {
        let admin = state.admin()?;
        match (method, exp) {
            (AuthMethod::ApiKey, _) => admin.revoke_api_key(&b64url(&jti), now),
            (AuthMethod::ClientCredentials, Some(exp)) => admin.revoke_access_token(jti, exp, now),
            (AuthMethod::ClientCredentials, None) => Ok(()),
        }
        .map_err(ApiError::from)
    })
    .await
    .map_err(crate::admin::AdminError::internal("revocation worker"))?
}

/// HTTP Basic client credentials, form-urlencoded inside (RFC 6749 §2.3.1).
/// An `Authorization` header that is not well-formed Basic is a failed
/// authentication attempt, answered with a Basic challenge.
fn basic_credentials(req: &HttpRequest) -> Result<Option<ClientCredentials>, TokenError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || TokenError::InvalidClient {
        basic_used: true,
        delay: std::time::Duration::ZERO,
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let client_id = form_decode(id).ok_or_else(malformed)?;
    if client_id.is_empty() {
        return Err(malformed());
    }
    Ok(Some(ClientCredentials {
        client_id,
        secret: form_decode(secret).ok_or_else(malformed)?,
        method: ClientAuthMethod::Basic,
    }))
}

/// Decodes a form body strictly: bytes that are not UTF-8 once
/// percent-decoded are an error, not replacement characters.
fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, TokenError> {
    let malformed =
        || TokenError::InvalidRequest("the form body is not valid UTF-8 form encoding".into());
    let text = std::str::from_utf8(body).map_err(|_| malformed())?;
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((
                form_decode(name).ok_or_else(malformed)?,
                form_decode(value).ok_or_else(malformed)?,
            ))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding of one component.
fn form_decode(component: &str) -> Option<String> {
    let spaced = component.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_plus_and_percent() {
        assert_eq!(form_decode("a+b%3Ac").as_deref(), Some("a b:c"));
        assert_eq!(form_decode("%FF"), None);
    }

    #[test]
    fn forms_parse_strictly() {
        let params = parse_form(b"grant_type=client_credentials&scope=a+b&empty=&flag").unwrap();
        assert_eq!(params[1], ("scope".to_string(), "a b".to_string()));
        assert_eq!(params[2], ("empty".to_string(), String::new()));
        assert_eq!(params[3], ("flag".to_string(), String::new()));
        assert!(parse_form(b"scope=%FF%FE").is_err());
        assert!(parse_form(&[0x73, 0xff]).is_err());
    }
}
