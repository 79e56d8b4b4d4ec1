//! Scoped keys and last use across a fleet of real processes: a PATCH on
//! the primary narrows a key on a replica within a second; a use on a
//! replica shows in the primary's listing within the report interval and
//! survives a `kill -9` of the primary.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fleet::{DAV, TestFleet, until};
use crate::helpers::Node;

async fn verify(fleet: &TestFleet, node: &Node, method: &str, key: &str, from: &str) -> u16 {
    fleet
        .client
        .get(node.url("/api/verify"))
        .header("X-Forwarded-Method", method)
        .header("X-Forwarded-Host", DAV)
        .header("X-Forwarded-Uri", "/photos/")
        .header("X-Forwarded-For", from)
        .bearer_auth(key)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn record(fleet: &TestFleet, id: &str) -> Value {
    let listing = fleet.admin_api().api_keys("canister", "").await.body;
    listing["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .cloned()
        .unwrap()
}

#[actix_web::test]
async fn scopes_narrow_on_replicas_and_last_use_comes_back_from_them() {
    let mut fleet = TestFleet::start("5").await;
    fleet.register().await;
    let minted = fleet
        .admin_api()
        .create_api_key(
            "canister",
            &json!({
                "name": "scoped", "hosts": [DAV], "methods": ["GET", "PROPFIND"],
                "source_cidrs": ["198.51.100.0/24"],
            }),
        )
        .await
        .body;
    let key = minted["api_key"].as_str().unwrap().to_string();
    let id = minted["id"].as_str().unwrap().to_string();
    let plain = fleet.mint_api_key().await;
    let (plain_key, plain_id) = (
        plain["api_key"].as_str().unwrap().to_string(),
        plain["id"].as_str().unwrap().to_string(),
    );
    let replica = &fleet.replica_b;
    until("the scoped key verifies on the replica", async || {
        verify(&fleet, replica, "GET", &key, "198.51.100.7").await == 200
    })
    .await;
    // Its scopes hold there too.
    assert_eq!(
        verify(&fleet, replica, "PUT", &key, "198.51.100.7").await,
        403
    );
    assert_eq!(
        verify(&fleet, replica, "GET", &key, "203.0.113.7").await,
        403
    );
    assert_eq!(
        verify(&fleet, replica, "PROPFIND", &key, "198.51.100.7").await,
        207 - 7
    );

    // Narrowed on the primary: PROPFIND no more, on the replica within a second.
    let patched = fleet
        .admin_api()
        .update_api_key(&id, &json!({"methods": ["GET"]}))
        .await;
    assert_eq!(patched.status, 200);
    let took = until("the narrowed scopes reach the replica", async || {
        verify(&fleet, replica, "PROPFIND", &key, "198.51.100.7").await == 403
    })
    .await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(
        verify(&fleet, replica, "GET", &key, "198.51.100.7").await,
        200
    );

    // A replica that starts now gets the scopes in its snapshot.
    let dir = tempfile::tempdir().unwrap();
    let late = Node::start(
        dir.path(),
        &[
            ("GATEHOUSE_ROLE", "replica"),
            ("GATEHOUSE_PRIMARY_URL", fleet.primary_url.as_str()),
            ("GATEHOUSE_REPLICA_TOKEN", crate::fleet::REPLICA_TOKEN),
            ("GATEHOUSE_ISSUER", crate::fleet::ISSUER),
        ],
    )
    .await;
    until("the late replica knows the key", async || {
        verify(&fleet, &late, "GET", &key, "198.51.100.7").await == 200
    })
    .await;
    assert_eq!(
        verify(&fleet, &late, "PROPFIND", &key, "198.51.100.7").await,
        403
    );

    // Never used: null. Used on a replica: the primary lists it soon after.
    assert!(record(&fleet, &plain_id).await["last_used_at"].is_null());
    assert_eq!(
        verify(&fleet, replica, "GET", &plain_key, "198.51.100.9").await,
        200
    );
    until("the replica's use reaches the primary", async || {
        !record(&fleet, &plain_id).await["last_used_at"].is_null()
    })
    .await;
    let used = record(&fleet, &plain_id).await;
    assert_eq!(used["last_used_from"], "198.51.100.0/24");
    let unused = fleet
        .admin_api()
        .api_keys("canister", "?unused_for=1h")
        .await
        .body;
    let stale: Vec<&str> = unused["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert!(!stale.contains(&plain_id.as_str()), "{stale:?}");

    // kill -9 of the primary: what it acknowledged was on disk.
    fleet.primary.take().unwrap().kill9();
    fleet.restart_primary().await;
    let after = record(&fleet, &plain_id).await;
    assert_eq!(after["last_used_at"], used["last_used_at"]);
    assert_eq!(after["last_used_from"], "198.51.100.0/24");
    assert_eq!(record(&fleet, &id).await["methods"], json!(["GET"]));
}
