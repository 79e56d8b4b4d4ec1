//! Signing keys (their states, rotation) and the fleet of replicas.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use maud::html;

use super::super::ConsoleError;
use super::super::guard::{Action, Signed};
use super::super::layout::{self, Area};
use super::{act, done, page};
use crate::http::AppState;
use crate::http::admin::run;
use crate::replication::fleet::LIVE_WITHIN_SECS;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/keys", web::get().to(keys))
        .route("/keys/rotate", web::post().to(rotate))
        .route("/fleet", web::get().to(fleet));
}

async fn keys(signed: Signed, state: web::Data<AppState>) -> Result<HttpResponse, ConsoleError> {
    let session = &signed.session;
    let now = state.clock.now();
    let keys = run(&state, move |admin| admin.signing_keys(now)).await?;
    let body = html! {
        p {
            "A rotation is two-phase: the new key is published first (every replica, and every verifier caching the JWKS for "
            (state.settings.jwks_max_age) " s, learns it), and signs only then. The old key keeps verifying what it signed."
        }
        form.inline method="post" action="/ui/keys/rotate" {
            (layout::csrf(session))
            button type="submit" { "Rotate signing key" }
        }
        div.table-wrap tabindex="0" role="region" aria-label="Signing keys" {
            table {
                thead { tr {
                    th scope="col" { "Key ID" }
                    th scope="col" { "State" }
                    th scope="col" { "Created" }
                    th scope="col" { "Signs from" }
                    th scope="col" { "Verify only since" }
                    th scope="col" { "Leaves the JWKS" }
                } }
                tbody {
                    @for key in &keys {
                        tr {
                            td { code { (key.kid) } }
                            td { (serde_json::to_value(key.state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) }
                            td { (layout::time(key.created_at)) }
                            td { (layout::maybe_time(key.signing_since.or(key.signs_at), "—")) }
                            td { (layout::maybe_time(key.verify_only_since, "—")) }
                            td { (layout::maybe_time(key.leaves_jwks_at, "—")) }
                        }
                    }
                }
            }
        }
    };
    page("Signing keys", Area::SigningKeys, session, body)
}

async fn rotate(
    state: web::Data<AppState>,
    action: Action<super::Nothing>,
) -> Result<HttpResponse, ConsoleError> {
    let session = action.session;
    let now = state.clock.now();
    let fleet = Arc::clone(&state.fleet);
    let rotation = act(
        &state,
        &session,
        "POST /admin/v1/keys/rotate",
        "/admin/v1/keys/rotate".into(),
        202,
        move |admin| admin.rotate_signing_key(&fleet, now),
    )
    .await?;
    Ok(done(
        &state,
        &session,
        format!(
            "Key {} is published; it signs from {}.",
            rotation.kid,
            rotation.signs_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        "/ui/keys",
    ))
}

async fn fleet(signed: Signed, state: web::Data<AppState>) -> Result<HttpResponse, ConsoleError> {
    let now = state.clock.now().timestamp();
    let version = state.directory.version();
    let replicas = state.fleet.replicas();
    let body = html! {
        p { "The primary's state is at version " strong { (version) } ". Replicas are listed as their long-polls report them; one silent for over " (LIVE_WITHIN_SECS) " s is not waited for by key rotations." }
        @if replicas.is_empty() {
            p { "No replica has been heard from." }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-label="Replicas" {
                table {
                    thead { tr {
                        th scope="col" { "Replica" }
                        th scope="col" { "Applied version" }
                        th scope="col" { "Lag (changes)" }
                        th scope="col" { "Last contact" }
                        th scope="col" { "State" }
                    } }
                    tbody {
                        @for replica in &replicas {
                            @let ago = now.saturating_sub(replica.last_seen);
                            tr {
                                td { code { (replica.id) } }
                                td { (replica.applied) }
                                td { (version.saturating_sub(replica.applied)) }
                                td { (ago) " s ago" }
                                td {
                                    @if ago <= LIVE_WITHIN_SECS {
                                        span.badge.yes { "live" }
                                    } @else {
                                        span.badge.no { "silent" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Fleet", Area::Fleet, &signed.session, body)
}
