//! A compact copy of the revoked API key ids beside sled, so that a
//! primary with a million of them starts in milliseconds instead of
//! decoding a million records.
//!
//! `revoked-api-keys.bin` (framed as `copy_file` says): the sorted 16-byte
//! ids. At start the copy is read and the change log replayed after it; a
//! copy that is missing, damaged, from another store or history, or older
//! than the log keeps is ignored, and the records are scanned instead (and
//! the copy written again).

use std::path::{Path, PathBuf};

use super::copy_file;
use crate::replication::log::Position;
use crate::revocation::CredentialId;

const FILE_NAME: &str = "revoked-api-keys.bin";
const MAGIC: &[u8; 8] = b"GHRVK02\n";

/// The copy's contents.
#[derive(Debug, PartialEq)]
pub struct RevokedIds {
    /// The store's epoch: a copy from another store is not this one's.
    pub epoch: String,
    /// Every revocation logged up to this position is in `ids`.
    pub at: Position,
    pub ids: Vec<CredentialId>,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Reads the copy; `None` if it is missing or fails any check.
pub fn read(data_dir: &Path) -> Option<RevokedIds> {
    let copy = copy_file::read(&path(data_dir), MAGIC)?;
    let payload = copy.payload();
    if payload.len() as u64 != copy.count.checked_mul(16)? {
        return None;
    }
    let ids = payload
        .chunks_exact(16)
        .map(|c| c.try_into().ok())
        .collect::<Option<Vec<CredentialId>>>()?;
    Some(RevokedIds {
        epoch: copy.epoch,
        at: copy.at,
        ids,
    })
}

/// Writes the copy whole, the ids sorted, readable by the owner only.
pub fn write(
    data_dir: &Path,
    epoch: &str,
    at: &Position,
    mut ids: Vec<CredentialId>,
) -> std::io::Result<()> {
    ids.sort_unstable();
    ids.dedup();
    copy_file::write(&path(data_dir), MAGIC, epoch, at, |out| {
        for id in &ids {
            out.write_all(id)?;
        }
        Ok(ids.len() as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: &str = "AAAAAAAAAAAAAAAAAAAAAA";

    fn at(version: u64) -> Position {
        Position {
            version,
            hash: "BBBBBBBBBBBBBBBBBBBBBB".into(),
        }
    }

    #[test]
    fn round_trips_sorted() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None);
        write(dir.path(), EPOCH, &at(7), vec![[3; 16], [1; 16], [3; 16]]).unwrap();
        let copy = read(dir.path()).unwrap();
        assert_eq!(copy.at, at(7));
        assert_eq!(copy.epoch, EPOCH);
        assert_eq!(copy.ids, [[1; 16], [3; 16]]);
    }

    #[test]
    fn a_count_that_disagrees_with_the_payload_discards_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        copy_file::write(&path(dir.path()), MAGIC, EPOCH, &at(7), |out| {
            out.write_all(&[1; 16])?;
            Ok(2)
        })
        .unwrap();
        assert_eq!(read(dir.path()), None);
    }
}
