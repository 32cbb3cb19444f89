//! A real OpenSSH sshd inside a [`TestNet`] namespace.

use std::{
    fs::File,
    io::Write,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{SSH_USER, SshClient, ensure_ssh_user, log_tail, ssh_keygen};
use crate::{ClientRun, TestCgroup, TestNet, client_command, run, temp_dir};

/// How long sshd may take to print "Server listening".
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A real OpenSSH sshd inside a [`TestNet`] namespace at `peer_v4:22`, with its own host key,
/// authorized keys and log in a temporary directory. Killed (with every session it forked) and
/// removed on drop.
pub struct SshServer {
    /// sshd and its per-connection children live in this cgroup so drop can kill them all:
    /// the session processes call setsid() and outlive the listener otherwise.
    cgroup: TestCgroup,
    child: Child,
    pub dir: PathBuf,
    /// `peer_v4` of the namespace.
    pub host: String,
    pub port: u16,
    /// `host:port`.
    pub addr: String,
    /// The key the gateway logs in with upstream (authorized for [`SSH_USER`]).
    pub gateway_key: PathBuf,
    /// A key for baseline clients that talk to sshd directly (authorized too).
    pub direct_key: PathBuf,
    /// A known_hosts file trusting this sshd's host key at `host`.
    pub known_hosts: PathBuf,
    /// A directory [`SSH_USER`] may write to, for uploads (shared filesystem: tests read it
    /// directly).
    pub scratch: PathBuf,
    /// sshd's stderr at LogLevel VERBOSE: logins, the key that was accepted, subsystems.
    pub log_path: PathBuf,
    pub authorized_keys: PathBuf,
}

impl SshServer {
    pub fn start(net: &TestNet) -> SshServer {
        Self::start_with(net, "")
    }

    /// Starts sshd with `extra` appended to its configuration (later lines do not override
    /// earlier ones in sshd_config: use a `Match` block or options not set here).
    pub fn start_with(net: &TestNet, extra: &str) -> SshServer {
        ensure_ssh_user();
        let dir = temp_dir();
        // Privilege separation: sshd refuses to start without this root-owned, non-writable
        // directory (systemd's tmpfiles or the init script make it on a real host).
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        ssh_keygen(&dir.join("ssh_host_ed25519_key"), "sluice-test-sshd");
        let gateway_key = ssh_keygen(&dir.join("gateway_key"), "sluice-gateway");
        let direct_key = ssh_keygen(&dir.join("direct_key"), "sluice-direct");
        let authorized_keys = dir.join("authorized_keys");
        let mut keys = String::new();
        for k in [&gateway_key, &direct_key] {
            keys.push_str(&std::fs::read_to_string(k.with_extension("pub")).unwrap());
        }
        std::fs::write(&authorized_keys, keys).unwrap();
        let scratch = dir.join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        run(Command::new("chown")
            .arg(format!("{SSH_USER}:{SSH_USER}"))
            .arg(&scratch));
        let log_path = dir.join("sshd.log");
        let d = dir.display();
        let config = format!(
            "ListenAddress {host}:22\n\
             HostKey {d}/ssh_host_ed25519_key\n\
             PidFile {d}/sshd.pid\n\
             UsePAM no\n\
             StrictModes no\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication yes\n\
             KbdInteractiveAuthentication no\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin no\n\
             Subsystem sftp internal-sftp\n\
             AllowTcpForwarding yes\n\
             PermitTTY yes\n\
             X11Forwarding no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             AcceptEnv LANG LC_*\n\
             # Benchmarks and parallel tests open many connections at once.\n\
             MaxStartups 100:30:200\n\
             MaxSessions 50\n\
             LogLevel VERBOSE\n\
             {extra}\n",
            host = net.peer_v4,
        );
        let config_path = dir.join("sshd_config");
        std::fs::write(&config_path, config).unwrap();
        // The authorized keys are read as the user (temporarily_use_uid): world-readable.
        run(Command::new("chmod").arg("0755").arg(&dir));

        // Check the configuration first: `sshd -t` names the bad line, a dead daemon does not.
        let check = Command::new("/usr/sbin/sshd")
            .arg("-t")
            .arg("-f")
            .arg(&config_path)
            .output()
            .expect("sshd -t");
        assert!(
            check.status.success(),
            "sshd -t rejected {}: {}",
            config_path.display(),
            String::from_utf8_lossy(&check.stderr)
        );

        let cgroup = TestCgroup::new();
        let log = File::create(&log_path).unwrap();
        // sshd re-executes itself for every connection: it needs its absolute path.
        let child = client_command(&cgroup.dir, &["ip", "netns", "exec", &net.ns])
            .args(["/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning sshd");
        let mut server = SshServer {
            cgroup,
            child,
            host: net.peer_v4.clone(),
            port: 22,
            addr: format!("{}:22", net.peer_v4),
            known_hosts: dir.join("known_hosts"),
            gateway_key,
            direct_key,
            scratch,
            log_path,
            authorized_keys,
            dir,
        };
        std::fs::write(
            &server.known_hosts,
            format!("{} {}\n", server.host, server.host_key_line()),
        )
        .unwrap();
        server.wait_listening();
        server
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.log().contains("Server listening on") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "sshd exited ({status}) before listening; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen within {START_TIMEOUT:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// sshd's public host key, `ssh-ed25519 AAAA...` (no comment): what a gateway policy's
    /// `host_keys` pins and what a known_hosts line carries after the host.
    pub fn host_key_line(&self) -> String {
        let path = self.dir.join("ssh_host_ed25519_key.pub");
        let text = std::fs::read_to_string(&path).unwrap();
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Everything sshd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sessions sshd started so far (`Starting session: command|shell|subsystem ...`): none
    /// for a refused command.
    pub fn upstream_sessions(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("Starting session:"))
            .count()
    }

    /// Policy text for an `ssh` resource `name` at this sshd: the gateway logs in as
    /// [`SSH_USER`] with [`SshServer::gateway_key`] and trusts `host_key` (usually
    /// [`SshServer::host_key_line`]); `ssh_extra` adds lines to the `ssh:` block.
    pub fn resource(&self, name: &str, host_key: &str, ssh_extra: &str) -> String {
        format!(
            "  - name: {name}\n    protocol: ssh\n    match:\n      - {{ address: \"{}\", port: 22 }}\n    credentials: {{ mode: inject, user: {SSH_USER}, key: {{ file: {} }} }}\n    ssh:\n      host_keys: [\"{host_key}\"]\n{ssh_extra}",
            self.host,
            self.gateway_key.display()
        )
    }

    /// Waits until sshd logged a line containing `needle`; panics with the log after `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "sshd never logged {needle:?} within {timeout:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Authorizes one more public key (a `.pub` file's line) for [`SSH_USER`].
    pub fn authorize(&self, public_key_line: &str) {
        let mut f = File::options()
            .append(true)
            .open(&self.authorized_keys)
            .unwrap();
        writeln!(f, "{}", public_key_line.trim()).unwrap();
    }

    /// A client of this sshd as [`SSH_USER`], trusting its host key and logging in with
    /// [`SshServer::direct_key`]: the baseline, without a gateway.
    pub fn client(&self) -> SshClient {
        SshClient::new(SSH_USER, &self.host, &self.known_hosts).identity(&self.direct_key)
    }

    /// Panics unless `run` succeeded, with its output and sshd's log.
    pub fn assert_ok(&self, run: &ClientRun, what: &str) {
        assert!(
            run.status.success(),
            "{what}: {}\nstdout: {}\nstderr: {}\nsshd log:\n{}",
            run.status,
            run.stdout,
            run.stderr,
            log_tail(&self.log_path, 60)
        );
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The cgroup's drop kills the sessions; then the files can go.
        crate::remove_cgroup(&self.cgroup.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
