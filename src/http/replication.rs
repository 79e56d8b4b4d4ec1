//! `GET /internal/v1/state`: the primary's changes (or a snapshot) for its
//! replicas, as a long-poll, behind the shared replica token. The protocol
//! is described in `replication`.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use crate::admin::AdminError;
use crate::crypto::constant_time_eq;
use crate::replication::log::LogError;
use crate::replication::primary::{Answer, Asked, changes_after, decide};
use crate::replication::snapshot::{SnapshotLabel, chunks};
use crate::replication::{
    EPOCH_HEADER, HASH_HEADER, KIND_HEADER, MAX_WAIT_SECS, REPLICA_ID_HEADER, VERSION_HEADER,
};
use crate::store::StoreError;

/// After a change wakes a waiting request, this long for more to join it:
/// a burst reaches the replicas as one answer.
const COALESCE: Duration = Duration::from_millis(5);

#[derive(Deserialize)]
pub struct StateQuery {
    since: Option<u64>,
    wait: Option<u64>,
    epoch: Option<String>,
    hash: Option<String>,
}

fn log_error(e: LogError) -> ApiError {
    ApiError::Admin(AdminError::Store(StoreError::Log(e)))
}

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
    // Replicas follow the primary, not each other.
    let log = state.admin()?.change_log();
    let query = query.into_inner();
    let asked = Asked {
        since: query.since.unwrap_or(0),
        epoch: query.epoch,
        hash: query.hash,
    };
    if let Some(replica) = req
        .headers()
        .get(REPLICA_ID_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        state
            .fleet
            .heard_from(replica, asked.since, state.clock.now().timestamp());
    }
    if let Answer::Snapshot = decide(log, &asked).map_err(log_error)? {
        return snapshot(&state);
    }

    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    let mut changes = state.directory.subscribe();
    if *changes.borrow_and_update() <= asked.since && !wait.is_zero() {
        let changed = async {
            while *changes.borrow_and_update() <= asked.since {
                if changes.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        if let Ok(true) = actix_web::rt::time::timeout(wait, changed).await {
            actix_web::rt::time::sleep(COALESCE).await;
        }
    }
    let max_age = state
        .jwks_max_age
        .load(std::sync::atomic::Ordering::Relaxed);
    let issuer = state.issuer_url.get();
    match changes_after(log, asked.since, &issuer, max_age).map_err(log_error)? {
        Some(document) => {
            state
                .metrics
                .replication_sent("changes", document.changes.len());
            Ok(labelled(
                HttpResponse::Ok(),
                "changes",
                log.epoch(),
                document.version,
                &document.hash,
            )
            .json(document))
        }
        None => {
            let last = log.last();
            Ok(labelled(
                HttpResponse::NotModified(),
                "none",
                log.epoch(),
                last.version,
                &last.hash,
            )
            .finish())
        }
    }
}

/// The whole state, streamed.
fn snapshot(state: &AppState) -> Result<HttpResponse, ApiError> {
    let log = state.admin()?.change_log();
    // The version first: the state taken after it may only be newer.
    let version = state.directory.version();
    let hash = log.hash_at(version).map_err(log_error)?.ok_or_else(|| {
        ApiError::Admin(AdminError::Unavailable(
            "the change log moved on; retry".into(),
        ))
    })?;
    let issuer = state.issuer_url.get();
    let label = SnapshotLabel {
        version,
        epoch: log.epoch(),
        hash: &hash,
        issuer: &issuer,
        jwks_max_age: state
            .jwks_max_age
            .load(std::sync::atomic::Ordering::Relaxed),
    };
    let body = chunks(&state.directory, &state.keys.current(), &label);
    state.metrics.replication_sent("snapshot", 1);
    Ok(
        labelled(HttpResponse::Ok(), "snapshot", log.epoch(), version, &hash)
            .content_type("application/json")
            .streaming(futures_util::stream::iter(
                body.map(Ok::<_, std::convert::Infallible>),
            )),
    )
}

fn labelled(
    mut response: HttpResponseBuilder,
    kind: &str,
    epoch: &str,
    version: u64,
    hash: &str,
) -> HttpResponseBuilder {
    response
        .insert_header((KIND_HEADER, kind.to_string()))
        .insert_header((EPOCH_HEADER, epoch.to_string()))
        .insert_header((VERSION_HEADER, version.to_string()))
        .insert_header((HASH_HEADER, hash.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    response
}
