//! Column lineage: which table columns every output column of a statement is computed from, as
//! far as the SQL text says, through functions, casts, operators, aggregates, subqueries, CTEs,
//! set operations, `*` and whole-row references (`c`, `c.*`, `row_to_json(c)`, `c::text`).
//!
//! Pure and catalog-free: a table is known here only by the name the statement gives it, and an
//! unqualified column by every relation in scope that could hold it. Whether a source is
//! sensitive, and how a `*` over a table expands, is decided later against the catalog
//! ([`Derivation::resolve`]). Every approximation errs towards more sources:
//! - an unqualified identifier is a candidate column of every relation in scope and of every
//!   enclosing scope, and a whole-row reference when it names a relation;
//! - an identifier that resolves nowhere is "any column of that name" in the statement;
//! - a function sluice does not know (user-defined, or reading SQL or tables by name:
//!   `query_to_xml`, `table_to_xml`, `dblink`, `current_setting`) makes its result *opaque*;
//! - a construct this walker has no case for is searched for identifiers and functions as a
//!   whole.
//!
//! Only the output's own expressions count: a `WHERE`, `JOIN ... ON`, `GROUP BY` or `ORDER BY`
//! filters or orders rows but computes no output value (the one-bit-per-row oracle this leaves
//! is stated in the README).
//!
//! # Non-revealing roots
//! An output whose top expression (casts and parentheses aside) is one of these is not masked,
//! whatever it reads, because it carries a count or one guess per row, not the value:
//! - `count(...)` whose `FILTER` reads nothing sensitive;
//! - `length`/`char_length`/`octet_length`/`bit_length` of a plain column;
//! - `x IS [NOT] NULL`, and `=`, `<>`, `IS [NOT] DISTINCT FROM`, `[NOT] IN (list)` between a plain
//!   column and values that read nothing sensitive (a guess confirmed or not).
//!
//! Not on the list, on purpose: hashes (`md5`, `sha256`, `hmac` with a key the agent chose) are
//! reversed by enumerating the small space of SSNs, cards and phone numbers; `LIKE`, regular
//! expressions, `<`/`>` and comparisons of transformed values give one chosen bit each, and a
//! few hundred such columns spell out a value in one query; `length` of a transformed value is a
//! number the agent chose (`length(repeat('x', ascii(...)))`). sluice's own `hash` strategy is
//! the keyed hash that stays joinable.

mod functions;
#[cfg(test)]
mod tests;

use std::{collections::BTreeSet, ops::ControlFlow};

use sqlparser::{
    ast::{
        self, BinaryOperator, CopyLegacyOption, CopyOption, CopySource, Expr, FunctionArg,
        FunctionArgExpr, FunctionArguments, ObjectName, ObjectNamePart, Query, Select, SelectItem,
        SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, TableWithJoins,
        UnaryOperator,
    },
    dialect::PostgreSqlDialect,
    parser::Parser,
};

pub use functions::{is_builtin_pure, sanitizer_kind};

/// A relation as a statement names it: unquoted names folded to lower case.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelName {
    pub schema: Option<String>,
    pub name: String,
}

impl RelName {
    fn from_object(n: &ObjectName) -> Option<RelName> {
        let parts: Vec<String> =
            n.0.iter()
                .map(|p| match p {
                    ObjectNamePart::Identifier(i) => Some(ident(i)),
                    ObjectNamePart::Function(_) => None,
                })
                .collect::<Option<_>>()?;
        match parts.as_slice() {
            [name] => Some(RelName {
                schema: None,
                name: name.clone(),
            }),
            // `db.schema.table`: the database part must be the current one; keep the last two.
            [.., schema, name] => Some(RelName {
                schema: Some(schema.clone()),
                name: name.clone(),
            }),
            [] => None,
        }
    }
}

impl std::fmt::Display for RelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// PostgreSQL's identifier folding: unquoted names are lower-cased.
fn ident(i: &ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// Something an output value may be computed from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// A column of a table or view (if the relation has a column of that name).
    Column { rel: RelName, column: String },
    /// Every column of a table or view (`c`, `c.*`, `row_to_json(c)`, `*` over a derived table).
    WholeRow(RelName),
    /// An identifier no scope could place: any column of that name in the statement's relations.
    AnyColumnNamed(String),
    /// A session setting (`current_setting()`, `SHOW`): sensitive once a statement put a
    /// sensitive value into one (`set_config('application_name', email, false)`).
    Setting,
}

/// What makes an output root non-revealing (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sanitizer {
    Count,
    Length,
    Predicate,
}

impl Sanitizer {
    /// Result types (PostgreSQL type OIDs) the sanitizer produces; another type means the
    /// function was not the built-in one, or the value went on to something else.
    pub fn fits_type(self, type_oid: u32) -> bool {
        match self {
            Sanitizer::Count => matches!(type_oid, 20 | 21 | 23),
            Sanitizer::Length => matches!(type_oid, 20 | 21 | 23),
            Sanitizer::Predicate => type_oid == 16,
        }
    }
}

/// Where one output value comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Derivation {
    /// Everything it is computed from (also what a non-revealing root reads).
    pub sources: BTreeSet<Source>,
    /// It passes through something sluice cannot see into: a function it does not know, SQL
    /// given as text, a statement it cannot analyse.
    pub opaque: bool,
    /// A plain column reference (casts and renames aside): the value is the column's value.
    pub direct: bool,
    /// A non-revealing root, valid when `must_be_clean` reads nothing sensitive.
    pub sanitizer: Option<(Sanitizer, Box<Derivation>)>,
}

impl Derivation {
    /// A plain reference to `rel.column`.
    pub fn column(rel: RelName, column: String) -> Derivation {
        Derivation {
            direct: true,
            ..Derivation::source(Source::Column { rel, column })
        }
    }

    fn source(s: Source) -> Derivation {
        let mut d = Derivation::default();
        d.sources.insert(s);
        d
    }

    /// Reads something sluice cannot see into.
    pub fn opaque() -> Derivation {
        Derivation {
            opaque: true,
            ..Derivation::default()
        }
    }

    /// Adds what `other` reads (a combination is neither direct nor a sanitizer).
    pub fn absorb(&mut self, other: Derivation) {
        self.sources.extend(other.sources);
        self.opaque |= other.opaque;
        if let Some((_, inner)) = other.sanitizer {
            self.absorb(*inner);
        }
        self.direct = false;
        self.sanitizer = None;
    }

    /// `self` as an operand of a computation.
    fn computed(mut self) -> Derivation {
        self.direct = false;
        if let Some((_, inner)) = self.sanitizer.take() {
            self.absorb(*inner);
        }
        self
    }

    /// Everything any of `items` reads.
    pub fn union(items: impl IntoIterator<Item = Derivation>) -> Derivation {
        let mut d = Derivation::default();
        for i in items {
            d.absorb(i);
        }
        d
    }

    /// Whether it reads anything at all (a constant or a parameter reads nothing).
    pub fn reads_nothing(&self) -> bool {
        self.sources.is_empty() && !self.opaque
    }
}

/// One item of a statement's output list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// One output column.
    One(Derivation),
    /// A `*` (or `t.*`): as many columns as its relations have, each computed from them.
    Star(Derivation),
}

/// What one statement outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Rows: a query, or DML with `RETURNING`.
    Rows(Vec<Slot>),
    /// `COPY ... TO STDOUT`: a table's columns (all, in order, when `columns` is empty) or a
    /// query's output, in a format.
    Copy {
        table: Option<(RelName, Vec<String>)>,
        slots: Vec<Slot>,
        format: CopyFormat,
    },
    /// Output that carries no table data: EXPLAIN, a statement without result rows.
    NoData,
    /// Output sluice cannot attribute (`EXECUTE`, `FETCH`, `SHOW`, ...): masked when the
    /// resource has sensitive columns.
    Unknown,
}

/// COPY's text framing, as its options set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyFormat {
    pub kind: CopyKind,
    pub delimiter: u8,
    pub quote: u8,
    pub escape: u8,
    pub header: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyKind {
    Text,
    Csv,
    Binary,
}

impl Default for CopyFormat {
    fn default() -> Self {
        CopyFormat {
            kind: CopyKind::Text,
            delimiter: b'\t',
            quote: b'"',
            escape: b'"',
            header: false,
        }
    }
}

/// A column a statement writes, and what the written value is computed from: a value derived
/// from a sensitive column stays sensitive where it is stored (`UPDATE t SET notes =
/// reverse(email)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub rel: RelName,
    /// `None`: every column of the table (an INSERT without a column list).
    pub column: Option<String>,
    pub from: Derivation,
}

/// The lineage of one statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementLineage {
    pub output: Output,
    /// The union of everything its output reads: the fallback for a column whose position in
    /// the output list is ambiguous, and what taints its errors and notices.
    pub all: Derivation,
    /// Relations the statement names (for the catalog).
    pub relations: BTreeSet<RelName>,
    pub writes: Vec<Write>,
    /// It calls `set_config` or `pg_notify` with a value that reads something: the value leaves
    /// through a `ParameterStatus`, a setting or a notification.
    pub exports_state: bool,
    /// What those values are computed from.
    pub exported: Derivation,
}

/// The lineage of a text: one entry per statement, or `None` when it did not parse (every
/// output of it is then opaque).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lineage {
    pub statements: Option<Vec<StatementLineage>>,
    /// The result depends on a literal's value (COPY options), so it must not be reused for
    /// another text of the same shape.
    pub literal_dependent: bool,
}

impl Lineage {
    /// Everything any statement of the text outputs, and whether it could not be analysed.
    pub fn all(&self) -> Derivation {
        match &self.statements {
            None => Derivation::opaque(),
            Some(s) => Derivation::union(s.iter().map(|s| s.all.clone())),
        }
    }

    /// Every relation the text names.
    pub fn relations(&self) -> BTreeSet<RelName> {
        self.statements
            .iter()
            .flatten()
            .flat_map(|s| s.relations.iter().cloned())
            .collect()
    }
}

/// Longer texts are not analysed (their outputs are opaque), like the guardrails' bound.
pub const MAX_LINEAGE_LEN: usize = 1024 * 1024;
/// See the guardrails: deep ASTs need a big stack; longer texts get a thread with one.
const CALLER_STACK_LEN: usize = 8 * 1024;

/// Analyses `sql` (PostgreSQL dialect). `trusted` lists functions the policy declares pure.
pub fn analyze(sql: &str, trusted: &[String]) -> Lineage {
    let run = || {
        std::panic::catch_unwind(|| analyze_unguarded(sql, trusted)).unwrap_or(Lineage {
            statements: None,
            literal_dependent: false,
        })
    };
    if sql.len() > MAX_LINEAGE_LEN {
        return Lineage {
            statements: None,
            literal_dependent: false,
        };
    }
    if sql.len() <= CALLER_STACK_LEN {
        return run();
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("sluice-lineage".into())
            .stack_size((8 << 20) + sql.len() * 128)
            .spawn_scoped(scope, run)
            .ok()
            .and_then(|t| t.join().ok())
            .unwrap_or(Lineage {
                statements: None,
                literal_dependent: false,
            })
    })
}

fn analyze_unguarded(sql: &str, trusted: &[String]) -> Lineage {
    let Ok(statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Lineage {
            statements: None,
            literal_dependent: false,
        };
    };
    let mut literal_dependent = false;
    let out = statements
        .iter()
        .map(|s| {
            let mut w = Walker {
                trusted,
                relations: BTreeSet::new(),
                exported: Derivation::default(),
                into_writes: Vec::new(),
            };
            let (output, mut writes) = w.statement(s, &mut literal_dependent);
            writes.append(&mut w.into_writes);
            let all = match &output {
                Output::Rows(slots) | Output::Copy { slots, .. } => {
                    Derivation::union(slots.iter().map(|s| match s {
                        Slot::One(d) | Slot::Star(d) => d.clone(),
                    }))
                }
                Output::NoData => Derivation::default(),
                Output::Unknown => Derivation::opaque(),
            };
            let mut all = all;
            if let Output::Copy {
                table: Some((rel, _)),
                ..
            } = &output
            {
                all.sources.insert(Source::WholeRow(rel.clone()));
            }
            StatementLineage {
                output,
                all,
                relations: w.relations,
                writes,
                exports_state: !w.exported.reads_nothing(),
                exported: w.exported,
            }
        })
        .collect();
    Lineage {
        statements: Some(out),
        literal_dependent,
    }
}

/// A relation visible in a scope, under the name the statement qualifies it with.
#[derive(Clone, Debug)]
struct Rel {
    alias: String,
    kind: RelKind,
}

#[derive(Clone, Debug)]
enum RelKind {
    Base(RelName),
    Derived(Derived),
}

/// A subquery's, CTE's, VALUES' or table function's output columns.
#[derive(Clone, Debug, Default)]
struct Derived {
    /// Named output columns.
    named: Vec<(String, Derivation)>,
    /// Part of its output has no name sluice knows (`*`, unnamed expressions): an identifier
    /// not among `named` may still be one of its columns, computed from `all`.
    open: bool,
    all: Derivation,
}

impl Derived {
    fn column(&self, name: &str) -> Option<Derivation> {
        match self.named.iter().find(|(n, _)| n == name) {
            Some((_, d)) => Some(d.clone()),
            None if self.open => Some(self.all.clone().computed()),
            None => None,
        }
    }

    fn from_slots(slots: Vec<(Option<String>, Slot)>, aliases: &[String]) -> Derived {
        let mut d = Derived::default();
        let mut i = 0;
        for (name, slot) in slots {
            match slot {
                Slot::One(deriv) => {
                    let name = aliases.get(i).cloned().or(name);
                    d.all.absorb(deriv.clone());
                    match name {
                        Some(n) => d.named.push((n, deriv)),
                        None => d.open = true,
                    }
                    i += 1;
                }
                Slot::Star(deriv) => {
                    // Column aliases after a star cannot be placed without the catalog.
                    d.all.absorb(deriv);
                    d.open = true;
                    i = usize::MAX / 2;
                }
            }
        }
        d
    }
}

struct Scope<'p> {
    rels: Vec<Rel>,
    ctes: Vec<(String, Derived)>,
    parent: Option<&'p Scope<'p>>,
}

impl<'p> Scope<'p> {
    fn root() -> Scope<'static> {
        Scope {
            rels: Vec::new(),
            ctes: Vec::new(),
            parent: None,
        }
    }

    fn child(&'p self) -> Scope<'p> {
        Scope {
            rels: Vec::new(),
            ctes: Vec::new(),
            parent: Some(self),
        }
    }

    fn cte(&self, name: &str) -> Option<&Derived> {
        self.ctes
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d)
            .or_else(|| self.parent.and_then(|p| p.cte(name)))
    }

    fn rel(&self, alias: &str) -> Option<&Rel> {
        self.rels
            .iter()
            .find(|r| r.alias == alias)
            .or_else(|| self.parent.and_then(|p| p.rel(alias)))
    }

    fn chain(&self) -> impl Iterator<Item = &Scope<'p>> {
        std::iter::successors(Some(self), |s| s.parent)
    }
}

fn whole_row(rel: &Rel) -> Derivation {
    match &rel.kind {
        RelKind::Base(name) => Derivation::source(Source::WholeRow(name.clone())),
        RelKind::Derived(d) => d.all.clone().computed(),
    }
}

struct Walker<'t> {
    trusted: &'t [String],
    relations: BTreeSet<RelName>,
    exported: Derivation,
    /// `SELECT ... INTO` targets met while walking.
    into_writes: Vec<Write>,
}

impl Walker<'_> {
    fn statement(&mut self, s: &Statement, literal_dependent: &mut bool) -> (Output, Vec<Write>) {
        let root = Scope::root();
        match s {
            Statement::Query(q) => {
                let slots = self.query(q, &root);
                (
                    Output::Rows(slots.into_iter().map(|(_, s)| s).collect()),
                    Vec::new(),
                )
            }
            Statement::Insert(i) => {
                let target = match &i.table {
                    ast::TableObject::TableName(n) => RelName::from_object(n),
                    _ => None,
                };
                let mut scope = root.child();
                let mut writes = Vec::new();
                let source_slots = i.source.as_ref().map(|q| self.query(q, &root));
                if let Some(rel) = &target {
                    self.relations.insert(rel.clone());
                    let columns: Vec<String> = i
                        .columns
                        .iter()
                        .filter_map(|c| c.0.last())
                        .filter_map(|p| match p {
                            ObjectNamePart::Identifier(id) => Some(ident(id)),
                            ObjectNamePart::Function(_) => None,
                        })
                        .collect();
                    if let Some(slots) = &source_slots {
                        writes.extend(insert_writes(rel, &columns, slots));
                    }
                    let alias = i
                        .table_alias
                        .as_ref()
                        .map(|a| ident(&a.alias))
                        .unwrap_or_else(|| rel.name.clone());
                    scope.rels.push(Rel {
                        alias,
                        kind: RelKind::Base(rel.clone()),
                    });
                }
                let output = match &i.returning {
                    Some(items) => Output::Rows(self.projection(items, &scope)),
                    None => Output::NoData,
                };
                (output, writes)
            }
            Statement::Update(u) => {
                let mut scope = root.child();
                self.from_item(&u.table, &mut scope);
                if let Some(
                    ast::UpdateTableFromKind::AfterSet(f) | ast::UpdateTableFromKind::BeforeSet(f),
                ) = &u.from
                {
                    for t in f {
                        self.from_item(t, &mut scope);
                    }
                }
                let target = match &u.table.relation {
                    TableFactor::Table { name, .. } => RelName::from_object(name),
                    _ => None,
                };
                let mut writes = Vec::new();
                for a in &u.assignments {
                    let from = self.expr(&a.value, &scope);
                    let cols: Vec<String> = match &a.target {
                        ast::AssignmentTarget::ColumnName(n) => {
                            n.0.last()
                                .and_then(|p| match p {
                                    ObjectNamePart::Identifier(i) => Some(ident(i)),
                                    ObjectNamePart::Function(_) => None,
                                })
                                .into_iter()
                                .collect()
                        }
                        ast::AssignmentTarget::Tuple(ns) => ns
                            .iter()
                            .filter_map(|n| n.0.last())
                            .filter_map(|p| match p {
                                ObjectNamePart::Identifier(i) => Some(ident(i)),
                                ObjectNamePart::Function(_) => None,
                            })
                            .collect(),
                    };
                    if let Some(rel) = &target {
                        if cols.is_empty() {
                            writes.push(Write {
                                rel: rel.clone(),
                                column: None,
                                from: from.computed(),
                            });
                        } else {
                            for c in cols {
                                writes.push(Write {
                                    rel: rel.clone(),
                                    column: Some(c),
                                    from: from.clone().computed(),
                                });
                            }
                        }
                    }
                }
                let output = match &u.returning {
                    Some(items) => Output::Rows(self.projection(items, &scope)),
                    None => Output::NoData,
                };
                (output, writes)
            }
            Statement::Delete(d) => {
                let mut scope = root.child();
                let from = match &d.from {
                    ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
                };
                for t in from.iter().chain(d.using.iter().flatten()) {
                    self.from_item(t, &mut scope);
                }
                let output = match &d.returning {
                    Some(items) => Output::Rows(self.projection(items, &scope)),
                    None => Output::NoData,
                };
                (output, Vec::new())
            }
            Statement::Copy {
                source, to: true, ..
            } => {
                *literal_dependent = true;
                let format = copy_format(s);
                match source {
                    CopySource::Table {
                        table_name,
                        columns,
                    } => match RelName::from_object(table_name) {
                        Some(rel) => {
                            self.relations.insert(rel.clone());
                            let cols: Vec<String> = columns.iter().map(ident).collect();
                            let slots = if cols.is_empty() {
                                vec![Slot::Star(Derivation {
                                    direct: true,
                                    ..Derivation::source(Source::WholeRow(rel.clone()))
                                })]
                            } else {
                                cols.iter()
                                    .map(|c| {
                                        Slot::One(Derivation {
                                            direct: true,
                                            ..Derivation::source(Source::Column {
                                                rel: rel.clone(),
                                                column: c.clone(),
                                            })
                                        })
                                    })
                                    .collect()
                            };
                            (
                                Output::Copy {
                                    table: Some((rel, cols)),
                                    slots,
                                    format,
                                },
                                Vec::new(),
                            )
                        }
                        None => (Output::Unknown, Vec::new()),
                    },
                    CopySource::Query(q) => {
                        let slots = self.query(q, &root).into_iter().map(|(_, s)| s).collect();
                        (
                            Output::Copy {
                                table: None,
                                slots,
                                format,
                            },
                            Vec::new(),
                        )
                    }
                }
            }
            // An EXPLAIN's rows are a plan (with ANALYZE, statistics): no table values.
            Statement::Explain { statement, .. } => {
                let (_, writes) = self.statement(statement, literal_dependent);
                (Output::NoData, writes)
            }
            Statement::ExplainTable { .. } => (Output::NoData, Vec::new()),
            Statement::ShowVariable { .. } => (
                Output::Rows(vec![Slot::Star(Derivation::source(Source::Setting))]),
                Vec::new(),
            ),
            // `CREATE TABLE t AS <query>`: t's columns hold what the query computes.
            Statement::CreateTable(ct) if ct.query.is_some() => {
                let q = ct.query.as_ref().expect("checked");
                let slots = self.query(q, &root);
                let mut writes = Vec::new();
                if let Some(rel) = RelName::from_object(&ct.name) {
                    let names: Vec<String> = ct.columns.iter().map(|c| ident(&c.name)).collect();
                    let named: Vec<(Option<String>, Slot)> = slots
                        .into_iter()
                        .enumerate()
                        .map(|(i, (n, s))| (names.get(i).cloned().or(n), s))
                        .collect();
                    writes = named_writes(&rel, named);
                }
                (Output::NoData, writes)
            }
            // Only statements that can return rows matter; for the others any RowDescription is
            // unexpected and treated as unknown.
            _ => (Output::Unknown, Vec::new()),
        }
    }

    /// A query's output slots (with names where known).
    fn query(&mut self, q: &Query, parent: &Scope) -> Vec<(Option<String>, Slot)> {
        let mut scope = parent.child();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let name = ident(&cte.alias.name);
                let aliases: Vec<String> =
                    cte.alias.columns.iter().map(|c| ident(&c.name)).collect();
                if with.recursive {
                    // A recursive CTE reads itself: give it an open placeholder first.
                    scope.ctes.push((
                        name.clone(),
                        Derived {
                            open: true,
                            ..Derived::default()
                        },
                    ));
                }
                let slots = self.query(&cte.query, &scope);
                let mut derived = Derived::from_slots(slots, &aliases);
                if with.recursive {
                    // The recursive part's output feeds itself: its columns read everything.
                    derived.open = true;
                    let all = derived.all.clone();
                    for (_, d) in derived.named.iter_mut() {
                        d.absorb(all.clone());
                    }
                }
                scope.ctes.retain(|(n, _)| *n != name);
                scope.ctes.push((name, derived));
            }
        }
        self.set_expr(&q.body, &scope)
    }

    fn set_expr(&mut self, body: &SetExpr, scope: &Scope) -> Vec<(Option<String>, Slot)> {
        match body {
            SetExpr::Select(s) => self.select(s, scope),
            SetExpr::Query(q) => self.query(q, scope),
            SetExpr::SetOperation { left, right, .. } => {
                let l = self.set_expr(left, scope);
                let r = self.set_expr(right, scope);
                let all_one =
                    |v: &[(Option<String>, Slot)]| v.iter().all(|(_, s)| matches!(s, Slot::One(_)));
                if l.len() == r.len() && all_one(&l) && all_one(&r) {
                    l.into_iter()
                        .zip(r)
                        .map(|((name, a), (_, b))| {
                            let (Slot::One(a), Slot::One(b)) = (a, b) else {
                                unreachable!("checked")
                            };
                            (name, Slot::One(Derivation::union([a, b])))
                        })
                        .collect()
                } else {
                    let all = Derivation::union(l.into_iter().chain(r).map(|(_, s)| match s {
                        Slot::One(d) | Slot::Star(d) => d,
                    }));
                    vec![(None, Slot::Star(all))]
                }
            }
            SetExpr::Values(v) => {
                let width = v.rows.iter().map(|r| r.content.len()).max().unwrap_or(0);
                let mut cols = vec![Derivation::default(); width];
                for row in &v.rows {
                    for (i, e) in row.content.iter().enumerate() {
                        let d = self.expr(e, scope);
                        cols[i].absorb(d);
                    }
                }
                cols.into_iter()
                    .enumerate()
                    .map(|(i, d)| (Some(format!("column{}", i + 1)), Slot::One(d)))
                    .collect()
            }
            SetExpr::Table(t) => {
                let Some(name) = &t.table_name else {
                    return vec![(None, Slot::Star(Derivation::opaque()))];
                };
                let rel = RelName {
                    schema: t.schema_name.as_ref().map(|s| s.to_lowercase()),
                    name: name.to_lowercase(),
                };
                if rel.schema.is_none()
                    && let Some(d) = scope.cte(&rel.name)
                {
                    return vec![(None, Slot::Star(d.all.clone()))];
                }
                self.relations.insert(rel.clone());
                vec![(
                    None,
                    Slot::Star(Derivation {
                        direct: true,
                        ..Derivation::source(Source::WholeRow(rel))
                    }),
                )]
            }
            // DML inside a query (`WITH d AS (DELETE ... RETURNING ...)`).
            SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
                let mut ignored = false;
                match self.statement(s, &mut ignored).0 {
                    Output::Rows(slots) => slots.into_iter().map(|s| (None, s)).collect(),
                    _ => vec![(None, Slot::Star(Derivation::opaque()))],
                }
            }
        }
    }

    fn select(&mut self, s: &Select, parent: &Scope) -> Vec<(Option<String>, Slot)> {
        let mut scope = parent.child();
        for t in &s.from {
            self.from_item(t, &mut scope);
        }
        let slots = self.projection_named(&s.projection, &scope);
        // `SELECT ... INTO t`: a new table holding the output.
        if let Some(into) = &s.into {
            for t in &into.targets {
                let rel = match t {
                    Expr::Identifier(i) => Some(RelName {
                        schema: None,
                        name: ident(i),
                    }),
                    Expr::CompoundIdentifier(ids) => {
                        RelName::from_object(&ObjectName::from(ids.clone()))
                    }
                    _ => None,
                };
                if let Some(rel) = rel {
                    self.into_writes.extend(named_writes(&rel, slots.clone()));
                }
            }
        }
        // GROUP BY, WHERE, HAVING, ORDER BY compute no output value; their subqueries can still
        // call state-exporting functions, which the function walk notes either way.
        for e in s.selection.iter().chain(s.having.iter()) {
            let _ = self.expr(e, &scope);
        }
        slots
    }

    fn projection(&mut self, items: &[SelectItem], scope: &Scope) -> Vec<Slot> {
        self.projection_named(items, scope)
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    }

    fn projection_named(
        &mut self,
        items: &[SelectItem],
        scope: &Scope,
    ) -> Vec<(Option<String>, Slot)> {
        items
            .iter()
            .map(|item| match item {
                SelectItem::UnnamedExpr(e) => (output_name(e), Slot::One(self.expr(e, scope))),
                SelectItem::ExprWithAlias { expr, alias } => {
                    (Some(ident(alias)), Slot::One(self.expr(expr, scope)))
                }
                SelectItem::ExprWithAliases { expr, .. } => {
                    (None, Slot::Star(self.expr(expr, scope).computed()))
                }
                SelectItem::Wildcard(_) => {
                    let d = Derivation::union(scope.rels.iter().map(whole_row));
                    (None, Slot::Star(Derivation { direct: true, ..d }))
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let d = match kind {
                        SelectItemQualifiedWildcardKind::ObjectName(n) => {
                            self.qualified_whole_row(n, scope)
                        }
                        SelectItemQualifiedWildcardKind::Expr(e) => self.expr(e, scope).computed(),
                    };
                    (None, Slot::Star(d))
                }
            })
            .collect()
    }

    /// `t.*` or `schema.t.*`.
    fn qualified_whole_row(&mut self, n: &ObjectName, scope: &Scope) -> Derivation {
        let Some(rel) = RelName::from_object(n) else {
            return Derivation::opaque();
        };
        match scope.rel(&rel.name) {
            Some(r) => whole_row(r),
            None => {
                self.relations.insert(rel.clone());
                Derivation::source(Source::WholeRow(rel))
            }
        }
    }

    fn from_item(&mut self, t: &TableWithJoins, scope: &mut Scope) {
        self.table_factor(&t.relation, scope);
        for j in &t.joins {
            self.table_factor(&j.relation, scope);
        }
    }

    fn table_factor(&mut self, f: &TableFactor, scope: &mut Scope) {
        let alias_of = |a: &Option<ast::TableAlias>| {
            a.as_ref().map(|a| {
                (
                    ident(&a.name),
                    a.columns.iter().map(|c| ident(&c.name)).collect::<Vec<_>>(),
                )
            })
        };
        match f {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                let Some(rel) = RelName::from_object(name) else {
                    return;
                };
                let (alias_name, col_aliases) =
                    alias_of(alias).unwrap_or_else(|| (rel.name.clone(), Vec::new()));
                // A table function written like a table: `FROM generate_series(1, 3) g`.
                if let Some(args) = args {
                    let d = self.function_call(name, &args.args, None, scope);
                    scope.rels.push(Rel {
                        alias: alias_name,
                        kind: RelKind::Derived(function_output(d, &col_aliases)),
                    });
                    return;
                }
                if rel.schema.is_none()
                    && let Some(cte) = scope.cte(&rel.name)
                {
                    let mut d = cte.clone();
                    for (i, a) in col_aliases.iter().enumerate() {
                        if let Some(slot) = d.named.get_mut(i) {
                            slot.0 = a.clone();
                        }
                    }
                    scope.rels.push(Rel {
                        alias: alias_name,
                        kind: RelKind::Derived(d),
                    });
                    return;
                }
                self.relations.insert(rel.clone());
                if col_aliases.is_empty() {
                    scope.rels.push(Rel {
                        alias: alias_name,
                        kind: RelKind::Base(rel),
                    });
                } else {
                    // `FROM customers AS c(a, b)` renames the first columns: which ones they are
                    // needs the catalog, so every name reads the whole row.
                    let whole = Derivation::source(Source::WholeRow(rel.clone()));
                    scope.rels.push(Rel {
                        alias: alias_name,
                        kind: RelKind::Derived(Derived {
                            named: Vec::new(),
                            open: true,
                            all: whole,
                        }),
                    });
                    scope.rels.push(Rel {
                        alias: String::new(),
                        kind: RelKind::Base(rel),
                    });
                }
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                // Derived tables may read the FROM items before them (LATERAL): the scope so far.
                let slots = {
                    let s: &Scope = scope;
                    self.query(subquery, s)
                };
                let (name, aliases) = alias_of(alias).unwrap_or_default();
                scope.rels.push(Rel {
                    alias: name,
                    kind: RelKind::Derived(Derived::from_slots(slots, &aliases)),
                });
            }
            TableFactor::Function {
                name, args, alias, ..
            } => {
                let d = self.function_call(name, args, None, scope);
                let (n, aliases) = alias_of(alias).unwrap_or_else(|| {
                    (
                        RelName::from_object(name)
                            .map(|r| r.name)
                            .unwrap_or_default(),
                        Vec::new(),
                    )
                });
                scope.rels.push(Rel {
                    alias: n,
                    kind: RelKind::Derived(function_output(d, &aliases)),
                });
            }
            TableFactor::UNNEST {
                alias, array_exprs, ..
            } => {
                let d = Derivation::union(array_exprs.iter().map(|e| self.expr(e, scope)));
                let (n, aliases) = alias_of(alias).unwrap_or_else(|| ("unnest".into(), Vec::new()));
                scope.rels.push(Rel {
                    alias: n,
                    kind: RelKind::Derived(function_output(d, &aliases)),
                });
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                let mut inner = Scope {
                    rels: Vec::new(),
                    ctes: Vec::new(),
                    parent: Some(scope),
                };
                self.from_item(table_with_joins, &mut inner);
                let rels = inner.rels;
                match alias_of(alias) {
                    Some((n, aliases)) => {
                        let all = Derivation::union(rels.iter().map(whole_row));
                        let _ = aliases;
                        scope.rels.push(Rel {
                            alias: n,
                            kind: RelKind::Derived(Derived {
                                named: Vec::new(),
                                open: true,
                                all,
                            }),
                        });
                        // Its members stay reachable for unqualified names.
                        scope.rels.extend(rels.into_iter().map(|r| Rel {
                            alias: String::new(),
                            ..r
                        }));
                    }
                    None => scope.rels.extend(rels),
                }
            }
            // Anything else (TableFunction, JSON_TABLE, XMLTABLE, ...): opaque, reading whatever
            // its expressions read.
            other => {
                let mut d = Derivation::opaque();
                let _ = ast::visit_expressions(other, |e| {
                    d.absorb(self.expr(e, scope));
                    ControlFlow::<()>::Continue(())
                });
                let alias = match other {
                    TableFactor::TableFunction { alias, .. }
                    | TableFactor::JsonTable { alias, .. }
                    | TableFactor::XmlTable { alias, .. } => {
                        alias_of(alias).map(|a| a.0).unwrap_or_default()
                    }
                    _ => String::new(),
                };
                scope.rels.push(Rel {
                    alias,
                    kind: RelKind::Derived(Derived {
                        named: Vec::new(),
                        open: true,
                        all: d,
                    }),
                });
            }
        }
    }

    /// A plain identifier: a column of some relation in scope, or a whole row.
    fn identifier(&mut self, parts: &[ast::Ident], scope: &Scope) -> Derivation {
        let names: Vec<String> = parts.iter().map(ident).collect();
        let mut d = Derivation {
            direct: true,
            ..Derivation::default()
        };
        match names.as_slice() {
            [] => {}
            [col] => {
                let mut found = false;
                for s in scope.chain() {
                    for r in &s.rels {
                        match &r.kind {
                            RelKind::Base(rel) => {
                                d.sources.insert(Source::Column {
                                    rel: rel.clone(),
                                    column: col.clone(),
                                });
                                found = true;
                            }
                            RelKind::Derived(der) => {
                                if let Some(x) = der.column(col) {
                                    d.sources.extend(x.sources);
                                    d.opaque |= x.opaque;
                                    d.direct &= x.direct;
                                    found = true;
                                }
                            }
                        }
                        // A relation's name alone is its whole row (`row_to_json(c)`, `c::text`).
                        if !r.alias.is_empty() && r.alias == *col {
                            let w = whole_row(r);
                            d.sources.extend(w.sources);
                            d.opaque |= w.opaque;
                            d.direct = false;
                            found = true;
                        }
                    }
                }
                if !found {
                    d.sources.insert(Source::AnyColumnNamed(col.clone()));
                }
            }
            [.., qual, col] => {
                match scope.rel(qual) {
                    Some(r) => match &r.kind {
                        RelKind::Base(rel) => {
                            d.sources.insert(Source::Column {
                                rel: rel.clone(),
                                column: col.clone(),
                            });
                        }
                        RelKind::Derived(der) => match der.column(col) {
                            Some(x) => {
                                d.sources.extend(x.sources);
                                d.opaque |= x.opaque;
                                d.direct &= x.direct;
                            }
                            // `(c).field` of a composite column, or a name sluice got wrong.
                            None => {
                                let w = whole_row(r);
                                d.absorb(w);
                            }
                        },
                    },
                    None => {
                        // `schema.table.column` with no alias in scope, or a field of a
                        // composite column named `qual`: either way, both names.
                        d.sources.insert(Source::AnyColumnNamed(col.clone()));
                        d.sources.insert(Source::AnyColumnNamed(qual.clone()));
                        d.direct = false;
                    }
                }
            }
        }
        d
    }

    fn expr(&mut self, e: &Expr, scope: &Scope) -> Derivation {
        match e {
            Expr::Identifier(i) => self.identifier(std::slice::from_ref(i), scope),
            Expr::CompoundIdentifier(ids) => self.identifier(ids, scope),
            Expr::Value(_) | Expr::TypedString(_) | Expr::Interval(_) => Derivation::default(),
            Expr::Nested(inner) => self.expr(inner, scope),
            // A cast keeps the value (it may reveal it: `email::bytea`), and keeps a
            // non-revealing root non-revealing (`count(*)::int`): the result type is checked.
            Expr::Cast { expr, .. } => self.expr(expr, scope),
            Expr::Collate { expr, .. } => self.expr(expr, scope),
            Expr::IsNull(x) | Expr::IsNotNull(x) => {
                let d = self.expr(x, scope);
                predicate([d])
            }
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
                let (a, b) = (self.expr(a, scope), self.expr(b, scope));
                predicate([a, b])
            }
            Expr::BinaryOp { left, op, right } => {
                let (l, r) = (self.expr(left, scope), self.expr(right, scope));
                if matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq) {
                    predicate([l, r])
                } else {
                    Derivation::union([l, r])
                }
            }
            Expr::InList { expr, list, .. } => {
                let mut ds = vec![self.expr(expr, scope)];
                ds.extend(list.iter().map(|e| self.expr(e, scope)));
                predicate(ds)
            }
            Expr::UnaryOp { op, expr } => {
                let d = self.expr(expr, scope);
                match op {
                    UnaryOperator::Not => Derivation::union([d]),
                    _ => d.computed(),
                }
            }
            Expr::Function(f) => {
                let args: &[FunctionArg] = match &f.args {
                    FunctionArguments::List(l) => &l.args,
                    _ => &[],
                };
                let mut d = self.function_call(&f.name, args, f.filter.as_deref(), scope);
                if let FunctionArguments::Subquery(q) = &f.args {
                    let sub = self.subquery_value(q, scope);
                    d.absorb(sub);
                }
                if let FunctionArguments::List(l) = &f.args {
                    for c in &l.clauses {
                        let _ = ast::visit_expressions(c, |e| {
                            let x = self.expr(e, scope);
                            // ORDER BY inside an aggregate only orders its input.
                            let _ = x;
                            ControlFlow::<()>::Continue(())
                        });
                    }
                }
                // Window clauses only group and order.
                d
            }
            Expr::Subquery(q) => self.subquery_value(q, scope),
            Expr::Exists { subquery, .. } => {
                // One bit, but from whatever the subquery filters on: treat like its output.
                let d = self.subquery_value(subquery, scope);
                d.computed()
            }
            Expr::InSubquery { expr, subquery, .. } => {
                let a = self.expr(expr, scope);
                let b = self.subquery_value(subquery, scope);
                predicate([a, b])
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                // The branch taken depends on the conditions: the result reads them too.
                let mut d = Derivation::default();
                if let Some(o) = operand {
                    d.absorb(self.expr(o, scope));
                }
                for c in conditions {
                    d.absorb(self.expr(&c.condition, scope));
                    d.absorb(self.expr(&c.result, scope));
                }
                if let Some(x) = else_result {
                    d.absorb(self.expr(x, scope));
                }
                d
            }
            // Everything else: whatever it contains, computed (not direct, not a sanitizer).
            other => self.generic(other, scope),
        }
    }

    /// A construct without its own case: every identifier, function and subquery in it.
    fn generic(&mut self, e: &Expr, scope: &Scope) -> Derivation {
        let mut d = Derivation::default();
        let mut nested_queries = Vec::new();
        let _ = ast::visit_expressions(e, |x| {
            match x {
                Expr::Identifier(i) => d.absorb(self.identifier(std::slice::from_ref(i), scope)),
                Expr::CompoundIdentifier(ids) => d.absorb(self.identifier(ids, scope)),
                Expr::Function(f) => {
                    let args: &[FunctionArg] = match &f.args {
                        FunctionArguments::List(l) => &l.args,
                        _ => &[],
                    };
                    // Arguments are visited on their own; here only the function and its `*`s.
                    let mut fd = self.function_call(&f.name, &[], None, scope);
                    for a in args {
                        if let Some(w) = self.wildcard_arg(a, scope) {
                            fd.absorb(w);
                        }
                    }
                    d.absorb(fd);
                }
                Expr::Subquery(q) | Expr::Exists { subquery: q, .. } => {
                    nested_queries.push(q.clone())
                }
                Expr::InSubquery { subquery, .. } => nested_queries.push(subquery.clone()),
                Expr::Wildcard(_) => d.absorb(Derivation::union(scope.rels.iter().map(whole_row))),
                Expr::QualifiedWildcard(n, _) => {
                    let w = self.qualified_whole_row(n, scope);
                    d.absorb(w)
                }
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
        for q in nested_queries {
            let sub = self.subquery_value(&q, scope);
            d.absorb(sub);
        }
        d.computed()
    }

    /// The value of a scalar subquery (or what an EXISTS/IN reads): all its output.
    fn subquery_value(&mut self, q: &Query, scope: &Scope) -> Derivation {
        let slots = self.query(q, scope);
        Derivation::union(slots.into_iter().map(|(_, s)| match s {
            Slot::One(d) | Slot::Star(d) => d,
        }))
        .computed()
    }

    /// `c.*` or `*` as a function argument: the whole row.
    fn wildcard_arg(&mut self, a: &FunctionArg, scope: &Scope) -> Option<Derivation> {
        let arg = match a {
            FunctionArg::Named { arg, .. }
            | FunctionArg::ExprNamed { arg, .. }
            | FunctionArg::Unnamed(arg) => arg,
        };
        match arg {
            FunctionArgExpr::Expr(_) => None,
            FunctionArgExpr::QualifiedWildcard(n) => Some(self.qualified_whole_row(n, scope)),
            FunctionArgExpr::Wildcard | FunctionArgExpr::WildcardWithOptions(_) => {
                Some(Derivation::union(scope.rels.iter().map(whole_row)))
            }
        }
    }

    fn function_call(
        &mut self,
        name: &ObjectName,
        args: &[FunctionArg],
        filter: Option<&Expr>,
        scope: &Scope,
    ) -> Derivation {
        let fname = function_name(name);
        let mut arg_ds = Vec::with_capacity(args.len());
        let mut star = false;
        let is_count = fname.as_deref() == Some("count");
        for a in args {
            if let Some(w) = self.wildcard_arg(a, scope) {
                star = true;
                // `count(*)` counts rows; it reads no column.
                if !is_count {
                    arg_ds.push(w);
                }
                continue;
            }
            let (FunctionArg::Named {
                arg: FunctionArgExpr::Expr(e),
                ..
            }
            | FunctionArg::ExprNamed {
                arg: FunctionArgExpr::Expr(e),
                ..
            }
            | FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) = a
            else {
                continue;
            };
            arg_ds.push(self.expr(e, scope));
        }
        let filter_d = filter.map(|f| self.expr(f, scope)).unwrap_or_default();
        let Some(fname) = fname else {
            let mut d = Derivation::union(arg_ds);
            d.absorb(filter_d);
            d.opaque = true;
            return d;
        };
        if matches!(fname.as_str(), "set_config" | "pg_notify") {
            for a in &arg_ds {
                self.exported.absorb(a.clone());
            }
        }
        if fname == "current_setting" {
            let mut d = Derivation::union(arg_ds);
            d.sources.insert(Source::Setting);
            return d;
        }
        let known = is_builtin_pure(&fname) || self.trusted.iter().any(|t| *t == fname);
        // `count(*)` reads no column; `count(x)` only whether x is NULL.
        if fname == "count" && (star || known) {
            let mut inner = Derivation::union(arg_ds);
            inner.absorb(filter_d.clone());
            return Derivation {
                sources: inner.sources,
                opaque: inner.opaque,
                direct: false,
                sanitizer: Some((Sanitizer::Count, Box::new(filter_d.computed()))),
            };
        }
        if let Some(Sanitizer::Length) = sanitizer_kind(&fname)
            && arg_ds.len() == 1
        {
            let a = arg_ds.pop().expect("one");
            let must = if a.direct {
                Derivation::default()
            } else {
                a.clone().computed()
            };
            return Derivation {
                sources: a.sources.clone(),
                opaque: a.opaque,
                direct: false,
                sanitizer: Some((Sanitizer::Length, Box::new(must))),
            };
        }
        let mut d = Derivation::union(arg_ds);
        d.absorb(filter_d);
        if !known {
            d.opaque = true;
        }
        d
    }
}

/// The name of a function if sluice may know it: unqualified or in `pg_catalog` (a function
/// of another schema is never the built-in of that name).
fn function_name(n: &ObjectName) -> Option<String> {
    let parts: Vec<String> =
        n.0.iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => Some(ident(i)),
                ObjectNamePart::Function(_) => None,
            })
            .collect::<Option<_>>()?;
    match parts.as_slice() {
        [f] => Some(f.clone()),
        [schema, f] if schema == "pg_catalog" => Some(f.clone()),
        _ => None,
    }
}

/// A comparison that is one guess per row when every operand is either a plain column or reads
/// nothing sensitive: the transformed operands must then resolve clean.
fn predicate(operands: impl IntoIterator<Item = Derivation>) -> Derivation {
    let operands: Vec<Derivation> = operands.into_iter().collect();
    let must = Derivation::union(
        operands
            .iter()
            .filter(|d| !d.direct)
            .cloned()
            .map(Derivation::computed),
    );
    let all = Derivation::union(operands);
    Derivation {
        sources: all.sources,
        opaque: all.opaque,
        direct: false,
        sanitizer: Some((Sanitizer::Predicate, Box::new(must))),
    }
}

/// A table function's output: every column reads its arguments.
fn function_output(d: Derivation, aliases: &[String]) -> Derived {
    let d = d.computed();
    Derived {
        named: aliases.iter().map(|a| (a.clone(), d.clone())).collect(),
        open: true,
        all: d,
    }
}

/// The name PostgreSQL gives an unaliased output column (only what lookups by name need).
fn output_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(ident(i)),
        Expr::CompoundIdentifier(ids) => ids.last().map(ident),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => output_name(expr),
        Expr::Function(f) => function_name(&f.name),
        _ => None,
    }
}

/// `INSERT INTO t (cols) <query>`: what each written column is computed from.
fn insert_writes(
    rel: &RelName,
    columns: &[String],
    slots: &[(Option<String>, Slot)],
) -> Vec<Write> {
    let exact = slots.iter().all(|(_, s)| matches!(s, Slot::One(_)));
    if !columns.is_empty() && exact && slots.len() == columns.len() {
        return columns
            .iter()
            .zip(slots)
            .map(|(c, (_, s))| Write {
                rel: rel.clone(),
                column: Some(c.clone()),
                from: match s {
                    Slot::One(d) | Slot::Star(d) => d.clone().computed(),
                },
            })
            .collect();
    }
    let all = Derivation::union(slots.iter().map(|(_, s)| match s {
        Slot::One(d) | Slot::Star(d) => d.clone(),
    }));
    if columns.is_empty() {
        vec![Write {
            rel: rel.clone(),
            column: None,
            from: all,
        }]
    } else {
        columns
            .iter()
            .map(|c| Write {
                rel: rel.clone(),
                column: Some(c.clone()),
                from: all.clone(),
            })
            .collect()
    }
}

/// Columns of a new table, named by the query's output names (unnamed ones: every column).
fn named_writes(rel: &RelName, slots: Vec<(Option<String>, Slot)>) -> Vec<Write> {
    slots
        .into_iter()
        .map(|(name, s)| {
            let (column, from) = match s {
                Slot::One(d) => (name, d),
                Slot::Star(d) => (None, d),
            };
            Write {
                rel: rel.clone(),
                column,
                from: from.computed(),
            }
        })
        .collect()
}

/// COPY's format options (both the modern and the pre-9.0 syntax).
fn copy_format(s: &Statement) -> CopyFormat {
    let mut f = CopyFormat::default();
    let Statement::Copy {
        options,
        legacy_options,
        ..
    } = s
    else {
        return f;
    };
    let mut quote = None;
    let mut escape = None;
    let mut delimiter = None;
    for o in options {
        match o {
            CopyOption::Format(i) => {
                f.kind = match i.value.to_lowercase().as_str() {
                    "csv" => CopyKind::Csv,
                    "binary" => CopyKind::Binary,
                    _ => CopyKind::Text,
                }
            }
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            CopyOption::Quote(c) => quote = Some(*c),
            CopyOption::Escape(c) => escape = Some(*c),
            CopyOption::Header(h) => f.header = *h,
            _ => {}
        }
    }
    for o in legacy_options {
        match o {
            CopyLegacyOption::Binary => f.kind = CopyKind::Binary,
            CopyLegacyOption::Csv(csv) => {
                f.kind = CopyKind::Csv;
                for c in csv {
                    match c {
                        ast::CopyLegacyCsvOption::Header => f.header = true,
                        ast::CopyLegacyCsvOption::Quote(q) => quote = Some(*q),
                        ast::CopyLegacyCsvOption::Escape(e) => escape = Some(*e),
                        _ => {}
                    }
                }
            }
            CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            _ => {}
        }
    }
    let byte = |c: char| u8::try_from(u32::from(c)).unwrap_or(b'?');
    if f.kind == CopyKind::Csv {
        f.delimiter = b',';
    }
    if let Some(d) = delimiter {
        f.delimiter = byte(d);
    }
    if let Some(q) = quote {
        f.quote = byte(q);
    }
    f.escape = escape.map(byte).unwrap_or(f.quote);
    f
}
