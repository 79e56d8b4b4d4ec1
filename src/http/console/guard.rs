//! Who may use the console: a live session named by the cookie; for a
//! form that changes anything, also the session's CSRF token and a request
//! from the console's own origin.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::error::ConsoleError;
use super::session::Session;
use crate::http::AppState;
use crate::http::body::{media_type, read_limited};
use crate::http::client_addr::trusted_peer;

/// The session cookie's name.
pub const COOKIE: &str = "gatehouse_console";
/// Console forms are small.
const FORM_LIMIT: usize = 64 * 1024;
/// At most this many session cookies of a request are looked up.
const MAX_SESSION_COOKIES: usize = 8;

/// A page request from a signed-in browser.
pub struct Signed {
    pub session: Session,
}

impl FromRequest for Signed {
    type Error = ConsoleError;
    type Future = std::future::Ready<Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            session_of(req)
                .map(|session| Signed { session })
                .ok_or(ConsoleError::SignedOut),
        )
    }
}

/// A state-changing form from a signed-in browser: same origin, the
/// session's CSRF token, then the fields (`T`; unknown ones ignored, the
/// `csrf` field among them).
pub struct Action<T> {
    pub session: Session,
    pub form: T,
}

#[derive(serde::Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

impl<T: DeserializeOwned + 'static> FromRequest for Action<T> {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            if !same_origin(&req) {
                return Err(ConsoleError::CrossOrigin);
            }
            let session = session_of(&req).ok_or(ConsoleError::SessionEnded)?;
            let body = form_body(&req, payload).await?;
            let csrf = serde_urlencoded::from_bytes::<CsrfField>(&body)
                .ok()
                .and_then(|f| f.csrf);
            if !csrf.is_some_and(|token| session.csrf_matches(&token)) {
                log::info!("console: a form without its session's CSRF token was refused");
                return Err(ConsoleError::Csrf);
            }
            let form = serde_urlencoded::from_bytes::<T>(&body)
                .map_err(|e| ConsoleError::Form(e.to_string()))?;
            Ok(Action { session, form })
        })
    }
}

/// A form's body: `application/x-www-form-urlencoded`, within the limit.
pub async fn form_body(req: &HttpRequest, payload: Payload) -> Result<web::Bytes, ConsoleError> {
    if media_type(req).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(ConsoleError::Form(
            "the form must be sent as application/x-www-form-urlencoded".into(),
        ));
    }
    read_limited(req, payload, FORM_LIMIT)
        .await
        .map_err(|e| ConsoleError::Form(e.to_string()))
}

fn state(req: &HttpRequest) -> Option<&web::Data<AppState>> {
    req.app_data::<web::Data<AppState>>()
}

/// The live session the request's cookie names, if any. Every cookie of
/// that name is tried: a site that may set cookies for this domain can
/// plant one with a longer `Path`, which the browser sends first.
pub fn session_of(req: &HttpRequest) -> Option<Session> {
    let state = state(req)?;
    let now = state.clock.now().timestamp();
    cookie_values(req).find_map(|cookie| state.console.resume(cookie, now))
}

/// The values of the session cookies the request has (usually one).
pub fn cookie_values(req: &HttpRequest) -> impl Iterator<Item = &str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
        // Each is hashed and looked up: a bounded few.
        .take(MAX_SESSION_COOKIES)
}

/// Whether the request came over HTTPS: the scheme a trusted proxy names
/// in `X-Forwarded-Proto` (gatehouse itself serves plain HTTP). Every
/// item of the header must say `https`.
pub fn over_https(req: &HttpRequest) -> bool {
    let Some(state) = state(req) else {
        return false;
    };
    if !trusted_peer(req, &state.settings.trusted_proxies) {
        return false;
    }
    let mut items = req
        .headers()
        .get_all("x-forwarded-proto")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .peekable();
    items.peek().is_some() && items.all(|p| p.eq_ignore_ascii_case("https"))
}

/// `Set-Cookie` for a new session: `HttpOnly`, `SameSite=Strict`, scoped
/// to `/ui`, `Secure` when the request came over HTTPS. No `Max-Age`: the
/// server ends the session, the browser forgets it when it closes.
pub fn session_cookie(req: &HttpRequest, value: &str) -> String {
    let secure = if over_https(req) { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict{secure}")
}

/// `Set-Cookie` that makes the browser drop the session cookie.
pub fn cleared_cookie(req: &HttpRequest) -> String {
    let secure = if over_https(req) { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// A POST from the console's own pages. Browsers name the page that sent
/// a form in `Sec-Fetch-Site` (every current one): anything but
/// `same-origin` is refused. Without it, `Origin`, when it names an
/// origin, must have the host this request is addressed to (as the client
/// sent it, or a trusted proxy names it). The console's pages ask for
/// `no-referrer`, under which browsers send `Origin: null` even for their
/// own forms, so `null` (like no `Origin`: no browser) is left to the
/// CSRF token, which every form but sign-in carries.
pub fn same_origin(req: &HttpRequest) -> bool {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let origin = match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => return true,
        Some(Ok("null")) => return true,
        Some(Ok(origin)) => origin,
        Some(Err(_)) => return false,
    };
    let Some(origin) = origin_authority(origin) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let forwarded_host = state(req)
        .filter(|state| trusted_peer(req, &state.settings.trusted_proxies))
        .and_then(|_| headers.get("x-forwarded-host"))
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(',').next().unwrap_or_default().trim());
    [host, forwarded_host]
        .into_iter()
        .flatten()
        .any(|authority| authority.eq_ignore_ascii_case(origin))
}

/// `https://host:port` → `host:port`; `null` and anything else → `None`.
fn origin_authority(origin: &str) -> Option<&str> {
    let (scheme, rest) = origin.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn only_the_consoles_own_origin_may_post() {
        let with = |headers: &[(&str, &str)]| {
            let mut req = TestRequest::post().insert_header(("Host", "gh.example.com:8080"));
            for (name, value) in headers {
                req = req.insert_header((*name, *value));
            }
            same_origin(&req.to_http_request())
        };
        assert!(with(&[("Origin", "http://gh.example.com:8080")]));
        assert!(with(&[("Origin", "https://GH.example.com:8080")]));
        assert!(with(&[
            ("Origin", "null"),
            ("Sec-Fetch-Site", "same-origin")
        ]));
        assert!(with(&[]), "no browser: the CSRF token still decides");
        assert!(
            with(&[("Origin", "null")]),
            "no-referrer: the CSRF token decides"
        );
        assert!(!with(&[("Origin", "http://evil.example:8080")]));
        assert!(!with(&[("Origin", "http://gh.example.com:8081")]));
        assert!(!with(&[("Origin", "http://gh.example.com:8080/x")]));
        assert!(!with(&[("Sec-Fetch-Site", "same-site")]));
        assert!(!with(&[
            ("Sec-Fetch-Site", "cross-site"),
            ("Origin", "http://gh.example.com:8080")
        ]));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let req = TestRequest::get()
            .insert_header(("Cookie", "a=1; gatehouse_console=abc; b=2"))
            .to_http_request();
        assert_eq!(cookie_values(&req).collect::<Vec<_>>(), ["abc"]);
        let req = TestRequest::get()
            .insert_header(("Cookie", "xgatehouse_console=abc"))
            .to_http_request();
        assert_eq!(cookie_values(&req).next(), None);
        // A planted cookie of the same name (sent first) hides nothing.
        let req = TestRequest::get()
            .insert_header(("Cookie", "gatehouse_console=planted; gatehouse_console=abc"))
            .to_http_request();
        assert_eq!(cookie_values(&req).collect::<Vec<_>>(), ["planted", "abc"]);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped() {
        let req = TestRequest::get().to_http_request();
        let cookie = session_cookie(&req, "v");
        assert_eq!(
            cookie,
            "gatehouse_console=v; Path=/ui; HttpOnly; SameSite=Strict"
        );
    }
}
