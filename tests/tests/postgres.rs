//! PostgreSQL through sluice, against a real PostgreSQL 15 in the test's own network namespace,
//! with real clients (psql, pgbench, tokio-postgres) inside an intercepted cgroup.
//!
//! One file past ~700 lines on purpose: one fixture for the whole protocol (authentication,
//! TLS, cancel, pipelines, limits); a second file would be a second test binary to build.

use std::time::Duration;

use serde_json::Value;
use sluice_tests::{
    DEFAULT_ALLOW, Gateway, PG_MD5, PG_PLAIN, PG_SCRAM, PgServer, Policy, TestCgroup, TestNet,
    client_in, inject, is_event, pg_resource, probe, psql_in, require_root,
};

const WAIT: Duration = Duration::from_secs(10);

struct Setup {
    _net: TestNet,
    pg: PgServer,
    cg: TestCgroup,
    gw: Gateway,
}

fn setup(credentials: &str, extra: &str) -> Setup {
    require_root();
    let net = TestNet::new();
    let pg = PgServer::start(&net);
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny");
    policy.raw_resources = pg_resource("orders-db", &pg, credentials);
    policy.extra = if extra.starts_with("guardrails:") || extra.contains("\nguardrails:") {
        extra.to_string()
    } else {
        format!("{DEFAULT_ALLOW}{extra}")
    };
    let gw = Gateway::start(&policy);
    Setup {
        _net: net,
        pg,
        cg,
        gw,
    }
}

impl Setup {
    /// psql inside the cgroup, as the agent would run it, with a WRONG password: sluice's own
    /// credential must be what logs in.
    fn psql(&self, sql: &[&str]) -> sluice_tests::ClientRun {
        psql_in(
            &self.cg.dir,
            &self.pg.conninfo(PG_SCRAM.0, "not-the-password"),
            sql,
        )
    }

    fn pg(&self, mode: &str, sql: &[&str]) -> Value {
        let conninfo = self.pg.conninfo(PG_SCRAM.0, "wrong");
        let mut args = vec!["pg", conninfo.as_str(), mode];
        args.extend_from_slice(sql);
        probe(Some(&self.cg.dir), &args)
    }
}

#[test]
fn psql_works_through_sluice_with_the_gateway_credential() {
    let s = setup(&inject(PG_SCRAM), "");
    let out = s.psql(&[
        "select current_user, count(*) from customers",
        "show standard_conforming_strings",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        "app|3\non",
        "sluice pins standard string syntax upstream"
    );
    let conn = s.gw.log.wait_for(WAIT, |v| is_event(v, "connection"));
    assert_eq!(conn["protocol"], "postgres");
    assert_eq!(conn["comm"], "psql");
    s.gw.log.wait_for(WAIT, |v| {
        is_event(v, "session_start") && v["credentials"] == "inject"
    });
    // No secret in any log line.
    let all =
        s.gw.log
            .snapshot()
            .iter()
            .map(|v| v.to_string())
            .collect::<String>();
    assert!(
        !all.contains(PG_SCRAM.1),
        "the upstream password leaked into the log"
    );
}

#[test]
fn md5_and_cleartext_upstream_logins_work() {
    require_root();
    let net = TestNet::new();
    let pg = PgServer::start(&net);
    for role in [PG_MD5, PG_PLAIN] {
        let cg = TestCgroup::new();
        let mut policy = Policy::new(Some(&cg), "deny");
        policy.raw_resources = pg_resource("db", &pg, &inject(role));
        policy.extra = DEFAULT_ALLOW.into();
        let _gw = Gateway::start(&policy);
        let conninfo = pg.conninfo(role.0, "wrong");
        let out = psql_in(&cg.dir, &conninfo, &["select current_user"]);
        assert!(out.status.success(), "{}: {}", role.0, out.stderr);
        assert_eq!(out.stdout.trim(), role.0);
    }
}

#[test]
fn a_wrong_gateway_credential_is_reported_without_the_secret() {
    let s = setup(&inject((PG_SCRAM.0, "stale-rotated-password")), "");
    let out = s.psql(&["select 1"]);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("refused the gateway's login for resource `orders-db`"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("stale-rotated-password"));
    let r = s.pg("simple", &["select 1"]);
    assert_eq!(
        r["code"], "28P01",
        "invalid_password, as the database said: {r}"
    );
}

#[test]
fn passthrough_relays_the_agents_own_authentication() {
    let s = setup("{ mode: passthrough }", "");
    let good = s.pg.conninfo(PG_SCRAM.0, PG_SCRAM.1);
    let out = psql_in(&s.cg.dir, &good, &["select current_user"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "app");
    let bad = s.pg.conninfo(PG_SCRAM.0, "wrong");
    let out = psql_in(&s.cg.dir, &bad, &["select 1"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("password authentication failed"),
        "{}",
        out.stderr
    );
}

#[test]
fn drop_is_refused_in_simple_and_extended_protocol_and_the_session_stays_usable() {
    let s = setup(&inject(PG_SCRAM), "");
    // psql: one connection, the blocked statement then a normal one.
    let out = s.psql(&["DROP TABLE customers", "select count(*) from customers"]);
    assert!(out.stderr.contains("42501"), "{}", out.stderr);
    assert!(
        out.stderr.contains("blocked by rule \"drop\""),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stdout.trim(),
        "3",
        "the same session answered the next query"
    );

    // tokio-postgres: extended protocol (Parse/Bind/Execute/Sync), then simple.
    let r = s.pg(
        "extended",
        &[
            "drop table customers",
            "select count(*)::int from customers",
        ],
    );
    assert_eq!(r["results"][0]["code"], "42501", "{r}");
    assert_eq!(r["results"][1]["rows"][0][0], 3, "{r}");
    let r = s.pg("simple", &["select 1; DROP TABLE accounts", "select 2"]);
    assert_eq!(r["results"][0]["code"], "42501", "{r}");
    assert_eq!(r["results"][1]["rows"][0][0], "2", "{r}");

    // Ground truth: nothing was dropped, and no refused statement reached the server.
    assert_eq!(
        s.pg.admin_sql(
            "select count(*) from pg_tables where tablename in ('customers','accounts')"
        ),
        "2"
    );
    let blocked =
        s.gw.log
            .matching(|v| is_event(v, "command") && v["action"] == "deny");
    assert!(blocked.len() >= 3, "{blocked:?}");
    assert!(s.gw.log.matching(|v| is_event(v, "alert")).len() >= 3);
}

#[test]
fn pipelined_statements_keep_their_order_around_a_refusal() {
    let s = setup(&inject(PG_SCRAM), "");
    let r = s.pg(
        "pipeline",
        &[
            "select 1::int",
            "drop table customers",
            "select 3::int",
            "select count(*)::int from customers",
        ],
    );
    let res = &r["results"];
    assert_eq!(res[0]["rows"][0][0], 1, "{r}");
    assert_eq!(res[1]["code"], "42501", "{r}");
    assert_eq!(res[2]["rows"][0][0], 3, "{r}");
    assert_eq!(res[3]["rows"][0][0], 3, "{r}");
}

#[test]
fn transactions_stay_consistent_around_a_refusal() {
    let s = setup(&inject(PG_SCRAM), "");
    let out = s.psql(&[
        "begin; update accounts set balance = 0 where id = 1; drop table accounts; commit",
    ]);
    assert!(out.stderr.contains("42501"), "{}", out.stderr);
    // The multi-statement query is refused whole: nothing ran, not even the update.
    assert_eq!(
        s.pg.admin_sql("select balance from accounts where id = 1"),
        "100"
    );
    let out = s.psql(&[
        "begin",
        "update accounts set balance = 7 where id = 2",
        "drop table accounts",
        "commit",
    ]);
    assert!(out.stderr.contains("42501"), "{}", out.stderr);
    // psql -c runs each in the same session: the refusal did not poison the transaction upstream.
    assert_eq!(
        s.pg.admin_sql("select balance from accounts where id = 2"),
        "7"
    );
}

#[test]
fn pgbench_runs_through_sluice_in_every_query_mode() {
    let s = setup(&inject(PG_SCRAM), "");
    // pgbench -i drops and creates tables: initialise directly, as an operator would.
    let init =
        s.pg.admin_cmd("pgbench", &["-i", "-q", "-s", "1", "postgres"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    s.pg.admin_sql("grant all on all tables in schema public to app");
    let conninfo = s.pg.conninfo(PG_SCRAM.0, "wrong");
    for mode in ["simple", "extended", "prepared"] {
        let out = client_in(
            &s.cg.dir,
            &[],
            &[
                "pgbench", "-n", "-S", "-t", "50", "-c", "2", "-M", mode, &conninfo,
            ],
        );
        assert!(
            out.status.success(),
            "pgbench -M {mode}: {}{}",
            out.stdout,
            out.stderr
        );
        assert!(
            out.stdout
                .contains("number of transactions actually processed: 100/100"),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn cancel_requests_reach_the_right_backend() {
    let s = setup(
        &inject(PG_SCRAM),
        "rules:\n  - { name: naps, guardrails: [sleep], action: allow }\n",
    );
    let r = s.pg("cancel", &["select pg_sleep(20)"]);
    let res = &r["results"][0];
    assert_eq!(res["cancel_ok"], true, "{r}");
    assert_eq!(res["query"]["code"], "57014", "query_canceled: {r}");
    assert!(res["elapsed_ms"].as_u64().unwrap() < 10_000, "{r}");
    s.gw.log.wait_for(WAIT, |v| is_event(v, "cancel_forwarded"));
}

#[test]
fn startup_options_that_change_the_role_are_refused() {
    let s = setup(&inject(PG_SCRAM), "");
    let conninfo = format!(
        "{} options='-c role=postgres'",
        s.pg.conninfo(PG_SCRAM.0, "x")
    );
    let out = client_in(
        &s.cg.dir,
        &[],
        &["psql", "-X", "-d", &conninfo, "-c", "select 1"],
    );
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("startup parameter `options` is not allowed"),
        "{}",
        out.stderr
    );
}

#[test]
fn malformed_and_oversized_messages_end_only_that_connection() {
    let s = setup(&inject(PG_SCRAM), "");
    let startup = sluice_tests::pg_startup_packet("app", "postgres");
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "negative length",
            [startup.clone(), vec![b'Q', 0xff, 0xff, 0xff, 0xf0]].concat(),
        ),
        (
            "oversized",
            [startup.clone(), vec![b'Q', 0x7f, 0, 0, 0]].concat(),
        ),
        (
            "query without terminator",
            [
                startup.clone(),
                vec![b'Q', 0, 0, 0, 8, b's', b'e', b'l', b'e'],
            ]
            .concat(),
        ),
        ("garbage startup", vec![0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef]),
        ("huge startup length", vec![0x7f, 0xff, 0xff, 0xff]),
    ];
    for (name, bytes) in cases {
        let r = probe(Some(&s.cg.dir), &["raw", &s.pg.addr, &hex(&bytes)]);
        let text = r["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("08P01") || text.contains("unsupported frontend protocol"),
            "{name}: expected an ErrorResponse, got {r}"
        );
    }
    // The gateway keeps serving.
    let out = s.psql(&["select 42"]);
    assert_eq!(out.stdout.trim(), "42", "{}", out.stderr);
    assert!(
        !s.gw
            .log
            .matching(|v| is_event(v, "protocol_error"))
            .is_empty()
    );
}

#[test]
fn policy_changes_apply_on_file_change_and_sighup_and_bad_files_are_rejected() {
    let s = setup(&inject(PG_SCRAM), "");
    assert_eq!(s.psql(&["select 1"]).stdout.trim(), "1");
    let original = std::fs::read_to_string(&s.gw.config_path).unwrap();

    let no_reads =
        format!("{original}rules:\n  - {{ name: no-reads, statements: [select], action: deny }}\n");
    std::fs::write(&s.gw.config_path, &no_reads).unwrap();
    s.gw.log.wait_for(WAIT, |v| is_event(v, "policy_reloaded"));
    let out = s.psql(&["select 1"]);
    assert!(
        out.stderr.contains("blocked by rule \"no-reads\""),
        "{}",
        out.stderr
    );

    // A broken file is refused with its errors; the policy in force stays.
    std::fs::write(
        &s.gw.config_path,
        format!("{no_reads}  - {{ name: broken, statements: [selekt], action: deny }}\n"),
    )
    .unwrap();
    let rejected = s.gw.log.wait_for(WAIT, |v| is_event(v, "policy_rejected"));
    assert!(
        rejected["errors"]
            .as_str()
            .unwrap()
            .contains("unknown statement kind `selekt`"),
        "{rejected}"
    );
    assert!(s.psql(&["select 1"]).stderr.contains("no-reads"));

    // SIGHUP reloads too.
    std::fs::write(&s.gw.config_path, &original).unwrap();
    // SAFETY: signalling the gateway process this test started.
    unsafe { libc::kill(s.gw.pid() as i32, libc::SIGHUP) };
    s.gw.log.wait_for(WAIT, |v| {
        is_event(v, "policy_reloaded") && v["trigger"] == "SIGHUP"
    });
    assert_eq!(s.psql(&["select 1"]).stdout.trim(), "1");
}

fn tls_setup(tls: &str) -> (Setup, sluice_tests::TestCerts) {
    require_root();
    let net = TestNet::new();
    let certs = sluice_tests::TestCerts::new(&net.peer_v4);
    let (cert, key) = certs.for_postgres();
    let pg = PgServer::start_with(
        &net,
        &format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        ),
    );
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny");
    policy.raw_resources = format!(
        "{}    tls: {}\n",
        pg_resource("orders-db", &pg, &inject(PG_SCRAM)),
        tls.replace("CA", certs.ca.to_str().unwrap())
            .replace("CERT", certs.cert.to_str().unwrap())
            .replace("KEY", certs.key.to_str().unwrap())
    );
    policy.extra = DEFAULT_ALLOW.into();
    let gw = Gateway::start(&policy);
    (
        Setup {
            _net: net,
            pg,
            cg,
            gw,
        },
        certs,
    )
}

#[test]
fn upstream_tls_is_verified_and_used() {
    let (s, _certs) = tls_setup("{ upstream: verify, ca: CA }");
    let out = s.psql(&["select count(*) from customers"]);
    assert_eq!(out.stdout.trim(), "3", "{}", out.stderr);
    // Asked of the backend serving this very session: the sluice-to-database leg is TLS.
    let out = s.psql(&["select ssl from pg_stat_ssl where pid = pg_backend_pid()"]);
    assert_eq!(out.stdout.trim(), "t", "{}", out.stderr);
}

#[test]
fn an_upstream_with_an_untrusted_certificate_is_refused() {
    require_root();
    let other = sluice_tests::TestCerts::new("169.254.0.1");
    let (s, _certs) = tls_setup(&format!(
        "{{ upstream: verify, ca: {} }}",
        other.ca.display()
    ));
    let out = s.psql(&["select 1"]);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("TLS verification of the database failed"),
        "{}",
        out.stderr
    );
}

#[test]
fn agent_tls_is_terminated_with_the_configured_certificate() {
    let (s, certs) = tls_setup("{ agent_cert: CERT, agent_key: KEY }");
    let conninfo = format!(
        "{} sslmode=verify-full sslrootcert={}",
        s.pg.conninfo(PG_SCRAM.0, "x"),
        certs.ca.display()
    );
    let out = psql_in(&s.cg.dir, &conninfo, &["select count(*) from customers"]);
    assert_eq!(out.stdout.trim(), "3", "{}", out.stderr);
    // Guardrails still see the statements inside the agent's TLS.
    let out = client_in(
        &s.cg.dir,
        &[],
        &["psql", "-X", "-d", &conninfo, "-c", "drop table customers"],
    );
    assert!(
        out.stderr.contains("blocked by rule \"drop\""),
        "{}",
        out.stderr
    );
}

#[test]
fn refusals_are_posted_to_the_alert_webhook() {
    let (receiver, addr) = sluice_tests::serve_local_http();
    let s = setup(
        &inject(PG_SCRAM),
        &format!("alerts:\n  webhook: http://{addr}/sluice\n"),
    );
    let out = s.psql(&["DROP TABLE customers"]);
    assert!(out.stderr.contains("42501"), "{}", out.stderr);
    let req = receiver.log.wait_for(WAIT, |v| v.get("body").is_some());
    assert_eq!(req["request"], "POST /sluice HTTP/1.1");
    let alert: Value = serde_json::from_str(req["body"].as_str().unwrap()).unwrap();
    assert_eq!(alert["type"], "sluice.alert");
    assert_eq!(alert["action"], "deny");
    assert_eq!(alert["rule"], "drop");
    assert_eq!(alert["resource"], "orders-db");
    assert_eq!(alert["command"], "DROP TABLE customers");
    assert!(alert["exe"].as_str().unwrap().ends_with("psql"), "{alert}");
}

#[test]
fn responses_are_masked_per_detector_and_decoys_survive() {
    let s = setup(&inject(PG_SCRAM), "");
    let out = s.psql(&[
        "select id, email, card, ssn, phone, iban, order_no, notes from customers order by id",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let rows: Vec<Vec<&str>> = out.stdout.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "1",
            "[EMAIL]",
            "[CARD]",
            "[SSN]",
            "[PHONE]",
            "[IBAN]",
            "ORD-2024-000123",
            "prefers email"
        ]
    );
    assert_eq!(
        rows[1],
        [
            "2",
            "[EMAIL]",
            "[CARD]",
            "[SSN]",
            "[PHONE]",
            "[IBAN]",
            "ORD-2024-000124",
            "uuid 3f2b8c1e-9a4d-4e6b-8f7a-2c1d0e9b8a76"
        ]
    );
    // Decoys: a Luhn-invalid card number, SSN area 000, a short number, a fake IBAN, a 16-digit
    // order number, a version string and a timestamp all pass unchanged.
    assert_eq!(
        rows[2],
        [
            "3",
            "[EMAIL]",
            "4111111111111112",
            "000-12-3456",
            "555-01",
            "XX00NOTANIBAN",
            "1234567890123456",
            "version 1.2.3.4 at 2024-05-01T12:00:00Z"
        ]
    );
    // Column names and types untouched: the agent still sees the real schema.
    let out = s.psql(&["select column_name from information_schema.columns where table_name = 'customers' and column_name = 'email'"]);
    assert_eq!(out.stdout.trim(), "email");
}

#[test]
fn binary_format_results_are_masked_too() {
    let s = setup(&inject(PG_SCRAM), "");
    // tokio-postgres asks for binary results: text columns must not slip through.
    let r = s.pg(
        "extended",
        &["select email, card, name from customers where id = 1"],
    );
    assert_eq!(
        r["results"][0]["rows"][0],
        serde_json::json!(["[EMAIL]", "[CARD]", "Ada Lovelace"]),
        "{r}"
    );
}

#[test]
fn copy_out_and_error_details_are_masked() {
    let s = setup(&inject(PG_SCRAM), "");
    let out = s.psql(&["copy (select id, email from customers order by id) to stdout"]);
    assert_eq!(
        out.stdout.lines().next(),
        Some("1\t[EMAIL]"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    s.pg.admin_sql("create unique index customers_email on customers (email)");
    let out = s.psql(&["insert into customers (id, email) values (99, 'ada@example.com')"]);
    assert!(out.stderr.contains("duplicate key"), "{}", out.stderr);
    assert!(out.stderr.contains("[EMAIL]"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("ada@example.com"),
        "the constraint error leaked the value: {}",
        out.stderr
    );
}

/// One statement per guardrail rule (with a twist of evasion each), in both protocols.
const REFUSED: &[(&str, &str)] = &[
    ("drop", "DrOp /* harmless */ TABLE \"customers\""),
    ("truncate", "truncate accounts"),
    (
        "delete-without-where",
        "with d as (delete from accounts returning *) select count(*) from d",
    ),
    (
        "update-without-where",
        "update accounts set balance = 0 where 1 = 1",
    ),
    ("alter", "alter table customers drop column email"),
    ("grant-revoke", "grant all on customers to public"),
    (
        "copy-program",
        "copy (select 1) to program 'touch /tmp/sluice-pwned'",
    ),
    (
        "create-function",
        "create function f() returns int language sql as $$ select 1 $$",
    ),
    (
        "dangerous-function",
        "select * from customers where name = (select pg_read_file('/etc/passwd'))",
    ),
    ("set-role", "select set_config('role', 'postgres', false)"),
    (
        "do-block",
        "do $$ begin execute 'drop table customers'; end $$",
    ),
    (
        "unparseable",
        "vacuum analyze customers; drop table customers",
    ),
];

#[test]
fn every_guardrail_rule_is_enforced_in_both_protocols() {
    let s = setup(&inject(PG_SCRAM), "");
    for (rule, sql) in REFUSED {
        let simple = s.pg("simple", &[sql]);
        assert_eq!(
            simple["results"][0]["code"], "42501",
            "{rule} (simple): {simple}"
        );
        let extended = s.pg("extended", &[sql]);
        assert_eq!(
            extended["results"][0]["code"], "42501",
            "{rule} (extended): {extended}"
        );
        let msg = simple["results"][0]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("blocked by rule"), "{rule}: {msg}");
    }
    // Nothing reached the database: schema, data and the filesystem are as they were.
    assert_eq!(
        s.pg.admin_sql("select count(*) from customers where email is not null"),
        "3"
    );
    assert_eq!(s.pg.admin_sql("select sum(balance) from accounts"), "1000");
    assert_eq!(
        s.pg.admin_sql("select has_table_privilege('public', 'customers', 'select')"),
        "f"
    );
    assert_eq!(
        s.pg.admin_sql("select count(*) from pg_proc where proname = 'f'"),
        "0"
    );
    assert!(!std::path::Path::new("/tmp/sluice-pwned").exists());
    // Allowed statements of the same shapes still work on the same gateway.
    let ok = s.pg(
        "simple",
        &[
            "update accounts set balance = balance where id = 1",
            "select count(*) from customers",
        ],
    );
    assert_eq!(ok["results"][0]["ok"], true, "{ok}");
    assert_eq!(ok["results"][1]["rows"][0][0], "3", "{ok}");
}

#[test]
fn secrets_and_dates_of_birth_are_masked_by_column_and_content() {
    let s = setup(&inject(PG_SCRAM), "");
    let out = s.psql(&["select date_of_birth, api_token, jwt, shipped from profiles"]);
    // A date is only a date of birth in a column named like one: `shipped` stays.
    assert_eq!(
        out.stdout.trim(),
        "[DOB]|[SECRET]|[SECRET]|2024-05-01",
        "{}",
        out.stderr
    );
}

#[test]
fn copy_in_notifications_multiple_results_and_large_rows_are_relayed() {
    let s = setup(&inject(PG_SCRAM), "");
    // COPY FROM STDIN: data from the agent reaches the table.
    let conninfo = s.pg.conninfo(PG_SCRAM.0, "x");
    let dir = sluice_tests::temp_dir();
    let data = dir.join("rows.csv");
    std::fs::write(&data, "11\t111\n12\t112\n").unwrap();
    let copy = format!("\\copy accounts from '{}'", data.display());
    let out = client_in(
        &s.cg.dir,
        &[],
        &["psql", "-X", "-d", &conninfo, "-c", &copy],
    );
    assert!(
        out.stdout.contains("COPY 2"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        s.pg.admin_sql("select balance from accounts where id = 12"),
        "112"
    );

    // LISTEN/NOTIFY in one session, and two result sets from one simple query.
    let out =
        s.psql(&["listen sluice_channel; notify sluice_channel, 'hello'; select 1; select 2"]);
    assert!(
        out.stdout
            .contains("Asynchronous notification \"sluice_channel\" with payload \"hello\""),
        "{}",
        out.stdout
    );
    let r = s.pg("simple", &["select 'a'::text; select 'b'::text"]);
    assert_eq!(
        r["results"][0]["rows"],
        serde_json::json!([["a"], ["b"]]),
        "{r}"
    );

    // A 4 MiB row crosses unchanged (and its masked twin is rewritten with the right length).
    let r = s.pg("simple", &["select length(repeat('x', 4194304)), length(repeat('x', 4194304) || ' ada@example.com')"]);
    assert_eq!(
        r["results"][0]["rows"][0],
        serde_json::json!(["4194304", "4194320"]),
        "{r}"
    );
    let r = s.pg(
        "extended",
        &["select repeat('y', 4194304) || ' ada@example.com' as big"],
    );
    let big = r["results"][0]["rows"][0][0].as_str().unwrap();
    assert_eq!(big.len(), 4_194_304 + " [EMAIL]".len());
    assert!(big.ends_with(" [EMAIL]"));
}

#[test]
fn fuzzed_message_streams_never_take_the_gateway_down() {
    let s = setup(&inject(PG_SCRAM), "");
    // A valid session, then deterministic mutations of it: flipped bytes, truncations, insertions.
    let mut valid = Vec::new();
    let startup = sluice_tests::pg_startup_packet("app", "postgres");
    valid.extend(&startup);
    for sql in [
        "select 1",
        "select * from customers",
        "drop table customers",
    ] {
        valid.push(b'Q');
        valid.extend(((sql.len() + 5) as i32).to_be_bytes());
        valid.extend(sql.as_bytes());
        valid.push(0);
    }
    valid.extend([b'X', 0, 0, 0, 4]);
    let mut seed: u64 = 0x5eed_5eed;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for _ in 0..60 {
        let mut m = valid.clone();
        match next() % 3 {
            0 => {
                for _ in 0..1 + next() % 4 {
                    let at = next() % m.len();
                    m[at] ^= 1 << (next() % 8);
                }
            }
            1 => m.truncate(next() % m.len()),
            _ => {
                let at = next() % m.len();
                let junk: Vec<u8> = (0..1 + next() % 16).map(|_| next() as u8).collect();
                m.splice(at..at, junk);
            }
        }
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        let r = probe(Some(&s.cg.dir), &["raw", &s.pg.addr, &hex]);
        // Whatever came back, no raw customer data did.
        let text = r["text"].as_str().unwrap_or_default();
        assert!(!text.contains("ada@example.com"), "unmasked data in {r}");
    }
    assert_eq!(s.pg.admin_sql("select count(*) from customers"), "3");
    assert_eq!(
        s.psql(&["select 42"]).stdout.trim(),
        "42",
        "the gateway still serves"
    );
}
