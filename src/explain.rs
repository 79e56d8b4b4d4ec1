//! The dry run of a forward-auth decision, behind `POST /admin/v1/explain`,
//! `gatehouse admin explain` and the console's Test access page: what
//! `/api/verify` would answer for a method, host, path and credential, the
//! rule that decided, and why, in words an admin reads.
//!
//! The decision is the verifier's own: the same steps `/api/verify` takes
//! (`verifier::presented`, `Verifier::decide`, `verifier::answer`), so the
//! two cannot drift. Only what happens around them is left out: nothing is
//! cached, counted towards a lockout, noted as a key's last use, counted in
//! `/metrics` or written to the audit log.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api_keys::{SHORT_PREFIX, short_form_id};
use crate::applications::{FieldError, credential_groups, validate_client_id};
use crate::claims::Audience;
use crate::key_scopes::KeyScopes;
use crate::resources::Resource;
use crate::target::{RequestTarget, TargetError};
use crate::verifier::{
    self, Answer, AuthMethod, Credential, Grant, Inputs, LEEWAY_SECS, MAX_TOKEN_LEN, Presented,
    Refusal, Signatures, VerifiedToken, Verifier, VerifyError,
};

/// What to explain: the request as the backend would receive it (no
/// `Depth`, `Destination` or method-override header: a WebDAV method
/// without `Depth` acts on the whole tree, as at `/api/verify`).
#[derive(Debug, Clone, Copy)]
pub struct ExplainRequest<'a> {
    pub method: &'a str,
    /// As the client names it (`Host`, `X-Forwarded-Host`): port allowed.
    pub host: &'a str,
    /// Path and query, as sent (`X-Forwarded-Uri`).
    pub path: &'a str,
    /// `None`: a request without credentials.
    pub subject: Option<Subject<'a>>,
    /// The client's address, for API keys limited to networks. Without
    /// it such a key is refused, naming `source` as what is missing.
    pub source: Option<IpAddr>,
}

/// What an explanation decides for.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A credential as `/api/verify` takes it: `Bearer` for a token or an
    /// API key, `Basic` for the short form of an API key with its client
    /// as the user name.
    Presented(Credential<'a>),
    /// The token the token endpoint would issue this application now, with
    /// nothing particular asked for (all its scopes, the issuer as `aud`).
    /// Never presented: `/api/verify` has no such credential.
    Fresh { client_id: &'a str },
}

impl<'a> Subject<'a> {
    fn credential(self) -> Option<Credential<'a>> {
        match self {
            Subject::Presented(credential) => Some(credential),
            Subject::Fresh { .. } => None,
        }
    }
}

/// What answers a request without credentials when no rule challenges for
/// Basic (`upstream_verify_url`, `login_url`).
#[derive(Debug, Clone, Copy)]
pub enum Fallback<'a> {
    Upstream(&'a str),
    Login(&'a str),
    None,
}

/// Everything the decision reads, all in memory.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub verifier: &'a Verifier,
    pub inputs: Inputs<'a>,
    pub fallback: Fallback<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Granted,
    Denied,
}

/// The answer `/api/verify` would give, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub decision: Decision,
    /// 200, 401 or 403.
    pub status: u16,
    /// Why, in words.
    pub reason: String,
    /// The rule that decided (the one that refused, or that names the
    /// grant); `null` when none did.
    pub rule: Option<Resource>,
    /// A stable label: `granted`, or the refusal's as `/metrics` counts it
    /// (`group_not_allowed`, `expired`, `no_rule`, ...).
    pub code: &'static str,
    /// The `X-Auth-Reason` a refusal carries.
    pub auth_reason: Option<String>,
    /// What the credential is, once its signature checks.
    pub credential: Option<CredentialFacts>,
    /// The identity headers the backend would receive (on a grant).
    pub headers: BTreeMap<String, String>,
    /// Every reading of the path the decision holds for, canonical first.
    pub paths: Vec<String>,
}

/// A credential as an admin wants to see it.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialFacts {
    /// `access_token`, `api_key`, or `application` (a fresh token of it).
    pub kind: &'static str,
    pub client_id: String,
    /// The access token's `jti`, or the API key's id.
    pub id: Option<String>,
    /// The groups the rules see: an API key's are its application's, now.
    pub groups: Vec<String>,
    pub scope: Option<String>,
    pub audience: Vec<String>,
    pub issued_at: Option<DateTime<Utc>>,
    pub not_before: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// A scoped API key's scopes, as this node holds them.
    pub key_scopes: Option<KeyScopes>,
}

/// `POST /admin/v1/explain`, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainBody {
    pub method: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub token: Option<String>,
    pub client_id: Option<String>,
    pub source: Option<String>,
}

impl ExplainBody {
    /// The id of the API key whose short form (`basic_password`) the token
    /// is, if it is one: the key's record names its client, the Basic user.
    pub fn short_key_id(&self) -> Option<String> {
        self.token()
            .filter(|t| t.starts_with(SHORT_PREFIX))
            .and_then(short_form_id)
    }

    /// The token as a header would carry it: without the whitespace
    /// around it that a paste or a file adds (no token holds any).
    fn token(&self) -> Option<&str> {
        self.token
            .as_deref()
            .map(|t| t.trim_matches(|c: char| c.is_ascii_whitespace()))
    }

    /// The request, validated. `key_client`: the client of the API key
    /// `short_key_id` names, if there is one.
    pub fn request<'a>(
        &'a self,
        key_client: Option<&'a str>,
    ) -> Result<ExplainRequest<'a>, FieldError> {
        let required = |field: &'static str, value: &'a Option<String>| match value.as_deref() {
            None => Err(FieldError::new(field, "is required")),
            Some("") => Err(FieldError::new(field, "must not be empty")),
            Some(value) => Ok(value),
        };
        let method = required("method", &self.method)?;
        let longest = 32;
        if method.len() > longest || !method.bytes().all(is_tchar) {
            return Err(FieldError::new(
                "method",
                format!("must be an HTTP method name (at most {longest} letters, e.g. PROPFIND)"),
            ));
        }
        let host = required("host", &self.host)?;
        let path = required("path", &self.path)?;
        let subject = match (self.token(), self.client_id.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "client_id",
                    "give token or client_id, not both",
                ));
            }
            (Some(""), None) => return Err(FieldError::new("token", "must not be empty")),
            (Some(token), None) if token.starts_with(SHORT_PREFIX) => match key_client {
                Some(user) => Some(Subject::Presented(Credential::Basic { user, key: token })),
                None => {
                    return Err(FieldError::new(
                        "token",
                        "is not the short form of any API key of this node",
                    ));
                }
            },
            (Some(token), None) => Some(Subject::Presented(Credential::Bearer(token))),
            (None, Some(client_id)) => {
                validate_client_id(client_id)?;
                Some(Subject::Fresh { client_id })
            }
            (None, None) => None,
        };
        let source = self
            .source
            .as_deref()
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|_| FieldError::new("source", "must be an IPv4 or IPv6 address"))
            })
            .transpose()?;
        Ok(ExplainRequest {
            method,
            host,
            path,
            subject,
            source,
        })
    }
}

/// RFC 9110 §5.6.2 token characters, which a method name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What `/api/verify` would answer for `request` at `now` (unix
/// seconds), from the state in `context`, without side effects: the
/// verifier's cache, the lockout counts, the keys' last use, the metrics
/// and the audit log are left as they were. The address lockout itself
/// (429) is not part of the decision and is not applied.
pub fn explain(context: &Context<'_>, request: &ExplainRequest<'_>, now: i64) -> Explanation {
    let target = match RequestTarget::as_sent(request.method, request.host, request.path) {
        Ok(target) => target,
        Err(e) => return target_refused(e),
    };
    let mut explained = Explained {
        context,
        target: &target,
        token: None,
        facts: None,
        now,
        fresh: match request.subject {
            Some(Subject::Fresh { client_id }) => Some(client_id),
            _ => None,
        },
        no_source: false,
        source: request.source,
    };
    // The subject's token read on its own, for the words only: the
    // decision below is the verifier's.
    explained.token = request
        .subject
        .and_then(|subject| subject_token(context, subject, now).ok());
    explained.facts = explained.token.as_deref().map(|t| explained.facts_of(t));
    let rules = &context.inputs.snapshot.rules;
    let (subject, basic) = match request.subject {
        Some(Subject::Fresh { client_id }) => (Ok(Subject::Fresh { client_id }), false),
        presented => {
            let read = Ok(presented.and_then(Subject::credential));
            match verifier::presented(rules, &target, read) {
                Presented::Verify { credential, basic } => {
                    (credential.map(Subject::Presented), basic)
                }
                Presented::Nothing { ignored_basic } => {
                    let ignored = ignored_basic.then(|| rules.find(&target.host, target.path()));
                    let rule = ignored.flatten().map(AsRef::as_ref);
                    return explained.without_credentials(rule, ignored.is_some());
                }
            }
        }
    };
    let no_source = Cell::new(false);
    let source = || {
        request.source.unwrap_or_else(|| {
            no_source.set(true);
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        })
    };
    let decision = subject
        .map_err(Refusal::from)
        .and_then(|subject| decide(context, subject, &target, source, now));
    explained.no_source = no_source.get();
    explained.decided(decision, basic)
}

/// The token `subject` stands for, its signature checked.
fn subject_token(
    context: &Context<'_>,
    subject: Subject<'_>,
    now: i64,
) -> Result<std::sync::Arc<VerifiedToken>, VerifyError> {
    match subject {
        Subject::Presented(credential) => {
            context
                .verifier
                .token(&context.inputs, credential, Signatures::Uncached)
        }
        Subject::Fresh { client_id } => {
            context
                .verifier
                .fresh_token(context.inputs.snapshot, client_id, now)
        }
    }
}

/// The verifier's decision for `subject`, leaving its cache as it was.
fn decide<'s>(
    context: &Context<'s>,
    subject: Subject<'_>,
    target: &RequestTarget<'_>,
    source: impl FnOnce() -> IpAddr,
    now: i64,
) -> Result<Grant, Refusal<'s>> {
    let verifier = context.verifier;
    match subject {
        Subject::Presented(credential) => verifier.decide(
            &context.inputs,
            credential,
            target,
            source,
            now,
            Signatures::Uncached,
        ),
        Subject::Fresh { client_id } => {
            let token = verifier.fresh_token(context.inputs.snapshot, client_id, now)?;
            verifier.decide_for(&context.inputs, token, None, target, source, now)
        }
    }
}

/// The target cannot be read one way: 403 before any credential.
fn target_refused(e: TargetError) -> Explanation {
    Explanation {
        decision: Decision::Denied,
        status: 403,
        reason: format!("{e}: /api/verify refuses the request before it looks at any credential"),
        rule: None,
        code: e.reason(),
        auth_reason: Some(e.to_string()),
        credential: None,
        headers: BTreeMap::new(),
        paths: Vec::new(),
    }
}

/// No credential of ours: the rule's Basic challenge, or the session
/// fallback. `ignored`: Basic credentials were given, and `rule` (the rule
/// for the path) does not take them.
fn without_credentials(
    context: &Context<'_>,
    target: &RequestTarget<'_>,
    rule: Option<&Resource>,
    ignored: bool,
) -> Explanation {
    let rules = &context.inputs.snapshot.rules;
    let named = rules.find(&target.host, target.path());
    let mut reason = match (ignored, rule) {
        (true, Some(rule)) => format!(
            "rule {:?} does not take Basic credentials (its basic is false), so /api/verify \
             treats the request as one without credentials: ",
            rule.id
        ),
        (true, None) => "Basic credentials count only where a rule takes them, so /api/verify \
             treats the request as one without credentials: "
            .into(),
        (false, _) => String::new(),
    };
    reason.push_str(&no_credentials(context, target, named.map(AsRef::as_ref)));
    let code = match ignored {
        true => VerifyError::BasicNotAccepted,
        false => VerifyError::MissingToken,
    };
    Explanation {
        decision: Decision::Denied,
        status: 401,
        reason,
        rule: rule.or(named.map(AsRef::as_ref)).cloned(),
        code: code.reason(),
        auth_reason: Some(VerifyError::MissingToken.to_string()),
        credential: None,
        headers: BTreeMap::new(),
        paths: target.paths.iter().map(str::to_string).collect(),
    }
}

/// What answers a request without credentials at `target`: the rule's
/// (`named`) Basic challenge, or the session fallback.
fn no_credentials(
    context: &Context<'_>,
    target: &RequestTarget<'_>,
    named: Option<&Resource>,
) -> String {
    let mut reason = String::new();
    match verifier::challenge(&context.inputs.snapshot.rules, target) {
        Some(realm) => {
            let _ = write!(
                reason,
                "no credentials; rule {:?} asks for them with its Basic challenge (realm {realm:?})",
                named.map(|r| r.id.as_str()).unwrap_or_default()
            );
        }
        None => match context.fallback {
            Fallback::Upstream(url) => {
                let _ = write!(
                    reason,
                    "no credentials: /api/verify hands the request, with its cookies, to the \
                     session upstream {url}, whose answer decides (without a session, 401 or a \
                     redirect to its login page)"
                );
            }
            Fallback::Login(url) => {
                let _ = write!(
                    reason,
                    "no credentials: a browser (Accept: text/html) is redirected (302) to {url}; \
                     any other client gets 401"
                );
            }
            Fallback::None => reason.push_str(
                "no credentials: a bearer token, or an API key (as a bearer, or as Basic \
                 credentials where a rule takes them), is required",
            ),
        },
    }
    reason
}

/// A decision on a credential, and what it takes to put it in words.
struct Explained<'e> {
    context: &'e Context<'e>,
    target: &'e RequestTarget<'e>,
    /// The credential's token, if its signature checks.
    token: Option<std::sync::Arc<VerifiedToken>>,
    facts: Option<CredentialFacts>,
    now: i64,
    /// The credential is a fresh token of this application.
    fresh: Option<&'e str>,
    /// A key limited to networks was checked without a `source`.
    no_source: bool,
    source: Option<IpAddr>,
}

fn time(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

fn shown(time: Option<DateTime<Utc>>) -> String {
    time.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "?".into())
}

/// `[a, b]`, or `none`.
fn list(items: &[String]) -> String {
    match items.is_empty() {
        true => "none".into(),
        false => format!("[{}]", items.join(", ")),
    }
}

/// About how long `seconds` is, for a reason.
fn span(seconds: i64) -> String {
    let seconds = seconds.unsigned_abs();
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

impl Explained<'_> {
    /// The explanation of the verifier's decision, as `/api/verify`
    /// answers it (`basic`: Basic credentials were presented).
    fn decided(mut self, decision: Result<Grant, Refusal<'_>>, basic: bool) -> Explanation {
        let rules = &self.context.inputs.snapshot.rules;
        match decision {
            // The grant was decided for a stand-in address: without `source`,
            // what /api/verify answers a key limited to networks is not known.
            Ok(grant) if self.no_source => {
                self.refused(VerifyError::ScopeSource, Some(&grant.rule))
            }
            Ok(grant) => self.granted(&grant),
            Err(refusal) => {
                let rule = refusal.rule.map(AsRef::as_ref);
                match verifier::answer(rules, self.target, basic, refusal.error) {
                    Answer::WithoutCredentials => self.without_credentials(rule, true),
                    Answer::Challenge { realm, reason } => {
                        let mut explanation = self.refused(reason, rule);
                        let _ = write!(
                            explanation.reason,
                            "; the rule asks again with its Basic challenge (realm {realm:?})"
                        );
                        explanation
                    }
                    Answer::Refused(e) => self.refused(e, rule),
                }
            }
        }
    }

    /// As a request without credentials, with what the credential is.
    fn without_credentials(&mut self, rule: Option<&Resource>, ignored: bool) -> Explanation {
        let mut explanation = without_credentials(self.context, self.target, rule, ignored);
        explanation.credential = self.facts.take();
        explanation
    }

    fn facts_of(&self, token: &VerifiedToken) -> CredentialFacts {
        let application = self.context.inputs.snapshot.application(&token.client_id);
        let kind = match (token.method, self.fresh.is_some()) {
            (AuthMethod::ApiKey, _) => "api_key",
            (AuthMethod::ClientCredentials, true) => "application",
            (AuthMethod::ClientCredentials, false) => "access_token",
        };
        let groups =
            credential_groups(token.method, &token.groups, application.map(|a| &**a)).to_vec();
        let key_scopes = match (token.method, &token.jti) {
            (AuthMethod::ApiKey, Some(id)) => self
                .context
                .inputs
                .scoped
                .get(id)
                .map(|scopes| scopes.scopes.clone()),
            _ => None,
        };
        CredentialFacts {
            kind,
            client_id: token.client_id.clone(),
            id: token.jti.as_ref().map(|id| {
                use base64::Engine as _;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
            }),
            groups,
            scope: token.scope.clone(),
            audience: match &token.aud {
                Some(Audience::One(one)) => vec![one.clone()],
                Some(Audience::Many(many)) => many.clone(),
                None => Vec::new(),
            },
            issued_at: token.iat.and_then(time),
            not_before: token.nbf.and_then(time),
            expires_at: token.exp.and_then(time),
            key_scopes,
        }
    }

    /// "the token", "API key X", "a fresh token of X": what the reason
    /// speaks of.
    fn subject(&self) -> String {
        match &self.facts {
            Some(facts) => match facts.kind {
                "api_key" => format!(
                    "API key {} of {:?}",
                    facts.id.as_deref().unwrap_or("?"),
                    facts.client_id
                ),
                "application" => format!("a fresh token of {:?}", facts.client_id),
                _ => format!("the access token of {:?}", facts.client_id),
            },
            None => "the credential".into(),
        }
    }

    fn granted(mut self, grant: &Grant) -> Explanation {
        let mut headers = BTreeMap::new();
        let rules = &self.context.inputs.snapshot.rules;
        verifier::identity_headers(grant, rules, |name, value| {
            headers.insert(
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            );
        });
        Explanation {
            decision: Decision::Granted,
            status: 200,
            reason: self.grant_reason(grant),
            rule: Some(Resource::clone(&grant.rule)),
            code: "granted",
            auth_reason: None,
            credential: self.facts.take(),
            headers,
            paths: self.paths(),
        }
    }

    /// Which rule granted, and what it checked.
    fn grant_reason(&self, grant: &Grant) -> String {
        let rule = &grant.rule;
        let groups = grant.groups();
        let group = groups
            .iter()
            .find(|g| rule.allowed_groups.contains(g))
            .map(String::as_str)
            .unwrap_or_default();
        let mut reason = format!(
            "granted by rule {:?} ({}{}): {} is in group {group:?}, which the rule admits",
            rule.id,
            rule.host,
            rule.path_prefix.as_deref().unwrap_or(""),
            self.subject()
        );
        if let Some(methods) = &rule.methods {
            let _ = write!(
                reason,
                "; {} is among its methods {}",
                self.target.method,
                list(methods)
            );
        }
        if let Some(audience) = &rule.audience {
            let _ = write!(reason, "; the token's aud holds {audience:?}");
        }
        if self
            .facts
            .as_ref()
            .is_some_and(|facts| facts.key_scopes.is_some())
        {
            reason.push_str("; the key's scopes allow it");
        }
        if self.target.paths.count() > 1 {
            reason.push_str("; this holds for every reading of the path");
        }
        if grant.basic {
            let _ = write!(
                reason,
                "; sent as Basic credentials with the user name {:?}, not as a bearer \
                 (the short form is no bearer token)",
                grant.token.client_id
            );
        }
        reason
    }

    fn paths(&self) -> Vec<String> {
        self.target.paths.iter().map(str::to_string).collect()
    }

    fn refused(mut self, e: VerifyError, rule: Option<&Resource>) -> Explanation {
        let reason = self.reason(e, rule);
        Explanation {
            decision: Decision::Denied,
            status: if e.is_forbidden() { 403 } else { 401 },
            reason,
            rule: rule.cloned(),
            code: e.reason(),
            auth_reason: Some(e.to_string()),
            credential: self.facts.take(),
            headers: BTreeMap::new(),
            paths: self.paths(),
        }
    }

    /// Why `e`, with the facts that make it so.
    fn reason(&self, e: VerifyError, rule: Option<&Resource>) -> String {
        use VerifyError::*;
        match e {
            MissingToken | TooLong | Malformed | Algorithm | Type | UnknownKey | Signature
            | Issuer | BasicMalformed | BasicUser | BasicNotApiKey => self.form_reason(e),
            Expired | NotYetValid => self.time_reason(e),
            UnknownApplication | InactiveApplication | Revoked => self.application_reason(e),
            NoRule | MethodNotAllowed | GroupNotAllowed | AudienceNotAllowed | BasicNotAccepted => {
                self.rule_reason(e, rule)
            }
            ScopeHost | ScopePath | ScopeMethod | ScopeSource | ScopeUnknown => {
                self.scope_reason(e)
            }
        }
    }

    /// What is wrong with the credential itself: its form, signature, issuer.
    fn form_reason(&self, e: VerifyError) -> String {
        let token = self.token.as_deref();
        match e {
            VerifyError::MissingToken => "no credentials".into(),
            VerifyError::TooLong => {
                format!("the credential is longer than {MAX_TOKEN_LEN} bytes; it is refused unread")
            }
            VerifyError::Malformed => "the credential is not a well-formed token: a JWT of three \
                 base64url parts (JSON header, JSON claims, signature), with exp for an access \
                 token and an id for an API key"
                .into(),
            VerifyError::Algorithm => "the token is signed with another algorithm than EdDSA, \
                 the only one accepted (never none, never HMAC)"
                .into(),
            VerifyError::Type => "the token's typ is neither at+jwt (an access token) nor \
                 apikey+jwt (an API key): an ID token, or another issuer's JWT?"
                .into(),
            VerifyError::UnknownKey => "the token names a signing key (kid) this node does not \
                 hold: another issuer's, or a key that has been retired"
                .into(),
            VerifyError::Signature => "the token's signature does not verify against its key: \
                 it was altered, or signed by someone else"
                .into(),
            VerifyError::Issuer => format!(
                "the token was issued by {:?}, not by this node's issuer {:?}",
                token.map(|t| t.iss.as_str()).unwrap_or("?"),
                self.context.verifier.issuer().as_str()
            ),
            VerifyError::BasicMalformed => {
                "the Basic credentials are not client_id:api_key, or the short form of the key \
                 does not decode"
                    .into()
            }
            VerifyError::BasicUser => "the Basic user name is not the API key's client_id".into(),
            VerifyError::BasicNotApiKey => {
                "Basic credentials must carry an API key, not an access token".into()
            }
            // Not this part's: `reason` sends each error to its part.
            other => other.to_string(),
        }
    }

    /// Why the token is not valid now.
    fn time_reason(&self, e: VerifyError) -> String {
        let token = self.token.as_deref();
        match e {
            VerifyError::Expired => {
                let exp = token.and_then(|t| t.exp).unwrap_or(self.now);
                format!(
                    "{} expired at {} ({} ago; {LEEWAY_SECS} s of clock skew are allowed)",
                    self.subject(),
                    shown(time(exp)),
                    span(self.now.saturating_sub(exp))
                )
            }
            VerifyError::NotYetValid => {
                let from = token
                    .map(|t| t.nbf.into_iter().chain(t.iat).max().unwrap_or(self.now))
                    .unwrap_or(self.now);
                format!(
                    "{} is not valid before {} (in {}; {LEEWAY_SECS} s of clock skew are \
                     allowed): the issuing clock is ahead?",
                    self.subject(),
                    shown(time(from)),
                    span(from.saturating_sub(self.now))
                )
            }
            // Not this part's: `reason` sends each error to its part.
            other => other.to_string(),
        }
    }

    /// Why the token's application refuses it.
    fn application_reason(&self, e: VerifyError) -> String {
        let facts = self.facts.as_ref();
        let client_id = facts.map(|f| f.client_id.as_str()).unwrap_or("?");
        match e {
            VerifyError::UnknownApplication => match facts {
                Some(facts) if facts.kind != "application" => format!(
                    "{}: application {client_id:?} no longer exists",
                    self.subject()
                ),
                _ => format!(
                    "there is no application {:?}",
                    self.fresh.unwrap_or(client_id)
                ),
            },
            VerifyError::InactiveApplication => format!(
                "application {client_id:?} is inactive: its tokens and API keys are refused, \
                 and the token endpoint issues it none"
            ),
            VerifyError::Revoked => self.revoked(),
            // Not this part's: `reason` sends each error to its part.
            other => other.to_string(),
        }
    }

    /// Why the rule (or no rule) refuses the target.
    fn rule_reason(&self, e: VerifyError, rule: Option<&Resource>) -> String {
        let facts = self.facts.as_ref();
        let client_id = facts.map(|f| f.client_id.as_str()).unwrap_or("?");
        let rule_id = rule.map(|r| r.id.as_str()).unwrap_or("?");
        let target = self.target;
        match e {
            VerifyError::NoRule => self.no_rule(),
            VerifyError::MethodNotAllowed => format!(
                "rule {rule_id:?} allows only the methods {}; {} is not one of them",
                list(rule.and_then(|r| r.methods.as_deref()).unwrap_or_default()),
                target.method
            ),
            VerifyError::GroupNotAllowed => match rule {
                Some(rule) if rule.allowed_groups.is_empty() => format!(
                    "rule {rule_id:?} admits no group: an empty allowed_groups denies everyone"
                ),
                _ => {
                    let groups = facts.map(|f| f.groups.as_slice()).unwrap_or_default();
                    let whose = match facts.map(|f| f.kind) {
                        Some("api_key") => format!(
                            "the key's application {client_id:?} (its current groups count)"
                        ),
                        Some("application") => format!("application {client_id:?}"),
                        _ => "the token".into(),
                    };
                    format!(
                        "rule {rule_id:?} admits the groups {}; {whose} has {}",
                        list(
                            rule.map(|r| r.allowed_groups.as_slice())
                                .unwrap_or_default()
                        ),
                        list(groups)
                    )
                }
            },
            VerifyError::AudienceNotAllowed => self.audience_reason(rule),
            VerifyError::BasicNotAccepted => {
                format!("rule {rule_id:?} does not take Basic credentials (its basic is false)")
            }
            // Not this part's: `reason` sends each error to its part.
            other => other.to_string(),
        }
    }

    /// Why a scoped API key's own scopes refuse the target.
    fn scope_reason(&self, e: VerifyError) -> String {
        let target = self.target;
        match e {
            VerifyError::ScopeHost => format!(
                "{} is limited to the hosts {}; {} is not one of them",
                self.subject(),
                list(
                    self.scopes()
                        .and_then(|s| s.hosts.as_deref())
                        .unwrap_or_default()
                ),
                target.host
            ),
            VerifyError::ScopePath => format!(
                "{} is limited to the paths under {}; {} (or another reading of it) is outside",
                self.subject(),
                list(
                    self.scopes()
                        .and_then(|s| s.path_prefixes.as_deref())
                        .unwrap_or_default()
                ),
                target.path()
            ),
            VerifyError::ScopeMethod => format!(
                "{} is limited to the methods {}; {} is not one of them",
                self.subject(),
                list(
                    self.scopes()
                        .and_then(|s| s.methods.as_deref())
                        .unwrap_or_default()
                ),
                target.method
            ),
            VerifyError::ScopeSource => self.source_reason(),
            VerifyError::ScopeUnknown => format!(
                "{} was minted with scopes this node does not hold yet: it is refused until \
                 they arrive",
                self.subject()
            ),
            // Not this part's: `reason` sends each error to its part.
            other => other.to_string(),
        }
    }

    /// Why the rule wants an audience the token does not carry.
    fn audience_reason(&self, rule: Option<&Resource>) -> String {
        let facts = self.facts.as_ref();
        let client_id = facts.map(|f| f.client_id.as_str()).unwrap_or("?");
        let rule_id = rule.map(|r| r.id.as_str()).unwrap_or("?");
        let wanted = rule.and_then(|r| r.audience.as_deref()).unwrap_or("?");
        let mut reason = format!(
            "rule {rule_id:?} requires the audience {wanted:?}; {} carries {}",
            self.subject(),
            list(facts.map(|f| f.audience.as_slice()).unwrap_or_default())
        );
        match facts.map(|f| f.kind) {
            Some("api_key") => {
                reason.push_str(" (API keys carry no audience: the rule takes access tokens only)")
            }
            Some("application") => {
                let may = self
                    .context
                    .inputs
                    .snapshot
                    .application(client_id)
                    .is_some_and(|app| app.audiences.iter().any(|a| a == wanted));
                reason.push_str(match may {
                    true => {
                        " (a token asked for with resource or audience set to it would carry it)"
                    }
                    false => {
                        " (and the application may not ask for it: it is not among its audiences)"
                    }
                });
            }
            _ => {}
        }
        reason
    }

    /// Why a key limited to client networks is refused (or undecided).
    fn source_reason(&self) -> String {
        let networks: Vec<String> = self
            .scopes()
            .and_then(|s| s.source_cidrs.as_ref())
            .map(|c| c.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        match (self.no_source, self.source) {
            (false, Some(source)) => format!(
                "{} is limited to the client networks {}; {source} is outside them",
                self.subject(),
                list(&networks)
            ),
            _ => format!(
                "{} is limited to the client networks {}; give source (the client's \
                 address) to decide",
                self.subject(),
                list(&networks)
            ),
        }
    }

    fn scopes(&self) -> Option<&KeyScopes> {
        self.facts.as_ref().and_then(|f| f.key_scopes.as_ref())
    }

    /// Which revocation: the key or token itself, the application's
    /// `not_before`, or its deletion and re-creation.
    fn revoked(&self) -> String {
        let Some(token) = self.token.as_deref() else {
            return "the credential has been revoked".into();
        };
        let revocations = self.context.inputs.revocations;
        let subject = self.subject();
        match (token.method, &token.jti) {
            (AuthMethod::ApiKey, Some(id)) if revocations.is_api_key_revoked(id) => {
                return format!("{subject} has been revoked");
            }
            (AuthMethod::ClientCredentials, Some(jti))
                if revocations.is_access_token_revoked(jti) =>
            {
                return format!("{subject} has been revoked (RFC 7009 revocation)");
            }
            _ => {}
        }
        let application = self.context.inputs.snapshot.application(&token.client_id);
        let at = application
            .filter(|app| app.not_before > 0)
            .map(|app| format!(" at {}", shown(time(app.not_before))))
            .unwrap_or_default();
        format!(
            "{subject} was issued before every token and key of {:?} was revoked{at} \
             (revoke-tokens, or the application deleted and created again)",
            token.client_id
        )
    }

    /// Which reading of the path falls under no rule.
    fn no_rule(&self) -> String {
        let rules = &self.context.inputs.snapshot.rules;
        let target = self.target;
        if rules.find(&target.host, target.path()).is_none() {
            return format!(
                "no rule covers {}{}: /api/verify refuses every request there",
                target.host,
                target.path()
            );
        }
        let uncovered = target.paths.iter().find(|path| {
            rules
                .find_each_case(&target.host, path)
                .iter()
                .any(Option::is_none)
        });
        match uncovered {
            Some(path) => format!(
                "the path can also be read as {path:?} (by another backend, or with its case \
                 folded), which no rule covers: the decision must hold for every reading"
            ),
            None => "a reading of the path falls under no rule".into(),
        }
    }
}
