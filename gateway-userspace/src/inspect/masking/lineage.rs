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

mod expr;
mod functions;
mod scope;
#[cfg(test)]
mod tests;
mod walk;
mod writes;

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
use scope::Walker;

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
