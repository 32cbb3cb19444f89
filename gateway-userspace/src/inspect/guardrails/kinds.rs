//! What kind of statement it is (for policies), and whether PostgreSQL runs it as a read.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, SetExpr, Statement, Visit, Visitor};

use super::{StatementKind, fold};

/// Whether PostgreSQL runs the statement in a read-only transaction (by its syntax; functions
/// it calls are judged apart). Statements that cannot run inside a transaction block at all
/// (VACUUM) and those a read-only transaction allows (SET, LISTEN, NOTIFY) count as reads: a
/// session runs them as they are.
pub(super) fn reads(s: &Statement, k: StatementKind) -> bool {
    use StatementKind as K;
    match s {
        Statement::Copy {
            to: true, source, ..
        } => match source {
            sqlparser::ast::CopySource::Table { .. } => true,
            sqlparser::ast::CopySource::Query(q) => query_kind(q) == K::Select,
        },
        Statement::Explain { statement, .. } if explain_executes(s) => {
            reads(statement, kind(statement))
        }
        Statement::Declare { .. } => true,
        _ => matches!(
            k,
            K::Select
                | K::Show
                | K::Explain
                | K::Transaction
                | K::Set
                | K::Prepare
                | K::Cursor
                | K::Listen
                | K::Notify
                | K::Maintenance
        ),
    }
}

pub(super) fn kind(s: &Statement) -> StatementKind {
    use StatementKind as K;
    match s {
        Statement::Query(q) => query_kind(q),
        Statement::Insert { .. } => K::Insert,
        Statement::Update { .. } => K::Update,
        Statement::Delete { .. } => K::Delete,
        Statement::Merge { .. } => K::Merge,
        Statement::Copy { .. } | Statement::CopyIntoSnowflake { .. } => K::Copy,
        // EXPLAIN ANALYZE runs the statement: it is whatever the statement is.
        Statement::Explain { statement, .. } if explain_executes(s) => kind(statement),
        Statement::Explain { .. } | Statement::ExplainTable { .. } => K::Explain,
        Statement::Grant { .. }
        | Statement::Revoke { .. }
        | Statement::Deny { .. }
        | Statement::CreateRole { .. }
        | Statement::AlterRole { .. }
        | Statement::CreateUser { .. }
        | Statement::AlterUser { .. } => K::Dcl,
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => K::Transaction,
        Statement::Set { .. } | Statement::Reset { .. } => K::Set,
        Statement::ShowFunctions { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowProcessList { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowCharset { .. }
        | Statement::ShowObjects { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowCollation { .. } => K::Show,
        Statement::Call { .. } => K::Call,
        Statement::Prepare { .. } | Statement::Deallocate { .. } => K::Prepare,
        Statement::Execute { .. } => K::Execute,
        Statement::Declare { .. } | Statement::Fetch { .. } | Statement::Close { .. } => K::Cursor,
        Statement::LISTEN { .. } | Statement::UNLISTEN { .. } => K::Listen,
        Statement::NOTIFY { .. } => K::Notify,
        Statement::Lock(_) => K::Lock,
        Statement::Vacuum(_) | Statement::Analyze(_) => K::Maintenance,
        // DISCARD ALL resets the session like RESET ALL (and deallocates, closes, unlistens).
        Statement::Discard { .. } => K::Set,
        _ if drop_like(s) || alter_like(s) || create_like(s) => K::Ddl,
        Statement::Truncate { .. } | Statement::Comment { .. } => K::Ddl,
        _ => K::Other,
    }
}

pub(super) fn query_kind(q: &Query) -> StatementKind {
    let kind = query_kind_unlocked(q);
    // `SELECT ... FOR UPDATE` anywhere in it (also in a subquery or a CTE) takes row locks.
    if kind == StatementKind::Select && row_locks(q) {
        StatementKind::Lock
    } else {
        kind
    }
}

fn row_locks(q: &Query) -> bool {
    struct Locks;
    impl Visitor for Locks {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if q.locks.is_empty() {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        }
    }
    q.visit(&mut Locks).is_break()
}

fn query_kind_unlocked(q: &Query) -> StatementKind {
    if let Some(k) = set_expr_dml_kind(&q.body) {
        return k;
    }
    // PostgreSQL allows data-modifying CTEs only at the top level, so one level is enough.
    if let Some(with) = &q.with {
        for cte in &with.cte_tables {
            if let Some(k) = set_expr_dml_kind(&cte.query.body) {
                return k;
            }
            let inner = query_kind(&cte.query);
            if inner != StatementKind::Select {
                return inner;
            }
        }
    }
    match &*q.body {
        // SELECT ... INTO creates a table.
        SetExpr::Select(s) if s.into.is_some() => StatementKind::Ddl,
        _ => StatementKind::Select,
    }
}

fn set_expr_dml_kind(body: &SetExpr) -> Option<StatementKind> {
    match body {
        SetExpr::Insert(_) => Some(StatementKind::Insert),
        SetExpr::Update(_) => Some(StatementKind::Update),
        SetExpr::Delete(_) => Some(StatementKind::Delete),
        SetExpr::Merge(_) => Some(StatementKind::Merge),
        SetExpr::Query(q) => match query_kind(q) {
            StatementKind::Select => None,
            k => Some(k),
        },
        _ => None,
    }
}

/// True unless `s` is an `EXPLAIN` that only plans. The server takes `ANALYZE` and `ANALYSE`
/// (with any boolean spelling: `1`, `'on'`, `yes`), so only a known option with a literal
/// value counts as planning; `ANALYZE` only with a literal false. An unknown option, an option
/// whose value is not a literal, a second `ANALYZE` after `ANALYZE false`: all count as running
/// the statement, which is the safe side (the server rejects what it does not know anyway).
pub(super) fn explain_executes(s: &Statement) -> bool {
    let Statement::Explain {
        analyze, options, ..
    } = s
    else {
        return true;
    };
    if *analyze {
        return true;
    }
    options.iter().flatten().any(|o| {
        let name = o.name.value.to_ascii_lowercase();
        let literal = |e: &Expr| matches!(e, Expr::Value(_) | Expr::Identifier(_));
        match name.as_str() {
            "analyze" | "analyse" => match &o.arg {
                None => true,
                Some(arg) => !literal(arg) || fold::option_bool(arg) != Some(false),
            },
            _ if PLANNING_OPTIONS.contains(&name.as_str()) => {
                o.arg.as_ref().is_some_and(|a| !literal(a))
            }
            _ => true,
        }
    })
}

/// EXPLAIN options that only change what the plan shows (PostgreSQL 15-17).
const PLANNING_OPTIONS: &[&str] = &[
    "verbose",
    "costs",
    "settings",
    "buffers",
    "wal",
    "timing",
    "summary",
    "format",
    "generic_plan",
    "memory",
    "serialize",
];

pub(super) fn drop_like(s: &Statement) -> bool {
    matches!(
        s,
        Statement::Drop { .. }
            | Statement::DropFunction { .. }
            | Statement::DropDomain { .. }
            | Statement::DropProcedure { .. }
            | Statement::DropSecret { .. }
            | Statement::DropPolicy { .. }
            | Statement::DropConnector { .. }
            | Statement::DropExtension { .. }
            | Statement::DropOperator { .. }
            | Statement::DropOperatorFamily { .. }
            | Statement::DropOperatorClass { .. }
            | Statement::DropTrigger { .. }
            | Statement::DetachDuckDBDatabase { .. }
    )
}

pub(super) fn alter_like(s: &Statement) -> bool {
    matches!(
        s,
        Statement::AlterTable { .. }
            | Statement::AlterSchema { .. }
            | Statement::AlterIndex { .. }
            | Statement::AlterView { .. }
            | Statement::AlterFunction { .. }
            | Statement::AlterType { .. }
            | Statement::AlterCollation { .. }
            | Statement::AlterOperator { .. }
            | Statement::AlterOperatorFamily { .. }
            | Statement::AlterOperatorClass { .. }
            | Statement::AlterTextSearch { .. }
            | Statement::AlterRole { .. }
            | Statement::AlterPolicy { .. }
            | Statement::AlterConnector { .. }
            | Statement::AlterSession { .. }
            | Statement::AlterUser { .. }
            | Statement::RenameTable { .. }
    )
}

pub(super) fn create_like(s: &Statement) -> bool {
    matches!(
        s,
        Statement::CreateView { .. }
            | Statement::CreateTable { .. }
            | Statement::CreateVirtualTable { .. }
            | Statement::CreateIndex { .. }
            | Statement::CreateSecret { .. }
            | Statement::CreateServer { .. }
            | Statement::CreatePolicy { .. }
            | Statement::CreateConnector { .. }
            | Statement::CreateOperator { .. }
            | Statement::CreateOperatorFamily { .. }
            | Statement::CreateOperatorClass { .. }
            | Statement::CreateTextSearch { .. }
            | Statement::CreateExtension { .. }
            | Statement::CreateCollation { .. }
            | Statement::CreateSchema { .. }
            | Statement::CreateDatabase { .. }
            | Statement::CreateFunction { .. }
            | Statement::CreateTrigger { .. }
            | Statement::CreateProcedure { .. }
            | Statement::CreateMacro { .. }
            | Statement::CreateStage { .. }
            | Statement::CreateFileFormat { .. }
            | Statement::CreateWarehouse { .. }
            | Statement::CreateSequence { .. }
            | Statement::CreateDomain { .. }
            | Statement::CreateType { .. }
            | Statement::AttachDatabase { .. }
            | Statement::AttachDuckDBDatabase { .. }
    )
}
