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
    match state.metrics.render(&state.directory) {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => {
            log::error!("cannot render metrics: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Keys are loaded and the store is open.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.keys.current().signer().is_some() {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({
            "status": "not ready",
            "reason": "no signing key loaded",
        }))
    }
}
