//! End to end, as a user deploys it: a real reverse proxy (Caddy's
//! `forward_auth`, nginx's `auth_request`) running the configuration
//! shipped in deploy/, in front of a real WebDAV server (wsgidav), and a
//! machine client with a client_credentials token uploading, listing and
//! downloading a file.

use std::path::Path;
use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{
    ADMIN_TOKEN, Node, Peer, TestApp, TestClient, call, call_text, command_exists, free_port,
    gatehouse_command, python_has, spawn_app,
};

fn deploy_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

pub async fn start_webdav(app: &TestApp) -> Peer {
    let root = app.dir.path().join("webdav-root");
    std::fs::create_dir_all(&root).unwrap();
    let port = free_port();
    let mut command = Command::new("python3");
    command.args([
        "-m",
        "wsgidav.server.server_cli",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]);
    command
        .arg("--root")
        .arg(&root)
        .args(["--auth", "anonymous", "--no-config", "-q"]);
    Peer::start("wsgidav", command, port, app.dir.path()).await
}

/// deploy/Caddyfile as shipped, its placeholders pointed at this test's
/// processes: the protected site for `site_host` ("" for any host). The
/// auth site listens on a port of its own.
pub async fn start_caddy(app: &TestApp, backend_port: u16, site_host: &str) -> (Peer, u16) {
    let (port, auth_port) = (free_port(), free_port());
    let mut command = Command::new("caddy");
    command
        .arg("run")
        .arg("--config")
        .arg(deploy_file("Caddyfile"))
        .args(["--adapter", "caddyfile"]);
    command
        .env("CADDY_ADMIN", "off")
        .env("DAV_SITE", format!("http://{site_host}:{port}"))
        .env("AUTH_SITE", format!("http://:{auth_port}"))
        .env("AUTH_UPSTREAM", app.address.trim_start_matches("http://"))
        .env("DAV_UPSTREAM", format!("127.0.0.1:{backend_port}"))
        .env("XDG_DATA_HOME", app.dir.path())
        .env("XDG_CONFIG_HOME", app.dir.path());
    (
        Peer::start("caddy", command, port, app.dir.path()).await,
        auth_port,
    )
}

/// deploy/nginx/gatehouse.conf as shipped, with the upstreams, the listen
/// port and the protected server's names replaced, inside a minimal
/// nginx.conf.
/// What nginx started by `start_nginx` and the WebDAV server behind it
/// said, nginx's error log included.
pub fn nginx_diagnostics(app: &TestApp, nginx: &Peer, webdav: &Peer) -> String {
    let error_log = app
        .dir
        .path()
        .join(format!("nginx-{}/error.log", nginx.port));
    let error_log = std::fs::read_to_string(error_log).unwrap_or_default();
    format!("{}\n{error_log}\n{}", nginx.output(), webdav.output())
}

pub async fn start_nginx(app: &TestApp, backend_port: u16, server_names: &str) -> Peer {
    let port = free_port();
    let dir = app.dir.path().join(format!("nginx-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let site = std::fs::read_to_string(deploy_file("nginx/gatehouse.conf"))
        .unwrap()
        .replace("listen 80", &format!("listen 127.0.0.1:{port}"))
        .replace(
            "server_name dav.example.com;",
            &format!("server_name {server_names};"),
        )
        .replace("gatehouse:8080", app.address.trim_start_matches("http://"))
        .replace("webdav:8080", &format!("127.0.0.1:{backend_port}"));
    assert_eq!(
        site.matches(&format!("listen 127.0.0.1:{port}")).count(),
        2,
        "both server blocks listen where the test sends"
    );
    std::fs::write(dir.join("gatehouse.conf"), site).unwrap();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let d = dir.display();
    let main = format!(
        "{user}worker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{}}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         include {d}/gatehouse.conf;\n}}\n",
        user = if root { "user root;\n" } else { "" },
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let mut command = Command::new("nginx");
    command
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"]);
    Peer::start("nginx", command, port, app.dir.path()).await
}

/// Canister in `media`, Intruder in `guests`; a read-write rule for
/// dav.example.com and a read-only one for ro.example.com.
async fn register(app: &TestApp) -> (TestClient, TestClient) {
    let canister = app
        .create_application(
            json!({"client_id": "canister", "groups": ["media"], "scopes": ["webdav"]}),
        )
        .await;
    let intruder = app
        .create_application(json!({"client_id": "intruder", "groups": ["guests"]}))
        .await;
    app.create_resource(json!({"host": "dav.example.com", "allowed_groups": ["media"]}))
        .await;
    app.create_resource(json!({
        "host": "ro.example.com", "allowed_groups": ["media"],
        "methods": ["GET", "HEAD", "OPTIONS", "PROPFIND"],
    }))
    .await;
    (canister, intruder)
}

/// The Canister walkthrough through a proxy on `proxy_port`.
async fn webdav_through_proxy(
    app: &TestApp,
    proxy_port: u16,
    token: &str,
    intruder_token: &str,
    diagnostics: impl Fn() -> String,
) {
    let request = |method: &str, host: &str, path: &str| {
        app.client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("http://127.0.0.1:{proxy_port}{path}"),
            )
            .header("Host", host)
    };

    // Upload, list, download: the bytes survive the round trip.
    let payload: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let made =
        call_text(request("MKCOL", "dav.example.com", "/canister/").bearer_auth(token)).await;
    assert_eq!(made.status, 201, "MKCOL: {}", diagnostics());
    let put = call_text(
        request("PUT", "dav.example.com", "/canister/photo.raw")
            .bearer_auth(token)
            .body(payload.clone()),
    )
    .await;
    assert!(
        put.status.is_success(),
        "PUT: {} {}",
        put.status,
        diagnostics()
    );
    let listing = call_text(
        request("PROPFIND", "dav.example.com", "/canister/")
            .bearer_auth(token)
            .header("Depth", "1"),
    )
    .await;
    assert_eq!(listing.status, 207, "PROPFIND: {}", diagnostics());
    assert!(listing.text.contains("photo.raw"));
    let download =
        call_text(request("GET", "dav.example.com", "/canister/photo.raw").bearer_auth(token))
            .await;
    assert_eq!(download.status, 200);
    assert_eq!(download.bytes, payload, "downloaded bytes differ");

    // No token: 401 with the Bearer challenge; nothing reaches WebDAV.
    let response = call_text(request("GET", "dav.example.com", "/canister/photo.raw")).await;
    assert_eq!(response.status, 401, "{}", diagnostics());
    assert!(response.header("www-authenticate").starts_with("Bearer"));

    // An application outside the allowed groups: 403.
    let response = call_text(
        request("GET", "dav.example.com", "/canister/photo.raw").bearer_auth(intruder_token),
    )
    .await;
    assert_eq!(response.status, 403);

    // The read-only rule serves reads and refuses writes.
    let read =
        call_text(request("GET", "ro.example.com", "/canister/photo.raw").bearer_auth(token)).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.bytes, payload);
    let write = call_text(
        request("PUT", "ro.example.com", "/canister/other.raw")
            .bearer_auth(token)
            .body("nope"),
    )
    .await;
    assert_eq!(write.status, 403);
    let absent =
        call_text(request("GET", "dav.example.com", "/canister/other.raw").bearer_auth(token))
            .await;
    assert_eq!(
        absent.status, 404,
        "the refused PUT must not have reached WebDAV"
    );
}

#[actix_web::test]
async fn canister_uses_webdav_through_caddy() {
    if !(command_exists("caddy", "version") && python_has("wsgidav, cheroot")) {
        return;
    }
    let app = spawn_app().await;
    let (canister, intruder) = register(&app).await;
    let webdav = start_webdav(&app).await;
    let (caddy, auth_port) = start_caddy(&app, webdav.port, "").await;

    // The token comes through Caddy's auth site, as it would from outside.
    let response = call(
        app.client
            .post(format!("http://127.0.0.1:{auth_port}/oauth/token"))
            .basic_auth(&canister.client_id, Some(&canister.secret))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(response.status, 200, "{}", caddy.output());
    let body: serde_json::Value = response.body;
    let token = body["access_token"].as_str().unwrap().to_string();
    let intruder_token = app.access_token(&intruder, &[]).await;

    webdav_through_proxy(&app, caddy.port, &token, &intruder_token, || {
        format!("{}\n{}", caddy.output(), webdav.output())
    })
    .await;
}

#[actix_web::test]
async fn canister_uses_webdav_through_nginx() {
    if !(command_exists("nginx", "-v") && python_has("wsgidav, cheroot")) {
        return;
    }
    let app = spawn_app().await;
    let (canister, intruder) = register(&app).await;
    let webdav = start_webdav(&app).await;
    let nginx = start_nginx(&app, webdav.port, "dav.example.com ro.example.com").await;
    let token = app.access_token(&canister, &[]).await;
    let intruder_token = app.access_token(&intruder, &[]).await;
    webdav_through_proxy(&app, nginx.port, &token, &intruder_token, || {
        nginx_diagnostics(&app, &nginx, &webdav)
    })
    .await;
}

/// TLS between the pieces, as the README advises: Caddy terminates HTTPS
/// for the primary with its local CA, which clients trust through
/// SSL_CERT_FILE. `gatehouse token` fetches a token through it and a
/// replica syncs through it: rustls on ring, in gatehouse's own clients.
#[actix_web::test]
async fn token_helper_and_replica_reach_the_primary_over_https() {
    if !command_exists("caddy", "version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (primary_dir, replica_dir) = (dir.path().join("primary"), dir.path().join("replica"));
    std::fs::create_dir_all(&primary_dir).unwrap();
    std::fs::create_dir_all(&replica_dir).unwrap();
    let tls_port = free_port();
    let public = format!("https://127.0.0.1:{tls_port}");
    let replica_token = "tls-replica-token-0123456789abcdef";
    let primary = Node::start(
        &primary_dir,
        &[
            ("GATEHOUSE_ADMIN_TOKEN", ADMIN_TOKEN),
            ("GATEHOUSE_REPLICA_TOKEN", replica_token),
            ("GATEHOUSE_ISSUER", &public),
        ],
    )
    .await;
    let caddyfile = dir.path().join("Caddyfile");
    std::fs::write(
        &caddyfile,
        format!(
            "{{\n\tadmin off\n\tskip_install_trust\n}}\n\
             {public} {{\n\ttls internal\n\treverse_proxy 127.0.0.1:{}\n}}\n",
            primary.port
        ),
    )
    .unwrap();
    let mut command = Command::new("caddy");
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&caddyfile)
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path());
    let caddy = Peer::start("caddy-tls", command, tls_port, dir.path()).await;
    let root = dir.path().join("caddy/pki/authorities/local/root.crt");

    // Canister and a rule, registered on the primary's own port.
    let secret = crate::helpers::register_canister(&primary.url("")).await;

    let token_command = || {
        let mut command = gatehouse_command(dir.path());
        command
            .args(["token", "--issuer", &public, "--client-id", "canister"])
            .arg("--no-cache")
            .env("GATEHOUSE_CLIENT_SECRET", &secret);
        command
    };
    // Caddy serves its certificate a moment after it opens the port.
    // A loaded machine (the whole suite at once) can take a while for the first certificate.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let token = loop {
        let output = token_command()
            .env("SSL_CERT_FILE", &root)
            .output()
            .unwrap();
        if output.status.success() {
            break String::from_utf8(output.stdout).unwrap().trim().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no token over https: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            caddy.output()
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(crate::helpers::jwt_parts(&token).1["iss"], public.as_str());
    // Without Caddy's CA the same request fails: the certificate is checked.
    let untrusted = token_command()
        .env_remove("SSL_CERT_FILE")
        .output()
        .unwrap();
    assert!(!untrusted.status.success());

    // A replica is ready only once it has synced, here through Caddy; it
    // then takes the primary's issuer and accepts the primary's token.
    let root = root.to_str().unwrap();
    let replica = Node::start(
        &replica_dir,
        &[
            ("GATEHOUSE_ROLE", "replica"),
            ("GATEHOUSE_PRIMARY_URL", &public),
            ("GATEHOUSE_REPLICA_TOKEN", replica_token),
            ("SSL_CERT_FILE", root),
        ],
    )
    .await;
    let verified = call(
        crate::helpers::http_client()
            .get(replica.url("/api/verify"))
            .header("X-Forwarded-Host", "dav.example.com")
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(verified.status, 200);
}
