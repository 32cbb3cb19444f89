//! The rules, as a walk over one parsed statement and everything nested in it.

use std::ops::ControlFlow;

use sqlparser::ast::{
    CopyTarget, Delete, Expr, FromTable, FunctionArg, FunctionArgExpr, FunctionArguments, Merge,
    MergeAction, MergeClauseKind, ObjectName, ObjectNamePart, Set, Statement, TableFactor, Update,
    Visit, Visitor,
};

use super::{
    Analysis, Finding, PreparedUse, RuleId, fold,
    functions::{self, FunctionCall},
    kinds::{alter_like, drop_like, explain_executes, kind, reads},
    settings,
};

/// Reasons quote SQL; keep them short enough for an error message and an audit line.
const MAX_REASON_SQL: usize = 160;

/// The one table a plain DML statement changes (see [`Analysis::simple_dml`]).
fn simple_dml(s: &Statement) -> Option<(String, String)> {
    fn plain(t: &sqlparser::ast::TableWithJoins) -> Option<&ObjectName> {
        match &t.relation {
            TableFactor::Table {
                name, args: None, ..
            } if t.joins.is_empty() => Some(name),
            _ => None,
        }
    }
    let name = match s {
        Statement::Update(u) => plain(&u.table)?,
        Statement::Delete(d) => match &d.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t)
                if t.len() == 1 && d.tables.is_empty() =>
            {
                plain(&t[0])?
            }
            _ => return None,
        },
        Statement::Merge(m) => match &m.table {
            TableFactor::Table {
                name, args: None, ..
            } => name,
            _ => return None,
        },
        Statement::Insert(i) if i.on.is_none() => match &i.table {
            sqlparser::ast::TableObject::TableName(n) => n,
            _ => return None,
        },
        _ => return None,
    };
    Some((name.to_string(), ident_name(last_ident(name)?)))
}

pub(super) fn analyze_statement(statement: &Statement, out: &mut Analysis) {
    let index = out.statements.len();
    let k = kind(statement);
    out.statements.push(k);
    out.reads.push(reads(statement, k));
    match statement {
        Statement::StartTransaction { modes, .. } => out.begins.push((
            index,
            modes.iter().any(|m| {
                matches!(
                    m,
                    sqlparser::ast::TransactionMode::AccessMode(
                        sqlparser::ast::TransactionAccessMode::ReadOnly
                    )
                )
            }),
        )),
        Statement::Copy {
            to: false,
            target: CopyTarget::Stdin,
            ..
        } => out.copy_in.push(index),
        _ => {}
    }
    if index == 0 {
        out.simple_dml = simple_dml(statement);
    }
    let mut walker = Walker {
        index,
        findings: &mut out.findings,
        prepared: &mut out.prepared,
        functions: &mut out.functions,
        suppressed: 0,
    };
    // The walker never breaks; the result carries nothing.
    let _ = statement.visit(&mut walker);
}

struct Walker<'a> {
    index: usize,
    findings: &'a mut Vec<Finding>,
    prepared: &'a mut Vec<PreparedUse>,
    functions: &'a mut Vec<FunctionCall>,
    /// Depth of plain `EXPLAIN`s we are inside: nothing under them runs.
    suppressed: usize,
}

impl Walker<'_> {
    fn report(&mut self, rule: RuleId, reason: String) {
        if self.suppressed > 0 {
            return;
        }
        let finding = Finding {
            rule,
            statement: self.index,
            reason,
        };
        // The same call twice in one statement is one finding.
        if !self.findings.contains(&finding) {
            self.findings.push(finding);
        }
    }

    fn check_statement(&mut self, s: &Statement) {
        if let Some(why) = settings::refused_statement(s) {
            self.report(
                RuleId::PinnedSetting,
                short(format!("{}: {why}", snippet(s))),
            );
        }
        if let Some(why) = settings::timeout_statement(s) {
            self.report(
                RuleId::TimeoutSetting,
                short(format!("{}: {why}", snippet(s))),
            );
        }
        if drop_like(s) {
            self.report(RuleId::Drop, snippet(s));
        } else if alter_like(s) {
            self.report(RuleId::Alter, snippet(s));
        }
        match s {
            Statement::Truncate { .. } => self.report(RuleId::Truncate, snippet(s)),
            Statement::Delete(d) => self.check_delete(d),
            Statement::Update(u) => self.check_update(u),
            Statement::Merge(m) => self.check_merge(m),
            Statement::Grant { .. } | Statement::Revoke { .. } | Statement::Deny { .. } => {
                self.report(RuleId::GrantRevoke, snippet(s))
            }
            Statement::Copy { target, .. } => self.check_copy(s, target),
            Statement::CreateFunction { .. } | Statement::CreateProcedure { .. } => {
                self.report(RuleId::CreateFunction, snippet(s))
            }
            Statement::Set(set) => self.check_set(s, set),
            Statement::CreateTrigger(_) => self.report(RuleId::CreateTrigger, snippet(s)),
            Statement::CreateExtension(_) => self.report(RuleId::CreateExtension, snippet(s)),
            Statement::Load { .. } => self.report(RuleId::LoadLibrary, snippet(s)),
            Statement::Call(f) => {
                if let FunctionArguments::List(list) = &f.args {
                    self.check_call(&f.name, &list.args);
                } else {
                    self.check_call(&f.name, &[]);
                }
            }
            _ => {}
        }
    }

    fn check_delete(&mut self, d: &Delete) {
        let tables = match &d.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
        };
        let target = tables
            .iter()
            .map(|t| t.relation.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        match &d.selection {
            None => self.report(
                RuleId::DeleteWithoutWhere,
                format!("DELETE FROM {target} without WHERE"),
            ),
            Some(w) if fold::always_true(w) => self.report(
                RuleId::DeleteWithoutWhere,
                short(format!(
                    "DELETE FROM {target} with an always-true WHERE {w}"
                )),
            ),
            Some(_) => {}
        }
    }

    fn check_update(&mut self, u: &Update) {
        let target = &u.table.relation;
        match &u.selection {
            None => self.report(
                RuleId::UpdateWithoutWhere,
                format!("UPDATE {target} without WHERE"),
            ),
            Some(w) if fold::always_true(w) => self.report(
                RuleId::UpdateWithoutWhere,
                short(format!("UPDATE {target} with an always-true WHERE {w}")),
            ),
            Some(_) => {}
        }
    }

    /// `MERGE ... ON true WHEN MATCHED THEN DELETE` deletes every row, like a bare DELETE.
    fn check_merge(&mut self, m: &Merge) {
        if !fold::always_true(&m.on) {
            return;
        }
        for clause in &m.clauses {
            if clause.clause_kind != MergeClauseKind::Matched
                || clause
                    .predicate
                    .as_ref()
                    .is_some_and(|p| !fold::always_true(p))
            {
                continue;
            }
            let target = &m.table;
            match &clause.action {
                MergeAction::Delete { .. } => self.report(
                    RuleId::DeleteWithoutWhere,
                    format!("MERGE INTO {target} ... ON {} THEN DELETE", m.on),
                ),
                MergeAction::Update(_) => self.report(
                    RuleId::UpdateWithoutWhere,
                    format!("MERGE INTO {target} ... ON {} THEN UPDATE", m.on),
                ),
                _ => {}
            }
        }
    }

    fn check_copy(&mut self, s: &Statement, target: &CopyTarget) {
        match target {
            CopyTarget::Program { .. } => self.report(RuleId::CopyProgram, snippet(s)),
            CopyTarget::File { .. } => self.report(RuleId::CopyFile, snippet(s)),
            CopyTarget::Stdin | CopyTarget::Stdout => {}
        }
    }

    fn check_set(&mut self, s: &Statement, set: &Set) {
        match set {
            Set::SetRole { .. } | Set::SetSessionAuthorization(_) => {
                self.report(RuleId::SetRole, snippet(s))
            }
            // `SET role = x` and `SET session_authorization = x` are the same as the keyword
            // forms; GUC names are case-insensitive even when quoted.
            Set::SingleAssignment { variable, .. } if names_identity(variable) => {
                self.report(RuleId::SetRole, snippet(s))
            }
            Set::MultipleAssignments { assignments }
                if assignments.iter().any(|a| names_identity(&a.name)) =>
            {
                self.report(RuleId::SetRole, snippet(s))
            }
            _ => {}
        }
    }

    fn check_call(&mut self, name: &ObjectName, args: &[FunctionArg]) {
        let Some(ident) = last_ident(name) else {
            return;
        };
        let func = if ident.quote_style.is_some() {
            // Quoted identifiers are case-sensitive in PostgreSQL. sqlparser reads
            // `U&"pg_read_\0066ile"(...)` as `U & "pg_read_\0066ile"(...)` without decoding the
            // escapes, so decode them here; a plain quoted name with a backslash only gets a
            // false positive.
            if ident.value.contains('\\') {
                decode_unicode_escapes(&ident.value).unwrap_or_else(|| ident.value.clone())
            } else {
                ident.value.clone()
            }
        } else {
            ident.value.to_ascii_lowercase()
        };
        if self.suppressed == 0 {
            let schema = match name.0.as_slice() {
                [.., ObjectNamePart::Identifier(schema), _] => Some(ident_name(schema)),
                _ => None,
            };
            let call = FunctionCall {
                statement: self.index,
                schema,
                name: func.clone(),
                attribute: false,
            };
            if !self.functions.contains(&call) {
                self.functions.push(call);
            }
        }
        if func == "set_config" {
            return self.check_set_config(name, args);
        }
        if let Some((rule, why)) = functions::named_finding(&func) {
            self.report(rule, format!("calls {name} ({why})"));
        }
    }

    /// `c.purge` and `(c).purge`: PostgreSQL runs `purge(c)` when `c` has no such column.
    fn note_attribute(&mut self, field: &sqlparser::ast::Ident) {
        if self.suppressed > 0 {
            return;
        }
        let call = FunctionCall {
            statement: self.index,
            schema: None,
            name: ident_name(field),
            attribute: true,
        };
        if !self.functions.contains(&call) {
            self.functions.push(call);
        }
    }

    fn check_set_config(&mut self, name: &ObjectName, args: &[FunctionArg]) {
        let setting = args.iter().enumerate().find_map(|(i, a)| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) if i == 0 => Some(e),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } if name.value.eq_ignore_ascii_case("setting_name") => Some(e),
            _ => None,
        });
        let value = args.iter().enumerate().find_map(|(i, a)| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) if i == 1 => Some(e),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } if name.value.eq_ignore_ascii_case("new_value") => Some(e),
            _ => None,
        });
        match setting.and_then(fold::const_string) {
            Some(guc) if is_identity_guc(&guc) => self.report(
                RuleId::SetRole,
                format!("calls {name}('{guc}', ...): changes the session's role"),
            ),
            Some(guc) if let Some(why) = settings::refused_change(&guc, value) => self.report(
                RuleId::PinnedSetting,
                short(format!("calls {name}('{guc}', ...): {why}")),
            ),
            Some(guc) if settings::is_timeout(&guc) => self.report(
                RuleId::TimeoutSetting,
                format!(
                    "calls {name}('{guc}', ...): changes a limit the gateway sets on the session"
                ),
            ),
            Some(guc) => self.report(
                RuleId::SideEffectFunction,
                format!("calls {name}('{guc}', ...): changes a session setting"),
            ),
            None => self.report(
                RuleId::DangerousFunction,
                format!("calls {name} with a setting name that is not a constant"),
            ),
        }
    }
}

impl Walker<'_> {
    /// PREPARE / EXECUTE / DEALLOCATE, for the session to resolve (an EXECUTE inside an EXPLAIN
    /// that only plans runs nothing and is not noted: the caller skips suppressed statements).
    fn note_prepared(&mut self, s: &Statement) {
        let statement = self.index;
        let used = match s {
            Statement::Prepare {
                name, statement: p, ..
            } => PreparedUse::Prepare {
                statement,
                name: ident_name(name),
                sql: p.to_string(),
            },
            Statement::Execute {
                name: Some(name), ..
            } => match last_ident(name) {
                Some(n) => PreparedUse::Execute {
                    statement,
                    name: ident_name(n),
                },
                None => return,
            },
            Statement::Deallocate { name, .. } => PreparedUse::Deallocate {
                statement,
                name: (!(name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all")))
                    .then(|| ident_name(name)),
            },
            Statement::Discard {
                object_type: sqlparser::ast::DiscardObject::ALL,
            } => PreparedUse::Deallocate {
                statement,
                name: None,
            },
            _ => return,
        };
        self.prepared.push(used);
    }
}

/// An identifier as PostgreSQL names the object: unquoted ones fold to lower case.
fn ident_name(i: &sqlparser::ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_ascii_lowercase()
    }
}

impl Visitor for Walker<'_> {
    type Break = ();

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        self.check_statement(s);
        if self.suppressed == 0 {
            self.note_prepared(s);
        }
        if !explain_executes(s) {
            self.suppressed += 1;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        if !explain_executes(s) {
            self.suppressed -= 1;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::Function(f) => match &f.args {
                FunctionArguments::List(list) => self.check_call(&f.name, &list.args),
                _ => self.check_call(&f.name, &[]),
            },
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                self.note_attribute(parts.last().expect("two parts"))
            }
            Expr::CompoundFieldAccess { access_chain, .. } => {
                for a in access_chain {
                    if let sqlparser::ast::AccessExpr::Dot(Expr::Identifier(field)) = a {
                        self.note_attribute(field);
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    /// Set-returning functions in FROM (`SELECT * FROM dblink(...)`) are not expressions.
    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        match t {
            TableFactor::Table {
                name,
                args: Some(args),
                ..
            } => self.check_call(name, &args.args),
            TableFactor::Function { name, args, .. } => self.check_call(name, args),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn names_identity(variable: &ObjectName) -> bool {
    last_ident(variable).is_some_and(|n| is_identity_guc(&n.value))
}

fn is_identity_guc(name: &str) -> bool {
    let name = name.trim();
    name.eq_ignore_ascii_case("role") || name.eq_ignore_ascii_case("session_authorization")
}

fn last_ident(name: &ObjectName) -> Option<&sqlparser::ast::Ident> {
    match name.0.last()? {
        ObjectNamePart::Identifier(i) => Some(i),
        ObjectNamePart::Function(_) => None,
    }
}

/// PostgreSQL's `U&"..."` escapes with the default escape character: `\XXXX`, `\+XXXXXX`, `\\`.
fn decode_unicode_escapes(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let (digits, skip) = if let Some(r) = rest.strip_prefix('+') {
            (r.get(..6)?, 7)
        } else if rest.starts_with('\\') {
            out.push('\\');
            rest = &rest[1..];
            continue;
        } else {
            (rest.get(..4)?, 4)
        };
        out.push(char::from_u32(u32::from_str_radix(digits, 16).ok()?)?);
        rest = &rest[skip..];
    }
    out.push_str(rest);
    Some(out)
}

/// The statement's canonical SQL, cut to a readable length.
fn snippet(s: &Statement) -> String {
    short(s.to_string())
}

fn short(mut s: String) -> String {
    if s.len() > MAX_REASON_SQL {
        let mut end = MAX_REASON_SQL;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}
