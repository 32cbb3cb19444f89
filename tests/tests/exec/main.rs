//! `sluice exec`: wrapping a command so its connects go through sluice, sandboxed.
//!
//! The sandbox tests ([`sandbox`], [`leaks`]) attack as a hostile agent would (ptrace a
//! same-user process, read its memory, steal its socket, detach sluice's links, make namespaces,
//! use inherited descriptors and environment variables, read files it was not granted) and take
//! ground truth from outside: the same attack by the same user outside the sandbox succeeds,
//! the victim is untraced and alive, the namespace and mount table are unchanged, the socket
//! carried nothing.

mod leaks;
mod sandbox;
mod support;

use std::{path::Path, process::Command};

use sluice_tests::{
    EPERM, Gateway, LineLog, Policy, TestNet, agent_user, bin_path, cgroup2_mount, is_event,
    require_root, temp_dir,
};
use support::{WAIT, last_json, os, probe, sluice_exec, stderr};

#[test]
fn exec_starts_a_gateway_for_the_command_when_none_runs() {
    require_root();
    let (_, _, user) = agent_user();
    let net = TestNet::new();
    let resource = format!("{}:7000", net.peer_v4);
    let _server = net.serve(&resource, false);
    let dir = temp_dir();
    // A managed target: sluice creates (and removes) the cgroup itself.
    let policy = Policy::new(None, "deny").resource("echo", &net.peer_v4, 7000);
    let config = policy.write(&dir);

    let out = sluice_exec(
        &[os("--config"), config.as_os_str(), os("--user"), os(&user)],
        &[
            probe(),
            "connect".into(),
            resource.clone(),
            "--send".into(),
            "wrapped".into(),
        ],
    )
    .output()
    .unwrap();
    let answer = last_json(&out.stdout);
    let log = LineLog::from_reader(std::io::Cursor::new(out.stderr.clone()), "sluice");
    assert!(out.status.success(), "{answer} {}", stderr(&out));
    assert_eq!(answer["reply"], "wrapped");
    assert_eq!(answer["peer"], resource.as_str());
    let conn = log.wait_for(WAIT, |v| is_event(v, "connection"));
    assert_eq!(conn["pid"], answer["pid"]);
    assert_eq!(conn["orig_dst"], resource.as_str());
    log.wait_for(WAIT, |v| is_event(v, "detached"));
    // Everything sluice set up for the command is gone with it.
    assert!(
        !cgroup2_mount().join("sluice").join(&policy.target).exists(),
        "managed cgroup removed"
    );
    assert!(
        !Path::new(&format!("/sys/fs/bpf/sluice/{}", policy.target)).exists(),
        "pins removed"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn exec_passes_the_command_exit_status_through() {
    require_root();
    let (_, _, user) = agent_user();
    let net = TestNet::new();
    let dir = temp_dir();
    let config = Policy::new(None, "deny")
        .resource("echo", &net.peer_v4, 7000)
        .write(&dir);
    let out = sluice_exec(
        &[os("--config"), config.as_os_str(), os("--user"), os(&user)],
        &[probe(), "connect".into(), format!("{}:7999", net.peer_v4)],
    )
    .output()
    .unwrap();
    let answer = last_json(&out.stdout);
    assert_eq!(answer["errno"], EPERM, "{answer}");
    assert_eq!(out.status.code(), Some(1), "the probe's own exit status");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn exec_joins_the_cgroup_of_a_running_gateway() {
    require_root();
    let (_, _, user) = agent_user();
    let net = TestNet::new();
    let resource = format!("{}:7000", net.peer_v4);
    let _server = net.serve(&resource, false);
    let gw = Gateway::start(&Policy::new(None, "deny").resource("echo", &net.peer_v4, 7000));

    let out = sluice_exec(
        &[
            os("--state-dir"),
            gw.state_dir.as_os_str(),
            os("--name"),
            os(&gw.target),
            os("--user"),
            os(&user),
        ],
        &[
            probe(),
            "connect".into(),
            resource.clone(),
            "--send".into(),
            "joined".into(),
        ],
    )
    .output()
    .unwrap();
    let answer = last_json(&out.stdout);
    assert!(out.status.success(), "{answer} {}", stderr(&out));
    assert_eq!(answer["reply"], "joined");
    let conn = gw.log.wait_for(WAIT, |v| is_event(v, "connection"));
    assert_eq!(conn["pid"], answer["pid"]);
    assert_eq!(conn["cgroup_target"], gw.target.as_str());
}

#[test]
fn exec_without_a_gateway_or_policy_explains_what_to_do() {
    let dir = temp_dir();
    let out = Command::new(bin_path("sluice"))
        .args(["exec", "--state-dir"])
        .arg(&dir)
        .args(["--name", "nobody", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no sluice gateway is serving target `nobody`"),
        "{err}"
    );
    assert!(err.contains("--config"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
