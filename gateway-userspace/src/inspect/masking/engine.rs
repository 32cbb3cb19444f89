//! The masking engine: one Hyperscan block database of triggers, exact confirmers, rewriting.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    sync::atomic::{AtomicU64, Ordering},
};

use hmac::{Hmac, Mac};
use hyperscan::prelude::*;
use serde::Serialize;
use sha2::Sha256;

use super::{
    MaskError,
    config::{ColumnRule, DetectorKind, MaskingConfig, Strategy},
    detectors::{self, Span, Trigger},
    shapes::{self, ShapeSet},
    validators,
};

/// Findings per detector, for `sluice mask --report` and audit summaries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub findings: BTreeMap<DetectorKind, u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Report {
    pub fn total(&self) -> u64 {
        self.findings.values().sum()
    }

    pub fn merge(&mut self, other: &Report) {
        for (k, n) in &other.findings {
            *self.findings.entry(*k).or_default() += n;
        }
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }

    fn count(&mut self, kind: DetectorKind) {
        *self.findings.entry(kind).or_default() += 1;
    }
}

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

static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

struct ThreadScratch {
    scratch: Scratch,
    /// Engines this scratch has been grown for (a scratch grown for several databases serves all).
    sized_for: Vec<u64>,
}

thread_local! {
    // Hyperscan scratch is not shareable across threads; one per thread serves every engine.
    static SCRATCH: RefCell<Option<ThreadScratch>> = const { RefCell::new(None) };
}

/// The zero-config masking engine. `Send + Sync`: share it through an `Arc`.
pub struct MaskingEngine {
    id: u64,
    config: MaskingConfig,
    /// `None` when no Hyperscan trigger is enabled.
    db: Option<BlockDatabase>,
    /// Hyperscan pattern id -> trigger.
    ids: Vec<Trigger>,
    /// Digit-shaped triggers, found by [`shapes::scan`] instead of Hyperscan.
    shapes: ShapeSet,
    strategies: [Strategy; DetectorKind::ALL.len() + 1],
    hash_key: Vec<u8>,
}

impl std::fmt::Debug for MaskingEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskingEngine")
            .field("config", &self.config)
            .field("triggers", &self.ids.len())
            .field("shapes", &self.shapes)
            .finish()
    }
}

impl MaskingEngine {
    /// Validates `config` and compiles the prefilter of its enabled detectors.
    pub fn new(config: MaskingConfig) -> Result<Self, MaskError> {
        Self::build(config, false)
    }

    /// `shapes_in_hyperscan`: compile the digit-shaped triggers' expressions into Hyperscan as
    /// well (the former engine), to check the shape scanner against it.
    fn build(config: MaskingConfig, shapes_in_hyperscan: bool) -> Result<Self, MaskError> {
        config.validate().map_err(MaskError::Config)?;
        let mut ids = Vec::new();
        let mut patterns = Vec::new();
        let mut shapes = ShapeSet::default();
        for t in Trigger::ALL {
            if !config.detector_enabled(t.kind()) {
                continue;
            }
            if ShapeSet::handles(t) && !shapes_in_hyperscan {
                shapes.enable(t);
                continue;
            }
            for expr in t.expressions() {
                let mut p = Pattern::new(expr).map_err(|e| MaskError::Compile(e.to_string()))?;
                p.id = Some(ids.len());
                ids.push(t);
                patterns.push(p);
            }
        }
        let db = if patterns.is_empty() {
            None
        } else {
            let db: BlockDatabase = Patterns(patterns)
                .build()
                .map_err(|e| MaskError::Compile(e.to_string()))?;
            Some(db)
        };
        let mut strategies = [Strategy::Redact; DetectorKind::ALL.len() + 1];
        for k in DetectorKind::ALL {
            strategies[k.index()] = config.strategy_for(k);
        }
        strategies[DetectorKind::Column.index()] = config.strategy;
        let hash_key = config.hash_key.clone().unwrap_or_default().into_bytes();
        Ok(Self {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            config,
            db,
            ids,
            shapes,
            strategies,
            hash_key,
        })
    }

    /// The built-in defaults.
    pub fn with_defaults() -> Result<Self, MaskError> {
        Self::new(MaskingConfig::default())
    }

    /// The engine as it was before the shape scanner: every trigger in Hyperscan.
    #[cfg(test)]
    pub(crate) fn hyperscan_only(config: MaskingConfig) -> Result<Self, MaskError> {
        Self::build(config, true)
    }

    pub fn config(&self) -> &MaskingConfig {
        &self.config
    }

    fn with_scratch<R>(
        &self,
        db: &BlockDatabase,
        f: impl FnOnce(&Scratch) -> R,
    ) -> Result<R, MaskError> {
        let scan_err = |e: hyperscan::Error| MaskError::Scan(e.to_string());
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slot) => {
                let ts = match slot.as_mut() {
                    Some(ts) => ts,
                    None => slot.insert(ThreadScratch {
                        scratch: db.alloc_scratch().map_err(scan_err)?,
                        sized_for: vec![self.id],
                    }),
                };
                if !ts.sized_for.contains(&self.id) {
                    db.realloc_scratch(&mut ts.scratch).map_err(scan_err)?;
                    // Bounded bookkeeping; forgetting an id only costs a cheap re-check.
                    if ts.sized_for.len() >= 32 {
                        ts.sized_for.clear();
                    }
                    ts.sized_for.push(self.id);
                }
                Ok(f(&ts.scratch))
            }
            // Re-entered on this thread (cannot happen through our API): use a private scratch.
            Err(_) => Ok(f(&db.alloc_scratch().map_err(scan_err)?)),
        })
    }

    /// Raw prefilter hits as (trigger, end offset), in end order.
    fn hits(&self, buf: &[u8], hits: &mut Vec<(Trigger, usize)>) -> Result<(), MaskError> {
        if buf.len() > u32::MAX as usize {
            return Err(MaskError::TooLarge(buf.len()));
        }
        if let Some(db) = &self.db {
            self.with_scratch(db, |scratch| {
                db.scan(buf, scratch, |id: u32, _from: u64, to: u64, _flags: u32| {
                    hits.push((self.ids[id as usize], to as usize));
                    Matching::Continue
                })
            })?
            .map_err(|e| MaskError::Scan(e.to_string()))?;
        }
        shapes::scan(buf, self.shapes, |t, end| {
            hits.push((t, end));
            true
        });
        // Two runs, each in end order: the stable sort merges them in linear time.
        if !hits.is_sorted_by_key(|h| h.1) {
            hits.sort_by_key(|h| h.1);
        }
        Ok(())
    }

    /// Could `buf` contain anything the content detectors mask? One prefilter pass that stops at
    /// the first trigger; `false` means forward the bytes untouched (column rules aside: see
    /// [`ColumnPlan::needs_cell_work`]). Works on any framing, e.g. a whole Postgres `DataRow`
    /// payload: a trigger inside one cell is a trigger inside the row.
    pub fn could_contain(&self, buf: &[u8]) -> Result<bool, MaskError> {
        if buf.len() > u32::MAX as usize {
            return Err(MaskError::TooLarge(buf.len()));
        }
        let mut hit = false;
        shapes::scan(buf, self.shapes, |_, _| {
            hit = true;
            false
        });
        if hit {
            return Ok(true);
        }
        let Some(db) = &self.db else { return Ok(false) };
        let r = self.with_scratch(db, |scratch| {
            db.scan(buf, scratch, |_: u32, _: u64, _: u64, _: u32| {
                hit = true;
                Matching::Terminate
            })
        })?;
        match r {
            Ok(()) => Ok(hit),
            Err(_) if hit => Ok(true),
            Err(e) => Err(MaskError::Scan(e.to_string())),
        }
    }

    /// Confirmed findings in `buf`, sorted, overlapping ones merged (the union keeps the kind of
    /// its longest member).
    pub fn find(&self, buf: &[u8]) -> Result<Vec<Span>, MaskError> {
        let mut hits = Vec::new();
        self.hits(buf, &mut hits)?;
        let mut spans = Vec::new();
        let mut resume = [0usize; Trigger::ALL.len()];
        for (t, end) in hits {
            let r = &mut resume[t as usize];
            if end <= *r {
                continue;
            }
            detectors::confirm(t, buf, end, r, &mut spans);
        }
        Ok(merge(spans))
    }

    /// Masks free text (a log line, a cell, a response body). `None`: nothing found, use the
    /// input as is.
    pub fn mask(&self, buf: &[u8]) -> Result<Option<Vec<u8>>, MaskError> {
        self.mask_with_report(buf, &mut Report::default())
    }

    pub fn mask_with_report(
        &self,
        buf: &[u8],
        report: &mut Report,
    ) -> Result<Option<Vec<u8>>, MaskError> {
        let spans = self.find(buf)?;
        report.bytes_in += buf.len() as u64;
        if spans.is_empty() {
            report.bytes_out += buf.len() as u64;
            return Ok(None);
        }
        let mut out = Vec::with_capacity(buf.len());
        self.rewrite(buf, &spans, &mut out, report);
        report.bytes_out += out.len() as u64;
        Ok(Some(out))
    }

    /// Appends `buf` to `out` with every span replaced.
    pub(crate) fn rewrite(
        &self,
        buf: &[u8],
        spans: &[Span],
        out: &mut Vec<u8>,
        report: &mut Report,
    ) {
        let mut at = 0;
        for s in spans {
            out.extend_from_slice(&buf[at..s.start]);
            self.render(s.kind, &buf[s.start..s.end], out);
            report.count(s.kind);
            at = s.end;
        }
        out.extend_from_slice(&buf[at..]);
    }

    /// The replacement of one value under its detector's strategy.
    pub fn render(&self, kind: DetectorKind, value: &[u8], out: &mut Vec<u8>) {
        self.render_with(kind, self.strategies[kind.index()], value, out)
    }

    fn render_with(&self, kind: DetectorKind, strategy: Strategy, value: &[u8], out: &mut Vec<u8>) {
        let label = kind.label().as_bytes();
        match strategy {
            Strategy::Redact => redact(label, out),
            Strategy::Hash => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hash_key)
                    .expect("HMAC takes keys of any length");
                // The kind is part of the input so equal strings of different kinds do not join.
                mac.update(kind.name().as_bytes());
                mac.update(&[0]);
                mac.update(&normalize(kind, value));
                let tag = mac.finalize().into_bytes();
                out.push(b'[');
                out.extend_from_slice(label);
                out.push(b':');
                crate::util::hex_into(&tag[..6], out);
                out.push(b']');
            }
            Strategy::Partial => partial(kind, label, value, out),
        }
    }

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

    /// The placeholder of a whole value of `kind`, under that kind's strategy (`hash` keeps
    /// equal values joinable; `partial` has no safe part of a derived value, so it redacts).
    pub fn placeholder(&self, kind: DetectorKind, value: &[u8], out: &mut Vec<u8>) {
        match self.strategies[kind.index()] {
            Strategy::Hash => self.render_with(kind, Strategy::Hash, value, out),
            _ => redact(kind.label().as_bytes(), out),
        }
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

fn redact(label: &[u8], out: &mut Vec<u8>) {
    out.push(b'[');
    out.extend_from_slice(label);
    out.push(b']');
}

/// Equal values written differently hash alike: digits only for numbers, case-folded emails.
fn normalize(kind: DetectorKind, v: &[u8]) -> Vec<u8> {
    match kind {
        DetectorKind::Card | DetectorKind::Ssn | DetectorKind::Phone => {
            v.iter().copied().filter(u8::is_ascii_digit).collect()
        }
        DetectorKind::Email => v.to_ascii_lowercase(),
        DetectorKind::Iban => v.iter().copied().filter(|b| *b != b' ').collect(),
        _ => v.to_vec(),
    }
}

/// Stars every digit but the last `keep`, keeping separators (`**** **** **** 4242`).
fn keep_last_digits(v: &[u8], keep: usize, out: &mut Vec<u8>) {
    let total = v.iter().filter(|b| b.is_ascii_digit()).count();
    let mut seen = 0;
    for &b in v {
        if b.is_ascii_digit() {
            seen += 1;
            out.push(if seen > total.saturating_sub(keep) {
                b
            } else {
                b'*'
            });
        } else {
            out.push(b);
        }
    }
}

fn partial(kind: DetectorKind, label: &[u8], v: &[u8], out: &mut Vec<u8>) {
    match kind {
        DetectorKind::Card | DetectorKind::Ssn => keep_last_digits(v, 4, out),
        DetectorKind::Phone => keep_last_digits(v, 2, out),
        DetectorKind::Email => match v.iter().position(|&b| b == b'@') {
            // The local part identifies the person; its length would too.
            Some(at) => {
                out.extend_from_slice(b"****");
                out.extend_from_slice(&v[at..]);
            }
            None => redact(label, out),
        },
        DetectorKind::Iban if v.len() > 8 => {
            let alnum = v.iter().filter(|b| b.is_ascii_alphanumeric()).count();
            let mut seen = 0;
            for &b in v {
                if b.is_ascii_alphanumeric() {
                    seen += 1;
                    out.push(if seen <= 2 || seen > alnum - 4 {
                        b
                    } else {
                        b'*'
                    });
                } else {
                    out.push(b);
                }
            }
        }
        DetectorKind::Ip if v.contains(&b'.') && !v.contains(&b':') => {
            // Keep the network half of an IPv4 address: 10.0.*.*
            let mut dots = 0;
            for &b in v {
                if b == b'.' {
                    dots += 1;
                    out.push(b);
                } else if dots < 2 {
                    out.push(b);
                } else if out.last() != Some(&b'*') {
                    out.push(b'*');
                }
            }
        }
        // Secrets, dates of birth, IPv6, whole columns: no part is safe to show.
        _ => redact(label, out),
    }
}

/// Merges overlapping spans (Hyperscan reports every end; several detectors may claim one value).
fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    if spans.len() < 2 {
        return spans;
    }
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    // Length of the longest member of the current union, to pick its kind.
    let mut best = 0;
    for s in spans {
        if let Some(last) = out.last_mut()
            && s.start < last.end
        {
            if s.end - s.start > best {
                best = s.end - s.start;
                last.kind = s.kind;
            }
            last.end = last.end.max(s.end);
            continue;
        }
        best = s.end - s.start;
        out.push(s);
    }
    out
}

/// Lowercase name tokens (split at non-alphanumerics and camelCase humps) and their concatenation.
fn name_tokens(name: &str) -> (Vec<String>, String) {
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
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
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

#[cfg(test)]
mod tests;
