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

use std::{
    ffi::OsStr,
    fs::File,
    io::{Read, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex, OnceLock},
    time::{Duration, Instant},
};

use crate::{ClientRun, TestCgroup, TestNet, client_command, require_root, run, temp_dir};

/// The unprivileged account every test sshd accepts (created on first use, see
/// [`ensure_ssh_user`]).
pub const SSH_USER: &str = "sluicetest";
/// [`SSH_USER`]'s password, for password-authentication tests (through `sshpass`).
pub const SSH_PASSWORD: &str = "sluice-test-password";

/// How long sshd may take to print "Server listening".
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates [`SSH_USER`] with a home directory and [`SSH_PASSWORD`] if it is missing.
///
/// Safe to call from many threads and test processes at once: an exclusive `flock` serialises
/// the processes (useradd and chpasswd fail, rather than wait, while another holds the
/// passwd/shadow lock), and a `OnceLock` the threads of one process.
pub fn ensure_ssh_user() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        require_root();
        let lock_path = std::env::temp_dir().join("sluice-tests-ssh-user.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", lock_path.display()));
        // SAFETY: flock on a descriptor we own; released when `lock` is closed.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {}", lock_path.display());

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

/// Window size every [`PtyClient`] starts with.
pub const PTY_COLS: u16 = 120;
pub const PTY_ROWS: u16 = 40;

/// Output read from the pty master by a background thread.
#[derive(Default)]
struct PtyOutput {
    data: Vec<u8>,
    /// The slave side is closed everywhere (Linux: the master reads EIO).
    closed: bool,
}

/// A program on a fresh pseudo-terminal (its controlling terminal, 120x40, `TERM=xterm`), like
/// a person at a terminal: send keystrokes, expect output. Killed on drop.
pub struct PtyClient {
    child: Child,
    master: File,
    output: Arc<(Mutex<PtyOutput>, Condvar)>,
    /// Bytes already returned by `expect`.
    consumed: usize,
    argv: Vec<String>,
    /// Logs whose tail goes into every panic (e.g. sshd's).
    logs: Vec<PathBuf>,
    status: Option<ExitStatus>,
}

impl PtyClient {
    /// Starts `argv` inside `cgroup` (through `sluice-probe --cgroup DIR run`), as an agent's
    /// terminal session.
    pub fn spawn_in(cgroup: &Path, argv: &[impl AsRef<OsStr>]) -> PtyClient {
        Self::spawn_with(Some(cgroup), &[], argv)
    }

    /// Starts `argv` outside any test cgroup: a direct baseline.
    pub fn spawn(argv: &[impl AsRef<OsStr>]) -> PtyClient {
        Self::spawn_with(None, &[], argv)
    }

    /// Starts `argv` with extra environment variables, in `cgroup` if given.
    pub fn spawn_with(
        cgroup: Option<&Path>,
        env: &[(&str, &str)],
        argv: &[impl AsRef<OsStr>],
    ) -> PtyClient {
        assert!(!argv.is_empty(), "PtyClient needs a program");
        let (master, slave) = open_pty(PTY_COLS, PTY_ROWS);
        let mut cmd = match cgroup {
            Some(dir) => client_command(dir, argv),
            None => {
                let mut c = Command::new(argv[0].as_ref());
                c.args(&argv[1..]);
                c
            }
        };
        cmd.env("TERM", "xterm")
            .envs(env.iter().copied())
            .stdin(Stdio::from(slave.try_clone().expect("dup pty slave")))
            .stdout(Stdio::from(slave.try_clone().expect("dup pty slave")))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec. A new session without a
        // terminal, then the slave (already on fd 0: std sets up stdio before pre_exec) becomes
        // its controlling terminal, so ssh reads keystrokes from it, gets SIGWINCH and
        // job-control signals, and `ssh -t` sees a tty on stdin.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?} on a pty: {e}"));
        // `cmd` held the parent's copies of the slave: dropping it lets the master see the end
        // of output (EIO) once the program and its children have exited.
        drop(cmd);

        let output = Arc::new((Mutex::new(PtyOutput::default()), Condvar::new()));
        let mut reader = master.try_clone().expect("dup pty master");
        let shared = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => 0,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // EIO: every slave descriptor is closed.
                    Err(_) => 0,
                };
                let (lock, cv) = &*shared;
                let mut out = lock.lock().unwrap();
                if n == 0 {
                    out.closed = true;
                    cv.notify_all();
                    return;
                }
                out.data.extend_from_slice(&buf[..n]);
                cv.notify_all();
            }
        });
        PtyClient {
            child,
            master,
            output,
            consumed: 0,
            argv: argv
                .iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect(),
            logs: Vec::new(),
            status: None,
        }
    }

    /// Adds a log file (e.g. [`SshServer::log_path`]) whose tail every panic shows.
    pub fn with_log(mut self, path: impl AsRef<Path>) -> PtyClient {
        self.logs.push(path.as_ref().to_path_buf());
        self
    }

    /// The process id (of the program itself: sluice-probe execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types `bytes` (no newline added).
    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self
            .master
            .write_all(bytes)
            .and_then(|()| self.master.flush())
        {
            self.fail(&format!("writing {:?} to the pty: {e}", printable(bytes)));
        }
    }

    /// Types `line` and Enter (a carriage return, as a terminal sends it).
    pub fn send_line(&mut self, line: &str) {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\r');
        self.send(&bytes);
    }

    /// Waits for `needle` in the output not yet consumed; returns that output up to and
    /// including the match (lossy UTF-8, escape sequences left in) and consumes it. Panics with
    /// the whole output and the attached logs on timeout or if the terminal closes first.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let needle_bytes = needle.as_bytes();
        let output = self.output.clone();
        let (lock, cv) = &*output;
        let mut out = lock.lock().unwrap();
        loop {
            if let Some(pos) = find(&out.data[self.consumed..], needle_bytes) {
                let end = self.consumed + pos + needle_bytes.len();
                let text = String::from_utf8_lossy(&out.data[self.consumed..end]).into_owned();
                self.consumed = end;
                return text;
            }
            let now = Instant::now();
            let why = if out.closed {
                Some(format!("the terminal closed before {needle:?} appeared"))
            } else if now >= deadline {
                Some(format!("{needle:?} did not appear within {timeout:?}"))
            } else {
                None
            };
            if let Some(why) = why {
                drop(out);
                self.fail(&why);
            }
            out = cv.wait_timeout(out, deadline - now).unwrap().0;
        }
    }

    /// Everything the program wrote so far (consumed or not), lossy UTF-8.
    pub fn output_so_far(&self) -> String {
        String::from_utf8_lossy(&self.output.0.lock().unwrap().data).into_owned()
    }

    /// Sets the terminal size; the kernel sends SIGWINCH to the program (ssh forwards it as a
    /// `window-change` request).
    pub fn resize(&mut self, cols: u16, rows: u16) {
        let ws = winsize(cols, rows);
        // SAFETY: TIOCSWINSZ with a valid winsize on our own master descriptor.
        if unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } == -1 {
            let e = std::io::Error::last_os_error();
            self.fail(&format!("TIOCSWINSZ {cols}x{rows}: {e}"));
        }
    }

    /// Waits for the program to exit; panics (and kills it) after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    self.status = Some(s);
                    return s;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => self.fail(&format!("still running after {timeout:?}")),
                Err(e) => self.fail(&format!("waiting: {e}")),
            }
        }
    }

    /// Panics with the program's command line, its whole output and the attached logs.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let mut msg = format!(
            "pty client {:?}: {why}\n--- terminal output ---\n{}\n--- end of output ---",
            self.argv,
            printable(&self.output.0.lock().unwrap().data)
        );
        for log in &self.logs {
            msg.push_str(&format!(
                "\n--- {} ---\n{}",
                log.display(),
                log_tail(log, 60)
            ));
        }
        panic!("{msg}");
    }
}

impl Drop for PtyClient {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn winsize(cols: u16, rows: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// A pty pair with the given window size, both ends close-on-exec (the child gets the slave
/// through dup2, which clears the flag; it must not inherit the master).
fn open_pty(cols: u16, rows: u16) -> (File, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let ws = winsize(cols, rows);
    // SAFETY: openpty writes two descriptors; name and termios may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    for fd in [master, slave] {
        // SAFETY: fcntl on descriptors openpty just returned.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: both descriptors are fresh and owned by nothing else.
    unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Terminal output made safe to print in a panic: control bytes (escape sequences) escaped,
/// newlines kept.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Programs the [`RemoteSandbox`] replaces with a logging shim: what a destructive command
/// that got through would run. They must never run for real on the test machine.
pub const SHIMMED: &[&str] = &[
    "rm",
    "rmdir",
    "unlink",
    "shred",
    "truncate",
    "dd",
    "mkfs",
    "wipefs",
    "kill",
    "pkill",
    "killall",
    "killall5",
    "systemctl",
    "crontab",
    "poweroff",
    "reboot",
    "shutdown",
    "halt",
    "init",
    "telinit",
    "loginctl",
    "kexec",
    "dbus-send",
    "busctl",
];

/// A per-test home for [`SSH_USER`] on the test sshd, for attacks: sshd sets `HOME`, `PATH`
/// and `BASH_ENV` (sshd_config `SetEnv`) so that every session starts in `home`, `~` is
/// `home`, and [`SHIMMED`] programs found through `PATH` (and the `kill` builtin, disabled)
/// only append their argv to `log`. Canary files in `home` are the ground truth for what a
/// program that was not shimmed (an interpreter, `/bin/rm` by path) would have destroyed.
pub struct RemoteSandbox {
    pub dir: PathBuf,
    pub home: PathBuf,
    pub shims: PathBuf,
    /// One line per shimmed program that ran: its name and arguments.
    pub log: PathBuf,
    rc: PathBuf,
}

impl RemoteSandbox {
    pub fn new() -> RemoteSandbox {
        ensure_ssh_user();
        let dir = temp_dir();
        run(Command::new("chmod").arg("0755").arg(&dir));
        let (home, shims, log, rc) = (
            dir.join("home"),
            dir.join("shims"),
            dir.join("shim.log"),
            dir.join("rc.sh"),
        );
        std::fs::create_dir(&home).unwrap();
        std::fs::create_dir(&shims).unwrap();
        std::fs::write(&log, "").unwrap();
        for program in SHIMMED {
            let path = shims.join(program);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\n# sluice test shim: records what would have run, runs nothing.\n{{ printf '%s' {program}; for a in \"$@\"; do printf ' %s' \"$a\"; done; printf '\\n'; }} >> {}\nexit 0\n",
                    log.display()
                ),
            )
            .unwrap();
            run(Command::new("chmod").arg("0755").arg(&path));
        }
        // Non-interactive shells read it through BASH_ENV, login shells through .bash_profile.
        // A fork bomb that got through stops at 256 processes of the account.
        std::fs::write(
            &rc,
            format!(
                "export PATH={}:/usr/local/bin:/usr/bin:/bin\nenable -n kill 2>/dev/null\nulimit -u 256 2>/dev/null\ncd \"$HOME\" 2>/dev/null\n",
                shims.display()
            ),
        )
        .unwrap();
        std::fs::write(home.join(".bash_profile"), format!(". {}\n", rc.display())).unwrap();
        std::fs::write(home.join(".bashrc"), format!(". {}\n", rc.display())).unwrap();
        run(Command::new("chown")
            .arg("-R")
            .arg(format!("{SSH_USER}:{SSH_USER}"))
            .arg(&home)
            .arg(&log));
        run(Command::new("chmod").arg("0666").arg(&log));
        RemoteSandbox {
            dir,
            home,
            shims,
            log,
            rc,
        }
    }

    /// sshd_config lines for [`SshServer::start_with`].
    pub fn sshd_config(&self) -> String {
        format!(
            "SetEnv HOME={} PATH={}:/usr/bin:/bin BASH_ENV={}\n",
            self.home.display(),
            self.shims.display(),
            self.rc.display()
        )
    }

    /// Creates (again) the canaries: files and a directory in the sandbox home, owned by
    /// [`SSH_USER`].
    pub fn plant_canaries(&self) {
        let dir = self.home.join("canary-dir");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for (path, text) in self.canaries() {
            std::fs::write(path, text).unwrap();
        }
        run(Command::new("chown")
            .arg("-R")
            .arg(format!("{SSH_USER}:{SSH_USER}"))
            .arg(&self.home));
    }

    fn canaries(&self) -> Vec<(PathBuf, String)> {
        ["canary.txt", "canary-dir/a.txt", "canary-dir/sub/b.txt"]
            .iter()
            .map(|p| (self.home.join(p), format!("canary {p}\n")))
            .collect()
    }

    /// What the shims recorded so far.
    pub fn shim_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Empties the shim log.
    pub fn clear_log(&self) {
        std::fs::write(&self.log, "").unwrap();
    }

    /// The canaries that were removed or changed.
    pub fn broken_canaries(&self) -> Vec<String> {
        let mut damage = Vec::new();
        for (path, text) in self.canaries() {
            match std::fs::read_to_string(&path) {
                Ok(t) if t == text => {}
                Ok(t) => damage.push(format!("{} changed to {t:?}", path.display())),
                Err(e) => damage.push(format!("{} is gone ({e})", path.display())),
            }
        }
        damage
    }

    /// `None` if every canary is intact and no shim ran; else what changed.
    pub fn damage(&self) -> Option<String> {
        let mut damage = self.broken_canaries();
        let log = self.shim_log();
        if !log.is_empty() {
            damage.push(format!("shims ran: {log}"));
        }
        (!damage.is_empty()).then(|| damage.join("; "))
    }
}

impl Default for RemoteSandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RemoteSandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
