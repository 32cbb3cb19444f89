//! The evasion corpus: ways to hide a statement from a naive filter, each with exactly the rules
//! it must get. One table of cases, kept whole.

use RuleId as R;

use super::{tests::check, *};

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
