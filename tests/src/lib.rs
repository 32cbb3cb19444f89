//! Shared harness for sluice's integration tests.
//!
//! Everything here starts real things: network namespaces with veth pairs (so that a
//! resource's address is a real remote host, not the proxy's own), child cgroups (one per test,
//! never the root), the real `sluice` binary with JSON logs, and the `sluice-probe` client.
//! Tests need root and eBPF; without them they fail loudly (see [`require_root`]).

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

pub mod oidc;
pub mod ssh;

pub use ssh::{PtyClient, SSH_PASSWORD, SSH_USER, SshClient, SshServer};

static COUNTER: AtomicU32 = AtomicU32::new(0);

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

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

/// A network namespace joined to the host by a veth pair: `host_addr` on the host side,
/// `peer_addr` inside, for IPv4 (link-local, never routed) and IPv6 (ULA).
pub struct TestNet {
    pub ns: String,
    host_if: String,
    /// The subnet's lock, held while the namespace exists (see [`claim_subnet`]).
    _subnet_lock: std::fs::File,
    pub host_v4: String,
    pub peer_v4: String,
    pub peer_v6: String,
}

impl TestNet {
    pub fn new() -> TestNet {
        require_root();
        // Skip subnets a leftover namespace of a killed run still uses: its routes would
        // capture this test's traffic.
        let in_use = Command::new("ip")
            .args(["-br", "addr"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let (n, subnet_lock) = (0..250)
            .map(|_| COUNTER.fetch_add(1, Ordering::Relaxed) % 250 + 1)
            .filter(|n| !in_use.contains(&format!(" 169.254.{n}.1/")))
            .find_map(|n| claim_subnet(n).map(|lock| (n, lock)))
            .expect("a free 169.254.N.0/30 test subnet");
        let tag = format!("{}x{n}", std::process::id() % 10_000);
        let ns = format!("slt{tag}");
        let host_if = format!("slh{tag}");
        let peer_if = format!("slp{tag}");
        // Leftovers of an earlier run with the same pid; usually there are none.
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &host_if])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &ns]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
        ]);
        ip(&["link", "set", &peer_if, "netns", &ns]);
        let host_v4 = format!("169.254.{n}.1");
        let peer_v4 = format!("169.254.{n}.2");
        let host_v6 = format!("fd5c:{n:x}::1");
        let peer_v6 = format!("fd5c:{n:x}::2");
        ip(&["addr", "add", &format!("{host_v4}/30"), "dev", &host_if]);
        ip(&[
            "-6",
            "addr",
            "add",
            &format!("{host_v6}/64"),
            "dev",
            &host_if,
            "nodad",
        ]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{peer_v4}/30"),
            "dev",
            &peer_if,
        ]);
        ip(&[
            "-n",
            &ns,
            "-6",
            "addr",
            "add",
            &format!("{peer_v6}/64"),
            "dev",
            &peer_if,
            "nodad",
        ]);
        ip(&["-n", &ns, "link", "set", &peer_if, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        TestNet {
            ns,
            host_if,
            _subnet_lock: subnet_lock,
            host_v4,
            peer_v4,
            peer_v6,
        }
    }

    /// Starts an echo server (or an HTTP responder) inside the namespace.
    pub fn serve(&self, addr: &str, http: bool) -> PeerServer {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(bin_path("sluice-probe"))
            .args(["serve", addr]);
        if http {
            cmd.arg("--http");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn server");
        let log = LineLog::from_reader(child.stdout.take().expect("stdout"), "peer");
        log.wait_for(Duration::from_secs(5), |v| v.get("listening").is_some());
        PeerServer { child, log }
    }
}

/// Test processes run side by side (several `cargo test`s on one machine) and each counts
/// subnets from 1: between one's look at `ip addr` and its `ip addr add`, another can take the
/// same subnet, and the two namespaces' routes then capture each other's traffic. An exclusive,
/// non-blocking `flock` per subnet, held for the namespace's life (the kernel drops it when the
/// process dies), makes the choice exclusive.
fn claim_subnet(n: u32) -> Option<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = std::env::temp_dir().join(format!("sluice-tests-subnet-{n}.lock"));
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    (rc == 0).then_some(file)
}

impl Default for TestNet {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// An HTTP receiver on the host's loopback (webhooks), reporting each request.
pub fn serve_local_http() -> (PeerServer, String) {
    let mut child = Command::new(bin_path("sluice-probe"))
        .args(["serve", "127.0.0.1:0", "--http"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn receiver");
    let log = LineLog::from_reader(child.stdout.take().expect("stdout"), "webhook");
    let ready = log.wait_for(Duration::from_secs(5), |v| v.get("listening").is_some());
    let addr = ready["listening"].as_str().unwrap().to_string();
    (PeerServer { child, log }, addr)
}

/// A server inside a [`TestNet`] that reports each accepted peer.
pub struct PeerServer {
    child: Child,
    pub log: LineLog,
}

impl PeerServer {
    /// Peers accepted so far.
    pub fn accepted(&self) -> Vec<String> {
        self.log
            .snapshot()
            .iter()
            .filter_map(|v| {
                v.get("accepted")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect()
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// JSON lines read from a child's pipe by a background thread.
#[derive(Clone)]
pub struct LineLog {
    inner: Arc<(Mutex<Vec<Value>>, Condvar)>,
}

impl LineLog {
    pub fn from_reader(r: impl std::io::Read + Send + 'static, label: &'static str) -> LineLog {
        let log = LineLog {
            inner: Arc::new((Mutex::new(Vec::new()), Condvar::new())),
        };
        let inner = log.inner.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                // Echo so a failing test shows what the child said.
                eprintln!("[{label}] {line}");
                let v = serde_json::from_str(&line).unwrap_or(Value::String(line));
                let (lock, cv) = &*inner;
                lock.lock().unwrap().push(v);
                cv.notify_all();
            }
        });
        log
    }

    pub fn snapshot(&self) -> Vec<Value> {
        self.inner.0.lock().unwrap().clone()
    }

    /// Waits for a line matching `pred`; panics with everything seen after `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.inner;
        let mut lines = lock.lock().unwrap();
        let mut checked = 0;
        loop {
            // `pred` runs without the lock held: it may read the log itself.
            let fresh: Vec<Value> = lines[checked..].to_vec();
            checked = lines.len();
            drop(lines);
            if let Some(v) = fresh.into_iter().find(|v| pred(v)) {
                return v;
            }
            lines = lock.lock().unwrap();
            if lines.len() > checked {
                continue;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for a log line; saw:\n{}",
                lines
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            lines = cv.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// Lines matching `pred` so far.
    pub fn matching(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.snapshot().into_iter().filter(|v| pred(v)).collect()
    }
}

/// `event` field of a sluice JSON log line.
pub fn is_event(v: &Value, name: &str) -> bool {
    v.get("event").and_then(Value::as_str) == Some(name)
}

/// The cgroup v2 mount of this host.
pub fn cgroup2_mount() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let found: Vec<&str> = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1])
        })
        .collect();
    let pick = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find(|p| found.contains(p))
        .or(found.first().copied())
        .expect("cgroup v2 must be mounted (tests attach eBPF to a child cgroup)");
    PathBuf::from(pick)
}

/// A fresh child cgroup, removed (after killing what is left in it) on drop.
pub struct TestCgroup {
    pub dir: PathBuf,
    /// Path relative to the cgroup v2 mount, as written in a policy.
    pub relative: String,
}

impl TestCgroup {
    pub fn new() -> TestCgroup {
        require_root();
        let relative = unique("sluice-test-");
        let dir = cgroup2_mount().join(&relative);
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("creating cgroup {}: {e}", dir.display()));
        TestCgroup { dir, relative }
    }
}

impl Default for TestCgroup {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        remove_cgroup(&self.dir);
    }
}

/// Kills every process in a cgroup and removes it.
pub fn remove_cgroup(dir: &Path) {
    for _ in 0..50 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill with a pid read from the cgroup; at worst the process is gone.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `sluice-probe` inside (`Some(cgroup)`) or outside an intercepted cgroup; returns its
/// JSON answer.
pub fn probe(cgroup: Option<&Path>, args: &[&str]) -> Value {
    let mut cmd = Command::new(bin_path("sluice-probe"));
    if let Some(dir) = cgroup {
        cmd.arg("--cgroup").arg(dir);
    }
    let out = cmd.args(args).output().expect("running sluice-probe");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap_or_else(|e| {
        panic!(
            "probe printed no JSON ({e}): {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub const EPERM: i64 = 1;
pub const ECONNREFUSED: i64 = 111;

/// A `sluice run` process with its JSON log.
pub struct Gateway {
    child: Option<Child>,
    pub log: LineLog,
    pub config_path: PathBuf,
    pub state_dir: PathBuf,
    /// Persistent data: the audit log (`audit.db`), its key and witness.
    pub data_dir: PathBuf,
    pub target: String,
    dir: PathBuf,
}

/// Builder for a test policy. `target` names the intercepted cgroup.
pub struct Policy {
    pub target: String,
    pub cgroup: Option<String>,
    pub egress: &'static str,
    pub resources: Vec<(String, String, u16)>,
    /// Resource entries written verbatim (protocol-specific settings).
    pub raw_resources: String,
    pub extra: String,
    /// The listener (default: loopback, an ephemeral port).
    pub listen: String,
    /// Extra lines of the target's entry (`inbound: deny`, quotas), each `    key: value`.
    pub target_extra: String,
}

impl Policy {
    pub fn new(cgroup: Option<&TestCgroup>, egress: &'static str) -> Policy {
        Policy {
            target: unique("t"),
            cgroup: cgroup.map(|c| c.relative.clone()),
            egress,
            resources: Vec::new(),
            raw_resources: String::new(),
            extra: String::new(),
            listen: "127.0.0.1:0".into(),
            target_extra: String::new(),
        }
    }

    pub fn resource(mut self, name: &str, address: &str, port: u16) -> Policy {
        self.resources.push((name.into(), address.into(), port));
        self
    }

    /// Writes the policy (with private state and data dirs and an ephemeral listener port).
    pub fn write(&self, dir: &Path) -> PathBuf {
        let mut y = format!(
            "listen: {}\nstate_dir: {}\ndata_dir: {}\ntargets:\n  - name: {}\n    egress: {}\n",
            self.listen,
            dir.join("state").display(),
            dir.join("data").display(),
            self.target,
            self.egress
        );
        if let Some(cg) = &self.cgroup {
            y.push_str(&format!("    cgroup: {cg}\n"));
        }
        y.push_str(&self.target_extra);
        y.push_str("resources:\n");
        for (name, addr, port) in &self.resources {
            y.push_str(&format!(
                "  - name: {name}\n    protocol: tcp\n    match:\n      - {{ address: \"{addr}\", port: {port} }}\n"
            ));
        }
        y.push_str(&self.raw_resources);
        y.push_str(&self.extra);
        let path = dir.join("policy.yaml");
        std::fs::write(&path, y).unwrap();
        path
    }
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("sluice-it-"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn spawn_gateway(config_path: &Path) -> (Child, LineLog) {
    let mut child = Command::new(bin_path("sluice"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice run");
    let log = LineLog::from_reader(child.stderr.take().expect("stderr"), "sluice");
    (child, log)
}

impl Gateway {
    /// Starts a new gateway process on the same policy and state (after `crash` or `stop`).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or crash the gateway first");
        let (child, log) = spawn_gateway(&self.config_path);
        self.child = Some(child);
        self.log = log;
        self.log
            .wait_for(Duration::from_secs(20), |v| is_event(v, "ready"));
    }

    pub fn start(policy: &Policy) -> Gateway {
        require_root();
        let dir = temp_dir();
        let config_path = policy.write(&dir);
        let (child, log) = spawn_gateway(&config_path);
        let gw = Gateway {
            child: Some(child),
            log,
            config_path,
            state_dir: dir.join("state"),
            data_dir: dir.join("data"),
            target: policy.target.clone(),
            dir,
        };
        gw.log
            .wait_for(Duration::from_secs(20), |v| is_event(v, "ready"));
        gw
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().expect("wait sluice")
    }

    /// SIGKILL: simulates a crash (the pinned links stay).
    pub fn crash(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill sluice");
        child.wait().expect("wait sluice");
    }

    pub fn listen_addr(&self) -> SocketAddr {
        let ready = self
            .log
            .wait_for(Duration::from_secs(1), |v| is_event(v, "ready"));
        ready["listen"].as_str().unwrap().parse().unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        // Whatever happened (a crash test), never leave interception behind: a stopped gateway
        // keeps it, so the test removes it explicitly (its cgroup may still hold processes
        // that the cgroup's own drop kills).
        let _ = Command::new(bin_path("sluice"))
            .args(["cleanup", "--detach", "--force", "--config"])
            .arg(&self.config_path)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// PostgreSQL binaries of the Debian package.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Roles of the test cluster: (user, password, upstream auth method).
pub const PG_SCRAM: (&str, &str) = ("app", "app-secret");
pub const PG_MD5: (&str, &str) = ("md5user", "md5-secret");
pub const PG_PLAIN: (&str, &str) = ("plainuser", "plain-secret");

/// Sample data: the customers the masking and guardrail tests look at.
const PG_SEED: &str = r#"
SET password_encryption = 'scram-sha-256';
CREATE ROLE app LOGIN PASSWORD 'app-secret';
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5-secret';
SET password_encryption = 'scram-sha-256';
CREATE ROLE plainuser LOGIN PASSWORD 'plain-secret';
CREATE TABLE customers (
  id int PRIMARY KEY, name text, email text, card text, ssn text, phone text, iban text,
  order_no text, notes text
);
INSERT INTO customers VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '4111 1111 1111 1111', '123-45-6789', '+1 415 555 0132', 'DE89370400440532013000', 'ORD-2024-000123', 'prefers email'),
  (2, 'Alan Turing', 'alan.turing@bletchley.org', '5500-0000-0000-0004', '219-09-9999', '(415) 555-0199', 'GB82WEST12345698765432', 'ORD-2024-000124', 'uuid 3f2b8c1e-9a4d-4e6b-8f7a-2c1d0e9b8a76'),
  (3, 'Grace Hopper', 'grace@navy.mil', '4111111111111112', '000-12-3456', '555-01', 'XX00NOTANIBAN', '1234567890123456', 'version 1.2.3.4 at 2024-05-01T12:00:00Z');
GRANT ALL ON customers TO app, md5user, plainuser;
CREATE TABLE profiles (id int PRIMARY KEY, date_of_birth date, api_token text, jwt text, shipped date);
INSERT INTO profiles VALUES
  (1, '1815-12-10', 'AKIAIOSFODNN7EXAMPLE', 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U', '2024-05-01');
GRANT ALL ON profiles TO app, md5user, plainuser;
CREATE TABLE accounts (id int PRIMARY KEY, balance int);
INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 10) g;
GRANT ALL ON accounts TO app, md5user, plainuser;
"#;

const PG_HBA: &str = "local all all trust\n\
host all md5user all md5\n\
host all plainuser all password\n\
host all all all scram-sha-256\n";

fn pg_template() -> &'static PathBuf {
    static TEMPLATE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| {
        require_root();
        // Templates of earlier test processes that are gone (one is left behind per process).
        for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("sluice-pg-template-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = std::env::temp_dir().join(format!("sluice-pg-template-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("chown").args(["postgres:postgres"]).arg(&dir));
        let as_pg = |args: &str| run(Command::new("runuser").args(["-u", "postgres", "--", "sh", "-c", args]));
        as_pg(&format!("{PG_BIN}/initdb -D {} -U postgres --auth=trust -E UTF8 >/dev/null", dir.display()));
        std::fs::write(dir.join("pg_hba.conf"), PG_HBA).unwrap();
        as_pg(&format!(
            "{PG_BIN}/pg_ctl -D {d} -o \"-c listen_addresses='' -k {d}\" -w -l {d}/log start >/dev/null",
            d = dir.display()
        ));
        let seed = dir.join("seed.sql");
        std::fs::write(&seed, PG_SEED).unwrap();
        run(Command::new("chown").arg("postgres:postgres").arg(&seed));
        as_pg(&format!("psql -X -q -v ON_ERROR_STOP=1 -h {} -U postgres -d postgres -f {} >/dev/null", dir.display(), seed.display()));
        as_pg(&format!("{PG_BIN}/pg_ctl -D {} -m fast -w stop >/dev/null", dir.display()));
        dir
    })
}

/// A PostgreSQL 15 server inside a [`TestNet`] namespace, at `peer_v4:5432`.
pub struct PgServer {
    dir: PathBuf,
    pub addr: String,
    pub host: String,
    /// The `pg_ctl start` command, run in the namespace (again by [`PgServer::resume`]).
    start_cmd: (String, String),
}

impl PgServer {
    pub fn start(net: &TestNet) -> PgServer {
        Self::start_with(net, "")
    }

    /// Starts with extra server options (e.g. TLS settings).
    pub fn start_with(net: &TestNet, options: &str) -> PgServer {
        let template = pg_template();
        let dir = std::env::temp_dir().join(unique("sluice-pg-"));
        run(Command::new("cp").arg("-a").arg(template).arg(&dir));
        let cmd = format!(
            "{PG_BIN}/pg_ctl -D {d} -o \"-c listen_addresses={a} -p 5432 -k {d} {options}\" -w -t 30 -l {d}/log start >/dev/null",
            d = dir.display(),
            a = net.peer_v4
        );
        let pg = PgServer {
            dir,
            addr: format!("{}:5432", net.peer_v4),
            host: net.peer_v4.clone(),
            start_cmd: (net.ns.clone(), cmd),
        };
        pg.resume();
        pg
    }

    /// Stops the server (fast shutdown: connections are closed); [`PgServer::resume`] starts
    /// it again on the same data.
    pub fn pause(&self) {
        run(Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl"), "-D"])
            .arg(&self.dir)
            .args(["-m", "fast", "-w", "stop"]));
    }

    pub fn resume(&self) {
        let (ns, cmd) = &self.start_cmd;
        run(Command::new("ip").args([
            "netns", "exec", ns, "runuser", "-u", "postgres", "--", "sh", "-c", cmd,
        ]));
    }

    /// The directory of the server's local (unix) socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// A libpq connection string for `user`/`password` to this server.
    pub fn conninfo(&self, user: &str, password: &str) -> String {
        format!(
            "host={} port=5432 user={user} password={password} dbname=postgres connect_timeout=5",
            self.host
        )
    }

    /// Runs a PostgreSQL client program as the superuser over the Unix socket.
    pub fn admin_cmd(&self, program: &str, args: &[&str]) -> std::process::Output {
        Command::new("runuser")
            .args(["-u", "postgres", "--", program, "-h"])
            .arg(&self.dir)
            .args(["-p", "5432"])
            .args(args)
            .output()
            .expect("admin command")
    }

    /// Runs SQL as the superuser over the Unix socket (never through sluice): ground truth.
    pub fn admin_sql(&self, sql: &str) -> String {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--", "psql", "-X", "-A", "-t", "-h"])
            .arg(&self.dir)
            .args(["-U", "postgres", "-d", "postgres", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "admin sql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl"), "-D"])
            .arg(&self.dir)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL v3 StartupMessage for `user` and `database`, as raw bytes.
pub fn pg_startup_packet(user: &str, database: &str) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for p in ["user", user, "database", database] {
        body.extend(p.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend(body);
    packet
}

/// Output of a real client run inside a cgroup.
pub struct ClientRun {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A real client's command line, to run inside `cgroup` (for tests that feed its stdin or
/// read raw bytes; [`client_in`] runs one to its end).
pub fn client_command(cgroup: &Path, argv: &[impl AsRef<std::ffi::OsStr>]) -> Command {
    let mut cmd = Command::new(bin_path("sluice-probe"));
    cmd.arg("--cgroup")
        .arg(cgroup)
        .args(["run", "--"])
        .args(argv);
    cmd
}

/// Runs a real client (psql, pgbench, ssh, ...) inside `cgroup` with `env`.
pub fn client_in(
    cgroup: &Path,
    env: &[(&str, &str)],
    argv: &[impl AsRef<std::ffi::OsStr>],
) -> ClientRun {
    let out = client_command(cgroup, argv)
        .envs(env.iter().copied())
        .output()
        .expect("running client");
    ClientRun {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// psql inside `cgroup`: unaligned, tuples only, verbose errors (SQLSTATE shown), one `-c` per
/// statement, all in one session.
pub fn psql_in(cgroup: &Path, conninfo: &str, sql: &[&str]) -> ClientRun {
    let mut argv = vec![
        "psql",
        "-X",
        "-A",
        "-t",
        "-v",
        "VERBOSITY=verbose",
        "-d",
        conninfo,
    ];
    for s in sql {
        argv.extend(["-c", s]);
    }
    client_in(cgroup, &[], &argv)
}

/// Policy text for a postgres resource at `pg` with injected credentials of `role`.
pub fn pg_resource(name: &str, pg: &PgServer, credentials: &str) -> String {
    format!(
        "  - name: {name}\n    protocol: postgres\n    match:\n      - {{ address: \"{}\", port: 5432 }}\n    credentials: {credentials}\n",
        pg.host
    )
}

/// The policy default that lets every SQL statement kind through (guardrail findings are still
/// denied): for tests about the protocol rather than the policy. The built-in default denies
/// kinds no rule names.
pub const DEFAULT_ALLOW: &str = "guardrails:\n  default: allow\n";

/// `credentials:` value injecting a role's password inline.
pub fn inject(role: (&str, &str)) -> String {
    format!(
        "{{ mode: inject, user: {}, password: {{ value: \"{}\" }} }}",
        role.0, role.1
    )
}

/// A throwaway CA and a server certificate for `ip` (and the name `db.test`), from openssl.
pub struct TestCerts {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCerts {
    pub fn new(ip: &str) -> TestCerts {
        let dir = temp_dir();
        let sh = format!(
            "set -e; cd {d}
             openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=sluice-test-ca 2>/dev/null
             openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj /CN=db.test 2>/dev/null
             printf 'subjectAltName=IP:{ip},DNS:db.test\\n' > san.ext
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null
             chmod 755 {d}; chmod 600 server.key",
            d = dir.display()
        );
        run(Command::new("sh").args(["-c", &sh]));
        TestCerts {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            dir,
        }
    }

    /// A copy of the key pair PostgreSQL can read (it insists on owning a 0600 key).
    pub fn for_postgres(&self) -> (PathBuf, PathBuf) {
        let (cert, key) = (self.dir.join("pg.pem"), self.dir.join("pg.key"));
        std::fs::copy(&self.cert, &cert).unwrap();
        std::fs::copy(&self.key, &key).unwrap();
        run(Command::new("chown")
            .arg("postgres:postgres")
            .arg(&cert)
            .arg(&key));
        (cert, key)
    }
}

/// The unprivileged account tests run agents and impostors as (also made by
/// `scripts/setup.sh`, with the same command).
pub const AGENT_USER: &str = "sluice-agent";

/// Creates [`AGENT_USER`] if it is missing and returns its uid and gid. Idempotent across the
/// threads and processes of concurrent test runs: an exclusive `flock` serialises them, and
/// `useradd`'s "already exists" (another harness was faster) counts as success.
pub fn ensure_agent_user() -> (u32, u32) {
    use std::os::fd::AsRawFd;
    static IDS: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *IDS.get_or_init(|| {
        require_root();
        let lock_path = std::env::temp_dir().join("sluice-tests-agent-user.lock");
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", lock_path.display()));
        // SAFETY: flock on a descriptor we own; released when `lock` is closed.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {}", lock_path.display());
        let id = |flag: &str| {
            Command::new("id")
                .args([flag, AGENT_USER])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<u32>()
                        .ok()
                })
        };
        if id("-u").is_none() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let out = Command::new("useradd")
                    .args([
                        "--system",
                        "--no-create-home",
                        "--shell",
                        "/usr/sbin/nologin",
                        AGENT_USER,
                    ])
                    .output()
                    .expect("useradd");
                // 9: the name exists (created meanwhile outside this lock).
                if out.status.success() || out.status.code() == Some(9) {
                    break;
                }
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    err.contains("lock") && Instant::now() < deadline,
                    "useradd {AGENT_USER} failed: {err}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        (
            id("-u").expect("the agent user exists"),
            id("-g").expect("the agent user has a group"),
        )
    })
}

/// `cmd` run as [`AGENT_USER`] (setpriv: real and effective ids, no supplementary groups).
pub fn as_agent_user(program: &Path) -> Command {
    let (uid, gid) = ensure_agent_user();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        "--clear-groups",
        "--",
    ])
    .arg(program);
    cmd
}

/// [`AGENT_USER`] as (uid, gid, name), created on first use.
pub fn agent_user() -> (u32, u32, String) {
    let (uid, gid) = ensure_agent_user();
    (uid, gid, AGENT_USER.to_string())
}

/// A copy of a built binary that [`agent_user`] can run: the build directory may sit below a
/// directory only root can enter (a CI checkout in /root).
pub fn agent_bin(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("sluice-agent-bin-{}", std::process::id()));
    let path = dir.join(name);
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    if !dir.exists() {
        // Copies of earlier test processes that are gone.
        for entry in std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("sluice-agent-bin-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    if !path.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::copy(bin_path(name), &tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

/// Runs the raw wire client (`pg-wire`) inside `cgroup` against `addr` with a script of
/// message batches (see `tests/src/bin/pg-wire.rs`); returns its JSON (`messages`: every
/// message received, tag and hex body).
pub fn pg_wire(cgroup: &Path, addr: &str, user: &str, db: &str, script: &Value) -> Value {
    use std::io::Write as _;
    let mut child = Command::new(bin_path("pg-wire"))
        .arg("--cgroup")
        .arg(cgroup)
        .args([addr, user, db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running pg-wire");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.to_string().as_bytes())
        .expect("script to pg-wire");
    let out = child.wait_with_output().expect("pg-wire");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap_or_else(|e| {
        panic!(
            "pg-wire printed no JSON ({e}): {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
