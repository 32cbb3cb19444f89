//! SSH peers and clients for the integration tests: a real OpenSSH `sshd` inside a
//! [`TestNet`] namespace, command lines for the real `ssh`, `scp` and `sftp`, and a
//! pseudo-terminal driver for interactive sessions.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use sluice_tests::{PtyClient, SshServer, TestCgroup, TestNet, client_in};
//! let net = TestNet::new();
//! let sshd = SshServer::start(&net);
//! let cg = TestCgroup::new();
//! let ssh = sshd.client(); // direct: trusts sshd's host key, logs in with `direct_key`
//! let run = client_in(&cg.dir, &[], &ssh.ssh(&[], Some("echo hi")));
//! sshd.assert_ok(&run, "ssh echo");
//! let mut pty = PtyClient::spawn_in(&cg.dir, &ssh.ssh(&["-tt"], None)).with_log(&sshd.log_path);
//! pty.expect("$ ", Duration::from_secs(10));
//! pty.send_line("echo $((6*7))");
//! pty.expect("42", Duration::from_secs(5));
//! ```

mod client;
mod pty;
mod sandbox;
mod server;

pub use client::SshClient;
pub use pty::{PTY_COLS, PTY_ROWS, PtyClient};
pub use sandbox::{RemoteSandbox, SHIMMED};
pub use server::SshServer;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::{require_root, run};

/// The unprivileged account every test sshd accepts (created on first use, see
/// [`ensure_ssh_user`]).
pub const SSH_USER: &str = "sluicetest";
/// [`SSH_USER`]'s password, for password-authentication tests (through `sshpass`).
pub const SSH_PASSWORD: &str = "sluice-test-password";

/// Creates [`SSH_USER`] with a home directory and [`SSH_PASSWORD`] if it is missing.
///
/// Safe to call from many threads and test processes at once: an exclusive `flock` serialises
/// the processes (useradd and chpasswd fail, rather than wait, while another holds the
/// passwd/shadow lock), and a `OnceLock` the threads of one process.
pub fn ensure_ssh_user() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        require_root();
        let _lock = crate::lock_file("ssh-user", true);

        let exists = Command::new("id")
            .args(["-u", SSH_USER])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !exists {
            // 9 = "username already in use": someone outside this harness was faster.
            retry_locked("useradd", &[9], || {
                Command::new("useradd")
                    .args(["-m", "-s", "/bin/bash", SSH_USER])
                    .output()
            });
        }
        // A known password also unlocks the account: with `UsePAM no`, sshd refuses even a
        // public key login to a locked (`!`) account. Setting it each time repairs an account
        // someone else created locked.
        retry_locked("chpasswd", &[], || {
            let mut child = Command::new("chpasswd")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(format!("{SSH_USER}:{SSH_PASSWORD}\n").as_bytes())?;
            child.wait_with_output()
        });
    });
}

/// Runs an account tool, retrying while another process (outside our lock) holds
/// /etc/passwd or /etc/shadow.
fn retry_locked(
    what: &str,
    ok_codes: &[i32],
    f: impl Fn() -> std::io::Result<std::process::Output>,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = f().unwrap_or_else(|e| panic!("running {what}: {e}"));
        let code = out.status.code().unwrap_or(-1);
        if out.status.success() || ok_codes.contains(&code) {
            return;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("lock") && Instant::now() < deadline,
            "{what} failed ({}): {err}",
            out.status
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `ssh-keygen -t ed25519` without a passphrase; returns the private key's path (the public
/// key is next to it, with `.pub`).
pub fn ssh_keygen(path: &Path, comment: &str) -> PathBuf {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path));
    path.to_path_buf()
}

/// The SHA256 fingerprint of a key (`SHA256:...`), as sshd logs it on `Accepted publickey`.
pub fn ssh_fingerprint(key: &Path) -> String {
    let out = run(Command::new("ssh-keygen").arg("-lf").arg(key));
    out.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no fingerprint in {out:?}"))
        .to_string()
}

/// The last `max` lines of a log file (or a note that it cannot be read), for panic messages.
pub fn log_tail(path: &Path, max: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(max)..].join("\n")
        }
        Err(e) => format!("({} unreadable: {e})", path.display()),
    }
}
