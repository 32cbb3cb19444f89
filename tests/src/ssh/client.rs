//! Command lines for the real OpenSSH `ssh`, `scp` and `sftp` clients.

use std::path::{Path, PathBuf};

/// How a real OpenSSH client reaches an sshd (directly, or through the gateway when run in an
/// intercepted cgroup): user, host, trusted host keys, credential. Methods return command lines
/// for `ssh`, `scp` and `sftp`, to run with [`crate::client_in`] or [`PtyClient`].
///
/// Every command line ignores the user's and the system's ssh configuration (`-F /dev/null`),
/// agent and default keys, never asks a question (`BatchMode`, unless a password is given) and
/// checks the host key strictly against `known_hosts` alone.
#[derive(Clone, Debug)]
pub struct SshClient {
    pub user: String,
    pub host: String,
    pub port: u16,
    pub known_hosts: PathBuf,
    pub identity: Option<PathBuf>,
    pub password: Option<String>,
    /// Extra `-o` options, `Key=Value`.
    pub options: Vec<String>,
}

impl SshClient {
    pub fn new(user: &str, host: &str, known_hosts: &Path) -> SshClient {
        SshClient {
            user: user.into(),
            host: host.into(),
            port: 22,
            known_hosts: known_hosts.into(),
            identity: None,
            password: None,
            options: Vec::new(),
        }
    }

    /// Logs in with this private key (and only this key).
    pub fn identity(mut self, key: &Path) -> SshClient {
        self.identity = Some(key.into());
        self
    }

    /// No key at all: the client offers only what the server accepts without one (the `none`
    /// method, or a password).
    pub fn no_identity(mut self) -> SshClient {
        self.identity = None;
        self
    }

    /// Logs in with a password through `sshpass` (public keys are not offered). `sftp -b`
    /// forces BatchMode, so it cannot use a password.
    pub fn password(mut self, password: &str) -> SshClient {
        self.password = Some(password.into());
        self
    }

    /// One more `-o Key=Value` option.
    pub fn option(mut self, key_value: &str) -> SshClient {
        self.options.push(key_value.into());
        self
    }

    /// `user@host`.
    pub fn destination(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// `user@host:path`, a remote path for scp.
    pub fn remote(&self, path: impl AsRef<Path>) -> String {
        format!("{}:{}", self.destination(), path.as_ref().display())
    }

    /// The `-o` options every tool gets (ssh, scp and sftp take them alike).
    pub fn common_options(&self) -> Vec<String> {
        let mut o = vec![
            "-F".into(),
            "/dev/null".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
        ];
        let batch = if self.password.is_some() { "no" } else { "yes" };
        for kv in [
            format!("BatchMode={batch}"),
            "GlobalKnownHostsFile=/dev/null".into(),
            "StrictHostKeyChecking=yes".into(),
            // Never learn extra host keys into the test's known_hosts.
            "UpdateHostKeys=no".into(),
            "CheckHostIP=no".into(),
            "ConnectTimeout=5".into(),
            // A dead peer ends the client within 15 s instead of hanging the test.
            "ServerAliveInterval=5".into(),
            "ServerAliveCountMax=3".into(),
            "IdentityAgent=none".into(),
            "IdentitiesOnly=yes".into(),
            "ControlMaster=no".into(),
            "ControlPath=none".into(),
        ] {
            o.extend(["-o".into(), kv]);
        }
        match (&self.identity, &self.password) {
            (_, Some(_)) => {
                for kv in [
                    "PubkeyAuthentication=no",
                    "PreferredAuthentications=password",
                    "NumberOfPasswordPrompts=1",
                ] {
                    o.extend(["-o".into(), kv.into()]);
                }
            }
            (Some(key), None) => o.extend(["-i".into(), key.display().to_string()]),
            // Otherwise ssh would offer root's ~/.ssh/id_* keys.
            (None, None) => o.extend(["-o".into(), "PubkeyAuthentication=no".into()]),
        }
        for kv in &self.options {
            o.extend(["-o".into(), kv.clone()]);
        }
        o
    }

    fn program(&self, name: &str) -> Vec<String> {
        match &self.password {
            Some(pw) => vec!["sshpass".into(), "-p".into(), pw.clone(), name.into()],
            None => vec![name.into()],
        }
    }

    /// `ssh [options] [extra] user@host [remote_cmd]`: `extra` may hold `-tt`, `-v`, `-L ...`.
    pub fn ssh(&self, extra: &[&str], remote_cmd: Option<&str>) -> Vec<String> {
        let mut argv = self.program("ssh");
        argv.extend(self.common_options());
        argv.extend(["-p".into(), self.port.to_string()]);
        argv.extend(extra.iter().map(|s| s.to_string()));
        argv.push(self.destination());
        argv.extend(remote_cmd.map(str::to_string));
        argv
    }

    /// `scp [options] [extra] from to`; remote paths come from [`SshClient::remote`]. `extra`
    /// `-O` selects the legacy scp protocol (remote `scp -t`/`-f`); the default is SFTP.
    pub fn scp(&self, extra: &[&str], from: &str, to: &str) -> Vec<String> {
        let mut argv = self.program("scp");
        argv.extend(self.common_options());
        argv.extend(["-P".into(), self.port.to_string()]);
        argv.extend(extra.iter().map(|s| s.to_string()));
        argv.extend([from.to_string(), to.to_string()]);
        argv
    }

    /// `sftp -b BATCH [options] user@host`: runs the batch file's commands, stops at the
    /// first failing one (exit status 1).
    pub fn sftp_batch(&self, batch: &Path) -> Vec<String> {
        let mut argv = self.program("sftp");
        argv.extend(["-b".into(), batch.display().to_string()]);
        argv.extend(self.common_options());
        argv.extend(["-P".into(), self.port.to_string()]);
        argv.push(self.destination());
        argv
    }
}
