//! Session fallback: bearer-less verify requests are delegated to another
//! forward-auth service (Authelia's, Clinch's) that knows the browser
//! sessions, and its decision is relayed.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

use super::error::ApiError;
use crate::target::RequestTarget;

/// How long the upstream may take before the request is refused.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// Headers of the original request passed to the upstream.
const PASSED: [&str; 3] = ["cookie", "accept", "user-agent"];
/// Upstream response bodies are relayed up to this size.
const MAX_RELAYED_BODY: usize = 64 * 1024;

pub struct SessionUpstream {
    client: reqwest::Client,
    url: String,
}

impl SessionUpstream {
    /// A pooled client: the fallback sits on the proxy's hot path too.
    pub fn new(url: String) -> Result<Self, String> {
        let client = crate::crypto::http_client(|builder| {
            builder
                .timeout(UPSTREAM_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .pool_idle_timeout(Duration::from_secs(60))
        })
        .map_err(|e| format!("session upstream client: {e}"))?;
        Ok(Self { client, url })
    }

    /// Asks the session upstream about the original request and relays
    /// what a proxy's forward auth understands of its answer.
    pub async fn delegate(
        &self,
        req: &HttpRequest,
        original: &RequestTarget<'_>,
        client_addr: IpAddr,
    ) -> Result<HttpResponse, ApiError> {
        let upstream = self.ask(req, original, client_addr).await?;
        let relayed = relayed_status(upstream.status().as_u16(), &self.url)?;
        let mut response = HttpResponseBuilder::new(relayed);
        for (name, value) in upstream.headers() {
            if relayed_header(name.as_str()) {
                response.append_header((name.as_str(), value.as_bytes()));
            }
        }
        Ok(match relayed_body(upstream).await {
            Some(body) => response.body(body),
            None => response.finish(),
        })
    }

    /// The original request, as the upstream's own forward auth expects
    /// it: the target in both header families, the client's address, and
    /// the headers a session lives in.
    async fn ask(
        &self,
        req: &HttpRequest,
        original: &RequestTarget<'_>,
        client_addr: IpAddr,
    ) -> Result<reqwest::Response, ApiError> {
        let mut request = self
            .client
            .get(&self.url)
            .header("X-Forwarded-Method", original.method.as_ref())
            .header("X-Forwarded-Proto", original.proto.as_ref())
            .header("X-Forwarded-Host", original.authority)
            .header("X-Forwarded-Uri", original.uri)
            .header("X-Forwarded-For", client_addr.to_string())
            .header("X-Original-Method", original.method.as_ref())
            .header("X-Original-URL", original.url());
        for name in PASSED {
            for value in req.headers().get_all(name) {
                request = request.header(name, value.as_bytes());
            }
        }
        request.send().await.map_err(|e| {
            log::warn!("session upstream {} failed: {e}", self.url);
            ApiError::SessionUpstream(if e.is_timeout() {
                "the session verification upstream timed out"
            } else {
                "the session verification upstream is unreachable"
            })
        })
    }
}

/// Only what a proxy's forward auth understands goes back; nginx turns
/// anything else into a 500.
fn relayed_status(status: u16, url: &str) -> Result<StatusCode, ApiError> {
    match status {
        200..=299 => Ok(StatusCode::OK),
        301 | 302 | 303 | 307 | 308 | 401 | 403 => {
            Ok(StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED))
        }
        _ => {
            log::warn!("session upstream {url} answered {status}");
            Err(ApiError::SessionUpstream(
                "the session verification upstream answered with an error",
            ))
        }
    }
}

/// The upstream's headers that mean something to the proxy or the client.
fn relayed_header(name: &str) -> bool {
    matches!(
        name,
        "location" | "set-cookie" | "x-auth-reason" | "www-authenticate" | "content-type"
    ) || name.starts_with("remote-")
}

/// The upstream's body, read no further than what would be relayed: one
/// over `MAX_RELAYED_BODY` is dropped (and a read that fails ends it).
async fn relayed_body(mut upstream: reqwest::Response) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = upstream.chunk().await {
        if body.len() + chunk.len() > MAX_RELAYED_BODY {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}
