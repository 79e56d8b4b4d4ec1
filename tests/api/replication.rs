//! The primary's side of replication: `GET /internal/v1/state`, a
//! versioned long-poll of the whole state behind the replica token.

use gatehouse::config::Secret;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const REPLICA_TOKEN: &str = "replica-token-for-tests-0123456789abcdef";

fn state(app: &TestApp, query: &str) -> reqwest::RequestBuilder {
    app.client
        .get(app.url(&format!("/internal/v1/state{query}")))
        .bearer_auth(REPLICA_TOKEN)
}

async fn primary() -> TestApp {
    spawn_app_with(|s| s.replica_token = Some(Secret::new(REPLICA_TOKEN))).await
}

#[actix_web::test]
async fn state_needs_the_replica_token_and_replication_configured() {
    let app = primary().await;
    let response = app
        .client
        .get(app.url("/internal/v1/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = app
        .client
        .get(app.url("/internal/v1/state"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    // The admin token is not a replica token.
    let response = app
        .client
        .get(app.url("/internal/v1/state"))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let plain = spawn_app().await;
    let response = plain
        .client
        .get(plain.url("/internal/v1/state"))
        .bearer_auth(REPLICA_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[actix_web::test]
async fn the_document_carries_the_whole_state() {
    let app = primary().await;
    app.create_application(json!({"client_id": "canister", "groups": ["media"]}))
        .await;
    app.create_resource(
        json!({"id": "dav", "host": "dav.example.com", "allowed_groups": ["media"]}),
    )
    .await;
    let response = state(&app, "?since=0").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let version: u64 = response.headers()["x-gatehouse-state-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["version"], version);
    assert_eq!(document["applications"][0]["client_id"], "canister");
    assert!(
        document["applications"][0]["secret"].is_string(),
        "digests travel, for token issuance"
    );
    assert_eq!(document["resources"][0]["id"], "dav");
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["public_keys"][0][0], jwks["keys"][0]["kid"]);
    assert_eq!(document["public_keys"][0][1], jwks["keys"][0]["x"]);

    // Nothing new since that version: 304, at once without wait.
    let response = state(&app, &format!("?since={version}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 304);
    let response = state(&app, &format!("?since={version}&wait=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 304);
}

#[actix_web::test]
async fn a_waiting_request_wakes_with_a_revocation() {
    let app = primary().await;
    app.create_application(json!({"client_id": "canister", "groups": ["media"]}))
        .await;
    let minted: Value = app
        .admin(Method::POST, "/applications/canister/api-keys")
        .json(&json!({"name": "k"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = minted["id"].as_str().unwrap().to_string();
    let version = state(&app, "").send().await.unwrap().headers()["x-gatehouse-state-version"]
        .to_str()
        .unwrap()
        .to_string();

    // Waits up to 30 s; a change must end the wait with the new state,
    // where a missed wake-up would end it with a 304.
    let waiting = state(&app, &format!("?since={version}&wait=30")).send();
    let revoke = async {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
        app.admin(Method::DELETE, &format!("/api-keys/{id}"))
            .send()
            .await
            .unwrap()
    };
    let (response, revoked) = futures_util::future::join(waiting, revoke).await;
    assert_eq!(revoked.status(), 204);
    let response = response.unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert!(document["version"].as_u64().unwrap() > version.parse::<u64>().unwrap());
    assert_eq!(document["revoked_api_keys"], json!([id]));

    // RFC 7009 token revocations travel too.
    let client = app.create_application(json!({"client_id": "other"})).await;
    let token = app.access_token(&client, &[]).await;
    app.client
        .post(app.url("/oauth/revoke"))
        .basic_auth(&client.client_id, Some(&client.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let document: Value = state(&app, "").send().await.unwrap().json().await.unwrap();
    let (_, claims) = crate::helpers::jwt_parts(&token);
    assert_eq!(document["revoked_access_tokens"][0][0], claims["jti"]);
    assert_eq!(document["revoked_access_tokens"][0][1], claims["exp"]);
}
