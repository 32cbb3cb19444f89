//! The approval API on a unix socket, for reviewers on the gateway's host.
//!
//! A TCP port can be bound by whoever gets there first (an agent, right after a gateway
//! crash); a reviewer's CLI that connects to it cannot tell who answers. A unix socket can:
//! `SO_PEERCRED` names the process that listens. The gateway records its pid (and the cgroups
//! it intercepts) in a lease next to the socket, `<socket>.lock`, which it holds locked
//! (`flock`) while it serves; `sluice approvals` sends a token only to the process the live
//! lease names (see [`crate::peer::verify`]).
//!
//! Who may connect: the socket is 0600 in a 0700 directory owned by the gateway's user, so the
//! gateway's user and root, which are the reviewers on the host. Others review through the
//! HTTP API, the web page or Slack, signed in with OIDC. Every call still needs a reviewer
//! token: the socket decides who can reach the API, not who may approve.

use std::{
    fs::{self, File, TryLockError},
    io::{Read, Write},
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// What the lease says about the gateway serving the socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketLease {
    pub pid: u32,
    pub socket: PathBuf,
    /// The cgroup directories the gateway intercepts: a process there is an agent.
    pub targets: Vec<PathBuf>,
}

/// `<socket>.lock`.
pub fn lease_path(socket: &Path) -> PathBuf {
    let mut p = socket.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// The bound socket and the held lease; the socket file is removed when this is dropped.
pub struct ApiSocket {
    listener: Option<std::os::unix::net::UnixListener>,
    path: PathBuf,
    /// Locked for as long as this gateway serves the socket.
    _lease: File,
}

impl ApiSocket {
    /// Takes the lease (refused while another gateway holds it), replaces a stale socket file
    /// and binds `path` with mode 0600. Its directory is made private first (0700): nobody
    /// but the gateway's user (and root) can then reach the socket between `bind` and
    /// `chmod`, or place anything of theirs next to it.
    pub fn bind(path: &Path, targets: Vec<PathBuf>) -> anyhow::Result<ApiSocket> {
        let dir = path
            .parent()
            .context("the approval socket needs a directory")?;
        let (name, lease_name) = (
            path.file_name().unwrap_or_default().to_owned(),
            lease_path(path).file_name().unwrap_or_default().to_owned(),
        );
        crate::files::ensure_private_dir(dir, |n| n == name || n == lease_name)
            .with_context(|| format!("preparing {} for the approval socket", dir.display()))?;
        let lease_file = lease_path(path);
        let mut lease = crate::files::open_private_rw(&lease_file)
            .with_context(|| format!("opening {}", lease_file.display()))?;
        match lease.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_lease(&mut lease)
                    .map(|l| format!(" (pid {})", l.pid))
                    .unwrap_or_default();
                bail!(
                    "the approval socket {} is already served by another sluice gateway{holder}",
                    path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).context("locking the approval socket's lease");
            }
        }
        let record = SocketLease {
            pid: std::process::id(),
            socket: path.into(),
            targets,
        };
        lease.set_len(0)?;
        lease.write_all(&serde_json::to_vec(&record)?)?;
        lease.sync_all()?;
        // A socket file left by a gateway that crashed: nobody listens on it (the lease was
        // free). Anything else at that path is not ours to remove.
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => fs::remove_file(path)?,
            Ok(_) => bail!(
                "{} exists and is not a socket; remove it or choose another `approvals.socket`",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let listener = std::os::unix::net::UnixListener::bind(path)
            .with_context(|| format!("binding the approval socket {}", path.display()))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(ApiSocket {
            listener: Some(listener),
            path: path.into(),
            _lease: lease,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The listener, for the API server (once; needs a tokio runtime).
    pub fn take_listener(&mut self) -> std::io::Result<tokio::net::UnixListener> {
        let l = self
            .listener
            .take()
            .ok_or_else(|| std::io::Error::other("the approval socket was already taken"))?;
        tokio::net::UnixListener::from_std(l)
    }
}

impl Drop for ApiSocket {
    fn drop(&mut self) {
        // Before the lease is released (the fields drop after this): a successor that takes
        // the lease never sees its own new socket removed.
        let _ = fs::remove_file(&self.path);
    }
}

fn read_lease(f: &mut File) -> anyhow::Result<SocketLease> {
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok(serde_json::from_str(&text)?)
}

/// The lease of the gateway serving `socket`, if a live gateway holds it (`None`: the lease
/// is missing or nobody holds its lock, so no gateway serves the socket). A lease file that
/// someone other than root or the caller could have written is refused, not trusted.
pub fn live_lease(socket: &Path) -> anyhow::Result<Option<SocketLease>> {
    let path = lease_path(socket);
    let mut f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let meta = f.metadata()?;
    if !crate::peer::trusted_uid(meta.uid()) || meta.mode() & 0o022 != 0 {
        bail!(
            "{} (mode {:04o}, uid {}) could have been written by another user; not trusting it",
            path.display(),
            meta.mode() & 0o7777,
            meta.uid()
        );
    }
    match f.try_lock_shared() {
        // We got the lock: nobody holds it, no gateway serves this socket.
        Ok(()) => return Ok(None),
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("probing {}", path.display()));
        }
    }
    read_lease(&mut f)
        .map(Some)
        .with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_socket_is_private_leased_once_and_removed_on_drop() {
        let dir = std::env::temp_dir().join(format!("sluice-apisock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("approvals.sock");
        assert_eq!(live_lease(&path).unwrap(), None);
        let mut sock = ApiSocket::bind(&path, vec!["/sys/fs/cgroup/x".into()]).unwrap();
        let _listener = sock.take_listener().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&lease_path(&path)), 0o600);
        let lease = live_lease(&path).unwrap().unwrap();
        assert_eq!(lease.pid, std::process::id());
        assert_eq!(lease.targets, [PathBuf::from("/sys/fs/cgroup/x")]);
        let err = ApiSocket::bind(&path, Vec::new())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("already served"), "{err}");
        drop(sock);
        assert!(!path.exists());
        assert_eq!(live_lease(&path).unwrap(), None, "the lock died with it");
        // A stale socket file (a crash) is replaced; a regular file is not.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        drop(ApiSocket::bind(&path, Vec::new()).unwrap());
        fs::write(&path, b"not a socket").unwrap();
        let err = ApiSocket::bind(&path, Vec::new())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a socket"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
