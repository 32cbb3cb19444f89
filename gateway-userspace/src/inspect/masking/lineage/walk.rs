//! Statements, queries and FROM items.

use super::*;

use super::{expr::*, scope::*, writes::*};

impl Walker<'_> {
    pub(super) fn statement(
        &mut self,
        s: &Statement,
        literal_dependent: &mut bool,
    ) -> (Output, Vec<Write>) {
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
                self.join_tree(&u.table, &mut scope);
                if let Some(
                    ast::UpdateTableFromKind::AfterSet(f) | ast::UpdateTableFromKind::BeforeSet(f),
                ) = &u.from
                {
                    for t in f {
                        self.join_tree(t, &mut scope);
                    }
                }
                let target = match &u.table.relation {
                    TableFactor::Table { name, .. } => RelName::from_object(name),
                    _ => None,
                };
                let mut writes = Vec::new();
                if let Some(rel) = &target {
                    writes = self.assignment_writes(rel, &u.assignments, &scope);
                }
                let output = match &u.returning {
                    Some(items) => Output::Rows(self.projection(items, &scope)),
                    None => Output::NoData,
                };
                (output, writes)
            }
            // MERGE writes its target from its source, through its UPDATE and INSERT actions.
            Statement::Merge(m) => {
                let mut scope = root.child();
                self.table_factor(&m.table, &mut scope);
                self.table_factor(&m.source, &mut scope);
                let target = match &m.table {
                    TableFactor::Table { name, .. } => RelName::from_object(name),
                    _ => None,
                };
                let mut writes = Vec::new();
                for c in &m.clauses {
                    let Some(rel) = &target else { break };
                    match &c.action {
                        ast::MergeAction::Update(u) => match &u.kind {
                            ast::MergeUpdateKind::Set(assignments) => {
                                writes.extend(self.assignment_writes(rel, assignments, &scope));
                            }
                            _ => writes.push(Write {
                                rel: rel.clone(),
                                column: None,
                                from: self.generic_all(&c.action, &scope),
                            }),
                        },
                        ast::MergeAction::Insert(i) => {
                            let columns: Vec<String> = i
                                .columns
                                .iter()
                                .filter_map(|n| n.0.last())
                                .filter_map(|p| match p {
                                    ObjectNamePart::Identifier(id) => Some(ident(id)),
                                    ObjectNamePart::Function(_) => None,
                                })
                                .collect();
                            let slots = match &i.kind {
                                ast::MergeInsertKind::Values(v) => {
                                    self.set_expr(&SetExpr::Values(v.clone()), &scope)
                                }
                                _ => vec![(None, Slot::Star(self.generic_all(&c.action, &scope)))],
                            };
                            writes.extend(insert_writes(rel, &columns, &slots));
                        }
                        _ => {}
                    }
                }
                (Output::NoData, writes)
            }
            Statement::Delete(d) => {
                let mut scope = root.child();
                let from = match &d.from {
                    ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
                };
                for t in from.iter().chain(d.using.iter().flatten()) {
                    self.join_tree(t, &mut scope);
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
    pub(super) fn query(&mut self, q: &Query, parent: &Scope) -> Vec<(Option<String>, Slot)> {
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

    pub(super) fn set_expr(
        &mut self,
        body: &SetExpr,
        scope: &Scope,
    ) -> Vec<(Option<String>, Slot)> {
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

    pub(super) fn select(&mut self, s: &Select, parent: &Scope) -> Vec<(Option<String>, Slot)> {
        let mut scope = parent.child();
        for t in &s.from {
            self.join_tree(t, &mut scope);
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

    pub(super) fn projection(&mut self, items: &[SelectItem], scope: &Scope) -> Vec<Slot> {
        self.projection_named(items, scope)
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    }

    pub(super) fn projection_named(
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
    pub(super) fn qualified_whole_row(&mut self, n: &ObjectName, scope: &Scope) -> Derivation {
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

    pub(super) fn join_tree(&mut self, t: &TableWithJoins, scope: &mut Scope) {
        self.table_factor(&t.relation, scope);
        for j in &t.joins {
            self.table_factor(&j.relation, scope);
        }
    }

    pub(super) fn table_factor(&mut self, f: &TableFactor, scope: &mut Scope) {
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
                self.join_tree(table_with_joins, &mut inner);
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

    /// What each assigned column (`SET a = ..., (b, c) = ...`) is written from.
    pub(super) fn assignment_writes(
        &mut self,
        rel: &RelName,
        assignments: &[ast::Assignment],
        scope: &Scope,
    ) -> Vec<Write> {
        let mut writes = Vec::new();
        for a in assignments {
            let from = self.expr(&a.value, scope).computed();
            let names = |n: &ObjectName| {
                n.0.last().and_then(|p| match p {
                    ObjectNamePart::Identifier(i) => Some(ident(i)),
                    ObjectNamePart::Function(_) => None,
                })
            };
            let cols: Vec<String> = match &a.target {
                ast::AssignmentTarget::ColumnName(n) => names(n).into_iter().collect(),
                ast::AssignmentTarget::Tuple(ns) => ns.iter().filter_map(names).collect(),
            };
            if cols.is_empty() {
                writes.push(Write {
                    rel: rel.clone(),
                    column: None,
                    from,
                });
            } else {
                writes.extend(cols.into_iter().map(|c| Write {
                    rel: rel.clone(),
                    column: Some(c),
                    from: from.clone(),
                }));
            }
        }
        writes
    }

    /// Everything anything in `node` reads (for constructs without a finer case).
    pub(super) fn generic_all<V: ast::Visit>(&mut self, node: &V, scope: &Scope) -> Derivation {
        let mut d = Derivation::default();
        let _ = ast::visit_expressions(node, |e| {
            d.absorb(self.expr(e, scope));
            ControlFlow::<()>::Continue(())
        });
        d.computed()
    }
}
