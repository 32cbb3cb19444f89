//! The audit log, end to end: real psql and pgbench sessions through the gateway into the
//! SQLite store and into a PostgreSQL store (a second real server), then `sluice audit`
//! verify, replay and export, and tampering as an attacker with write access to the store.

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use sluice_tests::{
    DEFAULT_ALLOW, Gateway, PG_SCRAM, PgServer, Policy, TestCgroup, TestNet, bin_path, client_in,
    inject, pg_resource, require_root,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

struct Setup {
    _net: TestNet,
    pg: PgServer,
    /// The fleet store, for [`Backend::Postgres`].
    audit_pg: Option<(PgServer, TestNet)>,
    cg: TestCgroup,
    gw: Gateway,
    backend: Backend,
}

const AUDIT_ROLE: (&str, &str) = ("auditor", "audit-secret");

fn setup(backend: Backend, extra: &str) -> Setup {
    require_root();
    let net = TestNet::new();
    let pg = PgServer::start(&net);
    let audit_pg = (backend == Backend::Postgres).then(|| {
        let net = TestNet::new();
        let pg = PgServer::start(&net);
        pg.admin_sql(&format!(
            "CREATE ROLE {} LOGIN PASSWORD '{}'",
            AUDIT_ROLE.0, AUDIT_ROLE.1
        ));
        pg.admin_sql(&format!("CREATE DATABASE audit OWNER {}", AUDIT_ROLE.0));
        (pg, net)
    });
    let audit = match &audit_pg {
        None => String::new(),
        Some((apg, _)) => format!(
            "audit:\n  postgres:\n    connection: \"host={} port=5432 user={} dbname=audit connect_timeout=5\"\n    password: {{ value: {} }}\n",
            apg.host, AUDIT_ROLE.0, AUDIT_ROLE.1
        ),
    };
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny");
    policy.raw_resources = pg_resource("orders-db", &pg, &inject(PG_SCRAM));
    policy.extra = format!("{audit}{DEFAULT_ALLOW}{extra}");
    let gw = Gateway::start(&policy);
    Setup {
        _net: net,
        pg,
        audit_pg,
        cg,
        gw,
        backend,
    }
}

impl Setup {
    fn conninfo(&self) -> String {
        self.pg.conninfo(PG_SCRAM.0, "not-the-password")
    }

    /// psql running a script file, default (aligned) output, as an agent's tool would.
    fn psql_file(&self, script: &str) -> sluice_tests::ClientRun {
        let path = self.gw.data_dir.with_file_name("script.sql");
        std::fs::write(&path, script).unwrap();
        client_in(
            &self.cg.dir,
            &[],
            &[
                "psql",
                "-X",
                "-d",
                &self.conninfo(),
                "-f",
                path.to_str().unwrap(),
            ],
        )
    }

    fn audit(&self, args: &[&str]) -> Output {
        Command::new(bin_path("sluice"))
            .arg("audit")
            .arg("--config")
            .arg(&self.gw.config_path)
            .args(args)
            .output()
            .expect("sluice audit")
    }

    fn audit_ok(&self, args: &[&str]) -> String {
        let out = self.audit(args);
        assert!(
            out.status.success(),
            "sluice audit {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Every record, through `sluice audit export`.
    fn export(&self) -> Vec<Value> {
        self.audit_ok(&["export"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The single session the agent opened so far, by `sluice audit sessions`.
    fn sessions(&self) -> Vec<Value> {
        self.audit_ok(&["sessions", "--json", "--resource", "orders-db"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Runs SQL on the store as an attacker who can write to it: the append-only triggers are
    /// out of the way first.
    fn tamper(&self, sql: &str) {
        let disable = match self.backend {
            Backend::Sqlite => {
                "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;
                 DROP TRIGGER IF EXISTS audit_checkpoints_no_delete;"
            }
            Backend::Postgres => {
                "ALTER TABLE audit DISABLE TRIGGER ALL; ALTER TABLE audit_checkpoints DISABLE TRIGGER ALL;"
            }
        };
        if let Err(e) = self.try_store_sql(&format!("{disable} {sql}")) {
            panic!("{:?}: tampering failed: {e}", self.backend);
        }
    }

    /// SQL straight on the store, as its superuser (the PostgreSQL one) or file owner.
    fn try_store_sql(&self, sql: &str) -> Result<(), String> {
        match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(self.gw.data_dir.join("audit.db"))
                .unwrap()
                .execute_batch(sql)
                .map_err(|e| e.to_string()),
            Backend::Postgres => {
                let apg = &self.audit_pg.as_ref().unwrap().0;
                let out = apg.admin_cmd(
                    "psql",
                    &[
                        "-X",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-U",
                        "postgres",
                        "-d",
                        "audit",
                        "-c",
                        sql,
                    ],
                );
                if out.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).into_owned())
                }
            }
        }
    }

    fn verify(&self) -> (bool, String) {
        let out = self.audit(&["verify"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        match out.status.code() {
            Some(0) => (true, text),
            Some(1) => (false, text),
            other => panic!("sluice audit verify exited {other:?}: {text}"),
        }
    }
}

const SCRIPT: &str = "\
SELECT id, name, email, card FROM customers ORDER BY id;
INSERT INTO notes VALUES (1, 'hello', 1.5), (2, NULL, -20), (3, 'two
lines', 300);
SELECT * FROM notes ORDER BY id;
UPDATE accounts SET balance = balance + 1 WHERE id = 1;
DROP TABLE customers;
SELECT count(*) AS accounts, sum(balance) FROM accounts;
";

#[test]
fn a_psql_session_is_recorded_and_replays_as_psql_printed_it() {
    for backend in BACKENDS {
        let mut s = setup(backend, "");
        s.pg.admin_sql(
            "CREATE TABLE notes (id int, body text, score numeric); GRANT ALL ON notes TO app",
        );
        let run = s.psql_file(SCRIPT);
        // The DROP was refused; psql goes on with the script and exits 0.
        assert!(run.status.success(), "{backend:?}: {}", run.stderr);
        assert!(run.stderr.contains("blocked by rule"), "{}", run.stderr);
        assert!(
            !run.stdout.contains("ada@example.com"),
            "the agent saw masked data"
        );
        s.gw.stop();

        let sessions = s.sessions();
        assert_eq!(sessions.len(), 1, "{backend:?}: {sessions:?}");
        let session = sessions[0]["session"].as_str().unwrap().to_string();
        assert_eq!(sessions[0]["start"]["process"]["comm"], "psql");
        assert_eq!(sessions[0]["start"]["identity"]["user"], PG_SCRAM.0);
        assert_eq!(sessions[0]["end"]["commands"], 6);

        let replayed = s.audit_ok(&["replay", &session, "--format", "psql"]);
        assert_eq!(
            replayed, run.stdout,
            "{backend:?}: the replay differs from what psql printed"
        );
        let transcript = s.audit_ok(&["replay", &session]);
        assert!(
            transcript.contains("#5 deny by rule")
                && transcript.contains("DROP TABLE customers;")
                && transcript.contains("ERROR:  sluice: statement blocked"),
            "{transcript}"
        );

        // Raw sensitive values never reach the store; the masked forms do.
        let export = s.audit_ok(&["export"]);
        for raw in ["ada@example.com", "4111 1111 1111 1111", "123-45-6789"] {
            assert!(
                !export.contains(raw),
                "{backend:?}: `{raw}` in the audit log"
            );
        }
        assert!(export.contains("[EMAIL]"), "masked values are kept");
        let (ok, text) = s.verify();
        assert!(ok, "{backend:?}: {text}");
        assert!(text.contains("incl. the witness"), "{text}");
    }
}

#[test]
fn tampering_with_any_row_is_found_at_that_row() {
    for backend in BACKENDS {
        let mut s = setup(backend, "");
        let run = s.psql_file("SELECT 1;\nSELECT 2;\nSELECT 3;\nSELECT 4;\n");
        assert!(run.status.success(), "{}", run.stderr);
        s.gw.stop();
        let (ok, text) = s.verify();
        assert!(ok, "{backend:?}: {text}");
        let records = s.export();
        let last = records.last().unwrap()["seq"].as_u64().unwrap();
        assert!(last >= 8, "{backend:?}: {last} records");

        // The store itself refuses edits and deletes.
        for sql in [
            "UPDATE audit SET body = '{}' WHERE seq = 2",
            "DELETE FROM audit WHERE seq = 2",
            "DELETE FROM audit_checkpoints",
        ] {
            let err = s.try_store_sql(sql).unwrap_err();
            assert!(err.contains("append-only"), "{backend:?}: {sql}: {err}");
        }

        // One byte of one row.
        s.tamper("UPDATE audit SET body = body || ' ' WHERE seq = 3");
        let (ok, text) = s.verify();
        assert!(
            !ok && text.contains("record 3: contents do not match"),
            "{backend:?}: {text}"
        );
        s.tamper("UPDATE audit SET body = substr(body, 1, length(body) - 1) WHERE seq = 3");
        assert!(s.verify().0, "{backend:?}: restored");

        // One row deleted.
        s.tamper("CREATE TABLE saved AS SELECT * FROM audit WHERE seq = 4; DELETE FROM audit WHERE seq = 4");
        let (ok, text) = s.verify();
        assert!(
            !ok && text.contains("record 5: expected sequence number 4"),
            "{backend:?}: {text}"
        );
        s.tamper("INSERT INTO audit SELECT * FROM saved; DROP TABLE saved");
        assert!(s.verify().0, "{backend:?}: restored");

        // The tail cut off together with its checkpoints: the witness file still knows.
        s.tamper(&format!(
            "DELETE FROM audit WHERE seq > {keep}; DELETE FROM audit_checkpoints WHERE seq > {keep}",
            keep = last - 2
        ));
        let (ok, text) = s.verify();
        assert!(
            !ok && text.contains(&format!(
                "checkpoint at record {last}, but the log ends at record {}",
                last - 2
            )),
            "{backend:?}: {text}"
        );
    }
}

#[test]
fn every_statement_that_reached_the_database_was_recorded_before_a_kill_9() {
    for backend in BACKENDS {
        let mut s = setup(backend, "");
        s.pg.admin_sql(
            "CREATE TABLE kill_test (v int); GRANT ALL ON kill_test TO app;
             CREATE TABLE kill_prepared (v int); GRANT ALL ON kill_prepared TO app",
        );
        // Also prepared executions (Bind/Execute of a statement parsed once), next to it.
        let prepared_script = s.gw.data_dir.with_file_name("prepared.pgbench");
        std::fs::write(&prepared_script, "INSERT INTO kill_prepared VALUES (1);\n").unwrap();
        let mut prepared = Command::new(bin_path("sluice-probe"))
            .arg("--cgroup")
            .arg(&s.cg.dir)
            .args([
                "run", "--", "pgbench", "-n", "-c", "2", "-M", "prepared", "-T", "20", "-f",
            ])
            .arg(&prepared_script)
            .arg(s.conninfo())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let script = s.gw.data_dir.with_file_name("insert.pgbench");
        std::fs::write(
            &script,
            "\\set v random(1, 999999)\nINSERT INTO kill_test VALUES (:v);\n",
        )
        .unwrap();
        let conninfo = s.conninfo();
        let mut bench = Command::new(bin_path("sluice-probe"))
            .arg("--cgroup")
            .arg(&s.cg.dir)
            .args([
                "run", "--", "pgbench", "-n", "-c", "4", "-j", "2", "-T", "20", "-f",
            ])
            .arg(&script)
            .arg(&conninfo)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Heavy traffic for a while, then the gateway dies mid-stream.
        let started = Instant::now();
        while s
            .pg
            .admin_sql("SELECT count(*) FROM kill_test")
            .parse::<u64>()
            .unwrap()
            < 300
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{backend:?}: no traffic"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s.gw.crash();
        for child in [&mut bench, &mut prepared] {
            let _ = child.kill();
            let _ = child.wait();
        }

        let mut reached: Vec<u64> =
            s.pg.admin_sql("SELECT v FROM kill_test ORDER BY v")
                .lines()
                .map(|l| l.parse().unwrap())
                .collect();
        assert!(reached.len() >= 300, "{backend:?}");
        let mut recorded: Vec<u64> = s
            .export()
            .iter()
            .filter(|r| r["kind"] == "command")
            .filter_map(|r| {
                let text = r["body"]["text"].as_str()?;
                text.strip_prefix("INSERT INTO kill_test VALUES (")?
                    .split(')')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        recorded.sort_unstable();
        // Every inserted value has its own record (duplicates counted as often as inserted).
        let mut missing = Vec::new();
        let mut i = 0;
        for v in reached.drain(..) {
            while i < recorded.len() && recorded[i] < v {
                i += 1;
            }
            if i < recorded.len() && recorded[i] == v {
                i += 1;
            } else {
                missing.push(v);
            }
        }
        assert!(
            missing.is_empty(),
            "{backend:?}: reached the database without a record: {missing:?}"
        );
        let executed: u64 =
            s.pg.admin_sql("SELECT count(*) FROM kill_prepared")
                .parse()
                .unwrap();
        let recorded_executions = s
            .export()
            .iter()
            .filter(|r| {
                r["kind"] == "command"
                    && r["body"]["text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("INSERT INTO kill_prepared"))
            })
            .count() as u64;
        assert!(executed > 0, "{backend:?}: the prepared clients ran");
        assert!(
            executed <= recorded_executions,
            "{backend:?}: {executed} prepared executions reached the database, {recorded_executions} recorded"
        );
        let (ok, text) = s.verify();
        assert!(ok, "{backend:?}: after kill -9: {text}");
    }
}

#[test]
fn an_export_round_trips_and_follow_streams_new_records() {
    let mut s = setup(Backend::Sqlite, "");
    let run = s.psql_file("SELECT 'exported' AS word;\n");
    assert!(run.status.success(), "{}", run.stderr);

    let mut follow = Command::new(bin_path("sluice"))
        .arg("audit")
        .arg("--config")
        .arg(&s.gw.config_path)
        .args(["export", "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = sluice_tests::LineLog::from_reader(follow.stdout.take().unwrap(), "export");
    lines.wait_for(Duration::from_secs(10), |v| {
        v["kind"] == "command" && v["body"]["text"] == "SELECT 'exported' AS word;"
    });
    let run = s.psql_file("SELECT 'followed' AS word;\n");
    assert!(run.status.success(), "{}", run.stderr);
    lines.wait_for(Duration::from_secs(10), |v| {
        v["kind"] == "command" && v["body"]["text"] == "SELECT 'followed' AS word;"
    });
    let _ = follow.kill();
    let _ = follow.wait();
    s.gw.stop();

    let text = s.audit_ok(&["export"]);
    let path = s.gw.data_dir.with_file_name("export.jsonl");
    std::fs::write(&path, &text).unwrap();
    let checked = s.audit_ok(&["verify", "--jsonl", path.to_str().unwrap()]);
    let count = text.lines().count();
    assert!(
        checked.contains(&format!("OK: {count} records linked from record 1")),
        "{checked}"
    );
    // Each line is self-describing: type, node, chain fields, and the body as stored.
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["type"], "sluice.audit.v1");
        assert_eq!(v["hash"].as_str().unwrap().len(), 64);
        assert!(v["body"].is_object(), "{line}");
    }
    // An edited export is caught.
    std::fs::write(&path, text.replacen("exported", "exp0rted", 1)).unwrap();
    let out = s.audit(&["verify", "--jsonl", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("contents do not match"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_statement_that_cannot_be_recorded_is_refused_and_others_continue_after_recovery() {
    let s = setup(Backend::Postgres, "");
    let ok = s.psql_file("SELECT 'before' AS t;\n");
    assert!(ok.status.success(), "{}", ok.stderr);

    let audit_pg = &s.audit_pg.as_ref().unwrap().0;
    audit_pg.pause();
    let refused = s.psql_file("SELECT 'while the store is down' AS t;\n");
    assert!(
        refused.stderr.contains("the audit log cannot record it"),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert!(!refused.stdout.contains("while the store is down"));

    audit_pg.resume();
    let after = s.psql_file("SELECT 'after' AS t;\n");
    assert!(
        after.status.success() && after.stdout.contains("after"),
        "{}{}\ngateway: {:?}",
        after.stdout,
        after.stderr,
        s.gw.log.matching(|v| v["event"] == "audit_commit_failed")
    );
    let texts: Vec<String> = s
        .export()
        .iter()
        .filter(|r| r["kind"] == "command")
        .map(|r| r["body"]["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        texts.contains(&"SELECT 'before' AS t;".to_string()),
        "{texts:?}"
    );
    assert!(
        texts.contains(&"SELECT 'after' AS t;".to_string()),
        "{texts:?}"
    );
    assert!(!texts.iter().any(|t| t.contains("while the store is down")));
    let (ok, text) = s.verify();
    assert!(ok, "{text}");
}

#[test]
fn every_execution_of_a_prepared_statement_is_recorded() {
    let mut s = setup(Backend::Sqlite, "");
    let init =
        s.pg.admin_cmd("pgbench", &["-i", "-q", "-s", "1", "postgres"]);
    assert!(init.status.success());
    s.pg.admin_sql("GRANT ALL ON ALL TABLES IN SCHEMA public TO app");
    let run = client_in(
        &s.cg.dir,
        &[],
        &[
            "pgbench",
            "-n",
            "-S",
            "-M",
            "prepared",
            "-t",
            "5",
            "-c",
            "1",
            &s.conninfo(),
        ],
    );
    assert!(run.status.success(), "{}{}", run.stdout, run.stderr);
    // Results are committed with the next durable record or within a few ms; a stop commits all.
    s.gw.stop();
    let records = s.export();
    // pgbench's own catalog query aside: prepared once (covering its first execution), then
    // each further execution recorded on its own.
    let ours: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "command")
        .filter(|r| {
            r["body"]["text"]
                .as_str()
                .unwrap()
                .starts_with("SELECT abalance FROM pgbench_accounts")
        })
        .collect();
    let protocols: Vec<&str> = ours
        .iter()
        .map(|r| r["body"]["protocol"].as_str().unwrap())
        .collect();
    assert_eq!(
        protocols,
        ["extended", "execute", "execute", "execute", "execute"],
        "{ours:?}"
    );
    // Each execution's answer names its command.
    for c in &ours {
        let n = &c["body"]["n"];
        let answered = records.iter().any(|r| {
            r["kind"] == "result"
                && r["body"]["commands"].as_array().unwrap().contains(n)
                && r["body"]["sets"][0]["tag"] == "SELECT 1"
        });
        assert!(answered, "no result for command {n}");
    }
}
