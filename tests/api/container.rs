//! The Dockerfile, checked without a Docker engine (none runs on these
//! machines): a non-root runtime user, a HEALTHCHECK through `gatehouse
//! healthcheck`, the exposed port, a build command identical to one that
//! .ci/run runs, and runtime settings the binary accepts.

use std::path::Path;

use crate::helpers::{assert_succeeded, gatehouse_command};

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// The instructions of the last stage, as (INSTRUCTION, arguments), with
/// line continuations joined and comments dropped.
fn final_stage(dockerfile: &str) -> Vec<(String, String)> {
    let joined = dockerfile.replace("\\\n", " ");
    let instructions: Vec<(String, String)> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(i, rest)| (i.to_ascii_uppercase(), rest.trim().to_string()))
        .collect();
    let last_from = instructions.iter().rposition(|(i, _)| i == "FROM").unwrap();
    instructions[last_from..].to_vec()
}

#[test]
fn dockerfile_runs_as_non_root_with_a_healthcheck() {
    let dockerfile = read("Dockerfile");
    let stage = final_stage(&dockerfile);
    let get = |name: &str| {
        stage
            .iter()
            .filter(|(i, _)| i == name)
            .map(|(_, a)| a.clone())
            .collect::<Vec<_>>()
    };

    let user = get("USER").pop().expect("the runtime stage sets USER");
    assert!(
        !["root", "0", "0:0"].contains(&user.as_str()),
        "runs as {user}"
    );
    let healthcheck = get("HEALTHCHECK").pop().expect("HEALTHCHECK");
    assert!(
        healthcheck.contains(r#"["gatehouse", "healthcheck"]"#),
        "{healthcheck}"
    );
    assert_eq!(get("EXPOSE"), vec!["8080".to_string()]);

    // The image's build command is one .ci/run runs, so CI proves it builds.
    let build = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("RUN cargo build"))
        .map(|rest| format!("cargo build{rest}"))
        .expect("a cargo build step");
    assert!(
        build.contains("--release") && build.contains("--locked"),
        "{build}"
    );
    assert!(
        read(".ci/run").lines().any(|l| l.trim() == build),
        ".ci/run must run `{build}`"
    );
}

#[test]
fn dockerfile_environment_is_accepted_by_the_binary() {
    let dockerfile = read("Dockerfile");
    let env: Vec<(String, String)> = final_stage(&dockerfile)
        .into_iter()
        .filter(|(i, _)| i == "ENV")
        .flat_map(|(_, args)| {
            args.split_whitespace()
                .filter_map(|pair| {
                    pair.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(env.iter().any(|(k, _)| k == "GATEHOUSE_LISTEN"));
    // Loading the configuration fails on any unknown GATEHOUSE_* key.
    let dir = tempfile::tempdir().unwrap();
    let output = gatehouse_command(dir.path())
        .args(["keys", "list", "--keys-dir", dir.path().to_str().unwrap()])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert_succeeded(&output);
}

/// deploy/compose.yaml and the Kubernetes manifests, read with a real YAML
/// parser: the services and roles the README promises, probes on the
/// health endpoints, and environment keys the binary accepts.
#[test]
fn deploy_manifests_describe_a_primary_and_replicas() {
    if !crate::helpers::python_has("yaml") {
        return;
    }
    let script = r#"
import json, sys, yaml
compose = yaml.safe_load(open("deploy/compose.yaml"))
kube = [d for d in yaml.safe_load_all(open("deploy/kubernetes/gatehouse.yaml")) if d]
print(json.dumps({"compose": compose, "kube": kube}))
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_succeeded(&output);
    let docs: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let services = &docs["compose"]["services"];
    for name in ["primary", "replica-1", "replica-2", "caddy", "webdav"] {
        assert!(services.get(name).is_some(), "compose has no {name}");
    }
    assert_eq!(
        services["replica-1"]["environment"]["GATEHOUSE_ROLE"],
        "replica"
    );
    assert_eq!(
        services["replica-2"]["environment"]["GATEHOUSE_ROLE"],
        "replica"
    );
    assert!(
        services["primary"]["environment"]
            .get("GATEHOUSE_ROLE")
            .is_none()
    );

    let kinds: Vec<&str> = docs["kube"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "StatefulSet",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Service",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    let mut env_keys = Vec::new();
    for workload in docs["kube"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "StatefulSet" || d["kind"] == "Deployment")
    {
        let container = &workload["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        for var in container["env"].as_array().unwrap() {
            env_keys.push(var["name"].as_str().unwrap().to_string());
        }
    }
    // Every setting named in the manifests is one the binary knows.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "a-token-of-at-least-32-bytes-0123456789\n").unwrap();
    let mut command = gatehouse_command(dir.path());
    command.args(["keys", "list", "--keys-dir", dir.path().to_str().unwrap()]);
    assert!(
        env_keys.iter().any(|k| k.starts_with("GATEHOUSE_")),
        "the manifests name no setting: {env_keys:?}"
    );
    for key in env_keys.iter().filter(|k| k.starts_with("GATEHOUSE_")) {
        let value = match key.as_str() {
            "GATEHOUSE_ROLE" => "primary",
            "GATEHOUSE_MAX_STALENESS" => "30",
            "GATEHOUSE_TRUSTED_PROXIES" => "127.0.0.0/8",
            "GATEHOUSE_ISSUER" | "GATEHOUSE_PRIMARY_URL" => "http://x",
            k if k.ends_with("_TOKEN") => "a-token-of-at-least-32-bytes-0123456789",
            k if k.ends_with("_TOKEN_FILE") => token_file.to_str().unwrap(),
            _ => "x",
        };
        command.env(key, value);
    }
    let output = command.output().unwrap();
    assert_succeeded(&output);
}
