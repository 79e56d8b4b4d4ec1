//! Request bodies read with a size limit and a content-type check, and
//! JSON decoding that names the field at fault.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::error::{ApiError, BodyError};

/// Admin request bodies are small documents.
pub const ADMIN_BODY_LIMIT: usize = 64 * 1024;

/// Reads the whole body, refusing it as soon as it passes `limit`.
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The media type of the request, lowercased, without parameters.
pub fn media_type(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

fn is_json(req: &HttpRequest) -> bool {
    media_type(req).is_some_and(|t| t == "application/json" || t.ends_with("+json"))
}

/// Decodes JSON, naming the path of the field that failed.
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        BodyError::Malformed {
            field: (path != ".").then(|| path.clone()),
            message: e.inner().to_string(),
        }
    })?;
    deserializer.end().map_err(|e| BodyError::Malformed {
        field: None,
        message: e.to_string(),
    })?;
    Ok(value)
}

async fn json_body<T: DeserializeOwned + Default>(
    req: HttpRequest,
    payload: Payload,
    allow_empty: bool,
) -> Result<T, ApiError> {
    let typed = is_json(&req);
    let has_content_type = req.headers().contains_key(header::CONTENT_TYPE);
    if has_content_type && !typed || !has_content_type && !allow_empty {
        return Err(BodyError::UnsupportedMediaType {
            expected: "application/json",
        }
        .into());
    }
    let body = read_limited(&req, payload, ADMIN_BODY_LIMIT).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        if allow_empty {
            return Ok(T::default());
        }
        return Err(BodyError::Malformed {
            field: None,
            message: "a JSON object is required".into(),
        }
        .into());
    }
    if !typed {
        return Err(BodyError::UnsupportedMediaType {
            expected: "application/json",
        }
        .into());
    }
    Ok(decode_json(&body)?)
}

/// A required JSON body (`Content-Type: application/json`).
pub struct Json<T>(pub T);

/// A JSON body that may be left out entirely, meaning `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move { json_body(req, payload, false).await.map(Json) })
    }
}

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move { json_body(req, payload, true).await.map(OptionalJson) })
    }
}
