//! Session fallback: requests without a bearer token go to the
//! configured upstream verify endpoint, a second real HTTP server here.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use gatehouse::parsed::HttpUrl;
use serde_json::json;

use crate::helpers::{call, free_port, spawn_app_with};

/// A stand-in for Authelia's verify endpoint: a session cookie passes with
/// Remote-* headers; without one, a redirect to its login portal.
async fn upstream_verify(req: HttpRequest) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if header("cookie").contains("session=good") {
        HttpResponse::Ok()
            .insert_header(("Remote-User", "alice"))
            .insert_header(("Remote-Groups", "admins,media"))
            .insert_header(("Remote-Email", "alice@example.com"))
            .insert_header(("Remote-Seen-Host", header("x-forwarded-host")))
            .insert_header(("Remote-Seen-Uri", header("x-forwarded-uri")))
            .insert_header(("Remote-Seen-Method", header("x-forwarded-method")))
            .insert_header(("Remote-Seen-Url", header("x-original-url")))
            .insert_header(("X-Not-Relayed", "internal"))
            .finish()
    } else {
        HttpResponse::Found()
            .insert_header((
                "Location",
                format!(
                    "https://auth.example.com/?rd=https://{}{}",
                    header("x-forwarded-host"),
                    header("x-forwarded-uri")
                ),
            ))
            .insert_header(("Set-Cookie", "flow=1; Path=/"))
            .finish()
    }
}

fn start_upstream() -> String {
    let server = HttpServer::new(|| App::new().route("/api/verify", web::to(upstream_verify)))
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    format!("http://127.0.0.1:{port}/api/verify")
}

#[actix_web::test]
async fn upstream_decisions_are_relayed() {
    let upstream = start_upstream();
    let app =
        spawn_app_with(|s| s.upstream_verify_url = Some(HttpUrl::parse(&upstream).unwrap())).await;
    let response = call(
        app.verify("GET", "dash.example.com", "/panel?x=1")
            .header("Cookie", "session=good"),
    )
    .await;
    assert_eq!(response.status, 200);
    let h = response.headers;
    assert_eq!(h["remote-user"], "alice");
    assert_eq!(h["remote-groups"], "admins,media");
    assert_eq!(h["remote-email"], "alice@example.com");
    assert!(h.get("x-not-relayed").is_none());

    let response = call(app.verify("GET", "dash.example.com", "/panel")).await;
    assert_eq!(response.status, 302);
    assert_eq!(
        response.headers["location"],
        "https://auth.example.com/?rd=https://dash.example.com/panel"
    );
    assert_eq!(response.headers["set-cookie"], "flow=1; Path=/");
}

#[actix_web::test]
async fn the_original_request_is_passed_upstream() {
    let upstream = start_upstream();
    let app =
        spawn_app_with(|s| s.upstream_verify_url = Some(HttpUrl::parse(&upstream).unwrap())).await;
    // nginx's header family in, both families out; the stand-in echoes
    // what it saw in Remote-* headers, which are relayed.
    let response = call(
        app.client
            .get(app.url("/api/verify"))
            .header("X-Original-URL", "https://dash.example.com/a/b")
            .header("X-Original-Method", "POST")
            .header("Cookie", "session=good"),
    )
    .await;
    assert_eq!(response.status, 200);
    let h = response.headers;
    assert_eq!(h["remote-user"], "alice");
    assert_eq!(h["remote-seen-host"], "dash.example.com");
    assert_eq!(h["remote-seen-uri"], "/a/b");
    assert_eq!(h["remote-seen-method"], "POST");
    assert_eq!(h["remote-seen-url"], "https://dash.example.com/a/b");
}

#[actix_web::test]
async fn a_bearer_token_never_reaches_the_upstream() {
    let upstream = start_upstream();
    let app =
        spawn_app_with(|s| s.upstream_verify_url = Some(HttpUrl::parse(&upstream).unwrap())).await;
    let response = call(
        app.verify("GET", "dash.example.com", "/")
            .header("Cookie", "session=good")
            .bearer_auth("not-a-token"),
    )
    .await;
    assert_eq!(response.status, 401, "a bearer token is decided locally");
}

#[actix_web::test]
async fn upstream_down_is_401_with_a_reason() {
    let dead = format!("http://127.0.0.1:{}/api/verify", free_port());
    let app =
        spawn_app_with(|s| s.upstream_verify_url = Some(HttpUrl::parse(&dead).unwrap())).await;
    let response = call(
        app.verify("GET", "dash.example.com", "/")
            .header("Cookie", "session=good"),
    )
    .await;
    assert_eq!(response.status, 401);
    let reason = response.header("x-auth-reason").to_string();
    assert!(reason.contains("upstream"), "{reason}");
    let body: serde_json::Value = response.body;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("upstream")
    );
}

#[actix_web::test]
async fn browsers_are_sent_to_the_login_url_others_get_401() {
    let app = spawn_app_with(|s| {
        s.login_url = Some(HttpUrl::parse("https://login.example.com/").unwrap())
    })
    .await;
    let response = call(
        app.verify("GET", "dash.example.com", "/panel?tab=1")
            .header("Accept", "text/html,application/xhtml+xml"),
    )
    .await;
    assert_eq!(response.status, 302);
    assert_eq!(
        response.headers["location"],
        "https://login.example.com/?rd=https%3A%2F%2Fdash%2Eexample%2Ecom%2Fpanel%3Ftab%3D1"
    );
    let response = call(
        app.verify("GET", "dash.example.com", "/panel")
            .header("Accept", "application/json"),
    )
    .await;
    assert_eq!(response.status, 401);
    let body: serde_json::Value = response.body;
    assert_eq!(
        body,
        json!({"error": "unauthorized", "error_description": "no bearer token"})
    );
}

#[actix_web::test]
async fn sigterm_lets_in_flight_requests_finish_then_flushes_and_exits() {
    // An upstream that takes a second to answer keeps a request in flight.
    let server = HttpServer::new(|| {
        App::new().route(
            "/api/verify",
            web::to(|| async {
                actix_web::rt::time::sleep(std::time::Duration::from_secs(1)).await;
                HttpResponse::Ok()
                    .insert_header(("Remote-User", "slow"))
                    .finish()
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let upstream = format!("http://127.0.0.1:{}/api/verify", server.addrs()[0].port());
    actix_web::rt::spawn(server.run());

    let dir = tempfile::tempdir().unwrap();
    let mut node = crate::helpers::Node::start(
        dir.path(),
        &[("GATEHOUSE_UPSTREAM_VERIFY_URL", upstream.as_str())],
    )
    .await;
    let url = node.url("/api/verify");
    let in_flight = actix_web::rt::spawn(call(reqwest::Client::new().get(url)));
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    let pid = node.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    let response = in_flight.await.unwrap();
    assert_eq!(response.status, 200, "the request in flight got its answer");
    assert_eq!(response.headers["remote-user"], "slow");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gatehouse did not exit after SIGTERM"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&node.log).unwrap();
    assert!(log.contains("stopped; store flushed"), "{log}");
}
