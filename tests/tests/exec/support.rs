//! What the `sluice exec` tests share: running `sluice exec` and the probe, policies for
//! own-gateway runs, an echo server, a victim process and the unsandboxed control.

use std::{
    ffi::OsStr,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use sluice_tests::{LineLog, agent_bin, agent_user, bin_path, unique};

pub(crate) const WAIT: Duration = Duration::from_secs(10);
pub(crate) const EACCES: i64 = 13;
pub(crate) const EBADF: i64 = 9;
pub(crate) const ENOSYS: i64 = 38;

pub(crate) fn last_json(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap_or(Value::Null)
}

/// Every JSON line of a run's stdout, in order.
pub(crate) fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub(crate) fn probe() -> String {
    agent_bin("sluice-probe").display().to_string()
}

/// `sh -c` running each probe command line in turn (one JSON line each).
pub(crate) fn probe_script(lines: &[String]) -> Vec<String> {
    let p = probe();
    let script = lines
        .iter()
        .map(|l| format!("{p} {l}"))
        .collect::<Vec<_>>()
        .join("; ");
    vec!["/bin/sh".into(), "-c".into(), script]
}

/// `sluice --log-format json exec ARGS -- COMMAND`.
pub(crate) fn sluice_exec(args: &[&OsStr], command: &[String]) -> Command {
    let mut cmd = Command::new(bin_path("sluice"));
    cmd.args(["--log-format", "json", "exec"])
        .args(args)
        .arg("--")
        .args(command);
    cmd
}

pub(crate) fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

pub(crate) use sluice_tests::stderr;

/// A policy for an own-gateway run: one managed target with `target_extra` lines, then `rest`.
pub(crate) fn own_policy(dir: &Path, target_extra: &str, rest: &str) -> PathBuf {
    let text = format!(
        "listen: 127.0.0.1:0\nstate_dir: {}\ndata_dir: {}\ntargets:\n  - name: {}\n    egress: deny\n{target_extra}{rest}",
        dir.join("state").display(),
        dir.join("data").display(),
        unique("t"),
    );
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The `/proc/self/status` value of a capability set with only these capability numbers.
pub(crate) fn cap_mask(caps: &[u32]) -> String {
    format!("{:016x}", caps.iter().fold(0u64, |m, c| m | 1 << c))
}

/// A TCP echo server on the host's loopback, outside every intercepted cgroup.
pub(crate) struct Echo {
    child: Child,
    pub addr: String,
}

impl Echo {
    pub fn start() -> Echo {
        let mut child = Command::new(bin_path("sluice-probe"))
            .args(["serve", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let log = LineLog::from_reader(child.stdout.take().unwrap(), "echo");
        let ready = log.wait_for(WAIT, |v| v.get("listening").is_some());
        let addr = ready["listening"].as_str().unwrap().to_string();
        Echo { child, addr }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process of the agent's user outside any sandbox, holding a secret and a socket.
pub(crate) struct Victim {
    child: Child,
    pub pid: i64,
    pub addr: u64,
    pub len: u64,
    pub fd: Option<i64>,
}

impl Victim {
    pub fn start(secret: &str, connect: Option<&str>) -> Victim {
        let (_, _, user) = agent_user();
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &user, "--", &probe(), "victim", secret]);
        if let Some(addr) = connect {
            cmd.args(["--connect", addr]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        Victim {
            child,
            pid: v["pid"].as_i64().unwrap(),
            addr: v["addr"].as_u64().unwrap(),
            len: v["len"].as_u64().unwrap(),
            fd: v["fd"].as_i64(),
        }
    }

    pub fn status(&self, field: &str) -> String {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same attack by the same user outside the sandbox: it must work, or the sandbox test
/// proves nothing.
pub(crate) fn control(args: &[String]) -> Value {
    let (_, _, user) = agent_user();
    let out = Command::new("runuser")
        .args(["-u", &user, "--", &probe()])
        .args(args)
        .output()
        .unwrap();
    last_json(&out.stdout)
}

pub(crate) fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

pub(crate) fn run_cmd(cmd: &mut Command) {
    let status = cmd.status().unwrap();
    assert!(status.success(), "{cmd:?}");
}
