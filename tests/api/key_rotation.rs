//! Signing-key rotation on its schedule: published for the JWKS `max-age`
//! before signing, verify-only afterwards, and out of the JWKS once no live
//! token can carry the old key (unless an API key was signed with it).
//! The node's clock is the test's, so the schedule is walked, not waited.

use chrono::{DateTime, Duration, Utc};
use gatehouse::clock::Clock;
use serde_json::{Value, json};

use crate::helpers::{TestApp, jwt_parts, spawn_app, spawn_app_with};

async fn keys(app: &TestApp) -> Vec<Value> {
    let body = app.admin_api().keys().await.body;
    body["keys"].as_array().unwrap().clone()
}

async fn key(app: &TestApp, kid: &str) -> Value {
    keys(app)
        .await
        .into_iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or(Value::Null)
}

async fn jwks(app: &TestApp) -> (Vec<String>, String) {
    let response = app.get("/.well-known/jwks.json").await;
    let cache = response.header("cache-control").to_string();
    let body = response.body;
    let kids = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    (kids, cache)
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

async fn token_kid(app: &TestApp, client: &crate::helpers::TestClient) -> String {
    let token = app.access_token(client, &[]).await;
    jwt_parts(&token).0["kid"].as_str().unwrap().to_string()
}

/// Lets the node's key schedule (four steps a second) see the clock.
async fn let_schedule_run() {
    actix_web::rt::time::sleep(std::time::Duration::from_millis(800)).await;
}

async fn until_state(app: &TestApp, kid: &str, state: &str) {
    for _ in 0..200 {
        if app.signing_key_state(kid).await == state {
            return;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("key {kid} never reached state {state}");
}

#[actix_web::test]
async fn a_new_key_is_published_for_max_age_before_it_signs() {
    let app = spawn_app().await;
    let client = app
        .create_application(json!({"client_id": "canister"}))
        .await;
    let old = token_kid(&app, &client).await;
    let (_, cache) = jwks(&app).await;
    assert_eq!(cache, "public, max-age=300");

    let rotated = app.admin_api().rotate_keys().await;
    assert_eq!(rotated.status, 202, "answers at once");
    let rotation = rotated.body;
    let new = rotation["kid"].as_str().unwrap().to_string();
    assert_eq!(rotation["state"], "published");
    let (published, signs_at) = (time(&rotation["published_at"]), time(&rotation["signs_at"]));
    assert!(
        signs_at - published >= Duration::seconds(300),
        "signs no sooner than max-age after publishing: {rotation}"
    );

    // Published: in the JWKS, not signing.
    let (kids, _) = jwks(&app).await;
    assert!(kids.contains(&new) && kids.contains(&old));
    let listed = key(&app, &new).await;
    assert_eq!(listed["state"], "published");
    assert_eq!(listed["signs_at"], rotation["signs_at"]);
    assert_eq!(listed["form"], "pkcs8-v1");
    assert_eq!(key(&app, &old).await["state"], "signing");
    assert_eq!(token_kid(&app, &client).await, old);

    // One rotation at a time.
    let again = app.admin_api().rotate_keys().await;
    assert_eq!(again.status, 409);
    let body = again.body;
    assert!(body["error_description"].as_str().unwrap().contains(&new));

    // A second before it is due: still the old key.
    app.clock
        .advance(signs_at - app.clock.now() - Duration::seconds(1));
    let_schedule_run().await;
    assert_eq!(key(&app, &new).await["state"], "published");
    assert_eq!(token_kid(&app, &client).await, old);

    // Due: the new key signs, the old one verifies only.
    app.clock.advance(Duration::seconds(2));
    until_state(&app, &new, "signing").await;
    assert_eq!(token_kid(&app, &client).await, new);
    let old_key = key(&app, &old).await;
    assert_eq!(old_key["state"], "verify-only");
    let stopped = time(&old_key["verify_only_since"]);
    assert_eq!(
        time(&old_key["leaves_jwks_at"]) - stopped,
        Duration::seconds(gatehouse::admin::KEY_RETENTION_SECS)
    );
    assert!(time(&key(&app, &new).await["signing_since"]) >= signs_at);
}

#[actix_web::test]
async fn an_old_key_leaves_the_jwks_once_nothing_live_carries_it() {
    let app = spawn_app_with(|s| s.jwks_max_age = 60).await;
    let client = app
        .create_application(json!({"client_id": "canister", "groups": ["media"]}))
        .await;
    app.create_resource(json!({"host": "dav.example.com", "allowed_groups": ["media"]}))
        .await;
    let first = token_kid(&app, &client).await;
    let old_token = app.access_token(&client, &[]).await;
    let minted = app
        .admin_api()
        .create_api_key("canister", &json!({"name": "backup"}))
        .await
        .body;
    let api_key = minted["api_key"].as_str().unwrap().to_string();
    let (_, cache) = jwks(&app).await;
    assert_eq!(cache, "public, max-age=60");

    let second = app.rotate_signing_key().await;
    let third_token_kid = token_kid(&app, &client).await;
    assert_eq!(third_token_kid, second);
    assert_eq!(
        app.verify_status("dav.example.com", &old_token).await,
        200,
        "old tokens live on"
    );

    // Past the retention, but an API key signed with the first key lives:
    // the key stays, and the key still verifies.
    app.clock.advance(Duration::seconds(
        gatehouse::admin::KEY_RETENTION_SECS + 120,
    ));
    let_schedule_run().await;
    assert!(jwks(&app).await.0.contains(&first));
    assert_eq!(key(&app, &first).await["leaves_jwks_at"], Value::Null);
    assert_eq!(app.verify_status("dav.example.com", &api_key).await, 200);

    // A second rotation: the second key (which signed no API key) goes
    // once its retention has passed.
    let third = app.rotate_signing_key().await;
    assert_eq!(key(&app, &second).await["state"], "verify-only");
    app.clock.advance(Duration::seconds(
        gatehouse::admin::KEY_RETENTION_SECS + gatehouse::admin::RETIREMENT_CHECK_SECS + 1,
    ));
    for _ in 0..200 {
        if !jwks(&app).await.0.contains(&second) {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let (kids, _) = jwks(&app).await;
    assert!(!kids.contains(&second), "the second key left: {kids:?}");
    assert!(kids.contains(&first) && kids.contains(&third));

    // The API key revoked: nothing holds the first key any more.
    let id = minted["id"].as_str().unwrap();
    let revoked = app.admin_api().revoke_api_key(id).await;
    assert_eq!(revoked.status, 204);
    app.clock.advance(Duration::seconds(
        gatehouse::admin::RETIREMENT_CHECK_SECS + 1,
    ));
    for _ in 0..200 {
        if !jwks(&app).await.0.contains(&first) {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(jwks(&app).await.0, std::slice::from_ref(&third));
    assert_eq!(token_kid(&app, &client).await, third);
}
