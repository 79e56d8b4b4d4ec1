//! The admin console at `/ui/`: server-rendered HTML (maud) over the same
//! core functions as the admin API, on the primary only.
//!
//! * `session`: sessions in memory, with idle and absolute timeouts;
//! * `guard`: who may act: the session cookie, the per-session CSRF token,
//!   the same-origin check, the cookie's flags;
//! * `error`: the console's errors and the one place they become pages;
//! * `layout`: the page frame, navigation and shared pieces;
//! * `pages`: one module per area (applications, keys, rules, ...);
//! * `assets`: the stylesheet and the small script, compiled in.
//!
//! Every response carries a strict CSP (no inline script or style) and
//! `no-store`; every action is audited as `ui:<token fingerprint>`.

mod assets;
mod error;
mod guard;
mod layout;
mod pages;
pub mod session;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

pub use error::ConsoleError;
pub use guard::{Action, Signed};

use super::AppState;

/// The console's Content-Security-Policy: its own files only, no inline
/// script or style, no framing, forms posted to itself only.
pub const CSP: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/ui")
            .wrap(actix_web::middleware::from_fn(console_frame))
            .route("", web::get().to(pages::to_console))
            .configure(assets::configure)
            .configure(pages::configure)
            .default_service(web::to(pages::not_found)),
    );
}

/// Every console response: a replica's answer is the page naming its
/// primary; every answer carries the security headers.
async fn console_frame(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let replica_of = req
        .app_data::<web::Data<AppState>>()
        .filter(|state| state.admin.is_none())
        .map(|state| {
            state
                .settings
                .primary_url
                .as_deref()
                .unwrap_or_default()
                .to_string()
        });
    let mut response = match replica_of {
        Some(primary) if !req.path().starts_with("/ui/assets/") => {
            let page = pages::replica(&primary, req.method());
            req.into_response(page).map_into_right_body()
        }
        _ => next.call(req).await?.map_into_left_body(),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        headers.insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages show admin data and a CSRF token, some a secret shown once.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// An HTML page answer.
pub fn html(status: actix_web::http::StatusCode, page: maud::Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page.into_string())
}

/// `303 See Other` to `location`: the answer to a form that worked.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}
