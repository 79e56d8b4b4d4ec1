//! RFC 8414 metadata and the JWKS.

use std::sync::atomic::Ordering;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    let issuer = state.issuer_url.get();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(json!({
            "issuer": issuer.as_str(),
            "token_endpoint": format!("{issuer}/oauth/token"),
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "introspection_endpoint": format!("{issuer}/oauth/introspect"),
            "revocation_endpoint": format!("{issuer}/oauth/revoke"),
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": state.directory.snapshot().scopes(),
        }))
}

/// The keys, cacheable for `jwks_max_age`: a rotation publishes a new
/// key at least that long before signing with it.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let max_age = state.jwks_max_age.load(Ordering::Relaxed);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}")))
        .content_type("application/json")
        .body(state.keys.snapshot().jwks_json().to_vec())
}
