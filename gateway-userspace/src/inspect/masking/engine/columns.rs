//! Columns of a result set: which rule or heuristic applies to each, decided once per result
//! set, and the masking of one cell under that plan.

use super::*;

/// A column of a result set, as known from the protocol (Postgres `RowDescription`) and, when
/// sluice knows it, the table column it is read from and its type's name.
#[derive(Clone, Copy, Debug, Default)]
pub struct ColumnContext<'a> {
    pub name: &'a str,
    pub source: Option<SourceColumn<'a>>,
    pub type_name: Option<&'a str>,
}

/// A table column by name.
#[derive(Clone, Copy, Debug)]
pub struct SourceColumn<'a> {
    pub schema: &'a str,
    pub table: &'a str,
    pub column: &'a str,
}

/// What to do with every cell of one column; computed once per result set by
/// [`MaskingEngine::plan_column`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ColumnPlan {
    /// Mask every non-empty cell (`full: true` rule).
    full: Option<Strategy>,
    /// Column-typed detection (`ssn`, `dob`, or any kind forced by an `as:` rule).
    treat_as: Option<(DetectorKind, Strategy)>,
    /// Content detectors apply.
    content: bool,
}

impl ColumnPlan {
    /// True if cells of this column need work even when the row prefilter found nothing.
    pub fn needs_cell_work(&self) -> bool {
        self.full.is_some() || self.treat_as.is_some()
    }

    /// The kind a rule masks whole cells of this column as (`full`, `as:`), if any.
    pub fn whole_kind(&self) -> Option<DetectorKind> {
        if self.full.is_some() {
            return Some(DetectorKind::Column);
        }
        self.treat_as.map(|(k, _)| k)
    }
}

impl MaskingEngine {
    /// Decides once per result-set column what its cells need.
    pub fn plan_column(&self, col: &ColumnContext<'_>) -> ColumnPlan {
        let content = self.db.is_some() || !self.shapes.is_empty();
        if !self.config.enabled {
            return ColumnPlan::default();
        }
        if let Some(rule) = self.config.columns.iter().find(|r| rule_matches(r, col)) {
            if rule.full {
                return ColumnPlan {
                    full: Some(rule.strategy.unwrap_or(self.config.strategy)),
                    treat_as: None,
                    content,
                };
            }
            if let Some(kind) = rule.treat_as {
                let strategy = rule.strategy.unwrap_or(self.strategies[kind.index()]);
                return ColumnPlan {
                    full: None,
                    treat_as: Some((kind, strategy)),
                    content,
                };
            }
        }
        // The name heuristics look at the result's name and at the table column's: `dob AS d`
        // is still a date of birth.
        let treat_as = self
            .heuristic_kind(col.name)
            .or_else(|| col.source.and_then(|s| self.heuristic_kind(s.column)))
            .map(|kind| (kind, self.strategies[kind.index()]));
        ColumnPlan {
            full: None,
            treat_as,
            content,
        }
    }

    /// The detector a column's name alone says it holds (`ssn`, `date_of_birth`), if the name
    /// heuristics are on.
    pub fn heuristic_kind(&self, name: &str) -> Option<DetectorKind> {
        if !self.config.enabled || !self.config.column_heuristics {
            return None;
        }
        let (tokens, joined) = name_tokens(name);
        let has = |t: &str| tokens.iter().any(|x| x == t);
        if self.config.detector_enabled(DetectorKind::Ssn)
            && (has("ssn") || joined.contains("socialsecurity"))
        {
            Some(DetectorKind::Ssn)
        } else if self.config.detector_enabled(DetectorKind::Dob)
            && (has("dob")
                || joined.contains("dateofbirth")
                || joined.contains("birthdate")
                || joined.contains("birthday"))
        {
            Some(DetectorKind::Dob)
        } else {
            None
        }
    }

    /// Why a table column is sensitive by configuration alone (a rule naming it, or its name),
    /// as the placeholder kind of values derived from it. Sampling adds to this elsewhere.
    pub fn configured_sensitivity(&self, col: &ColumnContext<'_>) -> Option<DetectorKind> {
        if !self.config.enabled {
            return None;
        }
        if let Some(rule) = self.config.columns.iter().find(|r| rule_matches(r, col)) {
            return Some(rule.kind());
        }
        col.source.and_then(|s| self.heuristic_kind(s.column))
    }

    /// The rule naming values of this type (a result column of a sensitive type is masked
    /// whatever it is computed from).
    pub fn type_rule_kind(&self, type_name: &str) -> Option<DetectorKind> {
        if !self.config.enabled {
            return None;
        }
        self.config
            .columns
            .iter()
            .find(|r| {
                r.table.is_none()
                    && r.name.is_none()
                    && r.type_name
                        .as_deref()
                        .is_some_and(|t| glob_match(t.as_bytes(), type_name.as_bytes()))
            })
            .map(ColumnRule::kind)
    }

    /// Kinds of the rules naming columns of this table (a whole row of it carries them).
    pub fn table_rule_kinds(&self, schema: &str, table: &str) -> Vec<DetectorKind> {
        if !self.config.enabled {
            return Vec::new();
        }
        let qualified = format!("{schema}.{table}");
        self.config
            .columns
            .iter()
            .filter(|r| {
                r.table.as_deref().is_some_and(|t| {
                    glob_match(t.as_bytes(), table.as_bytes())
                        || glob_match(t.as_bytes(), qualified.as_bytes())
                })
            })
            .map(ColumnRule::kind)
            .collect()
    }

    /// Whether any rule names columns at all.
    pub fn has_column_rules(&self) -> bool {
        self.config.enabled && !self.config.columns.is_empty()
    }

    /// Whether any rule names types (result types then need their names looked up).
    pub fn has_type_rules(&self) -> bool {
        self.config.columns.iter().any(|r| r.type_name.is_some())
    }
    /// Masks one cell. `None` (the common case): forward the cell unchanged.
    pub fn mask_cell(
        &self,
        col: &ColumnContext<'_>,
        value: &[u8],
    ) -> Result<Option<Vec<u8>>, MaskError> {
        self.mask_cell_planned(&self.plan_column(col), value, &mut Report::default())
    }

    /// [`MaskingEngine::mask_cell`] with a precomputed plan (once per `RowDescription`).
    pub fn mask_cell_planned(
        &self,
        plan: &ColumnPlan,
        value: &[u8],
        report: &mut Report,
    ) -> Result<Option<Vec<u8>>, MaskError> {
        if value.is_empty() {
            return Ok(None);
        }
        let whole = |kind: DetectorKind, strategy: Strategy, report: &mut Report| {
            let mut out = Vec::with_capacity(16);
            self.render_with(kind, strategy, value, &mut out);
            report.count(kind);
            report.bytes_in += value.len() as u64;
            report.bytes_out += out.len() as u64;
            Ok(Some(out))
        };
        if let Some(strategy) = plan.full {
            return whole(DetectorKind::Column, strategy, report);
        }
        if let Some((kind, strategy)) = plan.treat_as {
            let hit = match kind {
                DetectorKind::Ssn => validators::is_ssn_value(value),
                DetectorKind::Dob => validators::is_date(value),
                _ => true,
            };
            if hit {
                return whole(kind, strategy, report);
            }
        }
        if plan.content {
            self.mask_with_report(value, report)
        } else {
            Ok(None)
        }
    }
}

/// Lowercase name tokens (split at non-alphanumerics and camelCase humps) and their concatenation.
pub(super) fn name_tokens(name: &str) -> (Vec<String>, String) {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                tokens.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            tokens.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    let joined = tokens.concat();
    (tokens, joined)
}

/// Whether `rule` names this column (see [`ColumnRule`]).
fn rule_matches(rule: &ColumnRule, col: &ColumnContext<'_>) -> bool {
    let glob = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes());
    if let Some(t) = &rule.type_name
        && !col.type_name.is_some_and(|n| glob(t, n))
    {
        return false;
    }
    match (&rule.table, &rule.name) {
        (Some(table), name) => col.source.is_some_and(|s| {
            (glob(table, s.table) || glob(table, &format!("{}.{}", s.schema, s.table)))
                && name.as_deref().is_none_or(|n| glob(n, s.column))
        }),
        (None, Some(name)) => {
            glob(name, col.name) || col.source.is_some_and(|s| glob(name, s.column))
        }
        (None, None) => rule.type_name.is_some(),
    }
}

/// Case-insensitive glob with `*` only.
pub(super) fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while i < s.len() {
        if p < pat.len() && pat[p] != b'*' && pat[p].eq_ignore_ascii_case(&s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some(p);
            mark = i;
            p += 1;
        } else if let Some(sp) = star {
            p = sp + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}
