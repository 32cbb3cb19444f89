//! SQL guardrails: a pure analysis of SQL text into statement kinds and rule findings. The
//! [`shell`] submodule does the same for shell command lines (SSH), and runs these SQL rules on
//! the SQL a command line hands to a database client.
//!
//! The policy layer maps [`Finding`]s to actions (allow, deny, hold, alert); nothing here decides.
//! Every rule matches on the sqlparser AST (PostgreSQL dialect), never on substrings, so case,
//! comments, quoting and whitespace cannot change a verdict.
//!
//! # Decisions worth knowing
//! - Input that does not parse yields `parse_error` and a [`RuleId::Unparseable`] finding, so a
//!   policy can deny or hold it; it is never silently clean. `DO` blocks, which sqlparser cannot
//!   parse, are recognised by their first token and reported as [`RuleId::DoBlock`] instead.
//! - `EXPLAIN ANALYZE X` executes `X`: it is analysed like `X` and its kind is `X`'s kind. Plain
//!   `EXPLAIN X` only plans, so findings inside it are dropped.
//! - `PREPARE p AS X` is analysed like `X` (findings are reported at PREPARE time); `EXECUTE p`
//!   carries no findings here: the session must remember what `p` was.
//! - A data-modifying CTE (`WITH d AS (DELETE ...) SELECT ...`) gives the statement the kind of
//!   the DML, so "reads only" policies do not mistake it for a read.
//! - Function names follow PostgreSQL identifier rules: unquoted names fold to lower case,
//!   quoted names are exact (`"PG_READ_FILE"()` is a different, user-created function, which
//!   needed a flagged CREATE FUNCTION). Any schema qualifier matches (`pg_catalog.`, or the
//!   extension schema of dblink/adminpack): flagging a same-named user function is the safe error.
//! - `WHERE x = x` is treated as always true: it matches every row where `x` is not NULL.
//! - String literals follow `standard_conforming_strings = on` (the default since PostgreSQL 9.1):
//!   a backslash does not escape a quote. A server with it off would read `'\'; DROP ...'`
//!   differently, so the gateway should pin it on for upstream sessions.

mod fallback;
mod fold;
pub mod functions;
mod kinds;
mod rules;
mod settings;
pub(crate) mod shape;
pub mod shell;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_evasion;
#[cfg(test)]
mod tests_redteam;

use std::{
    fmt,
    num::NonZeroUsize,
    str::FromStr,
    sync::{Arc, Mutex},
};

use lru::LruCache;
use serde::{Deserialize, Serialize};
use sqlparser::parser::Parser;

use super::Dialect;

/// A guardrail rule; the serde and `Display` form is the stable id used in policies and audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleId {
    /// Any `DROP ...` statement.
    Drop,
    /// `TRUNCATE`.
    Truncate,
    /// `DELETE` without `WHERE`, or with an always-true `WHERE` (also in CTEs and `MERGE ON true`).
    DeleteWithoutWhere,
    /// `UPDATE` without `WHERE`, or with an always-true `WHERE`.
    UpdateWithoutWhere,
    /// Any `ALTER ...` statement (including `ALTER SYSTEM`, which sqlparser cannot parse).
    Alter,
    /// `GRANT` / `REVOKE`.
    GrantRevoke,
    /// `COPY ... TO PROGRAM` / `FROM PROGRAM`: runs a shell command on the database server.
    CopyProgram,
    /// `COPY ... TO 'file'` / `FROM 'file'`: reads or writes a file on the database server.
    CopyFile,
    /// `CREATE [OR REPLACE] FUNCTION | PROCEDURE`: bodies are opaque code.
    CreateFunction,
    /// A call to a function that reaches outside the SQL sandbox (files, other sessions, dblink).
    DangerousFunction,
    /// `SET ROLE`, `SET SESSION AUTHORIZATION`, or the same through `set_config`.
    SetRole,
    /// `DO $$ ... $$`: an anonymous code block.
    DoBlock,
    /// The statement could not be parsed, so no other rule could be checked.
    Unparseable,
    /// `CREATE TRIGGER`: code that runs on other people's writes.
    CreateTrigger,
    /// `CREATE EXTENSION`: installs server code (dblink, adminpack, untrusted languages).
    CreateExtension,
    /// `LOAD`: loads a shared library into the server process.
    LoadLibrary,
    /// A read statement calls a function that is not shown to be a read (volatile, unknown,
    /// SECURITY DEFINER, C code): the statement is a write.
    VolatileFunction,
    /// A built-in with effects outside the query: sequences, large objects, notifications,
    /// index maintenance.
    SideEffectFunction,
    /// A function that runs SQL given as text, or dumps whole tables named as a value.
    SqlFromText,
    /// `pg_advisory_lock` and its kin.
    AdvisoryLock,
    /// `pg_sleep` and its kin.
    Sleep,
    /// Changes a session limit the gateway sets (`statement_timeout`, `lock_timeout`, ...).
    TimeoutSetting,
    /// Changes a setting sluice pins for the session: how the server reads statement text
    /// (`standard_conforming_strings`, `client_encoding`, ...) or the read-only default. Always
    /// refused; no rule can loosen it.
    PinnedSetting,
}

impl RuleId {
    pub const ALL: [RuleId; 23] = [
        RuleId::Drop,
        RuleId::Truncate,
        RuleId::DeleteWithoutWhere,
        RuleId::UpdateWithoutWhere,
        RuleId::Alter,
        RuleId::GrantRevoke,
        RuleId::CopyProgram,
        RuleId::CopyFile,
        RuleId::CreateFunction,
        RuleId::DangerousFunction,
        RuleId::SetRole,
        RuleId::DoBlock,
        RuleId::Unparseable,
        RuleId::CreateTrigger,
        RuleId::CreateExtension,
        RuleId::LoadLibrary,
        RuleId::VolatileFunction,
        RuleId::SideEffectFunction,
        RuleId::SqlFromText,
        RuleId::AdvisoryLock,
        RuleId::Sleep,
        RuleId::TimeoutSetting,
        RuleId::PinnedSetting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::Drop => "drop",
            RuleId::Truncate => "truncate",
            RuleId::DeleteWithoutWhere => "delete-without-where",
            RuleId::UpdateWithoutWhere => "update-without-where",
            RuleId::Alter => "alter",
            RuleId::GrantRevoke => "grant-revoke",
            RuleId::CopyProgram => "copy-program",
            RuleId::CopyFile => "copy-file",
            RuleId::CreateFunction => "create-function",
            RuleId::DangerousFunction => "dangerous-function",
            RuleId::SetRole => "set-role",
            RuleId::DoBlock => "do-block",
            RuleId::Unparseable => "unparseable",
            RuleId::CreateTrigger => "create-trigger",
            RuleId::CreateExtension => "create-extension",
            RuleId::LoadLibrary => "load-library",
            RuleId::VolatileFunction => "volatile-function",
            RuleId::SideEffectFunction => "side-effect-function",
            RuleId::SqlFromText => "sql-from-text",
            RuleId::AdvisoryLock => "advisory-lock",
            RuleId::Sleep => "sleep",
            RuleId::TimeoutSetting => "timeout-setting",
            RuleId::PinnedSetting => "pinned-setting",
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The id is not one of [`RuleId::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown guardrail rule id {0:?}")]
pub struct UnknownRuleId(pub String);

impl FromStr for RuleId {
    type Err = UnknownRuleId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RuleId::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRuleId(s.to_owned()))
    }
}

/// One rule that matched one statement of the input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: RuleId,
    /// Index into [`Analysis::statements`].
    pub statement: usize,
    /// Human readable, names the object, e.g. `DROP TABLE customers`.
    pub reason: String,
}

/// What a statement does, coarsely, so policies can tell reads from writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatementKind {
    /// A query without data-modifying parts (`SELECT`, `VALUES`, `TABLE t`).
    Select,
    Insert,
    Update,
    Delete,
    Merge,
    Copy,
    /// CREATE / ALTER / DROP / TRUNCATE / COMMENT, and `SELECT ... INTO new_table`.
    Ddl,
    /// GRANT / REVOKE and role management.
    Dcl,
    /// BEGIN / COMMIT / ROLLBACK / SAVEPOINT.
    Transaction,
    /// SET / RESET.
    Set,
    Show,
    /// `EXPLAIN` without `ANALYZE` (with `ANALYZE` the inner statement's kind is used).
    Explain,
    Call,
    /// `PREPARE` and `DEALLOCATE`: preparing runs nothing (sessions decide `PREPARE p AS X` as
    /// `X` would be, and hold it when it runs).
    Prepare,
    /// `EXECUTE p`: sessions decide it as the statement `p` is (see [`PreparedUse`]); on its own
    /// it says nothing about what runs.
    Execute,
    /// `DECLARE ... CURSOR`, `FETCH`, `MOVE`, `CLOSE`.
    Cursor,
    /// `LISTEN` / `UNLISTEN`.
    Listen,
    /// `NOTIFY`: a message to every listening session.
    Notify,
    /// `LOCK TABLE`, and `SELECT ... FOR UPDATE | NO KEY UPDATE | SHARE | KEY SHARE`.
    Lock,
    /// `DO` blocks (also reported as [`RuleId::DoBlock`]).
    Do,
    /// `VACUUM`, `ANALYZE`, `CLUSTER`, `REINDEX`, `REFRESH MATERIALIZED VIEW`, `CHECKPOINT`.
    Maintenance,
    /// Everything else: unparseable text, statements sqlparser knows from other databases, ...
    Other,
}

/// Rule ids as policies write them (the order of [`RuleId::ALL`]); `pinned-setting` is not
/// one: no rule can loosen it.
pub const RULE_IDS: &[&str] = &[
    "drop",
    "truncate",
    "delete-without-where",
    "update-without-where",
    "alter",
    "grant-revoke",
    "copy-program",
    "copy-file",
    "create-function",
    "dangerous-function",
    "set-role",
    "do-block",
    "unparseable",
    "create-trigger",
    "create-extension",
    "load-library",
    "volatile-function",
    "side-effect-function",
    "sql-from-text",
    "advisory-lock",
    "sleep",
    "timeout-setting",
];

/// Statement kinds as policies write them (the order of [`StatementKind::ALL`]).
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
    "prepare",
    "execute",
    "cursor",
    "listen",
    "notify",
    "lock",
    "do",
    "maintenance",
    "other",
];

/// Whether `id` names a guardrail a policy rule can list: a SQL one ([`RULE_IDS`]) or a shell
/// one ([`shell::SHELL_RULE_IDS`]). Both kinds share the `guardrails:` list of a rule.
pub fn is_rule_id(id: &str) -> bool {
    RULE_IDS.contains(&id) || shell::SHELL_RULE_IDS.contains(&id)
}

/// Every guardrail id, SQL ones first, as the policy check lists them in its hint.
pub fn all_rule_ids() -> impl Iterator<Item = &'static str> {
    RULE_IDS.iter().chain(shell::SHELL_RULE_IDS).copied()
}

impl fmt::Display for StatementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StatementKind {
    pub const ALL: [StatementKind; 22] = [
        StatementKind::Select,
        StatementKind::Insert,
        StatementKind::Update,
        StatementKind::Delete,
        StatementKind::Merge,
        StatementKind::Copy,
        StatementKind::Ddl,
        StatementKind::Dcl,
        StatementKind::Transaction,
        StatementKind::Set,
        StatementKind::Show,
        StatementKind::Explain,
        StatementKind::Call,
        StatementKind::Prepare,
        StatementKind::Execute,
        StatementKind::Cursor,
        StatementKind::Listen,
        StatementKind::Notify,
        StatementKind::Lock,
        StatementKind::Do,
        StatementKind::Maintenance,
        StatementKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        STATEMENT_KINDS[StatementKind::ALL
            .iter()
            .position(|k| *k == self)
            .expect("listed in ALL")]
    }

    /// Whether the statement can change data, schema, privileges or server state. Conservative:
    /// only plain reads, transaction control, SHOW, plain EXPLAIN, preparing and cursors over
    /// reads are not writes (`EXECUTE` is whatever it runs, which the session knows).
    pub fn is_write(self) -> bool {
        !matches!(
            self,
            StatementKind::Select
                | StatementKind::Transaction
                | StatementKind::Show
                | StatementKind::Explain
                | StatementKind::Prepare
                | StatementKind::Cursor
        )
    }
}

#[cfg(test)]
#[test]
fn policy_ids_match_the_enums_and_their_serde_form() {
    let rules: Vec<&str> = RuleId::ALL
        .iter()
        .map(|r| r.as_str())
        .filter(|r| *r != "pinned-setting")
        .collect();
    assert_eq!(rules, RULE_IDS);
    for k in StatementKind::ALL {
        assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
    }
    assert_eq!(StatementKind::ALL.len(), STATEMENT_KINDS.len());
}

/// The result of analysing one SQL text (possibly several statements).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Analysis {
    /// One entry per statement, in order; empty for empty or comment-only input.
    pub statements: Vec<StatementKind>,
    pub findings: Vec<Finding>,
    /// The parser's message when (part of) the input did not parse.
    pub parse_error: Option<String>,
    /// Prepared statements the text defines, runs or removes (SQL `PREPARE`/`EXECUTE`/
    /// `DEALLOCATE`/`DISCARD ALL`): a session resolves what `EXECUTE p` runs from them.
    pub prepared: Vec<PreparedUse>,
    /// Functions (and attribute-notation candidates) the statements call; see [`functions`].
    pub functions: Vec<functions::FunctionCall>,
    /// Per statement: whether PostgreSQL runs it in a read-only transaction, by its syntax
    /// (what the functions it calls do is in the findings). Sessions run the others as writes.
    pub reads: Vec<bool>,
    /// `BEGIN` / `START TRANSACTION` statements: (index, whether `READ ONLY` was asked).
    pub begins: Vec<(usize, bool)>,
    /// Indices of `COPY ... FROM STDIN` statements (the agent sends data after the statement).
    pub copy_in: Vec<usize>,
    /// It calls code that is not PostgreSQL's own, which could change what sluice pins (a
    /// session waits for its answer before it decides the next statement).
    pub user_code: bool,
    /// A lone UPDATE, DELETE, MERGE or INSERT (without ON CONFLICT) of one named table that
    /// calls no function: if that table has no triggers or rules, its command tag says exactly
    /// how many rows it changed. (The table as written, and its name as the catalog has it.)
    pub simple_dml: Option<(String, String)>,
}

impl Analysis {
    /// Whether a session must run this as a write: a statement that does not only read, or a
    /// read calling a function that is not shown to be a read or has side effects.
    pub fn writes(&self) -> bool {
        self.reads.iter().any(|r| !r)
            || self.findings.iter().any(|f| {
                matches!(
                    f.rule,
                    RuleId::VolatileFunction | RuleId::SideEffectFunction
                )
            })
    }

    /// Whether it has transaction control (`BEGIN`, `COMMIT`, `SAVEPOINT`, ...).
    pub fn controls_transactions(&self) -> bool {
        self.statements.contains(&StatementKind::Transaction)
    }
}

/// A use of a SQL-level prepared statement (the same namespace as the protocol's `Parse`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "use", rename_all = "lowercase")]
pub enum PreparedUse {
    /// `PREPARE name AS sql` (`sql` as sqlparser prints it).
    Prepare {
        statement: usize,
        name: String,
        sql: String,
    },
    /// `EXECUTE name(...)`, also inside an `EXPLAIN` that runs it.
    Execute { statement: usize, name: String },
    /// `DEALLOCATE name`; `None` for `DEALLOCATE ALL` and `DISCARD ALL`.
    Deallocate {
        statement: usize,
        name: Option<String>,
    },
}

impl Analysis {
    pub fn has(&self, rule: RuleId) -> bool {
        self.findings.iter().any(|f| f.rule == rule)
    }

    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.parse_error.is_none()
    }
}

/// Longer texts are not parsed: they yield [`RuleId::Unparseable`]. Bulk data travels as COPY
/// data, not statement text, so this only refuses generated monsters.
pub const MAX_ANALYZED_LEN: usize = 1024 * 1024;

/// Texts up to this length are analysed on the caller's stack. sqlparser builds left-deep
/// trees for `a OR b OR c ...` without counting depth, and walking, printing and dropping such a
/// tree recurses once per operator: 50k ORs overflow a 2 MiB thread stack (tokio's default)
/// and abort the whole gateway. Below this length there cannot be enough operators to matter.
const CALLER_STACK_LEN: usize = 8 * 1024;

/// Stack for longer texts: worst case is one tree level per 2 bytes (`1+1+1...`) at up to
/// ~200 bytes of stack per level in a debug build, so 128 bytes per input byte plus headroom.
fn big_stack_size(len: usize) -> usize {
    (8 << 20) + len * 128
}

/// Analyse SQL text. Pure: the same text always gives the same analysis. Texts over 8 KiB are
/// analysed on a short-lived thread with a stack sized for them (see [`CALLER_STACK_LEN`]).
pub fn analyze(sql: &str, dialect: Dialect) -> Analysis {
    if sql.len() > MAX_ANALYZED_LEN {
        return refused(format!(
            "statement text of {} bytes is larger than the {MAX_ANALYZED_LEN} bytes analysed",
            sql.len()
        ));
    }
    if sql.len() <= CALLER_STACK_LEN {
        return analyze_guarded(sql, dialect);
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("sluice-sql-analyze".into())
            .stack_size(big_stack_size(sql.len()))
            .spawn_scoped(scope, || analyze_guarded(sql, dialect))
            .map_err(|e| format!("cannot start the analysis thread: {e}"))
            .and_then(|t| t.join().map_err(|_| "the analysis panicked".to_owned()))
            .unwrap_or_else(refused)
    })
}

/// A panic inside sqlparser is a bug there, not a reason to take the session down: report the
/// text as unparseable, which the policy never allows.
/// [`analyze`], and whether the result depended on what a literal says. Texts analysed on a
/// thread of their own (long ones) count as depending on their literals.
fn analyze_noting_literals(sql: &str, dialect: Dialect) -> (Analysis, bool) {
    if sql.len() > CALLER_STACK_LEN {
        return (analyze(sql, dialect), true);
    }
    fold::take_literal_read();
    let analysis = analyze(sql, dialect);
    (analysis, fold::take_literal_read())
}

fn analyze_guarded(sql: &str, dialect: Dialect) -> Analysis {
    std::panic::catch_unwind(|| analyze_unguarded(sql, dialect))
        .unwrap_or_else(|_| refused("the SQL parser panicked".to_owned()))
}

fn analyze_unguarded(sql: &str, dialect: Dialect) -> Analysis {
    let dialect = dialect.parser();
    match Parser::parse_sql(dialect, sql) {
        Ok(statements) => {
            let mut out = Analysis::default();
            for statement in &statements {
                rules::analyze_statement(statement, &mut out);
            }
            functions::resolve(&mut out, functions::without_catalog);
            out.user_code = functions::calls_user_code(&out, functions::without_catalog);
            if statements.len() != 1 || !out.functions.is_empty() {
                out.simple_dml = None;
            }
            out
        }
        // One bad statement (often a DO block) makes the whole text fail; redo it statement by
        // statement so the rest is still analysed and the failure is pinned to one index.
        Err(e) => {
            let mut out = fallback::analyze_split(sql, dialect, e.to_string());
            functions::resolve(&mut out, functions::without_catalog);
            out.user_code = functions::calls_user_code(&out, functions::without_catalog);
            out.user_code = functions::calls_user_code(&out, functions::without_catalog);
            out
        }
    }
}

/// One opaque statement that could not be analysed.
fn refused(why: String) -> Analysis {
    Analysis {
        statements: vec![StatementKind::Other],
        reads: vec![false],
        findings: vec![Finding {
            rule: RuleId::Unparseable,
            statement: 0,
            reason: why.clone(),
        }],
        parse_error: Some(why),
        ..Analysis::default()
    }
}

/// Texts longer than this are analysed but not cached: a few huge INSERTs must not pin memory.
pub const MAX_CACHED_LEN: usize = 16 * 1024;

/// [`analyze`] behind a bounded LRU cache, shared across sessions.
///
/// Entries are keyed by the exact text, and clean analyses also by the text's *shape* (its
/// literals blanked, [`shape::literal_shape`]): agents and the simple query protocol send the
/// same statement with new literals each time (`WHERE id = 41`, `WHERE id = 42`), and parsing
/// each one again cost more than the rest of the proxy path. A shape entry is made only when
/// the analysis found nothing and never looked at what a literal says (the constant folder
/// notes it when it does: `WHERE 1 = 1`, `set_config('role', ...)`), so every text of that
/// shape would be analysed alike.
pub struct SqlAnalyzer {
    cache: Option<Mutex<LruCache<String, Arc<Analysis>>>>,
    /// Long texts are analysed on the blocking pool, this many at once (see
    /// [`SqlAnalyzer::analyze_bounded`]).
    long: Arc<tokio::sync::Semaphore>,
}

/// Texts up to this length are analysed where they are asked for (microseconds); longer ones
/// on tokio's blocking pool, so that a monster cannot stall the sessions sharing a worker.
pub const INLINE_LEN: usize = CALLER_STACK_LEN;

/// Long analyses running at once; more wait (within their budget) for a slot.
pub const MAX_LONG_ANALYSES: usize = 2;

/// Shape keys start with a byte no SQL text holds (PostgreSQL rejects NUL in a query string),
/// so they never collide with exact texts in the shared cache.
const SHAPE_KEY_PREFIX: &str = "\0";

/// Cache keys: PostgreSQL texts as they are; another dialect's behind a byte no text holds and
/// its name, so that one text read in two dialects is two entries.
fn dialect_key(sql: &str, dialect: Dialect) -> std::borrow::Cow<'_, str> {
    match dialect {
        Dialect::Postgres => sql.into(),
        #[allow(unreachable_patterns)] // MySQL comes next
        other => format!("\u{1}{}\u{1}{sql}", other.as_str()).into(),
    }
}

fn shape_prefix(dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => SHAPE_KEY_PREFIX.to_string(),
        #[allow(unreachable_patterns)]
        other => format!("{SHAPE_KEY_PREFIX}{}\u{1}", other.as_str()),
    }
}

impl SqlAnalyzer {
    /// `capacity` is the number of distinct texts kept; 0 disables the cache.
    pub fn new(capacity: usize) -> Self {
        SqlAnalyzer {
            cache: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
            long: Arc::new(tokio::sync::Semaphore::new(MAX_LONG_ANALYSES)),
        }
    }

    /// [`SqlAnalyzer::analyze`] without blocking the async runtime: texts longer than
    /// `max_bytes` are refused unread, long texts are analysed on the blocking pool (at most
    /// [`MAX_LONG_ANALYSES`] at once), and an analysis that does not finish within `budget`
    /// (waiting for a slot included) is reported unparseable. It still runs to its end in
    /// the background, holding its slot, so abandoned analyses cannot pile up.
    pub async fn analyze_bounded(
        &self,
        sql: &str,
        dialect: Dialect,
        max_bytes: usize,
        budget: std::time::Duration,
    ) -> Arc<Analysis> {
        if sql.len() > max_bytes {
            return Arc::new(refused(format!(
                "statement text of {} bytes is larger than the {max_bytes} bytes analysed",
                sql.len()
            )));
        }
        if sql.len() <= INLINE_LEN {
            return self.analyze(sql, dialect);
        }
        let long = self.long.clone();
        let text = sql.to_owned();
        let run = async move {
            let permit = long.acquire_owned().await.ok()?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                analyze(&text, dialect)
            })
            .await
            .ok()
        };
        match tokio::time::timeout(budget, run).await {
            Ok(Some(a)) => Arc::new(a),
            Ok(None) => Arc::new(refused("the analysis could not run".to_owned())),
            Err(_) => Arc::new(refused(format!(
                "the analysis of {} bytes took longer than its budget of {}",
                sql.len(),
                humantime::format_duration(budget)
            ))),
        }
    }

    pub fn analyze(&self, sql: &str, dialect: Dialect) -> Arc<Analysis> {
        let Some(cache) = &self.cache else {
            return Arc::new(analyze(sql, dialect));
        };
        let keyed = dialect_key(sql, dialect);
        let sql_key: &str = &keyed;
        if let Some(hit) = lock(cache).get(sql_key) {
            return Arc::clone(hit);
        }
        let shape_key = (sql.len() <= MAX_CACHED_LEN)
            .then(|| shape::literal_shape(&shape_prefix(dialect), sql))
            .flatten();
        if let Some(key) = &shape_key
            && let Some(hit) = lock(cache).get(key.as_str())
        {
            return Arc::clone(hit);
        }
        // Parse outside the lock: other sessions keep hitting the cache meanwhile. Two sessions
        // may parse the same text at once; both get equal results.
        let (analysis, literal_read) = analyze_noting_literals(sql, dialect);
        let analysis = Arc::new(analysis);
        if sql.len() <= MAX_CACHED_LEN {
            let mut cache = lock(cache);
            // The exact text too: a text sent again is then found without computing its shape.
            // Other texts of the shape are not added one by one.
            if let Some(key) = shape_key
                && analysis.is_clean()
                && !literal_read
            {
                cache.put(key, Arc::clone(&analysis));
            }
            cache.put(sql_key.to_owned(), Arc::clone(&analysis));
        }
        analysis
    }

    /// Number of cached texts.
    pub fn cached(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| lock(c).len())
    }
}

impl fmt::Debug for SqlAnalyzer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlAnalyzer")
            .field("cached", &self.cached())
            .finish()
    }
}

/// The cache holds only finished analyses, so a panic elsewhere cannot leave it half-written:
/// recover from poisoning instead of failing every later statement.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
