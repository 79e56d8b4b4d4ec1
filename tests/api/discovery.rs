//! Discovery, JWKS, health.

use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn metadata_documents_describe_the_endpoints() {
    let app = spawn_app().await;
    app.create_application(json!({"client_id": "a", "scopes": ["webdav:read", "z"]}))
        .await;
    app.create_application(json!({"client_id": "b", "scopes": ["webdav:read"]}))
        .await;
    let oauth = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .body;
    let issuer = app.address.as_str();
    assert_eq!(oauth["issuer"], issuer);
    assert_eq!(oauth["token_endpoint"], format!("{issuer}/oauth/token"));
    assert_eq!(oauth["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    assert_eq!(
        oauth["introspection_endpoint"],
        format!("{issuer}/oauth/introspect")
    );
    assert_eq!(
        oauth["revocation_endpoint"],
        format!("{issuer}/oauth/revoke")
    );
    assert_eq!(
        oauth["grant_types_supported"],
        json!(["client_credentials"])
    );
    assert_eq!(
        oauth["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(oauth["scopes_supported"], json!(["webdav:read", "z"]));
    let openid = app.get("/.well-known/openid-configuration").await.body;
    assert_eq!(openid, oauth);
}

#[actix_web::test]
async fn jwks_lists_the_signing_key() {
    let app = spawn_app().await;
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status, 200);
    assert!(response.header("cache-control").contains("max-age="));
    let jwks = response.body;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["x"].as_str().unwrap().len(), 43);
    assert!(key.get("d").is_none(), "never the private part");
    let kid = key["kid"].as_str().unwrap();
    assert!(app.dir.path().join(format!("keys/{kid}.pem")).exists());
}

#[actix_web::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status, 200);
    let response = app.get("/readyz").await;
    assert_eq!(response.status, 200);
    let response = app.get("/no/such/path").await;
    assert_eq!(response.status, 404);
    let body = response.body;
    assert_eq!(body["error"], "not_found");
}
