//! `/admin/v1`: thin handlers over `crate::admin::Admin`. Store writes
//! flush to disk, so they run on the blocking pool.

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::AppState;
use super::body::{Json, OptionalJson};
use super::error::ApiError;
use crate::admin::{Admin, AdminError, NewSecret};
use crate::api_keys::{ApiKeyPatch, KeyFilter, NewApiKey, parse_duration};
use crate::applications::{
    ApplicationPatch, ApplicationRecord, ApplicationView, NewApplication, SecretRotation,
};
use crate::explain::{ExplainBody, Explanation};
use crate::resources::{NewResource, ResourcePatch};

/// Every admin route, in matching order (`/keys/rotate` before
/// `/keys/{kid}`); other methods on a path are answered 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg
        // Applications
        .service(
            resource("/applications")
                .route(web::post().to(create_application))
                .route(web::get().to(list_applications)),
        )
        .service(
            resource("/applications/{client_id}")
                .route(web::get().to(get_application))
                .route(web::patch().to(update_application))
                .route(web::delete().to(delete_application)),
        )
        .service(resource("/applications/{client_id}/secret").route(web::post().to(rotate_secret)))
        .service(
            resource("/applications/{client_id}/api-keys")
                .route(web::post().to(create_api_key))
                .route(web::get().to(list_api_keys)),
        )
        .service(
            resource("/applications/{client_id}/revoke-tokens")
                .route(web::post().to(revoke_tokens)),
        )
        // API keys
        .service(resource("/api-keys").route(web::get().to(list_all_api_keys)))
        .service(
            resource("/api-keys/{id}")
                .route(web::patch().to(update_api_key))
                .route(web::delete().to(revoke_api_key)),
        )
        // Signing keys
        .service(resource("/keys/rotate").route(web::post().to(rotate_signing_key)))
        .service(resource("/keys").route(web::get().to(list_signing_keys)))
        .service(resource("/keys/{kid}").route(web::delete().to(retire_signing_key)))
        // Decisions and the audit log
        .service(resource("/explain").route(web::post().to(explain)))
        .service(resource("/audit").route(web::get().to(audit_log)))
        // Forward-auth rules
        .service(
            resource("/resources")
                .route(web::post().to(create_resource))
                .route(web::get().to(list_resources)),
        )
        .service(
            resource("/resources/{id}")
                .route(web::get().to(get_resource))
                .route(web::patch().to(update_resource))
                .route(web::delete().to(delete_resource)),
        );
}

/// A path whose routes are added to it; any other method is a 405.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(super::method_not_allowed))
}

/// A caller holding the admin token. Extracted before the body, so a
/// request without the token learns nothing about its payload.
pub struct AdminCaller;

impl FromRequest for AdminCaller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(authorize(req))
    }
}

/// Records every state-changing admin request made with the admin token,
/// and how it ended, before the answer leaves: an acknowledged action is
/// in the audit log even after a `kill -9`.
pub async fn audit_trail(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && req.path() != EXPLAIN_PATH;
    let actor = if changes_state {
        admin_actor(req.request())
    } else {
        None
    };
    let response = next.call(req).await?;
    if let Some(actor) = actor {
        let request = response.request();
        let action = format!(
            "{} {}",
            request.method(),
            request
                .match_pattern()
                .unwrap_or_else(|| request.path().to_string())
        );
        let target = request.path().to_string();
        let status = response.status().as_u16();
        if let Some(state) = request.app_data::<web::Data<AppState>>() {
            let now = state.clock.now();
            let recorded = run(state, move |admin| {
                admin.record_audit(actor, action, target, status, now)
            })
            .await;
            if let Err(e) = recorded {
                log::error!("could not write the audit log: {e}");
            }
        }
    }
    Ok(response)
}

/// A dry run: it changes nothing, so it is not recorded either.
const EXPLAIN_PATH: &str = "/admin/v1/explain";

/// `admin:<fingerprint>` for a request bearing the admin token.
fn admin_actor(req: &HttpRequest) -> Option<String> {
    authorize(req).ok()?;
    let state = req.app_data::<web::Data<AppState>>()?;
    Some(format!(
        "admin:{}",
        state.admin_token.as_ref()?.fingerprint()
    ))
}

fn authorize(req: &HttpRequest) -> Result<AdminCaller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or(ApiError::AdminUnauthorized)?;
    state.admin()?;
    match (super::bearer(req), &state.admin_token) {
        (Some(token), Some(digest)) if digest.matches(token) => Ok(AdminCaller),
        _ => Err(ApiError::AdminUnauthorized),
    }
}

/// Runs an admin operation on the blocking pool.
pub(crate) async fn run<T: Send + 'static>(
    state: &web::Data<AppState>,
    op: impl FnOnce(&Admin) -> Result<T, AdminError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = state.clone();
    web::block(move || match &state.admin {
        Some(admin) => op(admin).map_err(ApiError::from),
        None => Err(state.not_primary()),
    })
    .await
    .map_err(AdminError::internal("admin worker"))?
}

#[derive(Serialize)]
struct WithSecret<'a> {
    #[serde(flatten)]
    application: ApplicationView<'a>,
    client_secret: &'a str,
}

fn with_secret<'a>(app: &'a ApplicationRecord, secret: &'a NewSecret) -> WithSecret<'a> {
    WithSecret {
        application: app.view(),
        client_secret: &secret.0,
    }
}

async fn create_application(
    _: AdminCaller,
    state: web::Data<AppState>,
    Json(new): Json<NewApplication>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let (app, secret) = run(&state, move |admin| admin.create_application(new, now)).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/admin/v1/applications/{}", app.client_id),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(with_secret(&app, &secret)))
}

async fn list_applications(
    _: AdminCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let apps = state.admin()?.applications();
    let views: Vec<ApplicationView> = apps.iter().map(|a| a.view()).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "applications": views })))
}

async fn get_application(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let admin = state.admin()?;
    let app = admin.application(&path)?;
    Ok(HttpResponse::Ok().json(app.view()))
}

async fn update_application(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(patch): Json<ApplicationPatch>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let client_id = path.into_inner();
    let app = run(&state, move |admin| {
        admin.update_application(&client_id, patch, now)
    })
    .await?;
    Ok(HttpResponse::Ok().json(app.view()))
}

async fn delete_application(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let client_id = path.into_inner();
    let now = state.clock.now();
    run(&state, move |admin| {
        admin.delete_application(&client_id, now)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn rotate_secret(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    OptionalJson(rotation): OptionalJson<SecretRotation>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let client_id = path.into_inner();
    let (app, secret) = run(&state, move |admin| {
        admin.rotate_secret(&client_id, rotation, now)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(with_secret(&app, &secret)))
}

async fn create_resource(
    _: AdminCaller,
    state: web::Data<AppState>,
    Json(new): Json<NewResource>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let resource = run(&state, move |admin| admin.create_resource(new, now)).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/admin/v1/resources/{}", resource.id),
        ))
        .json(resource))
}

async fn list_resources(
    _: AdminCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let resources = state.admin()?.resources();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "resources": resources })))
}

async fn get_resource(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let admin = state.admin()?;
    Ok(HttpResponse::Ok().json(admin.resource(&path)?))
}

async fn update_resource(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(patch): Json<ResourcePatch>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let id = path.into_inner();
    let resource = run(&state, move |admin| admin.update_resource(&id, patch, now)).await?;
    Ok(HttpResponse::Ok().json(resource))
}

async fn delete_resource(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let now = state.clock.now();
    run(&state, move |admin| admin.delete_resource(&id, now)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn create_api_key(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(new): Json<NewApiKey>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let client_id = path.into_inner();
    let (view, key, short) = run(&state, move |admin| {
        admin.create_api_key(&client_id, new, now)
    })
    .await?;
    let mut body = serde_json::to_value(&view).unwrap_or_default();
    if let Some(fields) = body.as_object_mut() {
        fields.insert("api_key".into(), key.into());
        if let Some(short) = short {
            fields.insert("basic_password".into(), short.into());
        }
        fields.remove("revoked_at");
        fields.remove("kid");
    }
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body))
}

/// `?unused_for=90d&expires_within=7d`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyListing {
    unused_for: Option<String>,
    expires_within: Option<String>,
}

impl KeyListing {
    fn filter(&self) -> Result<KeyFilter, ApiError> {
        let window = |field: &str, text: &Option<String>| {
            text.as_deref()
                .map(|t| parse_duration(field, t))
                .transpose()
                .map_err(|e| ApiError::Admin(AdminError::Invalid(e)))
        };
        Ok(KeyFilter {
            unused_for: window("unused_for", &self.unused_for)?,
            expires_within: window("expires_within", &self.expires_within)?,
        })
    }
}

async fn list_api_keys(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<KeyListing>,
) -> Result<HttpResponse, ApiError> {
    let client_id = path.into_inner();
    let filter = query.filter()?;
    let now = state.clock.now();
    let keys = run(&state, move |admin| {
        admin.list_api_keys(Some(&client_id), &filter, now)
    })
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "api_keys": keys })))
}

/// Every application's keys, with the same filters: what is about to
/// expire, or unused, across the fleet.
async fn list_all_api_keys(
    _: AdminCaller,
    state: web::Data<AppState>,
    query: web::Query<KeyListing>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.filter()?;
    let now = state.clock.now();
    let keys = run(&state, move |admin| admin.list_api_keys(None, &filter, now)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "api_keys": keys })))
}

async fn update_api_key(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    Json(patch): Json<ApiKeyPatch>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let id = path.into_inner();
    let view = run(&state, move |admin| admin.update_api_key(&id, patch, now)).await?;
    Ok(HttpResponse::Ok().json(view))
}

async fn revoke_api_key(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let id = path.into_inner();
    run(&state, move |admin| admin.revoke_api_key(&id, now)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn revoke_tokens(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let client_id = path.into_inner();
    let app = run(&state, move |admin| admin.revoke_tokens(&client_id, now)).await?;
    Ok(HttpResponse::Ok().json(app.view()))
}

async fn rotate_signing_key(
    _: AdminCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let fleet = std::sync::Arc::clone(&state.fleet);
    let rotation = run(&state, move |admin| admin.rotate_signing_key(&fleet, now)).await?;
    Ok(HttpResponse::Accepted().json(rotation))
}

async fn list_signing_keys(
    _: AdminCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let keys = run(&state, move |admin| admin.signing_keys(now)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "keys": keys })))
}

async fn retire_signing_key(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let kid = path.into_inner();
    let now = state.clock.now();
    run(&state, move |admin| admin.retire_signing_key(&kid, now)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(serde::Deserialize)]
struct AuditPage {
    limit: Option<usize>,
    before: Option<String>,
}

const AUDIT_PAGE_DEFAULT: usize = 50;
const AUDIT_PAGE_MAX: usize = 500;

async fn audit_log(
    _: AdminCaller,
    state: web::Data<AppState>,
    query: web::Query<AuditPage>,
) -> Result<HttpResponse, ApiError> {
    let AuditPage { limit, before } = query.into_inner();
    let limit = limit.unwrap_or(AUDIT_PAGE_DEFAULT).clamp(1, AUDIT_PAGE_MAX);
    let entries = run(&state, move |admin| admin.audit(before.as_deref(), limit)).await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "entries": entries, "next": next })))
}

/// `POST /explain`: what `/api/verify` would answer, and why.
async fn explain(
    _: AdminCaller,
    state: web::Data<AppState>,
    Json(body): Json<ExplainBody>,
) -> Result<HttpResponse, ApiError> {
    let explanation = explain_body(&state, &body).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(explanation))
}

/// The explanation of an explain body, validated: for the admin API and
/// the console alike. The short form of an API key names no client; the
/// key's record does (a store read, on the blocking pool).
pub async fn explain_body(
    state: &web::Data<AppState>,
    body: &ExplainBody,
) -> Result<Explanation, ApiError> {
    let key_client = match body.short_key_id() {
        Some(id) => run(state, move |admin| admin.api_key_client(&id)).await?,
        None => None,
    };
    let request = body
        .request(key_client.as_deref())
        .map_err(AdminError::from)?;
    Ok(state.explain(&request))
}
