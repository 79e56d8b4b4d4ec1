//! The primary's side of replication: `GET /internal/v1/state`, a
//! long-poll of changes (or a snapshot) behind the replica token.

use gatehouse::config::Secret;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, call, call_text, spawn_app, spawn_app_with};

const REPLICA_TOKEN: &str = "replica-token-for-tests-0123456789abcdef";

fn state(app: &TestApp, query: &str) -> reqwest::RequestBuilder {
    app.client
        .get(app.url(&format!("/internal/v1/state{query}")))
        .bearer_auth(REPLICA_TOKEN)
}

/// A primary with canister (group media) and one API key for it, named
/// `name`: the admin API's answer.
async fn primary_with_key(name: &str) -> (TestApp, Value) {
    let app = primary().await;
    app.create_application(json!({"client_id": "canister", "groups": ["media"]}))
        .await;
    let minted = app
        .admin_api()
        .create_api_key("canister", &json!({ "name": name }))
        .await
        .body;
    (app, minted)
}

async fn primary() -> TestApp {
    spawn_app_with(|s| s.replica_token = Some(Secret::new(REPLICA_TOKEN))).await
}

#[actix_web::test]
async fn state_needs_the_replica_token_and_replication_configured() {
    let app = primary().await;
    let response = app.get("/internal/v1/state").await;
    assert_eq!(response.status, 401);
    let response = call(
        app.client
            .get(app.url("/internal/v1/state"))
            .bearer_auth("wrong"),
    )
    .await;
    assert_eq!(response.status, 401);
    let body = response.body;
    assert_eq!(body["error"], "invalid_token");
    // The admin token is not a replica token.
    let response = call(
        app.client
            .get(app.url("/internal/v1/state"))
            .bearer_auth(crate::helpers::ADMIN_TOKEN),
    )
    .await;
    assert_eq!(response.status, 401);

    let plain = spawn_app().await;
    let response = call(
        plain
            .client
            .get(plain.url("/internal/v1/state"))
            .bearer_auth(REPLICA_TOKEN),
    )
    .await;
    assert_eq!(response.status, 403);
}

/// Where an answer leaves a replica: (epoch, version, hash) from its headers.
fn position(response: &Answer) -> (String, u64, String) {
    let header = |name: &str| response.header(name).to_string();
    (
        header("x-gatehouse-epoch"),
        header("x-gatehouse-state-version").parse().unwrap(),
        header("x-gatehouse-state-hash"),
    )
}

fn kind(response: &Answer) -> &str {
    response.header("x-gatehouse-state-kind")
}

fn from((epoch, version, hash): &(String, u64, String)) -> String {
    format!("?since={version}&epoch={epoch}&hash={hash}")
}

#[actix_web::test]
async fn a_snapshot_carries_the_whole_state_and_changes_follow_it() {
    let app = primary().await;
    app.create_application(json!({"client_id": "canister", "groups": ["media"]}))
        .await;
    app.create_resource(
        json!({"id": "dav", "host": "dav.example.com", "allowed_groups": ["media"]}),
    )
    .await;
    // A replica that names no history (new, or from before 0.2): a snapshot.
    let response = call(state(&app, "?since=0")).await;
    assert_eq!(response.status, 200);
    assert_eq!(kind(&response), "snapshot");
    let at = position(&response);
    let document = response.body;
    assert_eq!(document["version"], at.1);
    assert_eq!(document["epoch"], at.0.as_str());
    assert_eq!(document["hash"], at.2.as_str());
    assert_eq!(document["applications"][0]["client_id"], "canister");
    assert!(
        document["applications"][0]["secret"].is_string(),
        "digests travel, for token issuance"
    );
    assert_eq!(document["resources"][0]["id"], "dav");
    let jwks = app.get("/.well-known/jwks.json").await.body;
    assert_eq!(document["public_keys"][0][0], jwks["keys"][0]["kid"]);
    assert_eq!(document["public_keys"][0][1], jwks["keys"][0]["x"]);

    // Nothing new since then: 304, at once without wait, after it with.
    let response = call(state(&app, &from(&at))).await;
    assert_eq!(response.status, 304);
    let response = call(state(&app, &format!("{}&wait=1", from(&at)))).await;
    assert_eq!(response.status, 304);

    // One change: just that change, and the position after it.
    app.create_application(json!({"client_id": "other"})).await;
    let response = call(state(&app, &from(&at))).await;
    assert_eq!(response.status, 200);
    assert_eq!(kind(&response), "changes");
    let next = position(&response);
    assert_eq!(next.1, at.1 + 1);
    assert_eq!(next.0, at.0, "same store, same epoch");
    let changes = response.body;
    assert_eq!(changes["changes"].as_array().unwrap().len(), 1);
    assert_eq!(changes["changes"][0]["change"]["type"], "put_application");
    assert_eq!(
        changes["changes"][0]["change"]["application"]["client_id"],
        "other"
    );
    assert_eq!(changes["hash"], next.2.as_str());

    // A replica from before the change log (no epoch) is answered as it
    // always was: 304 while nothing changed, not a snapshot per poll; a
    // version it cannot have seen here gets a snapshot.
    let response = call(state(&app, &format!("?since={}&wait=1", next.1))).await;
    assert_eq!(response.status, 304);
    let response = call(state(&app, &format!("?since={}", at.1))).await;
    assert_eq!(kind(&response), "snapshot", "something changed since");
    let response = call(state(&app, &format!("?since={}", next.1 + 1_000_000))).await;
    assert_eq!(kind(&response), "snapshot", "another primary's version");

    // Any other history gets a snapshot: another epoch, a hash that is not
    // this history's at that version, a version ahead of the primary's.
    for other in [
        (String::from("another-epoch"), at.1, at.2.clone()),
        (at.0.clone(), at.1, String::from("AAAAAAAAAAAAAAAAAAAAAA")),
        (at.0.clone(), next.1 + 10, next.2.clone()),
    ] {
        let response = call(state(&app, &from(&other))).await;
        assert_eq!(response.status, 200);
        assert_eq!(kind(&response), "snapshot", "{other:?}");
        assert_eq!(position(&response), next);
    }
}

#[actix_web::test]
async fn a_waiting_request_wakes_with_a_revocation() {
    let (app, minted) = primary_with_key("k").await;
    let id = minted["id"].as_str().unwrap().to_string();
    let at = position(&call(state(&app, "")).await);

    // Waits up to 30 s; a change must end the wait with the change, where
    // a missed wake-up would end it with a 304.
    let waiting = call(state(&app, &format!("{}&wait=30", from(&at))));
    let revoke = async {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
        app.admin_api().revoke_api_key(&id).await
    };
    let (response, revoked) = futures_util::future::join(waiting, revoke).await;
    assert_eq!(revoked.status, 204);
    assert_eq!(response.status, 200);
    assert_eq!(kind(&response), "changes");
    let at = position(&response);
    let document = response.body;
    assert_eq!(
        document["changes"][0]["change"],
        json!({"type": "revoke_api_key", "id": id})
    );

    // RFC 7009 token revocations travel too.
    let client = app.create_application(json!({"client_id": "other"})).await;
    let token = app.access_token(&client, &[]).await;
    call(
        app.client
            .post(app.url("/oauth/revoke"))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(&[("token", token.as_str())]),
    )
    .await;
    let document = call(state(&app, &from(&at))).await.body;
    let (_, claims) = crate::helpers::jwt_parts(&token);
    let last = document["changes"].as_array().unwrap().last().unwrap();
    assert_eq!(
        last["change"],
        json!({"type": "revoke_access_token", "jti": claims["jti"], "exp": claims["exp"]})
    );
    // And a snapshot carries them as well.
    let snapshot = call(state(&app, "")).await.body;
    assert_eq!(snapshot["revoked_api_keys"], json!([id]));
    assert_eq!(snapshot["revoked_access_tokens"][0][0], claims["jti"]);
}

/// What a replica reports is taken as it should have been sent: its
/// token is needed, a use from the future is now, minutes are whole and an
/// address is kept as its network only (an id of no key is dropped too).
#[actix_web::test]
async fn usage_reports_are_held_to_what_a_replica_may_say() {
    let (app, minted) = primary_with_key("k").await;
    let id = minted["id"].as_str().unwrap();
    let report = json!({"uses": [
        {"id": id, "at": "2999-01-01T00:00:42Z", "from": "203.0.113.77/32"},
        {"id": "AAAAAAAAAAAAAAAAAAAAAA", "at": "2020-01-01T00:00:00Z", "from": "0.0.0.0/0"},
    ]});
    let post = |token: &str| {
        app.client
            .post(app.url("/internal/v1/usage"))
            .bearer_auth(token)
            .json(&report)
    };
    assert_eq!(call_text(post("wrong")).await.status, 401);
    assert_eq!(call_text(post(REPLICA_TOKEN)).await.status, 204);
    for bad in [
        json!({"uses": "x"}),
        json!({"uses": [{"id": id}]}),
        json!([]),
    ] {
        let response = call(
            app.client
                .post(app.url("/internal/v1/usage"))
                .bearer_auth(REPLICA_TOKEN)
                .json(&bad),
        )
        .await;
        assert_eq!(response.status, 400, "{bad}");
    }

    let listed = app.admin_api().api_keys("canister", "").await.body;
    let key = &listed["api_keys"][0];
    assert_eq!(key["last_used_from"], "203.0.113.0/24");
    let at = chrono::DateTime::parse_from_rfc3339(key["last_used_at"].as_str().unwrap()).unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(at.timestamp() <= now && at.timestamp() > now - 120, "{at}");
    assert_eq!(at.timestamp() % 60, 0, "{at}");
}

#[actix_web::test]
async fn a_replica_that_does_not_enforce_scopes_is_refused_once_a_key_has_them() {
    let (app, plain) = primary_with_key("unscoped").await;
    // Without scoped keys every replica may follow, old or new.
    for query in ["", "?features=scopes"] {
        assert_eq!(call_text(state(&app, query)).await.status, 200, "{query}");
    }

    let scoped = app
        .admin_api()
        .update_api_key(plain["id"].as_str().unwrap(), &json!({"methods": ["GET"]}))
        .await;
    assert_eq!(scoped.status, 200);
    // An old replica (no features, or others) would accept the key for PUT.
    for query in [
        "",
        "?since=1",
        "?features=",
        "?features=scopesx",
        "?features=other",
    ] {
        let refused = call(state(&app, query)).await;
        assert_eq!(refused.status, 409, "{query}");
        let body = refused.body;
        assert_eq!(body["error"], "replica_outdated", "{query}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("upgrade"),
            "{body}"
        );
    }
    for query in ["?features=scopes", "?features=other,scopes"] {
        let answer = call(state(&app, query)).await;
        assert_eq!(answer.status, 200, "{query}");
        let document = answer.body;
        assert_eq!(document["api_key_scopes"].as_array().unwrap().len(), 1);
    }
}
