//! Zero-config masking of personal data, payment data and secrets in responses.
//!
//! # How it works
//! One Hyperscan block database holds a short *trigger* per detector, compiled **without**
//! start-of-match tracking (which costs ~50x); the digit-shaped triggers (cards, SSNs, phone
//! numbers, IBANs), which Hyperscan runs slowly, are found bit-parallel by [`shapes`] instead.
//! A trigger reports where it ends; its confirmer
//! ([`detectors`]) re-parses a bounded window around that end with exact rules ([`validators`]:
//! Luhn and IIN ranges, SSA rules, IBAN mod-97 and lengths, JWT header JSON, ...). Overlapping
//! findings are merged, then rewritten by strategy (`redact`, `partial`, `hash`).
//!
//! # Entry points
//! - [`MaskingEngine::could_contain`]: one prefilter pass over any buffer (a whole Postgres
//!   `DataRow`); `false` means forward untouched.
//! - [`MaskingEngine::plan_column`] once per result set, then [`MaskingEngine::mask_cell_planned`]
//!   per cell: column rules (SSN/DOB names, `full`, `as:`) add to content detection.
//! - [`MaskingEngine::mask`]: free text.
//! - [`StreamMasker`]: byte streams (SSH, HTTP bodies, `sluice mask`), catching values split
//!   across chunks with a bounded tail.
//!
//! The engine is `Send + Sync`; Hyperscan scratch space is kept per thread.

pub mod config;
pub mod detectors;
mod engine;
pub mod lineage;
pub mod sensitivity;
mod shapes;
mod stream;
pub mod validators;

pub use config::{
    ColumnRule, DetectorConfig, DetectorKind, LineageConfig, MaskingConfig, SamplingConfig,
    Strategy,
};
pub use detectors::Span;
pub use engine::{ColumnContext, ColumnPlan, MaskingEngine, Report, SourceColumn};
pub use stream::StreamMasker;

/// Masking failures. Callers fail closed: an error while masking a response drops it.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    #[error("invalid masking configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error("compiling the masking prefilter: {0}")]
    Compile(String),
    #[error("masking scan failed: {0}")]
    Scan(String),
    #[error("buffer of {0} bytes is too large to scan at once (limit 4 GiB)")]
    TooLarge(usize),
}

/// `text` as it may be stored or shown: sensitive values masked. If masking fails the text is
/// withheld, never kept raw.
pub fn masked_by(engine: &MaskingEngine, text: &str) -> String {
    match engine.mask(text.as_bytes()) {
        Ok(None) => text.to_string(),
        Ok(Some(m)) => String::from_utf8_lossy(&m).into_owned(),
        Err(e) => format!("<withheld: masking failed: {e}>"),
    }
}
