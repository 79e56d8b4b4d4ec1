//! An application's API keys: the list (created, expires, last use,
//! scopes), minting (name, expiry, scopes; the key shown once with
//! snippets that use it), revocation with confirmation.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::guard::{Action, Signed};
use super::super::layout::{self, Area, field, field_as, split_list};
use super::super::session::Session;
use super::super::{ConsoleError, html as html_response};
use super::applications::path_of;
use super::{act, admin, confirm, remove};
use crate::admin::ApiKeyView;
use crate::api_keys::{KeyFilter, NewApiKey};
use crate::applications::ApplicationRecord;
use crate::http::AppState;
use crate::http::admin::run;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/applications/{client_id}/api-keys", web::post().to(mint))
        .route(
            "/applications/{client_id}/api-keys/{id}/revoke",
            web::get().to(confirm_revoke),
        )
        .route(
            "/applications/{client_id}/api-keys/{id}/revoke",
            web::post().to(revoke),
        );
}

async fn keys_of(
    state: &web::Data<AppState>,
    client_id: &str,
) -> Result<Vec<ApiKeyView>, ConsoleError> {
    let now = state.clock.now();
    let client_id = client_id.to_string();
    Ok(run(state, move |admin| {
        admin.list_api_keys(Some(&client_id), &KeyFilter::default(), now)
    })
    .await?)
}

fn scopes(key: &ApiKeyView) -> Markup {
    let parts: Vec<(&str, String)> = [
        ("hosts", key.hosts.as_ref().map(|v| v.join(", "))),
        ("paths", key.path_prefixes.as_ref().map(|v| v.join(", "))),
        ("methods", key.methods.as_ref().map(|v| v.join(", "))),
        ("from", key.source_cidrs.as_ref().map(|v| v.join(", "))),
    ]
    .into_iter()
    .filter_map(|(label, value)| value.map(|v| (label, v)))
    .collect();
    html! {
        @if parts.is_empty() {
            span.muted { "what the rules allow" }
        } @else {
            @for (label, value) in parts {
                div { (label) ": " code { (value) } }
            }
        }
    }
}

/// The application page's API key section: the list and the mint form.
pub async fn section(
    state: &web::Data<AppState>,
    session: &Session,
    app: &ApplicationRecord,
) -> Result<Markup, ConsoleError> {
    let keys = keys_of(state, &app.client_id).await?;
    let at = path_of(&app.client_id);
    let now = state.clock.now();
    Ok(html! {
        h2 { "API keys" }
        @if keys.is_empty() {
            p { "No API keys yet." }
        } @else {
            (keys_table(&keys, &at, now))
        }
        h3 { "Mint an API key" }
        (mint_form(session, &at))
    })
}

/// The application's keys, each with its state and (unless revoked) a
/// revoke link; `at` is the application's page.
fn keys_table(keys: &[ApiKeyView], at: &str, now: DateTime<Utc>) -> Markup {
    html! {
        div.table-wrap tabindex="0" role="region" aria-label="API keys" {
            table {
                thead { tr {
                    th scope="col" { "Name" }
                    th scope="col" { "Created" }
                    th scope="col" { "Expires" }
                    th scope="col" { "Last used" }
                    th scope="col" { "Limited to" }
                    th scope="col" { "State" }
                    th scope="col" { span.muted { "Action" } }
                } }
                tbody {
                    @for key in keys {
                        @let record = &key.record;
                        @let expired = record.expires_at.is_some_and(|e| e <= now);
                        tr {
                            td { (record.name) br; small.muted { "id " code { (record.id) } } }
                            td { (layout::time(record.created_at)) }
                            td { (layout::maybe_time(record.expires_at, "never")) }
                            td { (layout::maybe_time(key.last_used_at, "never")) }
                            td { (scopes(key)) }
                            td {
                                @if record.revoked_at.is_some() {
                                    span.badge.no { "revoked" }
                                } @else if expired {
                                    span.badge.no { "expired" }
                                } @else {
                                    span.badge.yes { "valid" }
                                }
                            }
                            td.actions {
                                @if record.revoked_at.is_none() {
                                    a href=(format!("{at}/api-keys/{}/revoke", record.id))
                                        aria-label=(format!("Revoke key {}", record.name)) { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The mint form: a name, an expiry and the optional scopes.
fn mint_form(session: &Session, at: &str) -> Markup {
    html! {
        form.stack method="post" action=(format!("{at}/api-keys")) {
            (layout::csrf(session))
            (field_as("key-name", "name", "Name", "", Some("What it is for, e.g. \"nightly sync\".")))
            (field("expires_in", "Expires in", "", Some("e.g. 30d, 12h, 52w; empty: never.")))
            (field("hosts", "Only these hosts", "", Some("Optional, comma-separated; empty: every host the rules allow.")))
            (field("path_prefixes", "Only these path prefixes", "", Some("Optional, e.g. /photos.")))
            (field("methods", "Only these methods", "", Some("Optional, e.g. GET, HEAD, PROPFIND.")))
            (field("source_cidrs", "Only from these networks", "", Some("Optional CIDRs, e.g. 192.0.2.0/24.")))
            div { button type="submit" { "Mint API key" } }
        }
    }
}

/// The mint form's fields; an empty scope field leaves the key unlimited there.
#[derive(Deserialize, Default)]
#[serde(default)]
struct MintForm {
    name: Option<String>,
    expires_in: Option<String>,
    hosts: String,
    path_prefixes: String,
    methods: String,
    source_cidrs: String,
}

fn scope_field(text: &str) -> Option<Option<Vec<String>>> {
    let items = split_list(text);
    (!items.is_empty()).then_some(Some(items))
}

async fn mint(
    state: web::Data<AppState>,
    path: web::Path<String>,
    action: Action<MintForm>,
) -> Result<HttpResponse, ConsoleError> {
    let Action { session, form } = action;
    let expires_in = super::duration_field("expires_in", &form.expires_in)?
        .map(|secs| u64::try_from(secs).unwrap_or(0));
    let new = NewApiKey {
        name: form.name.clone(),
        expires_in,
        hosts: scope_field(&form.hosts),
        path_prefixes: scope_field(&form.path_prefixes),
        methods: scope_field(&form.methods),
        source_cidrs: scope_field(&form.source_cidrs),
    };
    let client_id = path.into_inner();
    let app = admin(&state)?.application(&client_id)?;
    let now = state.clock.now();
    let target = format!("/admin/v1/applications/{client_id}/api-keys");
    let minting = client_id.clone();
    let (view, key, short) = act(
        &state,
        &session,
        "POST /admin/v1/applications/{client_id}/api-keys",
        target,
        201,
        move |admin| admin.create_api_key(&minting, new, now),
    )
    .await?;
    let url = example_url(&state, &app, &view);
    let curl = format!("curl -H 'Authorization: Bearer {key}' {url}");
    let rclone = format!(
        "rclone lsd :webdav: --webdav-url {url} --webdav-vendor other \\\n  --webdav-bearer-token '{key}'"
    );
    let body = html! {
        p {
            "Key " strong { (view.record.name) } " for " code { (client_id) } " is minted"
            @if let Some(exp) = view.record.expires_at { "; it expires " (layout::time(exp)) } @else { "; it does not expire" }
            "."
        }
        (layout::shown_once("API key"))
        (layout::secret("api-key", "API key", &key))
        @if let Some(short) = &short {
            (layout::secret("basic-password", "Short form (a Basic password, with the client ID as user)", short))
        }
        h2 { "Use it" }
        p { "The URL is an example: one your rules protect for this application, where there is one." }
        (layout::snippet("snippet-curl", "curl", &curl))
        (layout::snippet("snippet-rclone", "rclone (WebDAV)", &rclone))
        p { a href=(path_of(&client_id)) { "Back to the application" } }
    };
    Ok(html_response(
        StatusCode::CREATED,
        layout::page("API key minted", Area::Applications, &session, body),
    ))
}

/// A URL the key can reach: its own host scope, else the first rule (in
/// matching order) with a plain host that admits one of the
/// application's groups, else an example host.
fn example_url(state: &AppState, app: &ApplicationRecord, key: &ApiKeyView) -> String {
    let snapshot = state.directory.guard();
    let rule: Option<Arc<crate::resources::Resource>> = snapshot
        .rules
        .in_match_order()
        .find(|r| !r.host.contains('*') && r.allowed_groups.iter().any(|g| app.groups.contains(g)))
        .cloned();
    let host = key
        .hosts
        .as_ref()
        .and_then(|hosts| hosts.iter().find(|h| !h.contains('*')).cloned())
        .or_else(|| rule.as_ref().map(|r| r.host.to_string()))
        .unwrap_or_else(|| "dav.example.com".into());
    let path = key
        .path_prefixes
        .as_ref()
        .and_then(|p| p.first().cloned())
        .or_else(|| rule.as_ref().and_then(|r| r.path_prefix.clone()))
        .unwrap_or_else(|| "/".into());
    format!("https://{host}{path}")
}

async fn find_key(
    state: &web::Data<AppState>,
    client_id: &str,
    id: &str,
) -> Result<ApiKeyView, ConsoleError> {
    keys_of(state, client_id)
        .await?
        .into_iter()
        .find(|k| k.record.id == id)
        .ok_or(ConsoleError::NotFound)
}

async fn confirm_revoke(
    signed: Signed,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let (client_id, id) = path.into_inner();
    let key = find_key(&state, &client_id, &id).await?;
    let at = path_of(&client_id);
    confirm(
        &format!("Revoke key {}?", key.record.name),
        Area::Applications,
        &signed.session,
        html! {
            p { "Key " strong { (key.record.name) } " of " code { (client_id) } " (id " code { (key.record.id) } ") will be refused on every node from now on. This cannot be undone." }
        },
        &format!("{at}/api-keys/{id}/revoke"),
        "Revoke key",
        &at,
    )
}

async fn revoke(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    action: Action<super::Nothing>,
) -> Result<HttpResponse, ConsoleError> {
    let session = action.session;
    let (client_id, id) = path.into_inner();
    let key = find_key(&state, &client_id, &id).await?;
    let now = state.clock.now();
    let target = format!("/admin/v1/api-keys/{id}");
    remove(
        &state,
        &session,
        "DELETE /admin/v1/api-keys/{id}",
        target,
        move |admin| admin.revoke_api_key(&id, now),
        format!("Key {} revoked.", key.record.name),
        &path_of(&client_id),
    )
    .await
}
