//! Entry points for the fuzz targets in `fuzz/`, and the replay of their
//! corpus in the unit tests, so that every input the fuzzer kept (and
//! every crash it ever found) is run again by `cargo test`.
//!
//! * `request_target`: a forwarded request's headers, read as the verify
//!   endpoint reads them, then decided against a rule set.
//! * `bearer`: the token parser and checks. Raw input must never verify;
//!   input the harness signs itself (any header, any claims) may verify
//!   only when an independent reading of its JSON says it should.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, OnceLock};

use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::test::TestRequest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::Value;

use crate::applications::ApplicationRecord;
use crate::crypto::jwt_provider;
use crate::directory::Directory;
use crate::keys::{KeyDir, KeyRing};
use crate::resources::{NewResource, Resource};
use crate::target::{HeaderFamily, RequestTarget};
use crate::verifier::{LEEWAY_SECS, Verifier, authorize_target};

const HOST: &str = "dav.example.com";
const ISSUER: &str = "https://auth.example.com";
const CLIENT: &str = "canister";
/// A host whose rule takes Basic credentials.
const BASIC_HOST: &str = "basic.example.com";

/// Input: one flag byte (bit 0: trusted peer; bits 1-2: header family),
/// the method on the first line, then `name: value` lines.
pub fn request_target(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let trusted = flags & 1 == 1;
    let family = match (flags >> 1) & 3 {
        1 => HeaderFamily::XForwarded,
        2 => HeaderFamily::XOriginal,
        _ => HeaderFamily::Auto,
    };
    let mut lines = rest.split(|&b| b == b'\n');
    let method = lines
        .next()
        .and_then(|m| Method::from_bytes(m).ok())
        .unwrap_or(Method::GET);
    let mut request = TestRequest::default().method(method);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value.trim_ascii()),
        ) {
            request = request.append_header((name, value));
        }
    }
    let req = request.to_http_request();
    let Ok(target) = RequestTarget::of(&req, trusted, family, &[]) else {
        return;
    };
    assert!(!target.method.bytes().any(|b| b.is_ascii_lowercase()));
    assert!(!target.host.bytes().any(|b| b.is_ascii_uppercase()));
    for reading in target.paths.iter() {
        assert!(reading.starts_with('/'), "{reading:?}");
        assert!(!reading.chars().any(char::is_control), "{reading:?}");
    }
    let canonical = target.path();
    let body = canonical.strip_suffix('/').unwrap_or(canonical);
    assert!(
        body.is_empty() || body[1..].split('/').all(|s| !matches!(s, "" | "." | "..")),
        "the canonical path is resolved: {canonical:?}"
    );
    let harness = harness();
    let snapshot = harness.directory.snapshot();
    let _ = authorize_target(&snapshot.rules, &["media".into()], None, false, &target);
}

/// Input: a mode byte, then either a raw bearer value (mode even), or a
/// JOSE header and claims separated by a 0xff byte, which the harness
/// signs with its own key (mode odd). Returns whether it verified.
pub fn bearer(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let harness = harness();
    let target = RequestTarget::named("GET", HOST, "/").unwrap();
    let now = harness.now;
    let verify = |bearer: &str| {
        harness.verifier.verify(
            &crate::verifier::Inputs::of(
                &harness.directory,
                &harness.directory.snapshot(),
                &harness.keys.snapshot(),
            ),
            crate::verifier::Credential::Bearer(bearer),
            &target,
            || std::net::IpAddr::from([127, 0, 0, 1]),
            now,
        )
    };
    if mode % 2 == 0 {
        let bearer = String::from_utf8_lossy(rest);
        assert!(
            verify(&bearer).is_err(),
            "an unsigned input verified: {bearer:?}"
        );
        return false;
    }
    let split = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
    let (header, claims) = (&rest[..split], rest.get(split + 1..).unwrap_or(&[]));
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let keys = harness.keys.snapshot();
    let signer = keys.signer().unwrap();
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &signer.encoding,
        jsonwebtoken::Algorithm::EdDSA,
    )
    .unwrap();
    let token = format!("{signing_input}.{signature}");
    let verified = verify(&token).is_ok();
    if verified {
        let header: Value = serde_json::from_slice(header).expect("a verified header is JSON");
        let claims: Value = serde_json::from_slice(claims).expect("verified claims are JSON");
        should_verify(&header, &claims, &signer.kid, now)
            .unwrap_or_else(|why| panic!("verified, but {why}: {header} {claims}"));
    }
    verified
}

/// Verifies Basic credentials at the rule that takes them.
fn verify_basic(value: &str) -> Result<(), crate::verifier::VerifyError> {
    let harness = harness();
    let target = RequestTarget::named("GET", BASIC_HOST, "/").unwrap();
    let mut buffer = Vec::new();
    let credential = crate::http::verify::parse_basic(value, &mut buffer)?;
    harness
        .verifier
        .verify(
            &crate::verifier::Inputs::of(
                &harness.directory,
                &harness.directory.snapshot(),
                &harness.keys.snapshot(),
            ),
            credential,
            &target,
            || std::net::IpAddr::from([127, 0, 0, 1]),
            harness.now,
        )
        .map(|_| ())
}

/// An `Authorization: Basic` value as anyone may send it: it never
/// verifies (no input here carries a signature of the harness's key).
pub fn basic(value: &str) -> bool {
    assert!(
        verify_basic(value).is_err(),
        "garbage Basic credentials verified: {value:?}"
    );
    false
}

/// A real API key of the harness's client, minted with or without scopes
/// (the harness holds none).
fn real_key(scoped: bool) -> String {
    let harness = harness();
    let claims = crate::api_keys::ApiKeyClaims {
        iss: ISSUER,
        sub: CLIENT,
        client_id: CLIENT,
        jti: "AAAAAAAAAAAAAAAAAAAAAA",
        iat: harness.now,
        exp: None,
        generation: None,
        scoped,
    };
    crate::issuer::sign_jwt_with_kid(&harness.keys, crate::claims::API_KEY_TYP, &claims)
        .unwrap()
        .0
}

/// A key minted with scopes, at a node that does not hold them (yet).
pub fn scoped_key_without_its_scopes() -> Result<(), crate::verifier::VerifyError> {
    use base64::engine::general_purpose::STANDARD;
    verify_basic(&STANDARD.encode(format!("{CLIENT}:{}", real_key(true))))
}

/// A real API key of the harness's client, sent as Basic under `user`:
/// granted exactly when `user` is that client's id.
pub fn basic_with_user(user: &str) -> bool {
    use base64::engine::general_purpose::STANDARD;
    let key = real_key(false);
    let value = STANDARD.encode(format!("{user}:{key}"));
    let verified = verify_basic(&value).is_ok();
    assert_eq!(verified, user == CLIENT, "user {user:?}");
    verified
}

/// The checks of SPEC §4, written again from the JSON alone.
fn should_verify(header: &Value, claims: &Value, kid: &str, now: i64) -> Result<(), &'static str> {
    if header["alg"] != "EdDSA" {
        return Err("alg is not EdDSA");
    }
    if header["kid"] != kid {
        return Err("kid is not the signer's");
    }
    let typ = header["typ"]
        .as_str()
        .ok_or("typ is missing")?
        .to_ascii_lowercase();
    let access_token = match typ.as_str() {
        "at+jwt" | "application/at+jwt" => true,
        "apikey+jwt" | "application/apikey+jwt" => false,
        _ => return Err("typ is not accepted"),
    };
    if claims["iss"] != ISSUER {
        return Err("iss is not the issuer");
    }
    let client = claims.get("client_id").or_else(|| claims.get("sub"));
    if client.and_then(Value::as_str) != Some(CLIENT) {
        return Err("the client is unknown");
    }
    let exp = claims["exp"].as_i64();
    if access_token && exp.is_none() {
        return Err("an access token has no exp");
    }
    if exp.is_some_and(|exp| now > exp + LEEWAY_SECS) {
        return Err("it has expired");
    }
    for claim in ["nbf", "iat"] {
        if claims[claim]
            .as_i64()
            .is_some_and(|t| now + LEEWAY_SECS < t)
        {
            return Err("it is not valid yet");
        }
    }
    if !access_token && claims["jti"].as_str().is_none() {
        return Err("an API key has no id");
    }
    Ok(())
}

struct Harness {
    keys: Arc<KeyRing>,
    directory: Directory,
    verifier: Verifier,
    now: i64,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        jwt_provider::install();
        let dir = std::env::temp_dir().join(format!("gatehouse-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let keys = KeyDir::open(&dir).unwrap().load_or_init().unwrap();
        let now = Utc::now();
        let app = ApplicationRecord::media_client(CLIENT, "secret", now);
        let rules = [
            ("all", None, "media"),
            ("private", Some("/private"), "admins"),
        ];
        let basic_rule = NewResource {
            host: Some(BASIC_HOST.into()),
            allowed_groups: vec!["media".into()],
            basic: true,
            ..Default::default()
        };
        let resources = rules
            .into_iter()
            .map(|(id, prefix, group)| {
                let new = NewResource {
                    host: Some(HOST.into()),
                    path_prefix: prefix.map(str::to_string),
                    allowed_groups: vec![group.into()],
                    ..Default::default()
                };
                Resource::create(id.into(), new, now).unwrap()
            })
            .chain([Resource::create("basic".into(), basic_rule, now).unwrap()])
            .collect();
        Harness {
            keys: Arc::new(KeyRing::new(keys)),
            directory: Directory::new(vec![app], resources),
            verifier: Verifier::new(ISSUER),
            now: now.timestamp(),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every file the fuzzer kept, and every seed, run again.
    fn replay(target: &str, run: impl Fn(&[u8])) -> usize {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut count = 0;
        for dir in ["corpus", "seeds", "artifacts"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_file() {
                    run(&std::fs::read(&path).unwrap());
                    count += 1;
                }
            }
        }
        count
    }

    #[test]
    fn request_target_corpus_replays_without_findings() {
        assert!(
            replay("request_target", super::request_target) > 0,
            "the corpus is in fuzz/"
        );
    }

    #[test]
    fn bearer_corpus_replays_without_findings() {
        let replayed = replay("bearer", |data| {
            super::bearer(data);
        });
        assert!(replayed > 0, "the corpus is in fuzz/");
    }

    /// The signing mode can verify, so the independent check is reached.
    #[test]
    fn a_signed_valid_token_reaches_the_independent_check() {
        let header = br#"{"alg":"EdDSA","typ":"at+jwt","kid":"KID"}"#;
        let harness = super::harness();
        let kid = harness.keys.snapshot().signer().unwrap().kid.clone();
        let header = String::from_utf8_lossy(header).replace("KID", &kid);
        let claims = format!(
            r#"{{"iss":"{}","client_id":"canister","groups":["media"],"exp":{},"iat":{}}}"#,
            super::ISSUER,
            harness.now + 60,
            harness.now
        );
        let mut input = vec![1u8];
        input.extend_from_slice(header.as_bytes());
        input.push(0xff);
        input.extend_from_slice(claims.as_bytes());
        assert!(super::bearer(&input), "a valid signed token verifies");
        let header: serde_json::Value = serde_json::from_str(&header).unwrap();
        let claims: serde_json::Value = serde_json::from_str(&claims).unwrap();
        assert_eq!(
            super::should_verify(&header, &claims, &kid, harness.now),
            Ok(())
        );
        let expired: serde_json::Value =
            serde_json::json!({"iss": super::ISSUER, "client_id": "canister", "exp": 1});
        assert!(super::should_verify(&header, &expired, &kid, harness.now).is_err());
    }
}
