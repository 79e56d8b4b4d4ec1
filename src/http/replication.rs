//! `GET /internal/v1/state`: the primary's changes (or a snapshot) for its
//! replicas, as a long-poll, behind the shared replica token. The protocol
//! is described in `replication`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, BodyError};
use crate::admin::AdminError;
use crate::crypto::constant_time_eq;
use crate::directory::Directory;
use crate::key_usage::{MAX_REPORT, Usage, UsageReport};
use crate::replication::log::{ChangeLog, LogError};
use crate::replication::primary::{Answer, Asked, Changes, changes_after, decide};
use crate::replication::snapshot::{SnapshotLabel, chunks};
use crate::replication::{
    EPOCH_HEADER, FEATURE_SCOPES, HASH_HEADER, KIND_HEADER, MAX_WAIT_SECS, REPLICA_ID_HEADER,
    VERSION_HEADER,
};
use crate::revocation::parse_id;
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
    /// What the replica enforces beyond the first protocol, comma-separated
    /// (`replication::FEATURES`).
    features: Option<String>,
}

/// A replica that does not enforce key scopes must not follow a state
/// holding any: it would accept a scoped key everywhere its application
/// may go. Refused, it stays at the state it has and goes stale (not
/// ready), which is closed; an upgraded one names `scopes`.
fn check_features(query: &StateQuery, state: &AppState) -> Result<(), ApiError> {
    let enforces_scopes = query
        .features
        .as_deref()
        .is_some_and(|features| features.split(',').any(|f| f == FEATURE_SCOPES));
    if !enforces_scopes && !state.directory.scoped_keys.is_empty() {
        return Err(ApiError::ReplicaOutdated);
    }
    Ok(())
}

fn log_error(e: LogError) -> ApiError {
    ApiError::Admin(AdminError::Store(StoreError::Log(e)))
}

/// The shared replica token, compared in constant time.
fn authorize_replica(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let expected = state
        .settings
        .replica_token
        .as_ref()
        .ok_or(ApiError::ReplicationDisabled)?;
    let presented = super::bearer(req).unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), expected.expose().as_bytes()) {
        return Err(ApiError::ReplicaUnauthorized);
    }
    Ok(())
}

/// A report this large is refused (10 000 uses take some 1.2 MB).
const USAGE_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// `POST /internal/v1/usage`: the API key uses a replica noted since its
/// last report. The primary keeps the later use of each key, persisted
/// before it answers 204; ids that are no credential id are skipped.
pub async fn usage(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize_replica(&req, &state)?;
    state.admin()?;
    let body = super::body::read_limited(&req, payload.into_inner(), USAGE_BODY_LIMIT).await?;
    let report: UsageReport = super::body::decode_json(&body)?;
    if report.uses.len() > MAX_REPORT {
        return Err(BodyError::Malformed {
            field: Some("uses".into()),
            message: format!("at most {MAX_REPORT} uses in one report"),
        }
        .into());
    }
    let now = state.clock.now();
    let uses = report.uses.into_iter().filter_map(|u| {
        let id = parse_id(&u.id)?;
        // As the replica should have sent it: whole minutes, none from
        // the future, the client's network rather than its address.
        let minute = u.at.timestamp().min(now.timestamp()).div_euclid(60);
        Some((id, Usage::new(minute, u.from.addr())))
    });
    state.directory.usage.merge(uses.collect::<Vec<_>>());
    let persisted = state.clone();
    web::block(move || match &persisted.admin {
        Some(admin) => admin.persist_usage().map_err(ApiError::from),
        None => Ok(()),
    })
    .await
    .map_err(AdminError::internal("usage worker"))??;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn state(
    req: HttpRequest,
    query: web::Query<StateQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize_replica(&req, &state)?;
    // Replicas follow the primary, not each other.
    let log = state.admin()?.change_log();
    check_features(&query, &state)?;
    let query = query.into_inner();
    let asked = Asked {
        since: query.since.unwrap_or(0),
        epoch: query.epoch,
        hash: query.hash,
    };
    // A replica from before the change log names no epoch. It is answered
    // as it always was: a snapshot once something changed, else 304 after
    // the wait (a snapshot on every poll would pull the state in a loop).
    let legacy = asked.epoch.is_none() && asked.since > 0;
    let snapshot_due = if legacy {
        // Versions it cannot have seen here (another primary's, or ours
        // from before the change log counted from 1).
        asked.since > state.directory.version()
    } else {
        matches!(decide(log, &asked).map_err(log_error)?, Answer::Snapshot)
    };
    if snapshot_due {
        return snapshot(&state);
    }
    // Only now is `since` a version of this history: a replica of another
    // store must not count as having applied ours (rotation waits on it).
    note_replica(&req, &state, asked.since);
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    wait_for_change(&state.directory, asked.since, wait).await;
    if legacy {
        if state.directory.version() <= asked.since {
            return Ok(HttpResponse::NotModified().finish());
        }
        return snapshot(&state);
    }
    changes_since(&state, log, asked.since)
}

/// The fleet's record that the replica naming itself in `REPLICA_ID_HEADER`
/// has applied `since`.
fn note_replica(req: &HttpRequest, state: &AppState, since: u64) {
    if let Some(replica) = req
        .headers()
        .get(REPLICA_ID_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        state
            .fleet
            .heard_from(replica, since, state.clock.now().timestamp());
    }
}

/// Waits up to `wait` for the state to move past `since`; once it has,
/// `COALESCE` more, for the rest of a burst.
async fn wait_for_change(directory: &Directory, since: u64, wait: Duration) {
    let mut changes = directory.subscribe();
    if *changes.borrow_and_update() <= since && !wait.is_zero() {
        let changed = async {
            while *changes.borrow_and_update() <= since {
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
}

/// The changes after `since` (304 if there are none), or the whole state
/// if compaction has cut into them.
fn changes_since(state: &AppState, log: &ChangeLog, since: u64) -> Result<HttpResponse, ApiError> {
    let max_age = state.jwks_max_age.load(Ordering::Relaxed);
    let issuer = state.issuer_url.get();
    let Some(changes) = changes_after(log, since, &issuer, max_age).map_err(log_error)? else {
        let last = log.last();
        return Ok(labelled(
            HttpResponse::NotModified(),
            "none",
            log.epoch(),
            last.version,
            &last.hash,
        )
        .finish());
    };
    match changes {
        // Compaction cut into the range after `decide`: the whole state.
        Changes::Gap => snapshot(state),
        Changes::Follow(document) => {
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
        jwks_max_age: state.jwks_max_age.load(Ordering::Relaxed),
    };
    // Each snapshot in flight holds a copy of the revoked ids (16 MB at a
    // million): a few at a time; the others retry (replicas back off).
    let Some(slot) = SnapshotSlot::take(&state.snapshots_in_flight) else {
        return Err(ApiError::Admin(AdminError::Unavailable(
            "too many snapshots in flight; retry shortly".into(),
        )));
    };
    let body = chunks(&state.directory, &state.keys.snapshot(), &label).inspect(move |_| {
        let _held_until_the_stream_ends = &slot;
    });
    state.metrics.replication_sent("snapshot", 1);
    Ok(
        labelled(HttpResponse::Ok(), "snapshot", log.epoch(), version, &hash)
            .content_type("application/json")
            .streaming(futures_util::stream::iter(
                body.map(Ok::<_, std::convert::Infallible>),
            )),
    )
}

/// Snapshots streamed at once, at most.
const MAX_SNAPSHOTS: usize = 4;

/// One of the `MAX_SNAPSHOTS` slots, given back when its stream is dropped.
struct SnapshotSlot(Arc<AtomicUsize>);

impl SnapshotSlot {
    fn take(in_flight: &Arc<AtomicUsize>) -> Option<Self> {
        in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_SNAPSHOTS).then_some(n + 1)
            })
            .ok()
            .map(|_| SnapshotSlot(Arc::clone(in_flight)))
    }
}

impl Drop for SnapshotSlot {
    fn drop(&mut self) {
        // The last snapshot in flight has ended: what the streams held
        // (copies of the ids and records, encoded chunks) is free.
        if self.0.fetch_sub(1, Ordering::AcqRel) == 1 {
            crate::memory::release_freed();
        }
    }
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
