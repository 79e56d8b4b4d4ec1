//! The host a request is for. Only what a DNS name or an IP literal can
//! hold is read; anything else (a comma, a space, `@`, an escape) means
//! the proxy and gatehouse may not agree on the host, and is refused.

use std::borrow::Cow;

/// The host rules are matched on: lowercase, without port or the one
/// trailing dot; `[v6]` keeps its brackets. `None` for an authority that
/// is not a plain `host[:port]`.
pub fn rule_host(authority: &str) -> Option<Cow<'_, str>> {
    if authority.is_empty() {
        // No Host at all: no rule matches it.
        return Some(Cow::Borrowed(""));
    }
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let inner = &authority[1..end];
        let ip_literal = !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ip_literal {
            return None;
        }
        let port = match &authority[end + 1..] {
            "" => "",
            after => after.strip_prefix(':')?,
        };
        (&authority[..=end], port)
    } else {
        authority.split_once(':').unwrap_or((authority, ""))
    };
    if !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5 {
        return None;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if !host.starts_with('[') {
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.len() > 253 || !name.split('.').all(label_ok) {
            return None;
        }
    }
    Some(if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port_case_and_trailing_dot() {
        let cases = [
            ("Dav.Example.com:8443", "dav.example.com"),
            ("dav.example.com.", "dav.example.com"),
            ("dav.example.com.:80", "dav.example.com"),
            ("[::1]:8080", "[::1]"),
            ("[::1]", "[::1]"),
            ("127.0.0.1:80", "127.0.0.1"),
            ("example.com", "example.com"),
            ("", ""),
        ];
        for (authority, host) in cases {
            assert_eq!(rule_host(authority).as_deref(), Some(host), "{authority}");
        }
    }

    #[test]
    fn anything_but_a_plain_authority_is_refused() {
        for authority in [
            "dav.example.com,",
            "dav.example.com, evil.example.com",
            ".example.com",
            "dav..example.com",
            "dav.example.com..",
            "user@dav.example.com",
            "dav.example.com/x",
            "dav.example.com:80:80",
            "dav.example.com:http",
            "dav.example.com:123456",
            "dav%2eexample.com",
            "dav example.com",
            "[::1",
            "[::1]x",
            "[evil]",
            "dáv.example.com",
        ] {
            assert_eq!(rule_host(authority), None, "{authority}");
        }
    }
}
