//! Key files in the standard form (RFC 8410 PKCS#8), read by openssl and
//! pyca; directories written by earlier versions keep working and migrate
//! without changing a kid.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Node, command_exists, gatehouse_command, json_of, python_has};

/// A fixed issuer: tokens from before the restart name the same one.
const ADMIN_ENV: [(&str, &str); 2] = [
    ("GATEHOUSE_ADMIN_TOKEN", ADMIN_TOKEN),
    ("GATEHOUSE_ISSUER", "https://auth.example.com"),
];

fn gatehouse(dir: &Path, args: &[&str]) -> String {
    let output = gatehouse_command(dir).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "gatehouse {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn pem_files(keys: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(keys)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pem"))
        .collect();
    files.sort();
    files
}

/// The kid (RFC 7638 thumbprint) of the public key openssl derives.
fn openssl_kid(pem: &Path) -> Result<String, String> {
    let output: Output = Command::new("openssl")
        .args(["pkey", "-in"])
        .arg(pem)
        .args(["-pubout", "-outform", "DER"])
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    // SubjectPublicKeyInfo for Ed25519 ends with the 32-byte key.
    let public = &output.stdout[output.stdout.len() - 32..];
    Ok(gatehouse::keys::thumbprint(public))
}

/// The kid of the public key pyca's `load_pem_private_key` derives.
fn pyca_kid(pem: &Path) -> Result<String, String> {
    let script = "import sys, base64, hashlib, json\n\
        from cryptography.hazmat.primitives import serialization as s\n\
        key = s.load_pem_private_key(open(sys.argv[1], 'rb').read(), None)\n\
        raw = key.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)\n\
        x = base64.urlsafe_b64encode(raw).rstrip(b'=').decode()\n\
        jwk = json.dumps({'crv': 'Ed25519', 'kty': 'OKP', 'x': x}, separators=(',', ':'))\n\
        print(base64.urlsafe_b64encode(hashlib.sha256(jwk.encode()).digest()).rstrip(b'=').decode())\n";
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(pem)
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8(output.stdout).unwrap().trim().to_string())
}

#[test]
fn generated_key_files_are_read_by_openssl_and_pyca() {
    if !command_exists("openssl", "version") || !python_has("cryptography") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kid = gatehouse(dir.path(), &["keys", "generate"])
        .trim()
        .to_string();
    let [pem] = &pem_files(&dir.path().join("keys"))[..] else {
        panic!("one key file")
    };
    let text = std::fs::read_to_string(pem).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
    assert_eq!(openssl_kid(pem).unwrap(), kid, "openssl reads the same key");
    assert_eq!(pyca_kid(pem).unwrap(), kid, "pyca reads the same key");
    assert!(gatehouse(dir.path(), &["keys", "list"]).contains("\tpkcs8-v1"));
}

/// Writes a key file as gatehouse 0.1 did: ring's PKCS#8 v2 document.
fn write_legacy_key(keys: &Path, name: &str) {
    let rng = ring::rand::SystemRandom::new();
    let der = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    std::fs::write(keys.join(name), pem).unwrap();
}

async fn jwks_kids(node: &Node) -> Vec<String> {
    let jwks = node.get("/.well-known/jwks.json").await.body;
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    kids.sort();
    kids
}

async fn introspect(node: &Node, secret: &str, token: &str) -> Value {
    json_of(
        crate::helpers::http_client()
            .post(node.url("/oauth/introspect"))
            .basic_auth("canister", Some(secret))
            .form(&[("token", token)]),
    )
    .await
}

#[actix_web::test]
async fn an_old_key_directory_works_and_migrates_with_the_same_kids() {
    let openssl = command_exists("openssl", "version");
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    write_legacy_key(&keys, "first.pem");
    write_legacy_key(&keys, "second.pem");
    let listing = gatehouse(dir.path(), &["keys", "list"]);
    assert_eq!(
        listing
            .matches("pkcs8-v2 (old form: run `keys migrate`)")
            .count(),
        2,
        "{listing}"
    );
    if openssl {
        let pem = &pem_files(&keys)[0];
        assert!(
            openssl_kid(pem).is_err(),
            "the old form is what openssl refuses"
        );
    }

    // Today's version serves on the old directory as it is.
    let node = Node::start(dir.path(), &ADMIN_ENV).await;
    let kids = jwks_kids(&node).await;
    assert_eq!(kids.len(), 2);
    let secret = node
        .create_application(json!({"client_id": "canister"}))
        .await;
    let token = node.issue_token("canister", &secret).await;
    let signer = crate::helpers::jwt_parts(&token).0["kid"].clone();
    node.kill9();

    let migrated = gatehouse(dir.path(), &["keys", "migrate"]);
    assert_eq!(
        migrated.matches("migrated to pkcs8-v1").count(),
        2,
        "{migrated}"
    );
    let listing = gatehouse(dir.path(), &["keys", "list"]);
    assert_eq!(listing.matches("\tpkcs8-v1").count(), 2, "{listing}");
    assert!(gatehouse(dir.path(), &["keys", "migrate"]).contains("already"));
    if openssl {
        let pems = pem_files(&keys);
        assert_eq!(pems.len(), 2, "{pems:?}");
        for pem in pems {
            assert!(kids.contains(&openssl_kid(&pem).unwrap()));
        }
    }

    // Same kids, same signer, and the token issued before still verifies.
    let node = Node::start(dir.path(), &ADMIN_ENV).await;
    assert_eq!(jwks_kids(&node).await, kids);
    assert_eq!(introspect(&node, &secret, &token).await["active"], true);
    let again = node.issue_token("canister", &secret).await;
    assert_eq!(crate::helpers::jwt_parts(&again).0["kid"], signer);
}
