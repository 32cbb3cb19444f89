//! Shared harness for sluice's integration tests.
//!
//! Everything here starts real things: network namespaces with veth pairs (so that a
//! resource's address is a real remote host, not the proxy's own), child cgroups (one per test,
//! never the root), the real `sluice` binary with JSON logs, and the `sluice-probe` client.
//! Tests need root and eBPF; without them they fail loudly (see [`require_root`]).
//!
//! One module per thing started; every public name is also reachable at the crate root:
//!
//! - [`net`]: network namespaces, veth pairs and addresses ([`TestNet`]), peers inside them
//! - [`cgroup`]: a fresh child cgroup per test ([`TestCgroup`])
//! - [`client`]: `sluice-probe` and real clients run inside a cgroup ([`client_in`])
//! - [`gateway`]: the `sluice` process ([`Gateway`]) and its policy ([`Policy`])
//! - [`log`]: JSON log lines of a child, waited on ([`LineLog`])
//! - [`pg`]: a PostgreSQL server ([`PgServer`]), psql, the raw wire client, policy snippets
//! - [`ssh`]: sshd, OpenSSH clients, a pty driver, a sandboxed remote home
//! - [`agent`]: the unprivileged agent account
//! - [`certs`]: throwaway TLS certificates
//! - [`oidc`]: an OIDC provider for identity tests

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

pub mod agent;
pub mod certs;
pub mod cgroup;
pub mod client;
pub mod gateway;
pub mod log;
pub mod net;
pub mod oidc;
pub mod pg;
pub mod ssh;

pub use agent::*;
pub use certs::*;
pub use cgroup::*;
pub use client::*;
pub use gateway::*;
pub use log::*;
pub use net::*;
pub use pg::*;
pub use ssh::{PtyClient, SSH_PASSWORD, SSH_USER, SshClient, SshServer};

pub(crate) static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique within this test process and across concurrent test processes.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}-{}",
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// These tests load eBPF, create cgroups and namespaces: they must run as root. Failing (not
/// skipping) keeps a CI without privileges from passing silently.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "integration tests need root (eBPF, cgroups, netns); run `cargo xtask test` as root"
    );
}

/// `target/<profile>/<name>`, next to the test binary's `deps/` directory.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built; run `cargo xtask test` (it builds every binary first)",
        p.display()
    );
    p
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A finished command's standard error, as text (for assertion messages).
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An exclusive `flock` on `sluice-tests-NAME.lock` in the temporary directory, held until
/// the returned file is closed (the kernel drops it when the process dies): it serialises the
/// test processes that run side by side. `wait`: blocks until it is free; otherwise `None` if
/// another process holds it.
pub(crate) fn lock_file(name: &str, wait: bool) -> Option<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = std::env::temp_dir().join(format!("sluice-tests-{name}.lock"));
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    // SAFETY: flock on a descriptor we own; released when `file` is closed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
    assert!(rc == 0 || !wait, "flock {}", path.display());
    (rc == 0).then_some(file)
}

/// Removes what earlier test processes that are gone left in the temporary directory: entries
/// named `PREFIX<pid>` whose process no longer exists.
pub(crate) fn remove_stale(prefix: &str) {
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(prefix)
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("sluice-it-"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
