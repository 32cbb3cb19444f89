//! Network namespaces joined to the host by veth pairs (so that a resource's address is a real
//! remote host, not the proxy's own), and the echo/HTTP peers that run inside them.

use std::{
    process::{Child, Command, Stdio},
    sync::atomic::Ordering,
    time::Duration,
};

use serde_json::Value;

use crate::{COUNTER, LineLog, bin_path, lock_file, require_root, run};

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
    lock_file(&format!("subnet-{n}"), false)
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
