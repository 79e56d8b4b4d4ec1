//! A compact copy of the revoked API key ids beside sled, so that a
//! primary with a million of them starts in milliseconds instead of
//! decoding a million records.
//!
//! `revoked-api-keys.bin`: a magic line, the change-log version the copy is
//! complete up to, the id count, the sorted 16-byte ids, and a SHA-256 of
//! all of it. sled stays the source of truth: at start the copy is read and
//! the change log replayed after its version; a copy that is missing,
//! damaged, from another store or older than the log keeps is ignored and
//! the records are scanned instead (and the copy written again).

use std::fs;
use std::path::{Path, PathBuf};

use crate::crypto::sha256;
use crate::revocation::CredentialId;

const FILE_NAME: &str = "revoked-api-keys.bin";
const MAGIC: &[u8; 8] = b"GHRVK01\n";
const EPOCH_LEN: usize = 22;
const HEADER_LEN: usize = MAGIC.len() + EPOCH_LEN + 8 + 8;
const DIGEST_LEN: usize = 32;

/// The copy's contents.
#[derive(Debug, PartialEq)]
pub struct RevokedIds {
    /// The store's epoch: a copy from another store is not this one's.
    pub epoch: String,
    /// Every revocation logged up to this version is in `ids`.
    pub version: u64,
    pub ids: Vec<CredentialId>,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Reads the copy; `None` if it is missing or fails any check.
pub fn read(data_dir: &Path) -> Option<RevokedIds> {
    let bytes = fs::read(path(data_dir)).ok()?;
    if bytes.len() < HEADER_LEN + DIGEST_LEN || !bytes.starts_with(MAGIC) {
        return None;
    }
    let (body, digest) = bytes.split_at(bytes.len() - DIGEST_LEN);
    if sha256(body) != digest {
        return None;
    }
    let epoch = std::str::from_utf8(&body[MAGIC.len()..MAGIC.len() + EPOCH_LEN]).ok()?;
    let number = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?))
    };
    let version = number(MAGIC.len() + EPOCH_LEN)?;
    let count = usize::try_from(number(MAGIC.len() + EPOCH_LEN + 8)?).ok()?;
    let ids_bytes = &body[HEADER_LEN..];
    if ids_bytes.len() != count.checked_mul(16)? {
        return None;
    }
    let ids = ids_bytes
        .chunks_exact(16)
        .map(|c| c.try_into().ok())
        .collect::<Option<Vec<CredentialId>>>()?;
    Some(RevokedIds {
        epoch: epoch.to_string(),
        version,
        ids,
    })
}

/// Writes the copy whole (sorted ids; temp file, fsync, rename, directory
/// fsync), readable by the owner only.
pub fn write(
    data_dir: &Path,
    epoch: &str,
    version: u64,
    mut ids: Vec<CredentialId>,
) -> std::io::Result<()> {
    if epoch.len() != EPOCH_LEN {
        return Err(std::io::Error::other("unexpected epoch length"));
    }
    ids.sort_unstable();
    ids.dedup();
    let mut body = Vec::with_capacity(HEADER_LEN + ids.len() * 16 + DIGEST_LEN);
    body.extend_from_slice(MAGIC);
    body.extend_from_slice(epoch.as_bytes());
    body.extend_from_slice(&version.to_le_bytes());
    body.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    for id in &ids {
        body.extend_from_slice(id);
    }
    let digest = sha256(&body);
    body.extend_from_slice(&digest);
    let tmp = data_dir.join(format!(".{FILE_NAME}.tmp"));
    let _ = fs::remove_file(&tmp);
    crate::keys::write_private_file(&tmp, &body)?;
    fs::rename(&tmp, path(data_dir))?;
    crate::keys::sync_dir(data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: &str = "AAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn round_trips_sorted() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None);
        write(dir.path(), EPOCH, 7, vec![[3; 16], [1; 16], [3; 16]]).unwrap();
        let copy = read(dir.path()).unwrap();
        assert_eq!(copy.version, 7);
        assert_eq!(copy.epoch, EPOCH);
        assert_eq!(copy.ids, [[1; 16], [3; 16]]);
    }

    #[test]
    fn any_damage_discards_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), EPOCH, 7, vec![[1; 16], [2; 16]]).unwrap();
        let good = fs::read(path(dir.path())).unwrap();
        for at in [0, 9, HEADER_LEN - 1, HEADER_LEN + 3, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            fs::write(path(dir.path()), &bad).unwrap();
            assert_eq!(read(dir.path()), None, "byte {at} flipped");
        }
        fs::write(path(dir.path()), &good[..good.len() - 5]).unwrap();
        assert_eq!(read(dir.path()), None, "truncated");
    }
}
