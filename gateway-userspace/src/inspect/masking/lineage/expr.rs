//! Expressions: identifiers, functions, operators, subqueries.

use super::*;

use super::scope::*;

impl Walker<'_> {
    /// A plain identifier: a column of some relation in scope, or a whole row.
    pub(super) fn identifier(&mut self, parts: &[ast::Ident], scope: &Scope) -> Derivation {
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

    pub(super) fn expr(&mut self, e: &Expr, scope: &Scope) -> Derivation {
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
    pub(super) fn generic(&mut self, e: &Expr, scope: &Scope) -> Derivation {
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
    pub(super) fn subquery_value(&mut self, q: &Query, scope: &Scope) -> Derivation {
        let slots = self.query(q, scope);
        Derivation::union(slots.into_iter().map(|(_, s)| match s {
            Slot::One(d) | Slot::Star(d) => d,
        }))
        .computed()
    }

    /// `c.*` or `*` as a function argument: the whole row.
    pub(super) fn wildcard_arg(&mut self, a: &FunctionArg, scope: &Scope) -> Option<Derivation> {
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

    pub(super) fn function_call(
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
        let known = is_builtin_pure(&fname) || self.trusted.contains(&fname);
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
pub(super) fn function_name(n: &ObjectName) -> Option<String> {
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
pub(super) fn predicate(operands: impl IntoIterator<Item = Derivation>) -> Derivation {
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
pub(super) fn function_output(d: Derivation, aliases: &[String]) -> Derived {
    let d = d.computed();
    Derived {
        named: aliases.iter().map(|a| (a.clone(), d.clone())).collect(),
        open: true,
        all: d,
    }
}

/// The name PostgreSQL gives an unaliased output column (only what lookups by name need).
pub(super) fn output_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(ident(i)),
        Expr::CompoundIdentifier(ids) => ids.last().map(ident),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => output_name(expr),
        Expr::Function(f) => function_name(&f.name),
        _ => None,
    }
}
