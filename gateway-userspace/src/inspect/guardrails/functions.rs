//! Functions a statement calls, and which of them make "SELECT" more than a read.
//!
//! Two kinds of knowledge:
//! - by name, without a catalog: built-ins whose effect is known and reaches beyond the query
//!   (files, other sessions, locks, sleeping, SQL given as text, sequences, large objects,
//!   notifications, settings). Each has a finding of its own, denied unless a rule names it.
//! - by what the server's catalog says (`pg_proc`), when a session can ask it: a call to a
//!   volatile function (or one that cannot be shown to be a read: unknown, SECURITY DEFINER,
//!   C-language user code) makes a read statement a write ([`RuleId::VolatileFunction`]).
//!   Without a catalog, the built-in non-volatile functions of PostgreSQL 15
//!   (`pg_builtin_functions.txt`) and a short list of harmless volatile ones are reads, and
//!   every other call counts as volatile.
//!
//! A call is anything PostgreSQL would run as a function: `f(...)` in any position (select
//! list, FROM, WHERE, ORDER BY, VALUES, CTEs, EXECUTE arguments), and the attribute notation
//! `c.purge`, which PostgreSQL reads as `purge(c)` when `c` has no column `purge`. Only the
//! catalog can tell that one from a column, so it is checked only when a catalog is at hand.

use std::{collections::HashSet, sync::OnceLock};

use serde::Serialize;

use super::{Analysis, Finding, RuleId};

/// A function (or attribute-notation candidate) a statement calls.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct FunctionCall {
    /// Index into [`Analysis::statements`].
    pub statement: usize,
    /// The schema it was qualified with, as PostgreSQL names it (folded unless quoted).
    pub schema: Option<String>,
    pub name: String,
    /// `x.name`: a function of one argument only if `x` has no column `name`.
    pub attribute: bool,
}

/// What calling a function means for a statement that otherwise only reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    Read,
    /// Not shown to be a read, and why.
    Write(String),
    /// (Attribute notation only) no function of one argument has that name: a column.
    NotAFunction,
}

/// Volatile built-ins that change nothing but the session's own random state or read clocks,
/// ids and sizes. `now()` and friends are stable, so they are reads anyway.
pub const SAFE_VOLATILE: &[&str] = &[
    "clock_timestamp",
    "timeofday",
    "random",
    "setseed",
    "gen_random_uuid",
    "currval",
    "lastval",
    "current_query",
    "pg_blocking_pids",
    "pg_safe_snapshot_blocking_pids",
    "pg_collation_actual_version",
    "pg_database_collation_actual_version",
    "pg_current_wal_lsn",
    "pg_current_wal_insert_lsn",
    "pg_current_wal_flush_lsn",
    "pg_database_size",
    "pg_indexes_size",
    "pg_relation_size",
    "pg_table_size",
    "pg_tablespace_size",
    "pg_total_relation_size",
    "pg_is_in_recovery",
    "pg_jit_available",
    "pg_last_committed_xact",
    "pg_last_wal_receive_lsn",
    "pg_last_wal_replay_lsn",
    "pg_last_xact_replay_timestamp",
    "pg_is_wal_replay_paused",
    "pg_get_wal_replay_pause_state",
    "pg_lock_status",
    "pg_notification_queue_usage",
    "pg_partition_ancestors",
    "pg_partition_tree",
    "pg_prepared_xact",
    "pg_sequence_last_value",
    "pg_stat_clear_snapshot",
    "pg_stat_have_stats",
    "pg_xact_commit_timestamp",
    "pg_xact_commit_timestamp_origin",
    "pg_xact_status",
    "txid_status",
    "pg_export_snapshot",
    "pg_stat_get_xact_blocks_fetched",
    "pg_stat_get_xact_blocks_hit",
    "pg_stat_get_xact_function_calls",
    "pg_stat_get_xact_function_self_time",
    "pg_stat_get_xact_function_total_time",
    "pg_stat_get_xact_numscans",
    "pg_stat_get_xact_tuples_deleted",
    "pg_stat_get_xact_tuples_fetched",
    "pg_stat_get_xact_tuples_hot_updated",
    "pg_stat_get_xact_tuples_inserted",
    "pg_stat_get_xact_tuples_returned",
    "pg_stat_get_xact_tuples_updated",
];

/// SQL syntax that sqlparser reads as a function call but PostgreSQL evaluates itself (no
/// `pg_proc` entry to look up).
pub const SYNTAX: &[&str] = &[
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "current_user",
    "current_role",
    "session_user",
    "user",
    "current_catalog",
    "system_user",
    "xmlelement",
    "xmlforest",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmlconcat",
    "row",
    "array",
    "grouping",
];

/// A finding for a built-in by name (whatever the catalog says), with why.
pub fn named_finding(name: &str) -> Option<(RuleId, &'static str)> {
    use RuleId as R;
    let (rule, why) = match name {
        "pg_terminate_backend" => (R::DangerousFunction, "terminates another session"),
        "pg_cancel_backend" => (R::DangerousFunction, "cancels another session's query"),
        "pg_read_file" | "pg_read_binary_file" | "pg_read_file_old" => {
            (R::DangerousFunction, "reads a file on the database server")
        }
        "pg_ls_dir"
        | "pg_ls_logdir"
        | "pg_ls_waldir"
        | "pg_ls_tmpdir"
        | "pg_ls_archive_statusdir"
        | "pg_logdir_ls"
        | "pg_ls_logicalmapdir"
        | "pg_ls_logicalsnapdir"
        | "pg_ls_replslotdir" => (
            R::DangerousFunction,
            "lists a directory on the database server",
        ),
        "pg_stat_file" => (
            R::DangerousFunction,
            "inspects a file on the database server",
        ),
        "lo_import" => (
            R::DangerousFunction,
            "reads a server file into a large object",
        ),
        "lo_export" => (
            R::DangerousFunction,
            "writes a large object to a server file",
        ),
        "pg_file_write" | "pg_file_rename" | "pg_file_unlink" | "pg_file_sync" => (
            R::DangerousFunction,
            "writes files on the database server (adminpack)",
        ),
        "dblink" | "dblink_exec" | "dblink_connect" | "dblink_connect_u" | "dblink_send_query"
        | "dblink_open" | "dblink_fetch" | "dblink_get_result" => {
            (R::DangerousFunction, "runs SQL over another connection")
        }
        "pg_reload_conf" => (R::DangerousFunction, "reloads the server configuration"),
        "pg_rotate_logfile" | "pg_rotate_logfile_old" => {
            (R::DangerousFunction, "rotates the server log")
        }
        "pg_promote" => (R::DangerousFunction, "promotes a standby"),
        "pg_switch_wal" => (R::DangerousFunction, "forces a WAL switch"),
        "pg_create_restore_point" => (R::DangerousFunction, "creates a restore point"),
        "pg_backup_start" | "pg_backup_stop" | "pg_start_backup" | "pg_stop_backup" => {
            (R::DangerousFunction, "starts or stops a backup")
        }
        "pg_wal_replay_pause" | "pg_wal_replay_resume" => {
            (R::DangerousFunction, "pauses or resumes WAL replay")
        }
        "pg_create_logical_replication_slot"
        | "pg_create_physical_replication_slot"
        | "pg_drop_replication_slot"
        | "pg_copy_logical_replication_slot"
        | "pg_copy_physical_replication_slot"
        | "pg_replication_slot_advance"
        | "pg_logical_slot_get_changes"
        | "pg_logical_slot_get_binary_changes"
        | "pg_logical_slot_peek_changes"
        | "pg_logical_slot_peek_binary_changes"
        | "pg_logical_emit_message" => (
            R::DangerousFunction,
            "works on replication slots or the WAL",
        ),
        "pg_stat_reset"
        | "pg_stat_reset_shared"
        | "pg_stat_reset_single_table_counters"
        | "pg_stat_reset_single_function_counters"
        | "pg_stat_reset_slru"
        | "pg_stat_reset_replication_slot"
        | "pg_stat_reset_subscription_stats" => {
            (R::DangerousFunction, "resets the server's statistics")
        }
        "pg_log_backend_memory_contexts" => (
            R::DangerousFunction,
            "writes another session's memory to the server log",
        ),
        // SQL given as text runs where the analysis cannot see it.
        "query_to_xml"
        | "query_to_xml_and_xmlschema"
        | "query_to_xmlschema"
        | "cursor_to_xml"
        | "cursor_to_xmlschema"
        | "ts_rewrite"
        | "ts_stat" => (
            R::SqlFromText,
            "runs SQL given as a string, which this analysis cannot see",
        ),
        "table_to_xml"
        | "table_to_xml_and_xmlschema"
        | "table_to_xmlschema"
        | "schema_to_xml"
        | "schema_to_xml_and_xmlschema"
        | "schema_to_xmlschema"
        | "database_to_xml"
        | "database_to_xml_and_xmlschema"
        | "database_to_xmlschema" => (
            R::SqlFromText,
            "reads whole tables, schemas or databases named as a value",
        ),
        "setval" => (R::SideEffectFunction, "sets a sequence"),
        "pg_notify" => (R::SideEffectFunction, "notifies every listening session"),
        "lo_create" | "lo_creat" | "lo_unlink" | "lo_put" | "lo_from_bytea" | "lo_truncate"
        | "lo_truncate64" | "lowrite" | "lo_open" | "lo_close" | "lo_lseek" | "lo_lseek64"
        | "lo_tell" | "lo_tell64" | "loread" | "lo_get" => {
            (R::SideEffectFunction, "works on large objects")
        }
        "brin_summarize_new_values"
        | "brin_summarize_range"
        | "brin_desummarize_range"
        | "gin_clean_pending_list" => (R::SideEffectFunction, "maintains an index"),
        "pg_advisory_lock"
        | "pg_advisory_lock_shared"
        | "pg_advisory_xact_lock"
        | "pg_advisory_xact_lock_shared"
        | "pg_try_advisory_lock"
        | "pg_try_advisory_lock_shared"
        | "pg_try_advisory_xact_lock"
        | "pg_try_advisory_xact_lock_shared"
        | "pg_advisory_unlock"
        | "pg_advisory_unlock_shared"
        | "pg_advisory_unlock_all" => (R::AdvisoryLock, "takes or releases an advisory lock"),
        "pg_sleep" | "pg_sleep_for" | "pg_sleep_until" => {
            (R::Sleep, "keeps the session (and what it locks) busy")
        }
        _ => return None,
    };
    Some((rule, why))
}

fn builtin_stable() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        include_str!("pg_builtin_functions.txt")
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// What is known without a catalog: PostgreSQL's own non-volatile functions and the harmless
/// volatile ones are reads; anything else might be user code.
pub fn without_catalog(call: &FunctionCall) -> Class {
    if call.attribute {
        // Almost always a column; only the catalog can tell.
        return Class::NotAFunction;
    }
    let builtin = matches!(call.schema.as_deref(), None | Some("pg_catalog"));
    if builtin
        && (builtin_stable().contains(call.name.as_str())
            || SAFE_VOLATILE.contains(&call.name.as_str())
            || SYNTAX.contains(&call.name.as_str()))
    {
        return Class::Read;
    }
    Class::Write(format!(
        "{} is not a built-in known to be a read, and no catalog was asked",
        shown(call)
    ))
}

/// One `pg_proc` row of a function with a called name.
#[derive(Clone, Debug)]
pub struct ProcRow {
    pub schema: String,
    pub name: String,
    /// `i`, `s` or `v`.
    pub volatility: char,
    pub security_definer: bool,
    pub language: String,
    pub args: usize,
}

/// What the catalog's rows for a name say about a call. Every overload counts, in every schema
/// that could be searched (a superset of any `search_path` resolution), so a volatile overload
/// anywhere makes the call a write: imprecise in the safe direction only.
pub fn from_catalog(call: &FunctionCall, rows: &[ProcRow]) -> Class {
    if call.schema.is_none() && !call.attribute && SYNTAX.contains(&call.name.as_str()) {
        return Class::Read;
    }
    let rows: Vec<&ProcRow> = rows
        .iter()
        .filter(|r| r.name == call.name)
        .filter(|r| call.schema.as_ref().is_none_or(|s| *s == r.schema))
        .filter(|r| !call.attribute || r.args == 1)
        .collect();
    if rows.is_empty() {
        return if call.attribute {
            Class::NotAFunction
        } else {
            Class::Write(format!("{} is not in the database's catalog", shown(call)))
        };
    }
    for r in rows {
        let builtin = r.schema == "pg_catalog" || r.schema == "information_schema";
        let why = if builtin {
            (r.volatility == 'v' && !SAFE_VOLATILE.contains(&r.name.as_str()))
                .then_some("a volatile built-in")
        } else if r.security_definer {
            Some("runs with its owner's privileges (SECURITY DEFINER)")
        } else if r.language == "c" || r.language == "internal" {
            Some("user code in C, whose volatility is only declared")
        } else if r.volatility == 'v' {
            Some("a volatile function")
        } else {
            None
        };
        if let Some(why) = why {
            return Class::Write(format!("{}.{} is {why}", r.schema, r.name));
        }
    }
    Class::Read
}

fn shown(call: &FunctionCall) -> String {
    match &call.schema {
        Some(s) => format!("{s}.{}", call.name),
        None => call.name.clone(),
    }
}

/// Recomputes the [`RuleId::VolatileFunction`] findings of `analysis` with `classify`: a
/// statement that would otherwise be a read and calls something that is not shown to be a read
/// is a write.
pub fn resolve(analysis: &mut Analysis, classify: impl Fn(&FunctionCall) -> Class) {
    analysis
        .findings
        .retain(|f| f.rule != RuleId::VolatileFunction);
    for call in &analysis.functions {
        let read_statement = analysis
            .statements
            .get(call.statement)
            .is_some_and(|k| !k.is_write());
        // Built-ins with a finding of their own are decided by it (whatever the schema: a
        // same-named function elsewhere gets the finding too).
        let named = named_finding(&call.name).is_some() || call.name == "set_config";
        if !read_statement || named {
            continue;
        }
        if let Class::Write(why) = classify(call) {
            let finding = Finding {
                rule: RuleId::VolatileFunction,
                statement: call.statement,
                reason: format!("calls {}: {why}", shown(call)),
            };
            if !analysis.findings.contains(&finding) {
                analysis.findings.push(finding);
            }
        }
    }
}

/// Whether the statement calls code that is not PostgreSQL's own (the session then waits for
/// its answer before deciding the next statement: that code may change what sluice pins).
pub fn calls_user_code(analysis: &Analysis, classify: impl Fn(&FunctionCall) -> Class) -> bool {
    analysis.functions.iter().any(|c| {
        let name = c.name.as_str();
        let builtin = matches!(c.schema.as_deref(), None | Some("pg_catalog"))
            && (builtin_stable().contains(name)
                || SAFE_VOLATILE.contains(&name)
                || SYNTAX.contains(&name)
                || named_finding(name).is_some());
        !builtin && (!c.attribute || classify(c) != Class::NotAFunction)
    })
}

/// Whether the catalog's rows for a call include a function that is not PostgreSQL's own.
pub fn user_code_in_catalog(call: &FunctionCall, rows: &[ProcRow]) -> bool {
    rows.iter()
        .filter(|r| r.name == call.name)
        .filter(|r| call.schema.as_ref().is_none_or(|s| *s == r.schema))
        .filter(|r| !call.attribute || r.args == 1)
        .any(|r| r.schema != "pg_catalog" && r.schema != "information_schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(schema: Option<&str>, name: &str, attribute: bool) -> FunctionCall {
        FunctionCall {
            statement: 0,
            schema: schema.map(str::to_string),
            name: name.into(),
            attribute,
        }
    }

    fn row(schema: &str, name: &str, v: char, definer: bool, lang: &str, args: usize) -> ProcRow {
        ProcRow {
            schema: schema.into(),
            name: name.into(),
            volatility: v,
            security_definer: definer,
            language: lang.into(),
            args,
        }
    }

    #[test]
    fn the_builtin_list_knows_common_functions() {
        for f in ["count", "lower", "now", "coalesce_not_a_function"] {
            let c = without_catalog(&call(None, f, false));
            assert_eq!(c == Class::Read, f != "coalesce_not_a_function", "{f}");
        }
        assert_eq!(without_catalog(&call(None, "random", false)), Class::Read);
        assert!(matches!(
            without_catalog(&call(None, "nextval", false)),
            Class::Write(_)
        ));
        assert!(matches!(
            without_catalog(&call(Some("public"), "lower", false)),
            Class::Write(_)
        ));
        assert_eq!(
            without_catalog(&call(None, "purge", true)),
            Class::NotAFunction
        );
    }

    #[test]
    fn any_overload_that_is_not_a_read_makes_the_call_a_write() {
        let rows = vec![
            row("pg_catalog", "lower", 'i', false, "internal", 1),
            row("public", "lower", 'v', false, "plpgsql", 1),
            row("public", "tidy", 's', false, "sql", 0),
            row("public", "boss", 's', true, "sql", 0),
            row("public", "native", 'i', false, "c", 1),
            row("public", "purge", 'v', false, "plpgsql", 1),
            row("public", "two", 'v', false, "sql", 2),
        ];
        assert!(matches!(
            from_catalog(&call(None, "lower", false), &rows),
            Class::Write(_)
        ));
        assert_eq!(
            from_catalog(&call(Some("pg_catalog"), "lower", false), &rows),
            Class::Read
        );
        assert_eq!(from_catalog(&call(None, "tidy", false), &rows), Class::Read);
        assert!(
            matches!(from_catalog(&call(None, "boss", false), &rows), Class::Write(w) if w.contains("SECURITY DEFINER"))
        );
        assert!(matches!(
            from_catalog(&call(None, "native", false), &rows),
            Class::Write(_)
        ));
        assert!(matches!(
            from_catalog(&call(None, "purge", true), &rows),
            Class::Write(_)
        ));
        assert_eq!(
            from_catalog(&call(None, "two", true), &rows),
            Class::NotAFunction
        );
        assert_eq!(
            from_catalog(&call(None, "email", true), &rows),
            Class::NotAFunction
        );
        assert!(
            matches!(from_catalog(&call(None, "gone", false), &rows), Class::Write(w) if w.contains("not in the database's catalog"))
        );
        let nextval = [row("pg_catalog", "nextval", 'v', false, "internal", 1)];
        assert!(matches!(
            from_catalog(&call(None, "nextval", false), &nextval),
            Class::Write(_)
        ));
        let random = [row("pg_catalog", "random", 'v', false, "internal", 0)];
        assert_eq!(
            from_catalog(&call(None, "random", false), &random),
            Class::Read
        );
    }
}
