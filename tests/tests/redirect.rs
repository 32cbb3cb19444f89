//! Transparent redirect with the real eBPF programs: each test gets its own child cgroup, its own
//! network namespace (the "remote" resource) and its own `sluice run`.

use std::time::Duration;

use serde_json::Value;
use sluice_tests::{
    ECONNREFUSED, EPERM, Gateway, Policy, TestCgroup, TestNet, is_event, probe, require_root,
};

const WAIT: Duration = Duration::from_secs(10);

/// An echo server at `peer:7000` in its own namespace, listed as resource `echo`, a fresh
/// cgroup, and a gateway intercepting it with `egress: deny`.
struct Echo {
    net: TestNet,
    server: sluice_tests::PeerServer,
    cg: TestCgroup,
    gw: Gateway,
    resource: String,
}

impl Echo {
    fn start() -> Echo {
        require_root();
        let net = TestNet::new();
        let resource = format!("{}:7000", net.peer_v4);
        let server = net.serve(&resource, false);
        let cg = TestCgroup::new();
        let gw =
            Gateway::start(&Policy::new(Some(&cg), "deny").resource("echo", &net.peer_v4, 7000));
        Echo {
            net,
            server,
            cg,
            gw,
            resource,
        }
    }
}

#[test]
fn redirected_connect_reports_original_destination_and_process() {
    let Echo {
        net,
        server,
        cg,
        gw,
        resource,
    } = Echo::start();

    let answer = probe(
        Some(&cg.dir),
        &["connect", &resource, "--send", "hello through sluice"],
    );
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(
        answer["reply"], "hello through sluice",
        "bytes relayed both ways"
    );
    // getpeername: the agent sees the original peer, not the proxy.
    assert_eq!(answer["peer"], resource.as_str());

    let conn = gw.log.wait_for(WAIT, |v| is_event(v, "connection"));
    assert_eq!(conn["orig_dst"], resource.as_str());
    assert_eq!(conn["pid"], answer["pid"]);
    assert_eq!(conn["resource"], "echo");
    assert_eq!(conn["comm"], "sluice-probe");
    assert!(
        conn["exe"].as_str().unwrap().ends_with("/sluice-probe"),
        "{conn}"
    );
    assert!(
        conn["cmdline"]
            .as_str()
            .unwrap()
            .contains("hello through sluice"),
        "{conn}"
    );
    assert_eq!(conn["uid"], 0);
    // The proxy's own upstream connect went out directly (it is not in the cgroup): the server
    // saw the host side of the veth, not a loop back into sluice.
    let accepted = server.log.wait_for(WAIT, |v| v.get("accepted").is_some());
    assert!(
        accepted["accepted"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}:", net.host_v4)),
        "{accepted}"
    );
    let closed = gw.log.wait_for(WAIT, |v| is_event(v, "connection_closed"));
    assert_eq!(closed["bytes_to_upstream"], "hello through sluice\n".len());
}

#[test]
fn ipv6_connects_are_redirected_too() {
    require_root();
    let net = TestNet::new();
    let resource = format!("[{}]:7001", net.peer_v6);
    let _server = net.serve(&resource, false);
    let cg = TestCgroup::new();
    let gw = Gateway::start(&Policy::new(Some(&cg), "deny").resource("echo6", &net.peer_v6, 7001));

    let answer = probe(Some(&cg.dir), &["connect", &resource, "--send", "v6"]);
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["reply"], "v6");
    assert_eq!(answer["peer"], resource.as_str());
    let conn = gw.log.wait_for(WAIT, |v| is_event(v, "connection"));
    assert_eq!(conn["orig_dst"], resource.as_str());
    assert_eq!(conn["pid"], answer["pid"]);
}

#[test]
fn egress_deny_refuses_unlisted_destinations_and_reports_them() {
    require_root();
    let net = TestNet::new();
    let unlisted = format!("{}:7100", net.peer_v4);
    let server = net.serve(&unlisted, false);
    let cg = TestCgroup::new();
    let gw = Gateway::start(&Policy::new(Some(&cg), "deny").resource("echo", &net.peer_v4, 7000));

    let answer = probe(Some(&cg.dir), &["connect", &unlisted]);
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["errno"], EPERM, "{answer}");
    let denied = gw.log.wait_for(WAIT, |v| is_event(v, "egress_denied"));
    assert_eq!(denied["dst"], unlisted.as_str());
    assert_eq!(denied["pid"], answer["pid"]);
    assert_eq!(denied["comm"], "sluice-probe");
    assert!(
        server.accepted().is_empty(),
        "nothing reached the unlisted server"
    );

    // IPv6 too, and a dual-stack socket's v4-mapped form of the same unlisted address.
    let v6 = probe(
        Some(&cg.dir),
        &["connect", &format!("[{}]:7100", net.peer_v6)],
    );
    assert_eq!(v6["errno"], EPERM, "{v6}");
    let mapped = probe(
        Some(&cg.dir),
        &["connect", &format!("[::ffff:{}]:7100", net.peer_v4)],
    );
    assert_eq!(mapped["errno"], EPERM, "{mapped}");

    // UDP too (only DNS to the configured resolvers is allowed; tests/tests/containment.rs).
    let udp = probe(Some(&cg.dir), &["udp", &format!("{}:5353", net.peer_v4)]);
    assert_eq!(udp["errno"], EPERM, "{udp}");
}

#[test]
fn egress_allow_lets_unlisted_destinations_through_untouched() {
    require_root();
    let net = TestNet::new();
    let unlisted = format!("{}:7200", net.peer_v4);
    let server = net.serve(&unlisted, false);
    let cg = TestCgroup::new();
    let gw = Gateway::start(&Policy::new(Some(&cg), "allow").resource("echo", &net.peer_v4, 7000));

    let answer = probe(Some(&cg.dir), &["connect", &unlisted, "--send", "direct"]);
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["reply"], "direct");
    // The server saw the client's own address: no proxy in between.
    let accepted = server.log.wait_for(WAIT, |v| v.get("accepted").is_some());
    assert_eq!(accepted["accepted"], answer["local"]);
    assert!(gw.log.matching(|v| is_event(v, "connection")).is_empty());
}

#[test]
fn explicitly_allowed_egress_passes_under_deny() {
    require_root();
    let net = TestNet::new();
    let allowed = format!("{}:7300", net.peer_v4);
    let _server = net.serve(&allowed, false);
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny").resource("echo", &net.peer_v4, 7000);
    policy.extra = format!(
        "egress:\n  allow:\n    - {{ address: \"{}/30\", port: 7300 }}\n",
        net.peer_v4
    );
    let gw = Gateway::start(&policy);

    let answer = probe(Some(&cg.dir), &["connect", &allowed, "--send", "ok"]);
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["peer"], allowed.as_str());
    assert!(
        gw.log
            .matching(|v| is_event(v, "connection") || is_event(v, "egress_denied"))
            .is_empty()
    );
}

#[test]
fn processes_outside_the_cgroup_are_untouched() {
    let Echo {
        net,
        server,
        cg: _cg,
        gw,
        resource,
    } = Echo::start();

    let outside = probe(None, &["connect", &resource, "--send", "outside"]);
    assert_eq!(outside["ok"], true, "{outside}");
    let accepted = server.log.wait_for(WAIT, |v| v.get("accepted").is_some());
    assert_eq!(accepted["accepted"], outside["local"], "reached directly");
    // An unlisted destination is fine outside the cgroup even though the target denies egress.
    let other = net.serve(&format!("{}:7400", net.peer_v4), false);
    let unlisted = probe(None, &["connect", &format!("{}:7400", net.peer_v4)]);
    assert_eq!(unlisted["ok"], true, "{unlisted}");
    drop(other);
    assert!(
        gw.log
            .matching(|v| is_event(v, "connection") || is_event(v, "egress_denied"))
            .is_empty()
    );
}

#[test]
fn connects_fail_closed_when_the_proxy_is_down() {
    let Echo {
        net,
        server,
        cg,
        mut gw,
        resource,
    } = Echo::start();
    let pin_dir = format!("/sys/fs/bpf/sluice/{}", gw.target);
    assert!(std::path::Path::new(&pin_dir).exists(), "links are pinned");

    gw.crash();
    let answer = probe(Some(&cg.dir), &["connect", &resource]);
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(
        answer["errno"], ECONNREFUSED,
        "redirected to the dead listener: {answer}"
    );
    let unlisted = probe(
        Some(&cg.dir),
        &["connect", &format!("{}:7999", net.peer_v4)],
    );
    assert_eq!(unlisted["errno"], EPERM, "egress still denied: {unlisted}");
    assert!(
        server.accepted().is_empty(),
        "the real destination was never reached"
    );

    // A new gateway takes the target over from the dead one's pins and serves again.
    let gw2 = Gateway::start(&Policy {
        target: gw.target.clone(),
        ..Policy::new(Some(&cg), "deny").resource("echo", &net.peer_v4, 7000)
    });
    gw2.log
        .wait_for(WAIT, |v| is_event(v, "stale_pins_replaced"));
    let answer = probe(Some(&cg.dir), &["connect", &resource, "--send", "back"]);
    assert_eq!(answer["reply"], "back", "{answer}");
}

#[test]
fn graceful_stop_keeps_interception_until_an_explicit_detach() {
    let Echo {
        net: _net,
        server,
        cg,
        mut gw,
        resource,
    } = Echo::start();
    let pin_dir = format!("/sys/fs/bpf/sluice/{}", gw.target);
    let state = gw
        .state_dir
        .join("targets")
        .join(format!("{}.json", gw.target));
    assert!(state.exists());

    let status = gw.stop();
    assert!(status.success(), "{status:?}");
    gw.log.wait_for(WAIT, |v| is_event(v, "interception_kept"));
    assert!(std::path::Path::new(&pin_dir).exists(), "pins kept");
    assert!(!state.exists(), "the lease is released");
    // The agent is not free: the resource is refused until a gateway serves the target again.
    let answer = probe(Some(&cg.dir), &["connect", &resource, "--send", "x"]);
    assert_eq!(answer["errno"], ECONNREFUSED, "{answer}");
    assert!(server.accepted().is_empty());

    // Only an explicit detach (nothing left in the cgroup) removes interception.
    let out = gw.sluice(&["cleanup", "--detach"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!std::path::Path::new(&pin_dir).exists(), "pins removed");
    let answer = probe(Some(&cg.dir), &["connect", &resource, "--send", "x"]);
    assert_eq!(answer["ok"], true, "{answer}");
    let accepted = server.log.wait_for(WAIT, |v| v.get("accepted").is_some());
    assert_eq!(accepted["accepted"], answer["local"]);
}

#[test]
fn direct_connections_to_the_listener_are_refused() {
    require_root();
    let cg = TestCgroup::new();
    let gw = Gateway::start(&Policy::new(Some(&cg), "deny"));
    let listen = gw.listen_addr().to_string();
    // From the intercepted cgroup: refused by the kernel (a connection that reached the
    // listener without a redirect could present itself as one it is not).
    let answer = probe(Some(&cg.dir), &["connect", &listen, "--send", "sneaky"]);
    assert_eq!(answer["errno"], EPERM, "{answer}");
    // From outside any target: the kernel lets it through, the proxy closes it without a byte
    // (there is no redirect record saying where it was going).
    let answer = probe(None, &["connect", &listen, "--send", "sneaky"]);
    let closed = answer["reply"] == "" || answer["errno"] == 104;
    assert!(closed, "{answer}");
    let ev: Value = gw
        .log
        .wait_for(WAIT, |v| is_event(v, "unredirected_connection"));
    assert!(ev["client"].as_str().unwrap().starts_with("127.0.0.1:"));
}

#[test]
fn a_target_cannot_be_served_twice() {
    require_root();
    let cg = TestCgroup::new();
    let gw = Gateway::start(&Policy::new(Some(&cg), "deny"));
    let out = std::process::Command::new(sluice_tests::bin_path("sluice"))
        .args(["run", "--config"])
        .arg(&gw.config_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already served by another sluice gateway"),
        "{err}"
    );
    assert!(err.contains(&format!("pid {}", gw.pid())), "{err}");
}

#[test]
fn the_root_cgroup_is_refused() {
    require_root();
    let dir = sluice_tests::temp_dir();
    let path = dir.join("root.yaml");
    std::fs::write(
        &path,
        "targets:\n  - { name: everything, cgroup: /, egress: deny }\n",
    )
    .unwrap();
    let out = std::process::Command::new(sluice_tests::bin_path("sluice"))
        .args(["policy", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("root.yaml:2:") && err.contains("root cgroup cannot be intercepted"),
        "{err}"
    );
}
