//! The token endpoint's core: OAuth2 client_credentials (RFC 6749 §4.4)
//! issuing RFC 9068 JWT access tokens. The HTTP layer parses the request
//! into a `TokenRequest`; everything after that is decided here.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Header};

use crate::applications::{ApplicationRecord, is_scope_token, validate_client_id};
use crate::claims::{ACCESS_TOKEN_TYP, AccessTokenClaims, Audience};
use crate::crypto::{SecretDigest, random_id};
use crate::directory::Directory;
use crate::keys::{KeyRing, SigningKey};
use crate::throttle::{Throttle, ThrottleKey};

pub const CLIENT_CREDENTIALS: &str = "client_credentials";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// `client_secret_basic`
    Basic,
    /// `client_secret_post`
    Post,
}

pub struct ClientCredentials {
    pub client_id: String,
    pub secret: String,
    pub method: ClientAuthMethod,
}

/// A token request as sent, not yet validated.
#[derive(Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub credentials: Option<ClientCredentials>,
    pub scope: Option<String>,
    /// RFC 8707 `resource` parameters (absolute URIs).
    pub resources: Vec<String>,
    /// `audience` (space-separated, as Ory Hydra takes it).
    pub audience: Option<String>,
}

#[derive(Debug)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u32,
    pub scope: Option<String>,
}

/// RFC 6749 §5.2 errors, plus the throttle's refusal.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    InvalidRequest(String),
    /// One answer for unknown client, wrong secret and inactive
    /// application. `delay` holds the answer back when failures pile up.
    #[error("client authentication failed")]
    InvalidClient { basic_used: bool, delay: Duration },
    #[error("grant_type {0:?} is not supported; use client_credentials")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error("{0}")]
    InvalidTarget(String),
    #[error("too many failed authentications; retry after {retry_after} seconds")]
    TooManyAttempts { retry_after: u64 },
    /// Randomness or signing failed: a 500 that says no more (the message
    /// is the client's); `context` and the cause are for the log.
    #[error("the token could not be issued")]
    Internal {
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A replica without the signing key cannot issue.
    #[error("this node cannot issue tokens: it holds no signing key")]
    Unavailable,
}

/// The node's issuer URL: `iss`, the default `aud`, and the base of its
/// metadata. Fixed on a primary, and on a replica configured with one. A
/// replica without one adopts its primary's from the state it syncs, so
/// that it accepts the primary's tokens without repeating its settings.
#[derive(Clone)]
pub struct IssuerUrl(Arc<ArcSwap<String>>);

impl IssuerUrl {
    pub fn new(url: String) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(url)))
    }

    pub fn get(&self) -> Arc<String> {
        self.0.load_full()
    }

    pub fn matches(&self, iss: &str) -> bool {
        self.0.load().as_str() == iss
    }

    /// Takes `url` as the issuer; returns whether that changed it.
    pub fn adopt(&self, url: &str) -> bool {
        if self.matches(url) {
            return false;
        }
        self.0.store(Arc::new(url.to_string()));
        true
    }
}

impl From<String> for IssuerUrl {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

impl From<&str> for IssuerUrl {
    fn from(url: &str) -> Self {
        Self::new(url.to_string())
    }
}

pub struct TokenIssuer {
    issuer: IssuerUrl,
    keys: Arc<KeyRing>,
    directory: Arc<Directory>,
    throttle: Arc<Throttle>,
    /// (address, client_id) pairs that authenticated lately. A locked-out
    /// address still has these clients' secrets checked: whoever made the
    /// address fail (a neighbour behind the same NAT, someone naming it in
    /// X-Forwarded-For from inside trusted_proxies) cannot shut out a
    /// client that was working from there.
    known_clients: moka::sync::Cache<(IpAddr, String), ()>,
    /// When this node last issued a token to each client (unix seconds),
    /// for the console's application list. Only authenticated clients
    /// are entered, and it is emptied past `KNOWN_CLIENTS` (deleted
    /// applications), so it stays bounded. A plain map: the usual case
    /// updates an entry in place, under a lock held for one lookup.
    last_issued: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

/// How many (address, client_id) pairs are remembered, and for how long.
const KNOWN_CLIENTS: u64 = 50_000;
const KNOWN_CLIENT_IDLE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl TokenIssuer {
    pub fn new(
        issuer: impl Into<IssuerUrl>,
        keys: Arc<KeyRing>,
        directory: Arc<Directory>,
        throttle: Arc<Throttle>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            keys,
            directory,
            throttle,
            known_clients: moka::sync::Cache::builder()
                .max_capacity(KNOWN_CLIENTS)
                .time_to_idle(KNOWN_CLIENT_IDLE)
                .build(),
            last_issued: std::sync::Mutex::default(),
        }
    }

    fn lock_last_issued(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, i64>> {
        self.last_issued.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When this node last issued an access token to `client_id` (since
    /// it started; replicas issue their own).
    pub fn last_issued(&self, client_id: &str) -> Option<DateTime<Utc>> {
        self.lock_last_issued()
            .get(client_id)
            .and_then(|at| DateTime::from_timestamp(*at, 0))
    }

    pub fn issue(
        &self,
        request: TokenRequest,
        client_addr: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, TokenError> {
        match request.grant_type.as_deref() {
            None => return Err(TokenError::InvalidRequest("grant_type is required".into())),
            Some(CLIENT_CREDENTIALS) => {}
            Some(other) => return Err(TokenError::UnsupportedGrantType(other.to_string())),
        }
        let credentials = request.credentials.ok_or(TokenError::InvalidClient {
            basic_used: false,
            delay: Duration::ZERO,
        })?;
        let app = self.authenticate(&credentials, client_addr, now)?;
        let scope = granted_scope(&app, request.scope.as_deref())?;
        let issuer = self.issuer.get();
        let aud = audience(
            &issuer,
            &app.audiences,
            &request.resources,
            request.audience.as_deref(),
        )?;
        self.sign(&issuer, &app, aud, scope, now)
    }

    /// Client authentication for the token, introspection and revocation
    /// endpoints. An address that keeps failing is refused before its
    /// credentials are looked at. A client_id is public, so failures for it
    /// (from anywhere) slow down and then refuse only wrong secrets: the
    /// right secret is always answered.
    pub fn authenticate(
        &self,
        credentials: &ClientCredentials,
        client_addr: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<Arc<ApplicationRecord>, TokenError> {
        let address = ThrottleKey::Address(client_addr);
        if let Err(retry_after) = self.throttle.check(now.timestamp(), || [address.clone()]) {
            let pair = (client_addr, credentials.client_id.clone());
            if !self.known_clients.contains_key(&pair) {
                return Err(TokenError::TooManyAttempts { retry_after });
            }
        }

        let snapshot = self.directory.guard();
        let app = snapshot.application(&credentials.client_id);
        // The secret is checked even for an unknown client, so that the
        // time taken does not tell which of the two was wrong.
        let secret_ok = match app {
            Some(app) => app.secret_matches(&credentials.secret, now),
            None => {
                std::hint::black_box(SecretDigest::of("").matches(&credentials.secret));
                false
            }
        };
        let client_key = || ThrottleKey::client(&credentials.client_id);
        match app {
            Some(app) if secret_ok && app.active => {
                self.throttle.record_success(now.timestamp(), client_key);
                let pair = (client_addr, credentials.client_id.clone());
                if !self.known_clients.contains_key(&pair) {
                    self.known_clients.insert(pair, ());
                }
                Ok(Arc::clone(app))
            }
            _ => {
                let keys: Vec<ThrottleKey> = client_key().into_iter().chain([address]).collect();
                // A client_id already locked refuses wrong secrets only.
                let locked = self.throttle.check(now.timestamp(), || &keys[..1]);
                let delay = self.throttle.record_failure(now.timestamp(), &keys);
                // A secret pasted into the wrong field must not reach the log;
                // generated secrets are never valid client_ids.
                let shown = match validate_client_id(&credentials.client_id) {
                    Ok(()) => credentials.client_id.as_str(),
                    Err(_) => "<not a valid client_id>",
                };
                log::info!(
                    "token request from {client_addr}: client authentication failed for {shown}"
                );
                locked.map_err(|retry_after| TokenError::TooManyAttempts { retry_after })?;
                Err(TokenError::InvalidClient {
                    basic_used: credentials.method == ClientAuthMethod::Basic,
                    delay,
                })
            }
        }
    }

    fn sign(
        &self,
        issuer: &str,
        app: &ApplicationRecord,
        aud: Audience,
        scope: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, TokenError> {
        let iat = app.issued_at(now.timestamp());
        let claims = AccessTokenClaims {
            iss: issuer.to_string(),
            sub: app.client_id.to_string(),
            client_id: app.client_id.to_string(),
            aud,
            iat,
            exp: iat + i64::from(app.access_token_ttl),
            jti: random_id().map_err(|e| TokenError::Internal {
                context: "token id",
                source: e.into(),
            })?,
            groups: app.groups.to_vec(),
            scope: scope.clone(),
            generation: app.credential_generation(),
        };
        let access_token = sign_jwt(&self.keys, ACCESS_TOKEN_TYP, &claims)?;
        log::debug!("issued access token {} to {}", claims.jti, app.client_id);
        self.note_issued(&app.client_id, now.timestamp());
        Ok(IssuedToken {
            access_token,
            expires_in: app.access_token_ttl,
            scope,
        })
    }
}

impl TokenIssuer {
    fn note_issued(&self, client_id: &str, at: i64) {
        let mut issued = self.lock_last_issued();
        match issued.get_mut(client_id) {
            Some(last) => *last = (*last).max(at),
            None => {
                if issued.len() >= KNOWN_CLIENTS as usize {
                    issued.clear();
                }
                issued.insert(client_id.to_string(), at);
            }
        }
    }
}

/// Signs `claims` as a JWT of type `typ` with the node's signing key.
pub fn sign_jwt<T: serde::Serialize>(
    keys: &KeyRing,
    typ: &str,
    claims: &T,
) -> Result<String, TokenError> {
    let keys = keys.guard();
    encode(keys.signer().ok_or(TokenError::Unavailable)?, typ, claims)
}

/// `sign_jwt`, also naming the key that signed (API key records keep it).
pub fn sign_jwt_with_kid<T: serde::Serialize>(
    keys: &KeyRing,
    typ: &str,
    claims: &T,
) -> Result<(String, String), TokenError> {
    let keys = keys.guard();
    let signer = keys.signer().ok_or(TokenError::Unavailable)?;
    Ok((encode(signer, typ, claims)?, signer.kid.clone()))
}

fn encode<T: serde::Serialize>(
    signer: &SigningKey,
    typ: &str,
    claims: &T,
) -> Result<String, TokenError> {
    let header = Header {
        typ: Some(typ.into()),
        kid: Some(signer.kid.clone()),
        ..Header::new(Algorithm::EdDSA)
    };
    jsonwebtoken::encode(&header, claims, &signer.encoding).map_err(|e| TokenError::Internal {
        context: "token signature",
        source: e.into(),
    })
}

/// The scope granted: what was asked for if the application may have all
/// of it, or everything it may have when nothing was asked for.
fn granted_scope(
    app: &ApplicationRecord,
    requested: Option<&str>,
) -> Result<Option<String>, TokenError> {
    let requested: Vec<&str> = requested
        .map(|s| s.split(' ').filter(|t| !t.is_empty()).collect())
        .unwrap_or_default();
    let granted: Vec<&str> = if requested.is_empty() {
        app.scopes.iter().map(String::as_str).collect()
    } else {
        for token in &requested {
            if !is_scope_token(token) {
                return Err(TokenError::InvalidScope(format!(
                    "{token:?} is not a valid scope token"
                )));
            }
            if !app.scopes.iter().any(|s| s == token) {
                return Err(TokenError::InvalidScope(format!(
                    "scope {token:?} is not allowed for this client"
                )));
            }
        }
        let mut unique = requested;
        unique.sort_unstable();
        unique.dedup();
        unique
    };
    Ok((!granted.is_empty()).then(|| granted.join(" ")))
}

/// `aud`: the RFC 8707 resources and/or audiences asked for, else the issuer.
/// How many audiences one token may carry: every one travels in each
/// request that carries the token, and proxies cap header sizes.
pub const MAX_TOKEN_AUDIENCES: usize = 8;

/// The `aud` of a token: the issuer unless the client asks for resources
/// (RFC 8707) or audiences, each of which must be the issuer or among the
/// application's `audiences` (RFC 8707 §2: `invalid_target` otherwise).
fn audience(
    issuer: &str,
    allowed: &[String],
    resources: &[String],
    audience: Option<&str>,
) -> Result<Audience, TokenError> {
    let mut values: Vec<String> = Vec::new();
    for resource in resources {
        if !is_absolute_uri(resource) || resource.contains('#') {
            return Err(TokenError::InvalidTarget(format!(
                "resource {resource:?} must be an absolute URI without a fragment"
            )));
        }
        values.push(resource.clone());
    }
    for value in audience
        .unwrap_or_default()
        .split(' ')
        .filter(|a| !a.is_empty())
    {
        if value.len() > 256 || value.chars().any(char::is_control) {
            return Err(TokenError::InvalidTarget(format!(
                "audience {value:?} is not acceptable"
            )));
        }
        values.push(value.to_string());
    }
    let mut unique: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        if !unique.contains(&value) {
            unique.push(value);
        }
    }
    let mut values = unique;
    if values.len() > MAX_TOKEN_AUDIENCES {
        return Err(TokenError::InvalidTarget(format!(
            "at most {MAX_TOKEN_AUDIENCES} audiences may be asked for"
        )));
    }
    if let Some(refused) = values
        .iter()
        .find(|v| v.as_str() != issuer && !allowed.contains(v))
    {
        return Err(TokenError::InvalidTarget(format!(
            "{refused:?} is not an audience this application may ask for"
        )));
    }
    Ok(match values.len() {
        0 => Audience::One(issuer.to_string()),
        1 => Audience::One(values.remove(0)),
        _ => Audience::Many(values),
    })
}

/// `scheme ":" rest` with an RFC 3986 scheme and a non-empty rest.
fn is_absolute_uri(value: &str) -> bool {
    match value.split_once(':') {
        Some((scheme, rest)) => {
            !rest.is_empty()
                && value.len() <= 2048
                && !value.chars().any(|c| c.is_whitespace() || c.is_control())
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_defaults_to_the_issuer() {
        let allowed: Vec<String> = ["https://a", "https://b", "https://dav.example", "x"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            audience("https://auth", &allowed, &[], None).unwrap(),
            Audience::One("https://auth".into())
        );
        assert_eq!(
            audience(
                "https://auth",
                &allowed,
                &["https://dav.example".into()],
                Some("x")
            )
            .unwrap(),
            Audience::Many(vec!["https://dav.example".into(), "x".into()])
        );
        assert_eq!(
            audience(
                "i",
                &allowed,
                &["https://a".into(), "https://b".into()],
                Some("https://a")
            )
            .unwrap(),
            Audience::Many(vec!["https://a".into(), "https://b".into()]),
            "repeats are dropped wherever they stand"
        );
        assert!(audience("i", &allowed, &["relative/path".into()], None).is_err());
        assert!(audience("i", &allowed, &["https://a#frag".into()], None).is_err());
        // Only what the application may ask for, and the issuer itself.
        assert!(matches!(
            audience("i", &allowed, &["https://payroll.example.com".into()], None),
            Err(TokenError::InvalidTarget(_))
        ));
        assert!(audience("i", &[], &[], Some("i")).is_ok());
        assert!(audience("i", &[], &[], Some("x")).is_err());
        let many: Vec<String> = (0..=MAX_TOKEN_AUDIENCES).map(|i| format!("a{i}")).collect();
        assert!(audience("i", &many, &[], Some(&many.join(" "))).is_err());
    }
}
