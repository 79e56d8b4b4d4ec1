//! `GET /metrics`: parsed by the reference Prometheus text parser
//! (Python prometheus_client), and its counters move with the traffic.

use std::collections::HashMap;
use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{TestApp, call, call_text, output_with_input, python_has, spawn_app};

/// Every sample as "name{label=value,…}" → value, via prometheus_client.
async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let response = call_text(app.client.get(app.url("/metrics"))).await;
    assert_eq!(response.status, 200);
    assert!(response.header("content-type").starts_with("text/plain"));
    let text = response.text;
    let parser = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    let mut python = Command::new("python3");
    let output = output_with_input(python.args(["-c", parser]), text.as_bytes());
    assert!(
        output.status.success(),
        "not valid exposition format: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: HashMap<String, Value> = serde_json::from_slice(&output.stdout).unwrap();
    parsed
        .into_iter()
        .map(|(k, v)| (k, v.as_f64().unwrap()))
        .collect()
}

fn sample(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

#[actix_web::test]
async fn metrics_parse_and_move_with_traffic() {
    if !python_has("prometheus_client") {
        return;
    }
    let app = spawn_app().await;
    let client = app
        .create_application(json!({"client_id": "canister", "groups": ["media"]}))
        .await;
    app.create_resource(json!({"host": "dav.example.com", "allowed_groups": ["media"]}))
        .await;
    let token = app.access_token(&client, &[]).await;
    let before = scrape(&app).await;

    app.access_token(&client, &[]).await;
    let granted = call(
        app.verify("GET", "dav.example.com", "/")
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(granted.status, 200);
    let denied = call(
        app.verify("GET", "dav.example.com", "/")
            .bearer_auth("garbage"),
    )
    .await;
    assert_eq!(denied.status, 401);
    let after = scrape(&app).await;

    let moved = |key: &str| sample(&after, key) - sample(&before, key);
    assert_eq!(moved("gatehouse_tokens_issued_total{}"), 1.0);
    assert_eq!(
        moved("gatehouse_verify_decisions_total{outcome=granted,reason=ok}"),
        1.0
    );
    assert_eq!(
        moved("gatehouse_verify_decisions_total{outcome=denied,reason=malformed}"),
        1.0
    );
    assert_eq!(
        moved("gatehouse_http_requests_total{route=verify,status=200}"),
        1.0
    );
    assert_eq!(
        moved("gatehouse_http_requests_total{route=verify,status=401}"),
        1.0
    );
    assert_eq!(
        moved("gatehouse_http_requests_total{route=token,status=200}"),
        1.0
    );
    assert!(moved("gatehouse_http_request_duration_seconds_count{route=verify}") >= 2.0);
    assert_eq!(sample(&after, "gatehouse_applications{}"), 1.0);
    assert_eq!(sample(&after, "gatehouse_resources{}"), 1.0);
    // Two changes so far: the application and the rule.
    assert_eq!(sample(&after, "gatehouse_state_version{}"), 2.0);
    assert_eq!(sample(&after, "gatehouse_revoked_api_keys{}"), 0.0);

    // Revocation shows in the gauge.
    let minted = app
        .admin_api()
        .create_api_key("canister", &json!({"name": "k"}))
        .await
        .body;
    let id = minted["id"].as_str().unwrap();
    app.admin_api().revoke_api_key(id).await;
    assert_eq!(
        sample(&scrape(&app).await, "gatehouse_revoked_api_keys{}"),
        1.0
    );
}

/// Housekeeping (every 10 s on the primary) drops revocations of tokens
/// that have expired: they can never verify again anyway.
#[actix_web::test]
async fn expired_token_revocations_are_dropped_by_housekeeping() {
    if !python_has("prometheus_client") {
        return;
    }
    let app = spawn_app().await;
    let client = app
        .create_application(json!({"client_id": "canister"}))
        .await;
    let token = app.access_token(&client, &[]).await;
    let revoked = call(
        app.client
            .post(app.url("/oauth/revoke"))
            .basic_auth(&client.client_id, Some(&client.secret))
            .form(&[("token", token.as_str())]),
    )
    .await;
    assert_eq!(revoked.status, 200);
    let held =
        |samples: &HashMap<String, f64>| sample(samples, "gatehouse_revoked_access_tokens{}");
    assert_eq!(held(&scrape(&app).await), 1.0);
    // Past the token's hour and the leeway.
    app.clock.advance(chrono::Duration::hours(2));
    // Housekeeping runs every 40 ticks of the key schedule, 10 s when the
    // machine is idle and far more when the whole suite shares two cores.
    let start = std::time::Instant::now();
    while held(&scrape(&app).await) != 0.0 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(90),
            "housekeeping never dropped the expired revocation"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
