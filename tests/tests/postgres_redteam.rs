//! The red team's attacks on the PostgreSQL guardrails (issue 16), kept as acceptance tests: a
//! hostile agent in an intercepted cgroup against a real PostgreSQL 15 through the real gateway.
//! Every verdict is checked against the server itself (the table is still there, the rows are
//! unchanged, `pg_prepared_statements`, `pg_stat_*`), never only against sluice's own words.
//!
//! Two policies: the shipped example's rules (`examples/policy.yaml`, reads allowed, writes and
//! DDL held) and a "writes allowed" one that relies on the guardrails alone.
//!
//! One file past ~700 lines on purpose: it is the red team's list, one attack a test against
//! one fixture, read and extended as a list (a file is also a test binary to build).

use std::time::Duration;

use serde_json::{Value, json};
use sluice_tests::{
    Gateway, PG_SCRAM, PgServer, Policy, TestCgroup, TestNet, bin_path, inject, is_event,
    pg_resource, require_root,
};

const WAIT: Duration = Duration::from_secs(15);

/// The `rules:` and `guardrails:` sections of the shipped example policy, verbatim.
fn example_rules() -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/policy.yaml"
    ))
    .unwrap();
    let mut out = String::new();
    let mut keep = false;
    // The example's rules for its other resources (the SSH host `web`) are left out: the
    // gateway here serves the database alone.
    let mut item = String::new();
    let flush = |item: &mut String, out: &mut String| {
        if !item.contains("resources: [web]") {
            out.push_str(item);
        }
        item.clear();
    };
    for line in text.lines() {
        if let Some(first) = line.chars().next()
            && first.is_ascii_alphabetic()
        {
            flush(&mut item, &mut out);
            keep = line.starts_with("rules:") || line.starts_with("guardrails:");
        }
        if keep {
            if line.starts_with("  - ") {
                flush(&mut item, &mut out);
            }
            item.push_str(line);
            item.push('\n');
        }
    }
    flush(&mut item, &mut out);
    assert!(
        out.contains("rules:") && out.contains("guardrails:"),
        "{out}"
    );
    out
}

/// Reads and writes allowed: what stops damage are the guardrails alone.
const WRITES_ALLOWED: &str = "rules:
  - name: reads-and-writes
    statements: [select, show, explain, insert, update, delete, merge, copy, transaction, set]
    action: allow
";

struct Red {
    _net: TestNet,
    pg: PgServer,
    cg: TestCgroup,
    gw: Gateway,
}

fn red(rules: &str) -> Red {
    red_with(rules, "")
}

/// A gateway for `orders-db` with `rules` (and `resource_extra` appended to the resource).
fn red_with(rules: &str, resource_extra: &str) -> Red {
    require_root();
    let net = TestNet::new();
    let pg = PgServer::start(&net);
    // The agent's role owns the tables, so the server itself would let a DROP through: only
    // sluice stands between the attack and the data.
    pg.admin_sql(
        "ALTER TABLE customers OWNER TO app; ALTER TABLE accounts OWNER TO app; \
         ALTER TABLE profiles OWNER TO app",
    );
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny");
    policy.raw_resources = format!(
        "{}{resource_extra}",
        pg_resource("orders-db", &pg, &inject(PG_SCRAM))
    );
    policy.extra = rules.to_string();
    let gw = Gateway::start(&policy);
    Red {
        _net: net,
        pg,
        cg,
        gw,
    }
}

impl Red {
    /// The raw wire client in the cgroup (see `sluice-pgwire`), with extra startup parameters.
    fn wire_with(&self, params: &[&str], script: Value) -> Value {
        let mut cmd = std::process::Command::new(bin_path("sluice-pgwire"));
        cmd.arg("--cgroup")
            .arg(&self.cg.dir)
            .arg(format!("{}:5432", self.pg.host))
            .args([PG_SCRAM.0, "postgres"]);
        for p in params {
            cmd.args(["--param", p]);
        }
        let text = script.to_string();
        let file = (text.len() > 64 * 1024).then(|| {
            let path = std::env::temp_dir().join(sluice_tests::unique("sluice-pgwire-script-"));
            std::fs::write(&path, &text).unwrap();
            path
        });
        let out = match &file {
            Some(path) => cmd.arg(format!("@{}", path.display())),
            None => cmd.arg(&text),
        }
        .output()
        .expect("sluice-pgwire");
        if let Some(path) = file {
            let _ = std::fs::remove_file(path);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "sluice-pgwire printed no JSON ({e}): {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    fn wire(&self, script: Value) -> Value {
        self.wire_with(&[], script)
    }

    /// Ground truth: rows in `table`, counted by the superuser on the server's own socket.
    fn rows(&self, table: &str) -> i64 {
        if self
            .pg
            .admin_sql(&format!("SELECT to_regclass('{table}') IS NULL"))
            == "t"
        {
            return -1;
        }
        self.pg
            .admin_sql(&format!("SELECT count(*) FROM {table}"))
            .parse()
            .unwrap()
    }

    /// Ground truth: the 3 seeded customers are all there, unchanged.
    fn assert_customers_intact(&self, what: &str) {
        assert_eq!(
            self.rows("customers"),
            3,
            "{what}: customers lost rows or was dropped"
        );
        assert_eq!(
            self.pg
                .admin_sql("SELECT string_agg(name || email, ',' ORDER BY id) FROM customers"),
            "Ada Lovelaceada@example.com,Alan Turingalan.turing@bletchley.org,Grace Hoppergrace@navy.mil",
            "{what}: customers changed"
        );
    }
}

/// The messages of tag `t` in a wire answer.
fn of(answer: &Value, t: &str) -> Vec<Value> {
    answer["messages"]
        .as_array()
        .map(|m| m.iter().filter(|x| x["t"] == t).cloned().collect())
        .unwrap_or_default()
}

fn errors(answer: &Value) -> Vec<String> {
    of(answer, "E")
        .iter()
        .map(|e| format!("{} {}", e["code"], e["message"]))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. The lexing state is pinned for the whole session.
// ---------------------------------------------------------------------------------------------

/// The string that is one literal with standard_conforming_strings on, and a DROP with it off.
const SCS_PAYLOAD: &str = r"SELECT '\' , ' ; DROP TABLE customers CASCADE ; -- '";

#[test]
fn lexing_settings_cannot_be_changed_by_any_spelling() {
    let attempts = [
        "SET standard_conforming_strings = off",
        "set STANDARD_CONFORMING_STRINGS to 'off'",
        "SET \"standard_conforming_strings\" = off",
        "SET SESSION standard_conforming_strings = off",
        "SET standard_conforming_strings = DEFAULT",
        "SELECT set_config('standard_conforming_strings', 'off', false)",
        "SELECT pg_catalog.set_config('Standard_Conforming_Strings', 'off', false)",
        "SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'standard_conforming_strings'",
        "SELECT 1 FROM (SELECT set_config('standard_conforming_strings', 'off', false)) s",
        "UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'",
        "UPDATE pg_catalog.pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'",
        "RESET standard_conforming_strings",
        "SET backslash_quote = on",
        "SET client_encoding = 'SJIS'",
        "SET NAMES 'SJIS'",
        "SELECT set_config('client_encoding', 'BIG5', false)",
    ];
    for rules in [example_rules(), WRITES_ALLOWED.to_string()] {
        let r = red(&rules);
        for attempt in attempts {
            let a = r.wire(json!([
                {"Q": attempt},
                {"Q": "SHOW standard_conforming_strings"},
                {"Q": "SHOW client_encoding"},
                {"Q": SCS_PAYLOAD},
            ]));
            let rows = of(&a, "D");
            assert!(
                errors(&a)[0].contains("42501"),
                "{attempt}: not refused: {a}"
            );
            assert_eq!(rows[0]["values"][0], "on", "{attempt}: {a}");
            assert_eq!(rows[1]["values"][0], "UTF8", "{attempt}: {a}");
            r.assert_customers_intact(attempt);
        }
        // Inside a transaction too (SET LOCAL lasts to its end).
        let a = r.wire(json!([
            {"Q": "BEGIN"},
            {"Q": "SET LOCAL standard_conforming_strings = off"},
            {"Q": SCS_PAYLOAD},
            {"Q": "COMMIT"},
        ]));
        assert!(errors(&a)[0].contains("42501"), "{a}");
        r.assert_customers_intact("SET LOCAL");
    }
}

#[test]
fn a_client_encoding_other_than_utf8_is_refused_at_startup() {
    let r = red(&example_rules());
    // `Ã` is C3 83 in UTF-8; in SJIS, 83 5C is one character, which eats the backslash and
    // ends the literal early: the server would run the DROP sluice saw inside a string.
    let payload = "SELECT E'\u{c3}\\' ; DROP TABLE customers CASCADE ; --'";
    for encoding in [
        "SJIS",
        "BIG5",
        "GBK",
        "sjis",
        "Shift_JIS",
        "EUC_JP",
        "LATIN1",
    ] {
        let a = r.wire_with(
            &[&format!("client_encoding={encoding}")],
            json!([{"Q": payload}]),
        );
        assert_eq!(a["ok"], false, "{encoding}: the login went through: {a}");
        let e = &of(&a, "E")[0];
        assert!(
            e["message"].as_str().unwrap().contains("client_encoding"),
            "{encoding}: {a}"
        );
        r.assert_customers_intact(encoding);
    }
    // UTF8 under any of its names is fine, and the session then speaks UTF8 whatever was asked.
    for encoding in ["UTF8", "utf-8", "unicode", "SQL_ASCII"] {
        let a = r.wire_with(
            &[&format!("client_encoding={encoding}")],
            json!([{"Q": "SHOW client_encoding"}, {"Q": payload}]),
        );
        assert_eq!(a["ok"], true, "{encoding}: {a}");
        assert_eq!(of(&a, "D")[0]["values"][0], "UTF8", "{encoding}: {a}");
        r.assert_customers_intact(encoding);
    }
}

#[test]
fn a_pinned_setting_changed_where_sluice_cannot_see_ends_the_session() {
    let r = red(WRITES_ALLOWED);
    // A function whose body sluice does not read changes the setting (as a user's helper could).
    r.pg.admin_sql(
        "CREATE FUNCTION public.tweak() RETURNS int LANGUAGE plpgsql STABLE AS \
         $$ BEGIN PERFORM set_config('standard_conforming_strings', 'off', false); RETURN 1; END $$; \
         GRANT EXECUTE ON FUNCTION public.tweak() TO app",
    );
    let a = r.wire(json!([{"Q": "SELECT 1"}, {"wait": 1}, {"Q": "SELECT 2"}, {"wait": 1}]));
    assert_eq!(of(&a, "D").len(), 2, "{a}");
    // Waiting for the answer, and pipelined (the payload sent before the server reported the
    // change: sluice holds it back until the answer of a statement that runs user code is in).
    for script in [
        json!([{"Q": "SELECT length(tweak()::text)"}, {"wait": 1}, {"Q": SCS_PAYLOAD}]),
        json!([{"Q": "SELECT length(tweak()::text)"}, {"Q": SCS_PAYLOAD}]),
        json!([
            {"P": ["", "SELECT length(tweak()::text)"]}, {"B": ["", "", []]}, {"E": ""}, {"S": null},
            {"Q": SCS_PAYLOAD},
        ]),
    ] {
        let a = r.wire(script.clone());
        assert_eq!(a["closed"], true, "{script}: {a}");
        assert!(
            errors(&a)
                .iter()
                .any(|e| e.contains("standard_conforming_strings")),
            "{script}: {a}"
        );
        r.assert_customers_intact("set_config inside a function");
    }
    r.gw.log
        .wait_for(WAIT, |v| is_event(v, "pinned_setting_changed"));
}

#[test]
fn role_and_database_defaults_cannot_unpin_the_session() {
    let r = red(WRITES_ALLOWED);
    r.pg.admin_sql(
        "ALTER ROLE app SET standard_conforming_strings = off; \
         ALTER ROLE app SET client_encoding = 'SJIS'; \
         ALTER DATABASE postgres SET standard_conforming_strings = off",
    );
    let a = r.wire(json!([
        {"Q": "SHOW standard_conforming_strings"},
        {"Q": "SHOW client_encoding"},
        {"Q": SCS_PAYLOAD},
    ]));
    let rows = of(&a, "D");
    assert_eq!(rows[0]["values"][0], "on", "{a}");
    assert_eq!(rows[1]["values"][0], "UTF8", "{a}");
    r.assert_customers_intact("role defaults");
}

// ---------------------------------------------------------------------------------------------
// 2. EXPLAIN that executes is its inner statement.
// ---------------------------------------------------------------------------------------------

#[test]
fn an_explain_that_executes_is_its_inner_statement() {
    let executing = [
        "EXPLAIN (ANALYSE) DELETE FROM customers WHERE id > 0",
        "EXPLAIN (ANALYZE) DELETE FROM customers WHERE id > 0",
        "EXPLAIN (analyse true) DELETE FROM customers WHERE id > 0",
        "EXPLAIN (ANALYZE 1) DELETE FROM customers WHERE id > 0",
        "EXPLAIN (ANALYZE 'on') DELETE FROM customers WHERE id > 0",
        "EXPLAIN (ANALYZE yes) DELETE FROM customers WHERE id > 0",
        "EXPLAIN (\"analyse\") DELETE FROM customers WHERE id > 0",
        "EXPLAIN (FORMAT JSON, ANALYSE) DELETE FROM customers WHERE id > 0",
        "EXPLAIN (ANALYSE, ANALYZE false) DELETE FROM customers WHERE id > 0",
        "EXPLAIN ANALYZE VERBOSE DELETE FROM customers WHERE id > 0",
        "EXPLAIN (ANALYSE) WITH d AS (DELETE FROM customers WHERE id > 0 RETURNING 1) SELECT * FROM d",
        "EXPLAIN (ANALYSE) UPDATE customers SET name = 'x' WHERE id > 0",
    ];
    let r = red(&example_rules());
    for sql in executing {
        let a = r.wire(json!([{"Q": sql}]));
        assert!(
            errors(&a).first().is_some_and(|e| e.contains("42501")),
            "{sql}: {a}"
        );
        r.assert_customers_intact(sql);
    }
    // Planning only stays an EXPLAIN (allowed by the example's `reads`).
    for sql in [
        "EXPLAIN DELETE FROM customers WHERE id > 0",
        "EXPLAIN (ANALYZE false) DELETE FROM customers WHERE id > 0",
        "EXPLAIN (ANALYSE off, VERBOSE, COSTS false, FORMAT JSON) DELETE FROM customers WHERE id > 0",
    ] {
        let a = r.wire(json!([{"Q": sql}]));
        assert!(errors(&a).is_empty(), "{sql}: {a}");
    }
    r.assert_customers_intact("plain EXPLAIN");
}

// ---------------------------------------------------------------------------------------------
// 3. Prepared statements are what the server says they are.
// ---------------------------------------------------------------------------------------------

const HELD_DELETE: &str = "DELETE FROM customers WHERE id = 1";

/// The script with and without waiting for each answer (pipelined, sluice decides before the
/// server has confirmed anything).
fn both_ways(script: Value) -> [Value; 2] {
    let pipelined: Vec<Value> = script
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.get("settle").is_none())
        .cloned()
        .collect();
    [script, Value::Array(pipelined)]
}

#[test]
fn a_parse_the_server_refused_does_not_replace_the_statement() {
    let r = red(&example_rules());
    for script in both_ways(json!([
        {"P": ["s", HELD_DELETE]}, {"S": null}, {"settle": null},
        // Already exists: the server refuses it and `s` stays the DELETE.
        {"P": ["s", "SELECT 1"]}, {"S": null}, {"settle": null},
        {"B": ["", "s", []]}, {"E": ""}, {"S": null},
    ])) {
        let a = r.wire(script.clone());
        let errs = errors(&a);
        assert!(errs.iter().any(|e| e.contains("42P05")), "{script}: {a}");
        assert!(errs.last().unwrap().contains("42501"), "{script}: {a}");
        r.assert_customers_intact("Parse s twice");
    }
    // The audit log files the execution under the DELETE, not under `SELECT 1 / allow`.
    let held =
        r.gw.log
            .matching(|v| is_event(v, "command") && v["command"] == HELD_DELETE);
    assert!(
        !held.is_empty() && held.iter().all(|v| v["action"] != "allow"),
        "{held:?}"
    );
}

#[test]
fn a_close_the_server_skipped_is_not_honoured() {
    let r = red(&example_rules());
    for script in both_ways(json!([
        {"P": ["s", HELD_DELETE]}, {"S": null}, {"settle": null},
        // The Execute fails, so the server skips the Close up to the Sync: `s` still exists.
        {"P": ["", "SELECT 1/0"]}, {"B": ["", "", []]}, {"E": ""}, {"C": ["S", "s"]}, {"S": null},
        {"settle": null},
        {"B": ["", "s", []]}, {"E": ""}, {"S": null},
    ])) {
        let a = r.wire(script.clone());
        let errs = errors(&a);
        assert!(errs.iter().any(|e| e.contains("22012")), "{script}: {a}");
        assert!(errs.last().unwrap().contains("42501"), "{script}: {a}");
        r.assert_customers_intact("Close skipped by the server");
    }
}

#[test]
fn sql_prepare_and_execute_are_decided_as_the_statement_they_run() {
    // The built-in default (no rule names `other`) plus the example's rules.
    let r = red(&example_rules());
    let cases: Vec<Value> = vec![
        // SQL PREPARE, SQL EXECUTE.
        json!([{"Q": "PREPARE p AS DELETE FROM customers WHERE id = 2"}, {"Q": "EXECUTE p"}]),
        json!([{"Q": "PREPARE p(int) AS DELETE FROM customers WHERE id = $1"}, {"Q": "EXECUTE p(2)"}]),
        // Across protocols: prepared over the wire, executed in SQL, and the reverse.
        json!([{"P": ["p", "DELETE FROM customers WHERE id = 2"]}, {"S": null}, {"settle": null},
               {"Q": "EXECUTE p"}]),
        json!([{"Q": "PREPARE p AS DELETE FROM customers WHERE id = 2"},
               {"B": ["", "p", []]}, {"E": ""}, {"S": null}]),
        // EXPLAIN ANALYZE of it runs it.
        json!([{"Q": "PREPARE p AS DELETE FROM customers WHERE id = 2"},
               {"Q": "EXPLAIN (ANALYSE) EXECUTE p"}]),
        // Re-prepared after DEALLOCATE: the new statement counts, from the server's answer.
        json!([{"Q": "PREPARE p AS SELECT 1"}, {"Q": "DEALLOCATE p"},
               {"Q": "PREPARE p AS DELETE FROM customers WHERE id = 2"}, {"Q": "EXECUTE p"}]),
    ];
    for script in cases {
        let a = r.wire(script.clone());
        assert!(
            errors(&a).last().is_some_and(|e| e.contains("42501")),
            "{script}: {a}"
        );
        r.assert_customers_intact(&script.to_string());
    }
}

#[test]
fn prepared_statements_still_work_and_the_audit_files_what_ran() {
    let r = red(&example_rules());
    let a = r.wire(json!([
        {"Q": "PREPARE q(int) AS SELECT name FROM customers WHERE id = $1"},
        {"Q": "EXECUTE q(2)"},
        {"P": ["w", "SELECT count(*) FROM customers"]}, {"S": null}, {"settle": null},
        {"B": ["", "w", []]}, {"E": ""}, {"S": null},
        {"Q": "EXECUTE w"},
        {"Q": "SELECT string_agg(name, ',' ORDER BY name) FROM pg_prepared_statements"},
        {"Q": "DEALLOCATE q"}, {"C": ["S", "w"]}, {"S": null}, {"settle": null},
        {"Q": "SELECT count(*) FROM pg_prepared_statements"},
        {"Q": "EXECUTE q(2)"},
    ]));
    let rows: Vec<Value> = of(&a, "D").iter().map(|d| d["values"][0].clone()).collect();
    assert_eq!(rows, ["Alan Turing", "3", "3", "q,w", "0"], "{a}");
    // After the server confirmed the DEALLOCATE, `q` is unknown: refused, not guessed.
    let errs = errors(&a);
    assert_eq!(errs.len(), 1, "{a}");
    assert!(
        errs[0].contains("42501") && errs[0].contains("prepared-statements"),
        "{a}"
    );
    // The audit of a held EXECUTE names the statement it runs.
    let b = r.wire(json!([
        {"Q": "PREPARE d AS DELETE FROM customers WHERE id = 3"},
        {"Q": "EXECUTE d"},
    ]));
    assert!(errors(&b)[0].contains("42501"), "{b}");
    let held = r.gw.log.wait_for(WAIT, |v| {
        is_event(v, "command")
            && v["command"]
                .as_str()
                .is_some_and(|c| c.starts_with("EXECUTE d"))
    });
    assert!(
        held["command"]
            .as_str()
            .unwrap()
            .contains("DELETE FROM customers WHERE id = 3"),
        "{held}"
    );
    assert_eq!(held["action"], "hold", "{held}");
    r.assert_customers_intact("held EXECUTE");
}

// ---------------------------------------------------------------------------------------------
// 4. A statement kind no rule names is denied.
// ---------------------------------------------------------------------------------------------

/// Functions, a procedure, a view and objects a hostile agent would reach for, created by the
/// owner (the agent cannot create functions through sluice).
const TRAPS: &str = "
CREATE FUNCTION public.wipe() RETURNS int LANGUAGE plpgsql VOLATILE AS
  $$ BEGIN DELETE FROM customers; RETURN 1; END $$;
CREATE FUNCTION public.wipe_tab() RETURNS SETOF int LANGUAGE sql VOLATILE AS
  $$ DELETE FROM customers RETURNING id $$;
CREATE FUNCTION public.purge(c customers) RETURNS int LANGUAGE plpgsql VOLATILE AS
  $$ BEGIN DELETE FROM customers WHERE id = c.id; RETURN 1; END $$;
CREATE PROCEDURE public.wipe_proc() LANGUAGE sql AS $$ DELETE FROM customers $$;
CREATE FUNCTION public.boss() RETURNS int LANGUAGE sql STABLE SECURITY DEFINER AS $$ SELECT 1 $$;
-- Declared STABLE, but it calls a volatile function: only the server can catch this one.
CREATE FUNCTION public.sneaky() RETURNS int LANGUAGE plpgsql STABLE AS
  $$ BEGIN RETURN wipe(); END $$;
CREATE VIEW public.wiping AS SELECT wipe() AS w;
CREATE SEQUENCE public.orders_seq;
SELECT lo_from_bytea(4242, 'keep me');
GRANT ALL ON ALL TABLES IN SCHEMA public TO app;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO app;
GRANT SELECT, UPDATE ON LARGE OBJECT 4242 TO app;
";

#[test]
fn a_kind_no_rule_names_is_denied_by_the_built_in_default() {
    let r = red("rules:\n  - { name: reads, statements: [select], action: allow }\n");
    r.pg.admin_sql(TRAPS);
    for sql in [
        "CALL wipe_proc()",
        "DEALLOCATE ALL",
        "DECLARE c CURSOR FOR SELECT 1",
        "LISTEN ch",
        "NOTIFY ch, 'x'",
        "LOCK TABLE customers",
        "SELECT * FROM customers FOR UPDATE",
        "VACUUM customers",
        "CREATE TRIGGER t AFTER INSERT ON customers FOR EACH ROW EXECUTE FUNCTION wipe()",
        "BEGIN",
        "SET work_mem = '64MB'",
    ] {
        let a = r.wire(json!([{"Q": sql}]));
        assert!(
            errors(&a).first().is_some_and(|e| e.contains("42501")),
            "{sql}: {a}"
        );
        r.assert_customers_intact(sql);
    }
    assert_eq!(
        r.pg.admin_sql("SELECT count(*) FROM pg_trigger WHERE tgname = 't'"),
        "0"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Functions are what the server's catalog says they are.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_read_that_calls_a_volatile_function_is_a_write_in_every_position() {
    for rules in [example_rules(), WRITES_ALLOWED.to_string()] {
        let r = red(&rules);
        r.pg.admin_sql(TRAPS);
        for sql in [
            "SELECT wipe()",
            "SELECT public.wipe()",
            "SELECT \"wipe\"()",
            "SELECT * FROM wipe_tab()",
            "SELECT c.purge FROM customers c",
            "SELECT (c).purge FROM customers c",
            "SELECT name FROM customers ORDER BY wipe()",
            "SELECT 1 WHERE wipe() = 1",
            "SELECT count(*) FROM customers GROUP BY id HAVING wipe() > 0",
            "VALUES (wipe())",
            "WITH x AS (SELECT wipe()) SELECT * FROM x",
            "SELECT * FROM customers WHERE id IN (SELECT wipe())",
            "SELECT CASE WHEN true THEN wipe() END",
            "EXPLAIN ANALYZE SELECT wipe()",
            "SELECT boss()",
            "SELECT no_such_function()",
            "SELECT nextval('orders_seq')",
            "SELECT setval('orders_seq', 100)",
            "SELECT lo_unlink(4242)",
            "SELECT lo_put(4242, 0, 'x')",
            "SELECT lo_from_bytea(0, 'x')",
            "SELECT pg_notify('ch', 'x')",
            "SELECT ts_rewrite('a'::tsquery, 'SELECT set_config(''role'', ''postgres'', false)::tsquery, ''b''::tsquery')",
            "SELECT query_to_xml('DELETE FROM customers RETURNING 1', true, true, '')",
            "SELECT cursor_to_xml('c', 1, true, true, '')",
            "SELECT set_config('application_name', 'x', false)",
            "SELECT pg_advisory_lock(1)",
            "SELECT pg_sleep(0.1)",
            "SELECT table_to_xml('customers', true, true, '')",
        ] {
            let a = r.wire(json!([{"Q": sql}]));
            assert!(
                errors(&a).first().is_some_and(|e| e.contains("42501")),
                "{sql}: {a}"
            );
            r.assert_customers_intact(sql);
        }
        // Ground truth beyond the table: the sequence, the large object.
        assert_eq!(r.pg.admin_sql("SELECT last_value FROM orders_seq"), "1");
        assert_eq!(
            r.pg.admin_sql("SELECT convert_from(lo_get(4242), 'UTF8')"),
            "keep me"
        );
        // Reads that call only reads still pass, columns are not mistaken for functions.
        let a = r.wire(json!([
            {"Q": "SELECT lower(c.name), length(c.email), now() IS NOT NULL, random() < 2 FROM customers c WHERE c.id = 1"},
            {"Q": "SELECT c.name, (c).email FROM customers c ORDER BY c.id LIMIT 1"},
            {"Q": "SELECT count(*), max(id), coalesce(NULL, 1), greatest(1, 2) FROM customers"},
        ]));
        assert!(errors(&a).is_empty(), "{a}");
        assert_eq!(of(&a, "D").len(), 3, "{a}");
    }
}

#[test]
fn another_session_cannot_be_terminated_or_cancelled() {
    let r = red(WRITES_ALLOWED);
    std::thread::scope(|scope| {
        // The victim: another session of the agent's own role (which may signal it), not
        // through sluice, whose query must finish.
        let victim = scope.spawn(|| {
            std::process::Command::new("psql")
                .args(["-X", "-d", &r.pg.conninfo(PG_SCRAM.0, PG_SCRAM.1)])
                .args(["-c", "SET application_name = 'victim'; SELECT pg_sleep(6)"])
                .output()
                .unwrap()
                .status
                .success()
        });
        let deadline = std::time::Instant::now() + WAIT;
        let running = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'victim'";
        while r.pg.admin_sql(running) != "1" {
            assert!(
                std::time::Instant::now() < deadline,
                "the victim never started"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        for sql in [
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim'",
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim'",
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim'",
            r#"SELECT ts_rewrite('a'::tsquery, 'SELECT pg_terminate_backend(pid)::text::tsquery, ''b''::tsquery FROM pg_stat_activity WHERE application_name = ''victim''')"#,
        ] {
            let a = r.wire(json!([{"Q": sql}]));
            assert!(
                errors(&a).first().is_some_and(|e| e.contains("42501")),
                "{sql}: {a}"
            );
        }
        assert!(
            victim.join().unwrap(),
            "the victim's query was terminated or cancelled"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 6. What sluice took for a read runs read-only in the server.
// ---------------------------------------------------------------------------------------------

/// `sneaky()` is declared STABLE but calls a volatile function that deletes: the catalog says
/// "read", so only the server can stop it.
#[test]
fn a_misjudged_read_fails_in_the_server_instead_of_writing() {
    let r = red(WRITES_ALLOWED);
    r.pg.admin_sql(TRAPS);
    let read_only = |a: &Value, what: &str| {
        assert!(
            errors(a).iter().any(|e| e.contains("25006")),
            "{what}: not stopped by the read-only transaction: {a}"
        );
        r.assert_customers_intact(what);
    };
    // Outside a transaction block, simple and extended protocol, and through a view.
    read_only(&r.wire(json!([{"Q": "SELECT sneaky()"}])), "simple");
    read_only(
        &r.wire(
            json!([{"P": ["", "SELECT sneaky()"]}, {"B": ["", "", []]}, {"E": ""}, {"S": null}]),
        ),
        "extended",
    );
    read_only(&r.wire(json!([{"Q": "SELECT * FROM wiping"}])), "a view");
    // Inside the agent's own transaction, after a write made it read-write: the read runs
    // read-only in a savepoint; the transaction is then aborted, as the server left it.
    let a = r.wire(json!([
        {"Q": "BEGIN"},
        {"Q": "UPDATE accounts SET balance = 1 WHERE id = 1"},
        {"Q": "SELECT sneaky()"},
        {"Q": "COMMIT"},
    ]));
    read_only(&a, "in a block");
    assert_eq!(of(&a, "C").last().unwrap()["tag"], "ROLLBACK", "{a}");
    let a = r.wire(json!([
        {"Q": "BEGIN READ WRITE"},
        {"P": ["", "UPDATE accounts SET balance = 2 WHERE id = 1"]}, {"B": ["", "", []]}, {"E": ""}, {"S": null},
        {"P": ["", "SELECT sneaky()"]}, {"B": ["", "", []]}, {"E": ""}, {"S": null},
        {"Q": "COMMIT"},
    ]));
    read_only(&a, "extended, in a block");
    assert_eq!(
        r.pg.admin_sql("SELECT balance FROM accounts WHERE id = 1"),
        "100"
    );
    // The agent cannot turn the read-only default off.
    for sql in [
        "SET default_transaction_read_only = off",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "RESET default_transaction_read_only",
    ] {
        let a = r.wire(json!([{"Q": sql}, {"Q": "SELECT sneaky()"}]));
        assert!(errors(&a)[0].contains("42501"), "{sql}: {a}");
        read_only(&a, sql);
    }
    let a = r.wire(json!([{"Q": "BEGIN"}, {"Q": "SET TRANSACTION READ WRITE"}, {"Q": "SELECT sneaky()"}, {"Q": "ROLLBACK"}]));
    assert!(errors(&a)[0].contains("42501"), "{a}");
    read_only(&a, "SET TRANSACTION READ WRITE");
}

#[test]
fn writes_still_work_and_transactions_keep_their_meaning() {
    let r = red(WRITES_ALLOWED);
    let balance = |id: u32| {
        r.pg.admin_sql(&format!("SELECT balance FROM accounts WHERE id = {id}"))
    };
    // Outside a block: committed by sluice's own transaction; the agent sees it idle.
    let a = r.wire(json!([{"Q": "UPDATE accounts SET balance = 5 WHERE id = 1"}, {"Q": "SELECT balance FROM accounts WHERE id = 1"}]));
    assert!(errors(&a).is_empty(), "{a}");
    assert_eq!(of(&a, "C")[0]["tag"], "UPDATE 1", "{a}");
    assert!(of(&a, "Z").iter().all(|z| z["status"] == "I"), "{a}");
    assert_eq!(balance(1), "5");
    // In a block: the agent's reads see its writes; COMMIT keeps them, ROLLBACK does not.
    let a = r.wire(json!([
        {"Q": "BEGIN"},
        {"Q": "UPDATE accounts SET balance = 6 WHERE id = 2"},
        {"Q": "SELECT balance FROM accounts WHERE id = 2"},
        {"Q": "INSERT INTO accounts VALUES (11, 11)"},
        {"Q": "COMMIT"},
        {"Q": "BEGIN"},
        {"Q": "UPDATE accounts SET balance = 0 WHERE id = 3"},
        {"Q": "SAVEPOINT mine"},
        {"Q": "UPDATE accounts SET balance = 0 WHERE id = 4"},
        {"Q": "ROLLBACK TO SAVEPOINT mine"},
        {"Q": "SELECT balance FROM accounts WHERE id IN (3, 4) ORDER BY id"},
        {"Q": "ROLLBACK"},
    ]));
    assert!(errors(&a).is_empty(), "{a}");
    let rows: Vec<Value> = of(&a, "D").iter().map(|d| d["values"][0].clone()).collect();
    assert_eq!(rows, ["6", "0", "100"], "{a}");
    let statuses: Vec<Value> = of(&a, "Z")
        .iter()
        .skip(1)
        .map(|z| z["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        ["T", "T", "T", "T", "I", "T", "T", "T", "T", "T", "T", "I"],
        "{a}"
    );
    assert_eq!(
        (balance(2), balance(11), balance(3), balance(4)),
        ("6".into(), "11".into(), "100".into(), "100".into())
    );
    // Many small writes in quick succession (the server's per-session counts pile up until it
    // reports them, about once a second): each is measured on its own, none is refused.
    let mut script = Vec::new();
    for id in 1..=8 {
        script.push(
            json!({"Q": format!("UPDATE accounts SET balance = balance + 1 WHERE id = {id}")}),
        );
        script.push(json!({"Q": "BEGIN"}));
        script.push(
            json!({"Q": format!("UPDATE accounts SET balance = balance + 1 WHERE id = {id}")}),
        );
        script.push(json!({"Q": "COMMIT"}));
    }
    let a = r.wire(Value::Array(script));
    assert!(errors(&a).is_empty(), "{a}");
    assert_eq!(
        r.pg.admin_sql("SELECT sum(balance) FROM accounts WHERE id BETWEEN 7 AND 8"),
        "204"
    );
    // Extended protocol, with parameters, in and out of a block.
    let a = r.wire(json!([
        {"P": ["u", "UPDATE accounts SET balance = $1::int WHERE id = $2::int"]}, {"S": null},
        {"B": ["", "u", ["21", "5"]]}, {"E": ""}, {"S": null},
        {"Q": "BEGIN"},
        {"B": ["", "u", ["22", "6"]]}, {"E": ""}, {"S": null},
        {"Q": "COMMIT"},
    ]));
    assert!(errors(&a).is_empty(), "{a}");
    assert_eq!((balance(5), balance(6)), ("21".into(), "22".into()));
    // COPY FROM STDIN through the write path: the data goes through, then it is measured.
    let a = r.wire(json!([
        {"Q": "COPY accounts FROM STDIN"}, {"d": "12\t12\n"}, {"d": "13\t13\n"}, {"c": null},
        {"Q": "SELECT count(*) FROM accounts"},
    ]));
    assert!(errors(&a).is_empty(), "{a}");
    assert_eq!(of(&a, "C")[0]["tag"], "COPY 2", "{a}");
    assert_eq!(r.pg.admin_sql("SELECT count(*) FROM accounts"), "13");
    // A COPY the server refuses before any data: the agent gets the error, then goes on
    // (sent at once, and waited for).
    for script in [
        json!([{"Q": "COPY nosuch FROM STDIN"}, {"Q": "SELECT 1"}]),
        json!([{"Q": "COPY nosuch FROM STDIN"}, {"wait": 1}, {"Q": "SELECT 1"}]),
    ] {
        let a = r.wire(script.clone());
        assert_eq!(of(&a, "E")[0]["code"], "42P01", "{script}: {a}");
        assert_eq!(of(&a, "D").len(), 1, "{script}: {a}");
        assert!(
            of(&a, "Z").iter().all(|z| z["status"] == "I"),
            "{script}: {a}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 7. The blast radius is measured, not guessed from the WHERE clause.
// ---------------------------------------------------------------------------------------------

/// Writes allowed, CALL and volatile functions too: what stops them is the measurement.
const WRITES_AND_CODE_ALLOWED: &str = "rules:
  - name: reads-and-writes
    statements: [select, show, explain, insert, update, delete, merge, copy, transaction, set, call]
    action: allow
  - name: code
    guardrails: [volatile-function]
    action: allow
";

fn assert_blast_refused(r: &Red, a: &Value, what: &str) {
    let errs = errors(a);
    assert!(
        errs.iter()
            .any(|e| e.contains("42501") && e.contains("blast-radius")),
        "{what}: not refused by the blast radius: {a}"
    );
    r.assert_customers_intact(what);
}

#[test]
fn a_write_that_changes_too_much_is_rolled_back_and_refused_with_the_count() {
    let r = red(WRITES_AND_CODE_ALLOWED);
    r.pg.admin_sql(TRAPS);
    // A trigger the agent does not see: an INSERT elsewhere empties customers.
    r.pg.admin_sql(
        "CREATE FUNCTION public.wipe_trigger() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN DELETE FROM customers; RETURN NEW; END $$; \
         CREATE TRIGGER wipe_on_insert AFTER INSERT ON accounts FOR EACH ROW WHEN (NEW.id = 99) \
         EXECUTE FUNCTION wipe_trigger()",
    );
    for sql in [
        "DELETE FROM customers WHERE id > -1",
        "DELETE FROM customers WHERE email LIKE '%'",
        "DELETE FROM customers WHERE (SELECT true)",
        "DELETE FROM customers WHERE current_user = current_user",
        "DELETE FROM customers WHERE id IN (SELECT id FROM customers)",
        "DELETE FROM customers c USING customers d WHERE c.id = d.id",
        "UPDATE customers SET email = 'x@example.com' WHERE id > 0",
        "UPDATE customers SET name = name || '' WHERE id <> 2",
        "MERGE INTO customers c USING customers d ON c.id = d.id WHEN MATCHED THEN DELETE",
        "INSERT INTO customers SELECT * FROM customers ON CONFLICT (id) DO UPDATE SET name = 'x'",
        "WITH d AS (DELETE FROM customers WHERE id > 0 RETURNING *) SELECT count(*) FROM d",
        "COPY (DELETE FROM customers WHERE id > 0 RETURNING id) TO STDOUT",
        "SELECT wipe()",
        "SELECT * FROM wipe_tab()",
        "CALL wipe_proc()",
        "INSERT INTO accounts VALUES (99, 0)",
    ] {
        let a = r.wire(json!([{"Q": sql}]));
        assert_blast_refused(&r, &a, sql);
        // The session goes on.
        let ok = r.wire(json!([{"Q": "SELECT count(*) FROM customers"}]));
        assert_eq!(of(&ok, "D")[0]["values"][0], "3", "{sql}: {ok}");
    }
    assert_eq!(
        r.rows("accounts"),
        10,
        "the INSERT that fired the trigger was rolled back too"
    );
    // What a command tag does not count: a foreign key's ON DELETE CASCADE, and a rule.
    r.pg.admin_sql(
        "CREATE TABLE public.parent (id int PRIMARY KEY); INSERT INTO parent VALUES (1), (2); \
         CREATE TABLE public.child (id int, parent int REFERENCES parent ON DELETE CASCADE); \
         INSERT INTO child SELECT g, 1 FROM generate_series(1, 100) g; \
         CREATE TABLE public.notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'x'); \
         CREATE RULE wipe_on_note AS ON UPDATE TO notes DO ALSO DELETE FROM customers; \
         GRANT ALL ON parent, child, notes TO app",
    );
    let a = r.wire(json!([{"Q": "DELETE FROM parent WHERE id = 1"}]));
    assert!(
        errors(&a).iter().any(|e| e.contains("blast-radius")),
        "cascade: {a}"
    );
    assert_eq!(r.rows("child"), 100);
    let a = r.wire(json!([{"Q": "UPDATE notes SET body = 'y' WHERE id = 1"}]));
    assert_blast_refused(&r, &a, "a rule");
    // A bound parameter that makes the WHERE always true.
    let a = r.wire(json!([
        {"P": ["", "DELETE FROM customers WHERE $1::bool"]}, {"B": ["", "", ["t"]]}, {"E": ""}, {"S": null},
    ]));
    assert_blast_refused(&r, &a, "DELETE ... WHERE $1 with $1 = 't'");
    // In the agent's transaction: refused, rolled back to before it, the transaction goes on.
    let a = r.wire(json!([
        {"Q": "BEGIN"},
        {"Q": "UPDATE accounts SET balance = 7 WHERE id = 1"},
        {"Q": "DELETE FROM customers WHERE id > -1"},
        {"Q": "UPDATE accounts SET balance = 8 WHERE id = 2"},
        {"Q": "COMMIT"},
    ]));
    assert_blast_refused(&r, &a, "in a transaction");
    assert_eq!(of(&a, "C").last().unwrap()["tag"], "COMMIT", "{a}");
    assert_eq!(
        r.pg.admin_sql(
            "SELECT string_agg(balance::text, ',' ORDER BY id) FROM accounts WHERE id <= 2"
        ),
        "7,8"
    );
    // Within the bound: one row of three, and the default's absolute bound on a big table.
    let a = r.wire(json!([{"Q": "DELETE FROM customers WHERE id = 3"}]));
    assert!(errors(&a).is_empty(), "{a}");
    assert_eq!(r.rows("customers"), 2);
    r.pg.admin_sql(
        "CREATE TABLE public.big AS SELECT g AS id FROM generate_series(1, 5000) g; GRANT ALL ON big TO app",
    );
    let a = r.wire(json!([{"Q": "DELETE FROM big WHERE id <= 1001"}]));
    let e = &of(&a, "E")[0];
    assert!(
        e["message"].as_str().unwrap().contains("blast-radius"),
        "{a}"
    );
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("changed 1001 rows of big"),
        "{a}"
    );
    let a = r.wire(json!([{"Q": "DELETE FROM big WHERE id <= 1000"}]));
    assert!(errors(&a).is_empty(), "{a}");
    assert_eq!(r.rows("big"), 4000);
    r.gw.log.wait_for(WAIT, |v| is_event(v, "blast_radius"));
}

#[test]
fn the_bound_is_the_resources_and_can_be_set_off() {
    let r = red_with(
        WRITES_ALLOWED,
        "    postgres:\n      blast_radius: { max_rows: 2, max_fraction: 1.0 }\n",
    );
    let a = r.wire(json!([{"Q": "UPDATE accounts SET balance = 0 WHERE id <= 2"}]));
    assert!(errors(&a).is_empty(), "{a}");
    let a = r.wire(json!([{"Q": "UPDATE accounts SET balance = 0 WHERE id <= 3"}]));
    assert!(errors(&a).iter().any(|e| e.contains("blast-radius")), "{a}");
    assert_eq!(
        r.pg.admin_sql("SELECT count(*) FROM accounts WHERE balance = 0"),
        "2"
    );
    let off = red_with(
        WRITES_ALLOWED,
        "    postgres:\n      blast_radius: { enabled: false }\n",
    );
    let a = off.wire(json!([{"Q": "DELETE FROM customers WHERE id > -1"}]));
    assert!(errors(&a).is_empty(), "{a}");
    assert_eq!(off.rows("customers"), 0);
}

// ---------------------------------------------------------------------------------------------
// 8. One agent cannot stall the gateway or the database for others.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_monster_statement_does_not_stall_other_sessions() {
    let r = red(WRITES_ALLOWED);
    // ~1 MiB of tiny statements: seconds of parsing.
    let monster = "SELECT 1;".repeat(116_000);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<&str>();
    std::thread::scope(|scope| {
        let tx = done_tx.clone();
        let (r, monster) = (&r, &monster);
        let big = scope.spawn(move || {
            let a = r.wire(json!([{"Q": monster}]));
            tx.send("monster").unwrap();
            a
        });
        // Once the monster is being analysed, another session asks for a little.
        r.gw.log.wait_for(WAIT, |v| is_event(v, "session_start"));
        std::thread::sleep(Duration::from_millis(200));
        let small = r.wire(json!([{"Q": "SELECT 1"}, {"Q": "SELECT 2"}]));
        done_tx.send("small").unwrap();
        assert_eq!(of(&small, "D").len(), 2, "{small}");
        let big = big.join().unwrap();
        assert!(
            errors(&big).first().is_some_and(|e| e.contains("42501")),
            "the monster is refused as unparseable: {big}"
        );
        assert_eq!(
            done_rx.recv().unwrap(),
            "small",
            "the small query waited for the monster's analysis"
        );
    });
}

#[test]
fn sessions_per_resource_are_capped_in_postgres_shape() {
    let r = red_with(WRITES_ALLOWED, "    postgres:\n      max_sessions: 2\n");
    let conninfo = r.pg.conninfo(PG_SCRAM.0, "x");
    let mut holder = sluice_tests::client_command(
        &r.cg.dir,
        &[
            bin_path("sluice-probe").to_str().unwrap(),
            "pg",
            &conninfo,
            "hold-many",
            "2",
            "SELECT 1",
        ],
    )
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut out = std::io::BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "connected", "{line}");
    let a = r.wire(json!([{"Q": "SELECT 1"}]));
    assert_eq!(a["ok"], false, "{a}");
    assert_eq!(of(&a, "E")[0]["code"], "53300", "{a}");
    // Ground truth: the server saw two sessions of the agent's role, not three.
    assert_eq!(
        r.pg.admin_sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'"),
        "2"
    );
    use std::io::Write;
    holder.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(holder.wait().unwrap().success());
    let a = r.wire(json!([{"Q": "SELECT 1"}]));
    assert_eq!(of(&a, "D").len(), 1, "a slot is free again: {a}");
}

#[test]
fn upstream_sessions_get_the_policys_timeouts_and_the_agent_cannot_lift_them() {
    let r = red_with(
        &format!("{WRITES_ALLOWED}  - {{ name: naps, guardrails: [sleep], action: allow }}\n"),
        "    postgres:\n      timeouts: { statement: 1s, lock: 2s, idle_in_transaction: 1s }\n",
    );
    let a = r.wire(json!([
        {"Q": "SHOW statement_timeout"},
        {"Q": "SHOW lock_timeout"},
        {"Q": "SHOW idle_in_transaction_session_timeout"},
        {"Q": "SET statement_timeout = 0"},
        {"Q": "SELECT set_config('lock_timeout', '0', false)"},
        {"Q": "RESET idle_in_transaction_session_timeout"},
        {"Q": "SELECT pg_sleep(3)"},
    ]));
    let rows: Vec<Value> = of(&a, "D").iter().map(|d| d["values"][0].clone()).collect();
    assert_eq!(rows, ["1s", "2s", "1s"], "{a}");
    let codes: Vec<Value> = of(&a, "E").iter().map(|e| e["code"].clone()).collect();
    assert_eq!(codes, ["42501", "42501", "42501", "57014"], "{a}");
    // Idle in a transaction longer than allowed: the server ends the session.
    let a = r.wire(json!([{"Q": "BEGIN"}, {"sleep": 2500}, {"Q": "SELECT 1"}]));
    assert_eq!(a["closed"], true, "{a}");
    assert!(
        of(&a, "E").iter().any(|e| e["code"] == "25P03"),
        "idle_in_transaction_session_timeout: {a}"
    );
}
