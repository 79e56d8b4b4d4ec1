//! Rules (resources): listed in the order matching tries them, most
//! specific first; create, edit, delete.

use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::ConsoleError;
use super::super::guard::{Action, Signed};
use super::super::layout::{self, Area, checkbox, field, joined, split_list};
use super::{act, admin, confirm, done, page, remove};
use crate::http::AppState;
use crate::resources::{Challenge, NewResource, Resource, ResourcePatch};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/rules", web::get().to(list))
        .route("/rules", web::post().to(create))
        .route("/rules/new", web::get().to(new))
        .route("/rules/{id}", web::get().to(edit))
        .route("/rules/{id}", web::post().to(update))
        .route("/rules/{id}/delete", web::get().to(confirm_delete))
        .route("/rules/{id}/delete", web::post().to(delete));
}

fn path_of(id: &str) -> String {
    format!("/ui/rules/{id}")
}

async fn list(signed: Signed, state: web::Data<AppState>) -> Result<HttpResponse, ConsoleError> {
    admin(&state)?;
    let snapshot = state.directory.guard();
    let rules: Vec<_> = snapshot.rules.in_match_order().collect();
    let body = html! {
        p {
            "Listed in the order a request is matched against them: exact hosts before wildcard patterns (fewer "
            code { "*" } " first), longer path prefixes before shorter. The first rule that covers a request decides it."
        }
        p { a.button href="/ui/rules/new" { "New rule" } }
        @if rules.is_empty() {
            p { "No rules yet: every request is refused (no rule for its host)." }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-label="Rules in matching order" {
                table {
                    thead { tr {
                        th scope="col" { "#" }
                        th scope="col" { "Host" }
                        th scope="col" { "Path prefix" }
                        th scope="col" { "Methods" }
                        th scope="col" { "Allowed groups" }
                        th scope="col" { "Audience" }
                        th scope="col" { "Basic" }
                        th scope="col" { "Rule" }
                    } }
                    tbody {
                        @for (i, rule) in rules.iter().enumerate() {
                            tr {
                                td { (i + 1) }
                                td { code { (rule.host) } }
                                td { @if let Some(p) = &rule.path_prefix { code { (p) } } @else { span.muted { "any" } } }
                                td { @if let Some(m) = &rule.methods { (joined(m)) } @else { span.muted { "any" } } }
                                td { @if rule.allowed_groups.is_empty() { span.muted { "nobody" } } @else { (joined(&rule.allowed_groups)) } }
                                td { @if let Some(a) = &rule.audience { code { (a) } } @else { span.muted { "any" } } }
                                td { @if rule.basic { "yes" } @else { "no" } }
                                td { a href=(path_of(&rule.id)) { code { (rule.id) } } }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Rules", Area::Rules, &signed.session, body)
}

/// The fields of the create and edit forms.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RuleForm {
    id: Option<String>,
    host: Option<String>,
    path_prefix: Option<String>,
    methods: String,
    allowed_groups: String,
    audience: Option<String>,
    basic: Option<String>,
    challenge: Option<String>,
    realm: Option<String>,
}

impl RuleForm {
    fn methods(&self) -> Option<Vec<String>> {
        let methods = split_list(&self.methods);
        (!methods.is_empty()).then_some(methods)
    }

    fn challenge(&self) -> Option<Challenge> {
        self.challenge.is_some().then_some(Challenge::Basic)
    }
}

fn rule_fields(rule: Option<&Resource>) -> Markup {
    let text = |value: Option<&str>| value.map(str::to_string).unwrap_or_default();
    html! {
        (field("host", "Host", &text(rule.map(|r| r.host.as_str())), Some("e.g. dav.example.com, or *.example.com (* is one label).")))
        (field("path_prefix", "Path prefix", &text(rule.and_then(|r| r.path_prefix.as_deref())), Some("Optional, e.g. /photos; empty: every path.")))
        (field("methods", "Methods", &rule.and_then(|r| r.methods.as_ref()).map(|m| joined(m)).unwrap_or_default(), Some("Optional, comma-separated, e.g. GET, HEAD, OPTIONS, PROPFIND; empty: every method.")))
        (field("allowed_groups", "Allowed groups", &rule.map(|r| joined(&r.allowed_groups)).unwrap_or_default(), Some("Comma-separated; empty allows nobody.")))
        (field("audience", "Audience", &text(rule.and_then(|r| r.audience.as_deref())), Some("Optional: require this aud in tokens.")))
        (checkbox("basic", "Accept an API key as Basic password (user: client ID)", rule.is_some_and(|r| r.basic)))
        (checkbox("challenge", "Answer requests without credentials with a Basic challenge", rule.is_some_and(|r| r.challenge.is_some())))
        (field("realm", "Realm of the Basic challenge", &text(rule.and_then(|r| r.realm.as_deref())), Some("Optional; default gatehouse.")))
    }
}

async fn new(signed: Signed) -> Result<HttpResponse, ConsoleError> {
    let session = &signed.session;
    let body = html! {
        form.stack method="post" action="/ui/rules" {
            (layout::csrf(session))
            (field("id", "Rule ID", "", Some("Optional: 1-64 characters of a-z, 0-9, '.', '_', '-'. Generated when empty.")))
            (rule_fields(None))
            div { button type="submit" { "Create rule" } }
        }
    };
    page("New rule", Area::Rules, session, body)
}

async fn create(
    state: web::Data<AppState>,
    action: Action<RuleForm>,
) -> Result<HttpResponse, ConsoleError> {
    let Action { session, form } = action;
    let new = NewResource {
        id: layout::optional(&form.id),
        host: layout::optional(&form.host),
        path_prefix: layout::optional(&form.path_prefix),
        methods: form.methods(),
        allowed_groups: split_list(&form.allowed_groups),
        audience: layout::optional(&form.audience),
        headers: Default::default(),
        basic: form.basic.is_some(),
        challenge: form.challenge(),
        realm: layout::optional(&form.realm),
    };
    let now = state.clock.now();
    let rule = act(
        &state,
        &session,
        "POST /admin/v1/resources",
        "/admin/v1/resources".into(),
        201,
        move |admin| admin.create_resource(new, now),
    )
    .await?;
    Ok(done(
        &state,
        &session,
        format!("Rule {} for {} created.", rule.id, rule.host),
        "/ui/rules",
    ))
}

async fn edit(
    signed: Signed,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let session = &signed.session;
    let rule = admin(&state)?.resource(&path)?;
    let at = path_of(&rule.id);
    let body = html! {
        dl.facts {
            dt { "Rule ID" } dd { code { (rule.id) } }
            dt { "Created" } dd { (layout::time(rule.created_at)) }
            dt { "Updated" } dd { (layout::time(rule.updated_at)) }
            @if !rule.headers.is_empty() {
                dt { "Header names" }
                dd { @for (default, name) in &rule.headers { div { code { (default) } " → " code { (name) } } } }
            }
        }
        form.stack method="post" action=(at) {
            (layout::csrf(session))
            (rule_fields(Some(&rule)))
            div { button type="submit" { "Save changes" } }
        }
        h2 { "Delete" }
        p { a.button.danger href=(format!("{at}/delete")) { "Delete rule" } }
    };
    page(&format!("Rule {}", rule.id), Area::Rules, session, body)
}

async fn update(
    state: web::Data<AppState>,
    path: web::Path<String>,
    action: Action<RuleForm>,
) -> Result<HttpResponse, ConsoleError> {
    let Action { session, form } = action;
    let patch = ResourcePatch {
        host: layout::optional(&form.host),
        path_prefix: Some(layout::optional(&form.path_prefix)),
        methods: Some(form.methods()),
        allowed_groups: Some(split_list(&form.allowed_groups)),
        audience: Some(layout::optional(&form.audience)),
        headers: None,
        basic: Some(form.basic.is_some()),
        challenge: Some(form.challenge()),
        realm: Some(layout::optional(&form.realm)),
    };
    let id = path.into_inner();
    let now = state.clock.now();
    let target = format!("/admin/v1/resources/{id}");
    let rule = act(
        &state,
        &session,
        "PATCH /admin/v1/resources/{id}",
        target,
        200,
        move |admin| admin.update_resource(&id, patch, now),
    )
    .await?;
    Ok(done(
        &state,
        &session,
        format!("Rule {} saved.", rule.id),
        "/ui/rules",
    ))
}

async fn confirm_delete(
    signed: Signed,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let rule = admin(&state)?.resource(&path)?;
    let at = path_of(&rule.id);
    confirm(
        &format!("Delete rule {}?", rule.id),
        Area::Rules,
        &signed.session,
        html! {
            p {
                "Rule " code { (rule.id) } " for " code { (rule.host) (rule.path_prefix.as_deref().unwrap_or_default()) }
                " will be deleted on every node. Requests it covered fall to the next rule that covers them, or are refused."
            }
        },
        &format!("{at}/delete"),
        "Delete rule",
        &at,
    )
}

async fn delete(
    state: web::Data<AppState>,
    path: web::Path<String>,
    action: Action<super::Nothing>,
) -> Result<HttpResponse, ConsoleError> {
    let session = action.session;
    let id = path.into_inner();
    let now = state.clock.now();
    let target = format!("/admin/v1/resources/{id}");
    let notice = format!("Rule {id} deleted.");
    remove(
        &state,
        &session,
        "DELETE /admin/v1/resources/{id}",
        target,
        move |admin| admin.delete_resource(&id, now),
        notice,
        "/ui/rules",
    )
    .await
}
