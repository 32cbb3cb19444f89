//! The masking engine: one Hyperscan block database of triggers, exact confirmers, rewriting.
//!
//! Scanning and rewriting live here; `render` turns a value into its replacement and `columns`
//! decides what each result-set column needs.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    sync::atomic::{AtomicU64, Ordering},
};

use hyperscan::prelude::*;
use serde::Serialize;

use super::{
    MaskError,
    config::{ColumnRule, DetectorKind, MaskingConfig, Strategy},
    detectors::{self, Span, Trigger},
    shapes::{self, ShapeSet},
    validators,
};

mod columns;
mod render;

pub use columns::{ColumnContext, ColumnPlan, SourceColumn};

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

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_plans;
