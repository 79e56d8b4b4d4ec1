//! The real binary: durability across `kill -9`, secrets kept out of logs,
//! configuration layers, the healthcheck and keys subcommands.

use std::process::Output;

use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, Answer, Node, assert_succeeded, call, call_text, free_port, gatehouse_command,
};

async fn create(node: &Node, client_id: &str) -> String {
    let body = json!({"client_id": client_id, "groups": ["media"], "scopes": ["webdav"]});
    node.create_application(body).await
}

async fn token(node: &Node, client_id: &str, secret: &str) -> Answer {
    call(
        crate::helpers::http_client()
            .post(node.url("/oauth/token"))
            .basic_auth(client_id, Some(secret))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await
}

const ADMIN_ENV: [(&str, &str); 1] = [("GATEHOUSE_ADMIN_TOKEN", ADMIN_TOKEN)];

#[actix_web::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &ADMIN_ENV).await;
    let secret = create(&node, "canister").await;
    let rotated = node.admin_api().rotate_secret("canister", &json!({})).await;
    let rotated = rotated.expect(200);
    let new_secret = rotated["client_secret"].as_str().unwrap().to_string();
    // Killed right after the answers: nothing may be lost.
    node.kill9();

    let node = Node::start(dir.path(), &ADMIN_ENV).await;
    let response = call(
        crate::helpers::http_client()
            .get(node.url("/admin/v1/applications/canister"))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(token(&node, "canister", &new_secret).await.status, 200);
    assert_eq!(token(&node, "canister", &secret).await.status, 401);
}

#[actix_web::test]
async fn secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &ADMIN_ENV).await;
    let secret = create(&node, "canister").await;
    let response = token(&node, "canister", &secret).await;
    assert_eq!(response.status, 200);
    let body = response.body;
    let access_token = body["access_token"].as_str().unwrap().to_string();
    // Failures, a secret sent as the client_id, and a post-auth request.
    assert_eq!(
        token(&node, "canister", "gcs_wrong-secret-attempt")
            .await
            .status,
        401
    );
    assert_eq!(token(&node, &secret, &secret).await.status, 401);
    let client = crate::helpers::http_client();
    let response = call(client.post(node.url("/oauth/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "canister"),
        ("client_secret", secret.as_str()),
    ]))
    .await;
    assert_eq!(response.status, 200);
    call(client.get(node.url("/.well-known/jwks.json"))).await;

    let log = node.kill9();
    assert!(
        log.contains("POST /oauth/token"),
        "the log was captured: {log}"
    );
    for secret_value in [
        secret.as_str(),
        access_token.as_str(),
        ADMIN_TOKEN,
        "gcs_wrong-secret-attempt",
    ] {
        assert!(
            !log.contains(secret_value),
            "log leaks {secret_value}:\n{log}"
        );
    }
    let signature = access_token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature));
}

fn run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    gatehouse_command(dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[actix_web::test]
async fn unknown_configuration_keys_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gatehouse.toml"),
        "listen = \"127.0.0.1:0\"\nlisten_port = 9\n",
    )
    .unwrap();
    let output = run(dir.path(), &["serve"], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen_port"), "{stderr}");

    std::fs::remove_file(dir.path().join("gatehouse.toml")).unwrap();
    let output = run(dir.path(), &["serve"], &[("GATEHOUSE_LISTEN_ADDRESS", "x")]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("listen_address"));

    let output = run(dir.path(), &["serve", "--config", "missing.toml"], &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml"));
}

#[actix_web::test]
async fn configuration_layers_override_in_order() {
    // The file says one port, the environment another, the flag a third.
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port) = (free_port(), free_port());
    std::fs::write(
        dir.path().join("custom.toml"),
        format!("listen = \"127.0.0.1:{file_port}\"\nissuer = \"https://auth.example.com/\"\n"),
    )
    .unwrap();
    let env_listen = format!("127.0.0.1:{env_port}");
    let node = Node::start(
        dir.path(),
        &[
            ("GATEHOUSE_CONFIG", "custom.toml"),
            ("GATEHOUSE_LISTEN", env_listen.as_str()),
        ],
    )
    .await;
    // Node::start passes --listen, which wins over both.
    assert_ne!(node.port, file_port);
    assert_ne!(node.port, env_port);
    let metadata = node
        .get("/.well-known/oauth-authorization-server")
        .await
        .body;
    assert_eq!(
        metadata["issuer"], "https://auth.example.com",
        "the file's issuer applies"
    );
    drop(node);

    // Without the flag, the environment beats the file.
    let mut child = gatehouse_command(dir.path())
        .env("GATEHOUSE_CONFIG", "custom.toml")
        .env("GATEHOUSE_LISTEN", &env_listen)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let healthy = wait_healthy(dir.path(), &env_listen).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(healthy, "the environment's listen address is used");
}

async fn wait_healthy(dir: &std::path::Path, listen: &str) -> bool {
    for _ in 0..200 {
        if run(dir, &["healthcheck", "--listen", listen], &[])
            .status
            .success()
        {
            return true;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[actix_web::test]
async fn healthcheck_reports_the_local_node() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    assert!(
        !run(dir.path(), &["healthcheck", "--listen", &listen], &[])
            .status
            .success()
    );
    let node = Node::start(dir.path(), &ADMIN_ENV).await;
    let listen = format!("127.0.0.1:{}", node.port);
    assert!(
        run(dir.path(), &["healthcheck", "--listen", &listen], &[])
            .status
            .success()
    );
    // A slim image has no CA certificates; the check speaks plain HTTP and
    // must not need them.
    let no_cas = dir.path().join("no-cas");
    std::fs::create_dir_all(&no_cas).unwrap();
    std::fs::write(no_cas.join("empty.pem"), "").unwrap();
    let without = [
        ("SSL_CERT_FILE", no_cas.join("empty.pem")),
        ("SSL_CERT_DIR", no_cas.clone()),
    ];
    let without: Vec<(&str, &str)> = without
        .iter()
        .map(|(k, v)| (*k, v.to_str().unwrap()))
        .collect();
    let output = run(dir.path(), &["healthcheck", "--listen", &listen], &without);
    assert_succeeded(&output);
}

#[actix_web::test]
async fn keys_subcommands_manage_the_key_directory() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["keys", "generate"], &[]);
    assert!(output.status.success());
    let first = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let output = run(dir.path(), &["keys", "generate"], &[]);
    let second = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let listing = String::from_utf8(run(dir.path(), &["keys", "list"], &[]).stdout).unwrap();
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with(&first) && l.contains("\tactive\t")),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with(&second) && l.contains("\tverify-only\t")),
        "{listing}"
    );

    let rotated = String::from_utf8(run(dir.path(), &["keys", "rotate"], &[]).stdout).unwrap();
    let listing = String::from_utf8(run(dir.path(), &["keys", "list"], &[]).stdout).unwrap();
    assert_eq!(listing.lines().count(), 3);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with(rotated.trim()) && l.contains("\tactive\t"))
    );

    // A node started on this directory signs with the rotated key and publishes all three.
    let node = Node::start(dir.path(), &ADMIN_ENV).await;
    let jwks = node.get("/.well-known/jwks.json").await.body;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 3);
    let secret = create(&node, "canister").await;
    let body: Value = token(&node, "canister", &secret).await.body;
    let (header, _) = crate::helpers::jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(header["kid"], rotated.trim());
}

#[actix_web::test]
async fn token_helper_prints_a_token_and_reuses_it_until_near_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &ADMIN_ENV).await;
    let secret = create(&node, "canister").await;
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let cache = dir.path().join("cache");
    let issuer = node.url("");
    let args = |extra: &[&str]| {
        let mut args = vec![
            "token",
            "--issuer",
            issuer.as_str(),
            "--client-id",
            "canister",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let with_file = [
        "--client-secret-file",
        secret_file.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    let printed = |output: Output| {
        assert_succeeded(&output);
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    };
    let run_args = |args: Vec<String>, env: &[(&str, &str)]| {
        gatehouse_command(dir.path())
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };

    let first = printed(run_args(args(&with_file), &[]));
    let (header, claims) = crate::helpers::jwt_parts(&first);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["client_id"], "canister");
    let second = printed(run_args(args(&with_file), &[]));
    assert_eq!(second, first, "the cached token is reused");

    // Near its expiry the cached token is replaced.
    let cached = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&cached).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let soon = chrono::Utc::now().timestamp() + 30;
    std::fs::write(
        &cached,
        json!({"access_token": first, "expires_at": soon}).to_string(),
    )
    .unwrap();
    let third = printed(run_args(args(&with_file), &[]));
    assert_ne!(third, first);
    // After a 401 the caller asks for a fresh one.
    let refresh = [&with_file[..], &["--refresh"]].concat();
    let fourth = printed(run_args(args(&refresh), &[]));
    assert_ne!(fourth, third);
    assert_eq!(printed(run_args(args(&with_file), &[])), fourth);

    // A cache file that is not private, or holds another client's token,
    // is not used.
    let later = chrono::Utc::now().timestamp() + 3000;
    let other_secret = create(&node, "other").await;
    let other = printed(run_args(
        vec![
            "token".into(),
            "--issuer".into(),
            issuer.clone(),
            "--client-id".into(),
            "other".into(),
            "--no-cache".into(),
        ],
        &[("GATEHOUSE_CLIENT_SECRET", other_secret.as_str())],
    ));
    std::fs::write(
        &cached,
        json!({"access_token": other, "expires_at": later}).to_string(),
    )
    .unwrap();
    let fifth = printed(run_args(args(&with_file), &[]));
    assert_ne!(
        fifth, other,
        "another client's token was taken from the cache"
    );
    assert_eq!(crate::helpers::jwt_parts(&fifth).1["client_id"], "canister");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cached, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_ne!(
            printed(run_args(args(&with_file), &[])),
            fifth,
            "a world-writable cache file was used"
        );
    }

    // The secret from the environment; a wrong one fails with the reason.
    let from_env = printed(run_args(
        args(&["--no-cache"]),
        &[("GATEHOUSE_CLIENT_SECRET", secret.as_str())],
    ));
    assert_eq!(crate::helpers::jwt_parts(&from_env).1["sub"], "canister");
    let failed = run_args(
        args(&["--no-cache"]),
        &[("GATEHOUSE_CLIENT_SECRET", "gcs_wrong")],
    );
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("401"));
}

/// A node whose public issuer is another URL, reached by an internal one:
/// the helper does not use metadata that names another issuer (RFC 8414
/// §3.3) and takes gatehouse's token path on the URL it was given.
#[actix_web::test]
async fn token_helper_ignores_metadata_naming_another_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let public = "https://auth.example.test";
    let env = [ADMIN_ENV[0], ("GATEHOUSE_ISSUER", public)];
    let node = Node::start(dir.path(), &env).await;
    let secret = create(&node, "canister").await;
    let run = |issuer: &str| {
        gatehouse_command(dir.path())
            .args(["token", "--issuer", issuer, "--client-id", "canister"])
            .arg("--no-cache")
            .env("GATEHOUSE_CLIENT_SECRET", &secret)
            .output()
            .unwrap()
    };
    let over_http = run(&node.url(""));
    let stderr = String::from_utf8_lossy(&over_http.stderr);
    assert!(over_http.status.success(), "{stderr}");
    let token = String::from_utf8(over_http.stdout).unwrap();
    assert_eq!(crate::helpers::jwt_parts(token.trim()).1["iss"], public);
}

#[actix_web::test]
async fn client_secret_variable_does_not_upset_the_server_config() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ADMIN_ENV[0],
        ("GATEHOUSE_CLIENT_SECRET", "for-the-token-helper"),
    ];
    let node = Node::start(dir.path(), &env).await;
    assert_eq!(
        call_text(crate::helpers::http_client().get(node.url("/readyz")))
            .await
            .status,
        200
    );
}

#[actix_web::test]
async fn admin_cli_wraps_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    // No configured admin token: the CLI finds the generated ./data/admin-token.
    let node = Node::start(dir.path(), &[]).await;
    let url = node.url("");
    let admin = |args: &[&str]| {
        let mut all = vec!["admin", "--url", url.as_str()];
        all.extend_from_slice(args);
        run(dir.path(), &all, &[])
    };
    let ok = |output: Output| -> Value {
        assert_succeeded(&output);
        serde_json::from_slice(&output.stdout).unwrap()
    };

    let created = ok(admin(&[
        "applications",
        "create",
        r#"{"client_id":"canister","groups":["media"]}"#,
    ]));
    assert!(
        created["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("gcs_")
    );
    let listed = ok(admin(&["applications", "list"]));
    assert_eq!(listed["applications"][0]["client_id"], "canister");
    ok(admin(&[
        "resources",
        "create",
        r#"{"id":"dav","host":"dav.example.com","allowed_groups":["media"]}"#,
    ]));
    let minted = ok(admin(&["api-keys", "mint", "canister", "--name", "cli"]));
    let key = minted["api_key"].as_str().unwrap().to_string();
    let verified = call(
        crate::helpers::http_client()
            .get(node.url("/api/verify"))
            .header("X-Forwarded-Host", "dav.example.com")
            .bearer_auth(&key),
    )
    .await;
    assert_eq!(verified.status, 200);
    let revoked = admin(&["api-keys", "revoke", minted["id"].as_str().unwrap()]);
    assert!(
        revoked.status.success(),
        "a 204 prints nothing and succeeds"
    );
    assert!(revoked.stdout.iter().all(u8::is_ascii_whitespace));
    let audit = ok(admin(&["audit", "--limit", "2"]));
    assert_eq!(
        audit["entries"][0]["action"],
        "DELETE /admin/v1/api-keys/{id}"
    );

    // Errors exit non-zero with the server's reason.
    let missing = admin(&["applications", "get", "ghost"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    let bad_json = admin(&["resources", "create", "{not json"]);
    assert!(!bad_json.status.success());
    std::fs::write(dir.path().join("wrong"), "nope").unwrap();
    let wrong = run(
        dir.path(),
        &[
            "admin",
            "--url",
            url.as_str(),
            "--admin-token-file",
            "wrong",
            "applications",
            "list",
        ],
        &[],
    );
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("401"));
}

/// Empty or short admin and replica tokens are configuration errors that
/// name the setting: an empty replica token would serve the whole state
/// (secret digests included) to anyone.
#[actix_web::test]
async fn empty_or_short_tokens_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("GATEHOUSE_REPLICA_TOKEN", "", "replica_token"),
        ("GATEHOUSE_REPLICA_TOKEN", "short", "replica_token"),
        ("GATEHOUSE_ADMIN_TOKEN", "", "admin_token"),
        (
            "GATEHOUSE_ADMIN_TOKEN",
            "0123456789abcdef0123456789abcde",
            "admin_token",
        ),
    ];
    for (variable, value, key) in cases {
        let output = run(dir.path(), &["serve"], &[(variable, value)]);
        assert!(
            !output.status.success(),
            "{variable}={value:?} was accepted"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "{variable}={value:?}: {stderr}");
    }
}

/// A stand-in for a primary that answers every request with `answer`.
fn fake_primary(answer: Vec<u8>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(&answer);
        }
    });
    port
}

/// A replica trusts its primary only: it follows no redirect (whoever it
/// points to would supply keys and rules) and reads no answer past its
/// size cap. Either way it stays not ready.
#[actix_web::test]
async fn a_replica_refuses_redirects_and_oversized_state() {
    let elsewhere = fake_primary(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec());
    let redirect = fake_primary(
        format!(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{elsewhere}/internal/v1/state\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes(),
    );
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(64 * 1024));
    let oversized = fake_primary(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    );
    for (port, expected) in [(redirect, "302"), (oversized, "max_state_bytes")] {
        let dir = tempfile::tempdir().unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let log = dir.path().join("replica.log");
        let primary_url = format!("http://127.0.0.1:{port}");
        let mut child = gatehouse_command(dir.path())
            .args(["serve", "--listen", &listen, "--role", "replica"])
            .args(["--primary-url", &primary_url])
            .env(
                "GATEHOUSE_REPLICA_TOKEN",
                "replica-token-0123456789abcdef0123",
            )
            .env("GATEHOUSE_MAX_STATE_BYTES", "16384")
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let client = crate::helpers::http_client();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let mut answered = 0;
        while std::time::Instant::now() < deadline {
            if let Ok(response) = client.get(format!("http://{listen}/readyz")).send().await {
                assert_eq!(response.status(), 503, "ready on a copy from {expected}");
                answered += 1;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let log = std::fs::read_to_string(&log).unwrap();
        assert!(answered > 0, "the replica never answered: {log}");
        assert!(log.contains(expected), "{expected}: {log}");
    }
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Failed token requests with 60 KB client_ids, from 1,500 addresses:
/// an id that is not a client_id never becomes a throttle key, and the
/// throttle is bounded in bytes, so the node stays small and answers.
#[actix_web::test]
async fn huge_client_ids_do_not_grow_the_throttle() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &ADMIN_ENV).await;
    let client = crate::helpers::http_client();
    let huge = "a".repeat(60 * 1024);
    let send = async |n: usize| {
        let request = client
            .post(node.url("/oauth/token"))
            .header(
                "X-Forwarded-For",
                format!("10.{}.{}.{}", n / 65536, n / 256 % 256, n % 256),
            )
            .basic_auth(&huge, Some("wrong"))
            .form(&[("grant_type", "client_credentials")]);
        call_text(request).await.status
    };
    // Warm up allocator arenas and caches before the baseline.
    for n in 0..50 {
        assert_eq!(send(n).await, 401);
    }
    let before = rss_kib(node.child.id());
    for n in 50..1550 {
        let status = send(n).await;
        assert!([401, 429].contains(&status.as_u16()), "{status}");
    }
    let after = rss_kib(node.child.id());
    let grown_mib = after.saturating_sub(before) / 1024;
    println!("RSS {before} KiB -> {after} KiB after 1,500 requests with 60 KB client_ids");
    assert!(grown_mib < 64, "RSS grew by {grown_mib} MiB");
    let secret = create(&node, "canister").await;
    assert_eq!(token(&node, "canister", &secret).await.status, 200);
}

/// What Kubernetes injects into every pod of a namespace with Services
/// named `gatehouse` and `gatehouse-primary` (deploy/kubernetes): not
/// settings, so the node starts; a typo still stops it, by name.
#[actix_web::test]
async fn kubernetes_service_links_are_no_settings_but_typos_are_errors() {
    let links = [
        ("GATEHOUSE_SERVICE_HOST", "10.96.0.10"),
        ("GATEHOUSE_SERVICE_PORT", "8080"),
        ("GATEHOUSE_SERVICE_PORT_HTTP", "8080"),
        ("GATEHOUSE_PORT", "tcp://10.96.0.10:8080"),
        ("GATEHOUSE_PORT_8080_TCP", "tcp://10.96.0.10:8080"),
        ("GATEHOUSE_PORT_8080_TCP_PROTO", "tcp"),
        ("GATEHOUSE_PORT_8080_TCP_PORT", "8080"),
        ("GATEHOUSE_PORT_8080_TCP_ADDR", "10.96.0.10"),
        ("GATEHOUSE_PRIMARY_SERVICE_HOST", "10.96.0.11"),
        ("GATEHOUSE_PRIMARY_SERVICE_PORT", "8080"),
        ("GATEHOUSE_PRIMARY_PORT", "tcp://10.96.0.11:8080"),
        ("GATEHOUSE_PRIMARY_PORT_8080_TCP", "tcp://10.96.0.11:8080"),
        ("GATEHOUSE_PRIMARY_PORT_8080_TCP_PROTO", "tcp"),
        ("GATEHOUSE_PRIMARY_PORT_8080_TCP_PORT", "8080"),
        ("GATEHOUSE_PRIMARY_PORT_8080_TCP_ADDR", "10.96.0.11"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, &str)> = ADMIN_ENV.iter().copied().chain(links).collect();
    let node = Node::start(dir.path(), &env).await;
    drop(node);
    for (typo, name) in [
        ("GATEHOUSE_ISSUR", "issur"),
        ("GATEHOUSE_LISTEN_PORT", "listen_port"),
    ] {
        let output = run(dir.path(), &["serve"], &[(typo, "http://x")]);
        assert!(!output.status.success(), "{typo} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.to_lowercase().contains(name), "{typo}: {stderr}");
    }
}

/// Tokens from files, as Kubernetes and compose mount secrets: the final
/// newline dropped; a setting and its file together are an error.
#[actix_web::test]
async fn admin_and_replica_tokens_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let admin = "admin-token-from-a-file-0123456789abcdef";
    let replica = "replica-token-from-a-file-0123456789abcdef";
    std::fs::write(dir.path().join("admin-token"), format!("{admin}\n")).unwrap();
    std::fs::write(
        dir.path().join("gatehouse.toml"),
        "replica_token_file = \"replica-token\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("replica-token"), format!("{replica}\r\n")).unwrap();
    let node = Node::start(dir.path(), &[("GATEHOUSE_ADMIN_TOKEN_FILE", "admin-token")]).await;
    let client = crate::helpers::http_client();
    let listed = call(
        client
            .get(node.url("/admin/v1/applications"))
            .bearer_auth(admin),
    )
    .await;
    assert_eq!(listed.status, 200);
    let state = call(
        client
            .get(node.url("/internal/v1/state"))
            .bearer_auth(replica),
    )
    .await;
    assert_eq!(state.status, 200);
    drop(node);

    let both = run(
        dir.path(),
        &["serve"],
        &[
            ("GATEHOUSE_ADMIN_TOKEN_FILE", "admin-token"),
            ("GATEHOUSE_ADMIN_TOKEN", admin),
        ],
    );
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("admin_token"));
    let missing = run(
        dir.path(),
        &["serve"],
        &[("GATEHOUSE_ADMIN_TOKEN_FILE", "nope")],
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("admin_token_file"));
}
