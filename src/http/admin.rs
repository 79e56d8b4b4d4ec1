//! `/admin/v1`: thin handlers over `crate::admin::Admin`. Store writes
//! flush to disk, so they run on the blocking pool.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::AppState;
use super::body::{Json, OptionalJson};
use super::error::ApiError;
use crate::admin::{Admin, AdminError, NewSecret};
use crate::applications::{
    ApplicationPatch, ApplicationRecord, ApplicationView, NewApplication, SecretRotation,
};
use crate::resources::{NewResource, ResourcePatch};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/applications")
            .route(web::post().to(create_application))
            .route(web::get().to(list_applications))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/applications/{client_id}")
            .route(web::get().to(get_application))
            .route(web::patch().to(update_application))
            .route(web::delete().to(delete_application))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/applications/{client_id}/secret")
            .route(web::post().to(rotate_secret))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/resources")
            .route(web::post().to(create_resource))
            .route(web::get().to(list_resources))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/resources/{id}")
            .route(web::get().to(get_resource))
            .route(web::patch().to(update_resource))
            .route(web::delete().to(delete_resource))
            .default_service(web::to(super::method_not_allowed)),
    );
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

fn authorize(req: &HttpRequest) -> Result<AdminCaller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or(ApiError::AdminUnauthorized)?;
    if state.admin.is_none() {
        return Err(ApiError::NotPrimary);
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match (presented, &state.admin_token) {
        (Some(token), Some(digest)) if digest.matches(token) => Ok(AdminCaller),
        _ => Err(ApiError::AdminUnauthorized),
    }
}

/// Runs an admin operation on the blocking pool.
async fn run<T: Send + 'static>(
    state: &web::Data<AppState>,
    op: impl FnOnce(&Admin) -> Result<T, AdminError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = state.clone();
    web::block(move || match &state.admin {
        Some(admin) => op(admin).map_err(ApiError::from),
        None => Err(ApiError::NotPrimary),
    })
    .await
    .map_err(|e| AdminError::Internal(e.to_string()))?
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
    let apps = state
        .admin
        .as_ref()
        .ok_or(ApiError::NotPrimary)?
        .applications();
    let views: Vec<ApplicationView> = apps.iter().map(|a| a.view()).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "applications": views })))
}

async fn get_application(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let admin = state.admin.as_ref().ok_or(ApiError::NotPrimary)?;
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
    run(&state, move |admin| admin.delete_application(&client_id)).await?;
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
    let resources = state
        .admin
        .as_ref()
        .ok_or(ApiError::NotPrimary)?
        .resources();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "resources": resources })))
}

async fn get_resource(
    _: AdminCaller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let admin = state.admin.as_ref().ok_or(ApiError::NotPrimary)?;
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
    run(&state, move |admin| admin.delete_resource(&id)).await?;
    Ok(HttpResponse::NoContent().finish())
}
