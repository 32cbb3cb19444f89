//! Secrets and state at rest, attacked the way a hostile agent on the same host would: by
//! reading what sluice leaves on disk. Ground truth is the file system (`stat`, the bytes of
//! the SQLite files) and, for the approved statement, PostgreSQL itself.

use std::{
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice_tests::{
    LineLog, PG_SCRAM, PgServer, Policy, TestCgroup, TestNet, bin_path, ensure_agent_user, inject,
    is_event, pg_resource, psql_in, require_root, ssh::ssh_keygen, stderr, temp_dir,
};

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "dana-reviewer-token-0123456789";
const CARD: &str = "4111111111111111";
const EMAIL: &str = "ada@example.com";

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .mode()
        & 0o7777
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A gateway started with `umask 000`: whatever sluice makes private, it makes so itself.
struct OpenUmaskGateway {
    child: Option<Child>,
    log: LineLog,
    config: PathBuf,
}

impl OpenUmaskGateway {
    fn start(config: &Path) -> OpenUmaskGateway {
        let mut child = Command::new("sh")
            .args([
                "-c",
                "umask 000 && exec \"$0\" --log-format json run --config \"$1\"",
            ])
            .arg(bin_path("sluice"))
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice");
        let log = LineLog::from_reader(child.stderr.take().unwrap(), "sluice");
        log.wait_for(WAIT, |v| is_event(v, "ready"));
        OpenUmaskGateway {
            child: Some(child),
            log,
            config: config.into(),
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for OpenUmaskGateway {
    fn drop(&mut self) {
        self.stop();
        let _ = Command::new(bin_path("sluice"))
            .args(["cleanup", "--config"])
            .arg(&self.config)
            .output();
    }
}

/// A policy with every kind of file sluice keeps: a PostgreSQL resource whose writes are held
/// (approval store and socket), an SSH resource (the gateway's host key), the audit log with
/// a checkpoint per record (its key and witness).
fn full_policy(dir: &Path, cg: &TestCgroup, pg_host: &str) -> PathBuf {
    let key = ssh_keygen(&dir.join("upstream_key"), "sluice-test");
    let host_key = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let host_key = host_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let mut policy = Policy::new(Some(cg), "deny");
    policy.raw_resources = format!(
        "  - name: orders-db\n    protocol: postgres\n    match:\n      - {{ address: \"{pg_host}\", port: 5432 }}\n    credentials: {}\n\
         \x20 - name: box\n    protocol: ssh\n    match:\n      - {{ address: 192.0.2.7, port: 22 }}\n    credentials: {{ mode: inject, user: deploy, key: {{ file: {} }} }}\n    ssh:\n      host_keys: [\"{host_key}\"]\n",
        inject(PG_SCRAM),
        key.display()
    );
    policy.extra = format!(
        "rules:\n  - {{ name: reads, statements: [select, show, set, transaction], action: allow }}\n\
         \x20 - {{ name: writes, statements: [insert, update, delete], action: hold, approval: {{ groups: [dba], timeout: 60s, preview: {{ explain: true, dry_run: true }} }} }}\n\
         approvals:\n  listen: 127.0.0.1:0\n\
         identity:\n  static_tokens:\n    - {{ subject: dana, groups: [dba], token: {{ value: {TOKEN} }} }}\n\
         audit:\n  checkpoint: {{ every: 1, interval: 1s }}\n"
    );
    policy.write(dir)
}

fn approvals(config: &Path, args: &[&str]) -> Output {
    Command::new(bin_path("sluice"))
        .args(["approvals", "-c"])
        .arg(config)
        .args(["--token", TOKEN])
        .args(args)
        .output()
        .expect("sluice approvals")
}

fn wait_request(log: &LineLog) -> String {
    let ev = log.wait_for(WAIT, |v| is_event(v, "approval_requested"));
    ev["id"].as_str().unwrap().to_string()
}

/// Every byte of a SQLite database's files (main, WAL, shared memory).
fn sqlite_bytes(db: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        all.extend(std::fs::read(&p).unwrap_or_default());
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// After a run with an umask of 000, everything sluice keeps is its owner's only: the state and
/// data directories 0700, databases (with their WAL and shared memory), keys, witness, leases
/// and the approval socket 0600.
#[test]
fn state_data_databases_keys_and_socket_are_private_even_with_umask_000() {
    require_root();
    let net = TestNet::new();
    let pg = PgServer::start(&net);
    let cg = TestCgroup::new();
    let dir = temp_dir();
    let config = full_policy(&dir, &cg, &pg.host);
    let gw = OpenUmaskGateway::start(&config);
    let (state, data) = (dir.join("state"), dir.join("data"));

    // A held statement and its approval write the approval store; every command, the audit log.
    let cgdir = cg.dir.clone();
    let conninfo = pg.conninfo(PG_SCRAM.0, "x");
    let agent = std::thread::spawn(move || {
        psql_in(
            &cgdir,
            &conninfo,
            &["UPDATE accounts SET balance = 7 WHERE id = 9"],
        )
    });
    let id = wait_request(&gw.log);
    let out = approvals(&config, &["approve", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(agent.join().unwrap().status.success());
    // A checkpoint per record: the witness is written.
    let deadline = Instant::now() + WAIT;
    while !data.join("audit.witness").exists() {
        assert!(Instant::now() < deadline, "no witness written");
        std::thread::sleep(Duration::from_millis(50));
    }

    let lease_files: Vec<PathBuf> = std::fs::read_dir(state.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(lease_files.len(), 2, "{lease_files:?}");
    let mut expected: Vec<(PathBuf, u32)> = vec![
        (state.clone(), 0o700),
        (state.join("targets"), 0o700),
        (state.join("approvals.db"), 0o600),
        (state.join("approvals.db-wal"), 0o600),
        (state.join("approvals.db-shm"), 0o600),
        (state.join("approvals.sock"), 0o600),
        (state.join("approvals.sock.lock"), 0o600),
        (data.clone(), 0o700),
        (data.join("audit.db"), 0o600),
        (data.join("audit.db-wal"), 0o600),
        (data.join("audit.db-shm"), 0o600),
        (data.join("audit.key"), 0o600),
        (data.join("audit.witness"), 0o600),
        (data.join("ssh_host_ed25519_key"), 0o600),
    ];
    expected.extend(lease_files.into_iter().map(|p| (p, 0o600)));
    for (path, want) in &expected {
        assert_eq!(
            mode(path),
            *want,
            "{} is {:04o}",
            path.display(),
            mode(path)
        );
    }
    assert!(
        std::fs::symlink_metadata(state.join("approvals.sock"))
            .unwrap()
            .file_type()
            .is_socket()
    );
    // Ground truth from the attacker's side: the unprivileged agent user can read none of it.
    ensure_agent_user();
    for path in [
        data.join("audit.db"),
        state.join("approvals.db"),
        data.join("audit.key"),
    ] {
        let out = sluice_tests::as_agent_user(Path::new("/bin/cat"))
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "the agent user read {}",
            path.display()
        );
    }
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A data directory left world-readable (by `mkdir`, systemd's `StateDirectory=` or an earlier
/// sluice) holding only sluice's files is tightened, files included; one that holds someone
/// else's files is shared, and the gateway refuses to start rather than chmod it.
#[test]
fn an_open_data_dir_is_tightened_when_it_is_sluices_and_refused_when_shared() {
    require_root();
    let cg = TestCgroup::new();
    let dir = temp_dir();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    // What an earlier version left: a key and a log readable by everyone.
    std::fs::write(data.join("audit.key"), [7u8; 32]).unwrap();
    std::fs::set_permissions(
        data.join("audit.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let config = Policy::new(Some(&cg), "deny").write(&dir);
    let mut gw = OpenUmaskGateway::start(&config);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("audit.key")), 0o600);
    assert_eq!(mode(&data.join("audit.db")), 0o600);
    assert!(
        !gw.log
            .matching(|v| is_event(v, "permissions_tightened"))
            .is_empty(),
        "the operator is told"
    );
    gw.stop();

    // Shared: another program's file sits in it.
    let shared = temp_dir();
    let data = shared.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("dpkg.status"), "x").unwrap();
    let config = Policy::new(Some(&cg), "deny").write(&shared);
    let out = Command::new(bin_path("sluice"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("permissions 0755"), "{err}");
    assert!(err.contains("dpkg.status"), "{err}");
    assert_eq!(mode(&data), 0o755, "a shared directory is not changed");
    assert!(
        !data.join("audit.db").exists(),
        "nothing was written into it"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&shared);
}

/// A credential or token file written with the usual umask is refused at policy load, with
/// its position, by `policy check` and by `run`; so is one owned by another user (the agent's),
/// and a reviewer's `--token-file`.
#[test]
fn secret_files_others_could_read_are_refused_with_their_position() {
    require_root();
    let (agent_uid, _) = ensure_agent_user();
    let dir = temp_dir();
    let password = dir.join("db.password");
    let token = dir.join("reviewer.token");
    write_mode(&password, "app-secret\n", 0o644);
    write_mode(&token, &format!("{TOKEN}\n"), 0o640);
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "state_dir: {d}/state\ndata_dir: {d}/data\n\
             resources:\n  - name: db\n    protocol: postgres\n    match: [{{ address: 10.0.0.5, port: 5432 }}]\n    credentials: {{ mode: inject, user: app, password: {{ file: {p} }} }}\n\
             rules:\n  - {{ name: w, statements: [update], action: hold, approval: {{ groups: [dba] }} }}\n\
             approvals: {{}}\nidentity:\n  static_tokens:\n    - {{ subject: dana, groups: [dba], token: {{ file: {t} }} }}\n",
            d = dir.display(),
            p = password.display(),
            t = token.display()
        ),
    )
    .unwrap();
    let too_open = |path: &Path, m: &str| {
        format!(
            "permissions {m} for '{p}' are too open; it must be readable by its owner only: chmod 600 {p}",
            p = path.display()
        )
    };
    let check = || {
        Command::new(bin_path("sluice"))
            .args(["policy", "check"])
            .arg(&policy)
            .output()
            .unwrap()
    };
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:7:", policy.display())),
        "the password's position: {err}"
    );
    assert!(err.contains(&too_open(&password, "0644")), "{err}");
    assert!(
        err.contains(&format!("{}:13:", policy.display())),
        "the token's position: {err}"
    );
    assert!(err.contains(&too_open(&token, "0640")), "{err}");
    let run = Command::new(bin_path("sluice"))
        .args(["run", "--config"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains(&too_open(&password, "0644")),
        "{}",
        stderr(&run)
    );
    assert!(
        !dir.join("state").exists(),
        "a refused policy starts nothing"
    );

    // Readable by its owner only, but the owner is the agent's account: it can read it anyway.
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&password, Some(agent_uid), None).unwrap();
    let err = stderr(&check());
    assert!(
        err.contains(&format!("is owned by uid {agent_uid}")),
        "{err}"
    );
    std::os::unix::fs::chown(&password, Some(0), None).unwrap();
    let out = check();
    assert!(
        out.status.success(),
        "0600 and root's: accepted: {}",
        stderr(&out)
    );

    // The reviewer CLI's --token-file is checked before anything is contacted.
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(bin_path("sluice"))
        .args([
            "approvals",
            "--socket",
            "/nonexistent/approvals.sock",
            "--token-file",
        ])
        .arg(&token)
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&too_open(&token, "0644")),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A held statement carrying a card number and an email: the approval store (every byte of the
/// SQLite files, WAL included) holds neither, but holds the SHA-256 of the exact bytes; the
/// reviewer sees masked text and a masked preview; approving over the gateway's socket runs
/// exactly the held statement, once.
#[test]
fn the_approval_store_keeps_masked_text_and_the_hash_and_approval_runs_the_exact_bytes_once() {
    require_root();
    let net = TestNet::new();
    let pg = PgServer::start(&net);
    let cg = TestCgroup::new();
    let dir = temp_dir();
    let mut policy = Policy::new(Some(&cg), "deny");
    policy.raw_resources = pg_resource("orders-db", &pg, &inject(PG_SCRAM));
    policy.extra = format!(
        "rules:\n  - {{ name: reads, statements: [select, show, set, transaction], action: allow }}\n\
         \x20 - {{ name: writes, statements: [update], action: hold, approval: {{ groups: [dba], timeout: 60s, preview: {{ explain: true, dry_run: true }} }} }}\n\
         approvals:\n  listen: 127.0.0.1:0\n\
         identity:\n  static_tokens:\n    - {{ subject: dana, groups: [dba], token: {{ value: {TOKEN} }} }}\n"
    );
    let config = policy.write(&dir);
    let gw = OpenUmaskGateway::start(&config);
    let sql =
        format!("UPDATE customers SET notes = notes || ' card {CARD}' WHERE email = '{EMAIL}'");
    let cgdir = cg.dir.clone();
    let conninfo = pg.conninfo(PG_SCRAM.0, "x");
    let agent_sql = sql.clone();
    let agent = std::thread::spawn(move || psql_in(&cgdir, &conninfo, &[&agent_sql]));
    let id = wait_request(&gw.log);

    let out = approvals(&config, &["show", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shown = view.to_string();
    for raw in [CARD, EMAIL] {
        assert!(!shown.contains(raw), "the reviewer sees {raw}: {shown}");
    }
    let command = view["command"].as_str().unwrap();
    assert!(
        command.contains("[CARD]") && command.contains("[EMAIL]"),
        "{command}"
    );
    // The preview ran on the real bytes (one row) and shows nothing raw either.
    assert_eq!(view["preview"]["rows_affected"], 1, "{view}");
    // The hash binds the exact bytes psql sent: its Query message.
    let mut query = vec![b'Q'];
    query.extend(((sql.len() + 5) as u32).to_be_bytes());
    query.extend(sql.as_bytes());
    query.push(0);
    let sha = format!("{:x}", Sha256::digest(&query));
    assert_eq!(view["sha256"], sha.as_str());

    let store = dir.join("state/approvals.db");
    let bytes = sqlite_bytes(&store);
    for raw in [CARD, EMAIL, "card 4111"] {
        assert!(
            !contains(&bytes, raw),
            "{raw} is in the approval store's files"
        );
    }
    assert!(
        contains(&bytes, &sha),
        "the store keeps the hash of the exact bytes"
    );

    let out = approvals(&config, &["approve", &id, "--reason", "ticket CS-42"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = agent.join().unwrap();
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "UPDATE 1");
    assert_eq!(
        pg.admin_sql("SELECT notes FROM customers WHERE id = 1"),
        format!("prefers email card {CARD}"),
        "exactly the held statement ran, once"
    );
    let bytes = sqlite_bytes(&store);
    for raw in [CARD, EMAIL] {
        assert!(
            !contains(&bytes, raw),
            "{raw} is in the store after the decision"
        );
    }
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}
