//! The gate as an attacker meets it: the proxy configurations shipped in
//! deploy/ (Caddy, nginx), in front of wsgidav and of a backend that
//! records the headers it receives. A reader (group `media`) may read the
//! whole host through a read-only rule; `/private` is for `admins`.
//! Whatever the reader sends (odd paths, forged forwarded headers, other
//! hosts, methods in disguise, identity headers), the private file never
//! comes back, nothing is written, and the backend sees only identity
//! headers that gatehouse set.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::e2e::{start_caddy, start_nginx, start_webdav};
use crate::helpers::{Peer, TestApp, command_exists, python_has, spawn_app};

const SECRET: &str = "TOP-SECRET-c0ffee";
const PUBLIC: &str = "public-file-body";
const HOST: &str = "dav.example.com";

/// The review's deployment: one host, read-only for `media`, `/private`
/// for `admins`. Returns the reader's and an admin's tokens.
async fn deployment(app: &TestApp) -> (String, String) {
    let reader = app
        .create_application(json!({"client_id": "reader", "groups": ["media"]}))
        .await;
    let boss = app
        .create_application(json!({"client_id": "boss", "groups": ["media", "admins"]}))
        .await;
    app.create_resource(json!({
        "host": HOST, "allowed_groups": ["media"],
        "methods": ["GET", "HEAD", "OPTIONS", "PROPFIND"],
    }))
    .await;
    app.create_resource(json!({
        "host": HOST, "path_prefix": "/private/", "allowed_groups": ["admins"],
    }))
    .await;
    // Where the reader may write, with a subtree it may not touch.
    app.create_resource(
        json!({"host": HOST, "path_prefix": "/x/upload", "allowed_groups": ["media"]}),
    )
    .await;
    app.create_resource(json!({
        "host": HOST, "path_prefix": "/x/upload/locked", "allowed_groups": ["admins"],
    }))
    .await;
    (
        app.access_token(&reader, &[]).await,
        app.access_token(&boss, &[]).await,
    )
}

fn webdav_root(app: &TestApp) -> PathBuf {
    let root = app.dir.path().join("webdav-root");
    std::fs::create_dir_all(root.join("x")).unwrap();
    std::fs::create_dir_all(root.join("private")).unwrap();
    std::fs::write(root.join("x/f"), PUBLIC).unwrap();
    std::fs::write(root.join("private/s"), SECRET).unwrap();
    std::fs::create_dir_all(root.join("x/upload/locked")).unwrap();
    std::fs::write(root.join("x/upload/f"), PUBLIC).unwrap();
    std::fs::write(root.join("x/upload/locked/s"), SECRET).unwrap();
    root
}

/// Every file under `root` with its contents: what a write would change.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.insert(format!("{}/", path.display()), Vec::new());
                stack.push(path);
            } else {
                files.insert(path.display().to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// One request, byte for byte as given (no client library tidies the
/// path), and the raw answer.
fn raw_exchange(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    // A proxy may close early (nginx's 444): what came is the answer.
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A request line, headers and an optional body.
struct Attempt {
    method: &'static str,
    target: String,
    host: Option<String>,
    headers: Vec<(String, String)>,
    body: &'static str,
}

impl Attempt {
    fn new(method: &'static str, target: impl Into<String>) -> Self {
        Attempt {
            method,
            target: target.into(),
            host: Some(HOST.into()),
            headers: Vec::new(),
            body: "",
        }
    }

    fn host(mut self, host: Option<&str>) -> Self {
        self.host = host.map(str::to_string);
        self
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn body(mut self, body: &'static str) -> Self {
        self.body = body;
        self
    }

    fn bytes(&self, token: &str) -> Vec<u8> {
        let mut text = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        if let Some(host) = &self.host {
            text.push_str(&format!("Host: {host}\r\n"));
        }
        text.push_str(&format!("Authorization: Bearer {token}\r\n"));
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
            self.body.len(),
            self.body
        ));
        text.into_bytes()
    }

    fn describe(&self) -> String {
        format!(
            "{} {} (Host {:?}) {:?}",
            self.method, self.target, self.host, self.headers
        )
    }
}

/// Request targets that try to reach `/private/s` through another
/// reading of the path (explain's corpus too).
pub const HOSTILE_PATHS: [&str; 31] = [
    // The comma, inside the path and at its end.
    "/x,/../private/s",
    "/x/f,/../../private/s",
    // Backslashes and encoded ones.
    "/private/a%5C../../s",
    "/x\\..\\private\\s",
    "/x%5C..%5Cprivate%5Cs",
    // Encoded separators and dots, once and twice.
    "/x/..%2Fprivate/s",
    "/x%2F..%2Fprivate%2Fs",
    "/x/%2e%2e/private/s",
    "/x/%2E%2E/private/s",
    "/x/%252e%252e/private/s",
    "/%70rivate/s",
    "/%2570rivate/s",
    // Parameters, Tomcat's `..;` among them.
    "/private;x/s",
    "/x/..;/private/s",
    "/private;/s",
    // Case and Windows' trailing dots and spaces.
    "/PRIVATE/s",
    "/Private/s",
    "/private./s",
    "/private%20/s",
    "/private%2e/s",
    // Plain dot segments and doubled slashes.
    "/x/../private/s",
    "/./private/s",
    "//private/s",
    "/x//../private/s",
    "/x/./../private/./s",
    // Control bytes and a fragment.
    "/private/s%00",
    "/private/s%0a",
    "/x/f#/../../private/s",
    "/private/s?x=/../../x/f",
    // Absolute-form request lines.
    "http://dav.example.com/private/s",
    "http://other.example.com/private/s",
];

/// The host `dav.example.com` written oddly, or another one.
pub const HOSTILE_HOSTS: [&str; 6] = [
    "dav.example.com,",
    "DAV.Example.com",
    "dav.example.com:80",
    "dav.example.com.",
    "other.example.com",
    "dav.example.com, other.example.com",
];

/// Reads of the private file, disguised every way the review found and
/// then some.
fn reads_of_the_private_file() -> Vec<Attempt> {
    let mut attempts: Vec<Attempt> = HOSTILE_PATHS
        .into_iter()
        .map(|target| Attempt::new("GET", target))
        .collect();
    // Other hosts, or hosts written oddly.
    for host in HOSTILE_HOSTS {
        attempts.push(Attempt::new("GET", "/private/s").host(Some(host)));
    }
    attempts.push(Attempt::new("GET", "/private/s").host(None));
    // Forged forwarded headers of either family, pointing at a public file.
    let forged: [(&str, &str); 7] = [
        ("X-Forwarded-Uri", "/x/f"),
        ("X-Forwarded-Host", "other.example.com"),
        ("X-Forwarded-Method", "OPTIONS"),
        ("X-Original-URL", "http://dav.example.com/x/f"),
        ("X-Original-Method", "OPTIONS"),
        ("X-Forwarded-Proto", "https"),
        ("X-Original-URL", "/x/f"),
    ];
    for (name, value) in forged {
        attempts.push(Attempt::new("GET", "/private/s").header(name, value));
    }
    attempts.push(
        Attempt::new("GET", "/private/s")
            .header("X-Forwarded-Uri", "/x/f")
            .header("X-Forwarded-Method", "GET")
            .header("X-Forwarded-Host", HOST),
    );
    attempts
}

/// Writes through the read-only rule, in disguise.
fn writes() -> Vec<Attempt> {
    let mut attempts = Vec::new();
    for (name, value) in [
        ("X-Forwarded-Method", "GET"),
        ("X-Original-Method", "GET"),
        ("X-Forwarded-Uri", "/x/f"),
        ("X-Original-URL", "http://dav.example.com/x/f"),
    ] {
        attempts.push(Attempt::new("PUT", "/x/g").header(name, value).body("w"));
        attempts.push(Attempt::new("DELETE", "/x/f").header(name, value));
    }
    attempts.extend([
        Attempt::new("PUT", "/x/g").body("w"),
        Attempt::new("put", "/x/g").body("w"),
        Attempt::new("DELETE", "/x/f"),
        Attempt::new("MKCOL", "/x/d"),
        Attempt::new("PROPPATCH", "/x/f").body("<x/>"),
        Attempt::new("MOVE", "/x/f").header("Destination", "http://dav.example.com/x/moved"),
        Attempt::new("COPY", "/x/f").header("Destination", "/private/copied"),
        Attempt::new("GET", "/x/f").header("X-HTTP-Method-Override", "DELETE"),
        Attempt::new("PUT", "/x,/../x/g").body("w"),
        Attempt::new("PUT", "/X/g").body("w"),
        // Into the private tree from the writable one, by Destination.
        Attempt::new("COPY", "/x/upload/f").header("Destination", "/private/copied"),
        Attempt::new("COPY", "/x/upload/f")
            .header("Destination", "http://dav.example.com/private;x/copied"),
        Attempt::new("MOVE", "/x/upload/f")
            .header("Destination", "http://other.example.com/x/upload/g"),
        Attempt::new("PUT", "/x/upload/locked/new").body("w"),
        Attempt::new("PUT", "/x/upload/LOCKED/new").body("w"),
        // Methods that act on the whole tree, with a locked part below.
        Attempt::new("DELETE", "/x/upload"),
        Attempt::new("DELETE", "/x/upload/"),
        Attempt::new("MOVE", "/x/upload").header("Destination", "/x/upload2"),
        Attempt::new("COPY", "/x/upload").header("Destination", "/x/upload/copy"),
        Attempt::new("COPY", "/x/upload")
            .header("Destination", "/x/upload/copy")
            .header("Depth", "infinity"),
        Attempt::new("LOCK", "/x/upload").body("<x/>"),
    ]);
    attempts
}

/// Listings that would show what lies in a refused subtree.
fn tree_reads() -> Vec<Attempt> {
    vec![
        Attempt::new("PROPFIND", "/").header("Depth", "infinity"),
        Attempt::new("PROPFIND", "/"),
        Attempt::new("PROPFIND", "/x/upload").header("Depth", "infinity"),
        Attempt::new("PROPFIND", "/x/upload"),
    ]
}

async fn hostile_corpus_through(port: u16, app: &TestApp, root: &Path, name: &str) {
    let (reader, boss) = deployment(app).await;
    let before = tree(root);

    // The plain cases still work.
    let answer = raw_exchange(port, &Attempt::new("GET", "/x/f").bytes(&reader));
    assert_eq!(status_of(&answer), 200, "{name}: {answer}");
    assert!(answer.contains(PUBLIC));
    let answer = raw_exchange(port, &Attempt::new("GET", "/private/s").bytes(&reader));
    assert_eq!(status_of(&answer), 403, "{name}: {answer}");
    let answer = raw_exchange(port, &Attempt::new("PUT", "/x/g").body("w").bytes(&reader));
    assert_eq!(status_of(&answer), 403, "{name}: {answer}");
    let answer = raw_exchange(port, &Attempt::new("GET", "/private/s").bytes(&boss));
    assert_eq!(
        status_of(&answer),
        200,
        "{name}: the rule itself works: {answer}"
    );
    assert!(answer.contains(SECRET));

    let reads = reads_of_the_private_file();
    let writes = writes();
    let tree_reads = tree_reads();
    // A listing names files rather than returning them, so the secret's
    // absence proves nothing there: the gate must refuse it outright.
    for attempt in &tree_reads {
        let answer = raw_exchange(port, &attempt.bytes(&reader));
        assert_eq!(
            status_of(&answer),
            403,
            "{name}: {}: {answer}",
            attempt.describe()
        );
    }
    for attempt in reads.iter().chain(&writes).chain(&tree_reads) {
        let answer = raw_exchange(port, &attempt.bytes(&reader));
        assert!(
            !answer.contains(SECRET),
            "{name}: {} returned the private file: {answer}",
            attempt.describe()
        );
        assert_ne!(
            status_of(&answer) / 100,
            5,
            "{name}: {}: {answer}",
            attempt.describe()
        );
    }
    assert_eq!(tree(root), before, "{name}: a write went through");
    // What the rules allow still works: a shallow listing, a write and a
    // shallow copy inside the writable area.
    let listing = Attempt::new("PROPFIND", "/x/upload").header("Depth", "1");
    let answer = raw_exchange(port, &listing.bytes(&reader));
    assert_eq!(status_of(&answer), 207, "{name}: {answer}");
    let answer = raw_exchange(
        port,
        &Attempt::new("PUT", "/x/upload/new")
            .body("w")
            .bytes(&reader),
    );
    assert_eq!(status_of(&answer) / 100, 2, "{name}: {answer}");
    let copy = Attempt::new("COPY", "/x/upload/f").header("Destination", "/x/upload/f2");
    let answer = raw_exchange(port, &copy.header("Depth", "0").bytes(&reader));
    assert_eq!(status_of(&answer) / 100, 2, "{name}: {answer}");
    eprintln!(
        "{name}: {} hostile reads, {} writes and {} tree reads refused",
        reads.len(),
        writes.len(),
        tree_reads.len()
    );
}

#[actix_web::test]
async fn hostile_requests_through_caddy_reach_nothing() {
    if !(command_exists("caddy", "version") && python_has("wsgidav, cheroot")) {
        return;
    }
    let app = spawn_app().await;
    let root = webdav_root(&app);
    let webdav = start_webdav(&app).await;
    let (caddy, _) = start_caddy(&app, webdav.port, HOST).await;
    hostile_corpus_through(caddy.port, &app, &root, "caddy").await;
}

/// The shipped auth site serves the token endpoint and discovery to the
/// internet, never the admin API, the console, replication or metrics,
/// however the path is written.
#[actix_web::test]
async fn the_auth_site_keeps_internal_endpoints_inside() {
    if !command_exists("caddy", "version") {
        return;
    }
    let app = spawn_app().await;
    let (_caddy, auth_port) = start_caddy(&app, crate::helpers::free_port(), "").await;
    let admin = format!("Bearer {}", crate::helpers::ADMIN_TOKEN);
    for path in [
        "/admin/v1/applications",
        "/admin",
        "/%61dmin/v1/applications",
        "/admin/v1/../v1/applications",
        "/./admin/v1/applications",
        "/internal/v1/state",
        "/ui",
        "/ui/",
        "/ui/sign-in",
        "/%75i/sign-in",
        "/./ui/applications",
        "/metrics",
        "/metrics/",
        "/%6detrics",
    ] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: auth.example.com\r\nAuthorization: {admin}\r\nConnection: close\r\n\r\n"
        );
        let answer = raw_exchange(auth_port, request.as_bytes());
        assert_eq!(status_of(&answer), 404, "{path}: {answer}");
    }
    let discovery = "GET /.well-known/jwks.json HTTP/1.1\r\nHost: auth.example.com\r\nConnection: close\r\n\r\n";
    assert_eq!(
        status_of(&raw_exchange(auth_port, discovery.as_bytes())),
        200
    );
}

#[actix_web::test]
async fn hostile_requests_through_nginx_reach_nothing() {
    if !(command_exists("nginx", "-v") && python_has("wsgidav, cheroot")) {
        return;
    }
    let app = spawn_app().await;
    let root = webdav_root(&app);
    let webdav = start_webdav(&app).await;
    let nginx = start_nginx(&app, webdav.port, HOST).await;
    hostile_corpus_through(nginx.port, &app, &root, "nginx").await;
}

/// One request's header lines, names lowercase.
type Headers = Vec<(String, String)>;

/// A backend that answers 200 to everything and keeps each request's
/// header lines.
struct Recorder {
    port: u16,
    requests: Arc<Mutex<Vec<Headers>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let headers = head
                    .lines()
                    .skip(1)
                    .filter_map(|line| line.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                seen.lock().unwrap().push(headers);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        });
        Recorder { port, requests }
    }

    fn take(&self) -> Vec<Headers> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

/// Headers by which some backends pick another path than the one checked.
const ROUTING_HEADERS: [&str; 6] = [
    "x-original-url",
    "x-original-method",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-forwarded-prefix",
];

/// What gatehouse sets for the reader's token: nothing else may arrive.
fn assert_only_gatehouse_identity(requests: &[Headers], name: &str) {
    let expected: BTreeMap<&str, &str> = [
        ("remote-user", "reader"),
        ("remote-name", "reader"),
        ("remote-groups", "media"),
        ("remote-client-id", "reader"),
        ("remote-auth-method", "client_credentials"),
    ]
    .into();
    for headers in requests {
        for (header, value) in headers {
            // CGI-style backends read `_` as `-`.
            let header = &header.replace('_', "-");
            assert!(
                !ROUTING_HEADERS.contains(&header.as_str()),
                "{name}: the client's {header} reached the backend"
            );
            if header == "host" {
                assert!(
                    value.starts_with(HOST),
                    "{name}: the backend was asked for host {value}"
                );
            }
            if header.starts_with("remote-") {
                assert_eq!(
                    expected.get(header.as_str()),
                    Some(&value.as_str()),
                    "{name}: the backend received {header}: {value}"
                );
            }
            assert!(
                !value.contains("{http."),
                "{name}: a placeholder reached the backend: {header}: {value}"
            );
        }
    }
}

async fn identity_headers_through(port: u16, recorder: &Recorder, app: &TestApp, name: &str) {
    let (reader, _) = deployment(app).await;
    // A plain request: gatehouse's headers arrive, and no Remote-Scope
    // (the reader's token has none), literal or otherwise.
    let answer = raw_exchange(port, &Attempt::new("GET", "/x/f").bytes(&reader));
    assert_eq!(status_of(&answer), 200, "{name}: {answer}");
    let plain = recorder.take();
    assert_eq!(plain.len(), 1, "{name}");
    let names: Vec<&str> = plain[0].iter().map(|(n, _)| n.as_str()).collect();
    for header in [
        "remote-user",
        "remote-groups",
        "remote-client-id",
        "remote-auth-method",
    ] {
        assert!(
            names.contains(&header),
            "{name}: {header} missing: {names:?}"
        );
    }
    assert_only_gatehouse_identity(&plain, name);

    // Identity headers of the client's own: dropped by the proxy, or the
    // request refused; never passed on.
    let forged = [
        ("Remote-Email", "boss@example.com"),
        ("Remote-User", "boss"),
        ("Remote-Groups", "admins"),
        ("Remote-Scope", "everything"),
        ("Remote-Name", "Boss"),
        ("remote-client-id", "boss"),
        ("Remote-Anything", "x"),
        ("Remote_User", "boss"),
        ("Remote_Groups", "admins"),
        ("REMOTE_EMAIL", "boss@example.com"),
    ];
    for (header, value) in forged {
        let attempt = Attempt::new("GET", "/x/f").header(header, value);
        let answer = raw_exchange(port, &attempt.bytes(&reader));
        assert!(
            [200, 403].contains(&status_of(&answer)),
            "{name}: {header}: {answer}"
        );
    }
    let all = Attempt::new("GET", "/x/f");
    let all = forged.iter().fold(all, |a, (h, v)| a.header(h, v));
    raw_exchange(port, &all.bytes(&reader));
    // Headers that would make a backend serve another path, and a request
    // line that names another host than the Host header.
    let routing = [
        ("X-Original-URL", "/private/s"),
        ("X-Rewrite-URL", "/private/s"),
        ("X-Forwarded-Uri", "/private/s"),
        ("X-Forwarded-Prefix", "/private"),
    ];
    let rerouted = routing
        .iter()
        .fold(Attempt::new("GET", "/x/f"), |a, (h, v)| a.header(h, v));
    raw_exchange(port, &rerouted.bytes(&reader));
    let absolute =
        Attempt::new("GET", "http://dav.example.com/x/f").host(Some("other.example.com"));
    raw_exchange(port, &absolute.bytes(&reader));
    let seen = recorder.take();
    assert!(
        !seen.is_empty(),
        "{name}: some of these reached the backend"
    );
    assert_only_gatehouse_identity(&seen, name);
}

#[actix_web::test]
async fn only_gatehouse_sets_identity_headers_through_caddy() {
    if !command_exists("caddy", "version") {
        return;
    }
    let app = spawn_app().await;
    let recorder = Recorder::start();
    let (caddy, _): (Peer, u16) = start_caddy(&app, recorder.port, HOST).await;
    identity_headers_through(caddy.port, &recorder, &app, "caddy").await;
}

#[actix_web::test]
async fn only_gatehouse_sets_identity_headers_through_nginx() {
    if !command_exists("nginx", "-v") {
        return;
    }
    let app = spawn_app().await;
    let recorder = Recorder::start();
    let nginx = start_nginx(&app, recorder.port, HOST).await;
    identity_headers_through(nginx.port, &recorder, &app, "nginx").await;
}

/// A key limited to `source_cidrs` is judged by the client's address as
/// the proxy saw it: an `X-Forwarded-For` the client forges names no
/// address gatehouse believes. The tests' client is on loopback, which is
/// also a trusted proxy range: a proxy appending to the forged list (as
/// nginx's `$proxy_add_x_forwarded_for` does) would get it believed.
async fn forged_forwarded_for_through(port: u16, app: &TestApp, name: &str) {
    let reader = app
        .create_application(json!({"client_id": "reader", "groups": ["media"]}))
        .await;
    app.create_resource(json!({"host": HOST, "allowed_groups": ["media"]}))
        .await;
    let mint = |cidr: &str| {
        app.admin(reqwest::Method::POST, "/applications/reader/api-keys")
            .json(&json!({"name": cidr, "source_cidrs": [cidr]}))
    };
    let elsewhere = crate::helpers::json_of(mint("198.51.100.0/24")).await;
    let here = crate::helpers::json_of(mint("127.0.0.0/8")).await;
    let (elsewhere, here) = (
        elsewhere["api_key"].as_str().unwrap(),
        here["api_key"].as_str().unwrap(),
    );
    drop(reader);
    let get = Attempt::new("GET", "/x/f");
    let answer = raw_exchange(port, &get.bytes(here));
    assert_eq!(
        status_of(&answer),
        200,
        "{name}: the scope itself works: {answer}"
    );
    for forged in [
        "198.51.100.9",
        "198.51.100.9, 198.51.100.10",
        "198.51.100.9, 127.0.0.1",
    ] {
        let attempt = Attempt::new("GET", "/x/f").header("X-Forwarded-For", forged);
        let answer = raw_exchange(port, &attempt.bytes(elsewhere));
        assert_eq!(
            status_of(&answer),
            403,
            "{name}: X-Forwarded-For: {forged}: {answer}"
        );
    }
    let answer = raw_exchange(port, &get.bytes(elsewhere));
    assert_eq!(status_of(&answer), 403, "{name}: {answer}");
}

#[actix_web::test]
async fn a_forged_forwarded_for_passes_no_source_scope_through_caddy() {
    if !(command_exists("caddy", "version") && python_has("wsgidav, cheroot")) {
        return;
    }
    let app = spawn_app().await;
    webdav_root(&app);
    let webdav = start_webdav(&app).await;
    let (caddy, _) = start_caddy(&app, webdav.port, HOST).await;
    forged_forwarded_for_through(caddy.port, &app, "caddy").await;
}

#[actix_web::test]
async fn a_forged_forwarded_for_passes_no_source_scope_through_nginx() {
    if !(command_exists("nginx", "-v") && python_has("wsgidav, cheroot")) {
        return;
    }
    let app = spawn_app().await;
    webdav_root(&app);
    let webdav = start_webdav(&app).await;
    let nginx = start_nginx(&app, webdav.port, HOST).await;
    forged_forwarded_for_through(nginx.port, &app, "nginx").await;
}
