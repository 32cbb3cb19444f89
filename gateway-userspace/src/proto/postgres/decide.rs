//! Deciding a statement: the policy's decision on what it runs, with `PREPARE`, `EXECUTE` and
//! `DEALLOCATE` resolved against the session's prepared statements and the functions it calls
//! looked up in the server's catalog; and what enforcing it needs to know ([`Shape`]).

use std::sync::{Arc, Mutex};

use tracing::warn;

use super::{
    hold::{HeldStatement, SessionIdentity},
    pipeline::Shared,
    prepared::{Entry, Op, Reply},
    proc_catalog::Catalog as ProcCatalog,
};
use crate::{
    config::Action,
    conn::ConnCtx,
    inspect::{
        Dialect,
        guardrails::{
            Analysis, PreparedUse, StatementKind,
            functions::{self, FunctionCall},
        },
        policy::{Decision, Subject, decide_sql},
    },
    services::Services,
};

/// Rule name of refusals about prepared statements sluice cannot follow.
pub(super) const PREPARED_RULE: &str = "prepared-statements";

/// A decision that is not the policy's, but sluice's own (it cannot tell what would run).
pub(super) fn refusal(rule: &str, reason: String) -> Decision {
    Decision {
        action: Action::Deny,
        rule: rule.into(),
        reason,
    }
}

/// What enforcing a statement (or a batch) needs to know about it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Shape {
    /// Runs as a write (`Analysis::writes`).
    pub writes: bool,
    /// Has transaction control.
    pub controls: bool,
    /// A lone `BEGIN`/`START TRANSACTION`: `Some(read_only)`.
    pub lone_begin: Option<bool>,
    /// `COPY ... FROM STDIN`.
    pub copy_in: bool,
    /// Only SELECT / SHOW / EXPLAIN: can run read-only in a savepoint rolled back after it.
    pub plain_read: bool,
    /// Statements it has (an empty query has none).
    pub statements: usize,
    /// Calls code that is not PostgreSQL's own: the next statement waits for its answer.
    pub user_code: bool,
}

impl Shape {
    pub fn of(a: &Analysis) -> Shape {
        Shape {
            writes: a.writes(),
            controls: a.controls_transactions(),
            lone_begin: match (a.statements.as_slice(), a.begins.as_slice()) {
                ([_], [(0, read_only)]) => Some(*read_only),
                _ => None,
            },
            copy_in: !a.copy_in.is_empty(),
            plain_read: !a.statements.is_empty()
                && a.statements.iter().all(|k| {
                    matches!(
                        k,
                        StatementKind::Select | StatementKind::Show | StatementKind::Explain
                    )
                })
                && !a.writes(),
            statements: a.statements.len(),
            user_code: a.user_code,
        }
    }

    /// Two statements in one batch.
    pub fn and(self, o: Shape) -> Shape {
        Shape {
            writes: self.writes || o.writes,
            controls: self.controls || o.controls,
            lone_begin: match (self.statements, o.statements) {
                (0, _) => o.lone_begin,
                (_, 0) => self.lone_begin,
                _ => None,
            },
            copy_in: self.copy_in || o.copy_in,
            plain_read: (self.statements == 0 || self.plain_read)
                && (o.statements == 0 || o.plain_read),
            statements: self.statements + o.statements,
            user_code: self.user_code || o.user_code,
        }
    }
}

/// A simple query decided: what to record, and what it does to prepared statements once the
/// server confirms it.
pub(super) struct Decided2 {
    pub decision: Decision,
    /// The command the audit log and reviewers see: for `EXECUTE p` also what `p` is.
    pub shown: String,
    /// For `PREPARE` / `DEALLOCATE`: the reply that confirms it and what it does.
    pub effect: Option<Effect>,
    /// What runs, for enforcing it.
    pub shape: Shape,
    /// [`Analysis::simple_dml`] of what runs.
    pub simple_dml: Option<(String, String)>,
}

pub(super) enum Effect {
    Prepare { name: String, entry: Entry0 },
    Deallocate(Reply, Op),
}

/// An [`Entry`] before its audit number is known.
pub(super) struct Entry0 {
    sql: Arc<str>,
    analysis: Arc<Analysis>,
    held: Option<Arc<HeldStatement>>,
}

/// What deciding needs, shareable across awaits (the upstream writer is not).
#[derive(Clone, Copy)]
pub(super) struct Env<'a> {
    pub ctx: &'a ConnCtx,
    pub services: &'a Services,
    pub pg: &'a super::State,
    pub identity: &'a SessionIdentity,
    pub shared: &'a Mutex<Shared>,
}

impl<'a> Env<'a> {
    /// The analysis of a statement text, bounded in size and time (never on the runtime's
    /// own threads when long).
    pub async fn analyze(&self, sql: &str) -> Arc<Analysis> {
        let pg = self.ctx.resource.postgres();
        self.services
            .analyzer
            .analyze_bounded(
                sql,
                Dialect::Postgres,
                pg.max_statement_bytes,
                pg.analysis_budget,
            )
            .await
    }

    /// The catalog this session's upstream answers for.
    pub(super) fn catalog(&self) -> Arc<ProcCatalog> {
        let upstream = self
            .ctx
            .resource
            .upstream
            .clone()
            .unwrap_or_else(|| self.ctx.orig_dst.to_string());
        self.pg.proc_catalogs.of(&upstream)
    }

    /// The analysis with the functions it calls looked up in the server's catalog (when
    /// sluice holds a credential to ask with; else what is known without one). DDL makes the
    /// upstream's cached answers stale.
    pub(super) async fn with_catalog(&self, analysis: Arc<Analysis>) -> Arc<Analysis> {
        if analysis
            .statements
            .iter()
            .any(|k| matches!(k, StatementKind::Ddl | StatementKind::Dcl))
        {
            self.catalog().invalidate();
        }
        let in_reads = |c: &FunctionCall| {
            analysis
                .statements
                .get(c.statement)
                .is_some_and(|k| !k.is_write())
        };
        let names: Vec<String> = analysis
            .functions
            .iter()
            .filter(|c| in_reads(c) && !functions::SYNTAX.contains(&c.name.as_str()))
            .map(|c| c.name.clone())
            .collect();
        let Some(login) = &self.identity.login else {
            return analysis;
        };
        if names.is_empty() {
            return analysis;
        }
        match self.catalog().rows(&names, self.ctx, login).await {
            Ok(rows) => {
                let mut resolved = (*analysis).clone();
                let rows_of =
                    |c: &FunctionCall| rows.get(&c.name).map_or(&[][..], |r| r.as_slice());
                functions::resolve(&mut resolved, |c| functions::from_catalog(c, rows_of(c)));
                resolved.user_code |= resolved
                    .functions
                    .iter()
                    .any(|c| functions::user_code_in_catalog(c, rows_of(c)));
                Arc::new(resolved)
            }
            Err(e) => {
                warn!(event = "catalog_unavailable", conn_id = self.ctx.id, error = %e,
                      "functions decided without the catalog");
                analysis
            }
        }
    }

    pub(super) fn policy_decide(&self, analysis: &Analysis) -> Decision {
        decide_sql(
            &self.services.policy(),
            &Subject {
                target: &self.ctx.target,
                resource: &self.ctx.resource.name,
            },
            analysis,
        )
    }

    /// The decision for a simple query, with `PREPARE`, `EXECUTE` and `DEALLOCATE` resolved
    /// against the session's prepared statements.
    pub(super) async fn decide_query(&self, sql: &str, analysis: &Analysis) -> Decided2 {
        let plain = |decision| Decided2 {
            decision,
            shown: sql.to_string(),
            effect: None,
            shape: Shape::of(analysis),
            simple_dml: analysis.simple_dml.clone(),
        };
        let Some(used) = analysis.prepared.first() else {
            return plain(self.policy_decide(analysis));
        };
        if analysis.statements.len() > 1 {
            return plain(refusal(
                PREPARED_RULE,
                "PREPARE, EXECUTE, DEALLOCATE and DISCARD ALL must be sent as a query of their own through sluice".into(),
            ));
        }
        match used {
            PreparedUse::Prepare {
                name, sql: inner, ..
            } => {
                let inner_analysis = self.analyze(inner).await;
                let inner_analysis = self.with_catalog(inner_analysis).await;
                let d = self.policy_decide(&inner_analysis);
                let held = match d.action {
                    Action::Deny => return plain(d),
                    Action::Hold => Some(Arc::new(HeldStatement {
                        sql: inner.clone(),
                        rule: d.rule.clone(),
                        reason: d.reason.clone(),
                        param_types: Vec::new(),
                    })),
                    Action::Allow | Action::Alert => None,
                };
                // Preparing runs nothing: a held statement is held when it is executed.
                let decision = Decision {
                    action: if d.action == Action::Alert {
                        Action::Alert
                    } else {
                        Action::Allow
                    },
                    reason: match &held {
                        Some(h) => format!(
                            "prepared; each execution is held (rule \"{}\": {})",
                            h.rule, h.reason
                        ),
                        None => d.reason.clone(),
                    },
                    rule: d.rule,
                };
                Decided2 {
                    decision,
                    shown: sql.to_string(),
                    shape: Shape::of(analysis),
                    simple_dml: None,
                    effect: Some(Effect::Prepare {
                        name: name.clone(),
                        entry: Entry0 {
                            sql: inner.as_str().into(),
                            analysis: inner_analysis,
                            held,
                        },
                    }),
                }
            }
            PreparedUse::Execute { name, .. } => {
                let candidates = Shared::lock(self.shared).prepared.candidates(name);
                if candidates.is_empty() {
                    return plain(refusal(
                        PREPARED_RULE,
                        format!(
                            "runs prepared statement \"{name}\", which this session has not prepared through sluice"
                        ),
                    ));
                }
                // What runs is the prepared statement, with the EXECUTE's own arguments (which
                // are expressions and may call functions).
                let decided = candidates.iter().map(|c| {
                    let mut merged = (*c.analysis).clone();
                    merged
                        .findings
                        .extend(analysis.findings.iter().cloned().map(|mut f| {
                            f.statement = 0;
                            f
                        }));
                    if merged.parse_error.is_none() {
                        merged.parse_error = analysis.parse_error.clone();
                    }
                    let mut d = self.policy_decide(&merged);
                    d.reason = format!("{sql} runs prepared statement {name}: {}", d.reason);
                    (d, c.sql.clone())
                });
                let (decision, runs) = decided
                    .fold(
                        None,
                        |acc: Option<(Decision, Arc<str>)>, (d, s)| match acc {
                            Some(a) if a.0.action >= d.action => Some(a),
                            _ => Some((d, s)),
                        },
                    )
                    .expect("candidates is not empty");
                // It runs like the prepared statement (any of the candidates), with the
                // EXECUTE's own arguments.
                let shape = candidates.iter().map(|c| Shape::of(&c.analysis)).fold(
                    Shape::of(analysis),
                    |a, b| Shape {
                        writes: a.writes || b.writes,
                        user_code: a.user_code || b.user_code,
                        plain_read: b.plain_read && !analysis.writes(),
                        ..b
                    },
                );
                Decided2 {
                    decision,
                    shown: format!("{sql}\n-- {name}: {runs}"),
                    effect: None,
                    shape,
                    simple_dml: None,
                }
            }
            PreparedUse::Deallocate { name, .. } => {
                let decision = self.policy_decide(analysis);
                let (reply, op) = match name {
                    Some(n) => (Reply::Tag("DEALLOCATE"), Op::Remove(n.clone())),
                    None if analysis.statements.first() == Some(&StatementKind::Set) => {
                        (Reply::Tag("DISCARD ALL"), Op::RemoveAll)
                    }
                    None => (Reply::Tag("DEALLOCATE ALL"), Op::RemoveAll),
                };
                Decided2 {
                    decision,
                    shown: sql.to_string(),
                    effect: Some(Effect::Deallocate(reply, op)),
                    shape: Shape::of(analysis),
                    simple_dml: None,
                }
            }
        }
    }
}

impl Entry0 {
    pub(super) fn into_entry(self, parsed_as: u64) -> Entry {
        Entry {
            sql: self.sql,
            analysis: self.analysis,
            held: self.held,
            parsed_as,
            executed: Default::default(),
        }
    }
}
