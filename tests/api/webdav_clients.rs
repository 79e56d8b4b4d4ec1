//! The WebDAV clients people use, through the shipped Caddy and nginx
//! configurations, in front of wsgidav: rclone with a bearer token from
//! `gatehouse token` and with user/password (an API key as Basic), cadaver
//! logging in after the Basic challenge, webdavclient3 with Basic. Between
//! the proxy and wsgidav a relay keeps every byte the backend is sent: no
//! `Authorization` header may be among them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::basic::{basic, mint};
use crate::e2e::{nginx_diagnostics, start_caddy, start_nginx, start_webdav};
use crate::helpers::{TestApp, call_text, command_exists, output_with_input, python_has};

/// Caddy's and nginx's sites here answer for whatever host the client
/// names: the clients are pointed at 127.0.0.1, and the rule is for it.
const HOST: &str = "127.0.0.1";
const REALM: &str = "gatehouse WebDAV";

/// A TCP relay in front of the backend that keeps every byte sent to it.
struct Relay {
    port: u16,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Relay {
    fn start(backend: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&sent);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", backend)) else {
                    continue;
                };
                let (mut client_back, mut server_in) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 16 * 1024];
                    while let Ok(n) = client.read(&mut buffer) {
                        if n == 0 || server.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                        log.lock().unwrap().extend_from_slice(&buffer[..n]);
                    }
                    let _ = server.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_in, &mut client_back);
                    let _ = client_back.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Relay { port, sent }
    }

    /// What the backend was sent, as text (lowercased).
    fn seen(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap()).to_ascii_lowercase()
    }
}

/// Canister (group media), a rule for the proxy's host that takes Basic
/// and challenges for it, an API key and the client secret in a file.
struct Setup {
    key: String,
    /// The key's short form (neon, under cadaver, cuts passwords at 255).
    short: String,
    secret_file: PathBuf,
}

async fn setup(app: &TestApp) -> Setup {
    let canister = app
        .create_application(json!({"client_id": "canister", "groups": ["media"]}))
        .await;
    app.create_application(json!({"client_id": "other", "groups": ["media"]}))
        .await;
    app.create_resource(json!({
        "host": HOST, "allowed_groups": ["media"], "basic": true,
        "challenge": "basic", "realm": REALM,
    }))
    .await;
    let minted = mint(app, "canister", json!({"name": "webdav clients"})).await;
    let text = |field: &str| minted[field].as_str().unwrap().to_string();
    let secret_file = app.dir.path().join("canister.secret");
    std::fs::write(&secret_file, &canister.secret).unwrap();
    Setup {
        key: text("api_key"),
        short: text("basic_password"),
        secret_file,
    }
}

/// A tree of files to copy up and down, with a nested directory.
fn sample_tree(root: &Path) {
    std::fs::create_dir_all(root.join("albums/2024")).unwrap();
    std::fs::write(root.join("readme.txt"), "canister's files\n").unwrap();
    let photo: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(root.join("albums/2024/photo.raw"), photo).unwrap();
    std::fs::write(root.join("albums/notes.md"), "# notes\n").unwrap();
}

fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A command with none of the test run's GATEHOUSE_* settings and a home
/// of its own (rclone's and cadaver's configuration, the token cache).
fn client_command(program: &str, home: &Path) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars() {
        if key.starts_with("GATEHOUSE_") || key.starts_with("RCLONE_") {
            command.env_remove(key);
        }
    }
    std::fs::create_dir_all(home).unwrap();
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"));
    command
}

fn succeeded(what: &str, output: &Output, diagnostics: &dyn Fn() -> String) {
    assert!(
        output.status.success(),
        "{what}: {}\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        diagnostics()
    );
}

/// `rclone copy` up into `remote_dir` and back down, with `auth` flags.
fn rclone_round_trip(
    app: &TestApp,
    port: u16,
    remote_dir: &str,
    auth: &[String],
    diagnostics: &dyn Fn() -> String,
) {
    let work = app.dir.path().join(format!("rclone-{remote_dir}"));
    let (up, down) = (work.join("up"), work.join("down"));
    sample_tree(&up);
    let rclone = |args: &[&str]| {
        let mut command = client_command("rclone", &work.join("home"));
        command
            .args([
                "--config",
                "/dev/null",
                "--retries",
                "1",
                "--low-level-retries",
                "1",
            ])
            .args([
                "--webdav-url",
                &format!("http://{HOST}:{port}/"),
                "--webdav-vendor",
                "other",
            ])
            .args(auth)
            .args(args);
        command.output().unwrap()
    };
    let target = format!(":webdav:{remote_dir}");
    succeeded(
        "rclone copy up",
        &rclone(&["copy", up.to_str().unwrap(), &target]),
        diagnostics,
    );
    succeeded(
        "rclone copy down",
        &rclone(&["copy", &target, down.to_str().unwrap()]),
        diagnostics,
    );
    assert_eq!(files(&down), files(&up), "the tree came back as it went");
    let listing = rclone(&["lsf", "-R", &target]);
    succeeded("rclone lsf", &listing, diagnostics);
    assert!(String::from_utf8_lossy(&listing.stdout).contains("albums/2024/photo.raw"));
}

fn rclone_obscure(secret: &str, home: &Path) -> String {
    let output = client_command("rclone", home)
        .args(["obscure", secret])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// cadaver, driven by a script on stdin, its credentials in ~/.netrc: it
/// sends none until the server challenges it.
fn cadaver_session(app: &TestApp, port: u16, key: &str, diagnostics: &dyn Fn() -> String) {
    let home = app.dir.path().join(format!("cadaver-{port}"));
    std::fs::create_dir_all(&home).unwrap();
    let netrc = home.join(".netrc");
    std::fs::write(
        &netrc,
        format!("machine {HOST} login canister password {key}\n"),
    )
    .unwrap();
    // cadaver (neon) reads a netrc only its owner can read.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&netrc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let local = home.join("hello.txt");
    std::fs::write(&local, "hello from cadaver\n").unwrap();
    let mut cadaver = client_command("cadaver", &home);
    cadaver
        .current_dir(&home)
        .arg(format!("http://{HOST}:{port}/"));
    let script = "mkcol cadaver\nput hello.txt cadaver/hello.txt\nls cadaver\nget cadaver/hello.txt back.txt\nquit\n";
    let output = output_with_input(&mut cadaver, script.as_bytes());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("hello.txt") && !stdout.contains("failed"),
        "cadaver: {stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        diagnostics()
    );
    assert_eq!(
        std::fs::read_to_string(home.join("back.txt")).unwrap_or_default(),
        "hello from cadaver\n",
        "cadaver: {stdout}\n{}",
        diagnostics()
    );
}

/// webdavclient3 with Basic: upload, list, download.
fn webdavclient3_session(app: &TestApp, port: u16, key: &str, diagnostics: &dyn Fn() -> String) {
    let work = app.dir.path().join(format!("webdav3-{port}"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("note.txt"), "from webdavclient3\n").unwrap();
    let script = r#"
import sys
from webdav3.client import Client
url, key, work = sys.argv[1:]
client = Client({"webdav_hostname": url, "webdav_login": "canister", "webdav_password": key})
client.mkdir("webdav3")
client.upload_sync(remote_path="webdav3/note.txt", local_path=work + "/note.txt")
names = client.list("webdav3")
assert any(n.rstrip("/").endswith("note.txt") for n in names), names
client.download_sync(remote_path="webdav3/note.txt", local_path=work + "/back.txt")
print("ok", names)
"#;
    let output = client_command("python3", &work)
        .args(["-c", script, &format!("http://{HOST}:{port}/"), key])
        .arg(&work)
        .output()
        .unwrap();
    succeeded("webdavclient3", &output, diagnostics);
    assert_eq!(
        std::fs::read_to_string(work.join("back.txt")).unwrap(),
        "from webdavclient3\n"
    );
}

/// Without credentials: 401 and the Basic challenge, relayed by the proxy;
/// with bad ones, 401; with Basic where no rule takes it, 401.
async fn challenges_through(app: &TestApp, port: u16, key: &str, other_key: &str) {
    let client = crate::helpers::http_client();
    let url = format!("http://{HOST}:{port}/");
    let answer =
        call_text(client.request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), &url)).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.headers["www-authenticate"],
        format!(r#"Basic realm="{REALM}", charset="UTF-8""#).as_str()
    );
    for bad in [
        basic("canister", "not-a-key"),
        basic("canister", other_key),
        basic("other", key),
        "Basic %%%".to_string(),
        // Over what verify reads, under nginx's header limit.
        format!("Basic {}", "QUFB".repeat(1500)),
    ] {
        let answer = call_text(client.get(&url).header("Authorization", bad.clone())).await;
        assert_eq!(answer.status, 401, "{bad:.40}");
        assert!(
            answer
                .header("www-authenticate")
                .starts_with("Basic realm="),
            "{bad:.40}"
        );
    }
    // The rule no longer takes Basic: the same good credentials are none.
    let rules: Value = app.admin_api().get("/resources").await.body;
    let id = rules["resources"][0]["id"].as_str().unwrap().to_string();
    let set_basic = async |on: bool| {
        let path = format!("/resources/{id}");
        app.admin_api().patch(&path, &json!({ "basic": on })).await
    };
    assert_eq!(set_basic(false).await.status, 200);
    let answer = call_text(
        client
            .get(&url)
            .header("Authorization", basic("canister", key)),
    )
    .await;
    assert_eq!(answer.status, 401);
    assert_eq!(set_basic(true).await.status, 200);
    let answer = call_text(
        client
            .get(&url)
            .header("Authorization", basic("canister", key)),
    )
    .await;
    assert!(answer.status.is_success(), "{}", answer.status);
}

async fn every_client_through(
    app: &TestApp,
    port: u16,
    relay: &Relay,
    diagnostics: &dyn Fn() -> String,
) {
    let Setup {
        key,
        short,
        secret_file,
    } = setup(app).await;
    let other_key = mint(app, "other", json!({"name": "other's"})).await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    challenges_through(app, port, &key, &other_key).await;

    // rclone with a short-lived token from `gatehouse token`, asked for
    // again whenever the server answers 401.
    let token_command = format!(
        "{} token --issuer {} --client-id canister --client-secret-file {}",
        env!("CARGO_BIN_EXE_gatehouse"),
        app.address,
        secret_file.display()
    );
    rclone_round_trip(
        app,
        port,
        "bearer",
        &["--webdav-bearer-token-command".into(), token_command],
        diagnostics,
    );
    // rclone with user and password: the client_id and the API key, obscured.
    let obscured = rclone_obscure(&key, &app.dir.path().join("rclone-home"));
    rclone_round_trip(
        app,
        port,
        "basic",
        &[
            "--webdav-user".into(),
            "canister".into(),
            "--webdav-pass".into(),
            obscured,
        ],
        diagnostics,
    );
    cadaver_session(app, port, &short, diagnostics);
    webdavclient3_session(app, port, &key, diagnostics);

    let seen = relay.seen();
    for method in ["propfind ", "put ", "mkcol ", "get "] {
        assert!(seen.contains(method), "the backend saw no {method}");
    }
    assert!(
        !seen.contains("authorization:"),
        "a credential reached the backend"
    );
    assert!(!seen.contains(&key.to_ascii_lowercase()));
    assert!(!seen.contains(&short.to_ascii_lowercase()));

    // Last, as it locks this address out: bad Basic credentials until the
    // proxy hands the client gatehouse's 429.
    locked_out_through(port, &key).await;
}

/// Bad Basic credentials from one address end in `429` with `Retry-After`
/// through the proxy, and then the good key is refused from there too.
async fn locked_out_through(port: u16, key: &str) {
    let client = crate::helpers::http_client();
    let url = format!("http://{HOST}:{port}/");
    let attempt = async |credentials: String| {
        call_text(client.get(&url).header("Authorization", credentials)).await
    };
    let mut statuses = Vec::new();
    let mut locked = None;
    for n in 0..40 {
        let answer = attempt(basic("canister", &format!("ghk1_wrong{n}"))).await;
        statuses.push(answer.status.as_u16());
        if answer.status == 429 {
            locked = Some(answer);
            break;
        }
    }
    let locked = locked.unwrap_or_else(|| panic!("never 429: {statuses:?}"));
    assert!(
        statuses[..statuses.len() - 1].iter().all(|s| *s == 401),
        "{statuses:?}"
    );
    let retry_after: u64 = locked.header("retry-after").parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    let body = locked.json();
    assert_eq!(body["error"], "too_many_requests", "{body}");
    let answer = attempt(basic("canister", key)).await;
    assert_eq!(
        answer.status, 429,
        "the address is locked out, good key or not"
    );
}

/// A node that locks an address out after 20 failures: the clients'
/// sessions stay under it, the lockout check at the end goes over.
async fn webdav_app() -> TestApp {
    crate::helpers::spawn_app_with(|s| s.auth_failure_limit = 20).await
}

fn peers() -> bool {
    command_exists("rclone", "version")
        // cadaver --version exits 255: that it runs is enough.
        && crate::helpers::peer_available(
            "cadaver",
            Command::new("cadaver").arg("--version").output().is_ok(),
        )
        && python_has("wsgidav, cheroot, webdav3")
}

#[actix_web::test]
async fn webdav_clients_get_in_through_caddy() {
    if !(command_exists("caddy", "version") && peers()) {
        return;
    }
    let app = webdav_app().await;
    let webdav = start_webdav(&app).await;
    let relay = Relay::start(webdav.port);
    let (caddy, _) = start_caddy(&app, relay.port, "").await;
    every_client_through(&app, caddy.port, &relay, &|| {
        format!("{}\n{}", caddy.output(), webdav.output())
    })
    .await;
}

#[actix_web::test]
async fn webdav_clients_get_in_through_nginx() {
    if !(command_exists("nginx", "-v") && peers()) {
        return;
    }
    let app = webdav_app().await;
    let webdav = start_webdav(&app).await;
    let relay = Relay::start(webdav.port);
    let nginx = start_nginx(&app, relay.port, HOST).await;
    every_client_through(&app, nginx.port, &relay, &|| {
        nginx_diagnostics(&app, &nginx, &webdav)
    })
    .await;
}
