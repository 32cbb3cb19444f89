//! Settings sluice pins for the whole session ([`RuleId::PinnedSetting`]).
//!
//! The analyser reads SQL text the way a UTF-8 session with `standard_conforming_strings = on`
//! does. A session that changes how the server reads text (`standard_conforming_strings`,
//! `client_encoding`, `backslash_quote`) would run statements the analyser never saw:
//! `'\' ; DROP TABLE t ; --'` is one literal here and a DROP there. A session that turns off
//! the read-only default sluice sets for it (`default_transaction_read_only`,
//! `transaction_read_only`, `SET TRANSACTION READ WRITE`) would run misjudged reads as writes.
//! So every way to change them is refused: `SET` (any scope), `RESET`, `SET NAMES`,
//! `set_config()`, writes to the `pg_settings` view (its rules call `set_config`) and
//! `ALTER ROLE ... SET` (which applies to later sessions; sluice's startup values would still win
//! there, but nothing legitimate needs it through a gateway).
//!
//! `escape_string_warning` only adds warnings and is left alone. `RESET ALL` and `DISCARD ALL`
//! return every setting to its session default, which for these is the value sluice sent at
//! startup, so they stay allowed.

use sqlparser::ast::{
    AlterRoleOperation, Expr, ObjectName, ObjectNamePart, Reset, ResetConfig, Set, SetConfigValue,
    Statement, TableFactor, TableWithJoins, TransactionAccessMode, TransactionMode,
};

use super::fold;

/// Settings that change how the server splits and reads statement text.
const LEXING: &[&str] = &[
    "standard_conforming_strings",
    "client_encoding",
    "backslash_quote",
];

/// Settings that turn the read-only default sluice enforces off when set to false.
const READ_ONLY: &[&str] = &["default_transaction_read_only", "transaction_read_only"];

/// Limits the gateway sets on each upstream session from the policy: an agent changing one can
/// hold locks or a connection slot longer than the policy allows.
const TIMEOUTS: &[&str] = &[
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "transaction_timeout",
];

/// Whether `name` is a session limit the policy sets ([`RuleId::TimeoutSetting`]).
pub(super) fn is_timeout(name: &str) -> bool {
    TIMEOUTS.contains(&name.trim().to_ascii_lowercase().as_str())
}

/// The timeouts a statement changes (`SET`, `RESET`, `ALTER ROLE ... SET`).
pub(super) fn timeout_statement(s: &Statement) -> Option<String> {
    let names: Vec<String> = match s {
        Statement::Set(Set::SingleAssignment { variable, .. }) => {
            last(variable).into_iter().collect()
        }
        Statement::Set(Set::MultipleAssignments { assignments }) => {
            assignments.iter().filter_map(|a| last(&a.name)).collect()
        }
        Statement::Set(Set::ParenthesizedAssignments { variables, .. }) => {
            variables.iter().filter_map(last).collect()
        }
        Statement::Reset(r) => match &r.reset {
            Reset::ConfigurationParameter(n) => last(n).into_iter().collect(),
            _ => Vec::new(),
        },
        Statement::AlterRole {
            operation: AlterRoleOperation::Set { config_name, .. },
            ..
        } => last(config_name).into_iter().collect(),
        _ => Vec::new(),
    };
    names.into_iter().find(|n| is_timeout(n)).map(|n| {
        format!(
            "changes `{}`, a limit the gateway sets on the session",
            n.to_ascii_lowercase()
        )
    })
}

/// Why changing setting `name` to `value` (`None`: to its default or an unknown value) is
/// refused, if it is. GUC names are case-insensitive, also when quoted.
pub(super) fn refused_change(name: &str, value: Option<&Expr>) -> Option<String> {
    let name = name.trim().to_ascii_lowercase();
    if LEXING.contains(&name.as_str()) {
        return Some(format!(
            "changes `{name}`, which decides how the server reads statement text; sluice pins it for the session"
        ));
    }
    if READ_ONLY.contains(&name.as_str()) && value.and_then(fold::option_bool) != Some(true) {
        return Some(format!(
            "changes `{name}`: reads run read-only, and sluice alone opens read-write transactions for writes the policy allows"
        ));
    }
    None
}

/// A statement-level change of a pinned setting.
pub(super) fn refused_statement(s: &Statement) -> Option<String> {
    match s {
        Statement::Set(set) => refused_set(set),
        Statement::Reset(r) => match &r.reset {
            Reset::ConfigurationParameter(name) => refused_change(&last(name)?, None),
            Reset::ALL | Reset::SessionAuthorization => None,
        },
        Statement::AlterRole { operation, .. } => match operation {
            AlterRoleOperation::Set {
                config_name,
                config_value,
                ..
            } => {
                let value = match config_value {
                    SetConfigValue::Value(v) => Some(v),
                    _ => None,
                };
                refused_change(&last(config_name)?, value)
            }
            AlterRoleOperation::Reset {
                config_name: ResetConfig::ConfigName(name),
                ..
            } => refused_change(&last(name)?, None),
            _ => None,
        },
        Statement::Update(u) if names_pg_settings(&u.table) => Some(PG_SETTINGS.into()),
        Statement::Delete(d) => {
            let tables = match &d.from {
                sqlparser::ast::FromTable::WithFromKeyword(t)
                | sqlparser::ast::FromTable::WithoutKeyword(t) => t,
            };
            tables
                .iter()
                .any(names_pg_settings)
                .then(|| PG_SETTINGS.into())
        }
        Statement::Insert(i) => match &i.table {
            sqlparser::ast::TableObject::TableName(n) if is_pg_settings(n) => {
                Some(PG_SETTINGS.into())
            }
            _ => None,
        },
        Statement::Merge(m) => {
            matches!(&m.table, TableFactor::Table { name, .. } if is_pg_settings(name))
                .then(|| PG_SETTINGS.into())
        }
        _ => None,
    }
}

const PG_SETTINGS: &str = "writes to pg_settings, whose rules change session settings (set_config); sluice pins some of them";

fn refused_set(set: &Set) -> Option<String> {
    match set {
        Set::SingleAssignment {
            variable, values, ..
        } => refused_change(&last(variable)?, single(values)),
        Set::MultipleAssignments { assignments } => assignments
            .iter()
            .find_map(|a| refused_change(&last(&a.name)?, Some(&a.value))),
        Set::ParenthesizedAssignments { variables, values } => {
            variables.iter().enumerate().find_map(|(i, v)| {
                refused_change(&last(v)?, values.get(i).filter(|_| values.len() == variables.len()))
            })
        }
        Set::SetNames { .. } | Set::SetNamesDefault {} => refused_change("client_encoding", None),
        Set::SetTransaction { modes, .. } if read_write(modes) => Some(
            "asks for a read-write transaction: reads run read-only, and sluice alone opens read-write transactions for writes the policy allows"
                .into(),
        ),
        _ => None,
    }
}

fn single(values: &[Expr]) -> Option<&Expr> {
    match values {
        [v] => Some(v),
        _ => None,
    }
}

fn read_write(modes: &[TransactionMode]) -> bool {
    modes.iter().any(|m| {
        matches!(
            m,
            TransactionMode::AccessMode(TransactionAccessMode::ReadWrite)
        )
    })
}

/// The last part of a name, as PostgreSQL compares setting names (case-insensitively).
fn last(name: &ObjectName) -> Option<String> {
    match name.0.last()? {
        ObjectNamePart::Identifier(i) => Some(i.value.clone()),
        ObjectNamePart::Function(_) => None,
    }
}

fn is_pg_settings(name: &ObjectName) -> bool {
    last(name).is_some_and(|n| n.eq_ignore_ascii_case("pg_settings"))
}

fn names_pg_settings(t: &TableWithJoins) -> bool {
    matches!(&t.relation, TableFactor::Table { name, .. } if is_pg_settings(name))
}
