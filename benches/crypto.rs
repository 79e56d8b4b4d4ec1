//! Single-core bounds for the hot paths, measured with ring directly and
//! through jsonwebtoken with gatehouse's ring provider:
//! `cargo bench --bench crypto`. Prints operations per second.

use std::hint::black_box;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

const RUN: Duration = Duration::from_secs(2);

fn rate(name: &str, mut op: impl FnMut()) -> f64 {
    for _ in 0..200 {
        op();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN {
        for _ in 0..100 {
            op();
        }
        n += 100;
    }
    let per_sec = n as f64 / start.elapsed().as_secs_f64();
    println!("{name:<40} {per_sec:>10.0} /s");
    per_sec
}

fn main() {
    gatehouse::crypto::jwt_provider::install();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let public = pair.public_key().as_ref().to_vec();
    let message = vec![b'x'; 300]; // about the signing input of an access token
    let signature = pair.sign(&message);

    rate("ring ed25519 sign", || {
        black_box(pair.sign(black_box(&message)));
    });
    rate("ring ed25519 verify", || {
        UnparsedPublicKey::new(&ED25519, &public)
            .verify(black_box(&message), signature.as_ref())
            .unwrap();
    });

    let claims = serde_json::json!({
        "iss": "https://auth.example.com", "sub": "canister", "client_id": "canister",
        "aud": "https://auth.example.com", "iat": 1_700_000_000, "exp": 4_000_000_000u64,
        "jti": "cGTKQT6HpxvShLAZZEYflA", "groups": ["media"], "scope": "webdav:read webdav:write",
    });
    let header = Header {
        typ: Some("at+jwt".into()),
        kid: Some("kid".into()),
        ..Header::new(Algorithm::EdDSA)
    };
    let encoding = EncodingKey::from_ed_der(pkcs8.as_ref());
    rate("jsonwebtoken encode (ring provider)", || {
        black_box(jsonwebtoken::encode(&header, &claims, &encoding).unwrap());
    });
    let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
    let decoding = DecodingKey::from_ed_der(&public);
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_aud = false;
    rate("jsonwebtoken decode (ring provider)", || {
        black_box(
            jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap(),
        );
    });
}
