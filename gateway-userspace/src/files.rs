//! Files that hold secrets (the audit log's signing key, the SSH host key).

use std::{fs, io, io::Write, os::unix::fs::OpenOptionsExt, path::Path};

/// Creates `path` (and its directory) readable by its owner only, holding `bytes`, synced to
/// disk. An existing file is never replaced: that is an `AlreadyExists` error, so when two
/// processes race, the first writer's secret is the one both end up using.
pub fn create_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
