//! A primary and two replicas as real processes on loopback.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, AdminApi, Answer, Node, call, free_port};

pub(crate) const REPLICA_TOKEN: &str = "fleet-replica-token-0123456789abcdef";
pub(crate) const DAV: &str = "dav.example.com";
/// Not the primary's own URL, so that adopting it is seen to happen.
pub(crate) const ISSUER: &str = "https://gatehouse.fleet.test";

pub(crate) async fn status(client: &reqwest::Client, node: &Node, credential: &str) -> u16 {
    client
        .get(node.url("/api/verify"))
        .header("X-Forwarded-Host", DAV)
        .bearer_auth(credential)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

pub(crate) async fn ready(client: &reqwest::Client, node: &Node) -> u16 {
    client
        .get(node.url("/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Polls `check` until it holds (or 30 s pass); returns how long it took.
pub(crate) async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check().await {
        if start.elapsed() > Duration::from_secs(30) {
            let logs: Vec<String> = LOGS.with(|l| {
                l.borrow()
                    .iter()
                    .map(|p| {
                        format!(
                            "== {}\n{}",
                            p.display(),
                            std::fs::read_to_string(p).unwrap_or_default()
                        )
                    })
                    .collect()
            });
            panic!("not reached in 30 s: {what}\n{}", logs.join("\n"));
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

thread_local! {
    /// The node logs to show when a wait fails.
    static LOGS: std::cell::RefCell<Vec<std::path::PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The primary's key directory as a replica sees a shared volume.
fn mount_keys(from: &Path, to: &Path) {
    std::os::unix::fs::symlink(from, to).unwrap();
}

/// A primary and two replicas as processes. The issuer is not the
/// primary's URL: replica B is configured with it, replica A adopts it.
pub(crate) struct TestFleet {
    pub(crate) primary: Option<Node>,
    pub(crate) replica_a: Node,
    pub(crate) replica_b: Node,
    pub(crate) primary_url: String,
    pub(crate) port: u16,
    pub(crate) primary_dir: tempfile::TempDir,
    _replica_dirs: (tempfile::TempDir, tempfile::TempDir),
    pub(crate) client: reqwest::Client,
}

impl TestFleet {
    /// `max_staleness` for the replicas; replica A sees the primary's key
    /// directory (mounted, as a shared volume), B has no keys.
    pub(crate) async fn start(max_staleness: &str) -> Self {
        let (primary_dir, dir_a, dir_b) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let port = free_port();
        let primary_url = format!("http://127.0.0.1:{port}");
        let primary = Self::start_primary(primary_dir.path(), port).await;
        let replica_env = [
            ("GATEHOUSE_ROLE", "replica"),
            ("GATEHOUSE_PRIMARY_URL", primary_url.as_str()),
            ("GATEHOUSE_REPLICA_TOKEN", REPLICA_TOKEN),
            ("GATEHOUSE_MAX_STALENESS", max_staleness),
            // Polls that run ahead of a sync fail; as in test_settings,
            // they must not lock the test's own address out.
            ("GATEHOUSE_AUTH_FAILURE_LIMIT", "1000"),
        ];
        mount_keys(&primary_dir.path().join("keys"), &dir_a.path().join("keys"));
        let replica_a = Node::start(dir_a.path(), &replica_env).await;
        let configured = [("GATEHOUSE_ISSUER", ISSUER)];
        let replica_b = Node::start(dir_b.path(), &[&replica_env[..], &configured].concat()).await;
        LOGS.with(|l| {
            l.borrow_mut().extend([
                primary.log.clone(),
                replica_a.log.clone(),
                replica_b.log.clone(),
            ])
        });
        TestFleet {
            primary: Some(primary),
            replica_a,
            replica_b,
            primary_url,
            port,
            primary_dir,
            _replica_dirs: (dir_a, dir_b),
            client: crate::helpers::http_client(),
        }
    }

    pub(crate) async fn start_primary(dir: &Path, port: u16) -> Node {
        Node::start_on(dir, &Self::primary_env(), port).await
    }

    pub(crate) fn primary_env() -> [(&'static str, &'static str); 5] {
        [
            ("GATEHOUSE_ADMIN_TOKEN", ADMIN_TOKEN),
            ("GATEHOUSE_REPLICA_TOKEN", REPLICA_TOKEN),
            ("GATEHOUSE_ISSUER", ISSUER),
            // Rotations wait max-age before signing: short, for the tests.
            ("GATEHOUSE_JWKS_MAX_AGE", "1"),
            // A short log, so that a lagging replica is soon past it.
            ("GATEHOUSE_CHANGE_LOG_KEEP", "20"),
        ]
    }

    pub(crate) fn primary(&self) -> &Node {
        self.primary.as_ref().unwrap()
    }

    /// Starts the primary again, on its port and data.
    pub(crate) async fn restart_primary(&mut self) {
        self.primary = Some(Self::start_primary(self.primary_dir.path(), self.port).await);
    }

    /// The primary's admin API.
    pub(crate) fn admin_api(&self) -> AdminApi {
        AdminApi::new(self.client.clone(), &self.primary_url)
    }

    /// Canister (group media) and a rule for DAV; returns its secret.
    /// A new API key for canister: the admin API's answer.
    pub(crate) async fn mint_api_key(&self) -> Value {
        self.admin_api()
            .create_api_key("canister", &json!({"name": "k"}))
            .await
            .body
    }

    pub(crate) async fn register(&self) -> String {
        crate::helpers::register_canister(&self.primary_url).await
    }
}

#[actix_web::test]
async fn replicas_follow_the_primary_and_outlive_it() {
    let mut fleet = TestFleet::start("2").await;
    let (client, primary_url) = (fleet.client.clone(), fleet.primary_url.clone());
    let secret = fleet.register().await;
    let minted = fleet.mint_api_key().await;
    let key = minted["api_key"].as_str().unwrap().to_string();
    let token = fleet.primary().issue_token("canister", &secret).await;
    let (replica_a, replica_b) = (&fleet.replica_a, &fleet.replica_b);

    // A token and a key from the primary verify on both replicas.
    for replica in [replica_a, replica_b] {
        until("the token verifies on the replica", async || {
            status(&client, replica, &token).await == 200
        })
        .await;
        assert_eq!(status(&client, replica, &key).await, 200);
    }
    // A, configured without an issuer, took the primary's.
    let metadata = call(client.get(replica_a.url("/.well-known/oauth-authorization-server")))
        .await
        .body;
    assert_eq!(metadata["issuer"], ISSUER);
    // Replica A issues tokens with the mounted key; B, without one, says so.
    let issued_on_a = replica_a.issue_token("canister", &secret).await;
    assert_eq!(status(&client, replica_b, &issued_on_a).await, 200);
    let refused = call(
        client
            .post(replica_b.url("/oauth/token"))
            .basic_auth("canister", Some(&secret))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(refused.status, 503);

    // A revocation on the primary reaches both replicas.
    let revoked_at = Instant::now();
    let response = fleet
        .admin_api()
        .revoke_api_key(minted["id"].as_str().unwrap())
        .await;
    assert_eq!(response.status, 204);
    until("A refuses the revoked key", async || {
        status(&client, replica_a, &key).await == 401
    })
    .await;
    until("B refuses the revoked key", async || {
        status(&client, replica_b, &key).await == 401
    })
    .await;
    println!(
        "revocation propagated to both replicas in {:?}",
        revoked_at.elapsed()
    );

    // Admin writes on a replica are refused, naming the primary.
    let response = call(
        client
            .post(replica_a.url("/admin/v1/applications"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"client_id": "sneaky"})),
    )
    .await;
    assert_eq!(response.status, 403);
    let body = response.body;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains(&primary_url),
        "{body}"
    );

    // The primary dies: replicas keep verifying, then report their copy stale.
    fleet.primary.take().unwrap().kill9();
    let (replica_a, replica_b) = (&fleet.replica_a, &fleet.replica_b);
    assert_eq!(status(&client, replica_a, &token).await, 200);
    assert_eq!(status(&client, replica_b, &key).await, 401);
    until("A reports a stale copy", async || {
        ready(&client, replica_a).await == 503
    })
    .await;
    until("B reports a stale copy", async || {
        ready(&client, replica_b).await == 503
    })
    .await;
    assert_eq!(
        status(&client, replica_b, &token).await,
        200,
        "a stale replica still serves its copy"
    );

    // The primary returns: replicas catch up, changes flow again.
    fleet.restart_primary().await;
    let (replica_a, replica_b) = (&fleet.replica_a, &fleet.replica_b);
    until("A is fresh again", async || {
        ready(&client, replica_a).await == 200
    })
    .await;
    until("B is fresh again", async || {
        ready(&client, replica_b).await == 200
    })
    .await;
    let response = fleet.admin_api().revoke_tokens("canister").await;
    assert_eq!(response.status, 200);
    until("B refuses the old token", async || {
        status(&client, replica_b, &token).await == 401
    })
    .await;
    until("A refuses the old token", async || {
        status(&client, replica_a, &token).await == 401
    })
    .await;
}

#[actix_web::test]
async fn rotation_under_traffic_rejects_no_valid_token() {
    let fleet = TestFleet::start("30").await;
    let client = fleet.client.clone();
    let secret = fleet.register().await;
    let (primary, replicas) = (fleet.primary(), [&fleet.replica_a, &fleet.replica_b]);
    let old_token = primary.issue_token("canister", &secret).await;
    let old_kid = crate::helpers::jwt_parts(&old_token).0["kid"].clone();
    for replica in replicas {
        until("the replica knows the application", async || {
            status(
                &client,
                replica,
                &primary.issue_token("canister", &secret).await,
            )
            .await
                == 200
        })
        .await;
    }

    // Continuous traffic: every token minted on the primary is verified at
    // once on both replicas, before, during and after the rotation.
    let traffic = async {
        let (mut checked, mut rejected, mut kids) =
            (0, Vec::new(), std::collections::HashSet::new());
        let start = Instant::now();
        let mut rotated_at = None;
        // Until a second after the new key first signs.
        while rotated_at.is_none_or(|at: Instant| at.elapsed() < Duration::from_secs(1))
            && start.elapsed() < Duration::from_secs(30)
        {
            let token = primary.issue_token("canister", &secret).await;
            if kids.len() > 1 && rotated_at.is_none() {
                rotated_at = Some(Instant::now());
            }
            kids.insert(
                crate::helpers::jwt_parts(&token).0["kid"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
            for replica in replicas {
                checked += 1;
                let code = status(&client, replica, &token).await;
                if code != 200 {
                    rejected.push(code);
                }
            }
        }
        (checked, rejected, kids)
    };
    let rotation = async {
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        fleet.admin_api().rotate_keys().await
    };
    let ((checked, rejected, kids), rotated) = futures_util::future::join(traffic, rotation).await;
    assert_eq!(rotated.status, 202);
    let new_kid = rotated.body["kid"].clone();
    println!(
        "rotation under traffic: {checked} verifications, {} rejected",
        rejected.len()
    );
    assert!(
        rejected.is_empty(),
        "valid tokens rejected during rotation: {rejected:?}"
    );
    assert!(
        kids.contains(new_kid.as_str().unwrap()),
        "tokens were signed with the new key during the run"
    );
    assert!(kids.contains(old_kid.as_str().unwrap()));
    for replica in replicas {
        let response = call(client.get(replica.url("/.well-known/jwks.json"))).await;
        assert_eq!(
            response.headers["cache-control"], "public, max-age=1",
            "replicas serve the max-age their primary's rotations wait for"
        );
        let jwks = response.body;
        let kids: Vec<&Value> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| &k["kid"])
            .collect();
        assert!(
            kids.contains(&&old_kid) && kids.contains(&&new_kid),
            "{jwks}"
        );
    }

    // The replica holding the keys signs with the one the primary names;
    // the one holding none refuses to issue rather than sign with another.
    let kid_of = |token: &str| crate::helpers::jwt_parts(token).0["kid"].clone();
    until("replica A issues with the new key", async || {
        kid_of(&fleet.replica_a.issue_token("canister", &secret).await) == new_kid
    })
    .await;
    let refused = call(
        client
            .post(fleet.replica_b.url("/oauth/token"))
            .basic_auth("canister", Some(&secret))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(refused.status, 503);

    // Retiring the old key: what it signed stops verifying on every node.
    assert_eq!(status(&client, primary, &old_token).await, 200);
    let retired = fleet
        .admin_api()
        .retire_key(old_kid.as_str().unwrap())
        .await;
    assert_eq!(retired.status, 204);
    for node in [primary, &fleet.replica_a, &fleet.replica_b] {
        until("the retired key's token is refused", async || {
            status(&client, node, &old_token).await == 401
        })
        .await;
    }
    // The signing key itself cannot be retired.
    let active = fleet
        .admin_api()
        .retire_key(new_kid.as_str().unwrap())
        .await;
    assert_eq!(active.status, 409);
}

/// Deleting and re-creating an application (same client_id) invalidates
/// every token issued before, on every node: those the primary issued and
/// those a replica issued, whatever the second.
#[actix_web::test]
async fn recreation_leaves_no_earlier_token_on_any_node() {
    let fleet = TestFleet::start("30").await;
    let client = fleet.client.clone();
    let mut secret = fleet.register().await;
    let (primary, replica) = (fleet.primary(), &fleet.replica_a);
    let mut earlier: Vec<String> = Vec::new();
    for round in 0..10 {
        let from_primary = primary.issue_token("canister", &secret).await;
        until("the replica knows this application", async || {
            status(&client, replica, &from_primary).await == 200
        })
        .await;
        let from_replica = replica.issue_token("canister", &secret).await;
        assert_eq!(
            status(&client, primary, &from_replica).await,
            200,
            "round {round}"
        );
        earlier.extend([from_primary, from_replica]);

        let deleted = fleet.admin_api().delete_application("canister").await;
        assert_eq!(deleted.status, 204);
        let created = fleet
            .admin_api()
            .create_application(&json!({"client_id": "canister", "groups": ["media"]}))
            .await
            .body;
        secret = created["client_secret"].as_str().unwrap().to_string();
        let fresh = primary.issue_token("canister", &secret).await;
        until("the replica has the new application", async || {
            status(&client, replica, &fresh).await == 200
        })
        .await;
        for token in &earlier {
            assert_eq!(status(&client, primary, token).await, 401, "round {round}");
            assert_eq!(status(&client, replica, token).await, 401, "round {round}");
            // Replica B may not have the new state yet; once it has, no
            // earlier token passes there either.
            until("replica B refuses the earlier token", async || {
                status(&client, &fleet.replica_b, token).await == 401
            })
            .await;
        }
    }
}

async fn revoke_at(
    client: &reqwest::Client,
    node: &Node,
    (client_id, secret): (&str, &str),
    token: &str,
) -> Answer {
    call(
        client
            .post(node.url("/oauth/revoke"))
            .basic_auth(client_id, Some(secret))
            .form(&[("token", token)]),
    )
    .await
}

/// RFC 7009 revocation sent to a replica (where discovery sends clients)
/// is carried out by the primary, with the client's own authentication,
/// and reaches every node; a replica never revokes on its own say-so.
#[actix_web::test]
async fn revocation_on_a_replica_is_carried_out_by_the_primary() {
    let mut fleet = TestFleet::start("30").await;
    let client = fleet.client.clone();
    let secret = fleet.register().await;
    let other = fleet
        .admin_api()
        .create_application(&json!({"client_id": "other", "groups": ["media"]}))
        .await
        .body;
    let other_secret = other["client_secret"].as_str().unwrap().to_string();
    let minted = fleet.mint_api_key().await;
    let key = minted["api_key"].as_str().unwrap().to_string();
    let token = fleet.primary().issue_token("canister", &secret).await;
    let nodes = [fleet.primary(), &fleet.replica_a, &fleet.replica_b];
    for node in nodes {
        until("every node knows both applications", async || {
            status(&client, node, &token).await == 200
                && revoke_at(&client, node, ("other", &other_secret), "x")
                    .await
                    .status
                    == 200
        })
        .await;
    }

    // Wrong credentials stop at the replica, answered as the primary would.
    let refused = revoke_at(&client, &fleet.replica_a, ("canister", "wrong"), &token).await;
    assert_eq!(refused.status, 401);
    assert!(refused.headers.contains_key("www-authenticate"));
    let body = refused.body;
    assert_eq!(body["error"], "invalid_client");

    // Someone else's token: 200 (RFC 7009 §2.2), and nothing happens.
    let other_try = revoke_at(&client, &fleet.replica_a, ("other", &other_secret), &token).await;
    assert_eq!(other_try.status, 200);
    assert_eq!(status(&client, fleet.primary(), &token).await, 200);

    // The owner revokes at replica A: the primary refuses the token at
    // once (it answered only once it had written it), every node soon.
    let revoked = revoke_at(&client, &fleet.replica_a, ("canister", &secret), &token).await;
    assert_eq!(revoked.status, 200);
    assert_eq!(status(&client, fleet.primary(), &token).await, 401);
    for node in &nodes[1..] {
        let took = until("the replica refuses the revoked token", async || {
            status(&client, node, &token).await == 401
        })
        .await;
        println!(
            "token revoked at replica A refused on {} after {took:?}",
            node.port
        );
    }

    // API keys too, revoked at replica B.
    let revoked = revoke_at(&client, &fleet.replica_b, ("canister", &secret), &key).await;
    assert_eq!(revoked.status, 200);
    for node in nodes {
        until("every node refuses the revoked key", async || {
            status(&client, node, &key).await == 401
        })
        .await;
    }

    // Without a primary, a replica says so rather than pretend.
    let fresh = fleet.replica_a.issue_token("canister", &secret).await;
    fleet.primary.take().unwrap().kill9();
    let unavailable = revoke_at(&client, &fleet.replica_a, ("canister", &secret), &fresh).await;
    assert_eq!(unavailable.status, 503);
    let body = unavailable.body;
    assert_eq!(body["error"], "temporarily_unavailable");
}
