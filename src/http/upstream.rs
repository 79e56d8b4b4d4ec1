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

    pub async fn delegate(
        &self,
        req: &HttpRequest,
        original: &RequestTarget<'_>,
        client_addr: IpAddr,
    ) -> Result<HttpResponse, ApiError> {
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
        let upstream = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                log::warn!("session upstream {} failed: {e}", self.url);
                return Err(ApiError::SessionUpstream(if e.is_timeout() {
                    "the session verification upstream timed out"
                } else {
                    "the session verification upstream is unreachable"
                }));
            }
        };
        let status = upstream.status().as_u16();
        // Only what a proxy's forward auth understands goes back; nginx
        // turns anything else into a 500.
        let relayed = match status {
            200..=299 => StatusCode::OK,
            301 | 302 | 303 | 307 | 308 | 401 | 403 => {
                StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED)
            }
            _ => {
                log::warn!("session upstream {} answered {status}", self.url);
                return Err(ApiError::SessionUpstream(
                    "the session verification upstream answered with an error",
                ));
            }
        };
        let mut response = HttpResponseBuilder::new(relayed);
        for (name, value) in upstream.headers() {
            let name_str = name.as_str();
            let relay = matches!(
                name_str,
                "location" | "set-cookie" | "x-auth-reason" | "www-authenticate" | "content-type"
            ) || name_str.starts_with("remote-");
            if relay {
                response.append_header((name_str, value.as_bytes()));
            }
        }
        // Read no further than what would be relayed.
        let mut upstream = upstream;
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = upstream.chunk().await {
            if body.len() + chunk.len() > MAX_RELAYED_BODY {
                return Ok(response.finish());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(response.body(body))
    }
}
