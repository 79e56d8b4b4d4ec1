//! The framing shared by the compact copies beside sled (revoked ids,
//! applications): a magic line naming the format, the store's epoch, the
//! change-log position (version and chain hash) the copy is complete up
//! to, the payload, its record count, and a SHA-256 of all of it.
//!
//! sled stays the source of truth. A copy is used only when it is intact,
//! from this store (epoch), and names a position of this store's history
//! that the log still continues from: a copy written on a timeline that a
//! restored backup has since forgotten names a hash the log does not hold,
//! and is ignored.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use ring::digest;

use crate::replication::log::Position;

/// Epochs and chain hashes: base64url of 16 bytes.
const ID_LEN: usize = 22;
const DIGEST_LEN: usize = 32;
/// What follows the magic: epoch, version, hash.
const HEADER_LEN: usize = ID_LEN + 8 + ID_LEN;
/// What follows the payload: count, digest.
const TRAILER_LEN: usize = 8 + DIGEST_LEN;

/// A copy as read: where it stands, how many records, and its payload.
pub struct Copy {
    pub epoch: String,
    pub at: Position,
    pub count: u64,
    bytes: Vec<u8>,
    payload: std::ops::Range<usize>,
}

impl Copy {
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.payload.clone()]
    }
}

/// Reads a copy in `magic`'s format; `None` if missing or damaged.
pub fn read(path: &Path, magic: &[u8; 8]) -> Option<Copy> {
    let bytes = fs::read(path).ok()?;
    let payload_start = magic.len() + HEADER_LEN;
    if bytes.len() < payload_start + TRAILER_LEN || !bytes.starts_with(magic) {
        return None;
    }
    let digest_at = bytes.len() - DIGEST_LEN;
    if digest::digest(&digest::SHA256, &bytes[..digest_at]).as_ref() != &bytes[digest_at..] {
        return None;
    }
    let text = |at: usize| {
        Some(
            std::str::from_utf8(bytes.get(at..at + ID_LEN)?)
                .ok()?
                .to_owned(),
        )
    };
    let number = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    let epoch = text(magic.len())?;
    let version = number(magic.len() + ID_LEN)?;
    let hash = text(magic.len() + ID_LEN + 8)?;
    let count_at = digest_at - 8;
    let count = number(count_at)?;
    Some(Copy {
        epoch,
        at: Position { version, hash },
        count,
        payload: payload_start..count_at,
        bytes,
    })
}

/// Writes a copy whole. `payload` streams its records into the writer it
/// is given and returns their count. Temp file (owner-only), fsync,
/// rename, directory fsync: a crash leaves the old copy or the new one.
pub fn write(
    path: &Path,
    magic: &[u8; 8],
    epoch: &str,
    at: &Position,
    payload: impl FnOnce(&mut dyn Write) -> std::io::Result<u64>,
) -> std::io::Result<()> {
    if epoch.len() != ID_LEN || at.hash.len() != ID_LEN {
        return Err(std::io::Error::other("unexpected epoch or hash length"));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let written = write_new(&tmp, magic, epoch, at, payload);
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    crate::private_files::sync_dir(dir)
}

fn write_new(
    path: &Path,
    magic: &[u8; 8],
    epoch: &str,
    at: &Position,
    payload: impl FnOnce(&mut dyn Write) -> std::io::Result<u64>,
) -> std::io::Result<()> {
    let mut out = Hashing {
        inner: BufWriter::new(crate::private_files::create_private_file(path)?),
        context: digest::Context::new(&digest::SHA256),
    };
    out.write_all(magic)?;
    out.write_all(epoch.as_bytes())?;
    out.write_all(&at.version.to_le_bytes())?;
    out.write_all(at.hash.as_bytes())?;
    let count = payload(&mut out)?;
    out.write_all(&count.to_le_bytes())?;
    let Hashing { mut inner, context } = out;
    inner.write_all(context.finish().as_ref())?;
    inner.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    context: digest::Context,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.context.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"GHTEST1\n";
    const EPOCH: &str = "AAAAAAAAAAAAAAAAAAAAAA";

    fn position() -> Position {
        Position {
            version: 7,
            hash: "BBBBBBBBBBBBBBBBBBBBBB".into(),
        }
    }

    fn write_abc(path: &Path) {
        write(path, MAGIC, EPOCH, &position(), |out| {
            out.write_all(b"abc")?;
            Ok(3)
        })
        .unwrap();
    }

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy.bin");
        assert!(read(&path, MAGIC).is_none());
        write_abc(&path);
        let copy = read(&path, MAGIC).unwrap();
        assert_eq!(
            (copy.epoch.as_str(), &copy.at, copy.count),
            (EPOCH, &position(), 3)
        );
        assert_eq!(copy.payload(), b"abc");
        assert!(read(&path, b"GHOTHER\n").is_none(), "another format");
    }

    #[test]
    fn any_damage_discards_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy.bin");
        write_abc(&path);
        let good = fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 1;
            fs::write(&path, &bad).unwrap();
            assert!(read(&path, MAGIC).is_none(), "byte {at} flipped");
        }
        fs::write(&path, &good[..good.len() - 5]).unwrap();
        assert!(read(&path, MAGIC).is_none(), "truncated");
    }
}
