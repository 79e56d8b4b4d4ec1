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

/// Acceptance for rotation timing: PyJWKClient, caching the JWKS for the
/// max-age it is told (and a strict variant that never refetches early),
/// verifies every token issued before, during and after a rotation.
#[actix_web::test]
async fn pyjwkclient_verifies_every_token_across_a_rotation() {
    if !python_has("jwt, requests") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = crate::helpers::Node::start(
        dir.path(),
        &[
            ("GATEHOUSE_ADMIN_TOKEN", crate::helpers::ADMIN_TOKEN),
            ("GATEHOUSE_JWKS_MAX_AGE", "2"),
        ],
    )
    .await;
    let secret = node
        .create_application(serde_json::json!({"client_id": "canister"}))
        .await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/jwks_rotation.py"
    );
    let issuer = node.url("");
    let output = actix_web::web::block(move || {
        Command::new("python3")
            .args([
                script,
                &issuer,
                crate::helpers::ADMIN_TOKEN,
                "canister",
                &secret,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("jwks rotation: {stdout}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["failure_count"], 0, "{report}");
    let kids = report["kids"].as_array().unwrap();
    assert_eq!(
        kids.len(),
        2,
        "tokens from both keys were checked: {report}"
    );
    assert_eq!(kids[1], report["new_kid"]);
    assert!(report["tokens"].as_u64().unwrap() > 20, "{report}");
}
