//! The one place where errors become HTTP responses. Every error body is
//! JSON `{"error", "error_description"}` (RFC 6749 §5.2 style), with a
//! `field` member when one request field is at fault.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use serde::Serialize;

use crate::admin::AdminError;
use crate::issuer::TokenError;
use crate::target::TargetError;
use crate::verifier::VerifyError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("a valid admin token is required")]
    AdminUnauthorized,
    #[error("no such endpoint")]
    NotFound,
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("this node is a replica: send this request to the primary at {0}")]
    NotPrimary(String),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A 401 from a rule with `challenge: basic`: the Basic challenge.
    #[error("{reason}")]
    BasicChallenge { realm: String, reason: VerifyError },
    /// The request target cannot be read one way: refused before any credential.
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("too many invalid tokens from this address; retry after {retry_after} seconds")]
    VerifyThrottled { retry_after: u64 },
    #[error("{0}")]
    SessionUpstream(&'static str),
    #[error("a valid replica token is required")]
    ReplicaUnauthorized,
    #[error("replication is off on this node: no replica_token is configured")]
    ReplicationDisabled,
    #[error("the primary did not answer; retry shortly")]
    PrimaryUnreachable,
}

/// A request body that cannot be taken as it is.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("content type must be {expected}")]
    UnsupportedMediaType { expected: &'static str },
    #[error("malformed request body: {message}")]
    Malformed {
        field: Option<String>,
        message: String,
    },
    #[error("could not read the request body: {0}")]
    Read(String),
    #[error("malformed query string: {0}")]
    Query(String),
}

const BEARER_REALM: &str = r#"Bearer realm="gatehouse""#;

/// RFC 6750 §3: no `error` when no token was sent, `invalid_token` for a
/// bad one, `insufficient_scope` for a good one the rule refuses. The
/// reasons are fixed strings, so they never break the quoted-string.
fn bearer_challenge(response: &mut HttpResponseBuilder, e: VerifyError) {
    let reason = e.to_string();
    let challenge = match e {
        VerifyError::MissingToken | VerifyError::BasicNotAccepted => Some(BEARER_REALM.to_string()),
        VerifyError::NoRule => None,
        e if e.is_forbidden() => Some(format!(
            r#"{BEARER_REALM}, error="insufficient_scope", error_description="{reason}""#
        )),
        _ => Some(format!(
            r#"{BEARER_REALM}, error="invalid_token", error_description="{reason}""#
        )),
    };
    if let Some(challenge) = challenge {
        response.insert_header((header::WWW_AUTHENTICATE, challenge));
    }
    response.insert_header(("X-Auth-Reason", reason));
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::Token(e) => match e {
                TokenError::InvalidRequest(_) => "invalid_request",
                TokenError::InvalidClient { .. } => "invalid_client",
                TokenError::UnsupportedGrantType(_) => "unsupported_grant_type",
                TokenError::InvalidScope(_) => "invalid_scope",
                TokenError::InvalidTarget(_) => "invalid_target",
                TokenError::TooManyAttempts { .. } => "too_many_requests",
                TokenError::Internal(_) => "server_error",
                TokenError::Unavailable => "temporarily_unavailable",
            },
            ApiError::Admin(e) => match e {
                AdminError::Invalid(_) => "invalid_request",
                AdminError::NotFound(_) => "not_found",
                AdminError::Conflict(_) => "conflict",
                AdminError::Store(_) | AdminError::Internal(_) => "server_error",
                AdminError::Unavailable(_) => "temporarily_unavailable",
            },
            ApiError::Body(e) => match e {
                BodyError::TooLarge { .. } => "payload_too_large",
                BodyError::UnsupportedMediaType { .. } => "unsupported_media_type",
                BodyError::Malformed { .. } | BodyError::Read(_) | BodyError::Query(_) => {
                    "invalid_request"
                }
            },
            ApiError::AdminUnauthorized => "invalid_token",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::NotPrimary(_) => "forbidden",
            ApiError::Verify(VerifyError::MissingToken) => "unauthorized",
            ApiError::Verify(VerifyError::NoRule) => "access_denied",
            ApiError::Verify(e) if e.is_forbidden() => "insufficient_scope",
            ApiError::Verify(_) => "invalid_token",
            ApiError::BasicChallenge {
                reason: VerifyError::MissingToken,
                ..
            } => "unauthorized",
            ApiError::BasicChallenge { .. } => "invalid_token",
            ApiError::Target(_) => "access_denied",
            ApiError::VerifyThrottled { .. } => "too_many_requests",
            ApiError::SessionUpstream(_) => "unauthorized",
            ApiError::ReplicaUnauthorized => "invalid_token",
            ApiError::ReplicationDisabled => "forbidden",
            ApiError::PrimaryUnreachable => "temporarily_unavailable",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::Admin(AdminError::Invalid(e)) => Some(&e.field),
            ApiError::Body(BodyError::Malformed { field, .. }) => field.as_deref(),
            _ => None,
        }
    }

    /// What the client is told. Internal failures are logged in full and
    /// described only generically.
    pub(crate) fn description(&self) -> String {
        match self {
            ApiError::Token(TokenError::Internal(_))
            | ApiError::Admin(AdminError::Store(_) | AdminError::Internal(_)) => {
                "internal error; see the server log".to_string()
            }
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Token(e) => match e {
                TokenError::InvalidClient { .. } => StatusCode::UNAUTHORIZED,
                TokenError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
                TokenError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                TokenError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            },
            ApiError::Admin(e) => match e {
                AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
                AdminError::NotFound(_) => StatusCode::NOT_FOUND,
                AdminError::Conflict(_) => StatusCode::CONFLICT,
                AdminError::Store(_) | AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::Body(e) => match e {
                BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                BodyError::Malformed { .. } | BodyError::Read(_) | BodyError::Query(_) => {
                    StatusCode::BAD_REQUEST
                }
            },
            ApiError::AdminUnauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotPrimary(_) => StatusCode::FORBIDDEN,
            ApiError::Verify(e) if e.is_forbidden() => StatusCode::FORBIDDEN,
            ApiError::Target(_) => StatusCode::FORBIDDEN,
            ApiError::Verify(_) | ApiError::SessionUpstream(_) => StatusCode::UNAUTHORIZED,
            ApiError::BasicChallenge { .. } => StatusCode::UNAUTHORIZED,
            ApiError::VerifyThrottled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ReplicaUnauthorized => StatusCode::UNAUTHORIZED,
            ApiError::ReplicationDisabled => StatusCode::FORBIDDEN,
            ApiError::PrimaryUnreachable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            log::error!("{self}: {self:?}");
        }
        let mut response = HttpResponseBuilder::new(status);
        match self {
            ApiError::Token(TokenError::InvalidClient {
                basic_used: true, ..
            }) => {
                response.insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="gatehouse""#));
            }
            ApiError::Token(TokenError::TooManyAttempts { retry_after })
            | ApiError::VerifyThrottled { retry_after } => {
                response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            ApiError::Verify(e) => bearer_challenge(&mut response, *e),
            ApiError::BasicChallenge { realm, reason } => {
                // The realm was validated: no quote, backslash or control
                // character; UTF-8 as RFC 7617's charset says.
                let challenge = format!(r#"Basic realm="{realm}", charset="UTF-8""#);
                if let Ok(value) = HeaderValue::from_bytes(challenge.as_bytes()) {
                    response.insert_header((header::WWW_AUTHENTICATE, value));
                }
                response.insert_header(("X-Auth-Reason", reason.to_string()));
            }
            ApiError::Target(e) => {
                response.insert_header(("X-Auth-Reason", e.to_string()));
            }
            ApiError::SessionUpstream(reason) => {
                response.insert_header((header::WWW_AUTHENTICATE, BEARER_REALM));
                response.insert_header(("X-Auth-Reason", *reason));
            }
            ApiError::AdminUnauthorized => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="gatehouse-admin""#),
                ));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.code(),
            error_description: self.description(),
            field: self.field(),
        })
    }
}
