//! Benchmark reference: the fastest an HTTP endpoint that signs or checks
//! one Ed25519 signature can be on this machine. Each route does exactly
//! one ring operation and nothing else: no parsing, no JSON, no state.
//! `bench/load.sh` measures it in the same rounds as gatehouse, so that
//! the report can tell the machine's own HTTP cost apart from gatehouse's.
//!
//! * `POST /sign`: signs a fixed 400-byte message (the size of a JWT's
//!   signing input) and answers the 86-character signature.
//! * `GET /verify`: checks a fixed signature over that message.
//!
//! `cargo run --release --example crypto_over_http -- 127.0.0.1:PORT`
//! (one worker; pin it with `taskset` as gatehouse is pinned).

use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

struct Fixture {
    key_pair: Ed25519KeyPair,
    public_key: Vec<u8>,
    message: Vec<u8>,
    signature: Vec<u8>,
}

/// The body is read (and ignored) so that the connection stays open: actix
/// closes a connection whose request body was left unread.
async fn sign(_body: web::Bytes, fixture: web::Data<Arc<Fixture>>) -> HttpResponse {
    let signature = fixture.key_pair.sign(&fixture.message);
    HttpResponse::Ok().body(URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

async fn verify(fixture: web::Data<Arc<Fixture>>) -> HttpResponse {
    let key = UnparsedPublicKey::new(&ED25519, &fixture.public_key);
    match key.verify(&fixture.message, &fixture.signature) {
        Ok(()) => HttpResponse::Ok().finish(),
        Err(_) => HttpResponse::Unauthorized().finish(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .ok_or("usage: crypto_over_http ADDRESS:PORT")?;
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| "cannot generate a key")?;
    let key_pair =
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| "cannot parse the key")?;
    let message = vec![b'x'; 400];
    let fixture = Arc::new(Fixture {
        public_key: key_pair.public_key().as_ref().to_vec(),
        signature: key_pair.sign(&message).as_ref().to_vec(),
        key_pair,
        message,
    });
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(Arc::clone(&fixture)))
                .route("/sign", web::post().to(sign))
                .route("/verify", web::get().to(verify))
        })
        .workers(1)
        .bind(listen)?
        .run()
        .await
    })?;
    Ok(())
}
