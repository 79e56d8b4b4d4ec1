//! Files and directories only the service's user may read (mode 0600 and
//! 0700): key files, the bootstrap admin token, the store's copies, the
//! token helper's cache. Each is synced before it counts as written.

use std::fs;
use std::io::Write;
use std::path::Path;

/// Creates a directory readable only by its owner.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Writes a new file readable only by its owner, synced to disk. Refuses to
/// overwrite an existing file.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = create_private_file(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// A new file readable only by its owner; refuses an existing one.
pub fn create_private_file(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Flushes a directory's entries (a rename, a new file) to disk.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    fs::File::open(path)?.sync_all()
}
