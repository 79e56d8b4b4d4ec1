//! Layered configuration: embedded defaults → TOML file → `GATEHOUSE_*`
//! environment → command-line flags. Unknown keys are refused by name.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer, Serialize};

use crate::parsed::{BaseUrl, HttpUrl};
use crate::target::HeaderFamily;

/// Loopback only: by default no forwarded header is believed from elsewhere.
fn loopback() -> Vec<IpNet> {
    vec![
        IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
        IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
    ]
}

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "gatehouse.toml";
const ENV_PREFIX: &str = "GATEHOUSE_";
/// Shortest admin or replica token accepted: an empty or guessable one
/// would open the admin API or the whole state (secret digests included).
pub const MIN_TOKEN_LEN: usize = 32;
/// Longest window over which failed authentications are counted: a day.
const MAX_FAILURE_WINDOW: u64 = 86_400;
/// Longest JWKS cache lifetime: a rotation waits this long before signing.
const MAX_JWKS_MAX_AGE: u64 = 86_400;
/// Longest console session: a week.
const MAX_CONSOLE_SESSION: u64 = 7 * 86_400;
/// Where `gatehouse token` looks for the client secret without a file.
pub const CLIENT_SECRET_ENV: &str = "GATEHOUSE_CLIENT_SECRET";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Owns the store and the admin API.
    Primary,
    /// Serves the data plane from state synced from a primary.
    Replica,
}

/// A configured secret: deserialised like a string, never printed.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Public base URL of this service: the `iss` of every token. Defaults
    /// to `http://<listen>`.
    pub issuer: Option<HttpUrl>,
    /// Directory of the sled store (primary only).
    pub data_dir: PathBuf,
    /// Directory of the signing keys.
    pub keys_dir: PathBuf,
    pub role: Role,
    /// Admin API bearer token. When unset, one is generated on first start
    /// and written once to `<data_dir>/admin-token`.
    pub admin_token: Option<Secret>,
    /// A file holding the admin token (a mounted secret); one final newline
    /// is dropped. Not together with `admin_token`.
    pub admin_token_file: Option<PathBuf>,
    /// Base URL of the primary (replicas only).
    pub primary_url: Option<HttpUrl>,
    /// Shared secret between primary and replicas.
    pub replica_token: Option<Secret>,
    /// A file holding the replica token, as `admin_token_file`.
    pub replica_token_file: Option<PathBuf>,
    /// Seconds after which a replica that has not heard from its primary reports not ready.
    pub max_staleness: u64,
    /// Replicas: the largest state answer read from the primary, in bytes.
    pub max_state_bytes: usize,
    /// Peers whose `X-Forwarded-*` headers are believed, as CIDRs.
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<IpNet>,
    /// Which header family names the original request: `auto` (either;
    /// both must agree where they overlap), `x-forwarded` or `x-original`.
    pub forwarded_headers: HeaderFamily,
    /// Session fallback: delegate bearer-less verify requests to this URL.
    pub upstream_verify_url: Option<HttpUrl>,
    /// Session fallback: redirect browsers here when no upstream is configured.
    pub login_url: Option<HttpUrl>,
    /// Failed authentications (per client and per address) before 429.
    pub auth_failure_limit: u32,
    /// Seconds over which failed authentications are counted.
    pub auth_failure_window: u64,
    /// RFC 7009 revocations one client may make per minute (then 429).
    pub revocations_per_minute: u32,
    /// Seconds outside verifiers may cache the JWKS (its `max-age`). A
    /// rotation publishes a new key this long (after every replica has it)
    /// before it signs. Replicas serve their primary's value.
    pub jwks_max_age: u64,
    /// Primary: how many changes the replication log keeps; a replica
    /// further behind takes a snapshot.
    pub change_log_keep: u64,
    /// HTTP worker threads; defaults to the number of cores.
    pub workers: Option<usize>,
    /// Seconds a console session lasts without a request.
    pub console_idle_timeout: u64,
    /// Seconds a console session lasts at most, however busy.
    pub console_session_lifetime: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: None,
            data_dir: PathBuf::from("./data"),
            keys_dir: PathBuf::from("./keys"),
            role: Role::Primary,
            admin_token: None,
            admin_token_file: None,
            primary_url: None,
            replica_token: None,
            replica_token_file: None,
            max_staleness: 30,
            max_state_bytes: 256 * 1024 * 1024,
            trusted_proxies: loopback(),
            forwarded_headers: HeaderFamily::Auto,
            upstream_verify_url: None,
            login_url: None,
            auth_failure_limit: 10,
            auth_failure_window: 60,
            revocations_per_minute: 60,
            jwks_max_age: 300,
            change_log_keep: crate::replication::log::LOG_KEEP,
            workers: None,
            console_idle_timeout: 30 * 60,
            console_session_lifetime: 12 * 3600,
        }
    }
}

impl Settings {
    /// The issuer URL without a trailing slash.
    pub fn issuer(&self) -> String {
        match &self.issuer {
            Some(url) => url.base().to_string(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The primary's URL as a base for its paths (replicas).
    pub fn primary_base(&self) -> Option<BaseUrl> {
        self.primary_url.as_ref().map(HttpUrl::base)
    }

    /// What the layers cannot say alone: tokens long enough, what a
    /// replica needs, numbers within their bounds (checked in that order,
    /// the first at fault named). URLs were checked as they were read.
    fn validate(&self) -> Result<(), ConfigError> {
        self.check_tokens()?;
        self.check_role()?;
        self.check_bounds()
    }

    fn check_tokens(&self) -> Result<(), ConfigError> {
        for (key, token) in [
            ("admin_token", &self.admin_token),
            ("replica_token", &self.replica_token),
        ] {
            if let Some(token) = token
                && token.expose().len() < MIN_TOKEN_LEN
            {
                return Err(invalid(
                    key,
                    format!(
                        "must be at least {MIN_TOKEN_LEN} bytes (it is {}); \
                         e.g. `openssl rand -base64 32`",
                        token.expose().len()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_role(&self) -> Result<(), ConfigError> {
        if self.role == Role::Replica && self.primary_url.is_none() {
            return Err(invalid("primary_url", "a replica needs --primary-url"));
        }
        if self.role == Role::Replica && self.replica_token.is_none() {
            return Err(invalid(
                "replica_token",
                "a replica needs the primary's replica token (GATEHOUSE_REPLICA_TOKEN)",
            ));
        }
        Ok(())
    }

    fn check_bounds(&self) -> Result<(), ConfigError> {
        if self.auth_failure_limit == 0 {
            return Err(invalid("auth_failure_limit", "must be at least 1"));
        }
        if !(1..=MAX_FAILURE_WINDOW).contains(&self.auth_failure_window) {
            return Err(invalid(
                "auth_failure_window",
                format!("must be 1 to {MAX_FAILURE_WINDOW} seconds"),
            ));
        }
        if self.change_log_keep < 1 {
            return Err(invalid("change_log_keep", "must be at least 1"));
        }
        if !(60..=MAX_CONSOLE_SESSION).contains(&self.console_session_lifetime) {
            return Err(invalid(
                "console_session_lifetime",
                format!("must be 60 to {MAX_CONSOLE_SESSION} seconds"),
            ));
        }
        if !(60..=self.console_session_lifetime).contains(&self.console_idle_timeout) {
            return Err(invalid(
                "console_idle_timeout",
                "must be 60 seconds to console_session_lifetime",
            ));
        }
        if self.jwks_max_age > MAX_JWKS_MAX_AGE {
            return Err(invalid(
                "jwks_max_age",
                format!("must be 0 to {MAX_JWKS_MAX_AGE} seconds"),
            ));
        }
        Ok(())
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Flags given on the command line; `None` leaves the lower layers alone.
#[derive(Debug, Default, Clone, Serialize, clap::Args)]
pub struct Overrides {
    /// Address to listen on, e.g. 0.0.0.0:8080
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Directory of the sled store
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Directory of the signing keys
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_dir: Option<PathBuf>,
    /// Public base URL (the `iss` of issued tokens)
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// primary or replica
    #[arg(long, value_enum, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Base URL of the primary (replicas)
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("configuration error: {0}")]
    Layer(#[from] Box<figment::Error>),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Reads the layers in order. `config_file` is the `--config` flag; without
/// it `gatehouse.toml` in the working directory is read if present.
pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> Result<Settings, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    match config_file {
        Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.to_path_buf())),
        Some(path) => figment = figment.merge(Toml::file_exact(path)),
        None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
            figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE))
        }
        None => {}
    }
    let figment = figment
        // GATEHOUSE_CONFIG names the file itself, GATEHOUSE_CLIENT_SECRET is
        // `gatehouse token`'s: neither is a server setting.
        .merge(
            Env::prefixed(ENV_PREFIX)
                .ignore(&["config", "client_secret"])
                .filter(|key| !is_service_link(key.as_str())),
        )
        .merge(Serialized::defaults(overrides));
    check_urls(&figment)?;
    let mut settings: Settings = figment.extract().map_err(Box::new)?;
    settings.admin_token = secret_from_file(
        "admin_token",
        settings.admin_token.take(),
        settings.admin_token_file.as_deref(),
    )?;
    settings.replica_token = secret_from_file(
        "replica_token",
        settings.replica_token.take(),
        settings.replica_token_file.as_deref(),
    )?;
    settings.validate()?;
    Ok(settings)
}

/// The URL settings are `HttpUrl`s, which refuse anything else when read;
/// looked at first, so that a wrong one is named by its key as the other
/// settings are (rather than in the layer's own words).
fn check_urls(figment: &Figment) -> Result<(), ConfigError> {
    for key in ["issuer", "primary_url", "upstream_verify_url", "login_url"] {
        if let Ok(value) = figment.find_value(key)
            && let Some(text) = value.as_str()
        {
            HttpUrl::parse(text).map_err(|e| ConfigError::Invalid {
                key,
                message: e.to_string(),
            })?;
        }
    }
    Ok(())
}

/// A secret given directly, or read from `<key>_file` without its final
/// newline (as `echo` and most secret stores leave one).
fn secret_from_file(
    key: &'static str,
    direct: Option<Secret>,
    file: Option<&Path>,
) -> Result<Option<Secret>, ConfigError> {
    match (direct, file) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid {
            key,
            message: format!("give {key} or {key}_file, not both"),
        }),
        (direct, None) => Ok(direct),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
                key,
                message: format!("{key}_file {}: {e}", path.display()),
            })?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            Ok(Some(Secret::new(text)))
        }
    }
}

/// Kubernetes injects `<SERVICE>_SERVICE_HOST`, `<SERVICE>_SERVICE_PORT…`,
/// `<SERVICE>_PORT=tcp://…` and `<SERVICE>_PORT_<n>_<PROTO>…` for every
/// Service in the namespace; for Services named `gatehouse…` they begin
/// with `GATEHOUSE_`. They are not settings and must not stop a node (no
/// setting is named like them), while any other unknown variable does.
/// `key` is the variable's name after the prefix.
fn is_service_link(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let segments: Vec<&str> = key.split('_').collect();
    let service_var = segments
        .windows(2)
        .any(|w| w[0] == "service" && (w[1] == "host" || w[1] == "port"));
    let port_mapping = segments.windows(3).any(|w| {
        w[0] == "port"
            && !w[1].is_empty()
            && w[1].bytes().all(|b| b.is_ascii_digit())
            && matches!(w[2], "tcp" | "udp" | "sctp")
    });
    let link_url = segments.last() == Some(&"port")
        && std::env::var(format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())).is_ok_and(|v| {
            ["tcp://", "udp://", "sctp://"]
                .iter()
                .any(|scheme| v.starts_with(scheme))
        });
    service_var || port_mapping || link_url
}

/// CIDRs as a list, or as one comma/space separated string (handy in env vars).
/// A bare address means just that address.
fn cidr_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<String>),
        Joined(String),
    }
    let items = match Form::deserialize(d)? {
        Form::List(items) => items,
        Form::Joined(text) => text
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    };
    items.iter().map(|item| parse_cidr(item)).collect()
}

fn parse_cidr<E: serde::de::Error>(text: &str) -> Result<IpNet, E> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| E::custom(format!("{text:?} is not a CIDR or IP address")))
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    fn refused_key(settings: &Settings) -> Option<&'static str> {
        match settings.validate() {
            Err(ConfigError::Invalid { key, .. }) => Some(key),
            _ => None,
        }
    }

    /// A URL setting that is not an http(s) URL is named by its key, with
    /// the text given; one that is keeps its form, and the issuer drops its
    /// trailing slash.
    #[test]
    fn url_settings_are_http_urls() {
        let layer = |toml: &str| {
            Figment::from(Serialized::defaults(Settings::default())).merge(Toml::string(toml))
        };
        for key in ["issuer", "primary_url", "upstream_verify_url", "login_url"] {
            let figment = layer(&format!("{key} = \"ftp://example.com\""));
            match check_urls(&figment) {
                Err(e @ ConfigError::Invalid { key: at, .. }) => {
                    assert_eq!(at, key);
                    assert_eq!(
                        e.to_string(),
                        format!(
                            "configuration key `{key}`: must be an http:// or https:// URL, \
                             got \"ftp://example.com\""
                        )
                    );
                }
                other => panic!("{key}: {other:?}"),
            }
        }
        let figment = layer(
            "issuer = \"https://auth.example.com/\"\nlogin_url = \"https://login.example.com/\"",
        );
        check_urls(&figment).unwrap();
        let settings: Settings = figment.extract().unwrap();
        assert_eq!(settings.issuer(), "https://auth.example.com");
        assert_eq!(
            settings.login_url.as_deref(),
            Some("https://login.example.com/")
        );
    }

    /// The rotation wait and the log length have bounds; out of them the
    /// node does not start, and says which key is at fault.
    #[test]
    fn rotation_and_log_settings_are_bounded() {
        let mut settings = Settings::default();
        assert_eq!(refused_key(&settings), None);
        settings.jwks_max_age = 86_400;
        assert_eq!(refused_key(&settings), None);
        settings.jwks_max_age = 86_401;
        assert_eq!(refused_key(&settings), Some("jwks_max_age"));
        settings.jwks_max_age = 0;
        assert_eq!(refused_key(&settings), None, "0: no outside cache waits");
        settings.change_log_keep = 0;
        assert_eq!(refused_key(&settings), Some("change_log_keep"));
    }

    /// A console session ends when idle and at its lifetime; an idle
    /// timeout past the lifetime would mean nothing.
    #[test]
    fn console_session_settings_are_bounded() {
        let mut settings = Settings::default();
        assert_eq!(
            (
                settings.console_idle_timeout,
                settings.console_session_lifetime
            ),
            (1800, 43_200)
        );
        settings.console_idle_timeout = 43_201;
        assert_eq!(refused_key(&settings), Some("console_idle_timeout"));
        settings.console_idle_timeout = 59;
        assert_eq!(refused_key(&settings), Some("console_idle_timeout"));
        settings.console_idle_timeout = 600;
        settings.console_session_lifetime = 8 * 86_400;
        assert_eq!(refused_key(&settings), Some("console_session_lifetime"));
        settings.console_session_lifetime = 600;
        assert_eq!(refused_key(&settings), None);
    }
}
