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
    /// The audit log, newest first
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        before: Option<String>,
    },
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
    List {
        client_id: String,
    },
    Mint {
        client_id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        expires_in: Option<u64>,
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
        AdminCommand::Applications(c) => match c {
            ApplicationsCommand::List => (Method::GET, "/applications".into(), None),
            ApplicationsCommand::Get { client_id } => (
                Method::GET,
                format!("/applications/{}", segment(&client_id)?),
                None,
            ),
            ApplicationsCommand::Create { json } => {
                (Method::POST, "/applications".into(), Some(parse(&json)?))
            }
            ApplicationsCommand::Update { client_id, json } => (
                Method::PATCH,
                format!("/applications/{}", segment(&client_id)?),
                Some(parse(&json)?),
            ),
            ApplicationsCommand::Delete { client_id } => (
                Method::DELETE,
                format!("/applications/{}", segment(&client_id)?),
                None,
            ),
            ApplicationsCommand::RotateSecret { client_id, grace } => (
                Method::POST,
                format!("/applications/{}/secret", segment(&client_id)?),
                Some(json!({ "grace_period": grace })),
            ),
            ApplicationsCommand::RevokeTokens { client_id } => (
                Method::POST,
                format!("/applications/{}/revoke-tokens", segment(&client_id)?),
                None,
            ),
        },
        AdminCommand::Resources(c) => match c {
            ResourcesCommand::List => (Method::GET, "/resources".into(), None),
            ResourcesCommand::Get { id } => {
                (Method::GET, format!("/resources/{}", segment(&id)?), None)
            }
            ResourcesCommand::Create { json } => {
                (Method::POST, "/resources".into(), Some(parse(&json)?))
            }
            ResourcesCommand::Update { id, json } => (
                Method::PATCH,
                format!("/resources/{}", segment(&id)?),
                Some(parse(&json)?),
            ),
            ResourcesCommand::Delete { id } => (
                Method::DELETE,
                format!("/resources/{}", segment(&id)?),
                None,
            ),
        },
        AdminCommand::ApiKeys(c) => match c {
            ApiKeysCommand::List { client_id } => (
                Method::GET,
                format!("/applications/{}/api-keys", segment(&client_id)?),
                None,
            ),
            ApiKeysCommand::Mint {
                client_id,
                name,
                expires_in,
            } => (
                Method::POST,
                format!("/applications/{}/api-keys", segment(&client_id)?),
                Some(json!({ "name": name, "expires_in": expires_in })),
            ),
            ApiKeysCommand::Revoke { id } => {
                (Method::DELETE, format!("/api-keys/{}", segment(&id)?), None)
            }
        },
        AdminCommand::RotateKeys => (Method::POST, "/keys/rotate".into(), None),
        AdminCommand::Audit { limit, before } => {
            let before = before
                .map(|b| format!("&before={}", utf8_percent_encode(&b, NON_ALPHANUMERIC)))
                .unwrap_or_default();
            (Method::GET, format!("/audit?limit={limit}{before}"), None)
        }
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
    let url = format!("{}/admin/v1{path}", base_url.trim_end_matches('/'));
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
