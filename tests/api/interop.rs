//! Real third-party OAuth clients against a real node: Python authlib
//! fetches a token, PyJWT's PyJWKClient verifies it through the discovery
//! document's jwks_uri. `.ci/run` installs them and sets
//! GATEHOUSE_REQUIRE_INTEROP=1, so CI fails rather than skips without them.

use std::process::Command;

use crate::helpers::{python_has, spawn_app};

#[actix_web::test]
async fn authlib_fetches_and_pyjwt_verifies_through_discovery() {
    if !python_has("authlib, jwt, requests") {
        return;
    }
    let app = spawn_app().await;
    let client = app
        .create_application(serde_json::json!({
            "client_id": "canister", "groups": ["media"], "scopes": ["webdav:read", "webdav:write"]
        }))
        .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/oauth_client.py");
    let output = actix_web::web::block({
        let (issuer, id, secret) = (
            app.address.clone(),
            client.client_id.clone(),
            client.secret.clone(),
        );
        move || {
            Command::new("python3")
                .args([script, &issuer, &id, &secret])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "interop client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK basic canister"), "{stdout}");
    assert!(stdout.contains("OK post canister"), "{stdout}");
    assert!(stdout.contains("OK rejected tampered token"), "{stdout}");
}
