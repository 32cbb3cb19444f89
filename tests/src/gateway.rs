//! The real `sluice run` process with its JSON log, and the builder of the policy it runs.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use crate::{LineLog, TestCgroup, bin_path, is_event, require_root, stderr, temp_dir, unique};

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

    /// Runs the `sluice` CLI as `sluice ARGS --config <this gateway's policy>`.
    pub fn sluice(&self, args: &[&str]) -> Output {
        Command::new(bin_path("sluice"))
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .output()
            .expect("running sluice")
    }

    /// What an operator hands an SSH agent: `sluice ssh known-hosts` (the real addresses with
    /// the gateway's host key), written to `agent_known_hosts` in the data directory.
    pub fn agent_known_hosts(&self) -> PathBuf {
        let out = self.sluice(&["ssh", "known-hosts"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let path = self.data_dir.join("agent_known_hosts");
        std::fs::write(&path, &out.stdout).unwrap();
        path
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
