//! The keys a node holds in memory: at most one signer, every key that
//! verifies, their JWKS document, and the ring that swaps the set whole.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::Serialize;

use super::{StoredKey, thumbprint};
use crate::crypto::b64url;

/// The key that signs new tokens.
pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
}

/// A key that verifies tokens.
#[derive(Clone)]
pub struct VerifyingKey {
    pub decoding: DecodingKey,
    public_x: String,
}

/// Keys held in memory: at most one signer, and every key that verifies.
pub struct KeySet {
    signer: Option<Arc<SigningKey>>,
    verifiers: HashMap<String, VerifyingKey>,
    jwks: Arc<[u8]>,
}

#[derive(Serialize)]
struct Jwk<'a> {
    kty: &'static str,
    crv: &'static str,
    x: &'a str,
    kid: &'a str,
    #[serde(rename = "use")]
    use_: &'static str,
    alg: &'static str,
}

impl KeySet {
    pub(super) fn from_stored(keys: &[StoredKey], signer: Option<&str>) -> Self {
        let signer = keys
            .iter()
            .find(|k| Some(k.kid.as_str()) == signer)
            .map(|k| {
                Arc::new(SigningKey {
                    kid: k.kid.clone(),
                    encoding: EncodingKey::from_ed_der(&k.pkcs8),
                })
            });
        let verifiers = keys
            .iter()
            .map(|k| (k.kid.clone(), VerifyingKey::from_public(&k.public)))
            .collect();
        Self::new(signer, verifiers)
    }

    fn new(signer: Option<Arc<SigningKey>>, verifiers: HashMap<String, VerifyingKey>) -> Self {
        let mut kids: Vec<&String> = verifiers.keys().collect();
        kids.sort();
        let keys: Vec<Jwk> = kids
            .into_iter()
            .filter_map(|kid| verifiers.get(kid).map(|v| (kid, v)))
            .map(|(kid, v)| Jwk {
                kty: "OKP",
                crv: "Ed25519",
                x: &v.public_x,
                kid,
                use_: "sig",
                alg: "EdDSA",
            })
            .collect();
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": keys }))
            .unwrap_or_else(|_| b"{\"keys\":[]}".to_vec());
        Self {
            signer,
            verifiers,
            jwks: jwks.into(),
        }
    }

    pub fn signer(&self) -> Option<&Arc<SigningKey>> {
        self.signer.as_ref()
    }

    pub fn verifier(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifiers.get(kid)
    }

    /// A replica's key set from a primary that names its signing key:
    /// exactly the keys the primary publishes (a key retired there stops
    /// verifying here too), and the local signer only if it is that key.
    pub fn following(
        local: Option<&KeySet>,
        published: &[(String, String)],
        active: &str,
    ) -> KeySet {
        let verifiers = published_verifiers(published);
        let signer = local
            .and_then(|l| l.signer.clone())
            .filter(|s| s.kid == active && verifiers.contains_key(active));
        KeySet::new(signer, verifiers)
    }

    /// A replica's key set: its own signer (if it holds one) and every key
    /// its primary publishes, plus its own. For primaries that do not name
    /// their signing key (before key retirement existed).
    pub fn with_published(local: Option<&KeySet>, published: &[(String, String)]) -> KeySet {
        let mut verifiers = published_verifiers(published);
        if let Some(local) = local {
            for (kid, key) in &local.verifiers {
                verifiers.entry(kid.clone()).or_insert_with(|| key.clone());
            }
        }
        KeySet::new(local.and_then(|l| l.signer.clone()), verifiers)
    }

    /// (kid, base64url public key) of every verifying key, sorted by kid.
    pub fn public_keys(&self) -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> = self
            .verifiers
            .iter()
            .map(|(kid, key)| (kid.clone(), key.public_x.clone()))
            .collect();
        keys.sort();
        keys
    }

    /// The JWKS document (RFC 7517), serialised once per key set.
    pub fn jwks_json(&self) -> Arc<[u8]> {
        Arc::clone(&self.jwks)
    }
}

impl VerifyingKey {
    fn from_public(public: &[u8]) -> Self {
        Self {
            decoding: DecodingKey::from_ed_der(public),
            public_x: b64url(public),
        }
    }
}

fn published_verifiers(published: &[(String, String)]) -> HashMap<String, VerifyingKey> {
    let mut verifiers = HashMap::new();
    for (kid, x) in published {
        // A kid is the key's thumbprint: one that is not names no key.
        if let Ok(public) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(x)
            && thumbprint(&public) == *kid
        {
            verifiers.insert(kid.clone(), VerifyingKey::from_public(&public));
        }
    }
    verifiers
}

/// The node's current key set, replaced whole when keys change.
pub struct KeyRing {
    current: arc_swap::ArcSwap<KeySet>,
}

impl KeyRing {
    pub fn new(keys: KeySet) -> Self {
        Self {
            current: arc_swap::ArcSwap::from_pointee(keys),
        }
    }

    pub fn snapshot(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// The key set for the length of one request, without a reference-count
    /// round trip (see `Directory::guard`).
    pub fn guard(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.current.load()
    }

    pub fn replace(&self, keys: KeySet) {
        self.current.store(Arc::new(keys));
    }
}
