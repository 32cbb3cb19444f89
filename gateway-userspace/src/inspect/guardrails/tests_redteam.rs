//! Analyser cases from the red team of issue 16: what the server would run must be what these
//! rules see (pinned settings, executing EXPLAINs, statement kinds, functions).

use RuleId as R;
use StatementKind as K;

use super::*;

/// The cases are PostgreSQL.
fn analyze(sql: &str) -> Analysis {
    super::analyze(sql, Dialect::Postgres)
}

fn has(sql: &str, rule: RuleId) -> bool {
    analyze(sql).has(rule)
}

#[test]
fn every_spelling_of_a_pinned_setting_change_is_found() {
    for sql in [
        "SET standard_conforming_strings = off",
        "set STANDARD_CONFORMING_STRINGS to 'off'",
        "SET \"standard_conforming_strings\" = off",
        "SET SESSION standard_conforming_strings = off",
        "SET LOCAL standard_conforming_strings TO DEFAULT",
        "SET standard_conforming_strings = on",
        "RESET standard_conforming_strings",
        "SET backslash_quote = on",
        "SET client_encoding = 'SJIS'",
        "SET NAMES 'SJIS'",
        "SELECT set_config('standard_conforming_strings', 'off', false)",
        "SELECT pg_catalog.set_config('Standard_Conforming_Strings', 'off', false)",
        "SELECT set_config(' client_encoding ', 'BIG5', false)",
        "SELECT set_config('client_' || 'encoding', 'BIG5', false)",
        "SELECT 1 FROM (SELECT set_config('standard_conforming_strings', 'off', false)) s",
        "SELECT 1 WHERE set_config('backslash_quote', 'on', true) IS NOT NULL",
        "UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'",
        "update PG_CATALOG.PG_SETTINGS set setting = 'off' where name = 'client_encoding'",
        "WITH x AS (UPDATE pg_settings SET setting = 'off' WHERE name = 'x' RETURNING 1) SELECT 1",
        "ALTER ROLE app SET client_encoding = 'SJIS'",
        "ALTER ROLE app IN DATABASE postgres SET standard_conforming_strings TO off",
        "EXPLAIN ANALYZE SELECT set_config('standard_conforming_strings', 'off', false)",
        // The read-only default sluice enforces.
        "SET default_transaction_read_only = off",
        "SET default_transaction_read_only TO DEFAULT",
        "RESET default_transaction_read_only",
        "SET transaction_read_only = false",
        "SET TRANSACTION READ WRITE",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT set_config('transaction_read_only', $1, true)",
    ] {
        assert!(has(sql, R::PinnedSetting), "{sql}: {:?}", analyze(sql));
    }
    // Harmless: to read-only, other settings, resetting everything to the startup values.
    for sql in [
        "SET default_transaction_read_only = on",
        "SET TRANSACTION READ ONLY",
        "SET transaction_read_only = true",
        "SELECT set_config('transaction_read_only', 'on', true)",
        "SET escape_string_warning = off",
        "SET search_path = public",
        "RESET ALL",
        "DISCARD ALL",
        "SHOW standard_conforming_strings",
        "SELECT current_setting('standard_conforming_strings')",
        "SELECT * FROM pg_settings WHERE name = 'client_encoding'",
        "BEGIN READ WRITE",
    ] {
        assert!(!has(sql, R::PinnedSetting), "{sql}: {:?}", analyze(sql));
    }
}

#[test]
fn pinned_settings_cannot_be_loosened_by_a_rule() {
    let err = crate::config::Config::parse(
        "rules:\n  - { name: lax, guardrails: [pinned-setting], action: allow }\n",
        std::path::Path::new("t.yaml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot be loosened"), "{err}");
}

#[test]
fn an_explain_executes_unless_every_option_is_a_known_planning_one() {
    let executes = [
        "EXPLAIN ANALYZE DELETE FROM t WHERE id = 1",
        "EXPLAIN ANALYZE VERBOSE DELETE FROM t WHERE id = 1",
        "EXPLAIN (ANALYZE) DELETE FROM t WHERE id = 1",
        "EXPLAIN (ANALYSE) DELETE FROM t WHERE id = 1",
        "EXPLAIN (analyse true) DELETE FROM t WHERE id = 1",
        "EXPLAIN (ANALYZE 1) DELETE FROM t WHERE id = 1",
        "EXPLAIN (ANALYZE 'on') DELETE FROM t WHERE id = 1",
        "EXPLAIN (ANALYZE yes) DELETE FROM t WHERE id = 1",
        "EXPLAIN (\"analyse\") DELETE FROM t WHERE id = 1",
        "EXPLAIN (FORMAT JSON, ANALYSE) DELETE FROM t WHERE id = 1",
        "EXPLAIN (ANALYZE false, ANALYSE) DELETE FROM t WHERE id = 1",
        "EXPLAIN (ANALYZE (1 = 0)) DELETE FROM t WHERE id = 1",
        "EXPLAIN (FUTURE_OPTION) DELETE FROM t WHERE id = 1",
        "EXPLAIN (VERBOSE (SELECT true)) DELETE FROM t WHERE id = 1",
    ];
    for sql in executes {
        let a = analyze(sql);
        assert_eq!(a.statements, vec![K::Delete], "{sql}: {a:?}");
    }
    for sql in [
        "EXPLAIN DELETE FROM t WHERE id = 1",
        "EXPLAIN VERBOSE DELETE FROM t WHERE id = 1",
        "EXPLAIN (ANALYZE false) DELETE FROM t WHERE id = 1",
        "EXPLAIN (ANALYSE off, VERBOSE, COSTS false, FORMAT JSON, BUFFERS) DELETE FROM t WHERE id = 1",
        "EXPLAIN (SETTINGS on, SUMMARY true) DELETE FROM t WHERE id = 1",
    ] {
        let a = analyze(sql);
        assert_eq!(a.statements, vec![K::Explain], "{sql}: {a:?}");
    }
    // Findings inside an executing EXPLAIN count, inside a planning one they do not.
    assert!(has(
        "EXPLAIN (ANALYSE) DELETE FROM t",
        R::DeleteWithoutWhere
    ));
    assert!(!has("EXPLAIN DELETE FROM t", R::DeleteWithoutWhere));
}
