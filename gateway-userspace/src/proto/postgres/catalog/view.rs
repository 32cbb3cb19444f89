//! The catalog as lineage resolution reads it.

use super::*;

/// The catalog's knowledge, read-locked for one resolution.
pub struct CatalogView<'a> {
    pub(super) state: std::sync::RwLockReadGuard<'a, State>,
    pub(super) engine: &'a MaskingEngine,
    pub(super) connected: bool,
}

impl CatalogView<'_> {
    pub fn relation(&self, oid: u32) -> Option<Arc<RelInfo>> {
        self.state.rels.get(&oid).cloned()
    }

    pub fn type_info(&self, oid: u32) -> Option<Arc<TypeInfo>> {
        self.state.types.get(&oid).cloned()
    }

    /// The columns of the first relation of that name, in order.
    pub fn columns_of(&self, rel: &RelName) -> Vec<String> {
        self.rels_named(rel)
            .and_then(|mut r| r.next())
            .map(|r| r.columns.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default()
    }

    /// The kind a plain read of `rel.column` is masked whole as, if even plain reads are.
    pub fn plain_read_whole(&self, rel: &RelName, column: &str) -> Option<DetectorKind> {
        let rels = self.rels_named(rel)?;
        let mut found = None;
        for r in rels {
            if let Some(s) = self.rel_column(r, column)
                && s.whole
            {
                found = Some(s.kind);
            }
        }
        found.or_else(|| self.written(&rel.name, Some(column)))
    }

    fn failed(&self) -> bool {
        self.state
            .failed_at
            .is_some_and(|t| t.elapsed() < RETRY_AFTER * 4)
    }

    fn rels_named<'s>(&'s self, rel: &'s RelName) -> Option<impl Iterator<Item = &'s RelInfo>> {
        let (_, oids) = self.state.names.get(&rel.name)?;
        Some(
            oids.iter()
                .filter_map(|o| self.state.rels.get(o))
                .map(|r| &**r)
                .filter(move |r| rel.schema.as_ref().is_none_or(|s| *s == r.schema)),
        )
    }

    fn written(&self, rel: &str, column: Option<&str>) -> Option<DetectorKind> {
        self.state
            .written
            .get(&(rel.to_string(), column.map(str::to_string)))
            .copied()
    }

    /// Sensitivity of one column of a known relation (plain reads go through this too).
    pub fn rel_column(&self, rel: &RelInfo, column: &str) -> Option<Sensitive> {
        if let Some(kind) = self
            .written(&rel.name, Some(column))
            .or_else(|| self.written(&rel.name, None))
        {
            return Some(Sensitive { kind, whole: true });
        }
        if self.state.settings_tainted && shows_settings(&rel.schema, &rel.name, column) {
            return Some(Sensitive {
                kind: DetectorKind::Column,
                whole: true,
            });
        }
        if rel.unknown {
            return Some(Sensitive {
                kind: DetectorKind::Column,
                whole: true,
            })
            .filter(|_| self.has_sensitive());
        }
        rel.sensitive.get(column).copied()
    }
}

impl SensitivityView for CatalogView<'_> {
    fn column(&self, rel: &RelName, column: &str) -> Lookup {
        if !self.connected {
            return crate::inspect::masking::sensitivity::ConfigView {
                engine: self.engine,
            }
            .column(rel, column);
        }
        let mut l = Lookup::default();
        if let Some(k) = self.written(&rel.name, Some(column)) {
            l.kinds.push(k);
        }
        match self.rels_named(rel) {
            None => l.unknown = true,
            Some(rels) => {
                for r in rels {
                    if r.unknown {
                        l.unknown = true;
                    }
                    if let Some(s) = self.rel_column(r, column) {
                        l.kinds.push(s.kind);
                    }
                }
            }
        }
        if self.failed() {
            l.unknown = true;
        }
        l
    }

    fn whole_row(&self, rel: &RelName) -> Lookup {
        if !self.connected {
            return crate::inspect::masking::sensitivity::ConfigView {
                engine: self.engine,
            }
            .whole_row(rel);
        }
        let mut l = Lookup::default();
        for ((r, _), k) in &self.state.written {
            if *r == rel.name {
                l.kinds.push(*k);
            }
        }
        match self.rels_named(rel) {
            None => l.unknown = true,
            Some(rels) => {
                for r in rels {
                    l.unknown |= r.unknown;
                    for c in &r.columns {
                        if let Some(s) = self.rel_column(r, &c.name) {
                            l.kinds.push(s.kind);
                        }
                    }
                }
            }
        }
        if self.failed() {
            l.unknown = true;
        }
        l
    }

    fn settings_tainted(&self) -> bool {
        self.state.settings_tainted
    }

    fn has_sensitive(&self) -> bool {
        if !self.connected {
            return self.engine.has_column_rules();
        }
        self.failed()
            || self.engine.has_column_rules()
            || !self.state.written.is_empty()
            || self
                .state
                .rels
                .values()
                .any(|r| r.sensitive.values().next().is_some())
    }
}
