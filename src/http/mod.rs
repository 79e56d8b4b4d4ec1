//! The HTTP layer: routes, shared state, and the mapping of every error to
//! a response (`error`). Handlers parse, call a core function, and render.
//!
//! * `verify`: `/api/verify`, the forward-auth sub-request
//! * `oauth`: the token, introspection and revocation endpoints
//! * `discovery`: RFC 8414 metadata and the JWKS
//! * `admin`: `/admin/v1`, thin handlers over `crate::admin`
//! * `console`: the admin console at `/ui/`
//! * `replication`: `/internal/v1/state` and the replicas' usage reports
//! * `primary_relay`: a replica's way to the primary (RFC 7009 revocation)
//! * `upstream`: the session fallback for requests without credentials
//! * `health`, `openapi`: liveness and readiness, `/openapi.json`
//! * `client_addr`, `body`, `error`: who is asking, bodies read with
//!   limits, errors as responses

pub mod admin;
pub mod body;
pub mod client_addr;
pub mod console;
pub mod discovery;
pub mod error;
pub mod health;
pub mod oauth;
pub mod openapi;
pub mod primary_relay;
pub mod replication;
pub mod upstream;
pub mod verify;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};

use actix_web::middleware::{self, DefaultHeaders};
use actix_web::{HttpResponse, web};

use crate::admin::Admin;
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::SecretDigest;
use crate::directory::Directory;
use crate::explain::{Context, ExplainRequest, Explanation, Fallback};
use crate::issuer::{IssuerUrl, TokenIssuer};
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::replication::fleet::Fleet;
use crate::replication::follower::SyncStatus;
use crate::throttle::Throttle;
use crate::verifier::{Inputs, Verifier};
use error::ApiError;
use upstream::SessionUpstream;

/// What every handler can reach.
pub struct AppState {
    pub settings: Settings,
    pub issuer_url: IssuerUrl,
    pub clock: Arc<dyn Clock>,
    pub keys: Arc<KeyRing>,
    pub directory: Arc<Directory>,
    pub issuer: TokenIssuer,
    /// The admin API's core; `None` on a replica.
    pub admin: Option<Admin>,
    pub admin_token: Option<SecretDigest>,
    pub verifier: Verifier,
    /// Counts forged-looking tokens per address, apart from the token
    /// endpoint's failures, so neither locks the other out.
    pub verify_throttle: Throttle,
    /// Failed client authentications per client and address (the token
    /// endpoint's lockout), which console sign-ins count towards too.
    pub auth_throttle: Arc<Throttle>,
    /// The console's signed-in sessions.
    pub console: console::session::Sessions,
    /// RFC 7009 revocations per client and minute: each one is a change
    /// every replica applies, so no client may churn the fleet.
    pub revocation_limit: Throttle,
    pub session_upstream: Option<SessionUpstream>,
    pub metrics: Metrics,
    /// A replica's sync with its primary; `None` on the primary.
    pub sync: Option<Arc<SyncStatus>>,
    /// The primary's view of its replicas.
    pub fleet: Arc<Fleet>,
    /// The JWKS `max-age`: the setting on a primary, the primary's on a
    /// replica (its rotations wait for that long).
    pub jwks_max_age: Arc<AtomicU64>,
    /// A replica's way to its primary for revocations; `None` on the primary.
    pub primary_relay: Option<primary_relay::PrimaryRelay>,
    /// Replication snapshots being streamed (they are capped).
    pub snapshots_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

impl AppState {
    /// The admin core, or the refusal a replica gives, naming its primary.
    pub fn admin(&self) -> Result<&Admin, ApiError> {
        self.admin.as_ref().ok_or_else(|| self.not_primary())
    }

    /// What `/api/verify` on this node would answer for `request`, now,
    /// without side effects (`crate::explain`): the admin API's explain
    /// and the console's Test access page.
    pub fn explain(&self, request: &ExplainRequest<'_>) -> Explanation {
        let snapshot = self.directory.guard();
        let keys = self.keys.guard();
        let fallback = match (&self.settings.upstream_verify_url, &self.settings.login_url) {
            (Some(url), _) => Fallback::Upstream(url),
            (None, Some(url)) => Fallback::Login(url),
            (None, None) => Fallback::None,
        };
        let context = Context {
            verifier: &self.verifier,
            inputs: Inputs::of(&self.directory, &snapshot, &keys),
            fallback,
        };
        crate::explain::explain(&context, request, self.clock.now().timestamp())
    }

    pub fn not_primary(&self) -> ApiError {
        ApiError::NotPrimary(
            self.settings
                .primary_url
                .as_deref()
                .unwrap_or_default()
                .to_string(),
        )
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Routes match in registration order: the proxy's hot path goes first.
    cfg.route("/api/verify", web::route().to(verify::verify))
        .service(
            web::resource("/oauth/token")
                // RFC 6749 §5.1: token responses, errors included, are never cached.
                .wrap(
                    DefaultHeaders::new()
                        .add(("Cache-Control", "no-store"))
                        .add(("Pragma", "no-cache")),
                )
                .route(web::post().to(oauth::token))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/oauth/introspect")
                .wrap(DefaultHeaders::new().add(("Cache-Control", "no-store")))
                .route(web::post().to(oauth::introspect))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/oauth/revoke")
                .wrap(DefaultHeaders::new().add(("Cache-Control", "no-store")))
                .route(web::post().to(oauth::revoke))
                .default_service(web::to(method_not_allowed)),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            web::get().to(discovery::metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            web::get().to(discovery::metadata),
        )
        .route("/.well-known/jwks.json", web::get().to(discovery::jwks))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/openapi.json", web::get().to(openapi::document))
        .route("/internal/v1/state", web::get().to(replication::state))
        .service(
            web::resource("/internal/v1/usage")
                .route(web::post().to(replication::usage))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::scope("/admin/v1")
                .wrap(middleware::from_fn(admin::audit_trail))
                .configure(admin::configure),
        )
        .configure(console::configure);
}

/// Counts every request by route and status, and times it.
pub async fn record_metrics(
    req: ServiceRequest,
    next: middleware::Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let route = crate::metrics::route_label(req.path());
    let response = next.call(req).await?;
    if let Some(state) = response.request().app_data::<web::Data<AppState>>() {
        state
            .metrics
            .observe_request(route, response.status().as_u16(), started.elapsed());
    }
    Ok(response)
}

/// The token of an `Authorization: Bearer …` header (scheme in any case),
/// for the admin and replication endpoints. `/api/verify` reads its own,
/// more strictly.
pub fn bearer(req: &actix_web::HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

pub async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
