//! The console at `/ui/`: in a real browser (tests/console, Playwright on
//! Debian's Chromium, axe-core), and over plain HTTP for what a browser
//! cannot show (cookie flags over HTTPS, timeouts on the test clock,
//! refused forms, the audit trail, the log).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::fleet::REPLICA_TOKEN;
use crate::helpers::{ADMIN_TOKEN, Node, TestApp, command_exists, peer_available, spawn_app};

fn console_project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console")
}

/// Node, Chromium and the test project's packages (`npm ci` in
/// tests/console, as tests/run.sh does).
fn browser_available() -> bool {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    command_exists("node", "--version")
        && peer_available(&chromium, Path::new(&chromium).exists())
        && peer_available(
            "tests/console/node_modules (npm ci in tests/console)",
            console_project()
                .join("node_modules/playwright-core")
                .exists()
                && console_project().join("node_modules/axe-core").exists(),
        )
}

/// Every acceptance item of the console in the browser: the flow from
/// sign-in to sign-out, refused sign-ins and their lockout, forms from
/// another origin or without the CSRF token, the CSP and no violation of
/// it, axe on every page, a replica's pointer to its primary. With
/// GATEHOUSE_CONSOLE_SCREENSHOTS=1 the screenshots go to docs/console/.
#[actix_web::test]
async fn the_console_works_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let primary = Node::start(
        dirs[0].path(),
        &[
            ("GATEHOUSE_ADMIN_TOKEN", ADMIN_TOKEN),
            ("GATEHOUSE_REPLICA_TOKEN", REPLICA_TOKEN),
            // A rotation waits max-age before it signs: short, for the test.
            ("GATEHOUSE_JWKS_MAX_AGE", "1"),
        ],
    )
    .await;
    let throttled = Node::start(
        dirs[1].path(),
        &[
            ("GATEHOUSE_ADMIN_TOKEN", ADMIN_TOKEN),
            ("GATEHOUSE_AUTH_FAILURE_LIMIT", "3"),
        ],
    )
    .await;
    let primary_url = primary.url("");
    let replica = Node::start(
        dirs[2].path(),
        &[
            ("GATEHOUSE_ROLE", "replica"),
            ("GATEHOUSE_PRIMARY_URL", primary_url.as_str()),
            ("GATEHOUSE_REPLICA_TOKEN", REPLICA_TOKEN),
        ],
    )
    .await;
    let shots = match std::env::var_os("GATEHOUSE_CONSOLE_SCREENSHOTS") {
        Some(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console"),
        None => dirs[0].path().join("screenshots"),
    };
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", "console.test.mjs"])
        .current_dir(console_project())
        .env("GATEHOUSE_URL", &primary_url)
        .env("GATEHOUSE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("GATEHOUSE_THROTTLED_URL", throttled.url(""))
        .env("GATEHOUSE_REPLICA_URL", replica.url(""))
        .env("GATEHOUSE_SCREENSHOTS", &shots)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(&primary.log).unwrap_or_default();
    assert!(
        out.status.success(),
        "browser tests failed:\n{report}\n== primary log\n{log}"
    );
    eprintln!("{report}");
    assert!(shots.join("applications.jpg").exists());
    // The token was pasted and posted: it never reached the log.
    assert!(!log.contains(ADMIN_TOKEN), "the admin token is in the log");
    let throttled_log = std::fs::read_to_string(&throttled.log).unwrap_or_default();
    assert!(
        throttled_log.contains("console sign-in from 127.0.0.1: wrong admin token"),
        "failed sign-ins are logged, without the token"
    );
    assert!(!throttled_log.contains(ADMIN_TOKEN));
    assert!(!throttled_log.contains("not-the-admin-token"));
}

/// A client that keeps no cookies and follows no redirects: each test
/// sends the session cookie itself.
fn client() -> reqwest::Client {
    gatehouse::crypto::http_client(|b| b.redirect(reqwest::redirect::Policy::none())).unwrap()
}

/// What a browser holds after `GET /ui/sign-in`: its cookie (`name=value`)
/// and the form's hidden `sign_in` field.
async fn sign_in_form(app: &TestApp) -> (String, String) {
    let page = client().get(app.url("/ui/sign-in")).send().await.unwrap();
    let set = page.headers()[SET_COOKIE].to_str().unwrap().to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    let html = page.text().await.unwrap();
    let at = html
        .find(r#"name="sign_in" value=""#)
        .expect("a sign_in field")
        + 22;
    let field = html[at..at + html[at..].find('"').unwrap()].to_string();
    (cookie, field)
}

/// A sign-in form, as the console's own page sends it.
async fn sign_in_request(app: &TestApp, token: &str) -> reqwest::RequestBuilder {
    let (cookie, field) = sign_in_form(app).await;
    client()
        .post(app.url("/ui/sign-in"))
        .header(COOKIE, cookie)
        .form(&[("token", token), ("sign_in", &field)])
}

/// Signs in; the session cookie (`name=value`) and the whole Set-Cookie.
async fn sign_in(app: &TestApp, headers: &[(&str, &str)]) -> (String, String) {
    let mut request = sign_in_request(app, ADMIN_TOKEN).await;
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/ui/applications");
    let set = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    let pair = set.split(';').next().unwrap().to_string();
    (pair, set)
}

async fn get(app: &TestApp, cookie: &str, path: &str) -> reqwest::Response {
    client()
        .get(app.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

/// The CSRF token of the signed-in page at `path`.
async fn csrf_of(app: &TestApp, cookie: &str, path: &str) -> String {
    let page = get(app, cookie, path).await.text().await.unwrap();
    let at = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

async fn post(
    app: &TestApp,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client()
        .post(app.url(path))
        .header(COOKIE, cookie)
        .form(form);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[actix_web::test]
async fn the_cookie_is_secure_when_a_trusted_proxy_says_https() {
    let app = spawn_app().await;
    let (_, plain) = sign_in(&app, &[]).await;
    assert_eq!(
        plain.split_once(';').unwrap().1,
        " Path=/ui; HttpOnly; SameSite=Strict"
    );
    let (_, secure) = sign_in(&app, &[("X-Forwarded-Proto", "https")]).await;
    assert!(
        secure.ends_with("; Path=/ui; HttpOnly; SameSite=Strict; Secure"),
        "{secure}"
    );
    // A proxy chain where one hop was plain HTTP is not HTTPS.
    let (_, mixed) = sign_in(&app, &[("X-Forwarded-Proto", "https, http")]).await;
    assert!(!mixed.contains("Secure"), "{mixed}");

    // Only trusted proxies are believed.
    let untrusting = crate::helpers::spawn_app_with(|s| s.trusted_proxies = Vec::new()).await;
    let (_, claimed) = sign_in(&untrusting, &[("X-Forwarded-Proto", "https")]).await;
    assert!(!claimed.contains("Secure"), "{claimed}");
}

#[actix_web::test]
async fn sessions_end_when_idle_at_their_lifetime_and_on_sign_out() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.console_idle_timeout = 600;
        s.console_session_lifetime = 3600;
    })
    .await;
    let (cookie, _) = sign_in(&app, &[]).await;
    assert_eq!(get(&app, &cookie, "/ui/rules").await.status(), 200);
    app.clock.advance(chrono::Duration::seconds(599));
    assert_eq!(get(&app, &cookie, "/ui/rules").await.status(), 200);
    app.clock.advance(chrono::Duration::seconds(600));
    let closed = get(&app, &cookie, "/ui/rules").await;
    assert_eq!(closed.status(), 303, "idle for the whole timeout");
    assert_eq!(closed.headers()[LOCATION], "/ui/sign-in");

    // Busy, but past the lifetime.
    let (cookie, _) = sign_in(&app, &[]).await;
    for _ in 0..7 {
        app.clock.advance(chrono::Duration::seconds(500));
        assert_eq!(get(&app, &cookie, "/ui/rules").await.status(), 200);
    }
    app.clock.advance(chrono::Duration::seconds(500));
    assert_eq!(get(&app, &cookie, "/ui/rules").await.status(), 303);

    // Signing out ends the session on the server, not only in the browser.
    let (cookie, _) = sign_in(&app, &[]).await;
    let csrf = csrf_of(&app, &cookie, "/ui/rules").await;
    let out = post(&app, &cookie, "/ui/sign-out", &[("csrf", &csrf)], &[]).await;
    assert_eq!(out.status(), 303);
    assert!(
        out.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(get(&app, &cookie, "/ui/rules").await.status(), 303);
}

#[actix_web::test]
async fn forms_need_the_sessions_csrf_token_and_the_consoles_origin() {
    let app = spawn_app().await;
    let (cookie, _) = sign_in(&app, &[]).await;
    let csrf = csrf_of(&app, &cookie, "/ui/applications/new").await;
    let form = |csrf: &str| vec![("csrf", csrf.to_string()), ("client_id", "x".into())];
    let create = async |form: Vec<(&str, String)>, headers: &[(&str, &str)]| {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post(&app, &cookie, "/ui/applications", &form, headers)
            .await
            .status()
    };
    assert_eq!(create(vec![("client_id", "x".into())], &[]).await, 403);
    assert_eq!(create(form(""), &[]).await, 403);
    assert_eq!(create(form(&csrf[1..]), &[]).await, 403);
    // Another session's token is no good either.
    let (other, _) = sign_in(&app, &[]).await;
    let others = csrf_of(&app, &other, "/ui/applications/new").await;
    assert_eq!(create(form(&others), &[]).await, 403);
    // The right token, from another site.
    for headers in [
        &[("Sec-Fetch-Site", "cross-site")][..],
        &[("Sec-Fetch-Site", "same-site")],
        &[("Origin", "http://evil.example")],
    ] {
        assert_eq!(create(form(&csrf), headers).await, 403, "{headers:?}");
    }
    let apps = app
        .admin(Method::GET, "/applications")
        .send()
        .await
        .unwrap();
    let apps: Value = apps.json().await.unwrap();
    assert_eq!(apps["applications"], json!([]), "nothing was created");
    // The right token from the console itself.
    let origin = app.address.clone();
    assert_eq!(
        create(
            form(&csrf),
            &[("Sec-Fetch-Site", "same-origin"), ("Origin", "null")]
        )
        .await,
        201
    );
    assert_eq!(create(form(&csrf), &[("Origin", &origin)]).await, 409);
}

#[actix_web::test]
async fn console_actions_are_audited_as_the_session_and_answers_carry_the_headers() {
    let app = spawn_app().await;
    let (cookie, _) = sign_in(&app, &[]).await;
    let csrf = csrf_of(&app, &cookie, "/ui/applications/new").await;
    let name = r#"<script>alert("x")</script>"#;
    let created = post(
        &app,
        &cookie,
        "/ui/applications",
        &[("csrf", &csrf), ("client_id", "canister"), ("name", name)],
        &[],
    )
    .await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let page = created.text().await.unwrap();
    assert!(!page.contains("<script>alert"), "escaped");
    assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
    // A refused change is audited too, with the status the API would give.
    let refused = post(
        &app,
        &cookie,
        "/ui/applications/canister",
        &[("csrf", &csrf), ("access_token_ttl", "5")],
        &[],
    )
    .await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("access_token_ttl"));

    let audit: Value = app
        .admin(Method::GET, "/audit")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries: Vec<(String, String, u64)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let digest = gatehouse::crypto::SecretDigest::of(ADMIN_TOKEN);
    let actor = format!("ui:{}", digest.fingerprint());
    assert_eq!(
        entries,
        [
            (
                actor.clone(),
                "PATCH /admin/v1/applications/{client_id}".into(),
                400
            ),
            (actor.clone(), "POST /admin/v1/applications".into(), 201),
            (actor, "POST /ui/sign-in".into(), 200),
        ]
    );

    // Every answer under /ui: pages, errors, unknown paths, assets.
    for (path, signed) in [
        ("/ui/sign-in", false),
        ("/ui/applications", true),
        ("/ui/applications/nobody", true),
        ("/ui/nothing-here", false),
        ("/ui/assets/console.css", false),
        ("/ui/", false),
        ("/ui", false),
    ] {
        let response = if signed {
            get(&app, &cookie, path).await
        } else {
            client().get(app.url(path)).send().await.unwrap()
        };
        let headers = response.headers();
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
            "{path}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    }
    let missing = get(&app, &cookie, "/ui/applications/nobody").await;
    assert_eq!(missing.status(), 404);
    let pages = get(&app, &cookie, "/ui/applications").await;
    assert_eq!(pages.headers()["cache-control"], "no-store");
}

#[actix_web::test]
async fn failed_sign_ins_count_towards_the_address_lockout() {
    let app = crate::helpers::spawn_app_with(|s| s.auth_failure_limit = 2).await;
    for _ in 0..2 {
        let refused = sign_in_request(&app, "wrong-token")
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
        assert!(refused.headers().get(SET_COOKIE).is_none());
    }
    let locked = sign_in_request(&app, ADMIN_TOKEN)
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(locked.status(), 429);
    assert!(locked.headers().get(SET_COOKIE).is_none());
    // The same lockout as the token endpoint's: this address is refused there too.
    let token = client()
        .post(app.url("/oauth/token"))
        .basic_auth("someone", Some("x"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 429);
    app.clock.advance(chrono::Duration::seconds(61));
    actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    let (cookie, _) = sign_in(&app, &[]).await;
    assert!(!cookie.is_empty());
}

#[actix_web::test]
async fn the_audit_page_is_paged_and_filtered() {
    let app = spawn_app().await;
    app.create_application(json!({"client_id": "canister"}))
        .await;
    for i in 0..55 {
        let patched = app
            .admin(Method::PATCH, "/applications/canister")
            .json(&json!({"name": format!("name {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 200);
    }
    let (cookie, _) = sign_in(&app, &[]).await;
    let rows = |page: &str| page.matches("<tr><td><time").count();
    let first = get(&app, &cookie, "/ui/audit").await.text().await.unwrap();
    assert_eq!(rows(&first), 50);
    assert!(first.contains("ui:"), "the sign-in, newest first");
    let at = first
        .find(r#"href="/ui/audit?before="#)
        .expect("a link to older entries")
        + 6;
    let older = &first[at..at + first[at..].find('"').unwrap()];
    let second = get(&app, &cookie, &older.replace("&amp;", "&"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        rows(&second),
        7,
        "56 API entries and the sign-in, 50 a page"
    );
    assert!(!second.contains("Older entries"));
    let only_ui = get(&app, &cookie, "/ui/audit?actor=ui%3A")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(rows(&only_ui), 1);
    let creates = get(
        &app,
        &cookie,
        "/ui/audit?action=POST+%2Fadmin%2Fv1%2Fapplications",
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(rows(&creates), 1);
}

/// Review (issue 14b): a site that can set cookies for the console's
/// domain (a sibling subdomain) can plant a `gatehouse_console` cookie
/// with a longer `Path` (say `/ui/applications`). Browsers send it before
/// the real one, and a console that reads only the first cookie of that
/// name then treats the signed-in admin as signed out on every page the
/// planted path covers, even right after signing in again.
#[actix_web::test]
async fn a_planted_cookie_of_the_same_name_does_not_hide_the_session() {
    let app = spawn_app().await;
    let (cookie, _) = sign_in(&app, &[]).await;
    let tossed = format!("gatehouse_console=planted; {cookie}");
    assert_eq!(get(&app, &tossed, "/ui/rules").await.status(), 200);
    // Forms carry on working too.
    let csrf = csrf_of(&app, &tossed, "/ui/rules").await;
    let out = post(&app, &tossed, "/ui/sign-out", &[("csrf", &csrf)], &[]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(get(&app, &cookie, "/ui/rules").await.status(), 303);
}

/// Review (issue 14b): a client that is not a trusted proxy cannot dodge
/// the sign-in lockout by naming other addresses in `X-Forwarded-For`,
/// nor lock another address out by naming it.
#[actix_web::test]
async fn a_forged_forwarded_for_neither_dodges_nor_aims_the_sign_in_lockout() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.auth_failure_limit = 2;
        s.trusted_proxies = Vec::new();
    })
    .await;
    let attempt = async |token: &str, forwarded_for: &str| {
        sign_in_request(&app, token)
            .await
            .header("X-Forwarded-For", forwarded_for)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(attempt("wrong-token", "203.0.113.1").await, 401);
    assert_eq!(attempt("wrong-token", "203.0.113.2").await, 401);
    // The peer (this test, on loopback) is locked out whatever it names.
    assert_eq!(attempt("wrong-token", "203.0.113.3").await, 429);
    assert_eq!(attempt(ADMIN_TOKEN, "198.51.100.9").await, 429);
}

/// Review (issue 14b). Over plain HTTP to a non-localhost address (a
/// console on the LAN), browsers send no `Sec-Fetch-Site`, and a form
/// posted from a sandboxed iframe or a `data:` page on any site arrives
/// with `Origin: null`, exactly like the console's own sign-in form under
/// `Referrer-Policy: no-referrer`. So any page the admin visits can post
/// wrong tokens to `/ui/sign-in` from the admin's browser and lock the
/// admin's address out of the console (and of the token endpoint, whose
/// lockout it shares). Refusing them needs something a cross-site form
/// cannot send: the sign-in token `GET /ui/sign-in` sets as a
/// `SameSite=Strict` cookie and repeats in a hidden field.
#[actix_web::test]
async fn a_cross_site_sign_in_cannot_lock_the_admin_out() {
    let app = crate::helpers::spawn_app_with(|s| s.auth_failure_limit = 2).await;
    for _ in 0..3 {
        // What a sandboxed cross-site iframe's form sends over plain HTTP.
        client()
            .post(app.url("/ui/sign-in"))
            .header("Origin", "null")
            .form(&[("token", "wrong-token")])
            .send()
            .await
            .unwrap();
    }
    // The admin's own browser: the sign-in page first (with whatever it
    // sets), then the form it shows.
    let page = client().get(app.url("/ui/sign-in")).send().await.unwrap();
    let cookies: Vec<String> = page
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
        .collect();
    let html = page.text().await.unwrap();
    let mut form = vec![("token".to_string(), ADMIN_TOKEN.to_string())];
    for hidden in html.split("<input type=\"hidden\" ").skip(1) {
        let attr = |name: &str| {
            let at = hidden.find(&format!("{name}=\""))? + name.len() + 2;
            Some(hidden[at..at + hidden[at..].find('"')?].to_string())
        };
        if let (Some(name), Some(value)) = (attr("name"), attr("value")) {
            form.push((name, value));
        }
    }
    let mut request = client()
        .post(app.url("/ui/sign-in"))
        .header("Origin", "null")
        .form(&form);
    if !cookies.is_empty() {
        request = request.header(COOKIE, cookies.join("; "));
    }
    let signed_in = request.send().await.unwrap();
    assert_eq!(
        signed_in.status(),
        303,
        "the admin was locked out by cross-site sign-ins"
    );
}
