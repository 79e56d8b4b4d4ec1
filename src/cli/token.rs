//! `gatehouse token`: a client helper that prints a valid access token,
//! reusing a cached one until shortly before it expires. For shell
//! scripts: `curl -H "Authorization: Bearer $(gatehouse token …)" …`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::crypto::sha256;
use crate::parsed::BaseUrl;
use crate::private_files::{create_private_dir, write_private_file};

/// A cached token is replaced this long before it expires.
const RENEW_BEFORE_SECS: i64 = 60;
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TokenQuery {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub cache_dir: Option<PathBuf>,
    /// Skip the cached token (but write the new one).
    pub refresh: bool,
}

#[derive(Serialize, Deserialize)]
struct CachedToken {
    access_token: String,
    expires_at: i64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: i64,
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    token_endpoint: String,
}

/// The token to use now: the cached one while it lasts, else a new one.
pub async fn token(query: &TokenQuery) -> Result<String, String> {
    let cache = query.cache_dir.as_ref().map(|dir| cache_file(dir, query));
    let now = Utc::now().timestamp();
    if !query.refresh
        && let Some(cached) = cache.as_deref().and_then(|path| read_cache(path, query))
        && cached.expires_at - RENEW_BEFORE_SECS > now
    {
        return Ok(cached.access_token);
    }
    let answer = fetch(query).await?;
    if let Some(path) = cache {
        let cached = CachedToken {
            access_token: answer.access_token.clone(),
            expires_at: now + answer.expires_in,
        };
        // A cache that cannot be written costs a token request next time, no more.
        if let Err(e) = write_cache(&path, &cached) {
            eprintln!(
                "gatehouse: cannot cache the token in {}: {e}",
                path.display()
            );
        }
    }
    Ok(answer.access_token)
}

async fn fetch(query: &TokenQuery) -> Result<TokenAnswer, String> {
    let client = crate::crypto::http_client(|builder| builder.timeout(HTTP_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let issuer = BaseUrl::parse(&query.issuer).map_err(|e| format!("--issuer {e}"))?;
    // RFC 8414 discovery, falling back to gatehouse's own path. Metadata
    // naming another issuer is not used (RFC 8414 §3.3): a node reached by
    // an internal URL while its public issuer is another.
    let endpoint = match client
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
    {
        Ok(response) if response.status().is_success() => response
            .json::<Metadata>()
            .await
            .ok()
            .filter(|m| issuer.names(&m.issuer))
            .map(|m| m.token_endpoint)
            .unwrap_or_else(|| format!("{issuer}/oauth/token")),
        _ => format!("{issuer}/oauth/token"),
    };
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = &query.scope {
        form.push(("scope", scope));
    }
    if let Some(audience) = &query.audience {
        form.push(("audience", audience));
    }
    let response = client
        .post(&endpoint)
        .basic_auth(
            form_encode(&query.client_id),
            Some(form_encode(&query.client_secret)),
        )
        .form(&form)
        .send()
        .await
        .map_err(|e| format!("{endpoint}: {e}"))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        let reason = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error_description"].as_str().map(str::to_string))
            .unwrap_or(body);
        return Err(format!("{endpoint} answered {status}: {reason}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{endpoint}: unexpected answer: {e}"))
}

/// RFC 6749 §2.3.1: Basic credentials are form-urlencoded first.
fn form_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// One file per issuer, client and request, named by their digest.
fn cache_file(dir: &Path, query: &TokenQuery) -> PathBuf {
    let key = format!(
        "{}\n{}\n{}\n{}",
        query.issuer,
        query.client_id,
        query.scope.as_deref().unwrap_or(""),
        query.audience.as_deref().unwrap_or("")
    );
    let name: String = sha256(key.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    dir.join(format!("token-{name}.json"))
}

/// A cached token, if the file can be trusted and holds a token of this
/// issuer for this client: a file someone else could have written (another
/// owner, or writable by group or others, or in such a directory) is
/// ignored, and so is one whose token names another issuer or client.
fn read_cache(path: &Path, query: &TokenQuery) -> Option<CachedToken> {
    if !private_to_us(path) || !path.parent().is_some_and(private_to_us) {
        return None;
    }
    let cached: CachedToken = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let claims = cached.access_token.split('.').nth(1)?;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).ok()?,
    )
    .ok()?;
    let same_issuer = claims["iss"]
        .as_str()
        .is_some_and(|iss| BaseUrl::parse(&query.issuer).is_ok_and(|base| base.names(iss)));
    (same_issuer && claims["client_id"] == query.client_id.as_str()).then_some(cached)
}

/// Owned by this user and not writable by anyone else.
fn private_to_us(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // /proc/self belongs to the process's user (Linux); elsewhere only
        // the mode is checked.
        let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
        std::fs::symlink_metadata(path).is_ok_and(|m| {
            uid.is_none_or(|uid| m.uid() == uid)
                && m.mode() & 0o022 == 0
                && !m.file_type().is_symlink()
        })
    }
    #[cfg(not(unix))]
    {
        path.exists()
    }
}

/// Written to a fresh file (mode 0600) and renamed into place.
fn write_cache(path: &Path, cached: &CachedToken) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    write_private_file(&tmp, &serde_json::to_vec(cached).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}

/// `$XDG_CACHE_HOME/gatehouse`, else `~/.cache/gatehouse`.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .map(|dir| dir.join("gatehouse"))
}
