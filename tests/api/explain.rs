//! `POST /admin/v1/explain` and `gatehouse admin explain`: the decision
//! `/api/verify` would make, why, and no trace of having asked.

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, TestApp, TestClient, gatehouse_command, json_of, metric, refused_field,
    spawn_app_with,
};

const DAV: &str = "dav.example.com";
const AUD: &str = "aud.example.com";
const FILES: &str = "files.example.com";
const NOBODY: &str = "nobody.example.com";
const AUDIENCE: &str = "https://dav.example.com";

struct Setup {
    app: TestApp,
    canister: TestClient,
    backup: TestClient,
    /// An API key of canister, and its short form for Basic.
    key: String,
    key_id: String,
    short: String,
}

/// Two applications (canister in `media`, backup in `backup`), a read-only
/// DAV host with a private part, a host that requires an audience, one
/// that takes Basic credentials and challenges for them, one that admits
/// no group.
async fn setup_with(limit: u32) -> Setup {
    let app = spawn_app_with(|s| s.auth_failure_limit = limit).await;
    let canister = app
        .create_application(json!({
            "client_id": "canister", "name": "Canister", "groups": ["media"],
            "scopes": ["webdav:read"], "audiences": [AUDIENCE],
        }))
        .await;
    let backup = app
        .create_application(json!({"client_id": "backup", "groups": ["backup"]}))
        .await;
    app.create_resource(json!({
        "id": "dav", "host": DAV, "allowed_groups": ["media"],
        "methods": ["GET", "HEAD", "OPTIONS", "PROPFIND"],
    }))
    .await;
    app.create_resource(json!({
        "id": "dav-private", "host": DAV, "path_prefix": "/private", "allowed_groups": ["admins"],
    }))
    .await;
    app.create_resource(
        json!({"id": "aud", "host": AUD, "allowed_groups": ["media"], "audience": AUDIENCE}),
    )
    .await;
    app.create_resource(json!({
        "id": "files", "host": FILES, "allowed_groups": ["media"],
        "basic": true, "challenge": "basic", "realm": "Files",
    }))
    .await;
    app.create_resource(json!({"id": "nobody", "host": NOBODY, "allowed_groups": []}))
        .await;
    let minted = json_of(
        app.admin(Method::POST, "/applications/canister/api-keys")
            .json(&json!({"name": "sync"})),
    )
    .await;
    Setup {
        key: minted["api_key"].as_str().unwrap().to_string(),
        key_id: minted["id"].as_str().unwrap().to_string(),
        short: minted["basic_password"].as_str().unwrap().to_string(),
        app,
        canister,
        backup,
    }
}

async fn setup() -> Setup {
    setup_with(1_000_000).await
}

/// `POST /admin/v1/explain`, expecting an explanation (also the review's).
pub(crate) async fn explain(app: &TestApp, body: Value) -> Value {
    let response = app
        .admin(Method::POST, "/explain")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{body}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let explanation: Value = response.json().await.unwrap();
    for field in ["decision", "status", "reason", "rule", "code"] {
        assert!(explanation.get(field).is_some(), "{field}: {explanation}");
    }
    explanation
}

fn request(method: &str, host: &str, path: &str) -> Value {
    json!({"method": method, "host": host, "path": path})
}

fn with(mut body: Value, field: &str, value: &str) -> Value {
    body[field] = value.into();
    body
}

/// Asserts the decision, status and code, and that the reason is words.
/// The reason, in words, names `what`.
pub(crate) fn assert_reason_mentions(explanation: &Value, what: &str) {
    let reason = explanation["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(what), "{what:?} not in {explanation:#}");
}

fn assert_decision(explanation: &Value, status: u16, code: &str) {
    assert_eq!(explanation["status"], status, "{explanation:#}");
    assert_eq!(explanation["code"], code, "{explanation:#}");
    let decision = if status == 200 { "granted" } else { "denied" };
    assert_eq!(explanation["decision"], decision, "{explanation:#}");
    assert!(
        explanation["reason"].as_str().unwrap().len() > 10,
        "{explanation:#}"
    );
}

#[actix_web::test]
async fn a_granted_request_names_its_rule_and_the_identity_sent() {
    let s = setup().await;
    let token = s.app.access_token(&s.canister, &[]).await;
    let answer = explain(
        &s.app,
        with(request("PROPFIND", DAV, "/photos/"), "token", &token),
    )
    .await;
    assert_decision(&answer, 200, "granted");
    assert_eq!(answer["rule"]["id"], "dav");
    assert_eq!(answer["headers"]["remote-user"], "canister");
    assert_eq!(answer["headers"]["remote-name"], "Canister");
    assert_eq!(answer["headers"]["remote-groups"], "media");
    assert_eq!(
        answer["headers"]["remote-auth-method"],
        "client_credentials"
    );
    assert_eq!(answer["credential"]["kind"], "access_token");
    assert_eq!(answer["credential"]["client_id"], "canister");
    let reason = answer["reason"].as_str().unwrap();
    assert!(
        reason.contains("\"dav\"") && reason.contains("media"),
        "{reason}"
    );

    // The API key, as a bearer and in its short form (Basic, where a rule takes it).
    let answer = explain(&s.app, with(request("GET", DAV, "/x"), "token", &s.key)).await;
    assert_decision(&answer, 200, "granted");
    assert_eq!(answer["credential"]["kind"], "api_key");
    assert_eq!(answer["credential"]["id"], s.key_id);
    let answer = explain(&s.app, with(request("GET", FILES, "/x"), "token", &s.short)).await;
    assert_decision(&answer, 200, "granted");
    assert_eq!(answer["headers"]["remote-auth-method"], "basic_api_key");
    assert_eq!(answer["rule"]["id"], "files");
}

#[actix_web::test]
async fn bad_credentials_are_401_and_say_why() {
    let s = setup().await;
    let app = &s.app;
    let at_dav = request("GET", DAV, "/x");

    let answer = explain(app, at_dav.clone()).await;
    assert_decision(&answer, 401, "missing_token");
    assert_eq!(answer["rule"]["id"], "dav");
    assert!(answer["credential"].is_null());
    let answer = explain(app, request("GET", FILES, "/")).await;
    assert_decision(&answer, 401, "missing_token");
    assert_reason_mentions(&answer, "Files");

    let answer = explain(app, with(at_dav.clone(), "token", "not-a-token")).await;
    assert_decision(&answer, 401, "malformed");
    assert!(answer["rule"].is_null());
    let token = app.access_token(&s.canister, &[]).await;
    let forged = format!("{}AAAA", &token[..token.len() - 4]);
    let answer = explain(app, with(at_dav.clone(), "token", &forged)).await;
    assert_decision(&answer, 401, "signature");

    // The short form as a bearer is no JWT; a short form naming no key is no request.
    let answer = explain(app, with(at_dav.clone(), "token", &s.key[..40])).await;
    assert_decision(&answer, 401, "malformed");
    let unknown = format!("ghk1_{}", "A".repeat(200));
    let field = refused_field(
        app.admin(Method::POST, "/explain"),
        &with(at_dav.clone(), "token", &unknown),
    )
    .await;
    assert_eq!(field, "token");

    // Revoked: the key itself, then every token of the application.
    app.admin(Method::DELETE, &format!("/api-keys/{}", s.key_id))
        .send()
        .await
        .unwrap();
    let answer = explain(app, with(at_dav.clone(), "token", &s.key)).await;
    assert_decision(&answer, 401, "revoked");
    assert_reason_mentions(&answer, "revoked");
    assert_eq!(answer["credential"]["id"], s.key_id);
    app.clock.advance(Duration::seconds(2));
    let response = app
        .admin(Method::POST, "/applications/canister/revoke-tokens")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer = explain(app, with(at_dav.clone(), "token", &token)).await;
    assert_decision(&answer, 401, "revoked");
    assert_reason_mentions(&answer, "revoke-tokens");

    // Expired: a token issued now, two hours later.
    let token = app.access_token(&s.canister, &[]).await;
    assert_decision(
        &explain(app, with(at_dav.clone(), "token", &token)).await,
        200,
        "granted",
    );
    app.clock.advance(Duration::hours(2));
    let answer = explain(app, with(at_dav.clone(), "token", &token)).await;
    assert_decision(&answer, 401, "expired");
    assert_reason_mentions(&answer, "expired at");
    assert!(answer["credential"]["expires_at"].is_string());

    // Inactive application.
    let response = app
        .admin(Method::PATCH, "/applications/backup")
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer = explain(app, with(at_dav, "client_id", "backup")).await;
    assert_decision(&answer, 401, "inactive_application");
}

#[actix_web::test]
async fn rules_refuse_with_403_naming_group_method_audience_or_no_rule() {
    let s = setup().await;
    let app = &s.app;
    let canister = app.access_token(&s.canister, &[]).await;
    let backup = app.access_token(&s.backup, &[]).await;

    let answer = explain(app, with(request("GET", DAV, "/x"), "token", &backup)).await;
    assert_decision(&answer, 403, "group_not_allowed");
    assert_eq!(answer["rule"]["id"], "dav");
    let reason = answer["reason"].as_str().unwrap();
    assert!(
        reason.contains("media") && reason.contains("backup"),
        "{reason}"
    );

    let answer = explain(
        app,
        with(request("GET", DAV, "/private/s"), "token", &canister),
    )
    .await;
    assert_decision(&answer, 403, "group_not_allowed");
    assert_eq!(answer["rule"]["id"], "dav-private");

    let answer = explain(app, with(request("PUT", DAV, "/x"), "token", &canister)).await;
    assert_decision(&answer, 403, "method_not_allowed");
    assert_reason_mentions(&answer, "PUT");

    // A WebDAV method without Depth acts on the whole tree, /private included.
    let answer = explain(app, with(request("PROPFIND", DAV, "/"), "token", &canister)).await;
    assert_decision(&answer, 403, "group_not_allowed");
    assert_eq!(answer["rule"]["id"], "dav-private");

    let answer = explain(app, with(request("GET", AUD, "/"), "token", &canister)).await;
    assert_decision(&answer, 403, "audience_not_allowed");
    assert_reason_mentions(&answer, AUDIENCE);
    let with_audience = app
        .access_token(&s.canister, &[("resource", AUDIENCE)])
        .await;
    let answer = explain(app, with(request("GET", AUD, "/"), "token", &with_audience)).await;
    assert_decision(&answer, 200, "granted");

    let answer = explain(
        app,
        with(
            request("GET", "elsewhere.example.com", "/"),
            "token",
            &canister,
        ),
    )
    .await;
    assert_decision(&answer, 403, "no_rule");
    assert!(answer["rule"].is_null());
    let answer = explain(app, with(request("GET", NOBODY, "/"), "token", &canister)).await;
    assert_decision(&answer, 403, "group_not_allowed");
    assert_reason_mentions(&answer, "no group");

    // Another reading of the path is decided too.
    let answer = explain(
        app,
        with(
            request("GET", DAV, "/x/%2e%2e/private/s"),
            "token",
            &canister,
        ),
    )
    .await;
    assert_eq!(answer["status"], 403, "{answer}");
    let answer = explain(app, with(request("GET", DAV, "/x\0"), "token", &canister)).await;
    assert_decision(&answer, 403, "path_control_bytes");
    assert!(answer["rule"].is_null());

    // Basic credentials where the rule takes none: a request without credentials.
    let answer = explain(app, with(request("GET", DAV, "/x"), "token", &s.short)).await;
    assert_decision(&answer, 401, "basic_not_accepted");
    assert_eq!(answer["credential"]["kind"], "api_key");
    assert_reason_mentions(&answer, "Basic");
}

#[actix_web::test]
async fn a_client_id_stands_for_a_fresh_token_of_the_application() {
    let s = setup().await;
    let app = &s.app;
    let answer = explain(
        app,
        with(request("GET", DAV, "/x"), "client_id", "canister"),
    )
    .await;
    assert_decision(&answer, 200, "granted");
    assert_eq!(answer["credential"]["kind"], "application");
    assert_eq!(answer["headers"]["remote-scope"], "webdav:read");
    let answer = explain(app, with(request("GET", DAV, "/x"), "client_id", "backup")).await;
    assert_decision(&answer, 403, "group_not_allowed");
    // The default audience is the issuer; the application may ask for the rule's.
    let answer = explain(app, with(request("GET", AUD, "/"), "client_id", "canister")).await;
    assert_decision(&answer, 403, "audience_not_allowed");
    assert_reason_mentions(&answer, "resource");
    let answer = explain(app, with(request("GET", DAV, "/x"), "client_id", "ghost")).await;
    assert_decision(&answer, 401, "unknown_application");
    assert_reason_mentions(&answer, "ghost");
}

/// A key limited to networks is decided for the `source` given, as
/// `/api/verify` decides it for the client address.
#[actix_web::test]
async fn a_key_limited_to_networks_is_decided_for_the_source_given() {
    let s = setup().await;
    let app = &s.app;
    let minted = json_of(
        app.admin(Method::POST, "/applications/canister/api-keys")
            .json(
                &json!({"name": "office", "source_cidrs": ["198.51.100.0/24"], "methods": ["GET"]}),
            ),
    )
    .await;
    let key = minted["api_key"].as_str().unwrap();
    let at_dav = with(request("GET", DAV, "/x"), "token", key);
    let answer = explain(app, at_dav.clone()).await;
    assert_decision(&answer, 403, "scope_source");
    assert_reason_mentions(&answer, "source");
    assert_eq!(
        answer["credential"]["key_scopes"]["source_cidrs"][0],
        "198.51.100.0/24"
    );
    for (source, status) in [("198.51.100.7", 200), ("203.0.113.9", 403)] {
        let answer = explain(app, with(at_dav.clone(), "source", source)).await;
        assert_eq!(answer["status"], status, "{answer}");
        let verified = app
            .verify("GET", DAV, "/x")
            .header("X-Forwarded-For", source)
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(verified.status().as_u16(), status);
    }
    let answer = explain(
        app,
        with(
            with(request("PROPFIND", DAV, "/x"), "token", key),
            "source",
            "198.51.100.7",
        ),
    )
    .await;
    assert_decision(&answer, 403, "scope_method");
}

#[actix_web::test]
async fn bad_requests_name_the_field_and_the_admin_token_is_required() {
    let s = setup().await;
    let app = &s.app;
    let endpoint = || app.admin(Method::POST, "/explain");
    let base = request("GET", DAV, "/");
    for field in ["method", "host", "path"] {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(field);
        assert_eq!(refused_field(endpoint(), &body).await, field);
        assert_eq!(
            refused_field(endpoint(), &with(base.clone(), field, "")).await,
            field
        );
    }
    assert_eq!(
        refused_field(endpoint(), &with(base.clone(), "method", "GET /")).await,
        "method"
    );
    let both = with(with(base.clone(), "token", "x"), "client_id", "canister");
    assert_eq!(refused_field(endpoint(), &both).await, "client_id");
    assert_eq!(
        refused_field(endpoint(), &with(base.clone(), "client_id", "Not Valid")).await,
        "client_id"
    );
    assert_eq!(
        refused_field(endpoint(), &with(base.clone(), "token", "")).await,
        "token"
    );
    assert_eq!(
        refused_field(endpoint(), &with(base.clone(), "source", "nowhere")).await,
        "source"
    );
    assert_eq!(
        refused_field(endpoint(), &json!({"method": 3, "host": DAV, "path": "/"})).await,
        "method"
    );
    let response = endpoint()
        .json(&with(base.clone(), "extra", "1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let response = endpoint().body("{}").send().await.unwrap();
    assert_eq!(response.status(), 415);
    let response = endpoint()
        .header("Content-Type", "application/json")
        .body("{\"method\":")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let huge = with(base.clone(), "path", &format!("/{}", "a".repeat(70 * 1024)));
    let response = endpoint().json(&huge).send().await.unwrap();
    assert_eq!(response.status(), 413);

    for token in [None, Some("wrong-admin-token-0123456789abcdef")] {
        let mut request = app.client.post(app.url("/admin/v1/explain")).json(&base);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
    }
    let response = app.admin(Method::GET, "/explain").send().await.unwrap();
    assert_eq!(response.status(), 405);
}

/// The identity headers of a `/api/verify` answer.
fn identity_of(response: &reqwest::Response) -> serde_json::Map<String, Value> {
    response
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("remote-"))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().into()))
        .collect()
}

/// The property that matters: for every case of a corpus of credentials,
/// methods, hosts and paths (the gate's hostile ones among them), explain
/// answers the status `/api/verify` answers on the same node, and on a
/// grant the same identity headers.
#[actix_web::test]
async fn explain_answers_what_verify_answers_on_a_corpus() {
    let s = setup().await;
    let app = &s.app;
    let canister = app.access_token(&s.canister, &[]).await;
    let backup = app.access_token(&s.backup, &[]).await;
    let forged = format!("{}AAAA", &canister[..canister.len() - 4]);
    // (what explain is given, what verify is sent as Authorization)
    let credentials: Vec<(Option<String>, Option<String>)> = vec![
        (None, None),
        (Some(canister.clone()), Some(format!("Bearer {canister}"))),
        (Some(backup.clone()), Some(format!("Bearer {backup}"))),
        (Some(s.key.clone()), Some(format!("Bearer {}", s.key))),
        (
            Some(s.short.clone()),
            Some(format!(
                "Basic {}",
                base64_of(&format!("canister:{}", s.short))
            )),
        ),
        (Some(forged.clone()), Some(format!("Bearer {forged}"))),
        (Some("garbage".into()), Some("Bearer garbage".into())),
    ];
    let mut paths: Vec<&str> = crate::gate::HOSTILE_PATHS.to_vec();
    paths.extend([
        "/",
        "/x",
        "/photos/",
        "/private",
        "/private/",
        "/PRIVATE/s",
        "/x?y=1",
        "/%zz",
        "/%ff",
    ]);
    let mut cases: Vec<(&str, &str, &str)> = Vec::new();
    for method in ["GET", "PROPFIND", "PUT", "DELETE"] {
        for path in &paths {
            cases.push((method, DAV, path));
        }
    }
    let mut hosts: Vec<&str> = crate::gate::HOSTILE_HOSTS.to_vec();
    hosts.extend([
        AUD,
        FILES,
        NOBODY,
        "FILES.example.com",
        "files.example.com:443",
        "",
        "a b",
        "[::1]",
        "127.0.0.1",
    ]);
    for host in &hosts {
        for path in ["/", "/x", "/private/s"] {
            cases.push(("GET", host, path));
        }
    }
    let mut compared = 0;
    let mut statuses = std::collections::BTreeMap::new();
    for (given, authorization) in &credentials {
        for &(method, host, path) in &cases {
            let mut verify = app
                .client
                .get(app.url("/api/verify"))
                .header("X-Forwarded-Method", method)
                .header("X-Forwarded-Proto", "https")
                .header("X-Forwarded-Uri", path);
            if !host.is_empty() {
                verify = verify.header("X-Forwarded-Host", host);
            }
            if let Some(authorization) = authorization {
                verify = verify.header("Authorization", authorization);
            }
            let verified = verify.send().await.unwrap();
            // An empty host is refused as a field; verify reads no Host then.
            let mut body = request(method, host, path);
            if host.is_empty() {
                body["host"] = "".into();
                let field = refused_field(app.admin(Method::POST, "/explain"), &body).await;
                assert_eq!(field, "host");
                continue;
            }
            if let Some(given) = given {
                body["token"] = given.as_str().into();
            }
            let explained = explain(app, body).await;
            let case = format!(
                "{method} {host:?} {path:?} with {:?}: {explained:#}",
                authorization.as_deref().map(|a| &a[..a.len().min(20)])
            );
            assert_eq!(explained["status"], verified.status().as_u16(), "{case}");
            if verified.status() == 200 {
                assert_eq!(
                    explained["headers"].as_object().unwrap(),
                    &identity_of(&verified),
                    "{case}"
                );
            } else if let Some(reason) = verified.headers().get("x-auth-reason") {
                assert_eq!(explained["auth_reason"], reason.to_str().unwrap(), "{case}");
            }
            *statuses.entry(verified.status().as_u16()).or_insert(0) += 1;
            compared += 1;
        }
    }
    eprintln!("explain matched /api/verify on {compared} cases: {statuses:?}");
    for status in [200, 401, 403] {
        assert!(
            statuses.get(&status).copied().unwrap_or(0) > 10,
            "{statuses:?}"
        );
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Explaining leaves nothing behind: the key's last use stays empty, many
/// refused explanations lock nobody out, the verify metrics do not move,
/// and the audit log does not record them. (Each against what the same
/// requests at `/api/verify` do, so that the test can fail.)
#[actix_web::test]
async fn explaining_leaves_no_trace() {
    let s = setup_with(3).await;
    let app = &s.app;
    let metrics_url = app.url("/metrics");
    let granted = r#"gatehouse_verify_decisions_total{outcome="granted",reason="ok"}"#;
    let before = metric(&app.client, metrics_url.clone(), granted)
        .await
        .unwrap_or(0.0);
    let audit_before = json_of(app.admin(Method::GET, "/audit")).await["entries"]
        .as_array()
        .unwrap()
        .len();
    for _ in 0..10 {
        let answer = explain(app, with(request("GET", DAV, "/x"), "token", &s.key)).await;
        assert_decision(&answer, 200, "granted");
        let answer = explain(
            app,
            with(request("GET", DAV, "/x"), "token", "forged.token.value"),
        )
        .await;
        assert_eq!(answer["status"], 401);
    }
    let keys = json_of(app.admin(Method::GET, "/applications/canister/api-keys")).await;
    assert!(keys["api_keys"][0]["last_used_at"].is_null(), "{keys}");
    assert_eq!(
        metric(&app.client, metrics_url.clone(), granted)
            .await
            .unwrap_or(0.0),
        before
    );
    let audit = json_of(app.admin(Method::GET, "/audit")).await;
    assert_eq!(
        audit["entries"].as_array().unwrap().len(),
        audit_before,
        "{audit}"
    );
    // Ten forged tokens explained, and the address is not locked out.
    let verify = |token: &str| {
        app.verify("GET", DAV, "/x")
            .bearer_auth(token.to_string())
            .send()
    };
    assert_eq!(verify(&s.key).await.unwrap().status(), 200);

    // The same at /api/verify: a last use, a metric, and after three
    // forged tokens a lockout.
    let keys = json_of(app.admin(Method::GET, "/applications/canister/api-keys")).await;
    assert!(keys["api_keys"][0]["last_used_at"].is_string(), "{keys}");
    assert_eq!(
        metric(&app.client, metrics_url, granted)
            .await
            .unwrap_or(0.0),
        before + 1.0
    );
    for _ in 0..3 {
        assert_eq!(verify("forged.token.value").await.unwrap().status(), 401);
    }
    assert_eq!(verify(&s.key).await.unwrap().status(), 429);
}

/// `gatehouse admin explain` prints what the API answers.
#[actix_web::test]
async fn the_cli_prints_the_same_decision() {
    let s = setup().await;
    let app = &s.app;
    let token = app.access_token(&s.backup, &[]).await;
    let token_file = app.dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    // `gatehouse admin explain` about GET on DAV at `path`, as the admin.
    let run = |path: &str, extra: &[&str]| {
        gatehouse_command(app.dir.path())
            .args(["admin", "--url", &app.address, "explain", "--method", "GET"])
            .args(["--host", DAV, "--path", path])
            .args(extra)
            .env("GATEHOUSE_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap()
    };
    let cli = |extra: &[&str]| {
        let output = run("/x", extra);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str::<Value>(&stdout).unwrap()
    };
    let printed = cli(&["--token-file", token_file.to_str().unwrap()]);
    let answered = explain(app, with(request("GET", DAV, "/x"), "token", &token)).await;
    assert_decision(&printed, 403, "group_not_allowed");
    assert_eq!(printed, answered);
    let printed = cli(&["--client-id", "canister"]);
    assert_decision(&printed, 200, "granted");
    assert_eq!(
        printed,
        explain(
            app,
            with(request("GET", DAV, "/x"), "client_id", "canister")
        )
        .await
    );
    let printed = cli(&[]);
    assert_decision(&printed, 401, "missing_token");

    // Both at once is refused before any request.
    let output = run("/", &["--client-id", "canister", "--token-file", "-"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}
