//! A small constant folder: is a WHERE clause true for every row?
//!
//! It only has to catch the ways people (and agents) write "everything": `true`, `1=1`,
//! `'a'='a'`, `NOT false`, `2>1`, `true OR id = 5`, `x = x`, `EXISTS (SELECT 1)`. Anything it
//! cannot evaluate is "not constant", which means "not flagged": the folder errs towards
//! missing exotic tautologies, never towards flagging a real filter. Recursion is bounded.

use std::{cell::Cell, cmp::Ordering, ops::ControlFlow};

use sqlparser::ast::{
    BinaryOperator as B, DataType, Expr, Query, SetExpr, UnaryOperator as U, Value,
    visit_expressions,
};

thread_local! {
    /// Set when an answer of this module depended on what a literal says: the analysis then
    /// holds only for this exact text, not for every text of the same shape with other literals
    /// (see [`super::SqlAnalyzer`]).
    static LITERAL_READ: Cell<bool> = const { Cell::new(false) };
}

/// Clears the flag (before an analysis) and returns whether it was set (after one).
pub(super) fn take_literal_read() -> bool {
    LITERAL_READ.replace(false)
}

/// Structural equality that notes when literals took part: `a + 1 = a + 1` is a tautology,
/// `a + 1 = a + 2` is not. A side without literals cannot equal a side with some, whatever
/// they say, so only "both sides have literals" counts.
fn same(a: &Expr, b: &Expr) -> bool {
    let has_literal = |e: &Expr| {
        visit_expressions(e, |x| match x {
            Expr::Value(_) | Expr::TypedString(_) => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
        .is_break()
    };
    if has_literal(a) && has_literal(b) {
        LITERAL_READ.set(true);
    }
    a == b
}

/// Deeper expressions are "not constant". sqlparser itself stops at 50 levels.
const MAX_DEPTH: usize = 32;

#[derive(Clone, Debug, PartialEq)]
enum C {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
}

/// True when `e`, used as a WHERE clause, keeps every row (every non-NULL row for `x = x`).
pub(super) fn always_true(e: &Expr) -> bool {
    taut(e, 0)
}

/// The value of a boolean utility option (`EXPLAIN (ANALYZE off)`), if it is a constant.
pub(super) fn option_bool(e: &Expr) -> Option<bool> {
    let c = match e {
        Expr::Identifier(i) => return parse_bool(&i.value),
        _ => boolish(fold(e, 0)?)?,
    };
    match c {
        C::Bool(b) => Some(b),
        _ => None,
    }
}

/// The value of a constant string expression (`'role'`, `'ro' || 'le'`, `'role'::text`).
pub(super) fn const_string(e: &Expr) -> Option<String> {
    match fold(e, 0)? {
        C::Str(s) => Some(s),
        _ => None,
    }
}

fn taut(e: &Expr, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    if fold(e, depth).and_then(boolish) == Some(C::Bool(true)) {
        return true;
    }
    let d = depth + 1;
    match e {
        Expr::Nested(inner) | Expr::IsTrue(inner) | Expr::IsNotFalse(inner) => taut(inner, d),
        Expr::BinaryOp { op: B::Or, .. } => {
            let terms = chain(e, &B::Or);
            terms.iter().any(|t| taut(t, d))
                || (terms.len() <= 64
                    && terms
                        .iter()
                        .enumerate()
                        .any(|(i, a)| terms[i + 1..].iter().any(|b| null_complement(a, b))))
        }
        Expr::BinaryOp { op: B::And, .. } => chain(e, &B::And).iter().all(|t| taut(t, d)),
        // `x = x` holds for every row where x is not NULL: as good as no filter. Constants were
        // folded above (`NULL = NULL` is NULL, not true).
        Expr::BinaryOp {
            left,
            op: B::Eq | B::GtEq | B::LtEq,
            right,
        } => same(left, right) && pure(left, d) && fold(left, d).is_none(),
        Expr::IsNotDistinctFrom(l, r) => same(l, r) && pure(l, d),
        Expr::Exists {
            subquery,
            negated: false,
        } => nonempty(subquery, d),
        _ => false,
    }
}

/// The operands of a chain of one associative operator (`a OR b OR (c OR d)`), without
/// recursion: a left-deep chain is as deep as it is long.
fn chain<'a>(e: &'a Expr, op: &B) -> Vec<&'a Expr> {
    let mut out = Vec::new();
    let mut pending = vec![e];
    while let Some(e) = pending.pop() {
        match strip(e) {
            Expr::BinaryOp { left, op: o, right } if o == op => {
                pending.push(right);
                pending.push(left);
            }
            other => out.push(other),
        }
    }
    out
}

fn chain_of<'a>(left: &'a Expr, right: &'a Expr, op: &B) -> Vec<&'a Expr> {
    let mut terms = chain(left, op);
    terms.extend(chain(right, op));
    terms
}

/// `x IS NULL OR x IS NOT NULL`.
fn null_complement(l: &Expr, r: &Expr) -> bool {
    match (strip(l), strip(r)) {
        (Expr::IsNull(a), Expr::IsNotNull(b)) | (Expr::IsNotNull(a), Expr::IsNull(b)) => same(a, b),
        _ => false,
    }
}

fn strip(mut e: &Expr) -> &Expr {
    while let Expr::Nested(inner) = e {
        e = inner;
    }
    e
}

/// Same value every time it is evaluated on the same row: columns, constants, operators.
/// Function calls are excluded (`random() = random()` is not a tautology).
fn pure(e: &Expr, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let d = depth + 1;
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Value(_) => true,
        Expr::Nested(i) | Expr::UnaryOp { expr: i, .. } | Expr::Cast { expr: i, .. } => pure(i, d),
        Expr::BinaryOp { left, right, .. } => pure(left, d) && pure(right, d),
        _ => false,
    }
}

/// `(SELECT 1)`: no FROM, no filter that could fail, no LIMIT/OFFSET.
fn nonempty(q: &Query, depth: usize) -> bool {
    if q.with.is_some() || q.limit_clause.is_some() || q.fetch.is_some() {
        return false;
    }
    match &*q.body {
        SetExpr::Select(s) => {
            s.from.is_empty()
                && s.having.is_none()
                && s.selection.as_ref().is_none_or(|w| taut(w, depth + 1))
        }
        SetExpr::Values(v) => !v.rows.is_empty(),
        _ => false,
    }
}

fn fold(e: &Expr, depth: usize) -> Option<C> {
    if depth > MAX_DEPTH {
        return None;
    }
    let d = depth + 1;
    match e {
        Expr::Value(v) => value(&v.value),
        Expr::Nested(i) => fold(i, d),
        Expr::UnaryOp { op, expr } => {
            let v = fold(expr, d)?;
            match op {
                U::Not => not(boolish(v)?),
                U::Minus => match v {
                    C::Int(i) => i.checked_neg().map(C::Int),
                    C::Float(f) => Some(C::Float(-f)),
                    C::Null => Some(C::Null),
                    _ => None,
                },
                U::Plus => match v {
                    C::Int(_) | C::Float(_) | C::Null => Some(v),
                    _ => None,
                },
                _ => None,
            }
        }
        Expr::BinaryOp { left, op, right } => binop(left, op, right, d),
        Expr::IsNull(i) => Some(C::Bool(fold(i, d)? == C::Null)),
        Expr::IsNotNull(i) => Some(C::Bool(fold(i, d)? != C::Null)),
        Expr::IsTrue(i) => Some(C::Bool(boolish(fold(i, d)?)? == C::Bool(true))),
        Expr::IsNotTrue(i) => Some(C::Bool(boolish(fold(i, d)?)? != C::Bool(true))),
        Expr::IsFalse(i) => Some(C::Bool(boolish(fold(i, d)?)? == C::Bool(false))),
        Expr::IsNotFalse(i) => Some(C::Bool(boolish(fold(i, d)?)? != C::Bool(false))),
        Expr::IsDistinctFrom(l, r) => not_distinct(l, r, d).map(|b| C::Bool(!b)),
        Expr::IsNotDistinctFrom(l, r) => not_distinct(l, r, d).map(C::Bool),
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let x = fold(expr, d)?;
            let mut acc = C::Bool(false);
            for item in list {
                acc = or(acc, compare(&x, &fold(item, d)?, B::Eq)?)?;
            }
            if *negated { not(acc) } else { Some(acc) }
        }
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let x = fold(expr, d)?;
            let v = and(
                compare(&x, &fold(low, d)?, B::GtEq)?,
                compare(&x, &fold(high, d)?, B::LtEq)?,
            )?;
            if *negated { not(v) } else { Some(v) }
        }
        Expr::Cast {
            expr, data_type, ..
        } => cast(fold(expr, d)?, data_type),
        Expr::TypedString(ts) => cast(value(&ts.value.value)?, &ts.data_type),
        _ => None,
    }
}

fn binop(left: &Expr, op: &B, right: &Expr, d: usize) -> Option<C> {
    match op {
        // Three-valued logic with short-circuit: `true OR <anything>` is true even when the
        // other side is a column. Chains are flattened so `true OR a OR b OR ...` (a left-deep
        // tree with `true` at the bottom) is found however long it is.
        B::Or | B::And => {
            // true absorbs an OR, false absorbs an AND.
            let absorbing = *op == B::Or;
            let mut unknown = false;
            let mut null = false;
            for term in chain_of(left, right, op) {
                match fold(term, d).and_then(boolish) {
                    Some(C::Bool(b)) if b == absorbing => return Some(C::Bool(absorbing)),
                    Some(C::Bool(_)) => {}
                    Some(_) => null = true,
                    None => unknown = true,
                }
            }
            if unknown {
                None
            } else if null {
                Some(C::Null)
            } else {
                Some(C::Bool(!absorbing))
            }
        }
        B::Eq | B::NotEq | B::Lt | B::Gt | B::LtEq | B::GtEq => {
            compare(&fold(left, d)?, &fold(right, d)?, op.clone())
        }
        B::Plus | B::Minus | B::Multiply => arith(fold(left, d)?, fold(right, d)?, op),
        B::StringConcat => match (fold(left, d)?, fold(right, d)?) {
            (C::Null, _) | (_, C::Null) => Some(C::Null),
            (C::Str(a), C::Str(b)) => Some(C::Str(a + &b)),
            _ => None,
        },
        _ => None,
    }
}

fn value(v: &Value) -> Option<C> {
    LITERAL_READ.set(true);
    Some(match v {
        Value::Null => C::Null,
        Value::Boolean(b) => C::Bool(*b),
        Value::Number(n, _) => number(n)?,
        Value::SingleQuotedString(s)
        | Value::EscapedStringLiteral(s)
        | Value::UnicodeStringLiteral(s)
        | Value::NationalStringLiteral(s) => C::Str(s.clone()),
        Value::DollarQuotedString(s) => C::Str(s.value.clone()),
        _ => return None,
    })
}

fn number(n: &str) -> Option<C> {
    if let Ok(i) = n.parse::<i128>() {
        return Some(C::Int(i));
    }
    n.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(C::Float)
}

/// PostgreSQL's boolean input (`boolin`): case-insensitive, surrounding blanks ignored, unique
/// prefixes of true/false/yes/no, `on`, `off`, `1`, `0`.
fn parse_bool(s: &str) -> Option<bool> {
    let s = s.trim().to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| s.len() >= min && word.starts_with(s.as_str());
    if prefix_of("true", 1) || prefix_of("yes", 1) || s == "on" || s == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || s == "0" {
        Some(false)
    } else {
        None
    }
}

/// A value in boolean position. A bare integer is an error in PostgreSQL (`WHERE 1`); reading
/// it as C-style truth flags a statement that would fail anyway, which is the safe side.
fn boolish(c: C) -> Option<C> {
    match c {
        C::Null | C::Bool(_) => Some(c),
        C::Str(s) => parse_bool(&s).map(C::Bool),
        C::Int(i) => Some(C::Bool(i != 0)),
        C::Float(_) => None,
    }
}

fn not(c: C) -> Option<C> {
    match c {
        C::Bool(b) => Some(C::Bool(!b)),
        C::Null => Some(C::Null),
        _ => None,
    }
}

fn and(a: C, b: C) -> Option<C> {
    match (boolish(a)?, boolish(b)?) {
        (C::Bool(false), _) | (_, C::Bool(false)) => Some(C::Bool(false)),
        (C::Bool(true), C::Bool(true)) => Some(C::Bool(true)),
        _ => Some(C::Null),
    }
}

fn or(a: C, b: C) -> Option<C> {
    match (boolish(a)?, boolish(b)?) {
        (C::Bool(true), _) | (_, C::Bool(true)) => Some(C::Bool(true)),
        (C::Bool(false), C::Bool(false)) => Some(C::Bool(false)),
        _ => Some(C::Null),
    }
}

fn not_distinct(l: &Expr, r: &Expr, d: usize) -> Option<bool> {
    let (l, r) = (fold(l, d)?, fold(r, d)?);
    match (&l, &r) {
        (C::Null, C::Null) => Some(true),
        (C::Null, _) | (_, C::Null) => Some(false),
        _ => match compare(&l, &r, B::Eq)? {
            C::Bool(b) => Some(b),
            _ => None,
        },
    }
}

/// SQL comparison of two constants; `None` when PostgreSQL would coerce in a way we do not
/// model (or raise an error).
fn compare(a: &C, b: &C, op: B) -> Option<C> {
    let ord = match (a, b) {
        (C::Null, _) | (_, C::Null) => return Some(C::Null),
        (C::Int(x), C::Int(y)) => x.cmp(y),
        (C::Int(_) | C::Float(_), C::Int(_) | C::Float(_)) => {
            as_f64(a)?.partial_cmp(&as_f64(b)?)?
        }
        (C::Bool(x), C::Bool(y)) => x.cmp(y),
        // Untyped literals take the other side's type.
        (C::Str(s), C::Int(_) | C::Float(_)) => return compare(&number(s.trim())?, b, op),
        (C::Int(_) | C::Float(_), C::Str(s)) => return compare(a, &number(s.trim())?, op),
        (C::Str(s), C::Bool(_)) => return compare(&C::Bool(parse_bool(s)?), b, op),
        (C::Bool(_), C::Str(s)) => return compare(a, &C::Bool(parse_bool(s)?), op),
        // Ordering of strings depends on the collation; only equality is certain.
        (C::Str(x), C::Str(y)) => match op {
            B::Eq => return Some(C::Bool(x == y)),
            B::NotEq => return Some(C::Bool(x != y)),
            _ => return None,
        },
        _ => return None,
    };
    Some(C::Bool(match op {
        B::Eq => ord == Ordering::Equal,
        B::NotEq => ord != Ordering::Equal,
        B::Lt => ord == Ordering::Less,
        B::Gt => ord == Ordering::Greater,
        B::LtEq => ord != Ordering::Greater,
        B::GtEq => ord != Ordering::Less,
        _ => return None,
    }))
}

fn as_f64(c: &C) -> Option<f64> {
    match c {
        C::Int(i) => Some(*i as f64),
        C::Float(f) => Some(*f),
        _ => None,
    }
}

fn arith(a: C, b: C, op: &B) -> Option<C> {
    match (&a, &b) {
        (C::Null, _) | (_, C::Null) => Some(C::Null),
        (C::Int(x), C::Int(y)) => match op {
            B::Plus => x.checked_add(*y),
            B::Minus => x.checked_sub(*y),
            B::Multiply => x.checked_mul(*y),
            _ => None,
        }
        .map(C::Int),
        _ => {
            let (x, y) = (as_f64(&a)?, as_f64(&b)?);
            let r = match op {
                B::Plus => x + y,
                B::Minus => x - y,
                B::Multiply => x * y,
                _ => return None,
            };
            r.is_finite().then_some(C::Float(r))
        }
    }
}

fn cast(c: C, to: &DataType) -> Option<C> {
    if c == C::Null {
        return Some(C::Null);
    }
    match to {
        DataType::Bool | DataType::Boolean => boolish(c),
        DataType::Int(_)
        | DataType::Int2(_)
        | DataType::Int4(_)
        | DataType::Int8(_)
        | DataType::Integer(_)
        | DataType::SmallInt(_)
        | DataType::BigInt(_) => match c {
            C::Int(_) => Some(c),
            C::Float(f) => Some(C::Int(f.round() as i128)),
            C::Bool(b) => Some(C::Int(i128::from(b))),
            C::Str(s) => s.trim().parse::<i128>().ok().map(C::Int),
            C::Null => Some(C::Null),
        },
        DataType::Text | DataType::Varchar(_) => match c {
            C::Str(_) => Some(c),
            C::Int(i) => Some(C::Str(i.to_string())),
            C::Bool(b) => Some(C::Str(b.to_string())),
            _ => None,
        },
        _ => None,
    }
}
