//! Applications: list and search, create (the secret shown once), edit,
//! activate or deactivate, rotate the secret, delete.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::guard::{Action, Signed};
use super::super::layout::{self, Area, checkbox, field, joined, split_list};
use super::super::{ConsoleError, html as html_response};
use super::{act, admin, confirm, done, page, remove};
use crate::applications::{
    ApplicationPatch, ApplicationRecord, DEFAULT_ACCESS_TOKEN_TTL, NewApplication, SecretRotation,
};
use crate::http::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/applications", web::get().to(list))
        .route("/applications", web::post().to(create))
        .route("/applications/new", web::get().to(new))
        .route("/applications/{client_id}", web::get().to(show))
        .route("/applications/{client_id}", web::post().to(update))
        .route(
            "/applications/{client_id}/active",
            web::post().to(set_active),
        )
        .route(
            "/applications/{client_id}/secret",
            web::post().to(rotate_secret),
        )
        .route(
            "/applications/{client_id}/delete",
            web::get().to(confirm_delete),
        )
        .route("/applications/{client_id}/delete", web::post().to(delete));
}

pub fn path_of(client_id: &str) -> String {
    format!("/ui/applications/{client_id}")
}

#[derive(Deserialize)]
struct Search {
    q: Option<String>,
}

/// Whether `app` matches the search text: client_id, name or a group.
fn matches(app: &ApplicationRecord, q: &str) -> bool {
    let q = q.to_lowercase();
    app.client_id.contains(&q)
        || app.name.to_lowercase().contains(&q)
        || app.groups.iter().any(|g| g.contains(&q))
}

fn active_badge(active: bool) -> Markup {
    if active {
        html! { span.badge.yes { "active" } }
    } else {
        html! { span.badge.no { "inactive" } }
    }
}

async fn list(
    signed: Signed,
    state: web::Data<AppState>,
    query: web::Query<Search>,
) -> Result<HttpResponse, ConsoleError> {
    let q = layout::optional(&query.q);
    let apps: Vec<_> = admin(&state)?
        .applications()
        .into_iter()
        .filter(|app| q.as_deref().is_none_or(|q| matches(app, q)))
        .collect();
    let body = html! {
        div.toolbar {
            form.inline method="get" action="/ui/applications" role="search" {
                div.field {
                    label for="q" { "Search" }
                    input #q type="search" name="q" value=(q.as_deref().unwrap_or_default())
                        placeholder="client_id, name or group";
                }
                button.secondary type="submit" { "Search" }
            }
            a.button href="/ui/applications/new" { "New application" }
        }
        @if apps.is_empty() {
            p { @if q.is_some() { "No application matches." } @else { "No applications yet." } }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-label="Applications" {
                table {
                    caption.muted { (apps.len()) " application(s)" }
                    thead { tr {
                        th scope="col" { "Client ID" }
                        th scope="col" { "Name" }
                        th scope="col" { "Groups" }
                        th scope="col" { "State" }
                        th scope="col" { "Last token (this node)" }
                    } }
                    tbody {
                        @for app in &apps {
                            tr {
                                td { a href=(path_of(&app.client_id)) { code { (app.client_id) } } }
                                td { (app.name) }
                                td { (joined(&app.groups)) }
                                td { (active_badge(app.active)) }
                                td { (layout::maybe_time(state.issuer.last_issued(&app.client_id), "none since start")) }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Applications", Area::Applications, &signed.session, body)
}

/// The fields of the create and edit forms.
#[derive(Deserialize, Default)]
#[serde(default)]
struct AppForm {
    client_id: Option<String>,
    name: Option<String>,
    groups: String,
    scopes: String,
    audiences: String,
    access_token_ttl: Option<String>,
    active: Option<String>,
}

impl AppForm {
    fn ttl(&self) -> Result<Option<u32>, ConsoleError> {
        layout::optional(&self.access_token_ttl)
            .map(|t| {
                t.parse::<u32>().map_err(|_| {
                    ConsoleError::Form("access_token_ttl: must be a whole number of seconds".into())
                })
            })
            .transpose()
    }
}

fn app_fields(app: Option<&ApplicationRecord>) -> Markup {
    let list =
        |f: fn(&ApplicationRecord) -> &[String]| app.map(|a| joined(f(a))).unwrap_or_default();
    let ttl = app.map_or(DEFAULT_ACCESS_TOKEN_TTL, |a| a.access_token_ttl);
    html! {
        (field("name", "Name", app.map(|a| &*a.name).unwrap_or_default(), Some("Shown to backends as Remote-Name.")))
        (field("groups", "Groups", &list(|a| &a.groups), Some("Comma-separated; rules allow groups.")))
        (field("scopes", "Scopes", &list(|a| &a.scopes), Some("Comma-separated scopes it may ask for; may be empty.")))
        (field("audiences", "Audiences", &list(|a| &a.audiences), Some("Comma-separated resource/audience values it may ask for.")))
        (field("access_token_ttl", "Access token lifetime (seconds)", &ttl.to_string(), Some("60 to 86400.")))
        (checkbox("active", "Active (may get tokens; its keys work)", app.is_none_or(|a| a.active)))
    }
}

async fn new(signed: Signed) -> Result<HttpResponse, ConsoleError> {
    let session = &signed.session;
    let body = html! {
        form.stack method="post" action="/ui/applications" {
            (layout::csrf(session))
            (field("client_id", "Client ID", "", Some("Optional: 1-64 characters of a-z, 0-9, '.', '_', '-'. Generated when empty.")))
            (app_fields(None))
            div { button type="submit" { "Create application" } }
        }
    };
    page("New application", Area::Applications, session, body)
}

async fn create(
    state: web::Data<AppState>,
    action: Action<AppForm>,
) -> Result<HttpResponse, ConsoleError> {
    let Action { session, form } = action;
    let new = NewApplication {
        client_id: layout::optional(&form.client_id),
        name: layout::optional(&form.name),
        groups: split_list(&form.groups),
        scopes: split_list(&form.scopes),
        audiences: split_list(&form.audiences),
        access_token_ttl: form.ttl()?,
        active: Some(form.active.is_some()),
    };
    let now = state.clock.now();
    let (app, secret) = act(
        &state,
        &session,
        "POST /admin/v1/applications",
        "/admin/v1/applications".into(),
        201,
        move |admin| admin.create_application(new, now),
    )
    .await?;
    let body = html! {
        p { "Application " code { (app.client_id) } " (" (app.name) ") is created." }
        (layout::shown_once("client secret"))
        (layout::secret("client-id", "Client ID", &app.client_id))
        (layout::secret("client-secret", "Client secret", &secret.0))
        p { a href=(path_of(&app.client_id)) { "Go to the application" } }
    };
    Ok(html_response(
        StatusCode::CREATED,
        layout::page("Application created", Area::Applications, &session, body),
    ))
}

async fn show(
    signed: Signed,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let session = &signed.session;
    let app = admin(&state)?.application(&path)?;
    let keys = super::api_keys::section(&state, session, &app).await?;
    let at = path_of(&app.client_id);
    let body = html! {
        dl.facts {
            dt { "Client ID" } dd { code { (app.client_id) } }
            dt { "State" } dd { (active_badge(app.active)) }
            dt { "Created" } dd { (layout::time(app.created_at)) }
            dt { "Updated" } dd { (layout::time(app.updated_at)) }
            dt { "Credentials valid from" } dd { (layout::time(app.view().not_before)) }
            dt { "Last token (this node)" } dd { (layout::maybe_time(state.issuer.last_issued(&app.client_id), "none since start")) }
        }
        form.inline method="post" action=(format!("{at}/active")) {
            (layout::csrf(session))
            @if app.active {
                input type="hidden" name="active" value="false";
                button.secondary type="submit" { "Deactivate" }
            } @else {
                input type="hidden" name="active" value="true";
                button.secondary type="submit" { "Activate" }
            }
        }

        h2 { "Settings" }
        form.stack method="post" action=(at) {
            (layout::csrf(session))
            (app_fields(Some(&app)))
            div { button type="submit" { "Save changes" } }
        }

        h2 { "Client secret" }
        p { "A new secret is shown once. With a grace period the current one keeps working that long (e.g. " code { "1h" } ", " code { "7d" } "), so clients can move over without an outage." }
        form.inline method="post" action=(format!("{at}/secret")) {
            (layout::csrf(session))
            (field("grace_period", "Grace period", "", Some("Empty: the current secret stops at once.")))
            button type="submit" { "Rotate secret" }
        }

        (keys)

        h2 { "Delete" }
        p { "Deleting the application ends every token and API key it was given, on every node." }
        p { a.button.danger href=(format!("{at}/delete")) { "Delete application" } }
    };
    page(
        &format!("Application {}", app.name),
        Area::Applications,
        session,
        body,
    )
}

async fn update(
    state: web::Data<AppState>,
    path: web::Path<String>,
    action: Action<AppForm>,
) -> Result<HttpResponse, ConsoleError> {
    let Action { session, form } = action;
    let client_id = path.into_inner();
    let patch = ApplicationPatch {
        name: layout::optional(&form.name),
        groups: Some(split_list(&form.groups)),
        scopes: Some(split_list(&form.scopes)),
        audiences: Some(split_list(&form.audiences)),
        access_token_ttl: form.ttl()?,
        active: Some(form.active.is_some()),
    };
    patch_application(&state, &session, client_id, patch, "Changes saved.").await
}

#[derive(Deserialize)]
struct ActiveForm {
    active: Option<String>,
}

async fn set_active(
    state: web::Data<AppState>,
    path: web::Path<String>,
    action: Action<ActiveForm>,
) -> Result<HttpResponse, ConsoleError> {
    let active = action.form.active.as_deref() == Some("true");
    let patch = ApplicationPatch {
        active: Some(active),
        ..ApplicationPatch::default()
    };
    let message = if active {
        "Activated."
    } else {
        "Deactivated: its tokens and keys are refused until it is activated again."
    };
    patch_application(&state, &action.session, path.into_inner(), patch, message).await
}

async fn patch_application(
    state: &web::Data<AppState>,
    session: &super::Session,
    client_id: String,
    patch: ApplicationPatch,
    message: &str,
) -> Result<HttpResponse, ConsoleError> {
    let now = state.clock.now();
    let target = format!("/admin/v1/applications/{client_id}");
    let app = act(
        state,
        session,
        "PATCH /admin/v1/applications/{client_id}",
        target,
        200,
        move |admin| admin.update_application(&client_id, patch, now),
    )
    .await?;
    Ok(done(
        state,
        session,
        message.into(),
        &path_of(&app.client_id),
    ))
}

#[derive(Deserialize)]
struct RotateForm {
    grace_period: Option<String>,
}

async fn rotate_secret(
    state: web::Data<AppState>,
    path: web::Path<String>,
    action: Action<RotateForm>,
) -> Result<HttpResponse, ConsoleError> {
    let Action { session, form } = action;
    let grace = super::duration_field("grace_period", &form.grace_period)?.unwrap_or(0);
    let rotation = SecretRotation {
        grace_period: u32::try_from(grace).unwrap_or(u32::MAX),
    };
    let client_id = path.into_inner();
    let now = state.clock.now();
    let target = format!("/admin/v1/applications/{client_id}/secret");
    let (app, secret) = act(
        &state,
        &session,
        "POST /admin/v1/applications/{client_id}/secret",
        target,
        200,
        move |admin| admin.rotate_secret(&client_id, rotation, now),
    )
    .await?;
    let body = html! {
        p {
            "Application " code { (app.client_id) } " has a new secret. "
            @match &app.previous_secret {
                Some(previous) => { "The previous one works until " (layout::time(previous.expires_at)) "." }
                None => { "The previous one no longer works." }
            }
        }
        (layout::shown_once("client secret"))
        (layout::secret("client-secret", "New client secret", &secret.0))
        p { a href=(path_of(&app.client_id)) { "Back to the application" } }
    };
    page("Secret rotated", Area::Applications, &session, body)
}

async fn confirm_delete(
    signed: Signed,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let app = admin(&state)?.application(&path)?;
    let at = path_of(&app.client_id);
    confirm(
        &format!("Delete application {}?", app.name),
        Area::Applications,
        &signed.session,
        html! {
            p { "Application " code { (app.client_id) } " will be deleted. Every token and API key it was given stops working on every node. This cannot be undone." }
        },
        &format!("{at}/delete"),
        "Delete application",
        &at,
    )
}

async fn delete(
    state: web::Data<AppState>,
    path: web::Path<String>,
    action: Action<super::Nothing>,
) -> Result<HttpResponse, ConsoleError> {
    let session = action.session;
    let client_id = path.into_inner();
    let now = state.clock.now();
    let target = format!("/admin/v1/applications/{client_id}");
    let notice = format!("Application {client_id} deleted.");
    remove(
        &state,
        &session,
        "DELETE /admin/v1/applications/{client_id}",
        target,
        move |admin| admin.delete_application(&client_id, now),
        notice,
        "/ui/applications",
    )
    .await
}
