//! The whole replicated state as one document: what a new, lagging or
//! foreign replica is sent. It is written as a stream of chunks, so the
//! primary never holds the document (tens of MB at a million revocations)
//! in memory, and parsed by the replica as the chunks arrive
//! (`follower::read_snapshot`), ids straight into 16 bytes each and
//! applications into the allocations the directory keeps.
//!
//! The document carries applications with their secret digests (so a
//! replica holding the signing key can issue tokens), rules, revocations
//! and the public keys. Put TLS between primary and replicas.

use std::fmt::Write as _;
use std::sync::Arc;

use actix_web::web::Bytes;
use serde::{Deserialize, Deserializer, Serialize};

use crate::applications::ApplicationRecord;
use crate::crypto::b64url;
use crate::directory::Directory;
use crate::keys::KeySet;
use crate::resources::Resource;
use crate::revocation::{CredentialId, parse_id};

/// Records per chunk of the stream.
const RECORDS_PER_CHUNK: usize = 1_000;
/// Revoked ids per chunk (25 bytes each).
const IDS_PER_CHUNK: usize = 16_384;

/// A snapshot as a replica reads it. Primaries before 0.2 sent the same
/// document without `epoch` and `hash`.
#[derive(Debug, Deserialize)]
pub struct StateDocument {
    pub version: u64,
    #[serde(default)]
    pub epoch: Option<String>,
    #[serde(default)]
    pub hash: Option<String>,
    /// Each decoded into the allocation the directory keeps.
    pub applications: Vec<Arc<ApplicationRecord>>,
    pub resources: Vec<Resource>,
    /// Revoked API key ids.
    #[serde(deserialize_with = "credential_ids")]
    pub revoked_api_keys: Vec<CredentialId>,
    /// Revoked access tokens: (jti, exp).
    #[serde(deserialize_with = "revoked_tokens")]
    pub revoked_access_tokens: Vec<(CredentialId, i64)>,
    /// The scopes of the API keys that have any. Absent from primaries
    /// before scoped keys.
    #[serde(default)]
    pub api_key_scopes: Vec<crate::key_scopes::ScopeEntry>,
    /// Every key that verifies: (kid, x).
    pub public_keys: Vec<(String, String)>,
    /// The primary's issuer, for replicas configured without one.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The key the primary signs with: replicas sign with it (if they hold
    /// it) or not at all. Absent from primaries before key retirement.
    #[serde(default)]
    pub active_kid: Option<String>,
    /// The JWKS `max-age` the primary's rotations wait for: replicas serve
    /// it, so that no cache they fill outlasts the wait.
    #[serde(default)]
    pub jwks_max_age: Option<u64>,
}

/// What a snapshot starts with.
#[derive(Serialize)]
struct Head<'a> {
    version: u64,
    epoch: &'a str,
    hash: &'a str,
    issuer: &'a str,
    active_kid: Option<&'a str>,
    jwks_max_age: u64,
    public_keys: Vec<(String, String)>,
}

/// Where a snapshot stands, and the facts that go with it.
pub struct SnapshotLabel<'a> {
    pub version: u64,
    pub epoch: &'a str,
    pub hash: &'a str,
    pub issuer: &'a str,
    pub jwks_max_age: u64,
}

/// The current state as the chunks of one JSON document, each encoded
/// only when the stream gets to it. The state is taken at once (a snapshot
/// of the directory and a copy of the revoked ids, 16 bytes each), after
/// `label.version` was read, so replaying the changes after that version
/// over it ends in the primary's state.
pub fn chunks(
    directory: &Directory,
    keys: &KeySet,
    label: &SnapshotLabel<'_>,
) -> Box<dyn Iterator<Item = Bytes> + Send> {
    let snapshot = directory.snapshot();
    let (revoked_keys, revoked_tokens) = directory.revocations.export();
    let head = open_head(keys, label);

    let mut applications: Vec<Arc<ApplicationRecord>> = snapshot.applications().cloned().collect();
    applications.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    let mut resources: Vec<Arc<Resource>> = snapshot.resources.values().cloned().collect();
    resources.sort_by(|a, b| a.id.cmp(&b.id));
    let mut scopes: Vec<crate::key_scopes::ScopeEntry> = directory
        .scoped_keys
        .export()
        .into_iter()
        .map(|(id, scopes)| crate::key_scopes::ScopeEntry {
            id: b64url(&id),
            scopes,
        })
        .collect();
    scopes.sort_by(|a, b| a.id.cmp(&b.id));
    let tokens: Vec<(String, i64)> = revoked_tokens
        .iter()
        .map(|(jti, exp)| (b64url(jti), *exp))
        .collect();
    Box::new(
        std::iter::once(Bytes::from(head))
            .chain(json_array("applications", applications))
            .chain(json_array("resources", resources))
            .chain(json_array("api_key_scopes", scopes))
            .chain(json_array("revoked_access_tokens", tokens))
            .chain(std::iter::once(Bytes::from_static(
                b",\"revoked_api_keys\":[",
            )))
            .chain(id_chunks(revoked_keys))
            .chain(std::iter::once(Bytes::from_static(b"]}"))),
    )
}

/// The document's opening fields, without the closing brace: the arrays
/// follow.
fn open_head(keys: &KeySet, label: &SnapshotLabel<'_>) -> String {
    let head = Head {
        version: label.version,
        epoch: label.epoch,
        hash: label.hash,
        issuer: label.issuer,
        active_kid: keys.signer().map(|s| s.kid.as_str()),
        jwks_max_age: label.jwks_max_age,
        public_keys: keys.public_keys(),
    };
    let mut head = serde_json::to_string(&head).unwrap_or_else(|_| "{".into());
    head.pop(); // the closing brace: the arrays follow
    head
}

/// The revoked ids as the inside of a JSON array of strings, a chunk per
/// `IDS_PER_CHUNK` ids, each written when it is reached.
fn id_chunks(revoked_keys: Vec<CredentialId>) -> impl Iterator<Item = Bytes> + Send {
    (0..revoked_keys.len().div_ceil(IDS_PER_CHUNK)).map(move |n| {
        let chunk =
            &revoked_keys[n * IDS_PER_CHUNK..((n + 1) * IDS_PER_CHUNK).min(revoked_keys.len())];
        let mut text = String::with_capacity(chunk.len() * 25);
        for (i, id) in chunk.iter().enumerate() {
            if n > 0 || i > 0 {
                text.push(',');
            }
            let _ = write!(text, "\"{}\"", b64url(id));
        }
        Bytes::from(text)
    })
}

/// `,"name":[…]`, a chunk per `RECORDS_PER_CHUNK` records, each encoded
/// when it is reached.
fn json_array<T: Serialize + Send + 'static>(
    name: &str,
    records: Vec<T>,
) -> impl Iterator<Item = Bytes> + Send + use<T> {
    let open = Bytes::from(format!(",\"{name}\":["));
    let chunks = (0..records.len().div_ceil(RECORDS_PER_CHUNK)).map(move |n| {
        let end = ((n + 1) * RECORDS_PER_CHUNK).min(records.len());
        let mut text = Vec::new();
        for (i, record) in records[n * RECORDS_PER_CHUNK..end].iter().enumerate() {
            if n > 0 || i > 0 {
                text.push(b',');
            }
            // Plain records into a Vec: this cannot fail.
            let _ = serde_json::to_writer(&mut text, record);
        }
        Bytes::from(text)
    });
    std::iter::once(open)
        .chain(chunks)
        .chain(std::iter::once(Bytes::from_static(b"]")))
}

/// An id as base64url text, read straight into its 16 bytes from the
/// parser's buffer (a million of them: no string each); `None` if the
/// text names no credential.
struct IdText(Option<CredentialId>);

impl<'de> Deserialize<'de> for IdText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = IdText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a credential id")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<IdText, E> {
                Ok(IdText(parse_id(text)))
            }
        }
        d.deserialize_str(Text)
    }
}

/// Ids as base64url text, read straight into 16 bytes each.
fn credential_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<CredentialId>, D::Error> {
    struct Ids;
    impl<'de> serde::de::Visitor<'de> for Ids {
        type Value = Vec<CredentialId>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of credential ids")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut ids = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(IdText(id)) = seq.next_element()? {
                // An id that is not one names no credential: skip it.
                ids.extend(id);
            }
            Ok(ids)
        }
    }
    d.deserialize_seq(Ids)
}

fn revoked_tokens<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(CredentialId, i64)>, D::Error> {
    let pairs: Vec<(IdText, i64)> = Vec::deserialize(d)?;
    Ok(pairs
        .into_iter()
        .filter_map(|(IdText(jti), exp)| Some((jti?, exp)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunks_make_one_document_a_replica_reads() {
        let directory = Directory::default();
        let ids: Vec<CredentialId> = (0u8..40).map(|i| [i; 16]).collect();
        directory.revocations.revoke_api_keys(ids.clone());
        directory
            .revocations
            .revoke_access_token([7; 16], i64::MAX / 2, 0);
        let keys = KeySet::following(None, &[], "none");
        let label = SnapshotLabel {
            version: 42,
            epoch: "e",
            hash: "h",
            issuer: "https://auth.example.com",
            jwks_max_age: 300,
        };
        let body: Vec<u8> = chunks(&directory, &keys, &label)
            .collect::<Vec<_>>()
            .concat();
        let document: StateDocument = serde_json::from_slice(&body).unwrap();
        assert_eq!(document.version, 42);
        assert_eq!(document.epoch.as_deref(), Some("e"));
        let mut got = document.revoked_api_keys.clone();
        got.sort();
        assert_eq!(got, ids);
        assert_eq!(document.revoked_access_tokens, [([7; 16], i64::MAX / 2)]);
        assert_eq!(document.jwks_max_age, Some(300));
        assert!(document.api_key_scopes.is_empty());
    }
}
