//! A replica's way to the primary for the one client request it cannot
//! carry out itself: `POST /oauth/revoke`. The request goes on as the client
//! sent it (its authentication included), so the primary authenticates the
//! client again and decides; its answer is relayed unchanged. The client's
//! address travels in `X-Gatehouse-Client-Addr`, which the primary believes
//! only beside the replica token in `X-Gatehouse-Relay`. Client secrets
//! cross this link: put TLS on it, as on the state link.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

use super::error::ApiError;

/// The replica token, proving the relayed address is a replica's word.
pub const RELAY_TOKEN_HEADER: &str = "x-gatehouse-relay";
/// The client's address, as the replica saw it.
pub const RELAYED_ADDR_HEADER: &str = "x-gatehouse-client-addr";

/// How long the primary may take to answer.
const RELAY_TIMEOUT: Duration = Duration::from_secs(10);
/// The primary's answers are small JSON documents.
const MAX_ANSWER: usize = 64 * 1024;
/// Request headers the primary needs: the client's authentication and how
/// the body is encoded.
const PASSED: [HeaderName; 2] = [header::AUTHORIZATION, header::CONTENT_TYPE];
/// Answer headers that carry meaning for the client (challenges, throttle
/// hints, caching).
const RELAYED: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::WWW_AUTHENTICATE,
    header::RETRY_AFTER,
    header::CACHE_CONTROL,
    header::PRAGMA,
];

pub struct PrimaryRelay {
    client: reqwest::Client,
    primary_url: crate::parsed::BaseUrl,
}

impl PrimaryRelay {
    pub fn new(primary_url: crate::parsed::BaseUrl) -> Result<Self, String> {
        // Only the primary answers: a redirect would hand the client's
        // credentials to whoever it names.
        let client = crate::crypto::http_client(|builder| {
            builder
                .timeout(RELAY_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
        })
        .map_err(|e| format!("primary relay client: {e}"))?;
        Ok(Self {
            client,
            primary_url,
        })
    }

    /// Sends `body` to the primary's `path` with the client's headers and
    /// its address, and relays the answer.
    pub async fn relay(
        &self,
        req: &HttpRequest,
        path: &str,
        body: Bytes,
        client_addr: IpAddr,
        replica_token: &str,
    ) -> Result<HttpResponse, ApiError> {
        let mut request = self
            .client
            .post(self.primary_url.join(path))
            .header(RELAY_TOKEN_HEADER, replica_token)
            .header(RELAYED_ADDR_HEADER, client_addr.to_string())
            .body(body);
        for name in &PASSED {
            for value in req.headers().get_all(name) {
                request = request.header(name.as_str(), value.as_bytes());
            }
        }
        let unreachable = |e: reqwest::Error| {
            log::warn!("relaying {path} to the primary failed: {e}");
            ApiError::PrimaryUnreachable
        };
        let mut answer = request.send().await.map_err(unreachable)?;
        let status = StatusCode::from_u16(answer.status().as_u16())
            .map_err(|_| ApiError::PrimaryUnreachable)?;
        let mut response = HttpResponseBuilder::new(status);
        for name in &RELAYED {
            for value in answer.headers().get_all(name.as_str()) {
                response.append_header((name.clone(), value.as_bytes()));
            }
        }
        let mut relayed = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(unreachable)? {
            if relayed.len() + chunk.len() > MAX_ANSWER {
                log::warn!("the primary's answer to {path} exceeds {MAX_ANSWER} bytes");
                return Err(ApiError::PrimaryUnreachable);
            }
            relayed.extend_from_slice(&chunk);
        }
        Ok(response.body(relayed))
    }
}
