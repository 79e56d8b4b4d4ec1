//! Single-core bounds for the hot paths, measured with ring directly,
//! through jsonwebtoken with gatehouse's ring provider, and through
//! gatehouse's own issuer and verifier without HTTP:
//! `cargo bench --bench crypto`. Prints operations per second.

use std::hint::black_box;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

const RUN: Duration = Duration::from_secs(2);

fn run_time() -> Duration {
    match std::env::var_os("BOUNDS_ONLY") {
        Some(_) => Duration::from_secs(1),
        None => RUN,
    }
}

fn rate(name: &str, mut op: impl FnMut()) -> f64 {
    for _ in 0..200 {
        op();
    }
    let start = Instant::now();
    let mut n = 0u64;
    let run = run_time();
    while start.elapsed() < run {
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
    // REVOCATIONS_ONLY=1 runs just the revoked-id lookups (at the end).
    if std::env::var_os("REVOCATIONS_ONLY").is_some() {
        revocation_lookups();
        return;
    }
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
    // bench/load.sh re-measures just the bounds in every round.
    if std::env::var_os("BOUNDS_ONLY").is_some() {
        return;
    }

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
    gatehouse_paths();
    let decoding = DecodingKey::from_ed_der(&public);
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_aud = false;
    rate("jsonwebtoken decode (ring provider)", || {
        black_box(
            jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap(),
        );
    });
    revocation_lookups();
}

/// The issuer and the verifier as the HTTP handlers call them.
fn gatehouse_paths() {
    use std::sync::Arc;

    use chrono::Utc;
    use gatehouse::applications::ApplicationRecord;
    use gatehouse::crypto::SecretDigest;
    use gatehouse::directory::Directory;
    use gatehouse::issuer::{ClientAuthMethod, ClientCredentials, TokenIssuer, TokenRequest};
    use gatehouse::keys::{KeyDir, KeyRing};
    use gatehouse::resources::{NewResource, Resource};
    use gatehouse::target::RequestTarget;
    use gatehouse::throttle::Throttle;
    use gatehouse::verifier::Verifier;

    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(KeyRing::new(
        KeyDir::open(dir.path()).unwrap().load_or_init().unwrap(),
    ));
    let now = Utc::now();
    let app = ApplicationRecord {
        client_id: gatehouse::applications::ClientId::parse("canister").unwrap(),
        name: "Canister".into(),
        groups: vec!["media".to_string()].into(),
        scopes: vec!["webdav:read".to_string()].into(),
        access_token_ttl: 3600,
        active: true,
        created_at: now,
        updated_at: now,
        secret: SecretDigest::of("secret"),
        previous_secret: None,
        audiences: Default::default(),
        generation: 0,
        not_before: 0,
    };
    let rule = NewResource {
        host: Some("dav.example.com".into()),
        allowed_groups: vec!["media".into()],
        ..Default::default()
    };
    let resource = Resource::create("dav".into(), rule, now).unwrap();
    let directory = Arc::new(Directory::new(vec![app], vec![resource]));
    let issuer_url = "https://auth.example.com".to_string();
    let throttle = Arc::new(Throttle::new(10, 60));
    let issuer = TokenIssuer::new(
        issuer_url.clone(),
        keys.clone(),
        directory.clone(),
        throttle,
    );
    let request = || TokenRequest {
        grant_type: Some("client_credentials".into()),
        credentials: Some(ClientCredentials {
            client_id: "canister".into(),
            secret: "secret".into(),
            method: ClientAuthMethod::Basic,
        }),
        ..Default::default()
    };
    let addr = "198.51.100.7".parse().unwrap();
    rate("gatehouse issue (no HTTP)", || {
        black_box(issuer.issue(request(), addr, now).unwrap());
    });
    let tokens: Vec<String> = (0..150_000)
        .map(|_| issuer.issue(request(), addr, now).unwrap().access_token)
        .collect();
    let verifier = Verifier::new(issuer_url);
    let target = RequestTarget::named("PROPFIND", "dav.example.com", "/photos/").unwrap();
    let ts = now.timestamp();
    let verify = |token: &str| {
        let (snapshot, key_set) = (directory.snapshot(), keys.snapshot());
        let inputs = gatehouse::verifier::Inputs::of(&directory, &snapshot, &key_set);
        let source = || std::net::IpAddr::from([127, 0, 0, 1]);
        let credential = gatehouse::verifier::Credential::Bearer(token);
        verifier.verify(&inputs, credential, &target, source, ts)
    };
    let mut fresh = tokens.iter();
    rate("gatehouse verify, fresh token (no HTTP)", || {
        let token = fresh.next().unwrap();
        black_box(verify(token).unwrap());
    });
    let reused = &tokens[0];
    rate("gatehouse verify, reused token (no HTTP)", || {
        black_box(verify(reused).unwrap());
    });

    // The same with a million revoked ids (API keys and access tokens).
    let before = rss_kib();
    directory
        .revocations
        .revoke_api_keys((0u32..1_000_000).map(revoked_id));
    for i in 0u32..1_000_000 {
        directory
            .revocations
            .revoke_access_token(revoked_id(i ^ 0x8000_0000), ts + 3600, ts);
    }
    println!(
        "revocation sets: {} API keys + {} tokens, RSS +{} MiB",
        directory.revocations.len().0,
        directory.revocations.len().1,
        (rss_kib() - before) / 1024
    );
    rate("gatehouse verify, reused token, 2M revoked", || {
        black_box(verify(reused).unwrap());
    });
}

fn revoked_id(i: u32) -> [u8; 16] {
    let mut id = [0x5a; 16];
    id[..4].copy_from_slice(&i.to_le_bytes());
    id
}

/// This process's resident set, from /proc (0 where there is none).
fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Revoked API key lookups, as the verifier makes them, at 0, 1k and 1M
/// revoked ids (and 1M with recent revocations not yet merged), hits and
/// misses, next to the `RwLock<HashSet>` that held them before issue 12.
/// Lookups run back to back over 1M probes in random order, so misses in
/// the cache of one may overlap the next's. Then the cost of building,
/// merging and replacing at 1M.
fn revocation_lookups() {
    use std::collections::HashSet;
    use std::sync::RwLock;

    use gatehouse::revocation::Revocations;

    let mut seed = 0x5eed_u64;
    let mut random_ids = |n: usize| random_ids(&mut seed, n);
    let mut pick = 0xbead_u64;
    // 1M probes of each kind, in random order.
    let probes = 1 << 20;
    println!(
        "{:<40} {:>9} {:>9}",
        "revoked API key lookup, ns", "new", "HashSet"
    );
    for (label, n, unmerged) in [
        ("0 revoked", 0, 0),
        ("1k revoked", 1_000, 0),
        ("1M revoked", 1_000_000, 0),
        ("1M revoked + 4096 not yet merged", 1_000_000, 4096),
    ] {
        let ids = random_ids(n + unmerged);
        let new = Revocations::default();
        new.revoke_api_keys(ids[..n].iter().copied());
        for id in &ids[n..] {
            new.revoke_api_key(*id);
        }
        let old: RwLock<HashSet<[u8; 16]>> = RwLock::new(ids.iter().copied().collect());
        let misses = random_ids(probes);
        let hits: Vec<[u8; 16]> = match ids.len() {
            0 => Vec::new(),
            len => (0..probes)
                .map(|_| ids[splitmix(&mut pick) as usize % len])
                .collect(),
        };
        for (kind, probes, want) in [("hit", &hits, true), ("miss", &misses, false)] {
            if probes.is_empty() {
                continue;
            }
            let new_lookup = |id: &[u8; 16]| new.is_api_key_revoked(id);
            let old_lookup = |id: &[u8; 16]| old.read().unwrap().contains(id);
            assert!(probes.iter().take(1000).all(|id| new_lookup(id) == want));
            assert!(probes.iter().take(1000).all(|id| old_lookup(id) == want));
            println!(
                "{:<40} {:>9.1} {:>9.1}",
                format!("  {label}, {kind}"),
                ns_per_lookup(probes, new_lookup),
                ns_per_lookup(probes, old_lookup),
            );
        }
        if n == 1_000_000 && unmerged == 0 {
            let buckets = (old.read().unwrap().capacity() * 8 / 7).next_power_of_two();
            println!(
                "  memory at 1M, from capacities: new {:.1} MB, HashSet {:.1} MB",
                new.api_key_heap_bytes() as f64 / 1e6,
                (buckets * 17) as f64 / 1e6
            );
        }
    }

    // Building at 1M: in bulk (startup), replacing (a replica), and one
    // revocation at a time past it, the slowest being the one that merges.
    let ids = random_ids(1_000_000);
    let revocations = Revocations::default();
    let start = Instant::now();
    revocations.revoke_api_keys(ids.iter().copied());
    let bulk = start.elapsed();
    let start = Instant::now();
    revocations.replace(ids.clone(), vec![], 0);
    let replace = start.elapsed();
    // Three times the delta's limit (8192): three merges.
    let more = random_ids(3 * 8192);
    let mut slowest = Duration::ZERO;
    let start = Instant::now();
    for id in &more {
        let one = Instant::now();
        revocations.revoke_api_key(*id);
        slowest = slowest.max(one.elapsed());
    }
    let each = start.elapsed() / more.len() as u32;
    println!(
        "  1M ids: bulk {:.1} ms, replace {:.1} ms, a merge {:.2} ms, \
         revoke_api_key {:.2} us on average",
        bulk.as_secs_f64() * 1e3,
        replace.as_secs_f64() * 1e3,
        slowest.as_secs_f64() * 1e3,
        each.as_secs_f64() * 1e6,
    );
}

/// Nanoseconds a lookup of `probes`, in turn, takes.
fn ns_per_lookup(probes: &[[u8; 16]], lookup: impl Fn(&[u8; 16]) -> bool) -> f64 {
    assert!(probes.len().is_power_of_two());
    let mask = probes.len() - 1;
    let run = run_time() / 4;
    let start = Instant::now();
    let (mut n, mut i) = (0u64, 0usize);
    while start.elapsed() < run {
        for _ in 0..1000 {
            black_box(lookup(black_box(&probes[i])));
            i = (i + 1) & mask;
        }
        n += 1000;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// `n` uniformly random ids.
fn random_ids(seed: &mut u64, n: usize) -> Vec<[u8; 16]> {
    (0..n)
        .map(|_| {
            let mut id = [0u8; 16];
            for half in id.chunks_mut(8) {
                half.copy_from_slice(&splitmix(seed).to_le_bytes());
            }
            id
        })
        .collect()
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
