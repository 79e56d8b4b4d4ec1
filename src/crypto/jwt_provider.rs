//! A jsonwebtoken `CryptoProvider` backed by ring.
//!
//! jsonwebtoken 12 ships only aws-lc and RustCrypto backends; gatehouse keeps
//! ring as its single crypto stack, so it supplies its own. Only EdDSA
//! (Ed25519) is implemented: every other algorithm is refused, which is also
//! what keeps `none` and HMAC-with-a-public-key confusion out of reach.
//!
//! jsonwebtoken asks the provider for a fresh signer on every `encode`.
//! Parsing a PKCS#8 key costs ring a full scalar multiplication (as much as
//! a signature), so parsed key pairs are memoised by their DER bytes.

use std::sync::{Arc, OnceLock, RwLock};

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Installs the ring provider as jsonwebtoken's process default. Idempotent.
pub fn install() {
    // A second call finds our own provider already installed, which is fine.
    let _ = PROVIDER.install_default();
}

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(ErrorKind::InvalidAlgorithm.into()),
        rsa_pub_components_from_public_key: |_| Err(ErrorKind::InvalidAlgorithm.into()),
        ec_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidAlgorithm.into()),
        ed_pub_components_from_private_key,
        compute_digest,
    },
};

/// At most this many parsed key pairs are kept; a node holds a handful.
const KEY_PAIR_MEMO_CAPACITY: usize = 16;

type KeyPairMemo = RwLock<Vec<(Vec<u8>, Arc<Ed25519KeyPair>)>>;

fn key_pair_memo() -> &'static KeyPairMemo {
    static MEMO: OnceLock<KeyPairMemo> = OnceLock::new();
    MEMO.get_or_init(|| RwLock::new(Vec::new()))
}

/// Parses a PKCS#8 Ed25519 key (v1 as written by OpenSSL, or v2 as written
/// by ring), reusing an earlier parse of the same bytes.
pub fn ed25519_key_pair(pkcs8: &[u8]) -> Result<Arc<Ed25519KeyPair>> {
    if let Ok(memo) = key_pair_memo().read()
        && let Some((_, pair)) = memo.iter().find(|(der, _)| der == pkcs8)
    {
        return Ok(Arc::clone(pair));
    }
    let pair = Arc::new(
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|_| Error::from(ErrorKind::InvalidEddsaKey))?,
    );
    if let Ok(mut memo) = key_pair_memo().write() {
        if memo.len() >= KEY_PAIR_MEMO_CAPACITY {
            memo.remove(0);
        }
        memo.push((pkcs8.to_vec(), Arc::clone(&pair)));
    }
    Ok(pair)
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if *algorithm != Algorithm::EdDSA || key.family() != AlgorithmFamily::Ed {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(EdDsaSigner(ed25519_key_pair(key.as_bytes())?)))
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if *algorithm != Algorithm::EdDSA || key.family() != AlgorithmFamily::Ed {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(EdDsaVerifier(key.try_get_as_bytes()?.to_vec())))
}

fn ed_pub_components_from_private_key(pkcs8: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>> {
    match curve {
        EllipticCurve::Ed25519 => Ok(ed25519_key_pair(pkcs8)?.public_key().as_ref().to_vec()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

struct EdDsaSigner(Arc<Ed25519KeyPair>);

impl Signer<Vec<u8>> for EdDsaSigner {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        Ok(self.0.sign(message).as_ref().to_vec())
    }
}

impl JwtSigner for EdDsaSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

/// Holds the raw 32-byte Ed25519 public key.
struct EdDsaVerifier(Vec<u8>);

impl Verifier<Vec<u8>> for EdDsaVerifier {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> std::result::Result<(), signature::Error> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for EdDsaVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Header, Validation, decode, encode};
    use ring::rand::SystemRandom;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Claims {
        sub: String,
    }

    fn key_pair_der() -> Vec<u8> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn signs_and_verifies_eddsa_through_jsonwebtoken() {
        install();
        let der = key_pair_der();
        let public = ed25519_key_pair(&der)
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
        let claims = Claims {
            sub: "canister".into(),
        };
        let token = encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &EncodingKey::from_ed_der(&der),
        )
        .unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let data =
            decode::<Claims>(&token, &DecodingKey::from_ed_der(&public), &validation).unwrap();
        assert_eq!(data.claims.sub, "canister");

        let other = ed25519_key_pair(&key_pair_der())
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
        assert!(decode::<Claims>(&token, &DecodingKey::from_ed_der(&other), &validation).is_err());
    }

    #[test]
    fn refuses_hmac() {
        install();
        let result = encode(
            &Header::new(Algorithm::HS256),
            &Claims { sub: "x".into() },
            &EncodingKey::from_secret(b"secret").unwrap(),
        );
        assert!(result.is_err());
    }
}
