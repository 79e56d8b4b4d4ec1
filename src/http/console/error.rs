//! The console's errors, and the one place they become pages.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use maud::html;

use super::layout;
use crate::admin::AdminError;
use crate::http::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// A page asked for without a live session: to the sign-in page.
    #[error("sign in first")]
    SignedOut,
    /// A form sent after its session ended.
    #[error("your session has ended; sign in again")]
    SessionEnded,
    #[error("this form was sent from another site, and was refused")]
    CrossOrigin,
    #[error("the form's security token is missing or out of date; reload the page and try again")]
    Csrf,
    #[error("{0}")]
    Form(String),
    #[error("too many failed sign-ins from this address; retry after {0} seconds")]
    Throttled(u64),
    #[error("no such page")]
    NotFound,
    /// What the core answered, as the admin API would report it.
    #[error("{}", .0.description())]
    Api(#[from] ApiError),
}

impl From<AdminError> for ConsoleError {
    fn from(e: AdminError) -> Self {
        ConsoleError::Api(e.into())
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::SignedOut => StatusCode::SEE_OTHER,
            ConsoleError::SessionEnded | ConsoleError::CrossOrigin | ConsoleError::Csrf => {
                StatusCode::FORBIDDEN
            }
            ConsoleError::Form(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ConsoleError::NotFound => StatusCode::NOT_FOUND,
            ConsoleError::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            ConsoleError::SignedOut => return super::see_other("/ui/sign-in"),
            ConsoleError::Api(e) if status.is_server_error() => {
                log::error!("console: {e}: {e:?}");
            }
            _ => {}
        }
        let title = match self {
            ConsoleError::SessionEnded => "Session ended",
            ConsoleError::CrossOrigin | ConsoleError::Csrf => "Request refused",
            ConsoleError::Throttled(_) => "Too many attempts",
            ConsoleError::NotFound => "Not found",
            ConsoleError::Api(_) if status == StatusCode::NOT_FOUND => "Not found",
            ConsoleError::Api(_) if status.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        let signed_out = matches!(self, ConsoleError::SessionEnded);
        let body = html! {
            p.alert.error role="alert" { (self.to_string()) }
            p {
                @if signed_out {
                    a href="/ui/sign-in" { "Sign in" }
                } @else {
                    "Go back, correct what the message names, and send the form again, or return to "
                    a href="/ui/applications" { "the applications" } "."
                }
            }
        };
        let mut response = HttpResponse::build(status);
        if let ConsoleError::Throttled(retry_after) = self {
            response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        response
            .content_type("text/html; charset=utf-8")
            .body(layout::bare(title, body).into_string())
    }
}
