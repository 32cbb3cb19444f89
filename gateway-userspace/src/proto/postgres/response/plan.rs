//! A result set's masking plan: what each column's cells need, from the statement's lineage,
//! the catalog and the rules; cached per statement shape.

use super::*;

impl ResponseMasker<'_> {
    /// A plan for rows sluice cannot attribute to a statement.
    pub(super) fn unattributed(&self, n: usize) -> ResultPlan {
        ResultPlan {
            cols: (0..n)
                .map(|_| ColMask {
                    name: String::new(),
                    type_oid: 0,
                    format: 0,
                    shape: Shape::Unknown,
                    action: Action::Whole(DetectorKind::Column),
                })
                .collect(),
            cell_work: true,
            unattributed: true,
        }
    }

    pub(super) async fn portal_plan(&mut self, portal: Option<&Portal>) -> Arc<ResultPlan> {
        let Some(p) = portal else {
            return Arc::new(self.unattributed(0));
        };
        let Some(cols) = p.result_columns() else {
            return Arc::new(self.unattributed(0));
        };
        let sql = p.statement.sql.clone();
        self.plan_for(Some(&sql), 0, &cols).await
    }

    /// The plan of a result set: statement `index` of `sql`, with these columns.
    pub(super) async fn plan_for(
        &mut self,
        sql: Option<&Arc<str>>,
        index: usize,
        cols: &[Column],
    ) -> Arc<ResultPlan> {
        let engine = self.engine.clone();
        if !engine.config().enabled {
            return Arc::new(ResultPlan {
                cols: Vec::new(),
                cell_work: false,
                unattributed: false,
            });
        }
        let computed = cols.iter().any(|c| c.table_oid == 0);
        let lineage_on = engine.config().lineage.enabled;
        let key = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for c in cols {
                (&c.name, c.table_oid, c.attnum, c.type_oid, c.format).hash(&mut h);
            }
            if computed {
                sql.map(|s| &**s).hash(&mut h);
                index.hash(&mut h);
            }
            Arc::as_ptr(&engine).hash(&mut h);
            h.finish()
        };
        let generation = self.catalog.generation();
        let key = key ^ generation.rotate_left(17);
        if let Some((_, p)) = self.plans.iter().find(|(k, _)| *k == key) {
            return p.clone();
        }
        let lineage = (computed && lineage_on)
            .then(|| sql.map(|s| self.lineage(s)))
            .flatten();
        let statement = lineage
            .as_ref()
            .and_then(|l| l.statements.as_ref())
            .and_then(|s| s.get(index));
        let oids: Vec<u32> = cols
            .iter()
            .map(|c| c.table_oid)
            .filter(|o| *o != 0)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let names = statement.map(|s| s.relations.clone()).unwrap_or_default();
        // Something opaque (or unanalysable) could read any table: know them all.
        let opaque = computed
            && lineage_on
            && statement.is_none_or(|s| slot_derivations(s, cols.len()).iter().any(|d| d.opaque));
        if opaque {
            self.catalog.survey(&engine).await;
        }
        let types: Vec<u32> = cols
            .iter()
            .filter(|c| {
                (c.format == 1 && binary::shape_of(c.type_oid, &|_| None) == Shape::Unknown)
                    || engine.has_type_rules()
            })
            .map(|c| c.type_oid)
            .collect();
        self.catalog.ensure(&engine, &oids, &names, &types).await;
        let plan = Arc::new(self.build(&engine, cols, statement, lineage_on));
        if self.plans.len() >= PLANS_KEPT {
            self.plans.pop_front();
        }
        // The generation may have moved while ensuring: key on the one planned against.
        let key = key ^ generation.rotate_left(17) ^ self.catalog.generation().rotate_left(17);
        self.plans.push_back((key, plan.clone()));
        plan
    }

    fn build(
        &self,
        engine: &MaskingEngine,
        cols: &[Column],
        statement: Option<&StatementLineage>,
        lineage_on: bool,
    ) -> ResultPlan {
        let catalog = &*self.catalog;
        let view = catalog.view(engine);
        let rels: Vec<RelName> = statement
            .map(|s| s.relations.iter().cloned().collect())
            .unwrap_or_default();
        let derivations = statement.map(|s| slot_derivations(s, cols.len()));
        let mut out = Vec::with_capacity(cols.len());
        for (i, c) in cols.iter().enumerate() {
            let type_name = engine
                .has_type_rules()
                .then(|| view.type_info(c.type_oid).map(|t| t.name.clone()))
                .flatten();
            let shape = binary::shape_of(c.type_oid, &|o| view.type_info(o));
            let mut action = if c.table_oid != 0 {
                // Read plainly from a table (PostgreSQL says which): its own rules and content.
                match view.relation(c.table_oid) {
                    Some(rel) => match rel.column(c.attnum) {
                        Some(col) => match view.rel_column(&rel, &col.name) {
                            Some(s) if s.whole => Action::Whole(s.kind),
                            _ => Action::Content(engine.plan_column(&ColumnContext {
                                name: &c.name,
                                source: Some(SourceColumn {
                                    schema: &rel.schema,
                                    table: &rel.name,
                                    column: &col.name,
                                }),
                                type_name: type_name.as_deref(),
                            })),
                        },
                        None => unknown_or_content(&view, engine, c, type_name.as_deref()),
                    },
                    None if catalog.connected_mode() => {
                        unknown_or_content(&view, engine, c, type_name.as_deref())
                    }
                    None => Action::Content(engine.plan_column(&ColumnContext {
                        name: &c.name,
                        source: None,
                        type_name: type_name.as_deref(),
                    })),
                }
            } else {
                let d = match &derivations {
                    Some(ds) => ds[i].clone(),
                    // Lineage off: the content detectors alone.
                    None if !lineage_on => Derivation::default(),
                    // A statement sluice could not analyse (or place in its text): opaque.
                    None => Derivation::opaque(),
                };
                match d.resolve(&view, Some(c.type_oid), &rels) {
                    Verdict::Clean => Action::Content(engine.plan_column(&ColumnContext {
                        name: &c.name,
                        source: None,
                        type_name: type_name.as_deref(),
                    })),
                    v => Action::Whole(v.whole_kind().expect("not clean")),
                }
            };
            if let Some(kind) = type_name.as_deref().and_then(|t| engine.type_rule_kind(t)) {
                action = Action::Whole(kind);
            }
            out.push(ColMask {
                name: c.name.clone(),
                type_oid: c.type_oid,
                format: c.format,
                shape,
                action,
            });
        }
        let cell_work = out.iter().any(|c| match &c.action {
            Action::Whole(_) => true,
            Action::Content(p) => {
                p.needs_cell_work()
                    || (c.format == 1 && matches!(c.shape, Shape::Int8 | Shape::Numeric))
                    || (c.format == 0 && c.shape == Shape::Bytea)
                    || (c.format == 1 && matches!(c.shape, Shape::Array | Shape::Record))
            }
        });
        ResultPlan {
            cols: out,
            cell_work,
            unattributed: false,
        }
    }
}

/// A column read from a relation sluice could not look up: masked whole when the database holds
/// sensitive data (or sluice cannot tell), else by content.
fn unknown_or_content(
    view: &dyn SensitivityView,
    engine: &MaskingEngine,
    c: &Column,
    type_name: Option<&str>,
) -> Action {
    if view.has_sensitive() {
        Action::Whole(DetectorKind::Column)
    } else {
        Action::Content(engine.plan_column(&ColumnContext {
            name: &c.name,
            source: None,
            type_name,
        }))
    }
}

/// One derivation per output column: positions follow the select list, a single `*` takes what
/// the other items leave; anything ambiguous gets the statement's whole lineage.
fn slot_derivations(s: &StatementLineage, n: usize) -> Vec<Derivation> {
    let slots: &[Slot] = match &s.output {
        Output::Rows(slots) | Output::Copy { slots, .. } => slots,
        Output::NoData => return vec![Derivation::default(); n],
        Output::Unknown => return vec![Derivation::opaque(); n],
    };
    let ones = slots.iter().filter(|s| matches!(s, Slot::One(_))).count();
    let stars = slots.len() - ones;
    let exact = (stars == 0 && ones == n) || (stars == 1 && ones <= n);
    if !exact {
        let all = Derivation::union(slots.iter().map(|s| match s {
            Slot::One(d) | Slot::Star(d) => d.clone(),
        }));
        return vec![all; n];
    }
    let mut out = Vec::with_capacity(n);
    for s in slots {
        match s {
            Slot::One(d) => out.push(d.clone()),
            Slot::Star(d) => {
                for _ in 0..(n - ones) {
                    out.push(d.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_map_to_columns_around_one_star() {
        let l = lineage::analyze("select id, *, reverse(email) from customers", &[]);
        let s = &l.statements.unwrap()[0];
        let d = slot_derivations(s, 5);
        assert!(d[0].direct);
        assert!(d[1].direct && d[3].direct);
        assert!(!d[4].direct);
    }
}
