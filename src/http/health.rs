//! Liveness and readiness.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

/// The process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let now = state.clock.now().timestamp();
    let sync_age = state.sync.as_ref().map(|sync| sync.age(now));
    // The primary's expiry index is read from the store once, the first
    // time it is asked for (here or by housekeeping).
    let expiring = if state.admin.is_some() {
        let state = state.clone();
        web::block(move || state.admin.as_ref().and_then(|a| a.keys_expiring(now)))
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    match state.metrics.render(&state.directory, sync_age, expiring) {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => {
            log::error!("cannot render metrics: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// A primary: its signing key is loaded and its store open. A replica:
/// its copy of the primary's state is at most `max_staleness` old.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let not_ready = |reason: String| {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "not ready", "reason": reason }))
    };
    match &state.sync {
        Some(sync) => match sync.age(state.clock.now().timestamp()) {
            Some(age) if age <= i64::try_from(state.settings.max_staleness).unwrap_or(i64::MAX) => {
                HttpResponse::Ok().json(json!({ "status": "ready", "sync_age_seconds": age }))
            }
            Some(age) => not_ready(format!("the copy of the primary's state is {age} s old")),
            None => not_ready("not synced with the primary yet".into()),
        },
        None if state.keys.snapshot().signer().is_some() => {
            HttpResponse::Ok().json(json!({ "status": "ready" }))
        }
        None => not_ready("no signing key loaded".into()),
    }
}
