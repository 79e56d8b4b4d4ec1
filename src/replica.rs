//! A replica follows its primary: it long-polls `/internal/v1/state`,
//! applies each new document whole, and remembers when it last heard from
//! the primary, so that `/readyz` can report a copy grown too old.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Clock;
use crate::crypto::random_bytes;
use crate::directory::{Directory, Replacement};
use crate::issuer::IssuerUrl;
use crate::keys::{KeyDir, KeyRing, KeySet};
use crate::replication::{REPLICA_ID_HEADER, StateDocument};
use crate::revocation::parse_id;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// When the replica last heard from its primary (unix seconds; 0: never).
#[derive(Default)]
pub struct SyncStatus {
    last_contact: AtomicI64,
}

impl SyncStatus {
    /// Seconds since the primary last answered, `None` if it never has.
    pub fn age(&self, now: i64) -> Option<i64> {
        match self.last_contact.load(Ordering::Relaxed) {
            0 => None,
            at => Some((now - at).max(0)),
        }
    }

    fn touch(&self, now: i64) {
        self.last_contact.store(now, Ordering::Relaxed);
    }
}

pub struct Follower {
    pub primary_url: String,
    pub token: String,
    pub directory: Arc<Directory>,
    pub keys: Arc<KeyRing>,
    /// The replica's own keys, if it holds any: its signer, if it may issue.
    pub local_keys: Option<KeySet>,
    /// Where they are read from again when the primary names a signing
    /// key the replica does not sign with yet (a rotation).
    pub keys_dir: PathBuf,
    /// State answers larger than this are refused.
    pub max_state_bytes: usize,
    pub status: Arc<SyncStatus>,
    pub clock: Arc<dyn Clock>,
    /// How long each long-poll waits for a change.
    pub wait: Duration,
    pub issuer: IssuerUrl,
    /// No issuer was configured: take the primary's.
    pub adopt_issuer: bool,
    /// The JWKS `max-age` served: the primary's, once it names one.
    pub jwks_max_age: Arc<AtomicU64>,
}

impl Follower {
    /// Runs for the life of the process.
    pub async fn run(mut self) {
        let timeout = self.wait + Duration::from_secs(10);
        // Only the primary answers: a redirect would let whoever it points
        // to supply the keys and rules.
        let client = match crate::crypto::http_client(|builder| {
            builder
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
        }) {
            Ok(client) => client,
            Err(e) => {
                log::error!("replica: cannot build an HTTP client: {e}");
                return;
            }
        };
        let base = self.primary_url.trim_end_matches('/').to_string();
        let id = crate::crypto::random_id().unwrap_or_else(|_| "replica".into());
        let mut since = 0u64;
        let mut backoff = MIN_BACKOFF;
        loop {
            let url = format!(
                "{base}/internal/v1/state?since={since}&wait={}",
                self.wait.as_secs()
            );
            let request = client
                .get(&url)
                .bearer_auth(&self.token)
                .header(REPLICA_ID_HEADER, &id);
            let outcome = match request.send().await {
                Ok(response) if response.status() == reqwest::StatusCode::NOT_MODIFIED => Ok(None),
                Ok(response) if response.status().is_success() => {
                    read_document(response, self.max_state_bytes)
                        .await
                        .map(Some)
                }
                Ok(response) => Err(format!("the primary answered {}", response.status())),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(document) => {
                    let now = self.clock.now().timestamp();
                    if let Some(document) = document {
                        since = document.version;
                        self.apply(document, now);
                        log::debug!("replica: now at state version {since}");
                    }
                    self.status.touch(now);
                    backoff = MIN_BACKOFF;
                }
                Err(e) => {
                    log::warn!("replica: syncing from {base} failed: {e}; retrying in {backoff:?}");
                    actix_web::rt::time::sleep(backoff + jitter(backoff)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn apply(&mut self, document: StateDocument, now: i64) {
        if let Some(primary) = &document.issuer {
            if self.adopt_issuer {
                if self.issuer.adopt(primary) {
                    log::info!("replica: issuer is {primary}, as the primary's");
                }
            } else if !self.issuer.matches(primary) {
                log::error!(
                    "replica: the configured issuer {} is not the primary's ({primary}); \
                     tokens from the primary will be refused",
                    self.issuer.get()
                );
            }
        }
        let keys = match &document.active_kid {
            Some(active) => {
                let signs_with = self
                    .local_keys
                    .as_ref()
                    .and_then(|k| k.signer())
                    .map(|s| &s.kid);
                if signs_with != Some(active) {
                    // A rotation: the new key may be in the mounted directory.
                    match KeyDir::load_existing_for(&self.keys_dir, active) {
                        Ok(local) => self.local_keys = local,
                        Err(e) => log::warn!("replica: cannot read its keys again: {e}"),
                    }
                    if self.local_keys.as_ref().and_then(|k| k.signer()).is_none() {
                        log::warn!(
                            "replica: the primary signs with {active}, which this replica \
                             does not hold: it issues no tokens until it does"
                        );
                    }
                }
                KeySet::following(self.local_keys.as_ref(), &document.public_keys, active)
            }
            None => KeySet::with_published(self.local_keys.as_ref(), &document.public_keys),
        };
        self.keys.replace(keys);
        if let Some(max_age) = document.jwks_max_age {
            self.jwks_max_age.store(max_age, Ordering::Relaxed);
        }
        self.directory.replace(
            Replacement {
                version: document.version,
                applications: document.applications,
                resources: document.resources,
                revoked_api_keys: document
                    .revoked_api_keys
                    .iter()
                    .filter_map(|id| parse_id(id))
                    .collect(),
                revoked_access_tokens: document
                    .revoked_access_tokens
                    .iter()
                    .filter_map(|(jti, exp)| Some((parse_id(jti)?, *exp)))
                    .collect(),
            },
            now,
        );
    }
}

/// The state document, read up to `limit` bytes: an answer that does not
/// fit is refused whole rather than read into memory.
async fn read_document(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<StateDocument, String> {
    let too_large = || format!("the state answer exceeds max_state_bytes ({limit} bytes)");
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("unreadable state document: {e}"))
}

/// Up to half of `backoff`, so that replicas do not retry in step.
fn jitter(backoff: Duration) -> Duration {
    let random = random_bytes::<2>().map(u16::from_le_bytes).unwrap_or(0);
    backoff / 2 * u32::from(random) / u32::from(u16::MAX)
}
