//! Interim SQL analysis (replaced by the full guardrail engine): statement kinds and the DROP
//! rule on sqlparser's AST, unparseable input flagged.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use sqlparser::{ast::Statement, dialect::PostgreSqlDialect, parser::Parser};

pub const RULE_IDS: &[&str] = &[
    "drop",
    "truncate",
    "delete-without-where",
    "update-without-where",
    "alter",
    "grant-revoke",
    "copy-program",
    "create-function",
    "dangerous-function",
    "set-role",
    "do-block",
    "unparseable",
];
pub const STATEMENT_KINDS: &[&str] = &[
    "select",
    "insert",
    "update",
    "delete",
    "merge",
    "copy",
    "ddl",
    "dcl",
    "transaction",
    "set",
    "show",
    "explain",
    "call",
    "other",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleId {
    Drop,
    Unparseable,
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RuleId::Drop => "drop",
            RuleId::Unparseable => "unparseable",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatementKind {
    Select,
    Insert,
    Update,
    Delete,
    Ddl,
    Other,
}

impl std::fmt::Display for StatementKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            serde_json::to_value(self)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .as_deref()
                .unwrap_or("other"),
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: RuleId,
    pub statement: usize,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Analysis {
    pub statements: Vec<StatementKind>,
    pub findings: Vec<Finding>,
    pub parse_error: Option<String>,
}

pub fn analyze(sql: &str) -> Analysis {
    match Parser::parse_sql(&PostgreSqlDialect {}, sql) {
        Err(e) => Analysis {
            statements: Vec::new(),
            findings: vec![Finding {
                rule: RuleId::Unparseable,
                statement: 0,
                reason: format!("cannot parse: {e}"),
            }],
            parse_error: Some(e.to_string()),
        },
        Ok(stmts) => {
            let mut a = Analysis::default();
            for (i, s) in stmts.iter().enumerate() {
                a.statements.push(match s {
                    Statement::Query(_) => StatementKind::Select,
                    Statement::Insert(_) => StatementKind::Insert,
                    Statement::Update { .. } => StatementKind::Update,
                    Statement::Delete(_) => StatementKind::Delete,
                    Statement::Drop { .. } | Statement::CreateTable(_) => StatementKind::Ddl,
                    _ => StatementKind::Other,
                });
                if let Statement::Drop {
                    object_type, names, ..
                } = s
                {
                    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
                    a.findings.push(Finding {
                        rule: RuleId::Drop,
                        statement: i,
                        reason: format!("DROP {object_type} {}", names.join(", ")),
                    });
                }
            }
            a
        }
    }
}

pub struct SqlAnalyzer {
    cache: Mutex<lru::LruCache<String, Arc<Analysis>>>,
}

impl SqlAnalyzer {
    pub fn new(capacity: usize) -> Self {
        SqlAnalyzer {
            cache: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(capacity.max(1)).expect("nonzero"),
            )),
        }
    }

    pub fn analyze(&self, sql: &str) -> Arc<Analysis> {
        if let Some(a) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sql)
        {
            return a.clone();
        }
        let a = Arc::new(analyze(sql));
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(sql.to_string(), a.clone());
        a
    }
}
