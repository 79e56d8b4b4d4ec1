//! The audit log: newest first, paged, filtered by actor and action.

use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::ConsoleError;
use super::super::guard::Signed;
use super::super::layout::{self, Area};
use super::page;
use crate::admin::AuditFilter;
use crate::audit::{AuditEntry, Outcome};
use crate::http::AppState;
use crate::http::admin::run;

const PAGE: usize = 50;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(audit));
}

#[derive(Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    before: Option<String>,
}

async fn audit(
    signed: Signed,
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let query = query.into_inner();
    let filter = AuditFilter {
        actor: layout::optional(&query.actor),
        action: layout::optional(&query.action),
    };
    let before = layout::optional(&query.before);
    let shown = filter.clone();
    let (entries, next) = run(&state, move |admin| {
        admin.audit_matching(before.as_deref(), PAGE, &filter)
    })
    .await?;
    let older = next.map(|before| older_link(before, &shown));
    let body = html! {
        (filter_form(&shown))
        @if entries.is_empty() {
            p { "No entries." }
        } @else {
            (entries_table(&entries))
        }
        @if let Some(older) = older {
            p { a href=(older) { "Older entries" } }
        }
    };
    page("Audit log", Area::Audit, &signed.session, body)
}

/// The next page: entries before `before`, under the same filter.
fn older_link(before: String, shown: &AuditFilter) -> String {
    let mut query = vec![("before", before)];
    query.extend(shown.actor.clone().map(|a| ("actor", a)));
    query.extend(shown.action.clone().map(|a| ("action", a)));
    format!(
        "/ui/audit?{}",
        serde_urlencoded::to_string(query).unwrap_or_default()
    )
}

/// The actor and action filter, showing the one in force.
fn filter_form(shown: &AuditFilter) -> Markup {
    html! {
        form.inline method="get" action="/ui/audit" role="search" aria-label="Filter the audit log" {
            div.field {
                label for="actor" { "Actor contains" }
                input #actor type="text" name="actor" value=(shown.actor.as_deref().unwrap_or_default()) placeholder="ui: or admin:";
            }
            div.field {
                label for="action" { "Action contains" }
                input #action type="text" name="action" value=(shown.action.as_deref().unwrap_or_default()) placeholder="api-keys";
            }
            button.secondary type="submit" { "Filter" }
            a href="/ui/audit" { "Clear" }
        }
    }
}

/// One page of entries: when, who, what, on what, and how it ended.
fn entries_table(entries: &[AuditEntry]) -> Markup {
    html! {
        div.table-wrap tabindex="0" role="region" aria-label="Audit entries" {
            table {
                thead { tr {
                    th scope="col" { "When" }
                    th scope="col" { "Actor" }
                    th scope="col" { "Action" }
                    th scope="col" { "Target" }
                    th scope="col" { "Result" }
                } }
                tbody {
                    @for entry in entries {
                        tr {
                            td { (layout::time(entry.at)) }
                            td { code { (entry.actor) } }
                            td { code { (entry.action) } }
                            td { code { (entry.target) } }
                            td {
                                @match entry.outcome {
                                    Outcome::Success => span.badge.yes { (entry.status) " success" },
                                    Outcome::Failure => span.badge.no { (entry.status) " failure" },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
