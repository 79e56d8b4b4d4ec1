//! Benchmark helper: fills a data directory with revoked API keys, so that
//! a node started on it holds that many revoked ids in memory, and
//! optionally with applications.
//!
//! `cargo run --release --example seed_revoked_keys -- DATA_DIR COUNT [--applications N]`
//!
//! The records go straight into the tables, not into the change log (a
//! replica of the seeded primary starts with a snapshot anyway) nor the
//! API key index (the next start indexes the store, as it does one made
//! by a build from before the index).
//!
//! Memory: sled keeps much of what one open `Db` has written in memory,
//! more the larger each batch, whatever its cache capacity. Batches of
//! 100,000 records in one session peaked at 6.5 GB RSS for a million keys
//! (10,000: 5.7 GB). So records go in batches of `BATCH`, and the store is
//! closed and opened again every `REOPEN_EVERY` records: about 250 MB and
//! 30 s for a million keys on the 2-core benchmark VM.

use chrono::{DateTime, Utc};
use gatehouse::api_keys::ApiKeyRecord;
use gatehouse::applications::{ApplicationRecord, CLIENT_SECRET_PREFIX, DEFAULT_ACCESS_TOKEN_TTL};
use gatehouse::crypto::{
    RandomnessUnavailable, SecretDigest, random_bytes, random_id, random_secret,
};
use gatehouse::store::{Store, Table};
use serde::Serialize;
use serde::de::DeserializeOwned;

const USAGE: &str = "usage: seed_revoked_keys DATA_DIR COUNT [--applications N]";
/// Records per batch (one sled batch, one flush).
const BATCH: usize = 1_000;
/// Records written between closing and reopening the store.
const REOPEN_EVERY: usize = 50_000;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut positional = Vec::new();
    let mut applications = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.strip_prefix("--applications") {
            Some("") => applications = args.next().ok_or(USAGE)?.parse()?,
            Some(value) if value.starts_with('=') => applications = value[1..].parse()?,
            _ if arg.starts_with("--") => return Err(USAGE.into()),
            _ => positional.push(arg),
        }
    }
    let [dir, count] = <[String; 2]>::try_from(positional).map_err(|_| USAGE)?;
    let count: usize = count.parse()?;
    let path = std::path::Path::new(&dir);
    let now = Utc::now();
    // Records go straight into the tables, past the change log: copies
    // written before would not know of them (a start would then scan).
    for copy in [
        gatehouse::store::revoked_ids::path(path),
        gatehouse::store::application_copy::path(path),
    ] {
        match std::fs::remove_file(&copy) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }

    seed(
        path,
        count,
        |store| &store.api_keys,
        |_| revoked_key(now),
        |r| &r.id,
    )?;
    println!("seeded {count} revoked API keys into {dir}");
    if applications > 0 {
        seed(
            path,
            applications,
            |store| &store.applications,
            |n| application(n + 1, now),
            |r| &r.client_id,
        )?;
        println!("seeded {applications} applications (seeded-000001 ...) into {dir}");
    }
    // Past the API key index too: the next start indexes the store again
    // (last, since every open of the store indexes it).
    open(path)?.key_index.forget()?;
    Ok(())
}

/// Writes `count` records made by `make(n)` into one table, in batches,
/// reopening the store every `REOPEN_EVERY` records.
fn seed<T: Serialize + DeserializeOwned>(
    path: &std::path::Path,
    count: usize,
    table: impl Fn(&Store) -> &Table<T>,
    make: impl Fn(usize) -> Result<T, RandomnessUnavailable>,
    key: impl Fn(&T) -> &str,
) -> Result<(), Error> {
    for session in (0..count).step_by(REOPEN_EVERY) {
        let store = open(path)?;
        let end = count.min(session + REOPEN_EVERY);
        for start in (session..end).step_by(BATCH) {
            let records = (start..end.min(start + BATCH))
                .map(&make)
                .collect::<Result<Vec<_>, _>>()?;
            table(&store).put_many(records.iter().map(|r| (key(r), r)))?;
        }
    }
    Ok(())
}

/// Opens the store; waits for the last session's lock to go: sled's
/// background flusher lets go of the file a moment after the `Db` is dropped.
fn open(path: &std::path::Path) -> Result<Store, Error> {
    let mut tries = 0;
    loop {
        match Store::open(path) {
            Err(e) if tries < 200 && e.to_string().contains("could not acquire lock") => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            result => return Ok(result?),
        }
    }
}

fn revoked_key(now: DateTime<Utc>) -> Result<ApiKeyRecord, RandomnessUnavailable> {
    Ok(ApiKeyRecord {
        id: random_id()?,
        client_id: "seeded".into(),
        name: "seeded".into(),
        created_at: now,
        expires_at: None,
        revoked_at: Some(now),
        kid: None,
    })
}

/// An application as `Admin::create_application` builds one: a fresh
/// secret (only its digest is kept), a random generation, `not_before` at
/// creation. Groups, scopes and audiences vary a little, as they would.
fn application(n: usize, now: DateTime<Utc>) -> Result<ApplicationRecord, RandomnessUnavailable> {
    let secret = random_secret(CLIENT_SECRET_PREFIX)?;
    let generation = (u64::from_le_bytes(random_bytes::<8>()?) & ((1 << 53) - 1)).max(1);
    let mut groups = vec!["media".to_string(), format!("team-{:02}", n % 50)];
    groups.sort();
    let (scopes, audiences) = match n % 3 {
        0 => (vec!["webdav:read".to_string()], vec![]),
        1 => (
            vec!["webdav:read".to_string(), "webdav:write".to_string()],
            vec!["webdav".to_string()],
        ),
        _ => (
            vec!["api:read".to_string(), "api:write".to_string()],
            vec!["https://api.example.com".to_string()],
        ),
    };
    Ok(ApplicationRecord {
        client_id: gatehouse::applications::ClientId::parse(&format!("seeded-{n:06}"))
            .expect("seeded ids are client ids"),
        name: format!("Seeded application {n}").into(),
        groups: groups.into(),
        scopes: scopes.into(),
        audiences: audiences.into(),
        access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
        active: true,
        created_at: now,
        updated_at: now,
        secret: SecretDigest::of(&secret),
        previous_secret: None,
        not_before: now.timestamp(),
        generation,
    })
}
