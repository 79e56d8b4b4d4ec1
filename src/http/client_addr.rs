//! Who is asking: the peer, or, behind a trusted proxy, the right-most
//! `X-Forwarded-For` address that is not itself a trusted proxy. Behind
//! Caddy every request comes from Caddy, so counting failures by peer
//! would lock every client out at once.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header;
use ipnet::IpNet;

pub fn is_trusted(addr: IpAddr, trusted: &[IpNet]) -> bool {
    let addr = canonical(addr);
    trusted.iter().any(|net| net.contains(&addr))
}

/// Whether the request came straight from a trusted proxy (so that its
/// forwarded headers may count).
pub fn trusted_peer(req: &HttpRequest, trusted: &[IpNet]) -> bool {
    req.peer_addr()
        .is_some_and(|peer| is_trusted(peer.ip(), trusted))
}

pub fn client_addr(req: &HttpRequest, trusted: &[IpNet]) -> IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| canonical(a.ip()))
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if !is_trusted(peer, trusted) {
        return peer;
    }
    // Usually one header; several are read as one list, in order.
    let headers: Vec<&str> = req
        .headers()
        .get_all(header::X_FORWARDED_FOR)
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
        .collect();
    let hops = headers
        .iter()
        .rev()
        .flat_map(|v| v.rsplit(','))
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let mut client = peer;
    for hop in hops {
        match hop.parse::<IpAddr>() {
            Ok(addr) => {
                client = canonical(addr);
                if !is_trusted(client, trusted) {
                    break;
                }
            }
            // A hop we cannot read ends the chain we can believe.
            Err(_) => break,
        }
    }
    client
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn loopback() -> Vec<IpNet> {
        vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let req = TestRequest::default()
            .peer_addr("192.0.2.1:4000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "198.51.100.7"))
            .to_http_request();
        assert_eq!(
            client_addr(&req, &loopback()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn trusted_peer_yields_rightmost_untrusted_hop() {
        let req = TestRequest::default()
            .peer_addr("127.0.0.1:4000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "203.0.113.9, 198.51.100.7, 127.0.0.2"))
            .to_http_request();
        assert_eq!(
            client_addr(&req, &loopback()),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn trusted_peer_without_header_is_the_client() {
        let req = TestRequest::default()
            .peer_addr("127.0.0.1:4000".parse().unwrap())
            .to_http_request();
        assert_eq!(
            client_addr(&req, &loopback()),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
