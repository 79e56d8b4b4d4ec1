//! Signing in with the admin token, and out.
//!
//! The token is posted once from a password field and compared with the
//! stored digest (constant time); it is never put in a page, a URL or the
//! log. Failed sign-ins count towards the address lockout that the token
//! endpoint uses (`auth_failure_limit` in `auth_failure_window`), and a
//! locked-out address is refused before its token is looked at.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};

use super::super::guard::{self, Action};
use super::super::{ConsoleError, layout};
use crate::crypto::{b64url, constant_time_eq, random_bytes};
use crate::http::AppState;
use crate::http::client_addr::client_addr;
use crate::throttle::ThrottleKey;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/sign-in", web::get().to(form))
        .route("/sign-in", web::post().to(sign_in))
        .route("/sign-out", web::post().to(sign_out));
}

/// The sign-in form's own token: set by `GET /ui/sign-in` as a
/// `SameSite=Strict` cookie and repeated in a hidden field. A form posted
/// from another site carries neither (over plain HTTP to a LAN address
/// there is no `Sec-Fetch-Site`, and a sandboxed iframe sends `Origin:
/// null` like the console's own form under `no-referrer`), so it is
/// refused before it counts towards the address lockout.
const SIGN_IN_COOKIE: &str = "gatehouse_console_sign_in";

/// The sign-in cookie the request carries, if it has the right shape.
fn sign_in_cookie(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == SIGN_IN_COOKIE)
        .map(|(_, value)| value.trim())
        .find(|value| value.len() == 43)
}

fn sign_in_page(message: Option<&str>, sign_in_token: &str) -> Markup {
    layout::bare(
        "Sign in",
        html! {
            @if let Some(message) = message {
                p.alert.error role="alert" #sign-in-error { (message) }
            }
            form.stack method="post" action="/ui/sign-in" {
                input type="hidden" name="sign_in" value=(sign_in_token);
                div.field {
                    label for="token" { "Admin token" }
                    input #token type="password" name="token" required
                        autocomplete="off" spellcheck="false" aria-describedby="token-hint";
                    small #token-hint .hint {
                        "The node's admin token ("
                        code { "GATEHOUSE_ADMIN_TOKEN" }
                        ", or the file "
                        code { "data/admin-token" }
                        " written at first start). It is sent once; the session lasts until you sign out or leave it idle."
                    }
                }
                div { button type="submit" { "Sign in" } }
            }
        },
    )
}

async fn form(req: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    if guard::session_of(&req).is_some() {
        return Ok(super::super::see_other("/ui/applications"));
    }
    let token = match sign_in_cookie(&req) {
        Some(token) => token.to_string(),
        None => b64url(&random_bytes::<32>().map_err(|e| {
            ConsoleError::Api(crate::admin::AdminError::internal("sign-in token")(e).into())
        })?),
    };
    let secure = if guard::over_https(&req) {
        "; Secure"
    } else {
        ""
    };
    let mut page = super::super::html(StatusCode::OK, sign_in_page(None, &token));
    let cookie =
        format!("{SIGN_IN_COOKIE}={token}; Path=/ui/sign-in; HttpOnly; SameSite=Strict{secure}");
    if let Ok(value) = header::HeaderValue::from_str(&cookie) {
        page.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(page)
}

#[derive(serde::Deserialize)]
struct SignIn {
    token: Option<String>,
    sign_in: Option<String>,
}

async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ConsoleError> {
    if !guard::same_origin(&req) {
        return Err(ConsoleError::CrossOrigin);
    }
    let Some(expected) = sign_in_cookie(&req).map(str::to_string) else {
        return Err(ConsoleError::CrossOrigin);
    };
    let now = state.clock.now().timestamp();
    let from = client_addr(&req, &state.settings.trusted_proxies);
    let address = [ThrottleKey::Address(from)];
    state
        .auth_throttle
        .check(now, || &address)
        .map_err(ConsoleError::Throttled)?;
    let body = guard::form_body(&req, payload.into_inner()).await?;
    let form = serde_urlencoded::from_bytes::<SignIn>(&body).ok();
    let presented = form.as_ref().and_then(|f| f.sign_in.as_deref());
    if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), expected.as_bytes())) {
        return Err(ConsoleError::CrossOrigin);
    }
    let token = form.and_then(|f| f.token).unwrap_or_default();
    let digest = state.admin_token.as_ref();
    let matches = digest.is_some_and(|d| d.matches(token.trim()));
    let Some(digest) = digest.filter(|_| matches) else {
        return Ok(wrong_token(&state, now, &address, from, &expected).await);
    };
    // A session name the browser had before is never carried over.
    for old in guard::cookie_values(&req) {
        state.console.end(old);
    }
    let (cookie, session) = state
        .console
        .start(digest.fingerprint(), now)
        .map_err(|e| {
            ConsoleError::Api(crate::admin::AdminError::internal("console session")(e).into())
        })?;
    super::audit(
        &state,
        session.actor(),
        "POST /ui/sign-in",
        "/ui/sign-in".into(),
        200,
    )
    .await;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::SET_COOKIE, guard::session_cookie(&req, &cookie)))
        .insert_header((header::LOCATION, "/ui/applications"))
        .finish())
}

/// A wrong admin token: a failure against the address (answered after
/// the lockout's delay), and the form again with the same sign-in token.
async fn wrong_token(
    state: &AppState,
    now: i64,
    address: &[ThrottleKey],
    from: std::net::IpAddr,
    sign_in_token: &str,
) -> HttpResponse {
    let delay = state.auth_throttle.record_failure(now, address);
    log::info!("console sign-in from {from}: wrong admin token");
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    super::super::html(
        StatusCode::UNAUTHORIZED,
        sign_in_page(
            Some("That is not this node's admin token. Check it and try again."),
            sign_in_token,
        ),
    )
}

async fn sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
    action: Action<super::Nothing>,
) -> HttpResponse {
    state.console.end_session(&action.session);
    super::audit(
        &state,
        action.session.actor(),
        "POST /ui/sign-out",
        "/ui/sign-out".into(),
        200,
    )
    .await;
    HttpResponse::SeeOther()
        .insert_header((header::SET_COOKIE, guard::cleared_cookie(&req)))
        .insert_header((header::LOCATION, "/ui/sign-in"))
        .finish()
}
