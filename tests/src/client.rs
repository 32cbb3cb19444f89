//! Clients run inside an intercepted cgroup: the `sluice-probe` client and real programs
//! (psql, ssh, ...) started through it.

use std::{path::Path, process::Command};

use serde_json::Value;

use crate::bin_path;

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
