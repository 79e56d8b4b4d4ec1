//! A copy of every application record beside sled, so that a primary with
//! 100,000 applications starts without walking sled's tree and decoding
//! 100,000 JSON documents (the two took ~0.3 s; this copy decodes in a
//! fraction of that).
//!
//! `applications.bin` (framed as `copy_file` says): the records one after
//! another in a fixed binary layout (strings and lists length-prefixed,
//! times as seconds and nanoseconds, digests as their 32 bytes). The
//! encoder destructures the record and the decoder builds it field by
//! field, so a field added to `ApplicationRecord` does not compile until
//! it is here too; the magic names the layout, and a copy of another layout
//! is ignored. At start the copy is read and the change log replayed after
//! its position (every logged application change carries the whole record,
//! so replaying is exact); otherwise the table is scanned and the copy
//! written again.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::copy_file;
use crate::applications::{ApplicationRecord, ClientId, PreviousSecret};
use crate::crypto::SecretDigest;
use crate::replication::log::Position;

const FILE_NAME: &str = "applications.bin";
const MAGIC: &[u8; 8] = b"GHAPP01\n";

pub struct Applications {
    pub epoch: String,
    /// Every application change logged up to here is in `records`.
    pub at: Position,
    pub records: Vec<ApplicationRecord>,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Reads the copy; `None` if it is missing or fails any check.
pub fn read(data_dir: &Path) -> Option<Applications> {
    let copy = copy_file::read(&path(data_dir), MAGIC)?;
    let mut input = Reader(copy.payload());
    // Every record takes more than 64 bytes: a damaged count cannot make
    // this reserve more than the file's size.
    let mut records = Vec::with_capacity(usize::try_from(copy.count).ok()?.min(input.0.len() / 64));
    while !input.0.is_empty() {
        records.push(input.record()?);
    }
    (records.len() as u64 == copy.count).then_some(Applications {
        epoch: copy.epoch,
        at: copy.at,
        records,
    })
}

/// Writes the copy whole, readable by the owner only.
pub fn write<'a>(
    data_dir: &Path,
    epoch: &str,
    at: &Position,
    records: impl IntoIterator<Item = &'a ApplicationRecord>,
) -> std::io::Result<()> {
    copy_file::write(&path(data_dir), MAGIC, epoch, at, |out| {
        let mut out = std::io::BufWriter::new(out);
        let mut count = 0;
        for record in records {
            encode(&mut out, record)?;
            count += 1;
        }
        out.flush()?;
        Ok(count)
    })
}

fn encode(out: &mut impl Write, record: &ApplicationRecord) -> std::io::Result<()> {
    let ApplicationRecord {
        client_id,
        name,
        groups,
        scopes,
        audiences,
        access_token_ttl,
        active,
        created_at,
        updated_at,
        secret,
        previous_secret,
        not_before,
        generation,
    } = record;
    put_str(out, client_id)?;
    put_str(out, name)?;
    for list in [groups, scopes, audiences] {
        put_len(out, list.len())?;
        for item in list {
            put_str(out, item)?;
        }
    }
    out.write_all(&access_token_ttl.to_le_bytes())?;
    out.write_all(&[u8::from(*active)])?;
    put_time(out, created_at)?;
    put_time(out, updated_at)?;
    out.write_all(&secret.to_bytes())?;
    match previous_secret {
        None => out.write_all(&[0])?,
        Some(previous) => {
            let PreviousSecret { digest, expires_at } = &**previous;
            out.write_all(&[1])?;
            out.write_all(&digest.to_bytes())?;
            put_time(out, expires_at)?;
        }
    }
    out.write_all(&not_before.to_le_bytes())?;
    out.write_all(&generation.to_le_bytes())
}

fn put_len(out: &mut impl Write, len: usize) -> std::io::Result<()> {
    let len = u32::try_from(len).map_err(|_| std::io::Error::other("field too long"))?;
    out.write_all(&len.to_le_bytes())
}

fn put_str(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    put_len(out, text.len())?;
    out.write_all(text.as_bytes())
}

fn put_time(out: &mut impl Write, time: &DateTime<Utc>) -> std::io::Result<()> {
    out.write_all(&time.timestamp().to_le_bytes())?;
    out.write_all(&time.timestamp_subsec_nanos().to_le_bytes())
}

/// The payload not yet read; every read checks its bounds.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn record(&mut self) -> Option<ApplicationRecord> {
        Some(ApplicationRecord {
            client_id: ClientId::try_from(self.string()?).ok()?,
            name: self.string()?.into(),
            groups: self.strings()?.into(),
            scopes: self.strings()?.into(),
            audiences: self.strings()?.into(),
            access_token_ttl: u32::from_le_bytes(self.array()?),
            active: match self.array::<1>()? {
                [0] => false,
                [1] => true,
                _ => return None,
            },
            created_at: self.time()?,
            updated_at: self.time()?,
            secret: SecretDigest::from_bytes(self.array()?),
            previous_secret: match self.array::<1>()? {
                [0] => None,
                [1] => Some(Box::new(PreviousSecret {
                    digest: SecretDigest::from_bytes(self.array()?),
                    expires_at: self.time()?,
                })),
                _ => return None,
            },
            not_before: i64::from_le_bytes(self.array()?),
            generation: u64::from_le_bytes(self.array()?),
        })
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(u32::from_le_bytes(self.array()?)).ok()
    }

    fn string(&mut self) -> Option<String> {
        let len = self.len()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    fn strings(&mut self) -> Option<Vec<String>> {
        let len = self.len()?;
        // Each string takes at least its 4-byte length.
        let mut items = Vec::with_capacity(len.min(self.0.len() / 4));
        for _ in 0..len {
            items.push(self.string()?);
        }
        Some(items)
    }

    fn time(&mut self) -> Option<DateTime<Utc>> {
        let seconds = i64::from_le_bytes(self.array()?);
        DateTime::from_timestamp(seconds, u32::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EPOCH: &str = "AAAAAAAAAAAAAAAAAAAAAA";

    fn at() -> Position {
        Position {
            version: 3,
            hash: "BBBBBBBBBBBBBBBBBBBBBB".into(),
        }
    }

    fn time(seconds: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, nanos).unwrap()
    }

    prop_compose! {
        fn record()(
            client_id in "[a-z0-9-]{1,20}",
            name in "\\PC{0,40}",
            groups in prop::collection::vec("[a-z:é-]{0,12}", 0..4),
            scopes in prop::collection::vec("[a-z:]{1,12}", 0..3),
            audiences in prop::collection::vec("[a-z:/.]{1,20}", 0..2),
            access_token_ttl in any::<u32>(),
            active in any::<bool>(),
            times in (0i64..4_000_000_000, 0u32..1_000_000_000),
            secret in any::<[u8; 32]>(),
            previous in prop::option::of((any::<[u8; 32]>(), 0i64..4_000_000_000)),
            not_before in any::<i64>(),
            generation in any::<u64>(),
        ) -> ApplicationRecord {
            ApplicationRecord {
                client_id: ClientId::parse(&client_id).unwrap(), name: name.into(), groups: groups.into(),
                scopes: scopes.into(), audiences: audiences.into(), access_token_ttl, active,
                created_at: time(times.0, times.1),
                updated_at: time(times.0 + 1, 0),
                secret: SecretDigest::from_bytes(secret),
                previous_secret: previous.map(|(digest, expires)| Box::new(PreviousSecret {
                    digest: SecretDigest::from_bytes(digest),
                    expires_at: time(expires, 5),
                })),
                not_before, generation,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever is written reads back the same as its JSON form says.
        #[test]
        fn round_trips(records in prop::collection::vec(record(), 0..20)) {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), EPOCH, &at(), &records).unwrap();
            let copy = read(dir.path()).unwrap();
            prop_assert_eq!(copy.at, at());
            prop_assert_eq!(
                serde_json::to_string(&copy.records).unwrap(),
                serde_json::to_string(&records).unwrap()
            );
        }

        /// A payload cut short or padded (with a matching digest, as a
        /// writer bug would leave it) is refused, never misread.
        #[test]
        fn a_payload_of_the_wrong_length_is_refused(
            records in prop::collection::vec(record(), 1..5),
            cut in 1usize..64,
            pad in any::<bool>(),
        ) {
            let mut payload = Vec::new();
            for record in &records {
                encode(&mut payload, record).unwrap();
            }
            if pad {
                payload.extend(std::iter::repeat_n(0u8, cut));
            } else {
                payload.truncate(payload.len().saturating_sub(cut));
            }
            let dir = tempfile::tempdir().unwrap();
            copy_file::write(&path(dir.path()), MAGIC, EPOCH, &at(), |out| {
                out.write_all(&payload)?;
                Ok(records.len() as u64)
            })
            .unwrap();
            prop_assert!(read(dir.path()).is_none());
        }
    }
}
