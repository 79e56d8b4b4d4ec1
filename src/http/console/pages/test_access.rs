//! Test access: what `/api/verify` would answer for a request, and why,
//! from the explain core (`crate::explain`, as `POST /admin/v1/explain`).
//! A dry run: nothing is counted, recorded or audited.

use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::ConsoleError;
use super::super::guard::{Action, Signed};
use super::super::layout::{self, Area};
use super::super::session::Session;
use super::{admin, page};
use crate::explain::{Decision, ExplainBody, Explanation};
use crate::http::AppState;
use crate::http::admin::explain_body;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/test-access", web::get().to(form))
        .route("/test-access", web::post().to(test));
}

/// The form's fields; the pasted credential is never written back.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct TestForm {
    method: Option<String>,
    host: Option<String>,
    path: Option<String>,
    /// `application`, `token` or `none`.
    with: Option<String>,
    client_id: Option<String>,
    token: Option<String>,
    source: Option<String>,
}

fn test_form(state: &AppState, session: &Session, sent: &TestForm) -> Result<Markup, ConsoleError> {
    let apps = admin(state)?.applications();
    let with = sent.with.as_deref().unwrap_or("application");
    let text = |value: &Option<String>, default: &str| {
        value.clone().unwrap_or_else(|| default.to_string())
    };
    Ok(html! {
        p { "The decision " code { "/api/verify" } " would make for a request now, from this node's state: which rule matched, and why. Nothing is counted, recorded or changed." }
        form.stack method="post" action="/ui/test-access" {
            (layout::csrf(session))
            (layout::field("method", "Method", &text(&sent.method, "GET"), Some("e.g. GET, PUT, PROPFIND.")))
            (layout::field("host", "Host", &text(&sent.host, ""), Some("As the client names it, e.g. dav.example.com.")))
            (layout::field("path", "Path", &text(&sent.path, "/"), Some("Path and query, as sent.")))
            fieldset {
                legend { "Credential" }
                div.field.check {
                    input #with-application type="radio" name="with" value="application" checked[with == "application"];
                    label for="with-application" { "A fresh token of an application" }
                }
                div.field {
                    label for="client_id" { "Application" }
                    select #client_id name="client_id" {
                        @for app in &apps {
                            option value=(app.client_id) selected[sent.client_id.as_deref() == Some(&*app.client_id)] {
                                (app.client_id) " (" (app.name) ")"
                            }
                        }
                    }
                }
                div.field.check {
                    input #with-token type="radio" name="with" value="token" checked[with == "token"];
                    label for="with-token" { "A token or API key" }
                }
                div.field {
                    label for="token" { "Token or API key" }
                    textarea #token name="token" rows="3" autocomplete="off" spellcheck="false"
                        aria-describedby="token-hint" {}
                    small #token-hint .hint { "An access token, an API key, or its short form (ghk1_…). Sent once; not shown again." }
                }
                div.field.check {
                    input #with-none type="radio" name="with" value="none" checked[with == "none"];
                    label for="with-none" { "No credentials" }
                }
            }
            (layout::field("source", "Client address", &text(&sent.source, ""), Some("Optional, for API keys limited to networks.")))
            div { button type="submit" { "Test access" } }
        }
    })
}

async fn form(signed: Signed, state: web::Data<AppState>) -> Result<HttpResponse, ConsoleError> {
    let body = test_form(&state, &signed.session, &TestForm::default())?;
    page("Test access", Area::TestAccess, &signed.session, body)
}

async fn test(
    state: web::Data<AppState>,
    action: Action<TestForm>,
) -> Result<HttpResponse, ConsoleError> {
    let Action { session, form } = action;
    let with = form.with.as_deref().unwrap_or("application");
    let body = ExplainBody {
        method: layout::optional(&form.method),
        host: layout::optional(&form.host),
        path: layout::optional(&form.path),
        token: (with == "token").then(|| form.token.clone().unwrap_or_default().trim().to_string()),
        client_id: (with == "application")
            .then(|| layout::optional(&form.client_id))
            .flatten(),
        source: layout::optional(&form.source),
    };
    let explanation = explain_body(&state, &body).await?;
    let answer = html! {
        (result(&explanation))
        h2 { "Test another request" }
        (test_form(&state, &session, &form)?)
    };
    page("Test access", Area::TestAccess, &session, answer)
}

fn result(explanation: &Explanation) -> Markup {
    let granted = explanation.decision == Decision::Granted;
    html! {
        section.result aria-labelledby="decision" {
            p #decision .decision .alert .ok[granted] .error[!granted] role="status" {
                @if granted { "Granted" } @else { "Denied" }
                " — " (explanation.status)
            }
            dl.facts {
                dt { "Why" } dd #reason { (explanation.reason) }
                dt { "Rule" }
                dd #rule {
                    @match &explanation.rule {
                        Some(rule) => {
                            a href=(format!("/ui/rules/{}", rule.id)) { code { (rule.id) } }
                            " (" code { (rule.host) (rule.path_prefix.as_deref().unwrap_or_default()) } ")"
                        }
                        None => { span.muted { "none" } }
                    }
                }
                @if let Some(reason) = &explanation.auth_reason {
                    dt { "X-Auth-Reason" } dd { code { (reason) } }
                }
                @if let Some(credential) = &explanation.credential {
                    dt { "Credential" }
                    dd {
                        @match credential.kind {
                            "access_token" => "An access token",
                            "api_key" => "An API key",
                            "application" => "A fresh token",
                            other => (other),
                        }
                        " of " code { (credential.client_id) }
                        @if !credential.groups.is_empty() { ", groups " (credential.groups.join(", ")) }
                        @if let Some(exp) = credential.expires_at { ", expires " (layout::time(exp)) }
                    }
                }
                @if !explanation.headers.is_empty() {
                    dt { "Headers to the backend" }
                    dd { @for (name, value) in &explanation.headers { div { code { (name) ": " (value) } } } }
                }
                @if explanation.paths.len() > 1 {
                    dt { "Path read as" }
                    dd { @for path in &explanation.paths { div { code { (path) } } } }
                }
            }
        }
    }
}
