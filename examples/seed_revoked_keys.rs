//! Benchmark helper: fills a data directory with revoked API keys, so that
//! a node started on it holds that many revoked ids in memory.
//!
//! `cargo run --release --example seed_revoked_keys -- DATA_DIR COUNT`

use chrono::Utc;
use gatehouse::api_keys::ApiKeyRecord;
use gatehouse::crypto::random_id;
use gatehouse::store::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: seed_revoked_keys DATA_DIR COUNT")?;
    let count: usize = args
        .next()
        .ok_or("usage: seed_revoked_keys DATA_DIR COUNT")?
        .parse()?;
    let store = Store::open(std::path::Path::new(&dir))?;
    let now = Utc::now();
    for chunk in 0..count.div_ceil(100_000) {
        let records: Vec<ApiKeyRecord> = (0..100_000.min(count - chunk * 100_000))
            .map(|_| {
                Ok(ApiKeyRecord {
                    id: random_id()?,
                    client_id: "seeded".into(),
                    name: "seeded".into(),
                    created_at: now,
                    expires_at: None,
                    revoked_at: Some(now),
                    kid: None,
                })
            })
            .collect::<Result<_, gatehouse::crypto::RandomnessUnavailable>>()?;
        store
            .api_keys
            .put_many(records.iter().map(|r| (r.id.as_str(), r)))?;
    }
    println!("seeded {count} revoked API keys into {dir}");
    Ok(())
}
