//! `gatehouse admin`: the admin API from the command line. Each command is
//! one request; the answer is printed as JSON, and an error answer exits
//! non-zero with the server's reason.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Applications (OAuth clients)
    #[command(subcommand)]
    Applications(ApplicationsCommand),
    /// Forward-auth rules
    #[command(subcommand)]
    Resources(ResourcesCommand),
    /// API keys
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeysCommand),
    /// Rotate the signing key
    RotateKeys,
    /// What /api/verify would answer for a request, and why (a dry run:
    /// no lockout, last use, metric or audit entry). Without a credential,
    /// a request without one.
    Explain(ExplainArgs),
    /// The audit log, newest first
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        before: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("credential").multiple(false))]
pub struct ExplainArgs {
    /// The request's method, e.g. GET or PROPFIND
    #[arg(long)]
    pub method: String,
    /// The host the client asks for, e.g. dav.example.com
    #[arg(long)]
    pub host: String,
    /// The path (and query) the client asks for, e.g. /photos/
    #[arg(long)]
    pub path: String,
    /// File holding the access token or API key (or its basic_password
    /// short form); - reads standard input
    #[arg(long, group = "credential", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// A fresh token of this application, as the token endpoint would issue it now
    #[arg(long, group = "credential")]
    pub client_id: Option<String>,
    /// The client's address, for API keys limited to networks
    #[arg(long, value_name = "ADDRESS")]
    pub source: Option<String>,
}

impl ExplainArgs {
    fn body(self) -> Result<Value, String> {
        // From a file or standard input only, as every secret this CLI
        // takes: an argument is visible to other users in the process list.
        let token = match &self.token_file {
            Some(path) if path.as_os_str() == "-" => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .map_err(|e| format!("standard input: {e}"))?;
                Some(text.trim().to_string())
            }
            Some(path) => Some(read_token(path)?),
            None => None,
        };
        let mut body = json!({ "method": self.method, "host": self.host, "path": self.path });
        for (field, value) in [
            ("token", token),
            ("client_id", self.client_id),
            ("source", self.source),
        ] {
            if let Some(value) = value {
                body[field] = value.into();
            }
        }
        Ok(body)
    }
}

#[derive(Debug, Subcommand)]
pub enum ApplicationsCommand {
    List,
    Get {
        client_id: String,
    },
    /// Create from a JSON document, e.g. '{"client_id":"canister","groups":["media"]}'
    Create {
        json: String,
    },
    /// Change fields given as a JSON document
    Update {
        client_id: String,
        json: String,
    },
    Delete {
        client_id: String,
    },
    /// Issue a new secret; the old one keeps working for --grace seconds
    RotateSecret {
        client_id: String,
        #[arg(long, default_value_t = 0)]
        grace: u32,
    },
    /// Invalidate every token and API key issued so far
    RevokeTokens {
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ResourcesCommand {
    List,
    Get {
        id: String,
    },
    /// Create from a JSON document, e.g. '{"host":"dav.example.com","allowed_groups":["media"]}'
    Create {
        json: String,
    },
    Update {
        id: String,
        json: String,
    },
    Delete {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// An application's keys, or (without CLIENT_ID) every application's
    List {
        client_id: Option<String>,
        /// Only keys that expire within this long, e.g. 7d
        #[arg(long, value_name = "DURATION")]
        expiring: Option<String>,
        /// Only keys not used within this long (or never), e.g. 90d
        #[arg(long, value_name = "DURATION")]
        unused_for: Option<String>,
    },
    Mint {
        client_id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        expires_in: Option<u64>,
        /// Limit the key to this host (exact or *.domain); repeatable
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Limit the key to paths under this prefix; repeatable
        #[arg(long = "path-prefix")]
        path_prefixes: Vec<String>,
        /// Limit the key to this method; repeatable
        #[arg(long = "method")]
        methods: Vec<String>,
        /// Limit the key to clients in this network (CIDR); repeatable
        #[arg(long = "source-cidr")]
        source_cidrs: Vec<String>,
    },
    /// Rename a key or change its scopes, given as a JSON document,
    /// e.g. '{"methods":["GET","PROPFIND"]}' ('null' lifts a limit)
    Update {
        id: String,
        json: String,
    },
    Revoke {
        id: String,
    },
}

/// A request: method, path under /admin/v1, body.
type Request = (reqwest::Method, String, Option<Value>);

fn parse(json: &str) -> Result<Value, String> {
    serde_json::from_str(json).map_err(|e| format!("not a JSON document: {e}"))
}

fn request(command: AdminCommand) -> Result<Request, String> {
    use reqwest::Method;
    Ok(match command {
        AdminCommand::Applications(c) => c.request()?,
        AdminCommand::Resources(c) => c.request()?,
        AdminCommand::ApiKeys(c) => c.request()?,
        AdminCommand::RotateKeys => (Method::POST, "/keys/rotate".into(), None),
        AdminCommand::Explain(args) => (Method::POST, "/explain".into(), Some(args.body()?)),
        AdminCommand::Audit { limit, before } => {
            let before = before
                .map(|b| format!("&before={}", utf8_percent_encode(&b, NON_ALPHANUMERIC)))
                .unwrap_or_default();
            (Method::GET, format!("/audit?limit={limit}{before}"), None)
        }
    })
}

impl ApplicationsCommand {
    fn request(self) -> Result<Request, String> {
        use reqwest::Method;
        Ok(match self {
            Self::List => (Method::GET, "/applications".into(), None),
            Self::Get { client_id } => (
                Method::GET,
                format!("/applications/{}", segment(&client_id)?),
                None,
            ),
            Self::Create { json } => (Method::POST, "/applications".into(), Some(parse(&json)?)),
            Self::Update { client_id, json } => (
                Method::PATCH,
                format!("/applications/{}", segment(&client_id)?),
                Some(parse(&json)?),
            ),
            Self::Delete { client_id } => (
                Method::DELETE,
                format!("/applications/{}", segment(&client_id)?),
                None,
            ),
            Self::RotateSecret { client_id, grace } => (
                Method::POST,
                format!("/applications/{}/secret", segment(&client_id)?),
                Some(json!({ "grace_period": grace })),
            ),
            Self::RevokeTokens { client_id } => (
                Method::POST,
                format!("/applications/{}/revoke-tokens", segment(&client_id)?),
                None,
            ),
        })
    }
}

impl ResourcesCommand {
    fn request(self) -> Result<Request, String> {
        use reqwest::Method;
        Ok(match self {
            Self::List => (Method::GET, "/resources".into(), None),
            Self::Get { id } => (Method::GET, format!("/resources/{}", segment(&id)?), None),
            Self::Create { json } => (Method::POST, "/resources".into(), Some(parse(&json)?)),
            Self::Update { id, json } => (
                Method::PATCH,
                format!("/resources/{}", segment(&id)?),
                Some(parse(&json)?),
            ),
            Self::Delete { id } => (
                Method::DELETE,
                format!("/resources/{}", segment(&id)?),
                None,
            ),
        })
    }
}

impl ApiKeysCommand {
    fn request(self) -> Result<Request, String> {
        use reqwest::Method;
        Ok(match self {
            Self::List {
                client_id,
                expiring,
                unused_for,
            } => (
                Method::GET,
                key_list_path(client_id, expiring, unused_for)?,
                None,
            ),
            Self::Mint {
                client_id,
                name,
                expires_in,
                hosts,
                path_prefixes,
                methods,
                source_cidrs,
            } => {
                let mut body = json!({ "name": name, "expires_in": expires_in });
                for (field, values) in [
                    ("hosts", hosts),
                    ("path_prefixes", path_prefixes),
                    ("methods", methods),
                    ("source_cidrs", source_cidrs),
                ] {
                    if !values.is_empty() {
                        body[field] = json!(values);
                    }
                }
                (
                    Method::POST,
                    format!("/applications/{}/api-keys", segment(&client_id)?),
                    Some(body),
                )
            }
            Self::Update { id, json } => (
                Method::PATCH,
                format!("/api-keys/{}", segment(&id)?),
                Some(parse(&json)?),
            ),
            Self::Revoke { id } => (Method::DELETE, format!("/api-keys/{}", segment(&id)?), None),
        })
    }
}

/// An application's keys (or every application's), with the filters
/// given as query parameters.
fn key_list_path(
    client_id: Option<String>,
    expiring: Option<String>,
    unused_for: Option<String>,
) -> Result<String, String> {
    let base = match client_id {
        Some(client_id) => format!("/applications/{}/api-keys", segment(&client_id)?),
        None => "/api-keys".to_string(),
    };
    let filters: Vec<String> = [("expires_within", expiring), ("unused_for", unused_for)]
        .into_iter()
        .filter_map(|(name, value)| {
            value.map(|v| format!("{name}={}", utf8_percent_encode(&v, NON_ALPHANUMERIC)))
        })
        .collect();
    Ok(match filters.is_empty() {
        true => base,
        false => format!("{base}?{}", filters.join("&")),
    })
}

/// An id as one path segment: escaped, so that `../applications/prod` or
/// `a?b` names that id and nothing else. `.` and `..` are refused, since
/// URL parsers resolve them (even escaped) before the request is sent.
fn segment(id: &str) -> Result<String, String> {
    if id.is_empty() || id.trim_matches('.').is_empty() {
        return Err(format!("{id:?} is not an id"));
    }
    Ok(utf8_percent_encode(id, UNRESERVED_KEPT).to_string())
}

/// Everything but RFC 3986's unreserved characters is escaped.
const UNRESERVED_KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Sends the command to `base_url` with `token`; returns what to print.
pub async fn run(base_url: &str, token: &str, command: AdminCommand) -> Result<String, String> {
    let (method, path, body) = request(command)?;
    let client = crate::crypto::http_client(|builder| builder.timeout(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let url = crate::parsed::BaseUrl::parse(base_url)
        .map_err(|e| format!("--url {e}"))?
        .join(&format!("/admin/v1{path}"));
    let mut request = client.request(method, &url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    if !status.is_success() {
        let reason = parsed
            .as_ref()
            .and_then(|v| v["error_description"].as_str())
            .unwrap_or(&text);
        return Err(format!("{status}: {reason}"));
    }
    Ok(match parsed {
        Some(value) => serde_json::to_string_pretty(&value).unwrap_or(text),
        None => text,
    })
}

/// The admin token: the file, else the environment, else the node's own
/// generated `data/admin-token`.
pub fn admin_token(file: Option<&PathBuf>, data_dir: &std::path::Path) -> Result<String, String> {
    if let Some(path) = file {
        return read_token(path);
    }
    if let Ok(token) = std::env::var("GATEHOUSE_ADMIN_TOKEN") {
        return Ok(token);
    }
    read_token(&data_dir.join(crate::startup::ADMIN_TOKEN_FILE))
        .map_err(|e| format!("{e} (give --admin-token-file or set GATEHOUSE_ADMIN_TOKEN)"))
}

fn read_token(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_listings_take_their_filters() {
        let list = |client_id: Option<&str>, expiring: Option<&str>, unused: Option<&str>| {
            request(AdminCommand::ApiKeys(ApiKeysCommand::List {
                client_id: client_id.map(str::to_string),
                expiring: expiring.map(str::to_string),
                unused_for: unused.map(str::to_string),
            }))
            .unwrap()
            .1
        };
        assert_eq!(list(None, Some("7d"), None), "/api-keys?expires_within=7d");
        assert_eq!(
            list(Some("canister"), Some("7d"), Some("90d")),
            "/applications/canister/api-keys?expires_within=7d&unused_for=90d"
        );
        assert_eq!(
            list(None, Some("7d&x=1"), None),
            "/api-keys?expires_within=7d%26x%3D1"
        );
        assert_eq!(
            list(Some("canister"), None, None),
            "/applications/canister/api-keys"
        );
    }

    /// `api-keys revoke ../applications/prod` must not delete an application.
    #[test]
    fn ids_stay_one_path_segment() {
        for (id, segment) in [
            ("../applications/prod", "..%2Fapplications%2Fprod"),
            ("a?b#c", "a%3Fb%23c"),
            ("plain-id_1.x~", "plain-id_1.x~"),
        ] {
            let (_, path, _) = request(AdminCommand::ApiKeys(ApiKeysCommand::Revoke {
                id: id.into(),
            }))
            .unwrap();
            assert_eq!(path, format!("/api-keys/{segment}"));
            let url = reqwest::Url::parse(&format!("http://h/admin/v1{path}")).unwrap();
            assert_eq!(url.path(), format!("/admin/v1/api-keys/{segment}"), "{id}");
        }
        for id in ["..", ".", ""] {
            let command = AdminCommand::Applications(ApplicationsCommand::Delete {
                client_id: id.into(),
            });
            assert!(request(command).is_err(), "{id:?}");
        }
    }
}
