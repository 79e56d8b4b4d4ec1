//! Applications (OAuth clients): the stored record, what admins send to
//! create or change one, and the validation of every field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::SecretDigest;
use crate::name_list::NameList;
use crate::parsed::checked_str;
use crate::verifier::AuthMethod;

pub const DEFAULT_ACCESS_TOKEN_TTL: u32 = 3600;
pub const MIN_ACCESS_TOKEN_TTL: u32 = 60;
pub const MAX_ACCESS_TOKEN_TTL: u32 = 86_400;
/// Longest grace period for a rotated-out secret.
pub const MAX_SECRET_GRACE_PERIOD: u32 = 7 * 86_400;
/// Prefix of generated client secrets, so scanners can spot a leaked one.
pub const CLIENT_SECRET_PREFIX: &str = "gcs_";

const MAX_NAME_LEN: usize = 128;
/// Audiences an application may ask for, and how long each may be.
pub const MAX_AUDIENCES: usize = 16;
const MAX_AUDIENCE_LEN: usize = 256;
const MAX_LIST_LEN: usize = 64;
const MAX_ITEM_LEN: usize = 64;

/// An application as the store keeps it, secret digests included.
///
/// Every node holds every application (100,000 at the reference scale), so
/// the record is laid out small: strings without spare capacity, lists
/// shared with the other applications that have the same one
/// (`NameList`), the rarely set previous secret behind a pointer. Its JSON
/// is that of plain strings and lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplicationRecord {
    pub client_id: ClientId,
    pub name: Box<str>,
    pub groups: NameList,
    pub scopes: NameList,
    /// The `resource`/`audience` values it may ask for, beyond the issuer.
    #[serde(default)]
    pub audiences: NameList,
    pub access_token_ttl: u32,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub secret: SecretDigest,
    /// The secret replaced by the last rotation, while its grace period lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<Box<PreviousSecret>>,
    /// Tokens and API keys issued before this time (unix seconds) are
    /// invalid: set at creation and by `revoke-tokens`.
    #[serde(default)]
    pub not_before: i64,
    /// Drawn anew on creation and by `revoke-tokens`; every credential
    /// carries it (`gen`) and is valid only while it is current. Unlike
    /// `not_before`, it involves no clock: a token issued in the same second
    /// as the re-creation, or by a replica whose clock runs ahead, carries
    /// the old generation and fails. 0 on records older than generations.
    #[serde(default)]
    pub generation: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub digest: SecretDigest,
    pub expires_at: DateTime<Utc>,
}

impl ApplicationRecord {
    /// Whether `secret` is this application's current secret, or its
    /// previous one still within its grace period. Both digests are always
    /// compared, so timing does not tell which one matched.
    pub fn secret_matches(&self, secret: &str, now: DateTime<Utc>) -> bool {
        let current = self.secret.matches(secret);
        let previous = self
            .previous_secret
            .as_ref()
            .is_some_and(|p| p.digest.matches(secret) && now < p.expires_at);
        current | previous
    }

    /// A new application from an admin request, every field checked in
    /// the order the admin API reports them: `client_id` is the one the
    /// request names or one generated for it, `secret` the digest of its
    /// first secret, `generation` its first (random) generation.
    pub fn create(
        client_id: &str,
        new: NewApplication,
        secret: SecretDigest,
        generation: u64,
        now: DateTime<Utc>,
    ) -> Result<Self, FieldError> {
        let client_id = ClientId::parse(client_id)?;
        let name = match new.name {
            Some(name) => validate_name(&name)?,
            None => client_id.to_string(),
        };
        Ok(ApplicationRecord {
            groups: normalize_groups("groups", &new.groups)?.into(),
            scopes: normalize_scopes(&new.scopes)?.into(),
            audiences: normalize_audiences(&new.audiences)?.into(),
            access_token_ttl: validate_ttl(
                new.access_token_ttl.unwrap_or(DEFAULT_ACCESS_TOKEN_TTL),
            )?,
            active: new.active.unwrap_or(true),
            created_at: now,
            updated_at: now,
            secret,
            previous_secret: None,
            // Credentials from an earlier application of the same client_id
            // must not come back to life.
            not_before: now.timestamp(),
            generation,
            client_id,
            name: name.into(),
        })
    }

    /// Applies and validates a change; on error `self` is left unchanged.
    pub fn apply(&mut self, patch: &ApplicationPatch) -> Result<(), FieldError> {
        let name = patch.name.as_deref().map(validate_name).transpose()?;
        let groups = (patch.groups.as_deref())
            .map(|groups| normalize_groups("groups", groups))
            .transpose()?;
        let scopes = patch.scopes.as_deref().map(normalize_scopes).transpose()?;
        let audiences = (patch.audiences.as_deref())
            .map(normalize_audiences)
            .transpose()?;
        let ttl = patch.access_token_ttl.map(validate_ttl).transpose()?;
        if let Some(name) = name {
            self.name = name.into();
        }
        if let Some(groups) = groups {
            self.groups = groups.into();
        }
        if let Some(scopes) = scopes {
            self.scopes = scopes.into();
        }
        if let Some(audiences) = audiences {
            self.audiences = audiences.into();
        }
        if let Some(ttl) = ttl {
            self.access_token_ttl = ttl;
        }
        if let Some(active) = patch.active {
            self.active = active;
        }
        Ok(())
    }

    /// Makes `secret` the current secret; the one it replaces keeps
    /// working for `grace` (from `SecretRotation::grace`), if any.
    pub fn rotate_secret(
        &mut self,
        secret: SecretDigest,
        grace: chrono::Duration,
        now: DateTime<Utc>,
    ) {
        self.previous_secret = (grace > chrono::Duration::zero()).then(|| {
            Box::new(PreviousSecret {
                digest: self.secret,
                expires_at: now + grace,
            })
        });
        self.secret = secret;
    }

    /// The admin API's view: everything but the secrets.
    pub fn view(&self) -> ApplicationView<'_> {
        ApplicationView {
            client_id: &self.client_id,
            name: &self.name,
            groups: &self.groups,
            scopes: &self.scopes,
            audiences: &self.audiences,
            access_token_ttl: self.access_token_ttl,
            active: self.active,
            created_at: self.created_at,
            updated_at: self.updated_at,
            not_before: DateTime::from_timestamp(self.not_before, 0).unwrap_or_default(),
        }
    }

    /// The `iat` of a credential issued at `now`: never before `not_before`,
    /// so that one issued in the very second of a `revoke-tokens` (which
    /// moves `not_before` to the next second) is not refused with the rest.
    pub fn issued_at(&self, now: i64) -> i64 {
        now.max(self.not_before)
    }

    /// The `gen` a credential issued now carries; `None` for a record
    /// older than generations.
    pub fn credential_generation(&self) -> Option<u64> {
        (self.generation != 0).then_some(self.generation)
    }

    /// Whether a credential carrying `generation` and issued at `iat`
    /// belongs to this application as it is now.
    pub fn is_current(&self, generation: Option<u64>, iat: Option<i64>) -> bool {
        let current_generation = match self.credential_generation() {
            Some(current) => generation == Some(current),
            None => true,
        };
        current_generation && iat.unwrap_or(i64::MIN) >= self.not_before
    }
}

#[cfg(any(test, fuzzing))]
impl ApplicationRecord {
    /// The client that the unit tests and fuzz targets issue and check
    /// tokens for: active, in group `media` only, no scopes or audiences,
    /// and untouched by `revoke-tokens` (`not_before` and `generation` 0),
    /// so that a token of any `iat` is current.
    #[allow(clippy::expect_used)] // a fixture's id is a literal that parses
    pub fn media_client(client_id: &str, secret: &str, now: DateTime<Utc>) -> Self {
        ApplicationRecord {
            client_id: ClientId::parse(client_id).expect("a fixture's client id"),
            name: client_id.into(),
            groups: vec!["media".to_string()].into(),
            scopes: Default::default(),
            access_token_ttl: 3600,
            active: true,
            created_at: now,
            updated_at: now,
            secret: SecretDigest::of(secret),
            previous_secret: None,
            audiences: Default::default(),
            generation: 0,
            not_before: 0,
        }
    }
}

/// The groups a credential holds when the rules look at it. An access
/// token carries the groups it was issued with (`carried`); an API key
/// takes its application's current groups, so that removing a group takes
/// effect without re-minting the key (none if the application is gone).
pub fn credential_groups<'a>(
    method: AuthMethod,
    carried: &'a [String],
    application: Option<&'a ApplicationRecord>,
) -> &'a [String] {
    match method {
        AuthMethod::ClientCredentials => carried,
        AuthMethod::ApiKey => application.map_or(&[], |app| &app.groups),
    }
}

#[derive(Debug, Serialize)]
pub struct ApplicationView<'a> {
    pub client_id: &'a str,
    pub name: &'a str,
    pub groups: &'a [String],
    pub scopes: &'a [String],
    pub audiences: &'a [String],
    pub access_token_ttl: u32,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Credentials issued before this (RFC 3339) are refused.
    pub not_before: DateTime<Utc>,
}

/// `POST /admin/v1/applications`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApplication {
    pub client_id: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    pub access_token_ttl: Option<u32>,
    pub active: Option<bool>,
}

/// `PATCH /admin/v1/applications/{client_id}`: absent fields stay as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationPatch {
    pub name: Option<String>,
    pub groups: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub access_token_ttl: Option<u32>,
    pub active: Option<bool>,
}

/// `POST /admin/v1/applications/{client_id}/secret`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRotation {
    /// Seconds the old secret keeps working; 0 (default) ends it at once.
    #[serde(default)]
    pub grace_period: u32,
}

impl SecretRotation {
    /// How long the old secret keeps working: at most
    /// `MAX_SECRET_GRACE_PERIOD`.
    pub fn grace(&self) -> Result<chrono::Duration, FieldError> {
        if self.grace_period > MAX_SECRET_GRACE_PERIOD {
            return Err(FieldError::new(
                "grace_period",
                format!("must be at most {MAX_SECRET_GRACE_PERIOD} seconds"),
            ));
        }
        Ok(chrono::Duration::seconds(i64::from(self.grace_period)))
    }
}

/// A field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An application's client id: 1–64 characters of `[a-z0-9._-]`. It
/// names the application in URLs, headers and logs, so it is checked once,
/// where it comes in, and then carried as this type. Its JSON is a plain
/// string; one read from the store or a change passes the same check (every
/// stored id did, at creation).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(Box<str>);

impl ClientId {
    pub fn parse(id: &str) -> Result<Self, FieldError> {
        validate_client_id(id)?;
        Ok(Self(id.into()))
    }
}

/// Whether `id` is a well-formed client id, without making one: for
/// callers that only look at a presented id (the token endpoint, the
/// throttle), so the check costs no allocation.
pub fn validate_client_id(id: &str) -> Result<(), FieldError> {
    if is_identifier(id) {
        Ok(())
    } else {
        Err(FieldError::new("client_id", IDENTIFIER_RULE))
    }
}

/// What client ids and resource ids are made of.
pub(crate) const IDENTIFIER_RULE: &str = "must be 1-64 characters of a-z, 0-9, '.', '_' or '-'";

/// 1–64 characters of `[a-z0-9._-]`: client ids and resource ids.
pub(crate) fn is_identifier(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

checked_str!(ClientId, FieldError);

/// A display name: it becomes the `Remote-Name` header, so no control characters.
fn validate_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(FieldError::new(
            "name",
            format!("must be 1-{MAX_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

/// Group names are matched case-insensitively, so they are kept lowercase.
/// They are joined with commas into `Remote-Groups`, so they hold none.
pub fn normalize_groups(field: &str, groups: &[String]) -> Result<Vec<String>, FieldError> {
    normalize_list(
        field,
        groups,
        |g| {
            g.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:@/-".contains(&b))
        },
        "of a-z, 0-9 and ._:@/-",
    )
    .map(|list| list.into_iter().map(|g| g.to_ascii_lowercase()).collect())
    .map(dedup_sorted)
}

/// Scope tokens per RFC 6749 §3.3.
fn normalize_scopes(scopes: &[String]) -> Result<Vec<String>, FieldError> {
    normalize_list(
        "scopes",
        scopes,
        is_scope_token,
        "of printable ASCII without spaces, '\"' or '\\'",
    )
    .map(dedup_sorted)
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn normalize_list(
    field: &str,
    items: &[String],
    valid: impl Fn(&str) -> bool,
    what: &str,
) -> Result<Vec<String>, FieldError> {
    if items.len() > MAX_LIST_LEN {
        return Err(FieldError::new(
            field,
            format!("at most {MAX_LIST_LEN} entries"),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            if item.is_empty() || item.len() > MAX_ITEM_LEN || !valid(item) {
                Err(FieldError::new(
                    format!("{field}[{i}]"),
                    format!("must be 1-{MAX_ITEM_LEN} characters {what}"),
                ))
            } else {
                Ok(item.clone())
            }
        })
        .collect()
}

fn dedup_sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items.dedup();
    items
}

/// Audience values (RFC 8707 resource URIs or plain names): 1-256
/// printable characters without spaces, at most `MAX_AUDIENCES`.
fn normalize_audiences(audiences: &[String]) -> Result<Vec<String>, FieldError> {
    if audiences.len() > MAX_AUDIENCES {
        return Err(FieldError::new(
            "audiences",
            format!("at most {MAX_AUDIENCES} entries"),
        ));
    }
    for (i, audience) in audiences.iter().enumerate() {
        let ok = !audience.is_empty()
            && audience.len() <= MAX_AUDIENCE_LEN
            && !audience
                .chars()
                .any(|c| c.is_control() || c.is_whitespace());
        if !ok {
            return Err(FieldError::new(
                format!("audiences[{i}]"),
                format!("must be 1-{MAX_AUDIENCE_LEN} characters without spaces"),
            ));
        }
    }
    Ok(dedup_sorted(audiences.to_vec()))
}

fn validate_ttl(ttl: u32) -> Result<u32, FieldError> {
    if (MIN_ACCESS_TOKEN_TTL..=MAX_ACCESS_TOKEN_TTL).contains(&ttl) {
        Ok(ttl)
    } else {
        Err(FieldError::new(
            "access_token_ttl",
            format!("must be between {MIN_ACCESS_TOKEN_TTL} and {MAX_ACCESS_TOKEN_TTL} seconds"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids() {
        for good in ["canister", "a.b_c-9", &"a".repeat(64)] {
            assert_eq!(ClientId::parse(good).unwrap().as_str(), good);
            assert!(validate_client_id(good).is_ok());
        }
        for bad in ["", "Canister", "has space", &"a".repeat(65)] {
            let err = ClientId::parse(bad).unwrap_err();
            assert_eq!(err.field, "client_id", "{bad:?}");
            assert!(validate_client_id(bad).is_err());
        }
    }

    /// A client id reads and writes as the plain string, quotes as one in
    /// messages, and one that is not a client id does not read at all.
    #[test]
    fn a_client_id_is_a_plain_string_in_json() {
        let id: ClientId = serde_json::from_str(r#""canister""#).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""canister""#);
        assert_eq!(format!("{id:?} {id}"), r#""canister" canister"#);
        let err = serde_json::from_str::<ClientId>(r#""Not An Id""#).unwrap_err();
        assert!(
            err.to_string().starts_with("client_id: must be 1-64"),
            "{err}"
        );
    }

    /// A new application from `new`, as the admin API creates one.
    fn create(
        id: &str,
        new: NewApplication,
        now: DateTime<Utc>,
    ) -> Result<ApplicationRecord, FieldError> {
        ApplicationRecord::create(id, new, SecretDigest::of("s"), 7, now)
    }

    #[test]
    fn absent_fields_take_their_defaults() {
        let now = Utc::now();
        let app = create("canister", NewApplication::default(), now).unwrap();
        assert_eq!(
            (&*app.name, app.access_token_ttl, app.active, app.generation),
            ("canister", DEFAULT_ACCESS_TOKEN_TTL, true, 7)
        );
        assert_eq!(app.not_before, now.timestamp());
    }

    /// An application checks its own fields, and names the first at fault
    /// in the admin API's order.
    #[test]
    fn the_first_field_at_fault_is_named() {
        let bad = |id: &str, new| create(id, new, Utc::now()).unwrap_err().field;
        assert_eq!(bad("Canister", NewApplication::default()), "client_id");
        // A bad ttl as well does not hide the field before it.
        let ttl = || Some(1);
        let cases = [
            (
                NewApplication {
                    name: Some(" ".into()),
                    access_token_ttl: ttl(),
                    ..Default::default()
                },
                "name",
            ),
            (
                NewApplication {
                    groups: vec!["a,b".into()],
                    access_token_ttl: ttl(),
                    ..Default::default()
                },
                "groups[0]",
            ),
            (
                NewApplication {
                    scopes: vec!["a b".into()],
                    ..Default::default()
                },
                "scopes[0]",
            ),
            (
                NewApplication {
                    audiences: vec!["a b".into()],
                    ..Default::default()
                },
                "audiences[0]",
            ),
            (
                NewApplication {
                    access_token_ttl: ttl(),
                    ..Default::default()
                },
                "access_token_ttl",
            ),
        ];
        for (new, field) in cases {
            assert_eq!(bad("canister", new), field);
        }
    }

    /// A change that fails leaves the record as it was; one that passes
    /// applies every field it names.
    #[test]
    fn a_change_applies_whole_or_not_at_all() {
        let mut changed = create("canister", NewApplication::default(), Utc::now()).unwrap();
        let patch = ApplicationPatch {
            name: Some("New".into()),
            groups: Some(vec!["Ops".into()]),
            access_token_ttl: Some(1),
            ..Default::default()
        };
        assert_eq!(changed.apply(&patch).unwrap_err().field, "access_token_ttl");
        assert_eq!((&*changed.name, changed.groups.len()), ("canister", 0));
        let patch = ApplicationPatch {
            access_token_ttl: Some(60),
            active: Some(false),
            ..patch
        };
        changed.apply(&patch).unwrap();
        assert_eq!(
            (
                &*changed.name,
                &changed.groups[..],
                changed.access_token_ttl,
                changed.active
            ),
            ("New", &["ops".to_string()][..], 60, false)
        );
    }

    #[test]
    fn api_keys_take_their_applications_current_groups() {
        let new = NewApplication {
            groups: vec!["ops".into()],
            ..Default::default()
        };
        let app =
            ApplicationRecord::create("c", new, SecretDigest::of("s"), 1, Utc::now()).unwrap();
        let carried = ["media".to_string()];
        let groups = |method, app| credential_groups(method, &carried, app).to_vec();
        assert_eq!(groups(AuthMethod::ApiKey, Some(&app)), ["ops"]);
        assert_eq!(groups(AuthMethod::ApiKey, None), Vec::<String>::new());
        assert_eq!(groups(AuthMethod::ClientCredentials, Some(&app)), ["media"]);
        assert_eq!(groups(AuthMethod::ClientCredentials, None), ["media"]);
    }

    #[test]
    fn a_rotation_keeps_the_old_secret_only_for_its_grace() {
        let now = Utc::now();
        let mut app = ApplicationRecord::create(
            "c",
            NewApplication::default(),
            SecretDigest::of("old"),
            1,
            now,
        )
        .unwrap();
        let grace = SecretRotation { grace_period: 10 }.grace().unwrap();
        app.rotate_secret(SecretDigest::of("new"), grace, now);
        assert!(app.secret_matches("old", now) && app.secret_matches("new", now));
        app.rotate_secret(
            SecretDigest::of("newer"),
            SecretRotation::default().grace().unwrap(),
            now,
        );
        assert!(app.previous_secret.is_none() && !app.secret_matches("new", now));
        let too_long = SecretRotation {
            grace_period: MAX_SECRET_GRACE_PERIOD + 1,
        };
        assert_eq!(too_long.grace().unwrap_err().field, "grace_period");
    }

    #[test]
    fn groups_are_lowercased_deduplicated_and_comma_free() {
        let groups =
            normalize_groups("groups", &["Media".into(), "media".into(), "ops".into()]).unwrap();
        assert_eq!(groups, vec!["media", "ops"]);
        let err = normalize_groups("groups", &["a,b".into()]).unwrap_err();
        assert_eq!(err.field, "groups[0]");
    }

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        assert!(is_scope_token("webdav:read"));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token("quote\""));
        assert!(!is_scope_token(""));
    }

    /// 100,000 records are held on every node: each is one allocation of
    /// 192 bytes with its `Arc` (glibc rounds 168 + 16 up), its lists shared.
    #[test]
    fn a_record_stays_small() {
        assert!(std::mem::size_of::<ApplicationRecord>() <= 168);
    }

    /// The stored and replicated form is that of plain strings and lists.
    #[test]
    fn the_json_form_is_unchanged() {
        let json = r#"{"client_id":"c","name":"C","groups":["media","ops"],"scopes":[],"audiences":["https://a"],"access_token_ttl":60,"active":true,"created_at":"2026-01-02T03:04:05.123456789Z","updated_at":"2026-01-02T03:04:05Z","secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","previous_secret":{"digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","expires_at":"2026-01-02T03:04:05Z"},"not_before":7,"generation":9}"#;
        let record: ApplicationRecord = serde_json::from_str(json).unwrap();
        assert_eq!(record.groups, ["media", "ops"]);
        assert_eq!(serde_json::to_string(&record).unwrap(), json);
        let other: ApplicationRecord = serde_json::from_str(json).unwrap();
        assert!(other.groups.shares(&record.groups));
    }

    #[test]
    fn previous_secret_works_only_within_grace() {
        let now = Utc::now();
        let record = ApplicationRecord {
            client_id: ClientId::parse("c").unwrap(),
            name: "c".into(),
            groups: Default::default(),
            scopes: Default::default(),
            access_token_ttl: 3600,
            active: true,
            created_at: now,
            updated_at: now,
            secret: SecretDigest::of("new"),
            previous_secret: Some(Box::new(PreviousSecret {
                digest: SecretDigest::of("old"),
                expires_at: now + chrono::Duration::seconds(10),
            })),
            not_before: 0,
            audiences: Default::default(),
            generation: 0,
        };
        assert!(record.secret_matches("new", now));
        assert!(record.secret_matches("old", now));
        assert!(!record.secret_matches("old", now + chrono::Duration::seconds(11)));
        assert!(!record.secret_matches("other", now));
    }
}
