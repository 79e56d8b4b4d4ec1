//! The request target: which method, host and path the backend will serve
//! for the request a proxy asks about, decided in one place.
//!
//! * `forwarded`: whose headers count (trusted peers), which header family
//!   (`X-Forwarded-*` or `X-Original-*`), what a client may not send.
//! * `host`: the authority as sent, and the host rules are matched on.
//! * `path`: every reading a backend may give the path.
//!
//! A target that cannot be read one way is refused (`TargetError`, a 403
//! with `X-Auth-Reason`): never a 400, which nginx turns into a 500.

pub mod forwarded;
pub mod host;
pub mod path;
#[cfg(test)]
mod properties;

use std::borrow::Cow;

pub use forwarded::{HeaderFamily, TargetError};
pub use path::Readings;

/// What the proxy asked about, as every rule check must see it.
#[derive(Debug)]
pub struct RequestTarget<'r> {
    /// The method named by the proxy, uppercase.
    pub method: Cow<'r, str>,
    /// Methods a backend may take instead (`X-HTTP-Method-Override` and
    /// kin): each must be allowed too.
    pub method_overrides: Vec<Cow<'r, str>>,
    pub proto: Cow<'r, str>,
    /// As sent, port included: for rebuilding the URL.
    pub authority: &'r str,
    /// Lowercase, without port or trailing dot: for matching rules.
    pub host: Cow<'r, str>,
    /// Path and query as sent.
    pub uri: &'r str,
    /// Every reading of the path (and of a WebDAV `Destination`).
    pub paths: Readings<'r>,
    /// The method acts on the whole tree below the path (WebDAV
    /// `Depth: infinity`): rules further down must grant it too.
    pub recursive: bool,
}

impl<'r> RequestTarget<'r> {
    /// A target named directly rather than by a proxy's headers: a dry
    /// run of a decision, a benchmark.
    pub fn named(method: &'r str, authority: &'r str, uri: &'r str) -> Result<Self, TargetError> {
        Ok(RequestTarget {
            method: forwarded::method_name(method)?,
            method_overrides: Vec::new(),
            proto: Cow::Borrowed("https"),
            authority,
            host: host::rule_host(authority).ok_or(TargetError::Host)?,
            uri,
            paths: path::readings(uri)?,
            recursive: false,
        })
    }

    /// The target a trusted proxy names in `X-Forwarded-Method`,
    /// `X-Forwarded-Host` and `X-Forwarded-Uri` with no other header (no
    /// `Depth`, `Destination` or method override), read as `/api/verify`
    /// reads them: the host a comma list whose items agree, a WebDAV
    /// method without `Depth` acting on the whole tree. For dry runs of a
    /// decision (`crate::explain`).
    pub fn as_sent(method: &'r str, authority: &'r str, uri: &'r str) -> Result<Self, TargetError> {
        let mut host = None;
        forwarded::items_agree(&mut host, authority)?;
        let uri = match forwarded::field(uri) {
            "" => "/",
            uri => uri,
        };
        let mut target = Self::named(
            forwarded::field(method),
            host.ok_or(TargetError::Host)?,
            uri,
        )?;
        target.recursive = forwarded::acts_on_a_tree(&target, None);
        Ok(target)
    }

    /// Every method a rule must allow.
    pub fn methods(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.method.as_ref())
            .chain(self.method_overrides.iter().map(|m| m.as_ref()))
    }

    /// The canonical path: for logs and the rule named in the answer.
    pub fn path(&self) -> &str {
        self.paths.canonical()
    }

    /// The URL the client asked for, for `rd=` on a login redirect.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.proto, self.authority, self.uri)
    }

    /// Method, host and path for a log line: the query left out (it may
    /// carry secrets), anything that could forge a line or a terminal
    /// sequence escaped.
    pub fn for_log(&self) -> String {
        let path = &self.uri[..self.uri.find('?').unwrap_or(self.uri.len())];
        format!(
            "{} {}{}",
            self.method.escape_debug(),
            self.host.escape_debug(),
            path.escape_debug()
        )
    }
}
