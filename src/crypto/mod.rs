//! The one crypto stack: ring. Randomness, digests and constant-time
//! comparison live here, and `jwt_provider` plugs ring into jsonwebtoken.

pub mod jwt_provider;

/// Installs ring as the process-wide provider of both libraries that take
/// one: jsonwebtoken (signatures) and rustls (TLS for the HTTP clients: the
/// CLI, a replica's sync, the session upstream). Calling it again is fine.
pub fn install_providers() {
    jwt_provider::install();
    // A second call finds ring already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Every outgoing HTTP client is built here, so that its TLS runs on ring
/// (reqwest has no provider of its own, and would panic without one). It
/// trusts the system's CA certificates. Where there are none (a slim
/// container image), it is built trusting none: plain HTTP, such as the
/// healthcheck, still works, and https is refused at connect time.
pub fn http_client(
    configure: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> Result<reqwest::Client, reqwest::Error> {
    install_providers();
    configure(reqwest::Client::builder()).build().or_else(|e| {
        log::debug!("HTTP client without system CA certificates ({e}); https will fail");
        configure(reqwest::Client::builder())
            .tls_certs_only(std::iter::empty())
            .build()
    })
}

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The system random source failed; there is nothing sensible to do but
/// refuse the operation.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomnessUnavailable;

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomnessUnavailable> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomnessUnavailable)?;
    Ok(bytes)
}

/// A bearer secret: `prefix` followed by 256 random bits in base64url.
/// The prefix lets secret scanners recognise a leaked value.
pub fn random_secret(prefix: &str) -> Result<String, RandomnessUnavailable> {
    Ok(format!("{prefix}{}", b64url(&random_bytes::<32>()?)))
}

/// A 128-bit random identifier in base64url (token `jti`s, key ids).
pub fn random_id() -> Result<String, RandomnessUnavailable> {
    Ok(b64url(&random_bytes::<16>()?))
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// Domain-separation key for secret digests. It is public on purpose: the
/// digest needs no key, but `ring::hmac::verify` is ring's supported
/// constant-time comparison (its bare `constant_time` module is deprecated).
const DIGEST_KEY: &[u8] = b"gatehouse secret digest v1";

/// Built once: preparing an HMAC key costs two SHA-256 compressions.
fn digest_key() -> &'static hmac::Key {
    static KEY: std::sync::OnceLock<hmac::Key> = std::sync::OnceLock::new();
    KEY.get_or_init(|| hmac::Key::new(hmac::HMAC_SHA256, DIGEST_KEY))
}

/// Constant-time equality of two secrets of any length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let key = digest_key();
    hmac::verify(key, a, hmac::sign(key, b).as_ref()).is_ok()
}

/// HMAC-SHA256 digest of a high-entropy secret, the only form in which
/// client secrets and admin tokens are stored. A fast digest suffices
/// because the secrets are 256 random bits: there is nothing to brute-force.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    pub fn of(secret: &str) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(digest_key(), secret.as_bytes()).as_ref());
        Self(out)
    }

    /// Whether `secret` has this digest, compared in constant time.
    pub fn matches(&self, secret: &str) -> bool {
        hmac::verify(digest_key(), secret.as_bytes(), &self.0).is_ok()
    }

    /// The digest's bytes, for the store's binary copies.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A short, non-secret name for the digest (audit logs name admin tokens by it).
    pub fn fingerprint(&self) -> String {
        b64url(&self.0[..6])
    }
}

impl std::fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretDigest({})", self.fingerprint())
    }
}

impl Serialize for SecretDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&b64url(&self.0))
    }
}

impl<'de> Deserialize<'de> for SecretDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        let digest: [u8; 32] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a secret digest is 32 bytes"))?;
        Ok(Self(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_only_its_secret() {
        let digest = SecretDigest::of("gcs_abc");
        assert!(digest.matches("gcs_abc"));
        assert!(!digest.matches("gcs_abd"));
        assert!(!digest.matches(""));
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn digest_round_trips_through_serde() {
        let digest = SecretDigest::of("x");
        let json = serde_json::to_string(&digest).unwrap();
        let back: SecretDigest = serde_json::from_str(&json).unwrap();
        assert!(back == digest);
    }

    #[test]
    fn secrets_carry_256_bits_and_differ() {
        let a = random_secret("p_").unwrap();
        let b = random_secret("p_").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 + 43);
    }
}
