//! The files in deploy/, checked by the tools that read them: Caddy and
//! nginx load their configurations, every YAML file parses (duplicate keys
//! refused), the compose file meets the compose-spec schema and the
//! Kubernetes manifests Kubernetes' own schemas, unknown fields refused.
//! No network is needed: the schemas ship inside the Python packages
//! (check-jsonschema's vendored compose-spec schema, kubernetes-validate's
//! Kubernetes schemas), pinned in tests/interop/requirements.txt.
//!
//! Each check also runs on a copy broken on purpose, so a validator that
//! accepts anything fails the test. A missing tool skips its check, or
//! fails it where GATEHOUSE_REQUIRE_INTEROP is set (tests/run.sh, CI).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Node, command_exists, free_port, http_client, python_has};

fn deploy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

/// Ok with what `command` printed when it succeeds, Err with it otherwise.
fn run(mut command: Command) -> Result<String, String> {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        // Of a Python step's -c script, its first line will do.
        let args: Vec<String> = command
            .get_args()
            .map(|a| {
                a.to_string_lossy()
                    .trim()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        Err(format!(
            "{} {} exited with {}:\n{text}",
            command.get_program().to_string_lossy(),
            args.join(" "),
            output.status
        ))
    }
}

/// A copy of `source` in `dir`, under its own name, with `from` (which
/// must occur) replaced by `to`.
fn broken_copy(dir: &Path, source: &Path, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(source).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", source.display());
    let copy = dir.join(source.file_name().unwrap());
    std::fs::write(&copy, text.replacen(from, to, 1)).unwrap();
    copy
}

/// Every YAML file under `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// PyYAML's safe loader, which takes a repeated key silently (the last
/// wins), made to refuse one; merge keys (`<<`) still work.
const LOAD_YAML: &str = r#"
import json, sys, yaml

class Strict(yaml.SafeLoader):
    pass

def mapping(loader, node):
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)

Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
docs = []
for path in sys.argv[1:]:
    with open(path) as f:
        docs.append([d for d in yaml.load_all(f, Loader=Strict) if d is not None])
print(json.dumps(docs, default=str))
"#;

/// The documents of each YAML file, parsed by PyYAML.
fn load_yaml(paths: &[PathBuf]) -> Result<Vec<Vec<Value>>, String> {
    let mut command = Command::new("python3");
    command.args(["-c", LOAD_YAML]).args(paths);
    run(command).map(|out| serde_json::from_str(&out).unwrap())
}

fn load_one(path: &Path) -> Value {
    let mut docs = load_yaml(&[path.to_path_buf()]).unwrap_or_else(|e| panic!("{e}"));
    let mut docs = docs.remove(0);
    assert_eq!(docs.len(), 1, "{} holds one document", path.display());
    docs.remove(0)
}

/// A mapping's keys (an absent one has none).
fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// A compose service's environment, in either of compose's two forms.
fn compose_env(service: &Value) -> Vec<(String, String)> {
    match &service["environment"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_string)))
            .collect(),
        Value::Array(list) => list
            .iter()
            .map(|item| {
                let (k, v) = item.as_str().unwrap().split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn every_yaml_file_in_deploy_parses() {
    if !python_has("yaml") {
        return;
    }
    let files = yaml_files(&deploy(""));
    for name in [
        "compose.yaml",
        "kubernetes/gatehouse.yaml",
        "traefik/dynamic.yml",
    ] {
        assert!(files.contains(&deploy(name)), "{name} not in {files:?}");
    }
    let docs = load_yaml(&files).unwrap_or_else(|e| panic!("{e}"));
    for (file, docs) in files.iter().zip(&docs) {
        assert!(!docs.is_empty(), "{} holds no document", file.display());
    }

    let dir = tempfile::tempdir().unwrap();
    let bad_indent = broken_copy(
        dir.path(),
        &deploy("traefik/dynamic.yml"),
        "\n        trustForwardHeader",
        "\n       trustForwardHeader",
    );
    let refused = load_yaml(&[bad_indent]).expect_err("bad indentation parsed");
    assert!(refused.contains("dynamic.yml"), "{refused}");
    let repeated = broken_copy(
        dir.path(),
        &deploy("compose.yaml"),
        "    depends_on: [primary]",
        "    depends_on: [primary]\n    depends_on: []",
    );
    let refused = load_yaml(&[repeated]).expect_err("a repeated key parsed");
    assert!(refused.contains("duplicate key 'depends_on'"), "{refused}");
}

/// Traefik is not packaged where the tests run: its file is parsed above,
/// and here every router names a middleware and a service defined in it.
#[test]
fn traefik_routers_name_defined_middlewares_and_services() {
    if !python_has("yaml") {
        return;
    }
    let config = load_one(&deploy("traefik/dynamic.yml"));
    let http = &config["http"];
    let (middlewares, services) = (keys(&http["middlewares"]), keys(&http["services"]));
    assert!(middlewares.contains(&"gatehouse"), "{middlewares:?}");
    assert_eq!(
        http["middlewares"]["gatehouse"]["forwardAuth"]["trustForwardHeader"],
        false
    );
    let routers = http["routers"].as_object().unwrap();
    assert!(!routers.is_empty());
    for (name, router) in routers {
        let service = router["service"].as_str().unwrap();
        assert!(services.contains(&service), "router {name}: {service}");
        for middleware in router["middlewares"].as_array().into_iter().flatten() {
            let middleware = middleware.as_str().unwrap();
            assert!(
                middlewares.contains(&middleware),
                "router {name}: {middleware}"
            );
        }
    }
    // gatehouse first, then the credential stripped before the backend.
    assert_eq!(
        routers["webdav"]["middlewares"],
        json!(["gatehouse", "strip-credentials"])
    );
    assert_eq!(
        http["middlewares"]["strip-credentials"]["headers"]["customRequestHeaders"]["Authorization"],
        ""
    );
    // Traefik cannot run here; at least the public router must exclude
    // what the Caddyfile keeps inside.
    let public = routers["gatehouse"]["rule"].as_str().unwrap();
    for inside in ["/admin", "/ui", "/internal", "/metrics"] {
        assert!(
            public.contains(&format!("!PathPrefix(`{inside}`)")),
            "{public}"
        );
    }
}

/// `caddy validate` adapts the Caddyfile and provisions every module
/// without starting a server.
fn caddy_validate(
    caddyfile: &Path,
    env: &[(String, String)],
    home: &Path,
) -> Result<String, String> {
    let mut command = Command::new("caddy");
    command
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(caddyfile);
    for var in [
        "CADDY_ADMIN",
        "DAV_SITE",
        "AUTH_SITE",
        "AUTH_UPSTREAM",
        "DAV_UPSTREAM",
    ] {
        command.env_remove(var);
    }
    command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("HOME", home)
        .env("XDG_DATA_HOME", home)
        .env("XDG_CONFIG_HOME", home);
    run(command)
}

#[test]
fn caddyfile_is_valid_for_caddy() {
    if !(command_exists("caddy", "version") && python_has("yaml")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let caddyfile = deploy("Caddyfile");
    // With the placeholders' defaults, and with what compose sets (two
    // upstreams in AUTH_UPSTREAM).
    let compose = load_one(&deploy("compose.yaml"));
    let env = compose_env(&compose["services"]["caddy"]);
    assert!(env.iter().any(|(k, _)| k == "AUTH_UPSTREAM"), "{env:?}");
    for env in [Vec::new(), env] {
        let out = caddy_validate(&caddyfile, &env, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.contains("Valid configuration"), "{out}");
    }

    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    let typo = broken_copy(&broken, &caddyfile, "copy_headers", "copy_header");
    let refused = caddy_validate(&typo, &[], dir.path()).expect_err("an unknown subdirective");
    assert!(
        refused.contains("unrecognized subdirective copy_header"),
        "{refused}"
    );
}

/// deploy/nginx/gatehouse.conf inside a minimal nginx.conf (as e2e.rs's
/// `start_nginx` runs it), everything under `dir`, so that `nginx -t`
/// needs no root: the upstreams' names replaced by addresses (nginx
/// resolves them at load) and port 80 by a free loopback port (it binds).
fn nginx_test(site: &Path, dir: &Path) -> Result<String, String> {
    let port = free_port();
    let text = std::fs::read_to_string(site)
        .unwrap()
        .replace("listen 80", &format!("listen 127.0.0.1:{port}"))
        .replace("gatehouse:8080", "127.0.0.1:9")
        .replace("webdav:8080", "127.0.0.1:9");
    assert!(!text.contains("listen 80"), "{text}");
    std::fs::write(dir.join("gatehouse.conf"), text).unwrap();
    let d = dir.display();
    let main = format!(
        "worker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{}}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         include {d}/gatehouse.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let mut command = Command::new("nginx");
    command
        .arg("-t")
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"));
    run(command)
}

#[test]
fn nginx_snippet_is_valid_for_nginx() {
    if !command_exists("nginx", "-v") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let site = deploy("nginx/gatehouse.conf");
    let out = nginx_test(&site, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("test is successful"), "{out}");

    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    let typo = broken_copy(&broken, &site, "auth_request_set", "auth_requests_set");
    let refused = nginx_test(&typo, &broken).expect_err("an unknown directive");
    assert!(refused.contains("\"auth_requests_set\""), "{refused}");
}

/// kubernetes-validate against the schemas it bundles, strict: a field
/// Kubernetes does not know is an error, as `kubectl apply` makes it.
fn kubernetes_validate(files: &[PathBuf]) -> Result<String, String> {
    let mut command = Command::new("python3");
    command
        .args(["-m", "kubernetes_validate", "--strict"])
        .args(files);
    run(command)
}

#[test]
fn kubernetes_manifests_match_the_kubernetes_schemas() {
    if !(python_has("kubernetes_validate") && python_has("yaml")) {
        return;
    }
    let files = yaml_files(&deploy("kubernetes"));
    assert!(!files.is_empty());
    let out = kubernetes_validate(&files).unwrap_or_else(|e| panic!("{e}"));
    // Every resource was checked, none skipped as of an unknown kind.
    let resources: usize = load_yaml(&files)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(Vec::len)
        .sum();
    assert_eq!(
        out.matches(" passed for resource ").count(),
        resources,
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    // Only strict validation refuses a misspelt field.
    let typo = broken_copy(
        dir.path(),
        &deploy("kubernetes/gatehouse.yaml"),
        "enableServiceLinks: false",
        "enableServiceLink: false",
    );
    let refused = kubernetes_validate(&[typo]).expect_err("a misspelt field passed");
    assert!(refused.contains("enableServiceLink"), "{refused}");
}

/// check-jsonschema with the compose-spec schema it ships.
fn compose_schema(file: &Path) -> Result<String, String> {
    let mut command = Command::new("python3");
    command
        .args([
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
        ])
        .arg(file);
    run(command)
}

#[test]
fn compose_file_matches_the_compose_spec_schema() {
    if !(python_has("check_jsonschema") && python_has("yaml")) {
        return;
    }
    let compose = deploy("compose.yaml");
    compose_schema(&compose).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let typo = broken_copy(dir.path(), &compose, "depends_on:", "depend_on:");
    let refused = compose_schema(&typo).expect_err("a misspelt key passed");
    assert!(refused.contains("depend_on"), "{refused}");

    // What the schema leaves to `docker compose up`: every secret and
    // named volume a service uses is declared, and the tokens are read
    // from secrets the service mounts, never given in the environment.
    let compose = load_one(&compose);
    let (secrets, volumes) = (keys(&compose["secrets"]), keys(&compose["volumes"]));
    for (name, service) in compose["services"].as_object().unwrap() {
        let mounted: Vec<&str> = service["secrets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().or(s["source"].as_str()).unwrap())
            .collect();
        for secret in &mounted {
            assert!(secrets.contains(secret), "{name}: secret {secret}");
        }
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if !source.starts_with(['.', '/', '~']) {
                assert!(volumes.contains(&source), "{name}: volume {source}");
            }
        }
        for (key, value) in compose_env(service) {
            assert!(
                !key.ends_with("_TOKEN") && !key.ends_with("_SECRET"),
                "{name}: {key} in the environment"
            );
            if key.ends_with("_FILE") {
                let secret = value.strip_prefix("/run/secrets/").unwrap_or("");
                assert!(mounted.contains(&secret), "{name}: {key}={value}");
            }
        }
    }
    for secret in secrets {
        assert!(
            compose["secrets"][secret]["file"]
                .as_str()
                .is_some_and(|f| f.starts_with("./secrets/")),
            "{secret} is a file in deploy/secrets/"
        );
    }
}

/// The compose services' settings, run by the real binary without a
/// container engine: the primary and a replica as compose configures them,
/// with token files made as the compose file's instructions make them
/// (`openssl rand -base64 32`: 44 characters and a newline) where compose
/// mounts them. Only the paths change: /run/secrets/, the primary's
/// address and the shared key volume.
#[actix_web::test]
async fn compose_settings_run_a_primary_and_a_replica_from_secret_files() {
    if !python_has("yaml") {
        return;
    }
    let compose = load_one(&deploy("compose.yaml"));
    let services = &compose["services"];
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let admin = "M0ynVbYH1X2cFq8yJm7aTnK3sPz5wQe6rU9dLh4gBfo=";
    let replica = "Zr2+Qk8pWc5vLn1xTa7yHd3sJe9uGm6bFo4iRt0wXq==";
    assert_eq!((admin.len(), replica.len()), (44, 44));
    std::fs::write(secrets.join("admin-token"), format!("{admin}\n")).unwrap();
    std::fs::write(secrets.join("replica-token"), format!("{replica}\n")).unwrap();
    let local = |env: Vec<(String, String)>, primary_url: &str, keys: &Path| {
        env.into_iter()
            .map(|(k, v)| {
                let v = match v.strip_prefix("/run/secrets/") {
                    Some(name) => secrets.join(name).display().to_string(),
                    None if k == "GATEHOUSE_PRIMARY_URL" => primary_url.to_string(),
                    None => v,
                };
                (k, v)
            })
            .chain([("GATEHOUSE_KEYS_DIR".to_string(), keys.display().to_string())])
            .collect::<Vec<_>>()
    };

    let primary_dir = dir.path().join("primary");
    std::fs::create_dir(&primary_dir).unwrap();
    let keys = primary_dir.join("keys");
    let env = local(compose_env(&services["primary"]), "", &keys);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let primary = Node::start(&primary_dir, &env).await;
    let client = http_client();
    let created = client
        .post(primary.url("/admin/v1/applications"))
        .bearer_auth(admin)
        .json(&json!({"client_id": "canister", "groups": ["media"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "the admin token from its file");
    let created: Value = created.json().await.unwrap();
    let secret = created["client_secret"].as_str().unwrap().to_string();

    // Ready only once it has synced with the replica token from its file.
    let replica_dir = dir.path().join("replica");
    std::fs::create_dir(&replica_dir).unwrap();
    let env = local(compose_env(&services["replica-1"]), &primary.url(""), &keys);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let replica_node = Node::start(&replica_dir, &env).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let issued = client
            .post(replica_node.url("/oauth/token"))
            .basic_auth("canister", Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        if issued.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica issues no token: {}",
            issued.text().await.unwrap()
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}
