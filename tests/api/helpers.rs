//! Test harness: the real server, in process (`spawn_app`) or as the real
//! binary (`Node`), each on a free port with its own sled store and keys in
//! a temp dir. Requests go through `call` (one answer: status, headers,
//! JSON body) and admin calls through `AdminApi`, shared by both.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use gatehouse::clock::{Clock, ManualClock};
use gatehouse::config::Settings;
use gatehouse::startup::Application;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// What the server answered: status, headers and the body, read once.
#[derive(Debug)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    /// The body parsed as JSON; `Null` when it is empty.
    pub body: Value,
    /// The body as text (lossy where it is not UTF-8).
    pub text: String,
    /// The body as sent.
    pub bytes: Vec<u8>,
}

impl Answer {
    /// The value of header `name`; panics when it is absent or not text.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {self:?}"))
            .to_str()
            .unwrap()
    }

    /// The body parsed as JSON (for an answer read by `call_text`).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The body, after checking the status.
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        self.body
    }
}

/// Sends `request` and reads the whole answer; a body that is not empty
/// must be JSON (`call_text` for the others).
pub async fn call(request: reqwest::RequestBuilder) -> Answer {
    let mut answer = call_text(request).await;
    if !answer.bytes.is_empty() {
        answer.body = answer.json();
    }
    answer
}

/// Sends `request` and reads the answer, the body left unparsed (text
/// and bytes): for what a proxy, WebDAV or `/metrics` answers.
pub async fn call_text(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap().to_vec();
    Answer {
        status,
        headers,
        body: Value::Null,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
    }
}

/// The admin API of one node (`/admin/v1`), with the test admin token:
/// one method per endpoint the tests use, each answering an `Answer`.
#[derive(Clone)]
pub struct AdminApi {
    pub client: reqwest::Client,
    /// The node's address, e.g. `http://127.0.0.1:8080`.
    pub base: String,
}

impl AdminApi {
    pub fn new(client: reqwest::Client, base: impl Into<String>) -> Self {
        AdminApi {
            client,
            base: base.into(),
        }
    }

    /// A request to `/admin/v1{path}` with the admin token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/admin/v1{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
    }

    pub async fn get(&self, path: &str) -> Answer {
        call(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        call(self.request(reqwest::Method::POST, path).json(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        call(self.request(reqwest::Method::PATCH, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        call(self.request(reqwest::Method::DELETE, path)).await
    }

    /// `POST /applications`.
    pub async fn create_application(&self, body: &Value) -> Answer {
        self.post("/applications", body).await
    }

    /// `GET /applications/{client_id}`.
    pub async fn application(&self, client_id: &str) -> Answer {
        self.get(&format!("/applications/{client_id}")).await
    }

    /// `PATCH /applications/{client_id}`.
    pub async fn update_application(&self, client_id: &str, body: &Value) -> Answer {
        self.patch(&format!("/applications/{client_id}"), body)
            .await
    }

    /// `DELETE /applications/{client_id}`.
    pub async fn delete_application(&self, client_id: &str) -> Answer {
        self.delete(&format!("/applications/{client_id}")).await
    }

    /// `POST /applications/{client_id}/secret`.
    pub async fn rotate_secret(&self, client_id: &str, body: &Value) -> Answer {
        self.post(&format!("/applications/{client_id}/secret"), body)
            .await
    }

    /// `POST /applications/{client_id}/revoke-tokens`.
    pub async fn revoke_tokens(&self, client_id: &str) -> Answer {
        let path = format!("/applications/{client_id}/revoke-tokens");
        call(self.request(reqwest::Method::POST, &path)).await
    }

    /// `POST /applications/{client_id}/api-keys`.
    pub async fn create_api_key(&self, client_id: &str, body: &Value) -> Answer {
        self.post(&format!("/applications/{client_id}/api-keys"), body)
            .await
    }

    /// `GET /applications/{client_id}/api-keys{query}`.
    pub async fn api_keys(&self, client_id: &str, query: &str) -> Answer {
        self.get(&format!("/applications/{client_id}/api-keys{query}"))
            .await
    }

    /// `PATCH /api-keys/{id}`.
    pub async fn update_api_key(&self, id: &str, body: &Value) -> Answer {
        self.patch(&format!("/api-keys/{id}"), body).await
    }

    /// `DELETE /api-keys/{id}`.
    pub async fn revoke_api_key(&self, id: &str) -> Answer {
        self.delete(&format!("/api-keys/{id}")).await
    }

    /// `DELETE /keys/{kid}`.
    pub async fn retire_key(&self, kid: &str) -> Answer {
        self.delete(&format!("/keys/{kid}")).await
    }

    /// `GET /audit{query}`.
    pub async fn audit(&self, query: &str) -> Answer {
        self.get(&format!("/audit{query}")).await
    }

    /// `POST /resources`.
    pub async fn create_resource(&self, body: &Value) -> Answer {
        self.post("/resources", body).await
    }

    /// `POST /keys/rotate`.
    pub async fn rotate_keys(&self) -> Answer {
        call(self.request(reqwest::Method::POST, "/keys/rotate")).await
    }

    /// `GET /keys`.
    pub async fn keys(&self) -> Answer {
        self.get("/keys").await
    }

    /// Creates an application (201); its one-time secret.
    pub async fn register(&self, body: &Value) -> TestClient {
        let created = self.create_application(body).await;
        assert_eq!(created.status, 201, "creating {body}: {}", created.text);
        TestClient {
            client_id: created.body["client_id"].as_str().unwrap().to_string(),
            secret: created.body["client_secret"].as_str().unwrap().to_string(),
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
}

/// A created application and its one-time secret.
pub struct TestClient {
    pub client_id: String,
    pub secret: String,
}

/// Settings for a node under test: everything under `dir`, the admin
/// token fixed, and a failure limit high enough that tests of bad input
/// are not throttled (the throttle tests lower it).
pub fn test_settings(dir: &Path) -> Settings {
    let mut settings: Settings = serde_json::from_value(json!({
        "listen": "127.0.0.1:0",
        "admin_token": ADMIN_TOKEN,
        "auth_failure_limit": 1000,
    }))
    .unwrap();
    settings.data_dir = dir.join("data");
    settings.keys_dir = dir.join("keys");
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let _ = env_logger::builder().is_test(true).try_init();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.workers = Some(1);
    configure(&mut settings);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = Application::build(settings, clock.clone()).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: gatehouse::crypto::http_client(|builder| {
            builder.redirect(reqwest::redirect::Policy::none())
        })
        .unwrap(),
        clock,
        dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// This node's admin API.
    pub fn admin_api(&self) -> AdminApi {
        AdminApi::new(self.client.clone(), &self.address)
    }

    /// `GET {path}`, the answer read.
    pub async fn get(&self, path: &str) -> Answer {
        call(self.client.get(self.url(path))).await
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.admin_api().request(method, path)
    }

    /// `POST /keys/rotate`, then the clock moved past the announced
    /// signing time until the new key signs; returns its kid.
    pub async fn rotate_signing_key(&self) -> String {
        let rotation = self.admin_api().rotate_keys().await.expect(202);
        let kid = rotation["kid"].as_str().unwrap().to_string();
        let signs_at = chrono::DateTime::parse_from_rfc3339(rotation["signs_at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc);
        self.clock
            .advance(signs_at - self.clock.now() + chrono::Duration::seconds(1));
        for _ in 0..200 {
            if self.signing_key_state(&kid).await == "signing" {
                return kid;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("key {kid} never started signing");
    }

    /// The `state` of `kid` in `GET /keys`.
    pub async fn signing_key_state(&self, kid: &str) -> String {
        let keys = self.admin_api().keys().await.body;
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .map(|k| k["state"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }

    pub async fn create_application(&self, body: Value) -> TestClient {
        self.admin_api().register(&body).await
    }

    /// `POST /oauth/token` with Basic authentication and these form fields.
    pub async fn token(&self, client: &TestClient, form: &[(&str, &str)]) -> Answer {
        call(self.token_request(client, form)).await
    }

    fn token_request(&self, client: &TestClient, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
        self.client
            .post(self.url("/oauth/token"))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(form)
    }
}

/// Sends `body`, expects a 400, and returns the field the error names.
pub async fn refused_field(request: reqwest::RequestBuilder, body: &Value) -> Value {
    let error = call(request.json(body)).await;
    assert_eq!(error.status, 400, "{body}");
    error.body["field"].clone()
}

/// The value of one series (`name{labels}`) in a node's `/metrics`.
pub async fn metric(client: &reqwest::Client, metrics_url: String, series: &str) -> Option<f64> {
    let text = call_text(client.get(metrics_url)).await.text;
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

/// Sends `request` and reads its JSON answer.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    let answer = call(request).await;
    assert!(!answer.text.is_empty(), "an empty answer: {answer:?}");
    answer.body
}

/// The decoded header and claims of a JWT, unverified.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = || -> Value {
        let part = parts.next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    (decode(), decode())
}

/// Checks a JWT's Ed25519 signature with ring directly against a JWKS
/// document, independently of the server's own JWT code.
pub fn signature_valid(token: &str, jwks: &Value) -> bool {
    let (header, _) = jwt_parts(token);
    let Some(jwk) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
    else {
        return false;
    };
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, x)
        .verify(signing_input.as_bytes(), &signature)
        .is_ok()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real `gatehouse` binary, its stderr kept in a log file.
pub struct Node {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

pub fn gatehouse_command(workdir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command.current_dir(workdir);
    // The developer's own GATEHOUSE_* settings must not leak into tests.
    for (key, _) in std::env::vars() {
        if key.starts_with("GATEHOUSE_") {
            command.env_remove(key);
        }
    }
    command
}

impl Node {
    /// Starts `gatehouse serve` in `workdir` (where ./data and ./keys live)
    /// and waits until it is ready.
    pub async fn start(workdir: &Path, extra_env: &[(&str, &str)]) -> Node {
        Self::start_on(workdir, extra_env, free_port()).await
    }

    /// `start` on a given port (to restart a node where its peers expect it).
    pub async fn start_on(workdir: &Path, extra_env: &[(&str, &str)], port: u16) -> Node {
        Self::start_wrapped(workdir, extra_env, port, &[]).await
    }

    /// `start_on`, the binary run by `wrapper` (e.g. `faketime -f -1h`).
    pub async fn start_wrapped(
        workdir: &Path,
        extra_env: &[(&str, &str)],
        port: u16,
        wrapper: &[&str],
    ) -> Node {
        let log = workdir.join(format!("gatehouse-{port}.log"));
        let mut command = match wrapper.split_first() {
            None => gatehouse_command(workdir),
            Some((program, args)) => {
                let mut command = gatehouse_command(workdir);
                let mut wrapped = Command::new(program);
                wrapped.args(args).arg(command.get_program());
                wrapped.current_dir(workdir);
                for (key, value) in command.get_envs() {
                    match value {
                        Some(value) => wrapped.env(key, value),
                        None => wrapped.env_remove(key),
                    };
                }
                command = wrapped;
                command
            }
        };
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "debug")
            .envs(extra_env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = command.spawn().unwrap();
        let mut node = Node { child, port, log };
        node.wait_ready().await;
        node
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// This node's admin API.
    pub fn admin_api(&self) -> AdminApi {
        AdminApi::new(http_client(), self.url(""))
    }

    /// `GET {path}`, the answer read.
    pub async fn get(&self, path: &str) -> Answer {
        call(http_client().get(self.url(path))).await
    }

    /// An admin API request (the test admin token).
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.admin_api().request(method, path)
    }

    /// Creates an application; returns its secret.
    pub async fn create_application(&self, body: Value) -> String {
        self.admin_api().register(&body).await.secret
    }

    /// An access token for `client_id` (client_secret_basic).
    pub async fn issue_token(&self, client_id: &str, secret: &str) -> String {
        let body = json_of(
            http_client()
                .post(self.url("/oauth/token"))
                .basic_auth(client_id, Some(secret))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
        body["access_token"].as_str().unwrap().to_string()
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) the process: a replica cut off.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = http_client();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "gatehouse exited with {status}: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            let ready = client.get(self.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "gatehouse did not become ready");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, and waits for the orderly stop. Returns what the node logged.
    pub fn stop(mut self) -> String {
        self.signal("-TERM");
        let status = self.child.wait().unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.success(), "gatehouse stopped with {status}: {log}");
        log
    }

    /// SIGKILL: no shutdown, no flush. Returns what the node logged.
    pub fn kill9(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestApp {
    /// A fresh access token for `client`, with extra form fields.
    pub async fn access_token(&self, client: &TestClient, form: &[(&str, &str)]) -> String {
        let mut fields = vec![("grant_type", "client_credentials")];
        fields.extend_from_slice(form);
        let body = self.token(client, &fields).await.expect(200);
        body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn create_resource(&self, body: Value) -> Value {
        let created = self.admin_api().create_resource(&body).await;
        assert_eq!(created.status, 201, "creating {body}");
        created.body
    }

    /// The status `/api/verify` gives `credential` for `GET https://{host}/`.
    pub async fn verify_status(&self, host: &str, credential: &str) -> u16 {
        call_text(self.verify("GET", host, "/").bearer_auth(credential))
            .await
            .status
            .as_u16()
    }

    /// A forward-auth sub-request as Caddy or Traefik sends it.
    pub fn verify(&self, method: &str, host: &str, uri: &str) -> reqwest::RequestBuilder {
        self.client
            .get(self.url("/api/verify"))
            .header("X-Forwarded-Method", method)
            .header("X-Forwarded-Proto", "https")
            .header("X-Forwarded-Host", host)
            .header("X-Forwarded-Uri", uri)
    }

    /// The node's signing key, read from its key directory.
    pub fn signing_key(&self) -> (String, ring::signature::Ed25519KeyPair) {
        let keys = self.dir.path().join("keys");
        let kid = std::fs::read_to_string(keys.join("active"))
            .unwrap()
            .trim()
            .to_string();
        let pem = std::fs::read_to_string(keys.join(format!("{kid}.pem"))).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        (
            kid,
            ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).unwrap(),
        )
    }
}

/// A JWT with any header and claims, signed by `sign` over the signing input.
pub fn forge_jwt(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Whether a third-party peer the test needs is present. Where the run
/// requires peers (tests/run.sh, CI), a missing one fails the test
/// instead of skipping it. A skip is visible: written past libtest's
/// output capture (which holds `eprintln!` of passing tests), and
/// counted in `GATEHOUSE_SKIP_LOG` when set (tests/run.sh reports it).
pub fn peer_available(what: &str, present: bool) -> bool {
    if !present {
        assert!(
            std::env::var_os("GATEHOUSE_REQUIRE_INTEROP").is_none(),
            "{what} is required (GATEHOUSE_REQUIRE_INTEROP is set)"
        );
        let test = std::thread::current()
            .name()
            .unwrap_or("a test")
            .to_string();
        let line = format!("SKIPPED {test}: {what} is not installed; tests/run.sh installs it\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
        if let Some(log) = std::env::var_os("GATEHOUSE_SKIP_LOG") {
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .and_then(|mut file| file.write_all(line.as_bytes()));
        }
    }
    present
}

pub fn python_has(modules: &str) -> bool {
    let present = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    peer_available(&format!("python3 with {modules}"), present)
}

/// Whether `program version_flag` runs successfully.
pub fn command_exists(program: &str, version_flag: &str) -> bool {
    let present = Command::new(program)
        .arg(version_flag)
        .output()
        .is_ok_and(|o| o.status.success());
    peer_available(program, present)
}

/// Runs `command` with `input` on its stdin; its output and exit status.
pub fn output_with_input(command: &mut Command, input: &[u8]) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Fails the test, with what the process wrote to stderr, unless it
/// exited successfully.
#[track_caller]
pub fn assert_succeeded(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A third-party server process, killed when dropped.
pub struct Peer {
    child: Child,
    pub port: u16,
    name: &'static str,
    log: PathBuf,
}

impl Peer {
    pub async fn start(
        name: &'static str,
        mut command: Command,
        port: u16,
        log_dir: &Path,
    ) -> Peer {
        let log = log_dir.join(format!("{name}.log"));
        let child = command
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut peer = Peer {
            child,
            port,
            name,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = peer.child.try_wait().unwrap() {
                panic!("{name} exited with {status}: {}", peer.output());
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not open port {port}: {}",
                peer.output()
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        peer
    }

    pub fn output(&self) -> String {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        let err = std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default();
        format!("[{}]\n{out}{err}", self.name)
    }
}

impl Drop for Peer {
    /// TERM first: nginx's master stops its workers on TERM, while a KILL
    /// leaves them running, orphaned, on the port after the tests end.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client for the tests' own requests; TLS on ring, as in gatehouse.
pub fn http_client() -> reqwest::Client {
    gatehouse::crypto::http_client(|builder| builder).unwrap()
}

/// Canister (group media) and a rule letting media reach dav.example.com,
/// through the admin API at `base`; returns Canister's secret.
pub async fn register_canister(base: &str) -> String {
    let admin = AdminApi::new(http_client(), base);
    let canister = admin
        .register(&json!({"client_id": "canister", "groups": ["media"]}))
        .await;
    let rule = admin
        .create_resource(&json!({"host": "dav.example.com", "allowed_groups": ["media"]}))
        .await;
    assert_eq!(rule.status, 201);
    canister.secret
}
