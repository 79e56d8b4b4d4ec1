//! `POST /oauth/token`: the client credentials grant (RFC 6749 §4.4).

use chrono::Duration;
use serde_json::{Value, json};

use crate::helpers::{
    Answer, TestApp, TestClient, call, jwt_parts, signature_valid, spawn_app, spawn_app_with,
};

async fn app_with_canister() -> (TestApp, TestClient) {
    let app = spawn_app().await;
    let client = app
        .create_application(json!({
            "client_id": "canister",
            "name": "Canister media organiser",
            "groups": ["media", "Readers"],
            "scopes": ["webdav:read", "webdav:write"],
            "access_token_ttl": 600,
        }))
        .await;
    (app, client)
}

fn assert_no_store(response: &Answer) {
    assert_eq!(response.headers["cache-control"], "no-store");
    assert_eq!(response.headers["pragma"], "no-cache");
}

fn assert_oauth_error(response: Answer, status: u16, error: &str) -> Value {
    assert_eq!(response.status, status);
    assert_no_store(&response);
    assert!(
        response
            .header("content-type")
            .starts_with("application/json")
    );
    let body = response.body;
    assert_eq!(body["error"], error, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    body
}

/// `POST /oauth/token` as `who` from `addr`. The test talks from
/// loopback, a trusted proxy, so X-Forwarded-For names the client address.
async fn token_from(app: &TestApp, addr: &str, who: &TestClient) -> Answer {
    let request = app.client.post(app.url("/oauth/token"));
    let request = request.header("X-Forwarded-For", addr);
    let request = request.basic_auth(&who.client_id, Some(&who.secret));
    call(request.form(&[("grant_type", "client_credentials")])).await
}

#[actix_web::test]
async fn basic_authentication_issues_an_rfc9068_token() {
    let (app, client) = app_with_canister().await;
    let response = app
        .token(&client, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status, 200);
    assert_no_store(&response);
    let body = response.body;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "webdav:read webdav:write");

    let token = body["access_token"].as_str().unwrap();
    let (header, claims) = jwt_parts(token);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["iss"], app.address);
    assert_eq!(claims["sub"], "canister");
    assert_eq!(claims["client_id"], "canister");
    assert_eq!(claims["aud"], app.address);
    assert_eq!(claims["groups"], json!(["media", "readers"]));
    assert_eq!(claims["scope"], "webdav:read webdav:write");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));

    let jwks = app.get("/.well-known/jwks.json").await.body;
    assert!(
        signature_valid(token, &jwks),
        "signature must verify against the JWKS"
    );
    let mut tampered = token.to_string();
    tampered.replace_range(tampered.len() - 5.., "AAAAA");
    assert!(!signature_valid(&tampered, &jwks));
}

#[actix_web::test]
async fn body_authentication_issues_a_token() {
    let (app, client) = app_with_canister().await;
    let response = call(app.client.post(app.url("/oauth/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", client.client_id.as_str()),
        ("client_secret", client.secret.as_str()),
        ("scope", "webdav:read"),
    ]))
    .await;
    assert_eq!(response.status, 200);
    let body = response.body;
    assert_eq!(body["scope"], "webdav:read");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["scope"], "webdav:read");
}

#[actix_web::test]
async fn basic_credentials_are_form_urlencoded_inside() {
    let (app, client) = app_with_canister().await;
    // RFC 6749 §2.3.1: "can%69ster" decodes to "canister".
    let response = call(
        app.client
            .post(app.url("/oauth/token"))
            .basic_auth("can%69ster", Some(&client.secret))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(response.status, 200);
}

#[actix_web::test]
async fn scope_and_audience_shape_the_token() {
    let app = spawn_app().await;
    let no_scopes = app
        .create_application(json!({
            "client_id": "plain", "audiences": ["https://dav.example.com/", "webdav"],
        }))
        .await;
    let response = app
        .token(&no_scopes, &[("grant_type", "client_credentials")])
        .await;
    let body = response.body;
    assert!(
        body.get("scope").is_none(),
        "empty scope is omitted: {body}"
    );
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert!(claims.get("scope").is_none());
    assert_eq!(claims["groups"], json!([]));

    for (field, audience) in [
        ("resource", "https://dav.example.com/"),
        ("audience", "webdav"),
    ] {
        let form = [("grant_type", "client_credentials"), (field, audience)];
        let body = app.token(&no_scopes, &form).await.body;
        let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
        assert_eq!(claims["aud"], audience, "{field}");
    }

    let response = app
        .token(
            &no_scopes,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "not-absolute"),
            ],
        )
        .await;
    assert_oauth_error(response, 400, "invalid_target");
}

/// RFC 8707: an application gets only the audiences it is allowed; any
/// other, and more than the cap, is `invalid_target`. The issuer itself
/// is always fine.
#[actix_web::test]
async fn audiences_are_only_those_the_application_may_have() {
    let app = spawn_app().await;
    let payroll = "https://payroll.example.com";
    let plain = app.create_application(json!({"client_id": "plain"})).await;
    let allowed = app
        .create_application(json!({"client_id": "dav", "audiences": [payroll]}))
        .await;
    let ask = |client: &TestClient, field: &'static str, value: String| {
        let form = vec![
            ("grant_type", "client_credentials".to_string()),
            (field, value),
        ];
        let request = app
            .client
            .post(app.url("/oauth/token"))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(&form);
        async move { call(request).await }
    };
    for field in ["resource", "audience"] {
        let response = ask(&plain, field, payroll.to_string()).await;
        assert_oauth_error(response, 400, "invalid_target");
        let response = ask(&allowed, field, payroll.to_string()).await;
        assert_eq!(response.status, 200, "{field}");
        let body = response.body;
        assert_eq!(
            jwt_parts(body["access_token"].as_str().unwrap()).1["aud"],
            payroll
        );
    }
    let issuer = app.address.clone();
    assert_eq!(ask(&plain, "audience", issuer).await.status, 200);
    // One allowed and one not: refused whole.
    let response = ask(
        &allowed,
        "audience",
        format!("{payroll} https://other.example.com"),
    )
    .await;
    assert_oauth_error(response, 400, "invalid_target");

    // The cap on how many one token carries, and on the admin list.
    let many: Vec<String> = (0..16).map(|i| format!("aud-{i}")).collect();
    let wide = app
        .create_application(json!({"client_id": "wide", "audiences": many}))
        .await;
    let response = ask(&wide, "audience", many[..9].join(" ")).await;
    assert_oauth_error(response, 400, "invalid_target");
    assert_eq!(
        ask(&wide, "audience", many[..8].join(" ")).await.status,
        200
    );
    let too_many: Vec<String> = (0..17).map(|i| format!("a{i}")).collect();
    let response = app
        .admin_api()
        .create_application(&json!({"client_id": "wider", "audiences": too_many}))
        .await;
    assert_eq!(response.status, 400);
    let body = response.body;
    assert_eq!(body["field"], "audiences");

    // Changed by PATCH, and shown.
    let response = app
        .admin_api()
        .update_application("plain", &json!({"audiences": [payroll]}))
        .await;
    let body = response.body;
    assert_eq!(body["audiences"], json!([payroll]));
    assert_eq!(
        ask(&plain, "resource", payroll.to_string()).await.status,
        200
    );
}

#[actix_web::test]
async fn failed_authentication_is_indistinguishable() {
    let (app, client) = app_with_canister().await;
    let inactive = app
        .create_application(json!({"client_id": "sleeper", "active": false}))
        .await;
    let form = [("grant_type", "client_credentials")];

    let wrong_secret = TestClient {
        client_id: client.client_id.clone(),
        secret: "gcs_wrong".into(),
    };
    let unknown = TestClient {
        client_id: "nobody".into(),
        secret: client.secret.clone(),
    };
    let mut bodies = Vec::new();
    for who in [&wrong_secret, &unknown, &inactive] {
        let response = app.token(who, &form).await;
        assert_eq!(
            response.headers["www-authenticate"],
            r#"Basic realm="gatehouse""#
        );
        bodies.push(assert_oauth_error(response, 401, "invalid_client"));
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[1], bodies[2]);

    // client_secret_post failures carry no Basic challenge.
    let response = call(app.client.post(app.url("/oauth/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "canister"),
        ("client_secret", "nope"),
    ]))
    .await;
    assert!(response.headers.get("www-authenticate").is_none());
    assert_oauth_error(response, 401, "invalid_client");
}

/// Requests `/oauth/token` refuses, each with its status and error code;
/// a malformed Basic header is a failed authentication (a Basic challenge).
#[actix_web::test]
async fn malformed_requests_get_the_specified_errors() {
    let (app, client) = app_with_canister().await;
    let token_url = app.url("/oauth/token");
    let post = || app.client.post(&token_url);
    let basic = || post().basic_auth(&client.client_id, Some(&client.secret));
    let grant = [("grant_type", "client_credentials")];
    let form = "application/x-www-form-urlencoded";
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(64 * 1024)
    );
    let stream = futures_util::stream::iter(
        big.clone()
            .into_bytes()
            .chunks(4096)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let token = |fields: &[(&str, &str)]| basic().form(fields);
    let challenged = true;
    let mut cases = vec![
        (
            "both authentication methods at once",
            basic().form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "canister"),
                ("client_secret", client.secret.as_str()),
            ]),
            400,
            "invalid_request",
            !challenged,
        ),
        (
            "no grant type",
            token(&[("scope", "webdav:read")]),
            400,
            "invalid_request",
            !challenged,
        ),
        (
            "an unsupported grant type",
            token(&[("grant_type", "password")]),
            400,
            "unsupported_grant_type",
            !challenged,
        ),
        (
            "a scope the application may not have",
            token(&[grant[0], ("scope", "webdav:read admin")]),
            400,
            "invalid_scope",
            !challenged,
        ),
        (
            "a scope that is not a scope token",
            token(&[grant[0], ("scope", "bad\"scope")]),
            400,
            "invalid_scope",
            !challenged,
        ),
        (
            "a repeated parameter (RFC 6749 §3.2)",
            token(&[grant[0], grant[0]]),
            400,
            "invalid_request",
            !challenged,
        ),
        (
            "no credentials at all",
            post().form(&grant),
            401,
            "invalid_client",
            !challenged,
        ),
        (
            "JSON, not a form",
            basic().json(&json!({"grant_type": "client_credentials"})),
            400,
            "invalid_request",
            !challenged,
        ),
        (
            "a form without a content type",
            basic().body("grant_type=client_credentials"),
            400,
            "invalid_request",
            !challenged,
        ),
        (
            "invalid percent-encoding",
            basic()
                .header("content-type", form)
                .body(b"grant_type=client_credentials&scope=%FF%FE".to_vec()),
            400,
            "invalid_request",
            !challenged,
        ),
        (
            "an oversized body, declared",
            basic().header("content-type", form).body(big),
            413,
            "payload_too_large",
            !challenged,
        ),
        (
            "an oversized body, streamed",
            basic()
                .header("content-type", form)
                .body(reqwest::Body::wrap_stream(stream)),
            413,
            "payload_too_large",
            !challenged,
        ),
        (
            "the wrong method",
            app.client.get(&token_url),
            405,
            "method_not_allowed",
            !challenged,
        ),
    ];
    for header in [
        "Basic !!!notbase64",
        "Basic",
        "Basic Y2FuaXN0ZXI=",
        "Bearer abc",
        "Basic OnNlY3JldA==",
    ] {
        let request = post().header("Authorization", header).form(&grant);
        cases.push((header, request, 401, "invalid_client", challenged));
    }
    for (what, request, status, error, challenged) in cases {
        let response = call(request).await;
        if challenged {
            assert_eq!(
                response.headers["www-authenticate"], r#"Basic realm="gatehouse""#,
                "{what}"
            );
        }
        assert_eq!(response.status, status, "{what}: {}", response.text);
        assert_oauth_error(response, status, error);
    }

    // The server is unharmed and still issues tokens.
    assert_eq!(app.token(&client, &grant).await.status, 200);
}

/// client_ids are public: failures for one, from anywhere, never make the
/// right secret fail. They slow down and then refuse wrong secrets only.
#[actix_web::test]
async fn failures_for_a_client_never_lock_out_its_rightful_holder() {
    let app = spawn_app_with(|s| {
        s.auth_failure_limit = 4;
        s.auth_failure_window = 60;
    })
    .await;
    let client = app
        .create_application(json!({"client_id": "canister"}))
        .await;
    let wrong = TestClient {
        client_id: "canister".into(),
        secret: "gcs_guess".into(),
    };
    let from = async |addr: String, who: &TestClient| token_from(&app, &addr, who).await;
    // 40 wrong secrets from one address: it is refused, with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(from("198.51.100.7".into(), &wrong).await.status.as_u16());
    }
    assert_eq!(&statuses[..4], [401; 4]);
    assert!(statuses[4..].iter().all(|&s| s == 429), "{statuses:?}");
    let response = from("198.51.100.7".into(), &client).await;
    let retry_after: u64 = response.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_oauth_error(response, 429, "too_many_requests");
    // The real client, elsewhere, gets its token.
    assert_eq!(from("203.0.113.5".into(), &client).await.status, 200);

    // Wrong secrets spread over many addresses lock the client_id for
    // wrong secrets, never for the right one.
    for n in 0..8 {
        let status = from(format!("192.0.2.{n}"), &wrong).await.status;
        assert!([401, 429].contains(&status.as_u16()));
    }
    assert_eq!(from("192.0.2.100".into(), &wrong).await.status, 429);
    assert_eq!(from("192.0.2.101".into(), &client).await.status, 200);
}

/// Someone who makes an address fail (a neighbour behind the same NAT, or
/// anyone inside trusted_proxies naming it in X-Forwarded-For) does not
/// shut out a client that was working from there; a client new to that
/// address waits for the window like the guesser.
#[actix_web::test]
async fn a_locked_address_still_serves_the_clients_that_worked_from_it() {
    let app = spawn_app_with(|s| s.auth_failure_limit = 3).await;
    let victim = app.create_application(json!({"client_id": "victim"})).await;
    let newcomer = app
        .create_application(json!({"client_id": "newcomer"}))
        .await;
    let from = async |who: &TestClient| token_from(&app, "198.51.100.20", who).await;
    assert_eq!(from(&victim).await.status, 200);
    for n in 0..10 {
        let guess = TestClient {
            client_id: format!("guess-{n}"),
            secret: "x".into(),
        };
        let status = from(&guess).await.status.as_u16();
        assert!([401, 429].contains(&status));
    }
    assert_eq!(from(&victim).await.status, 200);
    assert_eq!(from(&newcomer).await.status, 429);
    // The victim's own wrong secrets are still counted and refused.
    let wrong = TestClient {
        client_id: "victim".into(),
        secret: "wrong".into(),
    };
    for _ in 0..3 {
        from(&wrong).await;
    }
    assert_eq!(from(&wrong).await.status, 429);
    assert_eq!(from(&victim).await.status, 200);
}

#[actix_web::test]
async fn repeated_failures_from_one_address_are_refused_for_that_address_only() {
    let app = spawn_app_with(|s| s.auth_failure_limit = 3).await;
    let client = app
        .create_application(json!({"client_id": "canister"}))
        .await;
    let from = async |addr: &str, who: &TestClient| token_from(&app, addr, who).await;
    for n in 0..3 {
        let guess = TestClient {
            client_id: format!("guess-{n}"),
            secret: "x".into(),
        };
        assert_eq!(from("198.51.100.7", &guess).await.status, 401);
    }
    assert_eq!(from("198.51.100.7", &client).await.status, 429);
    assert_eq!(from("203.0.113.5", &client).await.status, 200);
}

#[actix_web::test]
async fn rotated_secret_keeps_working_for_its_grace_period_only() {
    let (app, client) = app_with_canister().await;
    let response = app
        .admin_api()
        .rotate_secret("canister", &json!({"grace_period": 300}))
        .await;
    assert_eq!(response.status, 200);
    let body = response.body;
    let fresh = TestClient {
        client_id: "canister".into(),
        secret: body["client_secret"].as_str().unwrap().into(),
    };
    assert_ne!(fresh.secret, client.secret);
    let form = [("grant_type", "client_credentials")];
    assert_eq!(app.token(&client, &form).await.status, 200);
    assert_eq!(app.token(&fresh, &form).await.status, 200);
    app.clock.advance(Duration::seconds(301));
    assert_eq!(app.token(&client, &form).await.status, 401);
    assert_eq!(app.token(&fresh, &form).await.status, 200);

    // Without a grace period the old secret ends at once.
    let response = call(app.admin(reqwest::Method::POST, "/applications/canister/secret")).await;
    assert_eq!(response.status, 200);
    assert_eq!(app.token(&fresh, &form).await.status, 401);
}

#[actix_web::test]
async fn deactivating_an_application_stops_issuance() {
    let (app, client) = app_with_canister().await;
    let response = app
        .admin_api()
        .update_application("canister", &json!({"active": false}))
        .await;
    assert_eq!(response.status, 200);
    let form = [("grant_type", "client_credentials")];
    assert_eq!(app.token(&client, &form).await.status, 401);
}
