//! Who the agent is and what it cannot do: root refused, `run_as` with nothing to regain, the
//! seccomp denylist against a same-user process and the kernel, `--allow-root`.

use std::{
    ffi::OsStr,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use sluice_tests::{
    EPERM, Gateway, LineLog, Policy, TestNet, agent_user, cgroup2_mount, is_event, require_root,
    temp_dir, unique,
};

use crate::support::*;

/// Root, as the red team's agent ran, is refused in both modes before anything runs.
#[test]
fn exec_refuses_to_run_the_agent_as_root() {
    require_root();
    let gw = Gateway::start(&Policy::new(None, "deny"));
    let join = [
        os("--state-dir"),
        gw.state_dir.as_os_str(),
        os("--name"),
        os(&gw.target),
    ];
    for extra in [&[][..], &[os("--user"), os("root")][..]] {
        let args: Vec<&OsStr> = join.iter().copied().chain(extra.iter().copied()).collect();
        let out = sluice_exec(&args, &[probe(), "self".into()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("refusing to run the agent as root"), "{err}");
        assert!(
            err.contains("run_as") && err.contains("--allow-root"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "the command never ran");
    }
    // Nothing of the command entered the gateway's cgroup.
    let cgroup = cgroup2_mount().join("sluice").join(&gw.target);
    let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap();
    assert!(procs.trim().is_empty(), "{procs}");

    // Own-gateway mode: refused before a gateway is started.
    let dir = temp_dir();
    let config = own_policy(&dir, "", "");
    let out = sluice_exec(
        &[os("--config"), config.as_os_str()],
        &[probe(), "self".into()],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("refusing to run the agent as root"), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        !err.contains("\"attached\"") && !err.contains("\"ready\""),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// With `run_as`, the agent is that user with nothing to regain: ids and groups are the user's,
/// every capability set is empty, no_new_privs and a seccomp filter are on, and it can neither
/// become root again nor leave the cgroup.
#[test]
fn exec_runs_the_agent_as_run_as_with_nothing_to_regain() {
    require_root();
    let (uid, gid, user) = agent_user();
    let groups: Vec<u64> = {
        let out = Command::new("id").args(["-G", &user]).output().unwrap();
        let mut g: Vec<u64> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|g| g.parse().unwrap())
            .collect();
        g.sort();
        g
    };
    let dir = temp_dir();
    let config = own_policy(&dir, &format!("    run_as: {user}\n"), "");
    let root_cgroup = cgroup2_mount();
    let out = sluice_exec(
        &[os("--config"), config.as_os_str()],
        &probe_script(&[
            "self".into(),
            "try setuid 0".into(),
            format!("try join-cgroup {}", root_cgroup.display()),
        ]),
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out.stdout);
    let (me, setuid, escape) = (&lines[0], &lines[1], &lines[2]);
    let (uid, gid) = (u64::from(uid), u64::from(gid));
    assert_eq!(me["uid"], serde_json::json!([uid, uid, uid, uid]), "{me}");
    assert_eq!(me["gid"], serde_json::json!([gid, gid, gid, gid]), "{me}");
    let mut have: Vec<u64> = me["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_u64().unwrap())
        .collect();
    have.sort();
    assert_eq!(have, groups, "{me}");
    for set in ["cap_inh", "cap_prm", "cap_eff", "cap_bnd", "cap_amb"] {
        assert_eq!(me[set], "0000000000000000", "{set}: {me}");
    }
    assert_eq!(me["no_new_privs"], "1");
    assert_eq!(me["seccomp"], "2");
    assert_eq!(me["env"]["USER"], user.as_str());
    assert_eq!(me["env"]["HOME"], "/nonexistent");
    let target_cgroup = me["cgroup"].as_str().unwrap().to_string();
    assert!(target_cgroup.starts_with("/sluice/t"), "{me}");

    assert_eq!(setuid["errno"], EPERM, "{setuid}");
    assert_eq!(setuid["uid_after"], uid);
    assert_eq!(escape["ok"], false, "{escape}");
    assert_eq!(
        escape["cgroup"],
        target_cgroup.as_str(),
        "still in the cgroup"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Each denied family of system calls, from inside, against a same-user process outside: the
/// control (the same user, unsandboxed) succeeds; the agent gets EPERM and nothing happened.
#[test]
fn exec_denies_what_reaches_other_processes_and_the_kernel() {
    require_root();
    let (_, _, user) = agent_user();
    let echo = Echo::start();
    let echo_addr = echo.addr.clone();
    let secret = unique("victim-secret-");
    let mut victim = Victim::start(&secret, Some(&echo_addr));
    // A same-user process in a user namespace of its own, to enter. setpriv (unlike runuser)
    // execs in place, so its pid is the namespace holder's.
    let mut ns_holder = Command::new("setpriv")
        .args([
            &format!("--reuid={user}"),
            &format!("--regid={user}"),
            "--init-groups",
        ])
        .args(["--", "unshare", "-U", "sleep", "60"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ns_pid = ns_holder.id();
    let ns_path = format!("/proc/{ns_pid}/ns/user");
    for _ in 0..100 {
        if std::fs::read_link(&ns_path).ok() != std::fs::read_link("/proc/self/ns/user").ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let fd = victim.fd.unwrap();
    let mount_dir = temp_dir();
    let attacks: Vec<String> = vec![
        format!("try ptrace {}", victim.pid),
        format!("try vm-read {} {} {}", victim.pid, victim.addr, victim.len),
        format!("try pidfd-getfd {} {fd}", victim.pid),
        "try unshare user".into(),
        "try unshare user,net".into(),
        "try clone user".into(),
        // Through a pidfd: Landlock already refuses opening another process's /proc/PID/ns.
        format!("try setns pid:{ns_pid} user"),
        format!("try kill {} 0", victim.pid),
    ];
    let controls: Vec<Value> = attacks.iter().map(|a| control(&words(a))).collect();
    for (a, c) in attacks.iter().zip(&controls) {
        assert_eq!(c["ok"], true, "control `{a}` must work outside: {c}");
    }
    assert!(controls[1]["text"].as_str().unwrap().contains(&secret));
    assert!(
        controls[2]["target"]
            .as_str()
            .unwrap()
            .starts_with("socket:")
    );
    assert_eq!(victim.status("TracerPid"), "0", "the control detached");

    let gw = Gateway::start(&Policy::new(None, "deny"));
    let mut inside = attacks.clone();
    inside.pop();
    inside.extend([
        format!("try kill {} 9", victim.pid),
        format!("try mount {}", mount_dir.display()),
        "try clone3".into(),
        "try spawn /bin/true".into(),
    ]);
    let out = sluice_exec(
        &[
            os("--state-dir"),
            gw.state_dir.as_os_str(),
            os("--name"),
            os(&gw.target),
            os("--user"),
            os(&user),
        ],
        &probe_script(&inside),
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), inside.len(), "{text} {}", stderr(&out));
    for (a, r) in inside.iter().zip(&lines).take(9) {
        assert_eq!(r["ok"], false, "`{a}` must fail inside: {r}");
        assert_eq!(r["errno"], EPERM, "`{a}`: {r}");
    }
    assert_eq!(
        lines[2]["step"], "pidfd_getfd",
        "pidfd_open itself is harmless"
    );
    // clone3 says "not implemented" so that libc falls back to clone, whose flags are checked;
    // plain process creation still works.
    assert_eq!(lines[9]["errno"], ENOSYS, "{}", lines[9]);
    assert_eq!(lines[10]["ok"], true, "{}", lines[10]);

    // Ground truth, from outside.
    assert!(
        !text.contains(&secret),
        "the victim's memory was read: {text}"
    );
    assert_eq!(victim.status("TracerPid"), "0");
    assert!(
        victim.alive(),
        "SIGKILL reached a process outside the sandbox"
    );
    for r in &lines[3..5] {
        assert_eq!(r["user_ns_before"], r["user_ns_after"], "{r}");
    }
    let victim_ns = std::fs::read_link(&ns_path).unwrap().display().to_string();
    assert_ne!(
        lines[6]["user_ns_after"],
        victim_ns.as_str(),
        "{}",
        lines[6]
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&mount_dir.display().to_string()),
        "mounted"
    );

    let _ = ns_holder.kill();
    let _ = ns_holder.wait();
    let _ = std::fs::remove_dir_all(mount_dir);
}

/// `--allow-root`: uid 0 stays, with a warning; the dangerous capabilities are gone from every
/// set, no_new_privs and seccomp apply: the red team's root attacks on the gateway (detach its
/// pinned links, ptrace it, read its memory, take its sockets, mount) fail, and interception
/// still works afterwards.
#[test]
fn exec_allow_root_keeps_uid_0_but_not_the_kernel() {
    require_root();
    let net = TestNet::new();
    let resource = format!("{}:7000", net.peer_v4);
    let _server = net.serve(&resource, false);
    let gw = Gateway::start(&Policy::new(None, "deny").resource("echo", &net.peer_v4, 7000));
    let pin = std::fs::read_dir(format!("/sys/fs/bpf/sluice/{}", gw.target))
        .unwrap()
        .flatten()
        .next()
        .expect("a pinned link")
        .path();
    // Control: root outside the sandbox reaches the pin (without detaching it).
    let c = sluice_tests::probe(None, &["try", "bpf-obj-get", pin.to_str().unwrap()]);
    assert_eq!(c["ok"], true, "{c}");
    let mount_dir = temp_dir();
    let gw_pid = gw.pid();
    let join = [
        os("--state-dir"),
        gw.state_dir.as_os_str(),
        os("--name"),
        os(&gw.target),
        os("--allow-root"),
    ];
    let attacks = [
        "self".to_string(),
        format!("try bpf-obj-get {} --detach", pin.display()),
        format!("try ptrace {gw_pid}"),
        format!("try vm-read {gw_pid} 4194304 16"),
        format!("try pidfd-getfd {gw_pid} 3"),
        format!("try mount {}", mount_dir.display()),
        format!("try read /proc/{gw_pid}/environ"),
        "try unshare user".into(),
    ];
    let out = sluice_exec(&join, &probe_script(&attacks))
        .output()
        .unwrap();
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), attacks.len(), "{}", stderr(&out));
    let log = LineLog::from_reader(std::io::Cursor::new(out.stderr.clone()), "exec");
    let warning = log.wait_for(WAIT, |v| is_event(v, "exec_allow_root"));
    assert_eq!(warning["level"], "WARN");
    assert!(
        warning["fields"]["message"]
            .as_str()
            .or(warning["message"].as_str())
            .unwrap_or_default()
            .contains("as far as this sandbox reaches"),
        "{warning}"
    );

    let me = &lines[0];
    assert_eq!(me["uid"], serde_json::json!([0, 0, 0, 0]));
    // CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETGID, SETUID, NET_BIND_SERVICE.
    let kept = cap_mask(&[0, 1, 3, 4, 6, 7, 10]);
    for set in ["cap_bnd", "cap_eff", "cap_prm"] {
        assert_eq!(me[set], kept.as_str(), "{set}: {me}");
    }
    assert_eq!(me["cap_amb"], "0000000000000000");
    assert_eq!(me["no_new_privs"], "1");
    assert_eq!(me["seccomp"], "2");
    for r in &lines[1..] {
        assert_eq!(r["ok"], false, "{r}");
    }
    for i in [1, 2, 3, 5, 7] {
        assert_eq!(lines[i]["errno"], EPERM, "{}", attacks[i]);
    }
    assert_eq!(lines[1]["detached"], Value::Null);
    assert_eq!(lines[4]["step"], "pidfd_getfd");
    assert_eq!(lines[4]["errno"], EPERM);
    assert!(lines[6]["errno"] == EACCES || lines[6]["errno"] == EPERM);

    // Ground truth: the gateway is untraced, nothing was mounted, and a connect from a new
    // agent is still redirected through the gateway.
    let status = std::fs::read_to_string(format!("/proc/{gw_pid}/status")).unwrap();
    assert!(status.contains("TracerPid:\t0"), "{status}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&mount_dir.display().to_string()));
    let out = sluice_exec(
        &join,
        &[
            probe(),
            "connect".into(),
            resource.clone(),
            "--send".into(),
            "still".into(),
        ],
    )
    .output()
    .unwrap();
    let answer = last_json(&out.stdout);
    assert_eq!(answer["reply"], "still", "{answer} {}", stderr(&out));
    let conn = gw.log.wait_for(WAIT, |v| is_event(v, "connection"));
    assert_eq!(conn["pid"], answer["pid"]);
    let _ = std::fs::remove_dir_all(mount_dir);
}

/// Root through `--allow-root`, and the unprivileged agent: neither can open sluice's files (a
/// credential, the policy, the target state) nor write `/proc` or `/sys` (the cgroup escape the
/// red team used: `echo $$ > .../cgroup.procs`), while the rest of the filesystem stays usable.
#[test]
fn exec_hides_sluices_files_and_kernel_interfaces_even_from_root() {
    require_root();
    let dir = temp_dir();
    let token = dir.join("reviewer.token");
    std::fs::write(&token, "reviewer-token-the-agent-must-not-read").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The policy itself is world-readable, as policies usually are.
    let mut policy = Policy::new(None, "deny");
    policy.extra = format!(
        "approvals:\n  listen: 127.0.0.1:0\nidentity:\n  static_tokens:\n    - {{ subject: r, groups: [dba], token: {{ file: {} }} }}\n",
        token.display()
    );
    let gw = Gateway::start(&policy);
    std::fs::set_permissions(&gw.config_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let state = gw
        .state_dir
        .join("targets")
        .join(format!("{}.json", gw.target));
    let root_cgroup = cgroup2_mount();
    let scratch = temp_dir();
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o777)).unwrap();
    let attacks = |n: usize| {
        [
            format!("try read {}", token.display()),
            format!("try read {}", gw.config_path.display()),
            format!("try read {}", state.display()),
            format!("try join-cgroup {}", root_cgroup.display()),
            "try write /proc/sys/kernel/hostname sluice-was-here".to_string(),
            // What must keep working: reading the system, writing a work directory.
            "try read /etc/os-release".to_string(),
            format!("try write {}/out-{n}.txt ok", scratch.display()),
        ]
    };
    let join = [
        os("--state-dir"),
        gw.state_dir.as_os_str(),
        os("--name"),
        os(&gw.target),
    ];
    let (_, _, user) = agent_user();
    for (n, who) in [vec![os("--allow-root")], vec![os("--user"), os(&user)]]
        .into_iter()
        .enumerate()
    {
        let args: Vec<&OsStr> = join.iter().copied().chain(who.iter().copied()).collect();
        let attacks = attacks(n);
        let out = sluice_exec(&args, &probe_script(&attacks))
            .output()
            .unwrap();
        let lines = json_lines(&out.stdout);
        assert_eq!(lines.len(), attacks.len(), "{who:?}: {}", stderr(&out));
        for (i, what) in ["token", "policy", "target state", "cgroup escape", "sysctl"]
            .iter()
            .enumerate()
        {
            assert_eq!(lines[i]["ok"], false, "{who:?} {what}: {}", lines[i]);
            assert_eq!(lines[i]["errno"], EACCES, "{who:?} {what}: {}", lines[i]);
        }
        // Ground truth: still in the target's cgroup, hostname unchanged, nothing leaked.
        assert!(
            lines[3]["cgroup"].as_str().unwrap().contains(&gw.target),
            "{}",
            lines[3]
        );
        assert_ne!(
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap()
                .trim(),
            "sluice-was-here"
        );
        let all = String::from_utf8_lossy(&out.stdout);
        assert!(!all.contains("reviewer-token-the-agent-must-not-read"));
        assert_eq!(lines[5]["ok"], true, "{who:?}: {}", lines[5]);
        assert_eq!(lines[6]["ok"], true, "{who:?}: {}", lines[6]);
    }
    // Control: root outside the sandbox reads the token.
    assert!(
        std::fs::read_to_string(&token)
            .unwrap()
            .contains("reviewer-token")
    );
}
