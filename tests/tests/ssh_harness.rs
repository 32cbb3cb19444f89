//! The SSH harness against a real OpenSSH sshd, WITHOUT a gateway: every client runs in a plain
//! test cgroup (no policy attached) or directly, and talks to sshd in its namespace. What these
//! tests prove (exec status, interactive ptys, scp in both modes, sftp, passwords, host key
//! checking) is what the gateway's SSH tests then rely on.

use std::{path::Path, time::Duration};

use sluice_tests::{
    PtyClient, SSH_PASSWORD, SSH_USER, SshClient, SshServer, TestCgroup, TestNet, client_in,
    require_root,
    ssh::{ssh_fingerprint, ssh_keygen},
    temp_dir,
};

const WAIT: Duration = Duration::from_secs(15);

struct Setup {
    _net: TestNet,
    sshd: SshServer,
    cg: TestCgroup,
}

fn setup() -> Setup {
    require_root();
    let net = TestNet::new();
    let sshd = SshServer::start(&net);
    Setup {
        _net: net,
        sshd,
        cg: TestCgroup::new(),
    }
}

/// Bytes that are not all alike, so a truncated or reordered copy differs.
fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn assert_same_file(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert!(
        x == y,
        "{} ({} bytes) and {} ({} bytes) differ",
        a.display(),
        x.len(),
        b.display(),
        y.len()
    );
}

#[test]
fn exec_relays_output_and_exit_status() {
    let s = setup();
    let ssh = s.sshd.client();
    let run = client_in(
        &s.cg.dir,
        &[],
        &ssh.ssh(&[], Some("echo hi; id -un; exit 3")),
    );
    assert_eq!(
        run.status.code(),
        Some(3),
        "stderr: {}\nsshd log:\n{}",
        run.stderr,
        s.sshd.log()
    );
    assert_eq!(run.stdout, format!("hi\n{SSH_USER}\n"));
    // The login used the direct key: gateway tests check the same line for the gateway's key.
    let accepted = s.sshd.wait_log("Accepted publickey for", WAIT);
    assert!(
        accepted.contains(&ssh_fingerprint(&s.sshd.direct_key)),
        "{accepted}"
    );
}

#[test]
fn interactive_tty_session_in_a_cgroup() {
    let s = setup();
    let argv = s.sshd.client().ssh(&["-tt"], None);
    let mut pty = PtyClient::spawn_in(&s.cg.dir, &argv).with_log(&s.sshd.log_path);
    pty.expect("$ ", WAIT);
    // The client really runs in the test cgroup: that is where a gateway would intercept it.
    let procs = std::fs::read_to_string(s.cg.dir.join("cgroup.procs")).unwrap();
    assert!(
        procs.split_whitespace().any(|p| p == pty.pid().to_string()),
        "ssh (pid {}) is not in {}: {procs}",
        pty.pid(),
        s.cg.dir.display()
    );

    pty.send_line("echo $((6*7))");
    // The typed line echoes as `echo $((6*7))`: only the shell's answer contains 42.
    pty.expect("42", WAIT);
    pty.expect("$ ", WAIT);
    pty.send_line("tty; stty size");
    pty.expect("/dev/pts/", WAIT);
    pty.expect("40 120", WAIT);
    pty.expect("$ ", WAIT);
    // A resize reaches the remote pty as a window-change request.
    pty.resize(100, 30);
    pty.send_line("stty size");
    pty.expect("30 100", WAIT);
    pty.expect("$ ", WAIT);
    pty.send_line("exit");
    let status = pty.wait(WAIT);
    assert!(status.success(), "{status}\n{}", pty.output_so_far());
    s.sshd.wait_log("Starting session: shell on pts/", WAIT);
}

#[test]
fn direct_pty_relays_the_remote_exit_status() {
    let s = setup();
    let argv = s
        .sshd
        .client()
        .ssh(&["-tt"], Some("printf 'ready\\n'; read line; exit 7"));
    let mut pty = PtyClient::spawn(&argv).with_log(&s.sshd.log_path);
    pty.expect("ready", WAIT);
    pty.send_line("go");
    assert_eq!(pty.wait(WAIT).code(), Some(7), "{}", pty.output_so_far());
}

#[test]
fn scp_up_and_down_in_sftp_and_legacy_modes() {
    let s = setup();
    let ssh = s.sshd.client();
    let local = temp_dir();
    let up = local.join("up.bin");
    std::fs::write(&up, sample(300_000)).unwrap();
    for (mode, extra) in [("sftp", &[][..]), ("legacy", &["-O"][..])] {
        let remote = s.sshd.scratch.join(format!("{mode}.bin"));
        let run = client_in(
            &s.cg.dir,
            &[],
            &ssh.scp(extra, up.to_str().unwrap(), &ssh.remote(&remote)),
        );
        s.sshd.assert_ok(&run, &format!("scp upload ({mode})"));
        assert_same_file(&up, &remote);

        let down = local.join(format!("{mode}-down.bin"));
        let run = client_in(
            &s.cg.dir,
            &[],
            &ssh.scp(extra, &ssh.remote(&remote), down.to_str().unwrap()),
        );
        s.sshd.assert_ok(&run, &format!("scp download ({mode})"));
        assert_same_file(&up, &down);
    }
    // Two transfers each way: the default mode used the sftp subsystem, -O ran `scp` as a
    // command (what a gateway sees differs, so both matter).
    let log = s.sshd.log();
    assert_eq!(
        log.matches("Starting session: subsystem 'sftp'").count(),
        2,
        "{log}"
    );
    assert_eq!(log.matches("Starting session: command").count(), 2, "{log}");
    let _ = std::fs::remove_dir_all(local);
}

#[test]
fn sftp_batch_runs_every_command_and_stops_at_a_failure() {
    let s = setup();
    let ssh = s.sshd.client();
    let local = temp_dir();
    let up = local.join("data.bin");
    std::fs::write(&up, sample(50_000)).unwrap();
    let dir = s.sshd.scratch.join("sub");
    let back = local.join("back.bin");
    let batch = local.join("batch");
    std::fs::write(
        &batch,
        format!(
            "mkdir {d}\nput {up} {d}/data.bin\nls -l {d}\nget {d}/data.bin {back}\nrename {d}/data.bin {d}/renamed.bin\n",
            d = dir.display(),
            up = up.display(),
            back = back.display()
        ),
    )
    .unwrap();
    let run = client_in(&s.cg.dir, &[], &ssh.sftp_batch(&batch));
    s.sshd.assert_ok(&run, "sftp -b");
    assert!(run.stdout.contains("data.bin"), "{}", run.stdout);
    assert_same_file(&up, &back);
    assert_same_file(&up, &dir.join("renamed.bin"));

    // sftp -b aborts at the first failing command: the put after it never runs.
    std::fs::write(
        &batch,
        format!(
            "get {d}/missing.bin {l}/x\nput {up} {d}/after.bin\n",
            d = dir.display(),
            l = local.display(),
            up = up.display()
        ),
    )
    .unwrap();
    let run = client_in(&s.cg.dir, &[], &ssh.sftp_batch(&batch));
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(!dir.join("after.bin").exists());
    let _ = std::fs::remove_dir_all(local);
}

#[test]
fn password_login_through_sshpass() {
    let s = setup();
    let ssh = SshClient::new(SSH_USER, &s.sshd.host, &s.sshd.known_hosts).password(SSH_PASSWORD);
    let run = client_in(&s.cg.dir, &[], &ssh.ssh(&[], Some("id -un")));
    s.sshd.assert_ok(&run, "password login");
    assert_eq!(run.stdout.trim(), SSH_USER);
    s.sshd
        .wait_log(&format!("Accepted password for {SSH_USER}"), WAIT);

    let wrong = ssh.password("not-the-password");
    let run = client_in(&s.cg.dir, &[], &wrong.ssh(&[], Some("id -un")));
    assert!(!run.status.success(), "a wrong password logged in");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    s.sshd
        .wait_log(&format!("Failed password for {SSH_USER}"), WAIT);
}

#[test]
fn an_unknown_host_key_or_key_is_refused() {
    let s = setup();
    let local = temp_dir();
    // known_hosts naming another key for the host: strict checking refuses to connect.
    let other = ssh_keygen(&local.join("other_host_key"), "other");
    let line = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let known = local.join("known_hosts");
    std::fs::write(&known, format!("{} {line}", s.sshd.host)).unwrap();
    let ssh = SshClient::new(SSH_USER, &s.sshd.host, &known).identity(&s.sshd.direct_key);
    let run = client_in(&s.cg.dir, &[], &ssh.ssh(&[], Some("true")));
    assert_eq!(run.status.code(), Some(255));
    assert!(
        run.stderr.contains("Host key verification failed"),
        "{}",
        run.stderr
    );

    // A key sshd does not know, and no key at all: no way in without a password.
    for ssh in [
        s.sshd.client().identity(&other),
        s.sshd.client().no_identity(),
    ] {
        let run = client_in(&s.cg.dir, &[], &ssh.ssh(&[], Some("true")));
        assert_eq!(run.status.code(), Some(255), "{ssh:?}");
        assert!(run.stderr.contains("Permission denied"), "{}", run.stderr);
    }
    // After authorizing it, the same key gets in.
    s.sshd.authorize(&line);
    let run = client_in(
        &s.cg.dir,
        &[],
        &s.sshd.client().identity(&other).ssh(&[], Some("true")),
    );
    s.sshd.assert_ok(&run, "newly authorized key");
    let _ = std::fs::remove_dir_all(local);
}
