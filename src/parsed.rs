//! Strings checked once, where they come in, and then carried as types
//! that cannot hold anything else: what the newtypes share
//! (`checked_str!`; `applications::ClientId`, `resources::ResourceId`,
//! `resources::HostPattern`), and the http(s) URLs of the configuration
//! and the command line (`HttpUrl`, `BaseUrl`).

/// The impls every checked string shares, for a `struct $name(Box<str>)`
/// with `fn parse(&str) -> Result<Self, $error>`: read as the string it
/// holds (`Deref`, `AsRef`, `Borrow`, `Display`, and `Debug` quoting it as
/// `str` does, so messages that quote an id read as before), serialised as
/// that string and deserialised through `parse`.
macro_rules! checked_str {
    ($name:ident, $error:ty) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $error;

            fn try_from(text: String) -> Result<Self, $error> {
                Self::parse(&text)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                *self.0 == *other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                *self.0 == **other
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0.into()
            }
        }
    };
}

pub(crate) use checked_str;

/// An `http://` or `https://` URL, kept as it was written: a `url::Url`
/// (reqwest's re-export, so no other dependency)
/// must parse it (so it names a host), and its scheme must be written in
/// lowercase as one of the two, as the configuration has always required.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl(Box<str>);

/// A URL that is not an http(s) one, with the text given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an http:// or https:// URL, got {0:?}")]
pub struct NotHttpUrl(pub String);

impl HttpUrl {
    pub fn parse(text: &str) -> Result<Self, NotHttpUrl> {
        let written_as_http = text.starts_with("http://") || text.starts_with("https://");
        if written_as_http && reqwest::Url::parse(text).is_ok_and(|url| url.has_host()) {
            Ok(Self(text.into()))
        } else {
            Err(NotHttpUrl(text.to_string()))
        }
    }

    /// This URL as a base that paths are appended to.
    pub fn base(&self) -> BaseUrl {
        BaseUrl(self.0.trim_end_matches('/').into())
    }
}

checked_str!(HttpUrl, NotHttpUrl);

/// An http(s) URL without trailing slashes, so that `{base}{path}` (see
/// `join`) names `path` below it: the issuer, the primary, the admin API
/// the command line talks to.
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl(Box<str>);

impl BaseUrl {
    pub fn parse(text: &str) -> Result<Self, NotHttpUrl> {
        HttpUrl::parse(text).map(|url| url.base())
    }

    /// `path` (which starts with `/`) below this base.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// Whether `url` names this base, trailing slashes aside.
    pub fn names(&self, url: &str) -> bool {
        *self.0 == *url.trim_end_matches('/')
    }
}

checked_str!(BaseUrl, NotHttpUrl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_are_kept_as_written_and_bases_lose_their_slashes() {
        let url = HttpUrl::parse("https://auth.example.com/").unwrap();
        assert_eq!(url.as_str(), "https://auth.example.com/");
        assert_eq!(url.base().as_str(), "https://auth.example.com");
        let base = BaseUrl::parse("http://127.0.0.1:8080/prefix//").unwrap();
        assert_eq!(
            base.join("/admin/v1"),
            "http://127.0.0.1:8080/prefix/admin/v1"
        );
        assert!(base.names("http://127.0.0.1:8080/prefix/"));
        assert!(!base.names("http://127.0.0.1:8080"));
        for bad in [
            "ftp://x",
            "HTTP://x",
            "http://",
            "http://a b",
            "example.com",
            " http://x",
            "",
        ] {
            let err = HttpUrl::parse(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("must be an http:// or https:// URL, got {bad:?}")
            );
        }
        let read: HttpUrl = serde_json::from_str(r#""https://login.example.com/""#).unwrap();
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            r#""https://login.example.com/""#
        );
        assert!(serde_json::from_str::<BaseUrl>(r#""ftp://x""#).is_err());
    }
}
