//! `GET /internal/v1/state`: the primary's state for its replicas, as a
//! long-poll, behind the shared replica token.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use crate::crypto::constant_time_eq;
use crate::replication::{MAX_WAIT_SECS, REPLICA_ID_HEADER, export};

#[derive(Deserialize)]
pub struct StateQuery {
    since: Option<u64>,
    wait: Option<u64>,
}

/// 200 with the whole state once the version is past `since` (waiting up
/// to `wait` seconds for that), else 304.
pub async fn state(
    req: HttpRequest,
    query: web::Query<StateQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let expected = state
        .settings
        .replica_token
        .as_ref()
        .ok_or(ApiError::ReplicationDisabled)?;
    let presented = super::bearer(&req).unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), expected.expose().as_bytes()) {
        return Err(ApiError::ReplicaUnauthorized);
    }

    let since = query.since.unwrap_or(0);
    if let Some(replica) = req
        .headers()
        .get(REPLICA_ID_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        state
            .fleet
            .heard_from(replica, since, state.clock.now().timestamp());
    }
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    let mut changes = state.directory.subscribe();
    if *changes.borrow_and_update() <= since && !wait.is_zero() {
        let changed = async {
            while *changes.borrow_and_update() <= since {
                if changes.changed().await.is_err() {
                    break;
                }
            }
        };
        // Timing out just means nothing changed.
        let _ = actix_web::rt::time::timeout(wait, changed).await;
    }
    let version = state.directory.version();
    if version <= since {
        return Ok(HttpResponse::NotModified()
            .insert_header(("X-Gatehouse-State-Version", version.to_string()))
            .finish());
    }
    let document = export(
        &state.directory,
        &state.keys.current(),
        &state.issuer_url.get(),
        state
            .jwks_max_age
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    Ok(HttpResponse::Ok()
        .insert_header(("X-Gatehouse-State-Version", document.version.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(document))
}
