//! End to end, as a user deploys it: a real Caddy with `forward_auth` to
//! gatehouse, in front of a real WebDAV server (wsgidav), and a machine
//! client with a client_credentials token uploading, listing and
//! downloading a file.

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Peer, TestApp, command_exists, free_port, python_has, spawn_app};

const IDENTITY_HEADERS: &str =
    "Remote-User Remote-Name Remote-Groups Remote-Client-Id Remote-Auth-Method Remote-Scope";

async fn start_webdav(app: &TestApp) -> Peer {
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

/// Caddy on its own port: every host goes through forward_auth to
/// gatehouse, then to WebDAV.
async fn start_caddy(app: &TestApp, webdav: &Peer) -> Peer {
    let port = free_port();
    let gatehouse = app.address.trim_start_matches("http://");
    let caddyfile = format!(
        "{{\n\tadmin off\n\tauto_https off\n}}\n\
         :{port} {{\n\
         \tforward_auth {gatehouse} {{\n\t\turi /api/verify\n\t\tcopy_headers {IDENTITY_HEADERS}\n\t}}\n\
         \treverse_proxy 127.0.0.1:{dav}\n}}\n",
        dav = webdav.port
    );
    let path = app.dir.path().join("Caddyfile");
    std::fs::write(&path, caddyfile).unwrap();
    let mut command = Command::new("caddy");
    command
        .arg("run")
        .arg("--config")
        .arg(&path)
        .args(["--adapter", "caddyfile"]);
    command
        .env("XDG_DATA_HOME", app.dir.path())
        .env("XDG_CONFIG_HOME", app.dir.path());
    Peer::start("caddy", command, port, app.dir.path()).await
}

#[actix_web::test]
async fn canister_uses_webdav_through_caddy_with_a_token() {
    if !(command_exists("caddy") && python_has("wsgidav, cheroot")) {
        return;
    }
    let app = spawn_app().await;
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
    let webdav = start_webdav(&app).await;
    let caddy = start_caddy(&app, &webdav).await;
    let diagnostics = || format!("{}\n{}", caddy.output(), webdav.output());

    let token = app.access_token(&canister, &[]).await;
    let through_caddy = |method: &str, host: &str, path: &str| {
        app.client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("http://127.0.0.1:{}{path}", caddy.port),
            )
            .header("Host", host)
    };

    // Upload, list, download: the bytes survive the round trip.
    let payload: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let made = through_caddy("MKCOL", "dav.example.com", "/canister/")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201, "MKCOL: {}", diagnostics());
    let response = through_caddy("PUT", "dav.example.com", "/canister/photo.raw")
        .bearer_auth(&token)
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "PUT: {} {}",
        response.status(),
        diagnostics()
    );

    let listing = through_caddy("PROPFIND", "dav.example.com", "/canister/")
        .bearer_auth(&token)
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), 207, "PROPFIND: {}", diagnostics());
    assert!(listing.text().await.unwrap().contains("photo.raw"));

    let download = through_caddy("GET", "dav.example.com", "/canister/photo.raw")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.bytes().await.unwrap().to_vec(),
        payload,
        "downloaded bytes differ"
    );

    // No token: 401 from gatehouse, relayed by Caddy; nothing reaches WebDAV.
    let response = through_caddy("GET", "dav.example.com", "/canister/photo.raw")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );

    // An application outside the allowed groups: 403.
    let intruder_token = app.access_token(&intruder, &[]).await;
    let response = through_caddy("GET", "dav.example.com", "/canister/photo.raw")
        .bearer_auth(&intruder_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // The read-only rule serves reads and refuses writes.
    let read = through_caddy("GET", "ro.example.com", "/canister/photo.raw")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.bytes().await.unwrap().to_vec(), payload);
    let write = through_caddy("PUT", "ro.example.com", "/canister/other.raw")
        .bearer_auth(&token)
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);
    let absent = through_caddy("GET", "dav.example.com", "/canister/other.raw")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        absent.status(),
        404,
        "the refused PUT must not have reached WebDAV"
    );
}
