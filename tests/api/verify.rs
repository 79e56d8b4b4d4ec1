//! `/api/verify`: every outcome, over HTTP.

use chrono::Duration;
use reqwest::StatusCode;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

use crate::helpers::{
    Answer, TestApp, TestClient, call, call_text, forge_jwt, jwt_parts, refused_field, spawn_app,
    spawn_app_with,
};

const DAV: &str = "dav.example.com";

/// A node with a WebDAV rule for group `media`, Canister in `media`, and
/// Intruder in `guests` only.
async fn forward_auth_app(app: TestApp) -> (TestApp, TestClient, TestClient) {
    let canister = app
        .create_application(json!({
            "client_id": "canister", "name": "Canister", "groups": ["media", "backup"],
            "scopes": ["webdav:read", "webdav:write"], "audiences": ["webdav"],
        }))
        .await;
    let intruder = app
        .create_application(json!({"client_id": "intruder", "groups": ["guests"]}))
        .await;
    app.create_resource(json!({"id": "dav", "host": DAV, "allowed_groups": ["media"]}))
        .await;
    (app, canister, intruder)
}

async fn setup() -> (TestApp, TestClient, TestClient) {
    forward_auth_app(spawn_app().await).await
}

fn expect_401(response: Answer, why: &str) {
    assert_eq!(response.status, 401, "{why}");
    let challenge = response.header("www-authenticate");
    assert!(
        challenge
            .starts_with(r#"Bearer realm="gatehouse", error="invalid_token", error_description=""#),
        "{why}: {challenge}"
    );
    let body = &response.body;
    assert_eq!(body["error"], "invalid_token", "{why}");
    assert!(body["error_description"].is_string());
}

/// Claims as the node would sign them; `generation` is the application's
/// (`gen`, read from a token it issued).
fn claims_for(app: &TestApp, client_id: &str, now: i64, generation: &Value) -> Value {
    json!({
        "iss": app.address, "sub": client_id, "client_id": client_id, "aud": app.address,
        "iat": now, "exp": now + 600, "jti": "forged", "groups": ["media"], "gen": generation,
    })
}

#[actix_web::test]
async fn valid_token_gets_the_identity_headers() {
    let (app, canister, _) = setup().await;
    let token = app
        .access_token(&canister, &[("scope", "webdav:read")])
        .await;
    let response = call(app.verify("PROPFIND", DAV, "/photos/").bearer_auth(&token)).await;
    assert_eq!(response.status, 200);
    let h = response.headers;
    assert_eq!(h["remote-user"], "canister");
    assert_eq!(h["remote-name"], "Canister");
    assert_eq!(h["remote-groups"], "backup,media");
    assert_eq!(h["remote-client-id"], "canister");
    assert_eq!(h["remote-auth-method"], "client_credentials");
    assert_eq!(h["remote-scope"], "webdav:read");
    // These six and no other identity header (no code sets Remote-Email
    // for a token: only an upstream session's answer carries one).
    let mut identity: Vec<&str> = h
        .keys()
        .map(|name| name.as_str())
        .filter(|name| name.starts_with("remote-"))
        .collect();
    identity.sort_unstable();
    assert_eq!(
        identity,
        [
            "remote-auth-method",
            "remote-client-id",
            "remote-groups",
            "remote-name",
            "remote-scope",
            "remote-user"
        ]
    );

    // The scheme is case-insensitive, and any method of /api/verify works.
    let response = call(
        app.client
            .post(app.url("/api/verify"))
            .header("X-Forwarded-Host", DAV)
            .header("Authorization", format!("bEaReR {token}")),
    )
    .await;
    assert_eq!(response.status, 200);
}

#[actix_web::test]
async fn scope_header_is_omitted_when_empty_and_no_groups_means_no_access() {
    let (app, _, _) = setup().await;
    let plain = app
        .create_application(json!({"client_id": "plain", "groups": ["media"]}))
        .await;
    let token = app.access_token(&plain, &[]).await;
    let response = call(app.verify("GET", DAV, "/").bearer_auth(&token)).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["remote-groups"], "media");
    assert!(response.headers.get("remote-scope").is_none());

    let loner = app.create_application(json!({"client_id": "loner"})).await;
    let token = app.access_token(&loner, &[]).await;
    let response = call(app.verify("GET", DAV, "/").bearer_auth(&token)).await;
    assert_eq!(response.status, 403);
}

#[actix_web::test]
async fn missing_or_garbage_tokens_are_401() {
    let (app, _, _) = setup().await;
    let response = call(app.verify("GET", DAV, "/")).await;
    assert_eq!(response.status, 401);
    assert_eq!(
        response.headers["www-authenticate"],
        r#"Bearer realm="gatehouse""#
    );
    let body = response.body;
    assert!(body["error"].is_string() && body["error_description"].is_string());

    for garbage in [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJFZERTQSJ9.e30.AAAA",
        "...",
        "Bearer",
    ] {
        let response = call(app.verify("GET", DAV, "/").bearer_auth(garbage)).await;
        expect_401(response, garbage);
    }
    let response = call(
        app.verify("GET", DAV, "/")
            .header("Authorization", "Bearer "),
    )
    .await;
    assert_eq!(response.status, 401);
}

#[actix_web::test]
async fn tampered_and_forged_tokens_are_401() {
    let (app, canister, _) = setup().await;
    let token = app.access_token(&canister, &[]).await;
    let (header, claims) = jwt_parts(&token);
    let parts: Vec<&str> = token.split('.').collect();
    let b64 = |v: &Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(v).unwrap(),
        )
    };

    // Tampered signature.
    let mut signature = parts[2].to_string();
    signature.replace_range(
        ..4,
        if signature.starts_with("AAAA") {
            "BBBB"
        } else {
            "AAAA"
        },
    );
    let tampered_signature = format!("{}.{}.{signature}", parts[0], parts[1]);
    // Tampered payload: a group added, old signature kept.
    let mut richer = claims.clone();
    richer["groups"] = json!(["media", "admins"]);
    let tampered_payload = format!("{}.{}.{}", parts[0], b64(&richer), parts[2]);
    // alg: none, with and without a signature.
    let mut none = header.clone();
    none["alg"] = json!("none");
    let alg_none = format!("{}.{}.", b64(&none), parts[1]);
    // HS256 keyed with the public key's bytes (algorithm confusion).
    let jwks = app.get("/.well-known/jwks.json").await.body;
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let mut hs = header.clone();
    hs["alg"] = json!("HS256");
    let hs256 = forge_jwt(&hs, &claims, |input| {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, x.as_bytes());
        ring::hmac::sign(&key, input).as_ref().to_vec()
    });
    // A foreign Ed25519 key claiming the node's kid.
    let foreign = Ed25519KeyPair::from_pkcs8(
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    let foreign_signed = forge_jwt(&header, &claims, |input| {
        foreign.sign(input).as_ref().to_vec()
    });
    // A kid nobody knows.
    let mut unknown_kid = header.clone();
    unknown_kid["kid"] = json!(foreign.public_key().as_ref().len().to_string());
    let unknown = forge_jwt(&unknown_kid, &claims, |input| {
        foreign.sign(input).as_ref().to_vec()
    });

    for (name, forged) in [
        ("tampered signature", tampered_signature),
        ("tampered payload", tampered_payload),
        ("alg none", alg_none),
        ("HS256 with the public key", hs256),
        ("foreign key, known kid", foreign_signed),
        ("unknown kid", unknown),
    ] {
        let response = call(app.verify("GET", DAV, "/").bearer_auth(&forged)).await;
        expect_401(response, name);
    }
    // The genuine token still works.
    let response = call(app.verify("GET", DAV, "/").bearer_auth(&token)).await;
    assert_eq!(response.status, 200);
}

#[actix_web::test]
async fn tokens_signed_by_the_node_but_wrong_in_content_are_401() {
    let (app, canister, _) = setup().await;
    let generation = jwt_parts(&app.access_token(&canister, &[]).await).1["gen"].clone();
    assert!(
        generation.is_u64(),
        "tokens carry their application's generation"
    );
    let (kid, key) = app.signing_key();
    let now = app.clock.now_ts();
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
    let sign = |header: &Value, claims: &Value| {
        forge_jwt(header, claims, |input| key.sign(input).as_ref().to_vec())
    };

    // The control: a hand-made token the node accepts.
    let good = sign(&header, &claims_for(&app, "canister", now, &generation));
    assert_eq!(
        call_text(app.verify("GET", DAV, "/").bearer_auth(&good))
            .await
            .status,
        200
    );

    let mut jwt_typ = header.clone();
    jwt_typ["typ"] = json!("JWT");
    let mut no_typ = header.clone();
    no_typ.as_object_mut().unwrap().remove("typ");
    let mut wrong_iss = claims_for(&app, "canister", now, &generation);
    wrong_iss["iss"] = json!("https://evil.example.com");
    let mut no_exp = claims_for(&app, "canister", now, &generation);
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut future = claims_for(&app, "canister", now, &generation);
    future["nbf"] = json!(now + 120);
    let ghost = claims_for(&app, "ghost", now, &generation);

    for (name, token) in [
        (
            "typ JWT",
            sign(&jwt_typ, &claims_for(&app, "canister", now, &generation)),
        ),
        (
            "no typ",
            sign(&no_typ, &claims_for(&app, "canister", now, &generation)),
        ),
        ("wrong iss", sign(&header, &wrong_iss)),
        ("no exp", sign(&header, &no_exp)),
        ("nbf in the future", sign(&header, &future)),
        ("unknown application", sign(&header, &ghost)),
    ] {
        let response = call(app.verify("GET", DAV, "/").bearer_auth(&token)).await;
        expect_401(response, name);
    }
}

#[actix_web::test]
async fn expiry_is_checked_against_the_clock_with_30s_leeway() {
    let (app, canister, _) = setup().await;
    let token = app.access_token(&canister, &[]).await; // ttl 3600
    let check = async || call(app.verify("GET", DAV, "/").bearer_auth(&token)).await;
    assert_eq!(check().await.status, 200);
    app.clock.advance(Duration::seconds(3600 + 30));
    assert_eq!(check().await.status, 200, "within the leeway");
    app.clock.advance(Duration::seconds(2));
    expect_401(check().await, "expired");
}

#[actix_web::test]
async fn rules_decide_403s() {
    let (app, canister, intruder) = setup().await;
    app.create_resource(json!({
        "host": "ro.example.com", "allowed_groups": ["media"], "methods": ["GET", "HEAD", "OPTIONS", "PROPFIND"],
    }))
    .await;
    app.create_resource(
        json!({"host": "aud.example.com", "allowed_groups": ["media"], "audience": "webdav"}),
    )
    .await;
    app.create_resource(json!({"host": "nobody.example.com", "allowed_groups": []}))
        .await;
    let token = app.access_token(&canister, &[]).await;
    let intruder_token = app.access_token(&intruder, &[]).await;
    let dav_token = app.access_token(&canister, &[("audience", "webdav")]).await;

    let check = async |host: &'static str, method: &'static str, token: &str| {
        call(
            app.verify(method, host, "/file.txt")
                .bearer_auth(token.to_string()),
        )
        .await
    };
    let status = async |host: &'static str, method: &'static str, token: &str| {
        check(host, method, token).await.status.as_u16()
    };
    // Group not allowed.
    let response = check(DAV, "GET", &intruder_token).await;
    assert_eq!(response.status, 403);
    let challenge = response.header("www-authenticate");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(response.headers.contains_key("x-auth-reason"));
    let body = response.body;
    assert_eq!(body["error"], "insufficient_scope");
    // No rule for the host.
    let response = check("unknown.example.com", "GET", &token).await;
    assert_eq!(response.status, 403);
    assert_eq!(
        response.headers["x-auth-reason"],
        "No authentication rule configured for this domain"
    );
    // Method restriction.
    assert_eq!(status("ro.example.com", "PROPFIND", &token).await, 200);
    let response = check("ro.example.com", "PUT", &token).await;
    assert_eq!(response.status, 403);
    let challenge = response.header("www-authenticate");
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    // Audience.
    assert_eq!(status("aud.example.com", "GET", &token).await, 403);
    assert_eq!(status("aud.example.com", "GET", &dav_token).await, 200);
    // An empty allowed_groups denies everyone.
    assert_eq!(status("nobody.example.com", "GET", &token).await, 403);
}

#[actix_web::test]
async fn hosts_match_case_insensitively_without_port_and_wildcards_take_one_label() {
    let (app, canister, _) = setup().await;
    app.create_resource(json!({"host": "*.apps.example.com", "allowed_groups": ["media"]}))
        .await;
    let token = app.access_token(&canister, &[]).await;
    let status = |host: &'static str| {
        let request = app.verify("GET", host, "/").bearer_auth(token.clone());
        async move { call_text(request).await.status }
    };
    assert_eq!(status("DAV.Example.COM").await, StatusCode::OK);
    assert_eq!(status("dav.example.com:8443").await, StatusCode::OK);
    assert_eq!(status("dav.example.com.").await, StatusCode::OK);
    assert_eq!(status("grafana.apps.example.com").await, StatusCode::OK);
    assert_eq!(status("a.b.apps.example.com").await, StatusCode::FORBIDDEN);
    assert_eq!(status("apps.example.com").await, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn most_specific_rule_wins_and_paths_are_normalised() {
    let (app, canister, _) = setup().await;
    app.create_resource(
        json!({"host": DAV, "path_prefix": "/private", "allowed_groups": ["admins"]}),
    )
    .await;
    let token = app.access_token(&canister, &[]).await;
    let status = |uri: &'static str| {
        let request = app.verify("GET", DAV, uri).bearer_auth(token.clone());
        async move { call_text(request).await.status }
    };
    assert_eq!(status("/public/x").await, StatusCode::OK);
    assert_eq!(status("/privateer").await, StatusCode::OK);
    assert_eq!(status("/private/x").await, StatusCode::FORBIDDEN);
    assert_eq!(status("/public/../private/x").await, StatusCode::FORBIDDEN);
    assert_eq!(
        status("/public/%2e%2e/private/x").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status("//private/x?y=1").await, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn nginx_header_family_is_understood() {
    let (app, canister, _) = setup().await;
    app.create_resource(
        json!({"host": "ro.example.com", "allowed_groups": ["media"], "methods": ["GET"]}),
    )
    .await;
    let token = app.access_token(&canister, &[]).await;
    let nginx = async |url: &str, method: &str| {
        call(
            app.client
                .get(app.url("/api/verify"))
                .header("X-Original-URL", url)
                .header("X-Original-Method", method)
                .bearer_auth(&token),
        )
        .await
    };
    assert_eq!(
        nginx("https://dav.example.com/a/b?c=d", "PUT").await.status,
        200
    );
    assert_eq!(nginx("https://ro.example.com/a", "GET").await.status, 200);
    assert_eq!(nginx("https://ro.example.com/a", "PUT").await.status, 403);
    assert_eq!(nginx("https://other.example.com/", "GET").await.status, 403);
}

#[actix_web::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let app = spawn_app_with(|s| s.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let (app, canister, _) = forward_auth_app(app).await;
    let token = app.access_token(&canister, &[]).await;
    let response = call(app.verify("GET", DAV, "/").bearer_auth(&token)).await;
    assert_eq!(
        response.status, 403,
        "X-Forwarded-Host must not be believed"
    );
    assert_eq!(
        response.headers["x-auth-reason"],
        "No authentication rule configured for this domain"
    );
    // Only the request's own Host counts.
    let response = call(
        app.client
            .get(app.url("/api/verify"))
            .header("Host", DAV)
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(response.status, 200);
}

#[actix_web::test]
async fn hostile_headers_get_4xx_and_the_server_keeps_answering() {
    let (app, canister, _) = setup().await;
    let long = format!(
        "{}.{}.{}",
        "a".repeat(2700),
        "b".repeat(2700),
        "c".repeat(2800)
    );
    let response = call(app.verify("GET", DAV, "/").bearer_auth(&long)).await;
    expect_401(response, "8 KB token");
    let response = call(app.verify("GET", DAV, "/").header(
        "Authorization",
        reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe\xc3").unwrap(),
    ))
    .await;
    assert_eq!(response.status, 401);
    let token = app.access_token(&canister, &[]).await;
    let response = call(
        app.client
            .get(app.url("/api/verify"))
            .header(
                "X-Forwarded-Host",
                reqwest::header::HeaderValue::from_bytes(b"dav.\xffexample.com").unwrap(),
            )
            .header(
                "X-Forwarded-Uri",
                reqwest::header::HeaderValue::from_bytes(b"/\xc3\x28").unwrap(),
            )
            .bearer_auth(&token),
    )
    .await;
    assert!(response.status.is_client_error(), "{}", response.status);
    let response = call(app.verify("GET", DAV, "/").bearer_auth(&token)).await;
    assert_eq!(response.status, 200);
}

#[actix_web::test]
async fn repeated_forged_tokens_from_one_address_get_429() {
    let app = spawn_app_with(|s| s.auth_failure_limit = 3).await;
    let (app, canister, _) = forward_auth_app(app).await;
    let token = app.access_token(&canister, &[]).await;
    let from = async |addr: &'static str, token: &str| {
        call(
            app.verify("GET", DAV, "/")
                .header("X-Forwarded-For", addr)
                .bearer_auth(token.to_string()),
        )
        .await
    };
    for _ in 0..3 {
        assert_eq!(from("198.51.100.7", "forged.token.value").await.status, 401);
    }
    let response = from("198.51.100.7", &token).await;
    assert_eq!(response.status, 429);
    assert!(response.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(from("203.0.113.5", &token).await.status, 200);
    app.clock.advance(Duration::seconds(61));
    assert_eq!(from("198.51.100.7", &token).await.status, 200);
}

#[actix_web::test]
async fn header_names_can_be_changed_or_dropped_per_rule() {
    let (app, canister, _) = setup().await;
    app.create_resource(json!({
        "host": "grafana.example.com", "allowed_groups": ["media"],
        "headers": {"Remote-User": "X-WEBAUTH-USER", "Remote-Groups": "", "remote-name": "X-Name"},
    }))
    .await;
    let token = app.access_token(&canister, &[]).await;
    let response = call(
        app.verify("GET", "grafana.example.com", "/")
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(response.status, 200);
    let h = response.headers;
    assert_eq!(h["x-webauth-user"], "canister");
    assert_eq!(h["x-name"], "Canister");
    assert!(h.get("remote-user").is_none());
    assert!(h.get("remote-groups").is_none());
    assert_eq!(h["remote-client-id"], "canister");
}

#[actix_web::test]
async fn deactivated_application_tokens_are_401_at_once() {
    let (app, canister, _) = setup().await;
    let token = app.access_token(&canister, &[]).await;
    assert_eq!(
        call_text(app.verify("GET", DAV, "/").bearer_auth(&token))
            .await
            .status,
        200
    );
    app.admin_api()
        .update_application("canister", &json!({"active": false}))
        .await;
    expect_401(
        call(app.verify("GET", DAV, "/").bearer_auth(&token)).await,
        "inactive",
    );
}

#[actix_web::test]
async fn resource_admin_api_validates_and_round_trips() {
    let (app, _, _) = setup().await;
    let bad = [
        (json!({"allowed_groups": ["media"]}), "host"),
        (json!({"host": "dav.example.com:443"}), "host"),
        (json!({"host": "*dav.example.com"}), "host"),
        (
            json!({"host": "x.example.com", "path_prefix": "relative"}),
            "path_prefix",
        ),
        (
            json!({"host": "x.example.com", "methods": ["GET", "NOT A METHOD"]}),
            "methods[1]",
        ),
        (
            json!({"host": "x.example.com", "allowed_groups": ["a,b"]}),
            "allowed_groups[0]",
        ),
        (
            json!({"host": "x.example.com", "headers": {"Remote-Email": "x"}}),
            "headers.Remote-Email",
        ),
        (
            json!({"host": "x.example.com", "headers": {"Remote-User": "bad header"}}),
            "headers.Remote-User",
        ),
        (json!({"host": "x.example.com", "audience": ""}), "audience"),
    ];
    for (body, field) in bad {
        let create = app.admin(reqwest::Method::POST, "/resources");
        assert_eq!(refused_field(create, &body).await, field, "{body}");
    }
    let response = app
        .admin_api()
        .create_resource(&json!({"id": "dav", "host": "other.example.com"}))
        .await;
    assert_eq!(response.status, 409);

    let created = app
        .create_resource(json!({"host": "Files.Example.com", "path_prefix": "/dav", "methods": ["get"], "allowed_groups": ["Media"]}))
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["host"], "files.example.com");
    assert_eq!(created["methods"], json!(["GET"]));
    assert_eq!(created["allowed_groups"], json!(["media"]));
    let patched = app
        .admin_api()
        .patch(
            &format!("/resources/{id}"),
            &json!({"methods": null, "path_prefix": null}),
        )
        .await
        .body;
    assert!(
        patched.get("methods").is_none() && patched.get("path_prefix").is_none(),
        "{patched}"
    );
    let listed = app.admin_api().get("/resources").await.body;
    assert_eq!(listed["resources"].as_array().unwrap().len(), 2);
    let response = app.admin_api().delete(&format!("/resources/{id}")).await;
    assert_eq!(response.status, 204);
    let response = app.admin_api().get(&format!("/resources/{id}")).await;
    assert_eq!(response.status, 404);
}
