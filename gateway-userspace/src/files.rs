//! Files and directories that hold secrets or private state.
//!
//! Everything sluice writes (its state and data directories, databases, keys, the witness,
//! the approval socket) is created readable by its owner only, and an existing one is checked:
//! the one helper for each case lives here, so that no caller creates such a file with the
//! process umask. Secrets the operator provides (`file:` credentials, tokens, TLS keys) are read
//! through [`read_secret_file`], which refuses a file others could read or change.

use std::{
    ffi::OsStr,
    fs,
    io::{self, Read, Write},
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use tracing::warn;

/// Group and other permission bits: none may be set on anything private.
const OPEN_BITS: u32 = 0o077;
/// A secret file larger than this is not a secret but a mistake (`file: /dev/zero`).
const MAX_SECRET_FILE: u64 = 1 << 20;

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn refused(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, message)
}

/// Makes `dir` (and missing parents) mode 0700; nothing else is checked (for the parent of a
/// file sluice creates outside its own directories).
pub fn create_missing_dirs(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Ensures `dir` is a directory only its owner can enter, owned by the user sluice runs as.
///
/// A missing directory is created 0700. An existing one owned by someone else is refused: its
/// owner could swap the keys and databases inside. One with group or other bits (0755 is what
/// `mkdir`, systemd's `StateDirectory=` and earlier sluice versions make) is tightened to 0700
/// when every entry in it is one sluice makes (`is_own`): it is then sluice's own directory
/// and tightening is what the operator would do anyway. Otherwise it is refused, since it is
/// shared (`data_dir: /var/lib`), and chmod'ing a shared directory would break its other users.
pub fn ensure_private_dir(dir: &Path, is_own: impl Fn(&OsStr) -> bool) -> io::Result<()> {
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            // The umask can only have removed bits; make sure none but the owner's remain.
            return fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        }
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return Err(refused(format!("{} is not a directory", dir.display())));
    }
    if meta.uid() != euid() {
        return Err(refused(format!(
            "{} is owned by uid {}, not by the user sluice runs as (uid {}): its owner could replace \
             what sluice keeps there; chown {} {}",
            dir.display(),
            meta.uid(),
            euid(),
            euid(),
            dir.display()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & OPEN_BITS == 0 {
        return Ok(());
    }
    let foreign: Vec<String> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| !is_own(n))
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if !foreign.is_empty() {
        return Err(refused(format!(
            "permissions {mode:04o} for '{}' are too open, and it holds files that are not \
             sluice's ({}): give sluice a directory of its own, or chmod 700 {}",
            dir.display(),
            foreign
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            dir.display()
        )));
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    warn!(event = "permissions_tightened", path = %dir.display(), from = %format!("{mode:04o}"), to = "0700",
          "directory was readable by others; now readable by its owner only");
    Ok(())
}

/// Checks an existing private file (a database, a key): a regular file owned by the user
/// sluice runs as, with no group or other bits; too open ones (files of earlier versions made
/// with the umask) are tightened to 0600. `Ok(false)` when it does not exist.
pub fn tighten_private_file(path: &Path) -> io::Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !meta.is_file() {
        return Err(refused(format!(
            "{} is not a regular file (sluice keeps private data there; a link could point it anywhere)",
            path.display()
        )));
    }
    if meta.uid() != euid() {
        return Err(refused(format!(
            "{} is owned by uid {}, not by the user sluice runs as (uid {})",
            path.display(),
            meta.uid(),
            euid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & OPEN_BITS != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        warn!(event = "permissions_tightened", path = %path.display(), from = %format!("{mode:04o}"), to = "0600",
              "file was readable by others; now readable by its owner only");
    }
    Ok(true)
}

/// Prepares a SQLite database path so that the database and the `-wal`, `-shm` and `-journal`
/// files SQLite makes next to it are all 0600.
///
/// SQLite creates the main file with 0644 (less the umask), then gives its `-wal`, `-shm` and
/// `-journal` files the main file's mode. Creating the main file 0600 before SQLite opens it is
/// therefore enough, and touches no process-wide state (a narrowed umask would also apply to
/// every other thread's files meanwhile). Side files left by an earlier version are tightened.
pub fn prepare_sqlite_file(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        create_missing_dirs(dir)?;
    }
    if !tighten_private_file(path)? {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            // Another process made it between the check and the create: check that one.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                tighten_private_file(path)?;
            }
            Err(e) => return Err(e),
        }
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        tighten_private_file(Path::new(&side))?;
    }
    Ok(())
}

/// Creates `path` (and its directory) readable by its owner only, holding `bytes`, synced to
/// disk. An existing file is never replaced: that is an `AlreadyExists` error, so when two
/// processes race, the first writer's secret is the one both end up using.
pub fn create_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        create_missing_dirs(dir)?;
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Replaces `path` with `bytes` atomically (a 0600 temporary file renamed over it), synced.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A temporary file left by a crash may have any mode: never write into it.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// Opens (creating it 0600) a file that is only ever locked and rewritten by sluice (leases).
pub fn open_private_rw(path: &Path) -> io::Result<fs::File> {
    tighten_private_file(path)?;
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Why a secret file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read secret file `{path}`: {source}")]
    Read { path: String, source: io::Error },
    #[error("secret file `{0}` is not a regular file")]
    NotAFile(String),
    /// Others could read it: as OpenSSH says of private keys.
    #[error(
        "permissions {mode:04o} for '{path}' are too open; it must be readable by its owner only: chmod 600 {path}"
    )]
    TooOpen { path: String, mode: u32 },
    /// Its owner could read it whatever its mode, and change it.
    #[error(
        "'{path}' is owned by uid {owner}; a secret file must belong to root or to the user sluice runs as (uid {euid}), since its owner can always read and replace it: chown {euid} {path}"
    )]
    Owner { path: String, owner: u32, euid: u32 },
    #[error("secret file `{0}` is larger than 1 MiB")]
    TooLarge(String),
}

/// Reads a secret the operator keeps in a file (a database password, an SSH or TLS key, a
/// reviewer token), refusing one that is readable or writable by group or others, or owned by
/// anyone but root or the user sluice runs as. The checks are made on the open file (`fstat`),
/// so the file read is the file checked. Symbolic links are followed (`/etc/sluice/db.password`
/// managed by a secrets tool is often one); the file they lead to is what is checked.
pub fn read_secret_file(path: &Path) -> Result<Vec<u8>, SecretFileError> {
    let shown = path.display().to_string();
    let read_err = |source| SecretFileError::Read {
        path: shown.clone(),
        source,
    };
    let mut f = fs::File::open(path).map_err(read_err)?;
    let meta = f.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(SecretFileError::NotAFile(shown));
    }
    let me = euid();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(SecretFileError::Owner {
            path: shown,
            owner: meta.uid(),
            euid: me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & OPEN_BITS != 0 {
        return Err(SecretFileError::TooOpen { path: shown, mode });
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(SecretFileError::TooLarge(shown));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    Read::by_ref(&mut f)
        .take(MAX_SECRET_FILE)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    Ok(bytes)
}

/// [`read_secret_file`] as text, without the trailing newline `echo secret > file` leaves.
pub fn read_secret_text(path: &Path) -> Result<String, SecretFileError> {
    let bytes = read_secret_file(path)?;
    let text = String::from_utf8(bytes).map_err(|_| SecretFileError::Read {
        path: path.display().to_string(),
        source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sluice-files-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_new_private_dir_is_0700_whatever_the_umask_allows() {
        let dir = temp("new").join("a/b");
        ensure_private_dir(&dir, |_| false).unwrap();
        assert_eq!(mode(&dir), 0o700);
        fs::remove_dir_all(dir.parent().unwrap().parent().unwrap()).unwrap();
    }

    #[test]
    fn an_open_dir_of_sluices_own_files_is_tightened_and_a_shared_one_refused() {
        let dir = temp("open");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.join("audit.db"), b"").unwrap();
        ensure_private_dir(&dir, |n| n == "audit.db" || n == "audit.key").unwrap();
        assert_eq!(mode(&dir), 0o700);

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(dir.join("someone-elses.conf"), b"").unwrap();
        let err = ensure_private_dir(&dir, |n| n == "audit.db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("permissions 0750"), "{err}");
        assert!(err.contains("someone-elses.conf"), "{err}");
        assert_eq!(mode(&dir), 0o750, "a shared directory is left as it is");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sqlite_files_are_made_0600_and_old_ones_tightened() {
        let dir = temp("sqlite");
        fs::create_dir_all(&dir).unwrap();
        let db = dir.join("x.db");
        prepare_sqlite_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        // Files of an earlier version, made with the umask.
        fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(dir.join("x.db-wal"), b"").unwrap();
        fs::set_permissions(dir.join("x.db-wal"), fs::Permissions::from_mode(0o666)).unwrap();
        prepare_sqlite_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&dir.join("x.db-wal")), 0o600);
        // SQLite then makes its side files with the database's mode.
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        assert_eq!(mode(&dir.join("x.db-shm")), 0o600);
        assert_eq!(mode(&dir.join("x.db-wal")), 0o600);
        drop(conn);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn atomic_writes_never_reuse_an_open_temporary_file() {
        let dir = temp("atomic");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w");
        fs::write(dir.join("w.tmp"), b"old").unwrap();
        fs::set_permissions(dir.join("w.tmp"), fs::Permissions::from_mode(0o666)).unwrap();
        write_private_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secret_files_readable_by_others_are_refused_like_openssh_does() {
        let dir = temp("secret");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.password");
        fs::write(&path, "s3cret\n").unwrap();
        for open in [0o644, 0o640, 0o604, 0o620, 0o602] {
            fs::set_permissions(&path, fs::Permissions::from_mode(open)).unwrap();
            let err = read_secret_text(&path).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "permissions {open:04o} for '{p}' are too open; it must be readable by its owner only: chmod 600 {p}",
                    p = path.display()
                )
            );
        }
        for private in [0o600, 0o400] {
            fs::set_permissions(&path, fs::Permissions::from_mode(private)).unwrap();
            assert_eq!(read_secret_text(&path).unwrap(), "s3cret");
        }
        let err = read_secret_text(&dir).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_secret_file_owned_by_another_user_is_refused() {
        // Needs root to give a file away; the unit tests run as root in CI (`cargo xtask test`).
        assert_eq!(euid(), 0, "run the unit tests as root (cargo xtask test)");
        let dir = temp("owner");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        fs::write(&path, "t").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let err = read_secret_text(&path).unwrap_err().to_string();
        assert!(err.contains("is owned by uid 65534"), "{err}");
        assert!(err.contains("chown 0"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
