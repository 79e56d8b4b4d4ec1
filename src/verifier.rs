//! The forward-auth decision, free of I/O: is this bearer token valid,
//! and may its holder reach this target? Everything it reads is in memory:
//! the key set, and the directory snapshot (applications, rules).
//!
//! Reading order: `verify` → `decide`: `token` (the credential's token,
//! its signature checked through the cache), `admit` (time, issuer,
//! revocation, application state), `permit` (the rules for the target:
//! methods, groups, audience; a scoped key's scopes). Around it, the steps
//! `/api/verify` takes with the request (`presented`, `answer`,
//! `challenge`, `identity_headers`). `crate::explain` takes the very same
//! steps for its dry run, without the cache.

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use moka::sync::Cache;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::api_keys::{SHORT_PREFIX, expand_short};
use crate::applications::{ApplicationRecord, credential_groups};
use crate::claims::{ACCESS_TOKEN_TYP, API_KEY_TYP, Audience};
use crate::crypto::sha256;
use crate::directory::{Directory, Snapshot};
use crate::identity_headers::IdentityHeader;
use crate::issuer::IssuerUrl;
use crate::key_scopes::ScopedKeys;
use crate::keys::KeySet;
use crate::resources::Resource;
use crate::revocation::{CredentialId, Revocations, parse_id};
use crate::rules::RuleSet;
use crate::target::RequestTarget;

/// RFC 8725 §3.3 allows only what the node signs with: EdDSA.
const ALLOWED_ALGORITHMS: [&str; 1] = ["EdDSA"];
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: i64 = 30;
/// Longer bearer values are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 4096;
const CACHE_CAPACITY: u64 = 100_000;
/// An entry is re-verified at least this often, whatever its `exp`.
const CACHE_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// An access token (`at+jwt`) from the token endpoint.
    ClientCredentials,
    /// An admin-minted API key (`apikey+jwt`).
    ApiKey,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientCredentials => "client_credentials",
            AuthMethod::ApiKey => "api_key",
        }
    }
}

/// A token whose signature, type and issuer have been checked. Cached, so
/// it holds only what does not change while the token lives.
#[derive(Debug)]
pub struct VerifiedToken {
    pub kid: String,
    pub method: AuthMethod,
    /// The token's `jti`, or the API key's id; required for API keys.
    pub jti: Option<CredentialId>,
    pub client_id: String,
    pub groups: Vec<String>,
    pub scope: Option<String>,
    /// The identity header values this token always yields, rendered once
    /// per token rather than once per request.
    pub headers: IdentityValues,
    pub aud: Option<Audience>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    /// The application generation it was issued under.
    pub generation: Option<u64>,
    /// Checked on every request, not once: a replica's issuer can change
    /// when it adopts its primary's.
    pub iss: String,
    /// An API key minted with scopes.
    pub scoped: bool,
    /// The minute (unix seconds / 60) this node last noted a use of this
    /// API key (`crate::key_usage`): one atomic load per request.
    pub last_noted: AtomicI64,
}

/// What a request presents at `/api/verify`.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// `Authorization: Bearer …`: an access token or an API key.
    Bearer(&'a str),
    /// `Authorization: Basic base64(client_id:api_key)` (RFC 7617).
    Basic { user: &'a str, key: &'a str },
}

impl<'a> Credential<'a> {
    pub fn is_basic(&self) -> bool {
        matches!(self, Credential::Basic { .. })
    }

    /// The user name of Basic credentials, which must be the key's client.
    pub fn basic_user(&self) -> Option<&'a str> {
        match *self {
            Credential::Basic { user, .. } => Some(user),
            Credential::Bearer(_) => None,
        }
    }
}

/// Header values for `Remote-User`/`Remote-Client-Id`, `Remote-Groups`
/// (comma-joined; `None` when empty, and for API keys, whose groups are the
/// application's current ones), `Remote-Scope` and `Remote-Auth-Method`.
#[derive(Debug)]
pub struct IdentityValues {
    pub client_id: HeaderValue,
    pub groups: Option<HeaderValue>,
    pub scope: Option<HeaderValue>,
    pub auth_method: HeaderValue,
}

impl IdentityValues {
    fn new(
        client_id: &str,
        groups: &[String],
        scope: Option<&str>,
        method: AuthMethod,
    ) -> Result<Self, VerifyError> {
        let value = |text: &str| HeaderValue::from_str(text).map_err(|_| VerifyError::Malformed);
        Ok(Self {
            client_id: value(client_id)?,
            groups: (!groups.is_empty())
                .then(|| value(&groups.join(",")))
                .transpose()?,
            scope: scope.map(value).transpose()?,
            auth_method: HeaderValue::from_static(method.as_str()),
        })
    }
}

/// A successful decision.
pub struct Grant {
    pub token: Arc<VerifiedToken>,
    pub application: Arc<ApplicationRecord>,
    pub rule: Arc<Resource>,
    /// The key came as Basic credentials (`Remote-Auth-Method: basic_api_key`).
    pub basic: bool,
}

impl Grant {
    /// See `credential_groups`: an API key's are its application's, now.
    pub fn groups(&self) -> &[String] {
        credential_groups(
            self.token.method,
            &self.token.groups,
            Some(&self.application),
        )
    }
}

/// Why a request was refused. `is_forbidden` splits 403 from 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no bearer token")]
    MissingToken,
    #[error("the token is too long")]
    TooLong,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token type is not accepted")]
    Type,
    #[error("the token is signed by an unknown key")]
    UnknownKey,
    #[error("the token signature is invalid")]
    Signature,
    #[error("the token was issued by someone else")]
    Issuer,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's application does not exist")]
    UnknownApplication,
    #[error("the token's application is inactive")]
    InactiveApplication,
    #[error("the token has been revoked")]
    Revoked,
    #[error("No authentication rule configured for this domain")]
    NoRule,
    #[error("the method is not allowed for this resource")]
    MethodNotAllowed,
    #[error("none of the token's groups may access this resource")]
    GroupNotAllowed,
    #[error("the token's audience does not match this resource")]
    AudienceNotAllowed,
    #[error("the Basic credentials are not base64 of client_id:api_key")]
    BasicMalformed,
    #[error("the Basic user name is not the API key's client_id")]
    BasicUser,
    #[error("Basic credentials must carry an API key")]
    BasicNotApiKey,
    /// Basic credentials where no rule asked for them: as no credential.
    #[error("this resource does not accept Basic credentials")]
    BasicNotAccepted,
    #[error("the API key is not scoped to this host")]
    ScopeHost,
    #[error("the API key is not scoped to this path")]
    ScopePath,
    #[error("the API key is not scoped to this method")]
    ScopeMethod,
    #[error("the API key is not scoped to this client address")]
    ScopeSource,
    #[error("the API key's scopes have not reached this node yet")]
    ScopeUnknown,
}

impl VerifyError {
    /// A stable label for metrics.
    pub fn reason(self) -> &'static str {
        match self {
            VerifyError::MissingToken => "missing_token",
            VerifyError::TooLong => "too_long",
            VerifyError::Malformed => "malformed",
            VerifyError::Algorithm => "algorithm",
            VerifyError::Type => "type",
            VerifyError::UnknownKey => "unknown_key",
            VerifyError::Signature => "signature",
            VerifyError::Issuer => "issuer",
            VerifyError::Expired => "expired",
            VerifyError::NotYetValid => "not_yet_valid",
            VerifyError::UnknownApplication => "unknown_application",
            VerifyError::InactiveApplication => "inactive_application",
            VerifyError::Revoked => "revoked",
            VerifyError::NoRule => "no_rule",
            VerifyError::MethodNotAllowed => "method_not_allowed",
            VerifyError::GroupNotAllowed => "group_not_allowed",
            VerifyError::AudienceNotAllowed => "audience_not_allowed",
            VerifyError::BasicMalformed => "basic_malformed",
            VerifyError::BasicUser => "basic_user",
            VerifyError::BasicNotApiKey => "basic_not_api_key",
            VerifyError::BasicNotAccepted => "basic_not_accepted",
            VerifyError::ScopeHost => "scope_host",
            VerifyError::ScopePath => "scope_path",
            VerifyError::ScopeMethod => "scope_method",
            VerifyError::ScopeSource => "scope_source",
            VerifyError::ScopeUnknown => "scope_unknown",
        }
    }

    pub fn is_forbidden(self) -> bool {
        matches!(
            self,
            VerifyError::NoRule
                | VerifyError::MethodNotAllowed
                | VerifyError::GroupNotAllowed
                | VerifyError::AudienceNotAllowed
                | VerifyError::ScopeHost
                | VerifyError::ScopePath
                | VerifyError::ScopeMethod
                | VerifyError::ScopeSource
                | VerifyError::ScopeUnknown
        )
    }
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct PresentedClaims {
    iss: String,
    sub: Option<String>,
    client_id: Option<String>,
    aud: Option<Audience>,
    iat: Option<i64>,
    nbf: Option<i64>,
    exp: Option<i64>,
    jti: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    scope: Option<String>,
    #[serde(rename = "gen")]
    generation: Option<u64>,
    #[serde(default)]
    scoped: bool,
}

pub struct Verifier {
    issuer: IssuerUrl,
    /// Verified tokens by the SHA-256 of their text, so a reused token
    /// costs a digest and a lookup instead of a signature check.
    cache: Cache<TokenDigest, Arc<VerifiedToken>, BuildHasherDefault<DigestHasher>>,
}

/// A cache key: the SHA-256 of a bearer token. Holding the digest rather
/// than the text keeps long-lived API keys out of the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
struct TokenDigest([u8; 32]);

impl TokenDigest {
    fn of(bearer: &str) -> Self {
        Self(sha256(bearer.as_bytes()))
    }
}

impl Hash for TokenDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(prefix));
    }
}

/// A digest is already uniform, so its first eight bytes serve as the hash
/// table's hash; a second pass through SipHash would only cost time. Only
/// validly signed tokens are ever inserted, so nobody can aim at a bucket.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    /// Not reached by `TokenDigest`; folds any other input all the same.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
}

impl Verifier {
    pub fn new(issuer: impl Into<IssuerUrl>) -> Self {
        Self {
            issuer: issuer.into(),
            cache: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(CACHE_TTL)
                .build_with_hasher(BuildHasherDefault::default()),
        }
    }

    /// The issuer whose tokens this verifier takes.
    pub fn issuer(&self) -> std::sync::Arc<String> {
        self.issuer.get()
    }

    /// The decision for `credential` at `target`. Basic credentials go
    /// the bearer's way (one function, one cache) with two checks more:
    /// an API key, of the client named as user. A scoped key's scopes
    /// narrow what the rules allow; `source` reads the client address,
    /// called only for a key limited by address.
    pub fn verify(
        &self,
        inputs: &Inputs<'_>,
        credential: Credential<'_>,
        target: &RequestTarget,
        source: impl FnOnce() -> IpAddr,
        now: i64,
    ) -> Result<Grant, VerifyError> {
        self.decide(inputs, credential, target, source, now, Signatures::Cached)
            .map_err(|refusal| refusal.error)
    }

    /// `verify`, naming the rule that refused: the one decision behind
    /// `/api/verify` and its dry run (`crate::explain`), which passes
    /// `Signatures::Uncached` so that it leaves the cache as it was: the
    /// credential's token (`token`), then what it may reach (`decide_for`).
    pub(crate) fn decide<'s>(
        &self,
        inputs: &Inputs<'s>,
        credential: Credential<'_>,
        target: &RequestTarget,
        source: impl FnOnce() -> IpAddr,
        now: i64,
        signatures: Signatures,
    ) -> Result<Grant, Refusal<'s>> {
        let token = self.token(inputs, credential, signatures)?;
        self.decide_for(inputs, token, credential.basic_user(), target, source, now)
    }

    /// The decision for a signed token (presented, or for a dry run the one
    /// an application would be issued, see `fresh_token`). In order: its
    /// validity now (`admit`), what Basic credentials must be
    /// (`basic_user`: their user name), the rules and the key's scopes
    /// (`permit`).
    pub(crate) fn decide_for<'s>(
        &self,
        inputs: &Inputs<'s>,
        token: Arc<VerifiedToken>,
        basic_user: Option<&str>,
        target: &RequestTarget,
        source: impl FnOnce() -> IpAddr,
        now: i64,
    ) -> Result<Grant, Refusal<'s>> {
        let application = self.admit(inputs.snapshot, inputs.revocations, &token, now)?;
        if let Some(user) = basic_user {
            if token.method != AuthMethod::ApiKey {
                return Err(VerifyError::BasicNotApiKey.into());
            }
            if user != token.client_id {
                return Err(VerifyError::BasicUser.into());
            }
        }
        let basic = basic_user.is_some();
        let rule = permit(inputs, &token, application, basic, target, source)?;
        Ok(Grant {
            token,
            application: Arc::clone(application),
            rule: Arc::clone(rule),
            basic,
        })
    }

    /// The token a credential stands for, its signature checked: the
    /// bearer, or the Basic password (its short form expanded into the JWT
    /// it was cut from).
    pub(crate) fn token(
        &self,
        inputs: &Inputs<'_>,
        credential: Credential<'_>,
        signatures: Signatures,
    ) -> Result<Arc<VerifiedToken>, VerifyError> {
        match credential {
            Credential::Bearer(bearer) => self.signed(inputs.keys, bearer, signatures),
            Credential::Basic { user, key } if key.starts_with(SHORT_PREFIX) => {
                let expanded = expand_short(key, &self.issuer.get(), user)
                    .ok_or(VerifyError::BasicMalformed)?;
                self.signed(inputs.keys, &expanded, signatures)
            }
            Credential::Basic { key, .. } => self.signed(inputs.keys, key, signatures),
        }
    }

    /// The token `client_id` would be issued now, for a dry run: never
    /// presented, so never a credential.
    pub(crate) fn fresh_token(
        &self,
        snapshot: &Snapshot,
        client_id: &str,
        now: i64,
    ) -> Result<Arc<VerifiedToken>, VerifyError> {
        let application = snapshot
            .application(client_id)
            .ok_or(VerifyError::UnknownApplication)?;
        self.fresh(application, now).map(Arc::new)
    }

    /// Whether a credential is currently valid, whatever the target: for
    /// introspection (RFC 7662) and revocation (RFC 7009).
    pub fn inspect(
        &self,
        inputs: &Inputs<'_>,
        bearer: &str,
        now: i64,
    ) -> Result<(Arc<VerifiedToken>, Arc<ApplicationRecord>), VerifyError> {
        let token = self.signed(inputs.keys, bearer, Signatures::Cached)?;
        let application = self.admit(inputs.snapshot, inputs.revocations, &token, now)?;
        Ok((token, Arc::clone(application)))
    }

    /// A token's signature checked, through the cache unless `Uncached`.
    fn signed(
        &self,
        keys: &KeySet,
        bearer: &str,
        signatures: Signatures,
    ) -> Result<Arc<VerifiedToken>, VerifyError> {
        if bearer.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::TooLong);
        }
        if signatures == Signatures::Uncached {
            return self.check_signature(keys, bearer).map(Arc::new);
        }
        let digest = TokenDigest::of(bearer);
        Ok(match self.cache.get(&digest) {
            // A cached token still needs its key in the current key set.
            Some(token) if keys.verifier(&token.kid).is_some() => token,
            _ => {
                let token = Arc::new(self.check_signature(keys, bearer)?);
                self.cache.insert(digest, Arc::clone(&token));
                token
            }
        })
    }

    /// Checks a signed token's time, issuer and revocation, and the state
    /// of its application, which it returns.
    pub(crate) fn admit<'s>(
        &self,
        snapshot: &'s Snapshot,
        revocations: &Revocations,
        token: &VerifiedToken,
        now: i64,
    ) -> Result<&'s Arc<ApplicationRecord>, VerifyError> {
        check_time(token, now)?;
        if !self.issuer.matches(&token.iss) {
            return Err(VerifyError::Issuer);
        }
        let revoked = match (token.method, &token.jti) {
            (AuthMethod::ApiKey, Some(id)) => revocations.is_api_key_revoked(id),
            (AuthMethod::ClientCredentials, Some(jti)) => revocations.is_access_token_revoked(jti),
            (_, None) => false,
        };
        if revoked {
            return Err(VerifyError::Revoked);
        }
        let application = snapshot
            .application(&token.client_id)
            .ok_or(VerifyError::UnknownApplication)?;
        if !application.active {
            return Err(VerifyError::InactiveApplication);
        }
        if !application.is_current(token.generation, token.iat) {
            return Err(VerifyError::Revoked);
        }
        Ok(application)
    }

    /// The token `crate::issuer` would sign for `application` now when
    /// asked for nothing in particular, as `check_signature` reads a
    /// signed one: every scope of the application, the issuer as `aud`,
    /// no `jti` (a new one is revoked by nobody).
    fn fresh(
        &self,
        application: &ApplicationRecord,
        now: i64,
    ) -> Result<VerifiedToken, VerifyError> {
        let method = AuthMethod::ClientCredentials;
        let iat = application.issued_at(now);
        let scope = (!application.scopes.is_empty()).then(|| application.scopes.join(" "));
        let issuer = self.issuer.get();
        Ok(VerifiedToken {
            headers: IdentityValues::new(
                &application.client_id,
                &application.groups,
                scope.as_deref(),
                method,
            )?,
            kid: String::new(),
            method,
            jti: None,
            client_id: application.client_id.to_string(),
            groups: application.groups.to_vec(),
            scope,
            aud: Some(Audience::One(issuer.to_string())),
            iat: Some(iat),
            nbf: None,
            exp: Some(iat + i64::from(application.access_token_ttl)),
            generation: application.credential_generation(),
            iss: issuer.to_string(),
            scoped: false,
            last_noted: AtomicI64::new(i64::MIN),
        })
    }

    /// Header allow-lists, signature by `kid`. Time and issuer are left to
    /// `admit`, which checks them on every request. The signature goes
    /// through jsonwebtoken (and so gatehouse's ring provider); header and
    /// claims are each parsed once, here, where `decode` would parse both
    /// twice and check time against the wall clock.
    fn check_signature(&self, keys: &KeySet, bearer: &str) -> Result<VerifiedToken, VerifyError> {
        let (signing_input, signature) = bearer.rsplit_once('.').ok_or(VerifyError::Malformed)?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(VerifyError::Malformed)?;
        if payload.contains('.') {
            return Err(VerifyError::Malformed);
        }
        let (method, kid) = read_header(header)?;
        let key = keys.verifier(&kid).ok_or(VerifyError::UnknownKey)?;
        let valid = jsonwebtoken::crypto::verify(
            signature,
            signing_input.as_bytes(),
            &key.decoding,
            Algorithm::EdDSA,
        )
        .map_err(|_| VerifyError::Malformed)?;
        if !valid {
            return Err(VerifyError::Signature);
        }
        let claims: PresentedClaims = decode_part(payload)?;
        // RFC 9068 §2.2: access tokens carry exp. An API key carries its
        // id as jti, by which it is revoked.
        let jti = claims.jti.as_deref().and_then(parse_id);
        match method {
            AuthMethod::ClientCredentials if claims.exp.is_none() => {
                return Err(VerifyError::Malformed);
            }
            AuthMethod::ApiKey if jti.is_none() => return Err(VerifyError::Malformed),
            _ => {}
        }
        let client_id = claims
            .client_id
            .or(claims.sub)
            .ok_or(VerifyError::Malformed)?;
        let scope = claims.scope.filter(|s| !s.is_empty());
        Ok(VerifiedToken {
            headers: IdentityValues::new(&client_id, &claims.groups, scope.as_deref(), method)?,
            kid,
            method,
            jti,
            client_id,
            groups: claims.groups,
            scope,
            aud: claims.aud,
            iat: claims.iat,
            nbf: claims.nbf,
            exp: claims.exp,
            generation: claims.generation,
            iss: claims.iss,
            scoped: claims.scoped && method == AuthMethod::ApiKey,
            last_noted: AtomicI64::new(i64::MIN),
        })
    }
}

/// A JWS header's allow-lists: EdDSA only, and the type of an access token
/// or an API key. Returns which, and the signing key's id.
fn read_header(part: &str) -> Result<(AuthMethod, String), VerifyError> {
    let header: JoseHeader = decode_part(part)?;
    if !ALLOWED_ALGORITHMS.contains(&header.alg.as_str()) {
        return Err(VerifyError::Algorithm);
    }
    let method = match header.typ.as_deref().map(|t| t.to_ascii_lowercase()) {
        Some(t) if t == ACCESS_TOKEN_TYP || t == "application/at+jwt" => {
            AuthMethod::ClientCredentials
        }
        Some(t) if t == API_KEY_TYP || t == "application/apikey+jwt" => AuthMethod::ApiKey,
        _ => return Err(VerifyError::Type),
    };
    let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
    Ok((method, kid))
}

/// One base64url JSON part of a JWS.
fn decode_part<T: DeserializeOwned>(part: &str) -> Result<T, VerifyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| VerifyError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)
}

fn check_time(token: &VerifiedToken, now: i64) -> Result<(), VerifyError> {
    if token
        .exp
        .is_some_and(|exp| now > exp.saturating_add(LEEWAY_SECS))
    {
        return Err(VerifyError::Expired);
    }
    let not_before = token.nbf.into_iter().chain(token.iat).max();
    if not_before.is_some_and(|nbf| now.saturating_add(LEEWAY_SECS) < nbf) {
        return Err(VerifyError::NotYetValid);
    }
    Ok(())
}

/// What a decision reads: the directory snapshot, the key set, the
/// revocation state and the keys' scopes, all in memory.
#[derive(Clone, Copy)]
pub struct Inputs<'s> {
    pub snapshot: &'s Snapshot,
    pub keys: &'s KeySet,
    pub revocations: &'s Revocations,
    pub scoped: &'s ScopedKeys,
}

impl<'s> Inputs<'s> {
    /// A node's state: `snapshot` and `keys` as taken for one request,
    /// the revocations and scopes of its directory.
    pub fn of(directory: &'s Directory, snapshot: &'s Snapshot, keys: &'s KeySet) -> Self {
        Inputs {
            snapshot,
            keys,
            revocations: &directory.revocations,
            scoped: &directory.scoped_keys,
        }
    }
}

/// Whether a decision goes through the verifier's cache of signed
/// tokens (`/api/verify`) or leaves it untouched (a dry run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signatures {
    Cached,
    Uncached,
}

/// A refusal, and the rule whose conditions refused, when one did.
#[derive(Debug, Clone, Copy)]
pub struct Refusal<'s> {
    pub error: VerifyError,
    pub rule: Option<&'s Arc<Resource>>,
}

impl From<VerifyError> for Refusal<'_> {
    fn from(error: VerifyError) -> Self {
        Refusal { error, rule: None }
    }
}

/// What the rules and, for a scoped API key, its scopes say about an
/// admitted token at `target`: the rule that names the answer.
pub(crate) fn permit<'s>(
    inputs: &Inputs<'s>,
    token: &VerifiedToken,
    application: &ApplicationRecord,
    basic: bool,
    target: &RequestTarget,
    source: impl FnOnce() -> IpAddr,
) -> Result<&'s Arc<Resource>, Refusal<'s>> {
    let rule = rule_for_target(
        &inputs.snapshot.rules,
        credential_groups(token.method, &token.groups, Some(application)),
        token.aud.as_ref(),
        basic,
        target,
    )?;
    if token.method == AuthMethod::ApiKey
        && let Some(id) = &token.jti
    {
        let refused = |error| Refusal {
            error,
            rule: Some(rule),
        };
        match inputs.scoped.get(id) {
            Some(scopes) => scopes.check(target, source).map_err(refused)?,
            // Minted with scopes that have not reached this node yet.
            None if token.scoped => return Err(refused(VerifyError::ScopeUnknown)),
            None => {}
        }
    }
    Ok(rule)
}

/// The rule for the canonical path names the answer, but the decision
/// holds for every reading of the path a backend may serve, with its case
/// folded too, and for every method it may take: each must fall under a
/// rule, and each such rule must grant. A method that acts on the whole
/// tree (WebDAV Depth infinity) needs every rule below the path too.
/// Basic credentials need every such rule to take them (`basic`).
pub fn authorize_target<'s>(
    rules: &'s RuleSet,
    groups: &[String],
    aud: Option<&Audience>,
    basic: bool,
    target: &RequestTarget,
) -> Result<&'s Arc<Resource>, VerifyError> {
    rule_for_target(rules, groups, aud, basic, target).map_err(|refusal| refusal.error)
}

/// `authorize_target`, naming the rule that refused.
fn rule_for_target<'s>(
    rules: &'s RuleSet,
    groups: &[String],
    aud: Option<&Audience>,
    basic: bool,
    target: &RequestTarget,
) -> Result<&'s Arc<Resource>, Refusal<'s>> {
    let grants = |rule: &'s Arc<Resource>| {
        let refused = |error| Refusal {
            error,
            rule: Some(rule),
        };
        if basic && !rule.basic {
            return Err(refused(VerifyError::BasicNotAccepted));
        }
        target
            .methods()
            .try_for_each(|method| authorize(rule, groups, aud, method))
            .map_err(refused)
    };
    // The canonical reading comes first: its rule as written names the answer.
    let mut named = None;
    for path in target.paths.iter() {
        for rule in rules.find_each_case(&target.host, path) {
            let rule = rule.ok_or(Refusal::from(VerifyError::NoRule))?;
            named.get_or_insert(rule);
            grants(rule)?;
        }
        if target.recursive {
            rules.below(&target.host, path).try_for_each(grants)?;
        }
    }
    named.ok_or(Refusal::from(VerifyError::NoRule))
}

/// What `/api/verify` makes of the credential a request presents, before
/// it verifies anything.
pub enum Presented<'a> {
    /// No credential of ours: none, another scheme, or Basic credentials
    /// where the rule does not take them (`ignored_basic`: a browser's
    /// password for the backend, say).
    Nothing { ignored_basic: bool },
    /// To be verified. `basic`: Basic credentials, readable or not.
    Verify {
        credential: Result<Credential<'a>, VerifyError>,
        basic: bool,
    },
}

/// Sorts what the `Authorization` header held (`read`: nothing, a
/// credential, or an unreadable one) as `/api/verify` takes it.
pub fn presented<'a>(
    rules: &RuleSet,
    target: &RequestTarget,
    read: Result<Option<Credential<'a>>, VerifyError>,
) -> Presented<'a> {
    let credential = match read {
        Ok(Some(credential)) => Ok(credential),
        Ok(None) => {
            return Presented::Nothing {
                ignored_basic: false,
            };
        }
        Err(e) => Err(e),
    };
    let basic = credential
        .as_ref()
        .map_or_else(|e| *e == VerifyError::BasicMalformed, |c| c.is_basic());
    // The verifier checks it again for every reading of the path.
    let accepted = || {
        rules
            .find(&target.host, target.path())
            .is_some_and(|rule| rule.basic)
    };
    if basic && !accepted() {
        return Presented::Nothing {
            ignored_basic: true,
        };
    }
    Presented::Verify { credential, basic }
}

/// How `/api/verify` answers a refused credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'s> {
    /// 401 or 403 (`VerifyError::is_forbidden`).
    Refused(VerifyError),
    /// 401 with the rule's Basic challenge, so that the client's password
    /// prompt comes back.
    Challenge { realm: &'s str, reason: VerifyError },
    /// As a request without credentials: Basic where no rule asked for it.
    WithoutCredentials,
}

/// The answer to `error` for credentials presented at `target` (`basic`:
/// as Basic credentials).
pub fn answer<'s>(
    rules: &'s RuleSet,
    target: &RequestTarget,
    basic: bool,
    error: VerifyError,
) -> Answer<'s> {
    if error == VerifyError::BasicNotAccepted {
        return Answer::WithoutCredentials;
    }
    match challenge(rules, target) {
        Some(realm) if basic && !error.is_forbidden() => Answer::Challenge {
            realm,
            reason: error,
        },
        _ => Answer::Refused(error),
    }
}

/// The realm of the rule for `target`, if it answers requests without
/// credentials with the Basic challenge (else they go to the session
/// fallback).
pub fn challenge<'s>(rules: &'s RuleSet, target: &RequestTarget) -> Option<&'s str> {
    rules
        .find(&target.host, target.path())
        .and_then(|rule| rule.basic_realm())
}

/// The identity headers a grant sends the backend (`Remote-User` and
/// kin), under the names its rule gives them (`rules`: the set the rule
/// is in), one `set` call each.
pub fn identity_headers(
    grant: &Grant,
    rules: &RuleSet,
    mut set: impl FnMut(HeaderName, &HeaderValue),
) {
    let names = rules.identity_names(&grant.rule);
    let mut set = |header: IdentityHeader, value: &HeaderValue| {
        if let Some(name) = names.get(header) {
            set(name.clone(), value);
        }
    };
    let values = &grant.token.headers;
    set(IdentityHeader::User, &values.client_id);
    if let Ok(name) = HeaderValue::from_bytes(grant.application.name.as_bytes()) {
        set(IdentityHeader::Name, &name);
    }
    match &values.groups {
        Some(groups) => set(IdentityHeader::Groups, groups),
        // An API key's groups are its application's, as of now.
        None if !grant.groups().is_empty() => {
            if let Ok(groups) = HeaderValue::from_str(&grant.groups().join(",")) {
                set(IdentityHeader::Groups, &groups);
            }
        }
        None => {}
    }
    set(IdentityHeader::ClientId, &values.client_id);
    let basic = HeaderValue::from_static("basic_api_key");
    let method = if grant.basic {
        &basic
    } else {
        &values.auth_method
    };
    set(IdentityHeader::AuthMethod, method);
    if let Some(scope) = &values.scope {
        set(IdentityHeader::Scope, scope);
    }
}

/// The rule's own conditions.
fn authorize(
    rule: &Resource,
    groups: &[String],
    aud: Option<&Audience>,
    method: &str,
) -> Result<(), VerifyError> {
    if let Some(methods) = &rule.methods
        && !methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    {
        return Err(VerifyError::MethodNotAllowed);
    }
    if !rule.allowed_groups.iter().any(|g| groups.contains(g)) {
        return Err(VerifyError::GroupNotAllowed);
    }
    if let Some(audience) = &rule.audience
        && !aud.is_some_and(|aud| aud.contains(audience))
    {
        return Err(VerifyError::AudienceNotAllowed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(exp: Option<i64>, nbf: Option<i64>, iat: Option<i64>) -> VerifiedToken {
        VerifiedToken {
            kid: "k".into(),
            method: AuthMethod::ClientCredentials,
            jti: None,
            client_id: "c".into(),
            groups: vec!["media".into()],
            scope: None,
            headers: IdentityValues::new(
                "c",
                &["media".into()],
                None,
                AuthMethod::ClientCredentials,
            )
            .unwrap(),
            aud: Some(Audience::One("dav".into())),
            iat,
            nbf,
            exp,
            generation: None,
            iss: "https://i".into(),
            scoped: false,
            last_noted: AtomicI64::new(0),
        }
    }

    #[test]
    fn time_checks_allow_thirty_seconds_of_skew() {
        assert!(check_time(&token(Some(100), None, None), 130).is_ok());
        assert_eq!(
            check_time(&token(Some(100), None, None), 131),
            Err(VerifyError::Expired)
        );
        assert!(check_time(&token(Some(1000), Some(130), None), 100).is_ok());
        assert_eq!(
            check_time(&token(Some(1000), Some(131), None), 100),
            Err(VerifyError::NotYetValid)
        );
        assert_eq!(
            check_time(&token(Some(1000), None, Some(200)), 100),
            Err(VerifyError::NotYetValid)
        );
    }

    /// An access token issued to `c` (`media_application_and_rule`), the
    /// keys that signed it and the directory that holds `c`. The keys'
    /// directory goes when this is dropped.
    struct IssuedToken {
        keys: Arc<crate::keys::KeyRing>,
        directory: Arc<crate::directory::Directory>,
        token: String,
        _key_dir: tempfile::TempDir,
    }

    fn issued_token(now: chrono::DateTime<chrono::Utc>) -> IssuedToken {
        use crate::crypto::jwt_provider;
        use crate::directory::Directory;
        use crate::issuer::{ClientAuthMethod, ClientCredentials, TokenIssuer, TokenRequest};
        use crate::keys::{KeyDir, KeyRing};
        use crate::throttle::Throttle;

        jwt_provider::install();
        let key_dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(KeyRing::new(
            KeyDir::open(key_dir.path())
                .unwrap()
                .load_or_init()
                .unwrap(),
        ));
        let (app, rule) = media_application_and_rule(now);
        let directory = Arc::new(Directory::new(vec![app], vec![rule]));
        let issuer = TokenIssuer::new(
            "https://i",
            keys.clone(),
            directory.clone(),
            Arc::new(Throttle::new(10, 60)),
        );
        let request = TokenRequest {
            grant_type: Some("client_credentials".into()),
            credentials: Some(ClientCredentials {
                client_id: "c".into(),
                secret: "s".into(),
                method: ClientAuthMethod::Post,
            }),
            ..Default::default()
        };
        let token = issuer
            .issue(request, "127.0.0.1".parse().unwrap(), now)
            .unwrap()
            .access_token;
        IssuedToken {
            keys,
            directory,
            token,
            _key_dir: key_dir,
        }
    }

    /// Issue 3's cache: a reused token is verified once and then served from
    /// the cache, keyed by its digest; failures are never cached, and the
    /// per-request checks (here the rule) still run on a cache hit.
    #[test]
    fn reused_tokens_are_cached_once_and_failures_never() {
        let now = chrono::Utc::now();
        let issued = issued_token(now);
        let (directory, token) = (&issued.directory, &issued.token);
        let verifier = Verifier::new("https://i");
        let target = RequestTarget::named("GET", "dav.example.com", "/").unwrap();
        let check = |bearer: &str, target: &RequestTarget| {
            verifier.verify(
                &Inputs::of(directory, &directory.snapshot(), &issued.keys.snapshot()),
                Credential::Bearer(bearer),
                target,
                || "127.0.0.1".parse().unwrap(),
                now.timestamp(),
            )
        };
        for _ in 0..3 {
            assert!(check(token, &target).is_ok());
        }
        let forged = format!("{}AAAA", &token[..token.len() - 4]);
        assert_eq!(check(&forged, &target).err(), Some(VerifyError::Signature));
        verifier.cache.run_pending_tasks();
        assert_eq!(
            verifier.cache.entry_count(),
            1,
            "one entry for the reused token, none for the forgery"
        );
        assert!(verifier.cache.contains_key(&TokenDigest::of(token)));

        let elsewhere = RequestTarget::named("GET", "other.example.com", "/").unwrap();
        assert_eq!(
            check(token, &elsewhere).err(),
            Some(VerifyError::NoRule),
            "rules run on a cache hit"
        );

        // A replica that adopts another issuer refuses cached tokens of the
        // old one, and takes them again once the issuer is back.
        verifier.issuer.adopt("https://elsewhere");
        assert_eq!(check(token, &target).err(), Some(VerifyError::Issuer));
        verifier.issuer.adopt("https://i");
        assert!(check(token, &target).is_ok());
    }

    #[test]
    fn parts_decode_strictly() {
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        assert_eq!(decode_part::<JoseHeader>(&none).unwrap().alg, "none");
        assert_eq!(
            decode_part::<JoseHeader>("!!").err(),
            Some(VerifyError::Malformed)
        );
        assert_eq!(
            decode_part::<JoseHeader>("e30").err(),
            Some(VerifyError::Malformed)
        );
    }

    /// Application `c` (secret `s`, group `media`) and a rule for
    /// dav.example.com that admits `media`.
    fn media_application_and_rule(
        now: chrono::DateTime<chrono::Utc>,
    ) -> (crate::applications::ApplicationRecord, Resource) {
        let app = crate::applications::ApplicationRecord::media_client("c", "s", now);
        let rule = crate::resources::NewResource {
            host: Some("dav.example.com".into()),
            allowed_groups: vec!["media".into()],
            ..Default::default()
        };
        (app, Resource::create("dav".into(), rule, now).unwrap())
    }
}
