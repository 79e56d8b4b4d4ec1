//! `gatehouse healthcheck`: probes the local node's `/readyz`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The URL of the node's readiness endpoint, reached over loopback when
/// the node listens on every address.
pub fn readiness_url(listen: SocketAddr) -> String {
    let host = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/readyz", SocketAddr::new(host, listen.port()))
}

/// Whether `url` answers 200 within a few seconds.
pub async fn probe(url: &str) -> Result<(), String> {
    let client = crate::crypto::http_client(|builder| builder.timeout(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {}", response.status()))
    }
}
