//! Review of `POST /admin/v1/explain`: inputs on which its answer and
//! `/api/verify`'s could part.

use reqwest::Method;
use serde_json::json;

use crate::explain::explain;
use crate::helpers::{json_of, spawn_app};

/// An API key limited to networks is decided by the client's address.
/// Without `source`, explain cannot know it, and must not claim a grant
/// that `/api/verify` refuses to the very client that asks (here
/// 127.0.0.1, outside `0.0.0.0/8`): it used to stand in `0.0.0.0`.
#[actix_web::test]
async fn explain_without_source_never_grants_a_key_limited_to_networks() {
    let app = spawn_app().await;
    app.create_application(json!({"client_id": "canister", "groups": ["media"]}))
        .await;
    app.create_resource(
        json!({"id": "dav", "host": "dav.example.com", "allowed_groups": ["media"]}),
    )
    .await;
    let minted = json_of(
        app.admin(Method::POST, "/applications/canister/api-keys")
            .json(&json!({"name": "lan", "source_cidrs": ["0.0.0.0/8"]})),
    )
    .await;
    let key = minted["api_key"].as_str().unwrap();

    let verified = app
        .verify("GET", "dav.example.com", "/")
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 403, "the key is outside its networks");

    let body = json!({"method": "GET", "host": "dav.example.com", "path": "/", "token": key});
    let answer = explain(&app, body.clone()).await;
    assert_ne!(answer["decision"], "granted", "{answer:#}");
    assert_eq!(answer["status"], 403, "{answer:#}");
    assert_eq!(answer["code"], "scope_source", "{answer:#}");
    assert!(
        answer["reason"].as_str().unwrap().contains("give source"),
        "{answer:#}"
    );

    // With the client's address, explain decides as /api/verify does.
    let mut from = body.clone();
    from["source"] = "127.0.0.1".into();
    assert_eq!(explain(&app, from.clone()).await["status"], 403);
    from["source"] = "0.1.2.3".into();
    let answer = explain(&app, from).await;
    assert_eq!(answer["status"], 200, "{answer:#}");
}

/// The short form of an API key is a Basic password only: sent as a
/// bearer, `/api/verify` refuses it. explain grants it as Basic
/// credentials, so its reason must say so, or an admin reads "granted"
/// for a client configured with `Authorization: Bearer ghk1_…`.
#[actix_web::test]
async fn a_short_form_grant_says_it_holds_as_basic_credentials_only() {
    let app = spawn_app().await;
    app.create_application(json!({"client_id": "canister", "groups": ["media"]}))
        .await;
    app.create_resource(json!({
        "id": "files", "host": "files.example.com", "allowed_groups": ["media"], "basic": true,
    }))
    .await;
    let minted = json_of(
        app.admin(Method::POST, "/applications/canister/api-keys")
            .json(&json!({"name": "dav"})),
    )
    .await;
    let short = minted["basic_password"].as_str().unwrap();
    let as_bearer = app
        .verify("GET", "files.example.com", "/")
        .bearer_auth(short)
        .send()
        .await
        .unwrap();
    assert_eq!(as_bearer.status(), 401);
    let as_basic = app
        .verify("GET", "files.example.com", "/")
        .basic_auth("canister", Some(short))
        .send()
        .await
        .unwrap();
    assert_eq!(as_basic.status(), 200);

    let answer = explain(
        &app,
        json!({"method": "GET", "host": "files.example.com", "path": "/", "token": short}),
    )
    .await;
    assert_eq!(answer["status"], 200, "{answer:#}");
    let reason = answer["reason"].as_str().unwrap();
    assert!(
        reason.contains("Basic") && reason.contains("not as a bearer"),
        "{reason}"
    );
}

/// A token pasted with the newline a file or a terminal adds is the same
/// token to `/api/verify` (a header value carries no surrounding
/// whitespace); explain must not refuse it as malformed.
#[actix_web::test]
async fn a_pasted_token_with_a_trailing_newline_is_the_same_token() {
    let app = spawn_app().await;
    let client = app
        .create_application(json!({"client_id": "canister", "groups": ["media"]}))
        .await;
    app.create_resource(
        json!({"id": "dav", "host": "dav.example.com", "allowed_groups": ["media"]}),
    )
    .await;
    let token = app.access_token(&client, &[]).await;
    assert_eq!(app.verify_status("dav.example.com", &token).await, 200);
    for pasted in [
        format!("{token}\n"),
        format!(" {token}\r\n"),
        format!("\t{token}"),
    ] {
        let answer = explain(
            &app,
            json!({"method": "GET", "host": "dav.example.com", "path": "/", "token": pasted}),
        )
        .await;
        assert_eq!(answer["status"], 200, "{pasted:?}: {answer:#}");
    }
}

/// explain's status is `/api/verify`'s also for what the first corpus
/// leaves out: a key scoped to hosts, paths, methods and networks, sent
/// as a bearer and as Basic, at a wildcard rule that takes Basic and a
/// more specific rule below it, on the gate's hostile paths, with WebDAV
/// methods that act on a whole tree.
#[actix_web::test]
async fn explain_answers_what_verify_answers_for_scoped_keys_and_basic() {
    use base64::Engine as _;
    let app = spawn_app().await;
    app.create_application(json!({"client_id": "canister", "groups": ["media"]}))
        .await;
    app.create_resource(json!({
        "id": "any", "host": "*.example.com", "allowed_groups": ["media"], "basic": true,
    }))
    .await;
    app.create_resource(json!({
        "id": "private", "host": "dav.example.com", "path_prefix": "/private",
        "allowed_groups": ["admins"], "basic": true,
    }))
    .await;
    app.create_resource(json!({
        "id": "nobasic", "host": "dav.example.com", "path_prefix": "/x/nb", "allowed_groups": ["media"],
    }))
    .await;
    let minted = json_of(
        app.admin(Method::POST, "/applications/canister/api-keys")
            .json(&json!({
                "name": "scoped", "hosts": ["dav.example.com"], "path_prefixes": ["/x", "/pub"],
                "methods": ["GET", "PROPFIND", "MOVE"], "source_cidrs": ["127.0.0.0/8"],
            })),
    )
    .await;
    let key = minted["api_key"].as_str().unwrap().to_string();
    let short = minted["basic_password"].as_str().unwrap().to_string();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("canister:{short}"));
    let credentials = [
        (key.clone(), format!("Bearer {key}")),
        (short.clone(), format!("Basic {basic}")),
    ];
    let mut paths: Vec<&str> = crate::gate::HOSTILE_PATHS.to_vec();
    paths.extend([
        "/",
        "/x",
        "/x/",
        "/x/f",
        "/x/nb",
        "/x/nb/f",
        "/pub/../private/s",
        "/pub%2f..%2fprivate",
        "/x/..",
        "/pub",
        "/pubx",
        "/PUB/a",
        "/x;/../private",
    ]);
    let mut compared = 0;
    let mut statuses = std::collections::BTreeMap::new();
    for (given, authorization) in &credentials {
        for method in ["GET", "PROPFIND", "DELETE", "MOVE", "PUT"] {
            for host in ["dav.example.com", "other.example.com", "DAV.example.com."] {
                for path in &paths {
                    let verified = app
                        .verify(method, host, path)
                        .header("Authorization", authorization)
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16();
                    let answer = explain(
                        &app,
                        json!({"method": method, "host": host, "path": path,
                               "token": given, "source": "127.0.0.1"}),
                    )
                    .await;
                    assert_eq!(
                        answer["status"],
                        verified,
                        "{method} {host} {path} with {}: {answer:#}",
                        &authorization[..6]
                    );
                    *statuses.entry(verified).or_insert(0) += 1;
                    compared += 1;
                }
            }
        }
    }
    eprintln!("explain matched /api/verify on {compared} cases: {statuses:?}");
    for status in [200, 401, 403] {
        assert!(
            statuses.get(&status).copied().unwrap_or(0) > 0,
            "{statuses:?}"
        );
    }
}
