//! API keys, revocation, introspection, and key rotation.

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, Answer, Node, TestApp, TestClient, call, call_text, jwt_parts, refused_field,
    spawn_app,
};

const DAV: &str = "dav.example.com";

async fn setup() -> (TestApp, TestClient, TestClient) {
    let app = spawn_app().await;
    let canister = app
        .create_application(json!({"client_id": "canister", "name": "Canister", "groups": ["media"], "scopes": ["webdav"]}))
        .await;
    let other = app
        .create_application(json!({"client_id": "other", "groups": ["media"]}))
        .await;
    app.create_resource(json!({"host": DAV, "allowed_groups": ["media"]}))
        .await;
    (app, canister, other)
}

async fn mint(app: &TestApp, client_id: &str, body: Value) -> Value {
    let response = app.admin_api().create_api_key(client_id, &body).await;
    assert_eq!(response.status, 201);
    response.body
}

/// A new API key for canister, named `name`.
async fn mint_key(app: &TestApp, name: &str) -> String {
    mint(app, "canister", json!({ "name": name })).await["api_key"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn verify_status(app: &TestApp, credential: &str) -> u16 {
    app.verify_status(DAV, credential).await
}

/// POST to /oauth/introspect or /oauth/revoke as `client`.
async fn as_client(app: &TestApp, path: &str, client: &TestClient, token: &str) -> Answer {
    let request = app.client.post(app.url(path));
    let request = request.basic_auth(&client.client_id, Some(&client.secret));
    call(request.form(&[("token", token)])).await
}

#[actix_web::test]
async fn minted_key_verifies_as_api_key_and_is_never_shown_again() {
    let (app, _, _) = setup().await;
    let minted = mint(&app, "canister", json!({"name": "sync job"})).await;
    let key = minted["api_key"].as_str().unwrap();
    let id = minted["id"].as_str().unwrap();
    assert_eq!(minted["name"], "sync job");
    assert!(minted["created_at"].is_string());
    assert!(minted["expires_at"].is_null());

    let (header, claims) = jwt_parts(key);
    assert_eq!(header["typ"], "apikey+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(claims["jti"], id);
    assert_eq!(claims["sub"], "canister");
    assert_eq!(claims["client_id"], "canister");
    assert!(claims.get("exp").is_none(), "no exp unless asked for");

    let response = call(app.verify("GET", DAV, "/").bearer_auth(key)).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["remote-auth-method"], "api_key");
    assert_eq!(response.headers["remote-user"], "canister");
    assert_eq!(response.headers["remote-groups"], "media");

    let listed = app.admin_api().api_keys("canister", "").await;
    assert_eq!(listed.status, 200);
    let listed = listed.text;
    assert!(listed.contains(id) && listed.contains("sync job"));
    assert!(!listed.contains(key), "the key itself is never listed");

    let expiring = mint(
        &app,
        "canister",
        json!({"name": "short", "expires_in": 600}),
    )
    .await;
    let (_, claims) = jwt_parts(expiring["api_key"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    assert!(expiring["expires_at"].is_string());
    app.clock.advance(Duration::seconds(600 + 31));
    assert_eq!(
        verify_status(&app, expiring["api_key"].as_str().unwrap()).await,
        401
    );
    assert_eq!(
        verify_status(&app, key).await,
        200,
        "the key without exp lives on"
    );
}

#[actix_web::test]
async fn api_key_requests_are_validated() {
    let (app, _, _) = setup().await;
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "expires_in": 5}), "expires_in"),
        (json!({"name": "x", "expires_in": -5}), "expires_in"),
    ] {
        let mint = app.admin(Method::POST, "/applications/canister/api-keys");
        assert_eq!(refused_field(mint, &body).await, field, "{body}");
    }
    let response = app
        .admin_api()
        .create_api_key("ghost", &json!({"name": "x"}))
        .await;
    assert_eq!(response.status, 404);
    let response = app.admin_api().revoke_api_key("never-existed").await;
    assert_eq!(response.status, 404);
}

#[actix_web::test]
async fn revoked_key_is_refused_and_revoking_again_still_succeeds() {
    let (app, _, _) = setup().await;
    let minted = mint(&app, "canister", json!({"name": "k"})).await;
    let key = minted["api_key"].as_str().unwrap();
    let id = minted["id"].as_str().unwrap();
    assert_eq!(verify_status(&app, key).await, 200);
    let response = app.admin_api().revoke_api_key(id).await;
    assert_eq!(response.status, 204);
    let response = call(app.verify("GET", DAV, "/").bearer_auth(key)).await;
    assert_eq!(response.status, 401);
    assert!(response.header("www-authenticate").contains("revoked"));
    let response = app.admin_api().revoke_api_key(id).await;
    assert_eq!(response.status, 204, "idempotent");
    let listed = app.admin_api().api_keys("canister", "").await.body;
    assert!(listed["api_keys"][0]["revoked_at"].is_string());
}

#[actix_web::test]
async fn keys_follow_the_application_groups_and_active_flag() {
    let (app, canister, _) = setup().await;
    let key = mint_key(&app, "k").await;
    let token = app.access_token(&canister, &[]).await;
    app.admin_api()
        .update_application("canister", &json!({"groups": ["other"]}))
        .await;
    assert_eq!(
        verify_status(&app, &key).await,
        403,
        "the key takes the current groups"
    );
    app.admin_api()
        .update_application("canister", &json!({"groups": ["media"], "active": false}))
        .await;
    assert_eq!(
        verify_status(&app, &key).await,
        401,
        "inactive application: key refused"
    );
    assert_eq!(
        verify_status(&app, &token).await,
        401,
        "inactive application: token refused"
    );
    app.admin_api()
        .update_application("canister", &json!({"active": true}))
        .await;
    assert_eq!(verify_status(&app, &key).await, 200);
}

#[actix_web::test]
async fn revoke_tokens_refuses_everything_issued_before() {
    let (app, canister, _) = setup().await;
    let old_token = app.access_token(&canister, &[]).await;
    let old_key = mint_key(&app, "k").await;
    let response = app.admin_api().revoke_tokens("canister").await;
    assert_eq!(response.status, 200);
    // Same second of the test clock: old ones refused, new ones accepted.
    assert_eq!(verify_status(&app, &old_token).await, 401);
    assert_eq!(verify_status(&app, &old_key).await, 401);
    let new_token = app.access_token(&canister, &[]).await;
    assert_eq!(verify_status(&app, &new_token).await, 200);
    let new_key = mint_key(&app, "k2").await;
    assert_eq!(verify_status(&app, &new_key).await, 200);
}

/// The test clock stands still, so everything here happens in one second:
/// deleting and re-creating an application (same client_id, other groups),
/// or revoking its tokens, 50 times over, never lets an earlier token or
/// key pass, while the newest always does.
#[actix_web::test]
async fn no_earlier_credential_survives_recreation_or_revocation_in_the_same_second() {
    let (app, _, _) = setup().await;
    let mut earlier: Vec<String> = Vec::new();
    let mut client = TestClient {
        client_id: "canister".into(),
        secret: String::new(),
    };
    for round in 0..50 {
        if round % 2 == 0 {
            let deleted = app.admin_api().delete_application("canister").await;
            assert_eq!(deleted.status, 204);
            client = app
                .create_application(json!({"client_id": "canister", "groups": ["media"]}))
                .await;
        } else {
            let revoked = app.admin_api().revoke_tokens("canister").await;
            assert_eq!(revoked.status, 200);
        }
        for credential in &earlier {
            assert_eq!(
                verify_status(&app, credential).await,
                401,
                "round {round}: an earlier credential passed"
            );
        }
        let token = app.access_token(&client, &[]).await;
        let key = mint_key(&app, &format!("k{round}")).await;
        assert_eq!(verify_status(&app, &token).await, 200, "round {round}");
        assert_eq!(verify_status(&app, &key).await, 200, "round {round}");
        earlier.extend([token, key]);
    }
}

#[actix_web::test]
async fn introspection_answers_for_the_clients_own_credentials_only() {
    let (app, canister, other) = setup().await;
    let token = app.access_token(&canister, &[]).await;
    let key = mint_key(&app, "k").await;

    let response = as_client(&app, "/oauth/introspect", &canister, &token).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["cache-control"], "no-store");
    let body = response.body;
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], "canister");
    assert_eq!(body["scope"], "webdav");
    assert!(body["exp"].is_i64());
    let body: Value = as_client(&app, "/oauth/introspect", &canister, &key)
        .await
        .body;
    assert_eq!(body["active"], true);
    assert_eq!(body["auth_method"], "api_key");

    // Someone else's token, garbage: inactive, and nothing more.
    let body: Value = as_client(&app, "/oauth/introspect", &other, &token)
        .await
        .body;
    assert_eq!(body, json!({"active": false}));
    let body: Value = as_client(&app, "/oauth/introspect", &canister, "garbage")
        .await
        .body;
    assert_eq!(body, json!({"active": false}));

    // Client authentication is required; the token parameter too.
    let wrong = TestClient {
        client_id: "canister".into(),
        secret: "nope".into(),
    };
    assert_eq!(
        as_client(&app, "/oauth/introspect", &wrong, &token)
            .await
            .status,
        401
    );
    let response = call(
        app.client
            .post(app.url("/oauth/introspect"))
            .basic_auth(&canister.client_id, Some(&canister.secret))
            .form(&[("token_type_hint", "access_token")]),
    )
    .await;
    assert_eq!(response.status, 400);
}

#[actix_web::test]
async fn rfc7009_revocation_by_the_owner_only() {
    let (app, canister, other) = setup().await;
    let token = app.access_token(&canister, &[]).await;
    let key = mint_key(&app, "k").await;

    // Another client cannot revoke them: 200 (RFC 7009), and nothing happens.
    assert_eq!(
        as_client(&app, "/oauth/revoke", &other, &token)
            .await
            .status,
        200
    );
    assert_eq!(
        as_client(&app, "/oauth/revoke", &other, &key).await.status,
        200
    );
    assert_eq!(verify_status(&app, &token).await, 200);
    assert_eq!(verify_status(&app, &key).await, 200);

    assert_eq!(
        as_client(&app, "/oauth/revoke", &canister, &token)
            .await
            .status,
        200
    );
    assert_eq!(verify_status(&app, &token).await, 401);
    let body: Value = as_client(&app, "/oauth/introspect", &canister, &token)
        .await
        .body;
    assert_eq!(body["active"], false);
    assert_eq!(
        as_client(&app, "/oauth/revoke", &canister, &key)
            .await
            .status,
        200
    );
    assert_eq!(verify_status(&app, &key).await, 401);
    // Unknown tokens are no error.
    assert_eq!(
        as_client(&app, "/oauth/revoke", &canister, "garbage")
            .await
            .status,
        200
    );
    // A fresh token is unaffected.
    let fresh = app.access_token(&canister, &[]).await;
    assert_eq!(verify_status(&app, &fresh).await, 200);
}

#[actix_web::test]
async fn rotation_keeps_old_credentials_valid_and_signs_with_the_new_key() {
    let (app, canister, _) = setup().await;
    let old_token = app.access_token(&canister, &[]).await;
    let old_key = mint_key(&app, "k").await;
    let (old_header, _) = jwt_parts(&old_token);

    let new_kid = app.rotate_signing_key().await;
    assert_ne!(new_kid, old_header["kid"].as_str().unwrap());

    assert_eq!(verify_status(&app, &old_token).await, 200);
    assert_eq!(verify_status(&app, &old_key).await, 200);
    let new_token = app.access_token(&canister, &[]).await;
    assert_eq!(jwt_parts(&new_token).0["kid"], new_kid);
    assert_eq!(verify_status(&app, &new_token).await, 200);
    let new_key = mint_key(&app, "k2").await;
    assert_eq!(jwt_parts(&new_key).0["kid"], new_kid);

    let jwks = app.get("/.well-known/jwks.json").await.body;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&new_kid.as_str()) && kids.contains(&old_header["kid"].as_str().unwrap())
    );
}

#[actix_web::test]
async fn audit_log_records_admin_actions_newest_first_in_pages() {
    let (app, _, _) = setup().await;
    let minted = mint(&app, "canister", json!({"name": "k"})).await;
    let response = app
        .admin_api()
        .create_application(&json!({"client_id": "canister"}))
        .await;
    assert_eq!(response.status, 409);
    let id = minted["id"].as_str().unwrap();
    app.admin_api().revoke_api_key(id).await;

    let page = app.admin_api().audit("?limit=2").await.body;
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["action"], "DELETE /admin/v1/api-keys/{id}");
    assert_eq!(entries[0]["outcome"], "success");
    assert_eq!(entries[1]["action"], "POST /admin/v1/applications");
    assert_eq!(entries[1]["status"], 409);
    assert_eq!(entries[1]["outcome"], "failure");
    assert!(entries[0]["actor"].as_str().unwrap().starts_with("admin:"));
    assert!(!page.to_string().contains(ADMIN_TOKEN));
    let next = page["next"].as_str().unwrap();
    let older = app
        .admin_api()
        .get(&format!("/audit?limit=100&before={next}"))
        .await
        .body;
    let actions: Vec<&str> = older["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions[0],
        "POST /admin/v1/applications/{client_id}/api-keys"
    );
    assert!(older["next"].is_null());
    // Reads are not actions; bad queries are JSON errors.
    assert!(!actions.iter().any(|a| a.starts_with("GET")));
    let response = app.admin_api().audit("?limit=lots").await;
    assert_eq!(response.status, 400);
    let error = response.body;
    assert_eq!(error["error"], "invalid_request");
}

#[actix_web::test]
async fn minted_and_revoked_keys_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    // The restarted node listens on another port: a fixed issuer keeps
    // the keys' `iss` valid, as in any real deployment.
    let env = [
        ("GATEHOUSE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("GATEHOUSE_ISSUER", "https://auth.example.com"),
    ];
    let node = Node::start(dir.path(), &env).await;
    let client = crate::helpers::http_client();
    let admin = node.admin_api();
    admin
        .create_application(&json!({"client_id": "canister", "groups": ["media"]}))
        .await;
    admin
        .create_resource(&json!({"host": DAV, "allowed_groups": ["media"]}))
        .await;
    // Both expire in three days: the expiry gauge counts live ones only.
    let mint = async |name: &str| {
        let body = json!({ "name": name, "expires_in": 3 * 86_400 });
        admin.create_api_key("canister", &body).await.body
    };
    let kept = mint("kept").await;
    let doomed = mint("doomed").await;
    let response = admin.revoke_api_key(doomed["id"].as_str().unwrap()).await;
    assert_eq!(response.status, 204);
    // Killed right after the answers.
    node.kill9();

    let node = Node::start(dir.path(), &env).await;
    let verify = async |key: &Value| {
        let request = client
            .get(node.url("/api/verify"))
            .header("X-Forwarded-Host", DAV)
            .bearer_auth(key.as_str().unwrap());
        call(request).await.status
    };
    assert_eq!(verify(&kept["api_key"]).await, 200);
    assert_eq!(verify(&doomed["api_key"]).await, 401);
    // The listing and the gauge read the key index, written with the records.
    let listed = node
        .admin_api()
        .get("/applications/canister/api-keys")
        .await
        .body;
    let listed: Vec<(&str, bool)> = listed["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["name"].as_str().unwrap(), k["revoked_at"].is_null()))
        .collect();
    assert_eq!(listed, [("kept", true), ("doomed", false)]);
    let series = r#"gatehouse_api_keys_expiring{within="7d"}"#;
    let expiring = crate::helpers::metric(&client, node.url("/metrics"), series).await;
    assert_eq!(expiring, Some(1.0));
    let audit = node.admin_api().audit("").await.body;
    let actions: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        actions
            .iter()
            .any(|(a, t)| a == "DELETE /admin/v1/api-keys/{id}"
                && t.ends_with(doomed["id"].as_str().unwrap())),
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|(a, _)| a == "POST /admin/v1/applications/{client_id}/api-keys")
            .count(),
        2
    );
}

/// Each revocation is a change every replica applies: a client may make
/// `revocations_per_minute` of them, then gets 429 until the minute ends.
#[actix_web::test]
async fn revocations_are_rate_limited_per_client() {
    let app = crate::helpers::spawn_app_with(|s| s.revocations_per_minute = 3).await;
    let canister = app
        .create_application(json!({"client_id": "canister"}))
        .await;
    let other = app.create_application(json!({"client_id": "other"})).await;
    for _ in 0..3 {
        let token = app.access_token(&canister, &[]).await;
        assert_eq!(
            as_client(&app, "/oauth/revoke", &canister, &token)
                .await
                .status,
            200
        );
    }
    let token = app.access_token(&canister, &[]).await;
    let refused = as_client(&app, "/oauth/revoke", &canister, &token).await;
    assert_eq!(refused.status, 429);
    assert!(refused.headers.contains_key("retry-after"));
    let body = refused.body;
    assert_eq!(body["error"], "too_many_requests");
    let introspected: Value = as_client(&app, "/oauth/introspect", &canister, &token)
        .await
        .body;
    assert_eq!(
        introspected["active"], true,
        "the refused revocation did nothing"
    );

    // Another client is not affected; the next minute is a new allowance.
    let theirs = app.access_token(&other, &[]).await;
    assert_eq!(
        as_client(&app, "/oauth/revoke", &other, &theirs)
            .await
            .status,
        200
    );
    app.clock.advance(Duration::seconds(61));
    assert_eq!(
        as_client(&app, "/oauth/revoke", &canister, &token)
            .await
            .status,
        200
    );
}

/// A replica relays revocations with the client's address beside the
/// replica token. Anyone else sending the same headers is still counted
/// by their own address: a forged X-Gatehouse-Client-Addr cannot escape a
/// lockout (nor move one onto someone else).
#[actix_web::test]
async fn a_relayed_client_address_is_believed_only_with_the_replica_token() {
    const REPLICA_TOKEN: &str = "relay-replica-token-0123456789abcdef";
    let app = crate::helpers::spawn_app_with(|s| {
        s.auth_failure_limit = 3;
        s.replica_token = Some(gatehouse::config::Secret::new(REPLICA_TOKEN));
    })
    .await;
    // Another client_id each time: only the address counts up.
    let attempt = async |relay: &str, addr: &str, client: &str| {
        call_text(
            app.client
                .post(app.url("/oauth/revoke"))
                .basic_auth(client, Some("gcs_wrong"))
                .header("X-Gatehouse-Relay", relay)
                .header("X-Gatehouse-Client-Addr", addr)
                .form(&[("token", "x")]),
        )
        .await
        .status
        .as_u16()
    };
    let mut statuses = Vec::new();
    for n in 0..6 {
        let forged = format!("203.0.113.{n}");
        statuses.push(attempt("not-the-token", &forged, &format!("probe-{n}")).await);
    }
    assert_eq!(
        statuses.last(),
        Some(&429),
        "the peer's own address is locked out: {statuses:?}"
    );
    // With the replica token, the named address is the one counted.
    assert_eq!(
        attempt(REPLICA_TOKEN, "198.51.100.7", "probe-r").await,
        401,
        "a fresh address, not the locked one"
    );
    assert_eq!(
        attempt(REPLICA_TOKEN, "not an address", "probe-g").await,
        429,
        "an unreadable address counts as the peer"
    );
}
