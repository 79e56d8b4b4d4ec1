//! A replica follows its primary: it long-polls `/internal/v1/state`,
//! applies the changes (or a snapshot) it is sent, and remembers when it
//! last heard from the primary, so that `/readyz` can report a copy grown
//! too old.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use actix_web::web::Bytes;

use crate::clock::Clock;
use crate::crypto::random_bytes;
use crate::directory::{Directory, Replacement};
use crate::issuer::IssuerUrl;
use crate::keys::{KeyDir, KeyRing, KeySet};
use crate::replication::{
    Change, ChangesDocument, FEATURE_SCOPES, KIND_HEADER, REPLICA_ID_HEADER, StateDocument,
};
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
    pub primary_url: crate::parsed::BaseUrl,
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
        let base = self.primary_url.clone();
        let id = crate::crypto::random_id().unwrap_or_else(|_| "replica".into());
        let mut position = Followed::default();
        let mut backoff = MIN_BACKOFF;
        loop {
            let url = format!(
                "{base}/internal/v1/state?{}",
                position.query(self.wait.as_secs())
            );
            match self.poll(&client, url, &id).await {
                Ok(answer) => {
                    let now = self.clock.now().timestamp();
                    self.take(answer, &mut position, now);
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

    /// One long-poll of `url`, as the replica `id`; `None`: nothing changed.
    async fn poll(
        &self,
        client: &reqwest::Client,
        url: String,
        id: &str,
    ) -> Result<Option<StateAnswer>, String> {
        let request = client
            .get(url)
            .bearer_auth(&self.token)
            .header(REPLICA_ID_HEADER, id);
        match request.send().await {
            Ok(response) if response.status() == reqwest::StatusCode::NOT_MODIFIED => Ok(None),
            Ok(response) if response.status().is_success() => {
                read_answer(response, self.max_state_bytes).await.map(Some)
            }
            Ok(response) => Err(format!("the primary answered {}", response.status())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Applies the primary's answer and moves `position` to the version it
    /// leaves the copy at; changes that do not follow it start over from a
    /// snapshot.
    fn take(&mut self, answer: Option<StateAnswer>, position: &mut Followed, now: i64) {
        match answer {
            Some(StateAnswer::Snapshot(document)) => {
                *position = Followed::from_snapshot(&document);
                self.apply_snapshot(document, now);
                // The document (tens of MB at scale) is gone.
                crate::memory::release_freed();
                log::debug!("replica: snapshot at version {}", position.version);
            }
            Some(StateAnswer::Changes(document)) => {
                if position.epoch.as_deref() == Some(document.epoch.as_str())
                    && follows(position.version, &document)
                {
                    position.version = document.version;
                    position.hash = Some(document.hash.clone());
                    self.apply_changes(document, now);
                    log::debug!("replica: changes to version {}", position.version);
                } else {
                    // Changes for a history we do not have, or
                    // with a gap: start over from a snapshot.
                    log::warn!("replica: changes that do not follow its copy; resyncing");
                    *position = Followed::default();
                }
            }
            None => {}
        }
    }

    fn adopt_issuer(&self, primary: &str) {
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

    /// The key set the primary names: the keys it publishes, and the local
    /// signer only if it is the primary's.
    fn follow_keys(&mut self, public_keys: &[(String, String)], active_kid: Option<&str>) {
        let keys = match active_kid {
            Some(active) => {
                let signs_with = self
                    .local_keys
                    .as_ref()
                    .and_then(|k| k.signer())
                    .map(|s| s.kid.as_str());
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
                KeySet::following(self.local_keys.as_ref(), public_keys, active)
            }
            None => KeySet::with_published(self.local_keys.as_ref(), public_keys),
        };
        self.keys.replace(keys);
    }

    /// Changes in order: keys first (a token signed by a new key may come
    /// right after), then the directory's part.
    fn apply_changes(&mut self, document: ChangesDocument, now: i64) {
        self.adopt_issuer(&document.issuer);
        self.jwks_max_age
            .store(document.jwks_max_age, Ordering::Relaxed);
        let newest_keys = document.changes.iter().rev().find_map(|e| match &e.change {
            Change::Keys {
                public_keys,
                active_kid,
            } => Some((public_keys.clone(), active_kid.clone())),
            _ => None,
        });
        if let Some((public_keys, active_kid)) = newest_keys {
            self.follow_keys(&public_keys, active_kid.as_deref());
        }
        self.directory.apply(&document.changes, now);
    }

    fn apply_snapshot(&mut self, document: StateDocument, now: i64) {
        if let Some(primary) = &document.issuer {
            self.adopt_issuer(primary);
        }
        self.follow_keys(&document.public_keys, document.active_kid.as_deref());
        if let Some(max_age) = document.jwks_max_age {
            self.jwks_max_age.store(max_age, Ordering::Relaxed);
        }
        // API key revocations are for good: a snapshot from a restored
        // backup or a rebuilt store must not take back one this replica has
        // honoured. The union is kept (ids are random: it hits no other key).
        let (mut revoked_api_keys, _) = self.directory.revocations.export();
        revoked_api_keys.extend(document.revoked_api_keys);
        self.directory.replace(
            Replacement {
                version: document.version,
                applications: document.applications,
                resources: document.resources,
                revoked_api_keys,
                revoked_access_tokens: document.revoked_access_tokens,
                api_key_scopes: document
                    .api_key_scopes
                    .into_iter()
                    .filter_map(|e| Some((parse_id(&e.id)?, e.scopes)))
                    .collect(),
            },
            now,
        );
    }
}

/// Whether `document` carries every change right after `version`, in
/// order, up to the version it names: anything else would skip some.
fn follows(version: u64, document: &ChangesDocument) -> bool {
    let consecutive = document
        .changes
        .iter()
        .zip(1u64..)
        .all(|(entry, n)| Some(entry.version) == version.checked_add(n));
    consecutive && document.changes.last().map(|e| e.version) == Some(document.version)
}

/// Where the replica stands in its primary's history.
#[derive(Default)]
struct Followed {
    epoch: Option<String>,
    version: u64,
    hash: Option<String>,
}

impl Followed {
    fn from_snapshot(document: &StateDocument) -> Self {
        Self {
            epoch: document.epoch.clone(),
            version: document.version,
            hash: document.hash.clone(),
        }
    }

    /// The query string; epoch and hash are base64url, safe as they are
    /// (anything else from the primary is left out).
    fn query(&self, wait: u64) -> String {
        let mut query = format!(
            "since={}&wait={wait}&features={FEATURE_SCOPES}",
            self.version
        );
        if let (Some(epoch), Some(hash)) = (&self.epoch, &self.hash)
            && [epoch, hash].iter().all(|v| {
                v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        {
            query.push_str(&format!("&epoch={epoch}&hash={hash}"));
        }
        query
    }
}

enum StateAnswer {
    Snapshot(StateDocument),
    Changes(ChangesDocument),
}

/// The primary's answer, read up to `limit` bytes: one that does not fit
/// is refused rather than read into memory.
async fn read_answer(response: reqwest::Response, limit: usize) -> Result<StateAnswer, String> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large(limit));
    }
    let changes = response
        .headers()
        .get(KIND_HEADER)
        .is_some_and(|kind| kind.as_bytes() == b"changes");
    if changes {
        read_changes(response, limit)
            .await
            .map(StateAnswer::Changes)
    } else {
        read_snapshot(response, limit)
            .await
            .map(StateAnswer::Snapshot)
    }
}

fn too_large(limit: usize) -> String {
    format!("the state answer exceeds max_state_bytes ({limit} bytes)")
}

/// A `changes` answer (about `MAX_CHANGE_BYTES` at most), read whole.
async fn read_changes(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<ChangesDocument, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("unreadable changes: {e}"))
}

/// Chunks of a snapshot on their way to the parser.
const SNAPSHOT_CHUNKS_IN_FLIGHT: usize = 8;

/// A snapshot (tens of MB at a million revocations), parsed as it arrives:
/// the chunks go to a blocking thread that decodes them, so the body is
/// never held whole, only the few chunks in flight and what they decode to.
async fn read_snapshot(
    mut response: impl ChunkSource,
    limit: usize,
) -> Result<StateDocument, String> {
    let (sender, chunks) = tokio::sync::mpsc::channel(SNAPSHOT_CHUNKS_IN_FLIGHT);
    let parse = actix_web::rt::task::spawn_blocking(move || {
        serde_json::from_reader::<_, StateDocument>(std::io::BufReader::with_capacity(
            1 << 16,
            ChunkReader {
                chunks,
                current: Bytes::new(),
            },
        ))
    });
    let mut read = 0usize;
    let fed = loop {
        match response.next_chunk().await {
            Ok(Some(chunk)) => {
                read += chunk.len();
                if read > limit {
                    break Err(too_large(limit));
                }
                if sender.send(chunk).await.is_err() {
                    // The parser stopped early: its error says why.
                    break Ok(());
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    // The parser reads the end of the input; then it is done.
    drop(sender);
    let parsed = parse
        .await
        .map_err(|e| format!("the snapshot parser failed: {e}"))?;
    // A body cut short or refused is an error even if what came parses.
    fed?;
    parsed.map_err(|e| format!("unreadable state document: {e}"))
}

/// Where an answer's body comes from: the primary's response (and, in
/// tests, chunks made up).
trait ChunkSource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String>;
}

impl ChunkSource for reqwest::Response {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        self.chunk().await.map_err(|e| e.to_string())
    }
}

/// The chunks from `read_snapshot` as one input, read on a blocking thread.
struct ChunkReader {
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Up to half of `backoff`, so that replicas do not retry in step.
fn jitter(backoff: Duration) -> Duration {
    let random = random_bytes::<2>().map(u16::from_le_bytes).unwrap_or(0);
    backoff / 2 * u32::from(random) / u32::from(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::log::Entry;

    fn document(versions: &[u64], version: u64) -> ChangesDocument {
        ChangesDocument {
            epoch: "e".into(),
            version,
            hash: "h".into(),
            changes: versions
                .iter()
                .map(|v| Entry {
                    version: *v,
                    hash: "h".into(),
                    change: Change::RevokeApiKey { id: "x".into() },
                })
                .collect(),
            issuer: "i".into(),
            jwks_max_age: 0,
        }
    }

    /// Made-up chunks of a body, and where it fails, if it does.
    struct Chunks(std::collections::VecDeque<Result<Bytes, String>>);

    impl ChunkSource for Chunks {
        async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
            self.0.pop_front().transpose()
        }
    }

    /// `body` cut into chunks of `sizes` (cycling), read as a snapshot.
    fn read_in_chunks(body: &[u8], sizes: &[usize], limit: usize) -> Result<StateDocument, String> {
        let mut chunks = std::collections::VecDeque::new();
        let mut rest = body;
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((*size).clamp(1, rest.len()));
            chunks.push_back(Ok(Bytes::copy_from_slice(chunk)));
            rest = tail;
        }
        read_chunks(Chunks(chunks), limit)
    }

    fn read_chunks(chunks: Chunks, limit: usize) -> Result<StateDocument, String> {
        actix_web::rt::System::new().block_on(read_snapshot(chunks, limit))
    }

    /// A snapshot of a few applications, rules and revocations, as the
    /// primary streams it.
    fn snapshot_body() -> Vec<u8> {
        use crate::replication::snapshot::{SnapshotLabel, chunks};
        let now = chrono::Utc::now();
        let applications = (0..50)
            .map(|n| crate::applications::ApplicationRecord {
                client_id: crate::applications::ClientId::parse(&format!("app-{n}")).unwrap(),
                name: format!("App \"{n}\" é").into(),
                groups: vec!["media".to_string(), format!("team-{}", n % 3)].into(),
                scopes: vec!["webdav:read".to_string()].into(),
                audiences: Default::default(),
                access_token_ttl: 3600,
                active: n % 7 != 0,
                created_at: now,
                updated_at: now,
                secret: crate::crypto::SecretDigest::of(&format!("secret-{n}")),
                previous_secret: None,
                not_before: n,
                generation: n as u64 + 1,
            })
            .collect();
        let directory = Directory::new(applications, vec![]);
        directory
            .revocations
            .revoke_api_keys((0u8..=255).map(|i| [i; 16]));
        directory
            .revocations
            .revoke_access_token([7; 16], i64::MAX / 2, 0);
        let keys = KeySet::following(None, &[], "none");
        let label = SnapshotLabel {
            version: 9,
            epoch: "e",
            hash: "h",
            issuer: "https://auth.example.com",
            jwks_max_age: 300,
        };
        chunks(&directory, &keys, &label)
            .collect::<Vec<_>>()
            .concat()
    }

    /// What a replica takes from a document, in a comparable form.
    fn summary(document: &StateDocument) -> String {
        let mut ids = document.revoked_api_keys.clone();
        ids.sort();
        format!(
            "{} {:?} {} {:?} {:?}",
            document.version,
            document.epoch,
            serde_json::to_string(&document.applications).unwrap(),
            ids,
            document.revoked_access_tokens
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 32, ..proptest::prelude::ProptestConfig::default()
        })]

        /// However the body is cut, streaming reads what reading it whole
        /// reads.
        #[test]
        fn a_streamed_snapshot_reads_as_the_whole_body(
            sizes in proptest::collection::vec(1usize..5_000, 1..8)
        ) {
            let body = snapshot_body();
            let whole: StateDocument = serde_json::from_slice(&body).unwrap();
            let streamed = read_in_chunks(&body, &sizes, body.len()).unwrap();
            proptest::prop_assert_eq!(summary(&streamed), summary(&whole));
            proptest::prop_assert_eq!(streamed.applications.len(), 50);
        }
    }

    #[test]
    fn a_snapshot_over_the_limit_is_refused() {
        let body = snapshot_body();
        let err = read_in_chunks(&body, &[1000], body.len() - 1).unwrap_err();
        assert!(err.contains("max_state_bytes"), "{err}");
        // Even when what came before the limit is a whole document.
        let mut padded = body.clone();
        padded.extend(std::iter::repeat_n(b' ', 5000));
        let err = read_in_chunks(&padded, &[1000], body.len() + 10).unwrap_err();
        assert!(err.contains("max_state_bytes"), "{err}");
    }

    #[test]
    fn a_snapshot_cut_short_or_broken_is_refused() {
        let body = snapshot_body();
        let err = read_in_chunks(&body[..body.len() - 1], &[777], usize::MAX).unwrap_err();
        assert!(err.contains("unreadable state document"), "{err}");
        let mut chunks: std::collections::VecDeque<_> = body
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        chunks.truncate(3);
        chunks.push_back(Err("connection reset".into()));
        let err = read_chunks(Chunks(chunks), usize::MAX).unwrap_err();
        assert_eq!(err, "connection reset");
        // Garbage early: the parser stops, and so does the reading.
        let mut garbage = b"{\"version\":1,]".to_vec();
        garbage.extend(std::iter::repeat_n(b' ', 1 << 20));
        let err = read_in_chunks(&garbage, &[100], usize::MAX).unwrap_err();
        assert!(err.contains("unreadable state document"), "{err}");
    }

    /// A replica takes changes only when they carry on from its version
    /// without a gap; anything else sends it back to a snapshot.
    #[test]
    fn only_changes_right_after_the_copy_are_taken() {
        assert!(follows(4, &document(&[5, 6, 7], 7)));
        assert!(!follows(4, &document(&[6, 7], 7)), "5 was compacted away");
        assert!(!follows(4, &document(&[5, 7], 7)), "a hole");
        assert!(
            !follows(4, &document(&[5, 6], 7)),
            "names more than it carries"
        );
        assert!(!follows(4, &document(&[], 4)), "nothing to follow");
        assert!(!follows(u64::MAX, &document(&[0], 0)));
    }
}
