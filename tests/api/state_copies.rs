//! The copies beside sled that make a large primary start fast: they are a
//! shortcut, never a second truth. What the log holds after a copy is
//! replayed; a copy from another history (a restored backup) is ignored.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Node, call_text};

const NODE_ENV: &[(&str, &str)] = &[("GATEHOUSE_ADMIN_TOKEN", ADMIN_TOKEN)];

async fn client_ids(node: &Node) -> Vec<(String, bool)> {
    let listed = node.admin_api().get("/applications").await.body;
    let mut ids: Vec<(String, bool)> = listed["applications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|app| {
            (
                app["client_id"].as_str().unwrap().to_string(),
                app["active"].as_bool().unwrap(),
            )
        })
        .collect();
    ids.sort();
    ids
}

async fn create(node: &Node, client_id: &str) {
    node.create_application(json!({"client_id": client_id, "name": client_id, "groups": ["g"]}))
        .await;
}

async fn send(node: &Node, method: Method, path: &str, body: Option<Value>) {
    let mut request = node.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let status = call_text(request).await.status;
    assert!(status.is_success(), "{path}: {status}");
}

fn owned(ids: &[(&str, bool)]) -> Vec<(String, bool)> {
    ids.iter()
        .map(|(id, active)| (id.to_string(), *active))
        .collect()
}

#[actix_web::test]
async fn changes_after_the_copy_are_replayed_and_a_clean_stop_writes_it_anew() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), NODE_ENV).await;
    create(&node, "kept").await;
    create(&node, "deactivated").await;
    create(&node, "deleted").await;
    // The copy was written at the first start (no records): every change
    // since is only in the log when the node dies.
    let log = node.kill9();
    assert!(log.contains("applications: 0 read from the table"), "{log}");

    let node = Node::start(dir.path(), NODE_ENV).await;
    let log = std::fs::read_to_string(&node.log).unwrap();
    assert!(
        log.contains("applications: 0 from the copy at version 0, 3 changes replayed"),
        "{log}"
    );
    let path = "/applications/deactivated";
    send(&node, Method::PATCH, path, Some(json!({"active": false}))).await;
    send(&node, Method::DELETE, "/applications/deleted", None).await;
    let expected = owned(&[("deactivated", false), ("kept", true)]);
    assert_eq!(client_ids(&node).await, expected);
    node.kill9();

    let node = Node::start(dir.path(), NODE_ENV).await;
    assert_eq!(client_ids(&node).await, expected, "after a kill -9");
    node.stop();
    let node = Node::start(dir.path(), NODE_ENV).await;
    let log = std::fs::read_to_string(&node.log).unwrap();
    assert!(
        log.contains("applications: 2 from the copy at version 5, 0 changes replayed"),
        "{log}"
    );
    assert_eq!(client_ids(&node).await, expected, "after a clean stop");
}

/// A copy written on a history that a restored backup forgot names a
/// version the log has again, with another hash: it must not bring back
/// what that history held (here an application, with its secret).
#[actix_web::test]
async fn a_copy_from_a_forgotten_history_brings_nothing_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backup = tempfile::tempdir().unwrap();
    Node::start(dir.path(), NODE_ENV).await.stop();
    crate::fleet_recovery::copy_dir(&data, backup.path());

    let node = Node::start(dir.path(), NODE_ENV).await;
    create(&node, "forgotten").await;
    node.stop();
    let forgotten_copy = std::fs::read(data.join("applications.bin")).unwrap();

    std::fs::remove_dir_all(&data).unwrap();
    crate::fleet_recovery::copy_dir(backup.path(), &data);
    let node = Node::start(dir.path(), NODE_ENV).await;
    create(&node, "current").await;
    node.kill9();
    // Version 1 in both histories: only the chain hash tells them apart.
    std::fs::write(data.join("applications.bin"), forgotten_copy).unwrap();

    let node = Node::start(dir.path(), NODE_ENV).await;
    let log = std::fs::read_to_string(&node.log).unwrap();
    assert!(log.contains("applications: 1 read from the table"), "{log}");
    assert_eq!(client_ids(&node).await, owned(&[("current", true)]));
}

#[actix_web::test]
async fn a_damaged_copy_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), NODE_ENV).await;
    create(&node, "app").await;
    node.stop();
    let copy = dir.path().join("data/applications.bin");
    let mut bytes = std::fs::read(&copy).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&copy, bytes).unwrap();

    let node = Node::start(dir.path(), NODE_ENV).await;
    let log = std::fs::read_to_string(&node.log).unwrap();
    assert!(log.contains("applications: 1 read from the table"), "{log}");
    assert_eq!(client_ids(&node).await, owned(&[("app", true)]));
}

/// A store from a build before the API key index: the node indexes it
/// when it opens it, the expiry gauge counts the old keys, and an
/// application's first listing finds its old keys by a pass over the
/// records and indexes them, so that later listings and a restart agree.
#[actix_web::test]
async fn a_store_from_before_the_key_index_is_indexed_and_lists_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), NODE_ENV).await;
    create(&node, "old").await;
    let body = json!({"name": "indexed", "expires_in": 2 * 86_400});
    node.admin_api().create_api_key("old", &body).await;
    node.stop();

    // A key the older build minted: its record only, past the index.
    let now = chrono::Utc::now();
    let unindexed = gatehouse::api_keys::ApiKeyRecord {
        id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        client_id: "old".into(),
        name: "from before".into(),
        created_at: now,
        expires_at: Some(now + chrono::Duration::days(3)),
        revoked_at: None,
        kid: None,
    };
    {
        let store = gatehouse::store::Store::open(&dir.path().join("data")).unwrap();
        let record = [(unindexed.id.as_str(), &unindexed)];
        store.api_keys.put_many(record).unwrap();
        store.key_index.forget().unwrap();
    }

    let node = Node::start(dir.path(), NODE_ENV).await;
    let log = std::fs::read_to_string(&node.log).unwrap();
    assert!(
        log.contains("indexed the API keys of a store from before the index (2 records, once)"),
        "{log}"
    );
    let expiring = async |node: &Node| {
        let series = r#"gatehouse_api_keys_expiring{within="7d"}"#;
        crate::helpers::metric(&crate::helpers::http_client(), node.url("/metrics"), series).await
    };
    let names = async |node: &Node| -> Vec<String> {
        let listed = node
            .admin_api()
            .get("/applications/old/api-keys")
            .await
            .body;
        listed["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(expiring(&node).await, Some(2.0));
    // The first listing passes over the records; the second reads the index.
    assert_eq!(names(&node).await, ["indexed", "from before"]);
    assert_eq!(names(&node).await, ["indexed", "from before"]);
    // Revoking the old key takes it out of the gauge, also after a kill -9.
    let response = node.admin_api().revoke_api_key(&unindexed.id).await;
    assert_eq!(response.status, 204);
    assert_eq!(expiring(&node).await, Some(1.0));
    node.kill9();
    let node = Node::start(dir.path(), NODE_ENV).await;
    assert_eq!(expiring(&node).await, Some(1.0));
    assert_eq!(names(&node).await, ["indexed", "from before"]);
}
