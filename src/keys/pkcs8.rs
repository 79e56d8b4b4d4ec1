//! Ed25519 private keys as PKCS#8 documents.
//!
//! The standard form is RFC 8410's `OneAsymmetricKey` version 1: the
//! 32-byte seed and nothing else. It is what `openssl genpkey` writes and
//! what `openssl pkey` and pyca's `load_pem_private_key` read. Earlier
//! gatehouse versions wrote ring's version 2 document (seed plus public
//! key), which both tools refuse; such files still load, and `migrate`
//! rewrites them in the standard form (same seed, so the same kid).

use ring::rand::{SecureRandom, SystemRandom};

const SEED_LEN: usize = 32;

/// `SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING {
/// OCTET STRING <seed> } }` up to the seed (RFC 8410 §7).
const STANDARD_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// ring's version 2 document up to the seed: same layout, version 1, and a
/// longer outer sequence for the public key that follows.
const LEGACY_PREFIX: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// `[1] IMPLICIT BIT STRING <public key>` after the seed in ring's version 2
/// document (RFC 8410 §7 `publicKey`).
const LEGACY_PUBLIC_TAG: [u8; 3] = [0x81, 0x21, 0x00];
const LEGACY_LEN: usize = LEGACY_PREFIX.len() + SEED_LEN + LEGACY_PUBLIC_TAG.len() + 32;

/// How a key file's document is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum KeyForm {
    /// RFC 8410 version 1, readable by every standard tool.
    #[serde(rename = "pkcs8-v1")]
    Standard,
    /// ring's version 2, written by gatehouse before 0.2.
    #[serde(rename = "pkcs8-v2")]
    Legacy,
}

impl KeyForm {
    pub fn name(self) -> &'static str {
        match self {
            KeyForm::Standard => "pkcs8-v1",
            KeyForm::Legacy => "pkcs8-v2",
        }
    }
}

/// The form of a document, if it is an Ed25519 PKCS#8 key at all. Other
/// documents (an RSA key, garbage) are `None`; whether the key inside is
/// sound is for ring to say.
pub fn form(der: &[u8]) -> Option<KeyForm> {
    if der.len() == STANDARD_PREFIX.len() + SEED_LEN && der.starts_with(&STANDARD_PREFIX) {
        Some(KeyForm::Standard)
    } else if der.len() == LEGACY_LEN
        && der.starts_with(&LEGACY_PREFIX)
        && der[LEGACY_PREFIX.len() + SEED_LEN..].starts_with(&LEGACY_PUBLIC_TAG)
    {
        Some(KeyForm::Legacy)
    } else {
        None
    }
}

/// A new key in the standard form.
pub fn generate() -> Result<Vec<u8>, ring::error::Unspecified> {
    let mut seed = [0u8; SEED_LEN];
    SystemRandom::new().fill(&mut seed)?;
    Ok(standard_document(&seed))
}

/// The standard document holding the seed of `der` (either form).
pub fn to_standard(der: &[u8]) -> Option<Vec<u8>> {
    form(der)?;
    let seed = der.get(STANDARD_PREFIX.len()..STANDARD_PREFIX.len() + SEED_LEN)?;
    Some(standard_document(seed))
}

fn standard_document(seed: &[u8]) -> Vec<u8> {
    let mut der = Vec::with_capacity(STANDARD_PREFIX.len() + SEED_LEN);
    der.extend_from_slice(&STANDARD_PREFIX);
    der.extend_from_slice(seed);
    der
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    #[test]
    fn generated_keys_are_standard_and_load() {
        let der = generate().unwrap();
        assert_eq!(form(&der), Some(KeyForm::Standard));
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).unwrap();
        assert_ne!(generate().unwrap(), der, "a fresh seed each time");
    }

    /// ring's own documents are the legacy form, and converting one keeps
    /// the key: same public key, so the same kid.
    #[test]
    fn legacy_documents_convert_to_the_same_key() {
        let legacy = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        assert_eq!(form(legacy.as_ref()), Some(KeyForm::Legacy));
        let standard = to_standard(legacy.as_ref()).unwrap();
        assert_eq!(form(&standard), Some(KeyForm::Standard));
        let before = Ed25519KeyPair::from_pkcs8(legacy.as_ref()).unwrap();
        let after = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&standard).unwrap();
        assert_eq!(before.public_key().as_ref(), after.public_key().as_ref());
    }

    /// The RFC 8410 §10.3 example key, as `openssl genpkey` writes it.
    #[test]
    fn reads_the_rfc_8410_example() {
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD
            .decode("MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC")
            .unwrap();
        assert_eq!(form(&der), Some(KeyForm::Standard));
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).unwrap();
    }

    #[test]
    fn other_documents_have_no_form() {
        assert_eq!(form(b""), None);
        assert_eq!(form(&[0u8; 48]), None);
        let mut wrong_curve = generate().unwrap();
        wrong_curve[11] = 0x71; // Ed448's OID
        assert_eq!(form(&wrong_curve), None);
        assert!(to_standard(&wrong_curve).is_none());
    }
}
