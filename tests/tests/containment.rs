//! Containment as a hostile agent tests it: every transport, inbound, the host's kernel
//! interfaces, the redirect records, the connection slots, sluice's own ports, and every way the
//! gateway stops. Ground truth comes from the other side: the datagram that never arrived, the
//! server that accepted nothing, the sysctl that kept its value.
//!
//! Agents run as the unprivileged `sluice-agent` user unless the attack is about root.
//!
//! One file past ~700 lines on purpose: it is one red-team list (every way out of
//! containment), one attack a test (a file is also a test binary to build).

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use sluice_tests::{
    ECONNREFUSED, EPERM, Gateway, LineLog, Policy, TestCgroup, TestNet, bin_path, is_event,
    require_root, temp_dir,
};

const WAIT: Duration = Duration::from_secs(10);

/// The unprivileged account agents run as (made once, idempotently; setup.sh makes it too).
fn agent_user() -> &'static str {
    sluice_tests::ensure_agent_user();
    sluice_tests::AGENT_USER
}

/// `sluice-probe` in `cg`, as the unprivileged agent (`user` Some) or as root.
fn agent(cg: &TestCgroup, user: Option<&str>, args: &[&str]) -> Value {
    let mut cmd = Command::new(bin_path("sluice-probe"));
    cmd.arg("--cgroup").arg(&cg.dir);
    if let Some(u) = user {
        cmd.args(["--user", u]);
    }
    let out = cmd.args(args).output().expect("running sluice-probe");
    last_json(&out.stdout, &out.stderr)
}

fn last_json(stdout: &[u8], stderr: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap_or_else(|e| {
        panic!(
            "probe printed no JSON ({e}): {text} {}",
            String::from_utf8_lossy(stderr)
        )
    })
}

/// A child process killed when dropped.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A UDP receiver inside the namespace, reporting every datagram.
fn udp_receiver(net: &TestNet, addr: &str) -> (Reaped, LineLog) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &net.ns])
        .arg(bin_path("sluice-probe"))
        .args(["udp-serve", addr])
        .stdout(Stdio::piped())
        .spawn()
        .expect("udp receiver");
    let log = LineLog::from_reader(child.stdout.take().unwrap(), "udp");
    log.wait_for(WAIT, |v| v.get("listening").is_some());
    (Reaped(child), log)
}

fn datagrams(log: &LineLog) -> Vec<Value> {
    log.matching(|v| v.get("datagram").is_some())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn udp_to_anything_but_the_allowed_destinations_never_leaves() {
    let user = agent_user();
    let net = TestNet::new();
    let cg = TestCgroup::new();
    // A DNS-shaped exfiltration to a host that is not the resolver, QUIC-shaped traffic, and a
    // destination the policy allows for UDP (the positive control).
    let targets = ["53", "443", "5353"].map(|p| format!("{}:{p}", net.peer_v4));
    let receivers: Vec<_> = targets.iter().map(|t| udp_receiver(&net, t)).collect();
    let mut policy = Policy::new(Some(&cg), "deny").resource("echo", &net.peer_v4, 7000);
    policy.extra = format!(
        "egress:\n  allow:\n    - {{ address: \"{}\", port: 5353, protocol: udp }}\n",
        net.peer_v4
    );
    let gw = Gateway::start(&policy);

    for (addr, secret) in [
        (&targets[0], "c2VjcmV0.exfil.example"),
        (&targets[1], "quic-initial"),
    ] {
        let sent = agent(&cg, Some(user), &["udp-send", addr, secret]);
        assert_eq!(sent["errno"], EPERM, "unconnected sendto {addr}: {sent}");
        assert_eq!(
            sent["connected"]["errno"], EPERM,
            "connect+send {addr}: {sent}"
        );
    }
    // The same over IPv6 and over a dual-stack socket's mapped form.
    let v6 = agent(
        &cg,
        Some(user),
        &["udp-send", &format!("[{}]:53", net.peer_v6), "x"],
    );
    assert_eq!(v6["errno"], EPERM, "{v6}");
    let mapped = agent(
        &cg,
        Some(user),
        &["udp-send", &format!("[::ffff:{}]:53", net.peer_v4), "x"],
    );
    assert_eq!(mapped["errno"], EPERM, "{mapped}");

    let allowed = agent(&cg, Some(user), &["udp-send", &targets[2], "allowed"]);
    assert_eq!(allowed["ok"], true, "{allowed}");
    receivers[2]
        .1
        .wait_for(WAIT, |v| v["datagram"] == "allowed");

    let denied = gw.log.wait_for(WAIT, |v| is_event(v, "udp_denied"));
    assert_eq!(denied["dst"], targets[0].as_str());
    assert!(denied["uid"].as_u64().unwrap() > 0, "{denied}");
    // Ground truth: nothing reached the other two receivers.
    std::thread::sleep(Duration::from_millis(300));
    assert!(datagrams(&receivers[0].1).is_empty());
    assert!(datagrams(&receivers[1].1).is_empty());
}

#[test]
fn only_tcp_and_udp_sockets_exist_in_a_target() {
    require_root();
    let cg = TestCgroup::new();
    let gw = Gateway::start(&Policy::new(Some(&cg), "deny"));
    const AF_INET: &str = "2";
    const AF_INET6: &str = "10";
    // Even as root: raw sockets, ICMP (ping sockets carry a payload), SCTP, MPTCP (which would
    // connect past the TCP redirect), UDP-Lite.
    for (domain, kind, proto, what) in [
        (AF_INET, "3", "1", "raw ICMP"),
        (AF_INET, "3", "255", "raw IP"),
        (AF_INET6, "3", "58", "raw ICMPv6"),
        (AF_INET, "2", "1", "ICMP ping socket"),
        (AF_INET, "1", "262", "MPTCP"),
        (AF_INET, "1", "132", "SCTP"),
        (AF_INET, "2", "136", "UDP-Lite"),
    ] {
        let r = agent(&cg, None, &["socket", domain, kind, proto]);
        assert_eq!(r["ok"], false, "{what} socket created: {r}");
    }
    for (domain, kind) in [
        (AF_INET, "1"),
        (AF_INET, "2"),
        (AF_INET6, "1"),
        (AF_INET6, "2"),
    ] {
        let r = agent(&cg, None, &["socket", domain, kind, "0"]);
        assert_eq!(r["ok"], true, "TCP/UDP must keep working: {r}");
    }
    let ev = gw.log.wait_for(WAIT, |v| is_event(v, "socket_denied"));
    assert!(
        ev["subject"].as_str().unwrap().contains("family inet"),
        "{ev}"
    );
}

#[test]
fn nothing_outside_the_host_can_connect_in() {
    let user = agent_user();
    let net = TestNet::new();
    let cg = TestCgroup::new();
    let gw = Gateway::start(&Policy::new(Some(&cg), "deny"));

    // A fixed port on every address, or on the address other hosts reach: refused.
    for addr in ["0.0.0.0:18080", "[::]:18080"] {
        let r = agent(&cg, Some(user), &["bind", addr]);
        assert_eq!(r["errno"], EPERM, "bind {addr}: {r}");
    }
    let r = agent(
        &cg,
        Some(user),
        &["bind", &format!("{}:18080", net.host_v4)],
    );
    assert_eq!(r["errno"], EPERM, "bind to the host's address: {r}");
    gw.log.wait_for(WAIT, |v| is_event(v, "bind_denied"));
    // Loopback servers (tools that talk to themselves) keep working.
    let r = agent(&cg, Some(user), &["bind", "127.0.0.1:18081"]);
    assert_eq!(r["ok"], true, "{r}");

    // listen() without bind(): the kernel binds every address on an ephemeral port, with no
    // bind call to refuse. A host outside (the namespace) tries to connect in.
    let mut listener = Command::new(bin_path("sluice-probe"))
        .arg("--cgroup")
        .arg(&cg.dir)
        .args(["--user", user, "listen", "-", "4"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let log = LineLog::from_reader(listener.stdout.take().unwrap(), "agent");
    let listening = log.wait_for(WAIT, |v| v.get("listening").is_some());
    let port = listening["listening"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let outside = Command::new("ip")
        .args(["netns", "exec", &net.ns])
        .arg(bin_path("sluice-probe"))
        .args(["connect", &format!("{}:{port}", net.host_v4)])
        .output()
        .unwrap();
    let outside = last_json(&outside.stdout, &outside.stderr);
    assert_eq!(
        outside["ok"], false,
        "a remote host connected in: {outside}"
    );
    let accepted = log.wait_for(WAIT, |v| v.get("accepted").is_some());
    assert!(accepted["accepted"].is_null(), "{accepted}");
    let _ = listener.wait();
    let dropped = gw.log.wait_for(WAIT, |v| is_event(v, "inbound_dropped"));
    assert!(
        dropped["subject"]
            .as_str()
            .unwrap()
            .contains(&format!("connection request from {}", net.peer_v4)),
        "{dropped}"
    );
}

#[test]
fn inbound_deny_refuses_loopback_servers_too() {
    let user = agent_user();
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny");
    policy.target_extra = "    inbound: deny\n".into();
    let _gw = Gateway::start(&policy);
    let r = agent(&cg, Some(user), &["bind", "127.0.0.1:18082"]);
    assert_eq!(r["errno"], EPERM, "{r}");
    // A client's bind to port 0 is not a server.
    let r = agent(&cg, Some(user), &["bind", "0.0.0.0:0"]);
    assert_eq!(r["ok"], true, "{r}");
}

#[test]
fn root_in_a_target_cannot_write_sysctls_read_disks_or_make_device_nodes() {
    require_root();
    let cg = TestCgroup::new();
    let gw = Gateway::start(&Policy::new(Some(&cg), "deny"));
    // kernel.core_pattern runs a program as root outside every cgroup. The write carries the
    // current value, so even a failure of this test changes nothing.
    let path = "/proc/sys/kernel/core_pattern";
    let before = std::fs::read_to_string(path).unwrap();
    let r = agent(&cg, None, &["write-file", path, before.trim_end()]);
    assert_eq!(r["errno"], EPERM, "sysctl write: {r}");
    let ev = gw.log.wait_for(WAIT, |v| is_event(v, "sysctl_denied"));
    assert!(
        ev["subject"].as_str().unwrap().contains("core_pattern"),
        "{ev}"
    );
    // Reading sysctls is fine.
    let r = agent(&cg, None, &["read-file", path, "64"]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(std::fs::read_to_string(path).unwrap(), before);

    // The raw disk (every file check bypassed) and kernel memory.
    let disk = std::fs::read_to_string("/proc/partitions")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .find(|d| std::path::Path::new(&format!("/dev/{d}")).exists())
        .expect("a block device");
    let r = agent(&cg, None, &["read-file", &format!("/dev/{disk}"), "512"]);
    assert_eq!(r["errno"], EPERM, "raw disk read: {r}");
    if std::path::Path::new("/dev/mem").exists() {
        let r = agent(&cg, None, &["read-file", "/dev/mem", "16"]);
        assert_eq!(r["errno"], EPERM, "/dev/mem: {r}");
    }
    gw.log.wait_for(WAIT, |v| is_event(v, "device_denied"));
    // The disk under another name.
    let node = temp_dir().join("disk");
    let r = agent(&cg, None, &["mknod", node.to_str().unwrap(), "253", "0"]);
    assert_eq!(r["errno"], EPERM, "mknod: {r}");
    assert!(!node.exists());
    // Ordinary devices keep working.
    let r = agent(&cg, None, &["read-file", "/dev/urandom", "16"]);
    assert_eq!(r["ok"], true, "{r}");
}

#[test]
fn sluice_listener_cannot_be_reached_directly_nor_a_record_claimed() {
    let user = agent_user();
    let net = TestNet::new();
    let resource = format!("{}:7000", net.peer_v4);
    let server = net.serve(&resource, false);
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny").resource("echo", &net.peer_v4, 7000);
    policy.target_extra = "    max_connections_per_process: 1\n".into();
    let gw = Gateway::start(&policy);
    let listen = gw.listen_addr();

    // Straight to the listener (IPv4, the dual-stack mapped form, IPv6): refused in the kernel,
    // before any accept.
    for addr in [
        listen.to_string(),
        format!("[::ffff:127.0.0.1]:{}", listen.port()),
        format!("[::1]:{}", listen.port()),
    ] {
        let r = agent(&cg, Some(user), &["connect", &addr, "--send", "sneaky"]);
        assert_eq!(r["errno"], EPERM, "direct connect {addr}: {r}");
    }
    gw.log.wait_for(WAIT, |v| {
        is_event(v, "egress_denied") && v["subject"].as_str().unwrap().contains("own port")
    });

    // A connection closed at the process's quota: redirected, accepted, refused.
    let mut hog = Command::new(bin_path("sluice-probe"))
        .arg("--cgroup")
        .arg(&cg.dir)
        .args(["hold", &resource, "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let limited = gw.log.wait_for(WAIT, |v| is_event(v, "connection_limit"));
    let client = limited["client"].as_str().unwrap().to_string();
    let _ = hog.kill();
    let _ = hog.wait();
    // Whoever takes that address next and connects to the listener directly (a process outside
    // the cgroup: the kernel lets it reach the listener) must not be served with the dropped
    // connection's record, identity and resource.
    // The killed process's socket may hold the address for a moment (bind or connect then
    // fails): try again until the claim reaches the listener.
    let mut claim = Value::Null;
    for _ in 0..50 {
        let out = Command::new(bin_path("sluice-probe"))
            .args(["connect-from", &client, &listen.to_string(), "claim"])
            .output()
            .unwrap();
        claim = last_json(&out.stdout, &out.stderr);
        if claim["ok"] == true {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        claim["ok"], true,
        "the claim never reached the listener: {claim}"
    );
    assert_ne!(
        claim["reply"], "claim",
        "served with another's record: {claim}"
    );
    gw.log.wait_for(WAIT, |v| {
        is_event(v, "unredirected_connection") && v["client"] == client.as_str()
    });
    // Ground truth: the echo server only ever saw the one connection within the quota.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.accepted().len(), 1, "{:?}", server.accepted());
}

#[test]
fn one_process_cannot_take_every_slot() {
    let user = agent_user();
    let net = TestNet::new();
    let resource = format!("{}:7000", net.peer_v4);
    let _server = net.serve(&resource, false);
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny").resource("echo", &net.peer_v4, 7000);
    policy.target_extra = "    max_connections_per_process: 3\n    max_connections: 5\n".into();
    let gw = Gateway::start(&policy);

    // The hog asks for more than its share; the gateway closes what is over it.
    let mut hog = Command::new(bin_path("sluice-probe"))
        .arg("--cgroup")
        .arg(&cg.dir)
        .args(["--user", user, "hold", &resource, "4", "--echo"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let hog_log = LineLog::from_reader(hog.stdout.take().unwrap(), "hog");
    let r = hog_log.wait_for(WAIT, |v| v.get("open").is_some());
    assert_eq!(r["open"], 3, "the 4th connection is closed: {r}");
    let limit = gw.log.wait_for(WAIT, |v| is_event(v, "connection_limit"));
    assert!(
        limit["limit"].as_str().unwrap().contains("process"),
        "{limit}"
    );

    // Another agent process still gets through.
    let other = agent(
        &cg,
        Some(user),
        &["connect", &resource, "--send", "still served"],
    );
    assert_eq!(other["reply"], "still served", "{other}");
    let _ = hog.kill();
    let _ = hog.wait();
}

#[test]
fn a_silent_login_is_closed_after_the_handshake_timeout() {
    require_root();
    let net = TestNet::new();
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny");
    let key = temp_dir().join("id_ed25519");
    sluice_tests::run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key),
    );
    // Nothing listens upstream: a login that never starts never reaches it anyway.
    policy.raw_resources = format!(
        "  - name: db\n    protocol: postgres\n    match:\n      - {{ address: \"{a}\", port: 5432 }}\n    credentials: {{ mode: passthrough }}\n\
         \x20 - name: box\n    protocol: ssh\n    match:\n      - {{ address: \"{a}\", port: 22 }}\n    credentials: {{ mode: inject, user: nobody, key: {{ file: {k} }} }}\n    ssh: {{ host_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\"] }}\n",
        a = net.peer_v4,
        k = key.display()
    );
    policy.extra = "handshake_timeout: 1s\n".into();
    let gw = Gateway::start(&policy);

    for port in ["5432", "22"] {
        // Connects, sends nothing, waits (up to 20 s) for the gateway to close.
        let r = agent(
            &cg,
            None,
            &["silent", &format!("{}:{port}", net.peer_v4), "20"],
        );
        assert_eq!(r["closed_by_peer"], true, "port {port}: {r}");
    }
    let timeouts = gw.log.wait_for(WAIT, |v| is_event(v, "handshake_timeout"));
    assert_eq!(timeouts["timeout_ms"], 1000);
}

#[test]
fn agents_cannot_squat_sluice_ports_after_a_crash() {
    require_root();
    let net = TestNet::new();
    let cg = TestCgroup::new();
    let (port, api) = (free_port(), free_port());
    let mut policy = Policy::new(Some(&cg), "deny").resource("echo", &net.peer_v4, 7000);
    policy.listen = format!("127.0.0.1:{port}");
    policy.extra = format!(
        "approvals:\n  listen: 127.0.0.1:{api}\nidentity:\n  static_tokens:\n    - {{ subject: r, groups: [dba], token: {{ value: \"t0ken-for-the-test\" }} }}\n"
    );
    let mut gw = Gateway::start(&policy);
    gw.crash();

    // A root agent already in the cgroup races the restart for both ports, on every address.
    for addr in [
        format!("127.0.0.1:{port}"),
        format!("0.0.0.0:{port}"),
        format!("[::1]:{port}"),
        format!("127.0.0.1:{api}"),
        format!("0.0.0.0:{api}"),
    ] {
        let r = agent(&cg, None, &["bind", &addr]);
        assert_eq!(r["errno"], EPERM, "bind {addr}: {r}");
    }
    gw.restart();
    assert_eq!(gw.listen_addr().port(), port);
}

#[test]
fn a_stopped_gateway_leaves_agents_refused_never_free() {
    let user = agent_user();
    let net = TestNet::new();
    let resource = format!("{}:7000", net.peer_v4);
    let server = net.serve(&resource, false);
    let (_udp, udp_log) = udp_receiver(&net, &format!("{}:9999", net.peer_v4));
    let cg = TestCgroup::new();
    let mut gw =
        Gateway::start(&Policy::new(Some(&cg), "deny").resource("echo", &net.peer_v4, 7000));
    // An agent that keeps running while the gateway restarts.
    let mut bystander = Command::new(bin_path("sluice-probe"))
        .arg("--cgroup")
        .arg(&cg.dir)
        .args(["run", "--", "sleep", "60"])
        .spawn()
        .unwrap();

    // What `systemctl restart` does first.
    assert!(gw.stop().success());
    gw.log.wait_for(WAIT, |v| is_event(v, "interception_kept"));
    let r = agent(&cg, Some(user), &["connect", &resource, "--send", "x"]);
    assert_eq!(r["errno"], ECONNREFUSED, "resource while stopped: {r}");
    let r = agent(
        &cg,
        Some(user),
        &["connect", &format!("{}:7001", net.peer_v4)],
    );
    assert_eq!(r["errno"], EPERM, "unlisted while stopped: {r}");
    let r = agent(
        &cg,
        Some(user),
        &["udp-send", &format!("{}:9999", net.peer_v4), "x"],
    );
    assert_eq!(r["errno"], EPERM, "udp while stopped: {r}");

    // `sluice cleanup` only reports; `--detach` refuses while an agent is in the cgroup.
    let config_path = gw.config_path.clone();
    let cleanup = |args: &[&str]| {
        Command::new(bin_path("sluice"))
            .arg("cleanup")
            .args(args)
            .arg("--config")
            .arg(&config_path)
            .output()
            .unwrap()
    };
    let out = cleanup(&[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("interception pinned"));
    let out = cleanup(&["--detach"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("still in"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r = agent(&cg, Some(user), &["connect", &resource]);
    assert_eq!(r["errno"], ECONNREFUSED, "still intercepted: {r}");

    // Ground truth: nothing reached either server while the gateway was down.
    assert!(server.accepted().is_empty(), "{:?}", server.accepted());
    assert!(datagrams(&udp_log).is_empty());

    // A crash (SIGKILL) is the same, and a new gateway serves again.
    gw.restart();
    gw.crash();
    let r = agent(&cg, Some(user), &["connect", &resource]);
    assert_eq!(r["errno"], ECONNREFUSED, "after a crash: {r}");
    assert!(server.accepted().is_empty());

    // Once the cgroup is empty, an explicit --detach removes interception.
    let _ = bystander.kill();
    let _ = bystander.wait();
    let out = cleanup(&["--detach"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r = agent(&cg, Some(user), &["connect", &resource, "--send", "direct"]);
    assert_eq!(r["reply"], "direct", "{r}");
}

#[test]
fn exec_as_a_gateway_never_releases_another_agent() {
    let user = agent_user();
    let net = TestNet::new();
    let resource = format!("{}:7000", net.peer_v4);
    let server = net.serve(&resource, false);
    // A managed target: `sluice exec` joins it.
    let mut gw = Gateway::start(&Policy::new(None, "deny").resource("echo", &net.peer_v4, 7000));
    let mut other_agent = Command::new(bin_path("sluice"))
        .args(["exec", "--state-dir"])
        .arg(&gw.state_dir)
        .args(["--name", &gw.target, "--user", user, "--", "sleep", "60"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    gw.crash();

    // An ordinary `sluice exec -- true` becomes the gateway (none serves the target), runs its
    // command and stops.
    let out = Command::new(bin_path("sluice"))
        .args(["--log-format", "json", "exec", "--config"])
        .arg(&gw.config_path)
        .args(["--user", user, "--", "true"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = LineLog::from_reader(std::io::Cursor::new(out.stderr.clone()), "exec");
    log.wait_for(WAIT, |v| is_event(v, "interception_kept"));

    // The other agent is still in the cgroup, still refused.
    let cg_dir = sluice_tests::cgroup2_mount()
        .join("sluice")
        .join(&gw.target);
    let r = {
        let out = Command::new(bin_path("sluice-probe"))
            .arg("--cgroup")
            .arg(&cg_dir)
            .args(["--user", user, "connect", &resource])
            .output()
            .unwrap();
        last_json(&out.stdout, &out.stderr)
    };
    assert_eq!(r["errno"], ECONNREFUSED, "{r}");
    assert!(server.accepted().is_empty(), "{:?}", server.accepted());
    let _ = other_agent.kill();
    let _ = other_agent.wait();
    sluice_tests::remove_cgroup(&cg_dir);
}

#[test]
fn detached_programs_are_put_back() {
    require_root();
    let net = TestNet::new();
    let resource = format!("{}:7000", net.peer_v4);
    let _server = net.serve(&resource, false);
    let cg = TestCgroup::new();
    let gw = Gateway::start(&Policy::new(Some(&cg), "deny").resource("echo", &net.peer_v4, 7000));
    let pin_root = std::path::Path::new("/sys/fs/bpf/sluice");
    let pins = pin_root.join(&gw.target);
    // Only root may open the pins.
    use std::os::unix::fs::PermissionsExt;
    for dir in [pin_root, pins.as_path()] {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }

    // Someone with the privilege detaches the connect hook through its pin (what the red team
    // did from a root agent; a `sluice exec` agent cannot call bpf() at all).
    let r = {
        let out = Command::new(bin_path("sluice-probe"))
            .args(["bpf-detach", pins.join("sluice_connect4").to_str().unwrap()])
            .output()
            .unwrap();
        last_json(&out.stdout, &out.stderr)
    };
    assert_eq!(r["ok"], true, "{r}");
    let restored = gw.log.wait_for(Duration::from_secs(15), |v| {
        is_event(v, "interception_restored")
    });
    assert!(
        restored["programs"]
            .as_str()
            .unwrap()
            .contains("sluice_connect4"),
        "{restored}"
    );
    // Connects are redirected again.
    let r = agent(&cg, None, &["connect", &resource, "--send", "back"]);
    assert_eq!(r["reply"], "back", "{r}");
    gw.log.wait_for(WAIT, |v| is_event(v, "connection"));
}

#[test]
fn monitoring_mode_reports_a_resource_reached_at_an_unlisted_address() {
    require_root();
    let net = TestNet::new();
    // The same host, at its IPv6 address, which the policy does not list.
    let _server = net.serve(&format!("[{}]:7000", net.peer_v6), false);
    let cg = TestCgroup::new();
    let gw = Gateway::start(&Policy::new(Some(&cg), "allow").resource("db", &net.peer_v4, 7000));
    let r = agent(
        &cg,
        None,
        &[
            "connect",
            &format!("[{}]:7000", net.peer_v6),
            "--send",
            "around",
        ],
    );
    assert_eq!(r["reply"], "around", "monitoring mode lets it through: {r}");
    let ev = gw
        .log
        .wait_for(WAIT, |v| is_event(v, "resource_port_unlisted"));
    assert_eq!(ev["dst"], format!("[{}]:7000", net.peer_v6).as_str());
    assert_eq!(ev["refused"], false);

    let out = Command::new(bin_path("sluice"))
        .args(["policy", "check"])
        .arg(&gw.config_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("monitoring mode"), "{text}");
}

/// Starts `sluice run` with `listener` handed over as systemd does (`LISTEN_FDS`, fd 3).
fn spawn_activated(
    config: &std::path::Path,
    listener: &TcpListener,
) -> (std::process::Child, LineLog) {
    use std::os::{fd::AsRawFd, unix::process::CommandExt};
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new(bin_path("sluice"));
    cmd.args(["--log-format", "json", "run", "--config"])
        .arg(config)
        .env("LISTEN_FDS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec: dup2 to fd 3 (clearing
    // close-on-exec) and setenv of the pid, which only the child knows.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let pid = std::ffi::CString::new(libc::getpid().to_string()).unwrap();
            libc::setenv(c"LISTEN_PID".as_ptr(), pid.as_ptr(), 1);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("sluice run");
    let log = LineLog::from_reader(child.stderr.take().unwrap(), "sluice");
    log.wait_for(Duration::from_secs(20), |v| is_event(v, "ready"));
    (child, log)
}

#[test]
fn a_socket_activated_listener_stays_bound_across_restarts() {
    require_root();
    let net = TestNet::new();
    let resource = format!("{}:7000", net.peer_v4);
    let _server = net.serve(&resource, false);
    let cg = TestCgroup::new();
    // The service manager's socket: bound before the gateway, kept while it restarts.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut policy = Policy::new(Some(&cg), "deny").resource("echo", &net.peer_v4, 7000);
    policy.listen = listener.local_addr().unwrap().to_string();
    let dir = temp_dir();
    let config = policy.write(&dir);
    let _detach = Detach(config.clone());

    let (mut first, log) = spawn_activated(&config, &listener);
    log.wait_for(WAIT, |v| is_event(v, "socket_activation"));
    let r = agent(&cg, None, &["connect", &resource, "--send", "one"]);
    assert_eq!(r["reply"], "one", "{r}");
    first.kill().unwrap();
    first.wait().unwrap();

    // While no gateway runs, the agent's connect is not refused: it waits in the kernel's
    // accept queue of the still-bound socket, and the next gateway serves it.
    let waiting = std::thread::spawn({
        let dir = cg.dir.clone();
        let resource = resource.clone();
        move || {
            let out = Command::new(bin_path("sluice-probe"))
                .arg("--cgroup")
                .arg(&dir)
                .args(["connect", &resource, "--send", "queued"])
                .output()
                .unwrap();
            last_json(&out.stdout, &out.stderr)
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let (mut second, _log) = spawn_activated(&config, &listener);
    let r = waiting.join().unwrap();
    assert_eq!(r["reply"], "queued", "{r}");
    second.kill().unwrap();
    second.wait().unwrap();
}

/// Removes what gateways started outside the harness left pinned.
struct Detach(std::path::PathBuf);

impl Drop for Detach {
    fn drop(&mut self) {
        let _ = Command::new(bin_path("sluice"))
            .args(["cleanup", "--detach", "--force", "--config"])
            .arg(&self.0)
            .output();
    }
}

/// A unix server outside the target (path and abstract), reporting each connection.
fn unix_server(path: &str) -> (Reaped, LineLog) {
    let mut child = Command::new(bin_path("sluice-probe"))
        .args(["unix-serve", path])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let log = LineLog::from_reader(child.stdout.take().unwrap(), "unix");
    log.wait_for(WAIT, |v| v.get("listening").is_some());
    (Reaped(child), log)
}

#[test]
fn unix_sockets_outside_the_target_are_refused_by_default() {
    let user = agent_user();
    let dir = temp_dir();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("daemon.sock").display().to_string();
    let abstract_name = format!("@{}", sluice_tests::unique("sluice-daemon-"));
    let (_path_server, path_log) = unix_server(&path);
    let (_abstract_server, abstract_log) = unix_server(&abstract_name);
    // Control: outside the target both answer.
    let control = Command::new(bin_path("sluice-probe"))
        .args(["unix-connect", &path])
        .output()
        .unwrap();
    assert_eq!(
        last_json(&control.stdout, &control.stderr)["reply"],
        "hello"
    );

    let cg = TestCgroup::new();
    let _gw = Gateway::start(&Policy::new(Some(&cg), "deny"));
    for target in [path.as_str(), abstract_name.as_str()] {
        for as_user in [Some(user), None] {
            let r = agent(&cg, as_user, &["unix-connect", target]);
            assert_eq!(r["errno"], EPERM, "{target} as {as_user:?}: {r}");
        }
    }
    // Ground truth: only the control's connection reached a server.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(path_log.matching(|v| v.get("accepted").is_some()).len(), 1);
    assert!(
        abstract_log
            .matching(|v| v.get("accepted").is_some())
            .is_empty()
    );

    // The database's own local socket, as root: psql gets no further than the connect.
    let net = TestNet::new();
    let pg = sluice_tests::PgServer::start(&net);
    let out = sluice_tests::client_in(
        &cg.dir,
        &[],
        &[
            "psql",
            "-X",
            "-h",
            pg.socket_dir().to_str().unwrap(),
            "-U",
            "postgres",
            "-c",
            "SELECT 1",
        ],
    );
    assert!(!out.status.success(), "{}", out.stdout);
    assert!(
        out.stderr.contains("Operation not permitted"),
        "{}",
        out.stderr
    );
}

#[test]
fn unix_allow_lets_a_target_reach_local_sockets() {
    require_root();
    let dir = temp_dir();
    let path = dir.join("allowed.sock").display().to_string();
    let (_server, log) = unix_server(&path);
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny");
    policy.target_extra = "    unix: allow\n".into();
    let _gw = Gateway::start(&policy);
    let r = agent(&cg, None, &["unix-connect", &path]);
    assert_eq!(r["reply"], "hello", "{r}");
    log.wait_for(WAIT, |v| v.get("accepted").is_some());
}
