//! The identity headers a grant sends the backend (`Remote-User` and
//! kin): one enum names them, for the rules that rename or drop them
//! (`crate::resources`), their compiled names (`crate::rules`), and the
//! answer (`crate::verifier::identity_headers`).

use std::collections::HashMap;

use actix_web::http::header::HeaderName;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityHeader {
    User,
    Name,
    Groups,
    ClientId,
    AuthMethod,
    Scope,
}

impl IdentityHeader {
    pub const ALL: [IdentityHeader; 6] = [
        IdentityHeader::User,
        IdentityHeader::Name,
        IdentityHeader::Groups,
        IdentityHeader::ClientId,
        IdentityHeader::AuthMethod,
        IdentityHeader::Scope,
    ];

    /// The default name as documented, and as a rule's `headers` names it.
    pub const fn title(self) -> &'static str {
        match self {
            IdentityHeader::User => "Remote-User",
            IdentityHeader::Name => "Remote-Name",
            IdentityHeader::Groups => "Remote-Groups",
            IdentityHeader::ClientId => "Remote-Client-Id",
            IdentityHeader::AuthMethod => "Remote-Auth-Method",
            IdentityHeader::Scope => "Remote-Scope",
        }
    }

    const fn default_name(self) -> HeaderName {
        HeaderName::from_static(match self {
            IdentityHeader::User => "remote-user",
            IdentityHeader::Name => "remote-name",
            IdentityHeader::Groups => "remote-groups",
            IdentityHeader::ClientId => "remote-client-id",
            IdentityHeader::AuthMethod => "remote-auth-method",
            IdentityHeader::Scope => "remote-scope",
        })
    }

    /// The header a default name stands for, in any case.
    pub fn parse(title: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|header| header.title().eq_ignore_ascii_case(title))
    }

    /// Every default name, for a message that lists them.
    pub fn titles() -> String {
        Self::ALL.map(IdentityHeader::title).join(", ")
    }
}

/// The names one rule sends the identity headers under; `None` where the
/// rule drops one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityNames([Option<HeaderName>; 6]);

/// Every header under its default name: rules without `headers`.
pub static DEFAULT_NAMES: IdentityNames = IdentityNames([
    Some(IdentityHeader::User.default_name()),
    Some(IdentityHeader::Name.default_name()),
    Some(IdentityHeader::Groups.default_name()),
    Some(IdentityHeader::ClientId.default_name()),
    Some(IdentityHeader::AuthMethod.default_name()),
    Some(IdentityHeader::Scope.default_name()),
]);

impl IdentityNames {
    /// Compiled from a rule's `headers` as stored (default name → new
    /// name, `""` to drop it); the headers it does not name keep theirs.
    pub fn of(renames: &HashMap<String, String>) -> Self {
        if renames.is_empty() {
            return DEFAULT_NAMES.clone();
        }
        IdentityNames(IdentityHeader::ALL.map(|header| {
            let name = match renames.get(header.title()) {
                Some(name) if name.is_empty() => return None,
                Some(name) => name.as_str(),
                None => header.title(),
            };
            HeaderName::from_bytes(name.as_bytes()).ok()
        }))
    }

    pub fn get(&self, header: IdentityHeader) -> Option<&HeaderName> {
        self.0[header as usize].as_ref()
    }

    /// The names other than the defaults, lowercase with `_` as `-`: a
    /// client may not send them (see `target::forwarded`).
    pub fn renamed(&self) -> impl Iterator<Item = String> + '_ {
        IdentityHeader::ALL
            .into_iter()
            .zip(&self.0)
            .filter_map(|(header, name)| name.as_ref().filter(|n| **n != header.default_name()))
            .map(|name| name.as_str().replace('_', "-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_renames_drops_and_keeps_headers() {
        let renames = HashMap::from([
            ("Remote-User".to_string(), "X-User".to_string()),
            ("Remote-Groups".to_string(), String::new()),
        ]);
        let names = IdentityNames::of(&renames);
        assert_eq!(names.get(IdentityHeader::User).unwrap(), "x-user");
        assert_eq!(names.get(IdentityHeader::Groups), None);
        assert_eq!(names.get(IdentityHeader::Scope).unwrap(), "remote-scope");
        assert_eq!(names.renamed().collect::<Vec<_>>(), ["x-user"]);
        assert_eq!(IdentityNames::of(&HashMap::new()), DEFAULT_NAMES);
        assert_eq!(DEFAULT_NAMES.renamed().count(), 0);
    }

    #[test]
    fn titles_parse_in_any_case_and_name_their_defaults() {
        for header in IdentityHeader::ALL {
            assert_eq!(
                IdentityHeader::parse(&header.title().to_uppercase()),
                Some(header)
            );
            assert_eq!(
                header.default_name().as_str(),
                header.title().to_lowercase()
            );
        }
        assert_eq!(IdentityHeader::parse("Remote-Email"), None);
    }
}
