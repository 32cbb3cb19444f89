//! `sluice approvals` never sends a reviewer's token to an impostor. The impostor is what a
//! hostile agent would run: a process that squats the approval socket or the API port (after a
//! gateway crash, or where the CLI is pointed) and answers like the API. Ground truth is the
//! impostor's own record of every byte it received.

use std::{
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use serde_json::Value;
use sluice_tests::{
    Gateway, LineLog, PG_SCRAM, PgServer, Policy, TestCgroup, TestNet, as_agent_user, bin_path,
    ensure_agent_user, inject, is_event, pg_resource, psql_in, require_root, stderr, temp_dir,
};

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "dana-reviewer-token-0123456789";

/// A `sluice-probe impostor` process with the log of what it received.
struct Impostor {
    child: Child,
    log: LineLog,
}

impl Impostor {
    fn start(mut cmd: Command, args: &[&str]) -> Impostor {
        let mut child = cmd
            .arg("impostor")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn impostor");
        let log = LineLog::from_reader(child.stdout.take().unwrap(), "impostor");
        log.wait_for(WAIT, |v| v.get("listening").is_some());
        Impostor { child, log }
    }

    /// Everything received on every connection so far (after `connections` have ended).
    fn received(&self, connections: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let got: Vec<String> = self
                .log
                .matching(|v| v.get("received").is_some())
                .iter()
                .map(|v| v["received"].as_str().unwrap().to_string())
                .collect();
            if got.len() >= connections || std::time::Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Nothing it received carries a token or an Authorization header.
    fn assert_got_no_token(&self, connections: usize) {
        let got = self.received(connections);
        assert_eq!(got.len(), connections, "connections seen: {got:?}");
        for r in &got {
            assert!(
                !r.to_ascii_lowercase().contains("authorization") && !r.contains(TOKEN),
                "the impostor received a token: {r:?}"
            );
        }
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin_path("sluice"))
        .arg("approvals")
        .args(["--token", TOKEN])
        .args(args)
        .envs(env.iter().copied())
        .env_remove("SLUICE_URL")
        .output()
        .expect("sluice approvals")
}

fn probe() -> PathBuf {
    bin_path("sluice-probe")
}

/// Another user's process listening where the CLI is pointed (`--socket`, `$SLUICE_SOCKET`):
/// `SO_PEERCRED` names its uid, and the CLI hangs up before sending a byte.
#[test]
fn an_impostor_of_another_user_on_the_socket_gets_no_token() {
    require_root();
    let (uid, gid) = ensure_agent_user();
    let dir = temp_dir();
    // A directory the agent user may write, as `/tmp` or a shared run directory would be.
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    let path = dir.join("approvals.sock");
    let impostor = Impostor::start(
        as_agent_user(&probe()),
        &[&format!("unix:{}", path.display())],
    );
    let sock = path.to_str().unwrap();
    let by_flag = cli(&["--socket", sock, "list"], &[]);
    let by_env = cli(&["list"], &[("SLUICE_SOCKET", sock)]);
    for out in [&by_flag, &by_env] {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
        let err = stderr(out);
        assert!(err.contains(&format!("served by uid {uid}")), "{err}");
        assert!(err.contains("refusing to send the reviewer token"), "{err}");
    }
    impostor.assert_got_no_token(2);
    let _ = std::fs::remove_dir_all(&dir);
}

struct Fx {
    _net: TestNet,
    _pg: PgServer,
    cg: TestCgroup,
    gw: Gateway,
}

fn gateway() -> Fx {
    require_root();
    let net = TestNet::new();
    let pg = PgServer::start(&net);
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny");
    policy.raw_resources = pg_resource("orders-db", &pg, &inject(PG_SCRAM));
    policy.extra = format!(
        "rules:\n  - {{ name: reads, statements: [select, show, set, transaction], action: allow }}\n\
         \x20 - {{ name: writes, statements: [update], action: hold, approval: {{ groups: [dba], timeout: 60s }} }}\n\
         approvals:\n  listen: 127.0.0.1:0\n\
         identity:\n  static_tokens:\n    - {{ subject: dana, groups: [dba], token: {{ value: {TOKEN} }} }}\n"
    );
    let gw = Gateway::start(&policy);
    Fx {
        _net: net,
        _pg: pg,
        cg,
        gw,
    }
}

fn socket_of(gw: &Gateway) -> PathBuf {
    gw.state_dir.join("approvals.sock")
}

/// The CLI talks to the real gateway over its socket (found with `-c`, `--socket` or
/// `$SLUICE_SOCKET`), lists and approves; the held statement runs.
#[test]
fn the_cli_lists_and_approves_over_the_gateways_socket() {
    let fx = gateway();
    let config = fx.gw.config_path.to_str().unwrap().to_string();
    let sock = socket_of(&fx.gw);
    let cgdir = fx.cg.dir.clone();
    let conninfo = fx._pg.conninfo(PG_SCRAM.0, "x");
    let agent = std::thread::spawn(move || {
        psql_in(
            &cgdir,
            &conninfo,
            &["UPDATE accounts SET balance = 55 WHERE id = 4"],
        )
    });
    let id = fx
        .gw
        .log
        .wait_for(WAIT, |v| is_event(v, "approval_requested"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    for out in [
        cli(&["-c", &config, "list"], &[]),
        cli(&["--socket", sock.to_str().unwrap(), "list"], &[]),
        cli(&["list"], &[("SLUICE_SOCKET", sock.to_str().unwrap())]),
    ] {
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    }
    let out = cli(&["-c", &config, "whoami"], &[]);
    let who: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(who["subject"], "dana");
    let out = cli(&["-c", &config, "approve", &id], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(agent.join().unwrap().status.success());
    assert_eq!(
        fx._pg
            .admin_sql("SELECT balance FROM accounts WHERE id = 4"),
        "55"
    );
}

/// After a gateway crash, a root process inside the agents' cgroup squats the approval socket:
/// first without the lease (no live gateway holds it), then holding the lease itself with its
/// own pid and no targets (a root agent can write the state directory). The CLI refuses both:
/// the lease is not held; then the process runs in an intercepted cgroup, which the policy says
/// (`-c`) and, without a policy, the kernel says (sluice's connect programs are in effect
/// there). A gateway started again takes its socket back.
#[test]
fn a_root_impostor_in_the_agents_cgroup_squatting_the_socket_gets_no_token() {
    let mut fx = gateway();
    let config = fx.gw.config_path.to_str().unwrap().to_string();
    let sock = socket_of(&fx.gw);
    let lease = PathBuf::from(format!("{}.lock", sock.display()));
    fx.gw.crash();
    let in_cgroup = || {
        let mut cmd = Command::new(probe());
        cmd.arg("--cgroup").arg(&fx.cg.dir);
        cmd
    };
    let unix = format!("unix:{}", sock.display());

    let squatter = Impostor::start(in_cgroup(), &[&unix]);
    let out = cli(&["-c", &config, "list"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no running gateway holds its lease"),
        "{}",
        stderr(&out)
    );
    squatter.assert_got_no_token(1);

    // The gateway comes back: it replaces the squatter's socket file (the lease was free) and
    // the CLI reaches the gateway again; the squatter still got nothing.
    fx.gw.restart();
    let out = cli(&["-c", &config, "list"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    squatter.assert_got_no_token(1);
    drop(squatter);

    fx.gw.crash();
    let leaseholder = Impostor::start(in_cgroup(), &[&unix, "--lease", lease.to_str().unwrap()]);
    for args in [
        vec!["-c", config.as_str(), "list"],
        vec!["--socket", sock.to_str().unwrap(), "list"],
    ] {
        let out = cli(&args, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("inside the intercepted cgroup"), "{err}");
        assert!(err.contains("refusing to send the reviewer token"), "{err}");
    }
    leaseholder.assert_got_no_token(2);
}

/// After a crash, another user's process binds the API's TCP port. Pointed at it with
/// `--url`, the CLI finds the listener's owner in /proc/net/tcp and refuses; with `-c` it
/// never goes to the port at all.
#[test]
fn an_impostor_on_the_api_port_gets_no_token() {
    let mut fx = gateway();
    let config = fx.gw.config_path.to_str().unwrap().to_string();
    let api = fx.gw.log.wait_for(WAIT, |v| is_event(v, "approvals_api"))["listen"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("http://{api}");
    // The real gateway passes the same check.
    let out = cli(&["--url", &url, "list"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    fx.gw.crash();
    let (uid, _) = ensure_agent_user();
    let impostor = Impostor::start(as_agent_user(&probe()), &[&api]);
    let out = cli(&["--url", &url, "list"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("served by uid {uid}")),
        "{}",
        stderr(&out)
    );
    let out = cli(&["-c", &config, "list"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
    impostor.assert_got_no_token(1);
    drop(impostor);

    // Root inside the agents' cgroup cannot even take the port: the kernel refuses binds of
    // sluice's ports from an intercepted cgroup (whatever the uid), so the CLI finds nobody.
    let out = Command::new(probe())
        .arg("--cgroup")
        .arg(&fx.cg.dir)
        .args(["impostor", &api])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.contains("\"errno\":1"),
        "the bind was not refused: {answer}"
    );
    let out = cli(&["--url", &url, "list"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

/// A reviewer pointing the CLI at plain http on another host is warned that the token crosses
/// the network in clear.
#[test]
fn plain_http_to_another_host_is_warned_about() {
    let net = TestNet::new();
    let _server = net.serve(&format!("{}:7070", net.peer_v4), true);
    let out = cli(
        &["--url", &format!("http://{}:7070", net.peer_v4), "list"],
        &[],
    );
    let err = stderr(&out);
    assert!(
        err.contains("is plain http to another host") && err.contains("use https"),
        "{err}"
    );
}
