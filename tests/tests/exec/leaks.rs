//! What must not leak into the agent: descriptors, environment variables, files outside its
//! Landlock grants (and grants over sluice's own files refuse the policy).

use std::{
    ffi::OsStr,
    io::Read,
    net::TcpStream,
    os::{fd::AsRawFd, unix::process::CommandExt},
    process::Command,
    time::Duration,
};

use sluice_tests::{
    EPERM, Gateway, Policy, agent_bin, agent_user, bin_path, require_root, temp_dir, unique,
};

use crate::support::*;

/// A socket connected outside the cgroup (its hooks never see it) and a file, handed to
/// `sluice exec` as fds 3 and 4, do not reach the agent, in either mode.
#[test]
fn exec_does_not_pass_inherited_descriptors() {
    require_root();
    let (_, _, user) = agent_user();
    let echo = Echo::start();
    let echo_addr = echo.addr.clone();
    let gw = Gateway::start(&Policy::new(None, "deny"));
    let dir = temp_dir();
    let own = own_policy(&dir, &format!("    run_as: {user}\n"), "");
    let join: Vec<&OsStr> = vec![
        os("--state-dir"),
        gw.state_dir.as_os_str(),
        os("--name"),
        os(&gw.target),
        os("--user"),
        os(&user),
    ];
    let modes: [(&str, Vec<&OsStr>); 2] = [
        ("join", join),
        ("own gateway", vec![os("--config"), own.as_os_str()]),
    ];
    for (mode, args) in modes {
        let mut sock = TcpStream::connect(&echo_addr).unwrap();
        let file_path = dir.join(format!("inherited-{}", mode.len()));
        let file = std::fs::File::create(&file_path).unwrap();
        let (sock_fd, file_fd) = (sock.as_raw_fd(), file.as_raw_fd());
        let mut cmd = sluice_exec(
            &args,
            &probe_script(&[
                "self".into(),
                "try write-fd 3 leak-3".into(),
                "try write-fd 4 leak-4".into(),
            ]),
        );
        // SAFETY: dup2 between fork and exec; dup2 clears close-on-exec on the copies. Through
        // 100 and 101 first, in case either descriptor is already 3 or 4.
        unsafe {
            cmd.pre_exec(move || {
                for (from, to) in [(sock_fd, 100), (file_fd, 101), (100, 3), (101, 4)] {
                    if libc::dup2(from, to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                libc::close(100);
                libc::close(101);
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let lines = json_lines(&out.stdout);
        assert_eq!(lines.len(), 3, "{mode}: {}", stderr(&out));
        let fds = lines[0]["fds"].as_object().unwrap();
        for (n, target) in fds {
            let target = target.as_str().unwrap();
            assert!(
                !target.starts_with("socket:") && !target.contains("inherited-"),
                "{mode}: fd {n} -> {target}"
            );
        }
        for r in &lines[1..] {
            assert_eq!(r["errno"], EBADF, "{mode}: {r}");
        }
        // Ground truth: nothing came through the socket (the echo server would have answered)
        // and the file is empty.
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 64];
        match sock.read(&mut buf) {
            Ok(n) => panic!("{mode}: the socket carried {:?}", &buf[..n]),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{e}"
            ),
        }
        assert_eq!(std::fs::read(&file_path).unwrap(), b"", "{mode}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The variable a credential was read from never reaches the agent in own-gateway mode, even
/// though the caller (and so the gateway) had it; `--env` of it is refused; other variables
/// only with `--env`; and the agent cannot read the gateway's environment either, as root too.
#[test]
fn exec_gives_the_agent_a_clean_environment() {
    require_root();
    let (_, _, user) = agent_user();
    let dir = temp_dir();
    let var = unique("SLUICE_IT_DB_PASSWORD_").replace('-', "_");
    let value = unique("hunter2-");
    let config = own_policy(
        &dir,
        &format!("    run_as: {user}\n"),
        &format!(
            "resources:\n  - name: db\n    protocol: postgres\n    match: [{{ address: 10.0.0.5, port: 5432 }}]\n    credentials: {{ mode: inject, user: app, password: {{ env: {var} }} }}\n"
        ),
    );
    let run = |args: &[&OsStr], command: &[String]| {
        sluice_exec(args, command)
            .env(&var, &value)
            .env("CALLER_SECRET", "caller-secret")
            .env("KEEP_ME", "kept")
            .output()
            .unwrap()
    };
    let out = run(
        &[
            os("--config"),
            config.as_os_str(),
            os("--env"),
            os("KEEP_ME"),
            os("--env"),
            os("ADDED=added"),
        ],
        &probe_script(&["self".into(), "try read /proc/$PPID/environ".into()]),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2, "{text} {}", stderr(&out));
    let env = lines[0]["env"].as_object().unwrap();
    assert!(!env.contains_key(&var), "{env:?}");
    assert!(!env.contains_key("CALLER_SECRET"), "{env:?}");
    assert_eq!(env["KEEP_ME"], "kept");
    assert_eq!(env["ADDED"], "added");
    assert_eq!(env["USER"], user.as_str());
    assert!(env.contains_key("PATH"));
    assert_eq!(
        lines[1]["ok"], false,
        "the gateway's environment: {}",
        lines[1]
    );
    assert!(
        !text.contains(&value),
        "the credential reached the agent: {text}"
    );
    assert!(!text.contains("caller-secret"));

    // Root (--user root --allow-root): the gateway is not dumpable, and root lost
    // CAP_SYS_PTRACE, so /proc/<gateway>/environ stays closed.
    let out = run(
        &[
            os("--config"),
            config.as_os_str(),
            os("--user"),
            os("root"),
            os("--allow-root"),
        ],
        &probe_script(&[
            "try read /proc/$PPID/environ".into(),
            "try read /proc/$PPID/mem".into(),
        ]),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for r in json_lines(&out.stdout) {
        assert_eq!(r["ok"], false, "{r}");
        assert!(r["errno"] == EACCES || r["errno"] == EPERM, "{r}");
    }
    assert!(
        !text.contains(&value),
        "the credential reached a root agent: {text}"
    );

    // `--env` of the credential's variable, passed or set: refused before anything starts.
    for arg in [var.clone(), format!("{var}=other")] {
        let out = run(
            &[os("--config"), config.as_os_str(), os("--env"), os(&arg)],
            &[probe(), "self".into()],
        );
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("reads a credential from the variable"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
        assert!(!err.contains("\"ready\""), "{err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// With `landlock`, the agent reads and runs only under `read`, writes only under `write`; a
/// file outside is unreadable even though its mode lets everyone read it.
#[test]
fn exec_landlock_confines_the_agent_to_its_grants() {
    require_root();
    let (_, _, user) = agent_user();
    let dir = temp_dir();
    let (public, work, elsewhere) = (dir.join("public"), dir.join("work"), dir.join("elsewhere"));
    for d in [&public, &work, &elsewhere] {
        std::fs::create_dir_all(d).unwrap();
    }
    // Open to everyone: only Landlock stands between the agent and these.
    run_cmd(
        Command::new("chmod")
            .arg("777")
            .arg(&work)
            .arg(&elsewhere)
            .arg(&public),
    );
    std::fs::write(public.join("ok.txt"), "public text").unwrap();
    let secret = unique("landlocked-secret-");
    std::fs::write(dir.join("secret.txt"), &secret).unwrap();
    let bin_dir = agent_bin("sluice-probe").parent().unwrap().to_path_buf();
    let config = own_policy(
        &dir,
        &format!(
            "    run_as: {user}\n    landlock:\n      read: [/usr, /etc, /proc, {}, {}]\n      write: [{}, /dev/null]\n",
            bin_dir.display(),
            public.display(),
            work.display()
        ),
        "",
    );
    let d = dir.display();
    let out = sluice_exec(
        &[os("--config"), config.as_os_str()],
        &probe_script(&[
            format!("try read {d}/public/ok.txt"),
            format!("try write {d}/work/out.txt written"),
            format!("try read {d}/secret.txt"),
            format!("try read {d}/policy.yaml"),
            format!("try write {d}/elsewhere/x.txt nope"),
            format!("try write {d}/public/new.txt nope"),
        ]),
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 6, "{text} {}", stderr(&out));
    assert_eq!(lines[0]["text"], "public text", "{}", lines[0]);
    assert_eq!(lines[1]["ok"], true, "{}", lines[1]);
    for r in &lines[2..] {
        assert_eq!(r["errno"], EACCES, "{r}");
    }
    // Ground truth: what was written and what was not; the secret never left its file.
    assert_eq!(
        std::fs::read_to_string(work.join("out.txt")).unwrap(),
        "written"
    );
    assert!(!elsewhere.join("x.txt").exists());
    assert!(!public.join("new.txt").exists());
    assert!(!text.contains(&secret));
    let _ = std::fs::remove_dir_all(dir);
}

/// A Landlock grant that would expose sluice's own files refuses the policy, with positions,
/// in `policy check` and in `exec` (before anything runs).
#[test]
fn landlock_grants_over_sluice_files_refuse_the_policy() {
    let dir = temp_dir();
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::create_dir_all(dir.join("creds")).unwrap();
    std::fs::write(dir.join("creds/pw"), "pw\n").unwrap();
    let config = own_policy(
        &dir,
        &format!(
            "    run_as: nobody\n    landlock:\n      read: [/usr, {d}]\n      write: [{d}/state]\n",
            d = dir.display()
        ),
        &format!(
            "resources:\n  - name: db\n    protocol: postgres\n    match: [{{ address: 10.0.0.5, port: 5432 }}]\n    credentials: {{ mode: inject, user: app, password: {{ file: {} }} }}\n",
            dir.join("creds/pw").display()
        ),
    );
    let out = Command::new(bin_path("sluice"))
        .args(["policy", "check"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let at = |line: u32| format!("{}:{line}:", config.display());
    for (line, what) in [
        (9, "`state_dir`"),
        (9, "`data_dir`"),
        (9, "the policy file"),
        (9, "a credential file"),
        (10, "`state_dir`"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&at(line)) && l.contains(&format!("reach {what}"))),
            "line {line}, {what}: {err}"
        );
    }
    let out = sluice_exec(
        &[os("--config"), config.as_os_str()],
        &[probe(), "self".into()],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("would let the agent reach"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}
