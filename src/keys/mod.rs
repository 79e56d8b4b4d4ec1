//! Signing keys: Ed25519 key files on disk, and the in-memory key set that
//! signs new tokens and verifies presented ones.
//!
//! On disk, `keys/<kid>.pem` holds one PKCS#8 private key (mode 0600, RFC
//! 8410 form: see `pkcs8`), `keys/active` names the key that signs and
//! `keys/schedule.json` records when each key was published, signed and
//! stopped signing (see `schedule`). Every other key still verifies, which
//! is what lets a rotation publish a key before signing with it.

//!
//! * `files`: the key directory (`KeyDir`), reading and writing key files
//! * `set`: the in-memory `KeySet` (signer, verifiers, JWKS) and `KeyRing`
//! * `pkcs8`: the two PKCS#8 forms a key file may take
//! * `schedule`: when each key was published, signed and retired

mod files;
mod pkcs8;
mod schedule;
mod set;

pub use files::{KeyDir, StoredKey};
pub use pkcs8::KeyForm;
pub use schedule::{KeyState, KeyTimes, Schedule};
pub use set::{KeyRing, KeySet, SigningKey, VerifyingKey};

use std::path::{Path, PathBuf};

use crate::crypto::{b64url, sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {0} is not a PKCS#8 Ed25519 private key in PEM form")]
    Malformed(PathBuf),
    #[error("key generation failed")]
    Generation,
    #[error("no key with kid {0}")]
    UnknownKid(String),
    #[error("key {0} signs new tokens: rotate to another key before retiring it")]
    Active(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key, used as its `kid`.
pub fn thumbprint(public: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        b64url(public)
    );
    b64url(&sha256(canonical.as_bytes()))
}
