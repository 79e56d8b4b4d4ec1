//! Basic credentials, the Basic challenge, scoped keys, last use and
//! expiry, against the real server in process.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};

use gatehouse::clock::Clock as _;

use crate::helpers::{Answer, TestApp, call, metric, refused_field, spawn_app, spawn_app_with};

/// Takes Basic, and challenges for it.
const DAV: &str = "dav.example.com";
/// Takes Basic without a challenge.
const QUIET: &str = "quiet.example.com";
/// Bearer only.
const BEARER_ONLY: &str = "bearer.example.com";

async fn setup(app: &TestApp) {
    for client_id in ["canister", "other"] {
        app.create_application(json!({"client_id": client_id, "groups": ["media"]}))
            .await;
    }
    app.create_resource(json!({
        "host": DAV, "allowed_groups": ["media"], "basic": true,
        "challenge": "basic", "realm": "Canister's files",
    }))
    .await;
    app.create_resource(json!({"host": QUIET, "allowed_groups": ["media"], "basic": true}))
        .await;
    app.create_resource(json!({"host": BEARER_ONLY, "allowed_groups": ["media"]}))
        .await;
}

pub async fn mint(app: &TestApp, client_id: &str, body: Value) -> Value {
    let response = app.admin_api().create_api_key(client_id, &body).await;
    assert_eq!(response.status, 201);
    response.body
}

async fn key(app: &TestApp, client_id: &str, body: Value) -> (String, String) {
    let minted = mint(app, client_id, body).await;
    (
        minted["id"].as_str().unwrap().to_string(),
        minted["api_key"].as_str().unwrap().to_string(),
    )
}

pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

async fn verify_with(
    app: &TestApp,
    method: &str,
    host: &str,
    authorization: Option<&str>,
) -> Answer {
    let request = app.verify(method, host, "/photos/a.jpg");
    let request = match authorization {
        Some(value) => request.header("Authorization", value),
        None => request,
    };
    call(request).await
}

#[actix_web::test]
async fn basic_credentials_verify_like_the_key_as_a_bearer() {
    let app = spawn_app().await;
    setup(&app).await;
    let (_, key) = key(&app, "canister", json!({"name": "dav"})).await;

    let answer = verify_with(&app, "GET", DAV, Some(&basic("canister", &key))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["remote-auth-method"], "basic_api_key");
    assert_eq!(answer.headers["remote-user"], "canister");
    assert_eq!(answer.headers["remote-groups"], "media");
    // The scheme in any case, as RFC 7617 allows.
    let lower = basic("canister", &key).replacen("Basic", "bAsIc", 1);
    assert_eq!(
        verify_with(&app, "GET", QUIET, Some(&lower)).await.status,
        200
    );
    // The short form of the key, for clients that cut passwords at 255.
    let minted = mint(&app, "canister", json!({"name": "short"})).await;
    let short = minted["basic_password"].as_str().unwrap();
    assert!(short.len() <= 255 && minted["api_key"].as_str().unwrap().len() > 255);
    let answer = verify_with(&app, "GET", DAV, Some(&basic("canister", short))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["remote-auth-method"], "basic_api_key");
    let answer = verify_with(&app, "GET", DAV, Some(&basic("other", short))).await;
    assert_eq!(answer.status, 401, "under another user it is another key");
    let revoked = app
        .admin_api()
        .revoke_api_key(minted["id"].as_str().unwrap())
        .await;
    assert_eq!(revoked.status, 204);
    let answer = verify_with(&app, "GET", DAV, Some(&basic("canister", short))).await;
    assert_eq!(answer.status, 401, "revoked in either form");
    // The same key as a bearer is still an api_key.
    let bearer = format!("Bearer {key}");
    let answer = verify_with(&app, "GET", DAV, Some(&bearer)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["remote-auth-method"], "api_key");

    // Where no rule asked for Basic, it is no credential: 401, the Bearer
    // challenge without an error, as for a request without any.
    let answer = verify_with(&app, "GET", BEARER_ONLY, Some(&basic("canister", &key))).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.headers["www-authenticate"],
        r#"Bearer realm="gatehouse""#
    );
    assert_eq!(
        verify_with(&app, "GET", BEARER_ONLY, Some(&bearer))
            .await
            .status,
        200
    );
    // Nor is any other Basic there a failed login: a browser resending a
    // backend's password on every request locks nobody out.
    for attempt in 0..40 {
        let password = format!(
            "Basic {}",
            STANDARD.encode(format!("someone:guess{attempt}"))
        );
        let answer = verify_with(&app, "GET", BEARER_ONLY, Some(&password)).await;
        assert_eq!(answer.status, 401, "attempt {attempt}");
        let challenge = &answer.headers["www-authenticate"];
        assert_eq!(
            challenge, r#"Bearer realm="gatehouse""#,
            "attempt {attempt}"
        );
        let garbage = verify_with(&app, "GET", BEARER_ONLY, Some("Basic !!!")).await;
        assert_eq!(garbage.status, 401, "attempt {attempt}");
    }
    assert_eq!(
        verify_with(&app, "GET", BEARER_ONLY, Some(&bearer))
            .await
            .status,
        200,
        "the address is not locked out"
    );
    // Basic carries an API key, not an access token.
    let token = app
        .access_token(
            &crate::helpers::TestClient {
                client_id: "canister".into(),
                secret: rotate_secret(&app, "canister").await,
            },
            &[],
        )
        .await;
    assert_eq!(
        verify_with(&app, "GET", QUIET, Some(&basic("canister", &token)))
            .await
            .status,
        401
    );
}

async fn rotate_secret(app: &TestApp, client_id: &str) -> String {
    let body = call(app.admin(Method::POST, &format!("/applications/{client_id}/secret")))
        .await
        .body;
    body["client_secret"].as_str().unwrap().to_string()
}

#[actix_web::test]
async fn a_challenge_rule_asks_for_basic_credentials() {
    let app = spawn_app().await;
    setup(&app).await;
    let answer = verify_with(&app, "PROPFIND", DAV, None).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.headers["www-authenticate"],
        r#"Basic realm="Canister's files", charset="UTF-8""#
    );
    let body = answer.body;
    assert_eq!(body["error"], "unauthorized");
    // Wrong credentials: asked again, so that the password prompt returns.
    let answer = verify_with(&app, "GET", DAV, Some(&basic("canister", "nope"))).await;
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .header("www-authenticate")
            .starts_with("Basic realm=")
    );
    // Without a challenge: the session fallback's 401, a Bearer challenge.
    let answer = verify_with(&app, "GET", QUIET, None).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.headers["www-authenticate"],
        r#"Bearer realm="gatehouse""#
    );

    // Realms are validated: they go into a quoted-string.
    for realm in ["a\"b", "a\\b", "a\nb", "", &"r".repeat(129)] {
        let body = json!({"host": "x.example.com", "allowed_groups": ["media"], "challenge": "basic", "realm": realm});
        let create = app.admin(Method::POST, "/resources");
        assert_eq!(refused_field(create, &body).await, "realm", "{realm:?}");
    }
    let response = app
        .admin_api()
        .create_resource(
            &json!({"host": "x.example.com", "allowed_groups": ["media"], "challenge": "digest"}),
        )
        .await;
    assert_eq!(response.status, 400);
    // A default realm, and a rule changed by PATCH.
    let rule = app
        .create_resource(
            json!({"host": "y.example.com", "allowed_groups": ["media"], "challenge": "basic"}),
        )
        .await;
    let answer = verify_with(&app, "GET", "y.example.com", None).await;
    assert_eq!(
        answer.headers["www-authenticate"],
        r#"Basic realm="gatehouse", charset="UTF-8""#
    );
    let id = rule["id"].as_str().unwrap();
    let patched = app
        .admin_api()
        .patch(&format!("/resources/{id}"), &json!({"challenge": null}))
        .await;
    assert_eq!(patched.status, 200);
    let answer = verify_with(&app, "GET", "y.example.com", None).await;
    assert_eq!(
        answer.headers["www-authenticate"],
        r#"Bearer realm="gatehouse""#
    );
}

/// Every hostile Basic value is a 401 (never a 5xx), and enough of them
/// from one address lock it out, while another address is still served.
#[actix_web::test]
async fn hostile_basic_credentials_are_refused_and_then_throttled() {
    let limit = 12;
    let app = spawn_app_with(|s| s.auth_failure_limit = limit).await;
    setup(&app).await;
    let (_, good) = key(&app, "canister", json!({"name": "good"})).await;
    let (revoked_id, revoked) = key(&app, "canister", json!({"name": "revoked"})).await;
    let gone = app.admin_api().revoke_api_key(&revoked_id).await;
    assert_eq!(gone.status, 204);
    let (_, expiring) = key(&app, "canister", json!({"name": "short", "expires_in": 60})).await;
    let (_, others) = key(&app, "other", json!({"name": "other's"})).await;
    app.clock.advance(Duration::seconds(120));

    let hostile: Vec<(&str, String)> = vec![
        ("revoked", basic("canister", &revoked)),
        ("expired", basic("canister", &expiring)),
        ("other client's key", basic("canister", &others)),
        ("own key, other user", basic("other", &good)),
        ("malformed base64", "Basic !!!not-base64!!!".into()),
        ("no colon", format!("Basic {}", STANDARD.encode(&good))),
        ("empty user", basic("", &good)),
        ("empty password", basic("canister", "")),
        ("NUL in the key", basic("canister", &format!("{good}\0"))),
        ("NUL in the user", basic("canister\0", &good)),
        ("huge", basic("canister", &"A".repeat(20_000))),
        ("scheme only", "Basic".into()),
    ];
    let from = |addr: &str, value: &str| {
        app.verify("GET", DAV, "/")
            .header("Authorization", value.to_string())
            .header("X-Forwarded-For", addr.to_string())
    };
    for (what, value) in &hostile {
        let answer = call(from("198.51.100.7", value)).await;
        assert_eq!(answer.status, 401, "{what}");
        let body = answer.body;
        assert!(body["error_description"].is_string(), "{what}");
    }
    // The address is locked out now, even for the right credentials.
    let answer = call(from("198.51.100.7", &basic("canister", &good))).await;
    assert_eq!(answer.status, 429);
    assert!(answer.headers.contains_key("retry-after"));
    // Another address is not.
    let answer = call(from("203.0.113.5", &basic("canister", &good))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(hostile.len() as u32, limit, "exactly the limit, then 429");
}

#[actix_web::test]
async fn scoped_keys_are_refused_outside_their_scopes() {
    let app = spawn_app().await;
    setup(&app).await;
    app.create_resource(
        json!({"host": "other.example.com", "allowed_groups": ["media"], "basic": true}),
    )
    .await;
    let minted = mint(
        &app,
        "canister",
        json!({
            "name": "scoped", "hosts": [DAV], "methods": ["GET", "PROPFIND"],
            "source_cidrs": ["198.51.100.0/24"],
        }),
    )
    .await;
    assert_eq!(minted["hosts"], json!([DAV]));
    assert_eq!(minted["source_cidrs"], json!(["198.51.100.0/24"]));
    let key = minted["api_key"].as_str().unwrap();
    let id = minted["id"].as_str().unwrap();
    let check = async |method: &str, host: &str, addr: &str| {
        call(
            app.verify(method, host, "/photos/")
                .bearer_auth(key)
                .header("X-Forwarded-For", addr.to_string()),
        )
        .await
    };
    let reason = |answer: &Answer| answer.header("x-auth-reason").to_string();
    assert_eq!(check("GET", DAV, "198.51.100.7").await.status, 200);
    assert_eq!(check("PROPFIND", DAV, "198.51.100.200").await.status, 200);
    let answer = check("GET", "other.example.com", "198.51.100.7").await;
    assert_eq!(answer.status, 403);
    assert!(reason(&answer).contains("host"), "{}", reason(&answer));
    let answer = check("PUT", DAV, "198.51.100.7").await;
    assert_eq!(answer.status, 403);
    assert!(reason(&answer).contains("method"));
    let answer = check("GET", DAV, "203.0.113.7").await;
    assert_eq!(answer.status, 403);
    assert!(reason(&answer).contains("address"));
    // A method override is a method too.
    let answer = call(
        app.verify("GET", DAV, "/photos/")
            .bearer_auth(key)
            .header("X-Forwarded-For", "198.51.100.7")
            .header("X-HTTP-Method-Override", "DELETE"),
    )
    .await;
    assert_eq!(answer.status, 403);
    // The same as Basic.
    let answer = call(
        app.verify("PUT", DAV, "/photos/")
            .header("Authorization", basic("canister", key))
            .header("X-Forwarded-For", "198.51.100.7"),
    )
    .await;
    assert_eq!(answer.status, 403);

    // Narrowed by PATCH: to /photos, GET only.
    let patched = app
        .admin_api()
        .update_api_key(
            id,
            &json!({"name": "photos", "methods": ["GET"], "path_prefixes": ["/photos"]}),
        )
        .await;
    assert_eq!(patched.status, 200);
    let view = patched.body;
    assert_eq!(view["name"], "photos");
    assert_eq!(view["methods"], json!(["GET"]));
    assert_eq!(view["hosts"], json!([DAV]), "untouched scopes stay");
    assert_eq!(check("PROPFIND", DAV, "198.51.100.7").await.status, 403);
    let outside = call(
        app.verify("GET", DAV, "/photos/../private/s")
            .bearer_auth(key)
            .header("X-Forwarded-For", "198.51.100.7"),
    )
    .await;
    assert_eq!(outside.status, 403);
    assert_eq!(check("GET", DAV, "198.51.100.7").await.status, 200);
    // Lifting a limit with null.
    let lifted = app
        .admin_api()
        .update_api_key(id, &json!({"source_cidrs": null}))
        .await;
    assert_eq!(lifted.status, 200);
    assert_eq!(check("GET", DAV, "203.0.113.7").await.status, 200);

    // Scopes only narrow: the rules still decide first.
    let wide = mint(
        &app,
        "canister",
        json!({"name": "wide", "hosts": ["*.example.com"]}),
    )
    .await;
    let wide = wide["api_key"].as_str().unwrap();
    assert_eq!(app.verify_status("nowhere.example.com", wide).await, 403);

    // Bad scopes name their field; unknown keys and ids are 404.
    for (body, field) in [
        (json!({"name": "x", "hosts": []}), "hosts"),
        (
            json!({"name": "x", "hosts": ["a.*.example.com"]}),
            "hosts[0]",
        ),
        (
            json!({"name": "x", "source_cidrs": ["300.1.1.1/8"]}),
            "source_cidrs[0]",
        ),
        (json!({"name": "x", "methods": ["G T"]}), "methods[0]"),
        (
            json!({"name": "x", "path_prefixes": ["photos"]}),
            "path_prefixes[0]",
        ),
    ] {
        let mint = app.admin(Method::POST, "/applications/canister/api-keys");
        assert_eq!(refused_field(mint, &body).await, field, "{body}");
    }
    let missing = app
        .admin_api()
        .update_api_key("AAAAAAAAAAAAAAAAAAAAAA", &json!({"name": "x"}))
        .await;
    assert_eq!(missing.status, 404);
}

async fn listing(app: &TestApp, query: &str) -> Vec<Value> {
    let response = app.admin_api().api_keys("canister", query).await;
    assert_eq!(response.status, 200, "{query}");
    let body = response.body;
    body["api_keys"].as_array().unwrap().clone()
}

/// The names, sorted (keys minted in one second list in id order).
fn names(keys: &[Value]) -> Vec<&str> {
    let mut names: Vec<&str> = keys.iter().map(|k| k["name"].as_str().unwrap()).collect();
    names.sort();
    names
}

async fn gauge(app: &TestApp, within: &str) -> f64 {
    let series = format!("gatehouse_api_keys_expiring{{within=\"{within}\"}}");
    metric(&app.client, app.url("/metrics"), &series)
        .await
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

#[actix_web::test]
async fn listings_show_last_use_and_filter_by_use_and_expiry() {
    let app = spawn_app().await;
    setup(&app).await;
    let (_, used) = key(&app, "canister", json!({"name": "used"})).await;
    key(&app, "canister", json!({"name": "never"})).await;
    let day = 86_400;
    for (name, expires_in) in [
        ("day", day - 60),
        ("week", 6 * day),
        ("month", 20 * day),
        ("year", 365 * day),
    ] {
        let body = json!({"name": name, "expires_in": expires_in});
        key(&app, "canister", body).await;
    }
    let (gone_id, _) = key(
        &app,
        "canister",
        json!({"name": "gone", "expires_in": 3600}),
    )
    .await;
    app.admin_api().revoke_api_key(&gone_id).await;

    let all = listing(&app, "").await;
    assert_eq!(all.len(), 7, "{all:?}");
    assert!(all.iter().all(|k| k["last_used_at"].is_null()), "{all:?}");
    let answer = call(
        app.verify("GET", QUIET, "/")
            .header("Authorization", basic("canister", &used))
            .header("X-Forwarded-For", "198.51.100.7"),
    )
    .await;
    assert_eq!(answer.status, 200);
    let all = listing(&app, "").await;
    let record = all.iter().find(|k| k["name"] == "used").unwrap();
    let at =
        chrono::DateTime::parse_from_rfc3339(record["last_used_at"].as_str().unwrap()).unwrap();
    let now = app.clock.now();
    assert_eq!(at.timestamp() % 60, 0, "minute resolution");
    assert!(now.timestamp() - at.timestamp() < 60);
    assert_eq!(record["last_used_from"], "198.51.100.0/24");
    assert!(all.iter().find(|k| k["name"] == "never").unwrap()["last_used_at"].is_null());

    assert_eq!(names(&listing(&app, "?expires_within=1d").await), ["day"]);
    assert_eq!(
        names(&listing(&app, "?expires_within=7d").await),
        ["day", "week"]
    );
    assert_eq!(
        names(&listing(&app, "?expires_within=30d").await),
        ["day", "month", "week"]
    );
    assert_eq!(gauge(&app, "1d").await, 1.0);
    assert_eq!(gauge(&app, "7d").await, 2.0);
    assert_eq!(gauge(&app, "30d").await, 3.0);
    // Unused for 30 minutes: every live key but the one just used.
    assert_eq!(
        names(&listing(&app, "?unused_for=30m").await),
        ["day", "month", "never", "week", "year"]
    );
    // An hour on, the used key is stale too; a day on, `day` has expired.
    app.clock.advance(Duration::hours(2));
    assert!(names(&listing(&app, "?unused_for=1h").await).contains(&"used"));
    assert!(!names(&listing(&app, "?unused_for=3h").await).contains(&"used"));
    app.clock.advance(Duration::days(1));
    assert_eq!(names(&listing(&app, "?expires_within=7d").await), ["week"]);
    assert_eq!(gauge(&app, "1d").await, 0.0);
    assert_eq!(gauge(&app, "7d").await, 1.0);
    // Every application's keys, with the same filters.
    let fleet = app
        .admin_api()
        .get("/api-keys?expires_within=30d")
        .await
        .body;
    assert_eq!(
        names(fleet["api_keys"].as_array().unwrap()),
        ["month", "week"]
    );
    for bad in [
        "?unused_for=7",
        "?expires_within=x",
        "?unused_for=-1d",
        "?expires_within=7y",
    ] {
        let response = call(app.admin(
            Method::GET,
            &format!("/applications/canister/api-keys{bad}"),
        ))
        .await;
        assert_eq!(response.status, 400, "{bad}");
        let body = response.body;
        assert!(body["error_description"].is_string());
    }
}

/// `gatehouse admin api-keys list --expiring 7d`, against the real node.
#[actix_web::test]
async fn the_cli_lists_keys_about_to_expire() {
    let app = spawn_app().await;
    setup(&app).await;
    key(
        &app,
        "canister",
        json!({"name": "soon", "expires_in": 3 * 86_400}),
    )
    .await;
    key(
        &app,
        "other",
        json!({"name": "later", "expires_in": 90 * 86_400}),
    )
    .await;
    let output = crate::helpers::gatehouse_command(app.dir.path())
        .args([
            "admin",
            "--url",
            &app.address,
            "api-keys",
            "list",
            "--expiring",
            "7d",
        ])
        .env("GATEHOUSE_ADMIN_TOKEN", crate::helpers::ADMIN_TOKEN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let body: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(names(body["api_keys"].as_array().unwrap()), ["soon"]);
}
