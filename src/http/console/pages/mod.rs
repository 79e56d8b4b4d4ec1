//! The console's pages. Handlers take the session (`Signed`) or a checked
//! form (`Action`), call the admin core through `act` (which audits the
//! action as the admin API would, with the actor `ui:<fingerprint>`),
//! and render.
//!
//! * `sign_in`: the admin token in, the session out
//! * `applications`, `api_keys`, `rules`, `signing_keys`: one area each
//! * `test_access`: what `/api/verify` would answer, and why
//! * `trail`: the audit log

mod api_keys;
mod applications;
mod rules;
mod sign_in;
mod signing_keys;
mod test_access;
mod trail;

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, ResponseError, web};
use maud::html;

use super::error::ConsoleError;
use super::layout;
use super::session::Session;
use crate::admin::{Admin, AdminError};
use crate::http::AppState;
use crate::http::admin::run;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .configure(sign_in::configure)
        .configure(applications::configure)
        .configure(api_keys::configure)
        .configure(rules::configure)
        .configure(test_access::configure)
        .configure(trail::configure)
        .configure(signing_keys::configure);
}

/// `/ui` → `/ui/`.
pub async fn to_console() -> HttpResponse {
    super::see_other("/ui/")
}

async fn home(req: actix_web::HttpRequest) -> HttpResponse {
    match super::guard::session_of(&req) {
        Some(_) => super::see_other("/ui/applications"),
        None => super::see_other("/ui/sign-in"),
    }
}

pub async fn not_found() -> Result<HttpResponse, ConsoleError> {
    Err(ConsoleError::NotFound)
}

/// What a replica answers under `/ui/`: the console is on the primary.
pub fn replica(primary: &str, method: &Method) -> HttpResponse {
    let console = format!("{}/ui/", primary.trim_end_matches('/'));
    let body = html! {
        p { "This node is a replica: it answers verify and token requests from a copy of the primary's state. The console runs on the primary." }
        @if primary.is_empty() {
            p { "No primary URL is configured." }
        } @else {
            p { a href=(console) { "Open the console on the primary" } }
        }
    };
    let status = if matches!(*method, Method::GET | Method::HEAD) {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    super::html(status, layout::bare("Console on the primary", body))
}

/// Runs an admin operation and records it in the audit log as the
/// session's: `action` and `target` as the admin API names them, the
/// status it would have answered.
async fn act<T: Send + 'static>(
    state: &web::Data<AppState>,
    session: &Session,
    action: &'static str,
    target: String,
    ok_status: u16,
    op: impl FnOnce(&Admin) -> Result<T, AdminError> + Send + 'static,
) -> Result<T, ConsoleError> {
    let result = run(state, op).await;
    let status = match &result {
        Ok(_) => ok_status,
        Err(e) => e.status_code().as_u16(),
    };
    audit(state, session.actor(), action, target, status).await;
    Ok(result?)
}

/// Appends to the audit log; a failure to is logged, as the admin API does.
async fn audit(
    state: &web::Data<AppState>,
    actor: String,
    action: &'static str,
    target: String,
    status: u16,
) {
    let now = state.clock.now();
    let recorded = run(state, move |admin| {
        admin.record_audit(actor, action.to_string(), target, status, now)
    })
    .await;
    if let Err(e) = recorded {
        log::error!("could not write the audit log: {e}");
    }
}

/// The admin core (the console runs on the primary only).
fn admin(state: &AppState) -> Result<&Admin, ConsoleError> {
    Ok(state.admin()?)
}

/// A page of a signed-in session, `200`.
fn page(
    title: &str,
    area: layout::Area,
    session: &Session,
    body: maud::Markup,
) -> Result<HttpResponse, ConsoleError> {
    Ok(super::html(
        StatusCode::OK,
        layout::page(title, area, session, body),
    ))
}

/// After an action: its message on the next page, and there.
fn done(state: &AppState, session: &Session, message: String, location: &str) -> HttpResponse {
    state.console.flash(session, message);
    super::see_other(location)
}

/// A confirmed removal (`op`, audited as `action` on `target`, 204 when
/// it succeeds), then back to `location` with `notice`.
async fn remove(
    state: &web::Data<AppState>,
    session: &Session,
    action: &'static str,
    target: String,
    op: impl FnOnce(&Admin) -> Result<(), AdminError> + Send + 'static,
    notice: String,
    location: &str,
) -> Result<HttpResponse, ConsoleError> {
    act(state, session, action, target, 204, op).await?;
    Ok(done(state, session, notice, location))
}

/// A confirmation page: what is about to happen, and the form that does it.
fn confirm(
    title: &str,
    area: layout::Area,
    session: &Session,
    what: maud::Markup,
    action: &str,
    button: &str,
    back: &str,
) -> Result<HttpResponse, ConsoleError> {
    page(
        title,
        area,
        session,
        html! {
            (what)
            form.inline method="post" action=(action) {
                (layout::csrf(session))
                button.danger type="submit" { (button) }
                a.button.secondary href=(back) { "Cancel" }
            }
        },
    )
}

/// A form with no fields of its own (its CSRF token only).
#[derive(serde::Deserialize)]
pub struct Nothing {}

/// `Some(seconds)` of a duration field (`90d`, `12h`), `None` when empty.
fn duration_field(field: &str, text: &Option<String>) -> Result<Option<i64>, ConsoleError> {
    layout::optional(text)
        .map(|t| {
            if t == "0" {
                return Ok(0);
            }
            crate::api_keys::parse_duration(field, &t)
                .map_err(|e| ConsoleError::Api(AdminError::Invalid(e).into()))
        })
        .transpose()
}
