//! The one place where errors become HTTP responses. Every error body is
//! JSON `{"error", "error_description"}` (RFC 6749 §5.2 style), with a
//! `field` member when one request field is at fault.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
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
    /// A replica that would not enforce what the state holds.
    #[error(
        "this primary holds API keys with scopes, which this replica does not enforce; \
         upgrade the replica (replicas before the primary)"
    )]
    ReplicaOutdated,
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
const ADMIN_REALM: &str = r#"Bearer realm="gatehouse-admin""#;

/// What a client gets for an error, decided in one place: the status, the
/// `error` code and the headers that go with them.
struct Answer {
    status: StatusCode,
    code: &'static str,
    headers: Vec<(HeaderName, String)>,
}

impl Answer {
    fn new(status: StatusCode, code: &'static str) -> Self {
        Self {
            status,
            code,
            headers: Vec::new(),
        }
    }

    fn with(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn reason(self, reason: impl ToString) -> Self {
        self.with(X_AUTH_REASON, reason.to_string())
    }
}

const X_AUTH_REASON: HeaderName = HeaderName::from_static("x-auth-reason");

/// A verify refusal. RFC 6750 §3: no `error` when no token was sent,
/// `invalid_token` for a bad one, `insufficient_scope` for a good one a
/// rule refuses; no challenge at all where no rule covers the request.
/// The reasons are fixed strings, so they never break the quoted-string.
fn verify_answer(e: VerifyError) -> Answer {
    let reason = e.to_string();
    match e {
        VerifyError::NoRule => Answer::new(StatusCode::FORBIDDEN, "access_denied"),
        VerifyError::MissingToken => Answer::new(StatusCode::UNAUTHORIZED, "unauthorized")
            .with(header::WWW_AUTHENTICATE, BEARER_REALM),
        // Basic where no rule takes it: no credential of ours, so no error
        // in the challenge, yet something was sent.
        VerifyError::BasicNotAccepted => Answer::new(StatusCode::UNAUTHORIZED, "invalid_token")
            .with(header::WWW_AUTHENTICATE, BEARER_REALM),
        e if e.is_forbidden() => Answer::new(StatusCode::FORBIDDEN, "insufficient_scope").with(
            header::WWW_AUTHENTICATE,
            format!(r#"{BEARER_REALM}, error="insufficient_scope", error_description="{reason}""#),
        ),
        _ => Answer::new(StatusCode::UNAUTHORIZED, "invalid_token").with(
            header::WWW_AUTHENTICATE,
            format!(r#"{BEARER_REALM}, error="invalid_token", error_description="{reason}""#),
        ),
    }
    .reason(reason)
}

fn token_answer(e: &TokenError) -> Answer {
    match e {
        TokenError::InvalidRequest(_) => Answer::new(StatusCode::BAD_REQUEST, "invalid_request"),
        TokenError::InvalidClient { basic_used, .. } => {
            let answer = Answer::new(StatusCode::UNAUTHORIZED, "invalid_client");
            match basic_used {
                true => answer.with(header::WWW_AUTHENTICATE, r#"Basic realm="gatehouse""#),
                false => answer,
            }
        }
        TokenError::UnsupportedGrantType(_) => {
            Answer::new(StatusCode::BAD_REQUEST, "unsupported_grant_type")
        }
        TokenError::InvalidScope(_) => Answer::new(StatusCode::BAD_REQUEST, "invalid_scope"),
        TokenError::InvalidTarget(_) => Answer::new(StatusCode::BAD_REQUEST, "invalid_target"),
        TokenError::TooManyAttempts { retry_after } => {
            Answer::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
                .with(header::RETRY_AFTER, retry_after.to_string())
        }
        TokenError::Internal { .. } => {
            Answer::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error")
        }
        TokenError::Unavailable => {
            Answer::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        }
    }
}

fn admin_answer(e: &AdminError) -> Answer {
    match e {
        AdminError::Invalid(_) => Answer::new(StatusCode::BAD_REQUEST, "invalid_request"),
        AdminError::NotFound(_) => Answer::new(StatusCode::NOT_FOUND, "not_found"),
        AdminError::Conflict(_) => Answer::new(StatusCode::CONFLICT, "conflict"),
        AdminError::Store(_) | AdminError::Internal { .. } => {
            Answer::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error")
        }
        AdminError::Unavailable(_) => {
            Answer::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        }
    }
}

fn body_answer(e: &BodyError) -> Answer {
    match e {
        BodyError::TooLarge { .. } => {
            Answer::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        }
        BodyError::UnsupportedMediaType { .. } => {
            Answer::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        }
        BodyError::Malformed { .. } | BodyError::Read(_) | BodyError::Query(_) => {
            Answer::new(StatusCode::BAD_REQUEST, "invalid_request")
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// The one match over what a handler can fail with.
    fn answer(&self) -> Answer {
        use StatusCode as S;
        match self {
            ApiError::Token(e) => token_answer(e),
            ApiError::Admin(e) => admin_answer(e),
            ApiError::Body(e) => body_answer(e),
            ApiError::Verify(e) => verify_answer(*e),
            ApiError::BasicChallenge { realm, reason } => {
                let code = match reason {
                    VerifyError::MissingToken => "unauthorized",
                    _ => "invalid_token",
                };
                // The realm was validated: no quote, backslash or control
                // character; UTF-8 as RFC 7617's charset says.
                Answer::new(S::UNAUTHORIZED, code)
                    .with(
                        header::WWW_AUTHENTICATE,
                        format!(r#"Basic realm="{realm}", charset="UTF-8""#),
                    )
                    .reason(reason)
            }
            ApiError::Target(e) => Answer::new(S::FORBIDDEN, "access_denied").reason(e),
            ApiError::VerifyThrottled { retry_after } => {
                Answer::new(S::TOO_MANY_REQUESTS, "too_many_requests")
                    .with(header::RETRY_AFTER, retry_after.to_string())
            }
            ApiError::SessionUpstream(reason) => Answer::new(S::UNAUTHORIZED, "unauthorized")
                .with(header::WWW_AUTHENTICATE, BEARER_REALM)
                .reason(reason),
            ApiError::AdminUnauthorized => Answer::new(S::UNAUTHORIZED, "invalid_token")
                .with(header::WWW_AUTHENTICATE, ADMIN_REALM),
            ApiError::NotFound => Answer::new(S::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => Answer::new(S::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::NotPrimary(_) => Answer::new(S::FORBIDDEN, "forbidden"),
            ApiError::ReplicaUnauthorized => Answer::new(S::UNAUTHORIZED, "invalid_token"),
            ApiError::ReplicationDisabled => Answer::new(S::FORBIDDEN, "forbidden"),
            ApiError::ReplicaOutdated => Answer::new(S::CONFLICT, "replica_outdated"),
            ApiError::PrimaryUnreachable => {
                Answer::new(S::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
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
            ApiError::Token(TokenError::Internal { .. })
            | ApiError::Admin(AdminError::Store(_) | AdminError::Internal { .. }) => {
                "internal error; see the server log".to_string()
            }
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.answer().status
    }

    fn error_response(&self) -> HttpResponse {
        let answer = self.answer();
        if answer.status.is_server_error() {
            log::error!("{self}: {self:?}");
        }
        let mut response = HttpResponseBuilder::new(answer.status);
        for (name, value) in answer.headers {
            // Every value is ours or validated; one that is not a header
            // value is left out rather than failing the answer.
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.insert_header((name, value));
            }
        }
        response.json(ErrorBody {
            error: answer.code,
            error_description: self.description(),
            field: self.field(),
        })
    }
}
