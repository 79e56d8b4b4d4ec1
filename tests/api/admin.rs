//! The admin API for applications (`/admin/v1/applications`).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Answer, Node, call, http_client, spawn_app};

fn assert_error(response: Answer, status: u16, error: &str) -> Value {
    assert_eq!(response.status, status);
    let body = response.body;
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
    body
}

/// The status of `GET /admin/v1/applications` on `node` with `token`.
async fn list_with(node: &Node, token: &str) -> reqwest::StatusCode {
    let request = http_client().get(node.url("/admin/v1/applications"));
    call(request.bearer_auth(token)).await.status
}

#[actix_web::test]
async fn requires_the_admin_token() {
    let app = spawn_app().await;
    let url = app.url("/admin/v1/applications");
    let response = call(app.client.get(&url)).await;
    assert!(response.header("www-authenticate").starts_with("Bearer"));
    assert_error(response, 401, "invalid_token");
    let response = call(app.client.get(&url).bearer_auth("wrong")).await;
    assert_error(response, 401, "invalid_token");
    let response = call(app.client.get(&url).basic_auth("admin", Some(ADMIN_TOKEN))).await;
    assert_error(response, 401, "invalid_token");
    // The token is checked before the body is looked at.
    let response = call(app.client.post(&url).body("not json")).await;
    assert_error(response, 401, "invalid_token");
}

#[actix_web::test]
async fn application_lifecycle() {
    let app = spawn_app().await;
    let body = json!({"client_id": "canister", "name": "Canister", "groups": ["Media"], "scopes": ["webdav"]});
    let response = app.admin_api().create_application(&body).await;
    assert_eq!(response.status, 201);
    assert_eq!(
        response.headers["location"],
        "/admin/v1/applications/canister"
    );
    let created = response.body;
    let secret = created["client_secret"].as_str().unwrap();
    // 256 random bits, base64url-encoded, behind a 4-character prefix.
    assert!(secret.starts_with("gcs_") && secret.len() >= 4 + 43);
    assert_eq!(created["groups"], json!(["media"]));
    assert_eq!(created["active"], true);
    assert_eq!(created["access_token_ttl"], 3600);
    assert!(created["created_at"].is_string() && created["updated_at"].is_string());

    let fetched = app.admin_api().application("canister").await.body;
    assert!(fetched.get("client_secret").is_none());
    assert_eq!(fetched["name"], "Canister");
    let listed = app.admin_api().get("/applications").await.body;
    assert_eq!(listed["applications"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(secret));

    let response = app
        .admin_api()
        .update_application(
            "canister",
            &json!({"groups": ["ops"], "access_token_ttl": 120}),
        )
        .await;
    assert_eq!(response.status, 200);
    let patched = response.body;
    assert_eq!(patched["groups"], json!(["ops"]));
    assert_eq!(patched["access_token_ttl"], 120);
    assert_eq!(patched["name"], "Canister");

    let response = app.admin_api().delete_application("canister").await;
    assert_eq!(response.status, 204);
    let response = app.admin_api().application("canister").await;
    assert_error(response, 404, "not_found");
    let response = app.admin_api().delete_application("canister").await;
    assert_error(response, 404, "not_found");
}

#[actix_web::test]
async fn generates_a_client_id_when_none_is_given() {
    let app = spawn_app().await;
    let client = app.create_application(json!({"name": "anonymous"})).await;
    assert!(client.client_id.starts_with("app-"));
    let fetched = app
        .admin_api()
        .get(&format!("/applications/{}", client.client_id))
        .await
        .body;
    assert_eq!(fetched["name"], "anonymous");
}

#[actix_web::test]
async fn duplicate_client_id_is_a_conflict() {
    let app = spawn_app().await;
    app.create_application(json!({"client_id": "canister"}))
        .await;
    let response = app
        .admin_api()
        .create_application(&json!({"client_id": "canister"}))
        .await;
    assert_error(response, 409, "conflict");
}

#[actix_web::test]
async fn invalid_fields_are_named() {
    let app = spawn_app().await;
    let cases = [
        (json!({"client_id": "Not Valid"}), "client_id"),
        (json!({"client_id": ""}), "client_id"),
        (json!({"client_id": "a".repeat(65)}), "client_id"),
        (json!({"access_token_ttl": 59}), "access_token_ttl"),
        (json!({"access_token_ttl": 86401}), "access_token_ttl"),
        (json!({"access_token_ttl": "long"}), "access_token_ttl"),
        (json!({"access_token_ttl": -1}), "access_token_ttl"),
        (json!({"groups": ["ok", "a,b"]}), "groups[1]"),
        (json!({"groups": "media"}), "groups"),
        (json!({"scopes": ["has space"]}), "scopes[0]"),
        (json!({"name": ""}), "name"),
        (json!({"name": "line\nbreak"}), "name"),
        (json!({"active": "yes"}), "active"),
    ];
    for (body, field) in cases {
        let response = app.admin_api().create_application(&body).await;
        let error = assert_error(response, 400, "invalid_request");
        assert_eq!(error["field"], field, "{body} -> {error}");
    }
    let response = app
        .admin_api()
        .create_application(&json!({"client_id": "x", "colour": "blue"}))
        .await;
    let error = assert_error(response, 400, "invalid_request");
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("colour")
    );

    app.create_application(json!({"client_id": "canister"}))
        .await;
    let response = app
        .admin_api()
        .update_application("canister", &json!({"access_token_ttl": 5}))
        .await;
    let error = assert_error(response, 400, "invalid_request");
    assert_eq!(error["field"], "access_token_ttl");
    let response = app
        .admin_api()
        .rotate_secret("canister", &json!({"grace_period": 99_999_999}))
        .await;
    let error = assert_error(response, 400, "invalid_request");
    assert_eq!(error["field"], "grace_period");
}

#[actix_web::test]
async fn bodies_must_be_json_and_small() {
    let app = spawn_app().await;
    let response = call(
        app.admin(Method::POST, "/applications")
            .header("content-type", "text/plain")
            .body(r#"{"client_id":"x"}"#),
    )
    .await;
    assert_error(response, 415, "unsupported_media_type");
    let response = call(
        app.admin(Method::POST, "/applications")
            .body(r#"{"client_id":"x"}"#),
    )
    .await;
    assert_error(response, 415, "unsupported_media_type");
    let response = call(
        app.admin(Method::POST, "/applications")
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_error(response, 400, "invalid_request");
    let response = call(
        app.admin(Method::POST, "/applications")
            .header("content-type", "application/json")
            .body(vec![0xff, 0xfe, 0x00]),
    )
    .await;
    assert_error(response, 400, "invalid_request");
    let huge = json!({"name": "x".repeat(100 * 1024)});
    let response = app.admin_api().create_application(&huge).await;
    assert_error(response, 413, "payload_too_large");
    // Unknown paths and methods answer in JSON too.
    let response = app.admin_api().get("/nothing-here").await;
    assert_error(response, 404, "not_found");
    let response = call(app.admin(Method::PUT, "/applications")).await;
    assert_error(response, 405, "method_not_allowed");
    // Still serving.
    app.create_application(json!({"client_id": "after"})).await;
}

#[actix_web::test]
async fn generated_admin_token_is_written_once_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    let path = dir.path().join("data/admin-token");
    let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(list_with(&node, &token).await, 200);
    let log = node.kill9();
    assert!(log.contains("data/admin-token"), "the log names the file");
    assert!(!log.contains(&token), "the log never holds the token");

    // A restart keeps the token and does not write a new one.
    std::fs::remove_file(&path).unwrap();
    let node = Node::start(dir.path(), &[]).await;
    assert!(!path.exists());
    assert_eq!(list_with(&node, &token).await, 200);
}

#[actix_web::test]
async fn configured_admin_token_replaces_the_generated_one() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        dir.path(),
        &[(
            "GATEHOUSE_ADMIN_TOKEN",
            "from-the-environment-0123456789abcdef",
        )],
    )
    .await;
    assert!(!dir.path().join("data/admin-token").exists());
    assert_eq!(
        list_with(&node, "from-the-environment-0123456789abcdef").await,
        200
    );
}
