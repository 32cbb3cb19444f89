//! The `postgres:` block of a PostgreSQL resource: how sluice enforces in the server what it
//! decided, and the bounds it sets on each upstream session.
//!
//! ```yaml
//! postgres:
//!   read_only: transaction        # or off
//!   blast_radius: { max_rows: 1000, max_fraction: 0.5 }   # `enabled: false` to not measure
//!   timeouts: { statement: 5m, lock: 10s, idle_in_transaction: 10m }
//!   max_sessions: 20
//!   analysis: { max_bytes: 1048576, budget: 2s }
//! ```

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::diag::Report;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadOnly {
    /// Upstream sessions default to read-only transactions; sluice opens a read-write one
    /// for each write it allowed, and runs reads inside an agent's read-write transaction
    /// read-only: a statement sluice misjudged as a read fails in the server (25006).
    #[default]
    Transaction,
    /// No enforcement in the server: sluice's analysis alone decides.
    Off,
}

/// How much one write may change before sluice rolls it back and refuses it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlastRadius {
    /// Rows updated or deleted in one table by one statement (triggers and functions included).
    pub max_rows: u64,
    /// Of a table with more than one row.
    pub max_fraction: f64,
}

impl Default for BlastRadius {
    fn default() -> Self {
        BlastRadius {
            max_rows: 1000,
            max_fraction: 0.5,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PgSettings {
    pub read_only: ReadOnly,
    /// `None`: writes are not measured (`blast_radius: off`, or `read_only: off`).
    pub blast_radius: Option<BlastRadius>,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub idle_in_transaction_timeout: Duration,
    /// Upstream sessions of this resource at once (agents and sluice's own).
    pub max_sessions: usize,
    /// Statement texts longer than this are not analysed (refused as unparseable).
    pub max_statement_bytes: usize,
    /// Analysis taking longer than this is unparseable.
    pub analysis_budget: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            read_only: ReadOnly::Transaction,
            blast_radius: Some(BlastRadius::default()),
            statement_timeout: Duration::from_secs(300),
            lock_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(600),
            max_sessions: 20,
            max_statement_bytes: crate::inspect::guardrails::MAX_ANALYZED_LEN,
            analysis_budget: Duration::from_secs(2),
        }
    }
}

impl PgSettings {
    /// Whether writes run in transactions sluice opens and measures.
    pub fn measures_writes(&self) -> bool {
        self.read_only == ReadOnly::Transaction
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBlast {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    max_rows: Option<Spanned<u64>>,
    #[serde(default)]
    max_fraction: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    #[serde(default)]
    statement: Option<Spanned<String>>,
    #[serde(default)]
    lock: Option<Spanned<String>>,
    #[serde(default)]
    idle_in_transaction: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAnalysis {
    #[serde(default)]
    max_bytes: Option<Spanned<usize>>,
    #[serde(default)]
    budget: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPg {
    #[serde(default)]
    read_only: Option<ReadOnly>,
    #[serde(default)]
    blast_radius: Option<RawBlast>,
    #[serde(default)]
    timeouts: Option<RawTimeouts>,
    #[serde(default)]
    max_sessions: Option<Spanned<usize>>,
    #[serde(default)]
    analysis: Option<RawAnalysis>,
}

fn duration(report: &mut Report, v: &Spanned<String>, max: Duration) -> Option<Duration> {
    match humantime::parse_duration(&v.value) {
        Ok(d) if d > Duration::ZERO && d <= max => Some(d),
        Ok(_) => {
            report.error(
                v,
                format!(
                    "`{}` must be more than 0 and at most {}",
                    v.value,
                    humantime::format_duration(max)
                ),
                None,
            );
            None
        }
        Err(e) => {
            report.error(
                v,
                format!("`{}` is not a duration: {e}", v.value),
                Some("e.g. 30s, 5m"),
            );
            None
        }
    }
}

impl RawPg {
    pub(crate) fn validate(raw: Option<&RawPg>, report: &mut Report) -> PgSettings {
        let mut s = PgSettings::default();
        let Some(raw) = raw else {
            return s;
        };
        if let Some(r) = raw.read_only {
            s.read_only = r;
        }
        if let Some(raw) = &raw.blast_radius {
            let mut b = BlastRadius::default();
            if let Some(m) = &raw.max_rows {
                b.max_rows = m.value;
            }
            if let Some(f) = &raw.max_fraction {
                if f.value > 0.0 && f.value <= 1.0 {
                    b.max_fraction = f.value;
                } else {
                    report.error(f, "`max_fraction` must be more than 0 and at most 1", None);
                }
            }
            s.blast_radius = (raw.enabled != Some(false)).then_some(b);
        }
        if let Some(t) = &raw.timeouts {
            let day = Duration::from_secs(86_400);
            if let Some(d) = t.statement.as_ref().and_then(|v| duration(report, v, day)) {
                s.statement_timeout = d;
            }
            if let Some(d) = t.lock.as_ref().and_then(|v| duration(report, v, day)) {
                s.lock_timeout = d;
            }
            if let Some(d) = t
                .idle_in_transaction
                .as_ref()
                .and_then(|v| duration(report, v, day))
            {
                s.idle_in_transaction_timeout = d;
            }
        }
        if let Some(m) = &raw.max_sessions {
            if m.value == 0 {
                report.error(m, "`max_sessions` must be at least 1", None);
            } else {
                s.max_sessions = m.value;
            }
        }
        if let Some(a) = &raw.analysis {
            if let Some(m) = &a.max_bytes {
                if m.value == 0 || m.value > crate::inspect::guardrails::MAX_ANALYZED_LEN {
                    report.error(
                        m,
                        format!(
                            "`max_bytes` must be between 1 and {}",
                            crate::inspect::guardrails::MAX_ANALYZED_LEN
                        ),
                        None,
                    );
                } else {
                    s.max_statement_bytes = m.value;
                }
            }
            if let Some(d) = a
                .budget
                .as_ref()
                .and_then(|v| duration(report, v, Duration::from_secs(60)))
            {
                s.analysis_budget = d;
            }
        }
        s
    }
}

/// The `max_sessions` cap of each resource: one agent must not fill the database's
/// connection slots. A session holds its slot until it ends.
#[derive(Default)]
pub struct SessionCaps {
    by_resource: std::sync::Mutex<
        std::collections::HashMap<(String, usize), std::sync::Arc<tokio::sync::Semaphore>>,
    >,
}

impl SessionCaps {
    /// A slot for a new session of `resource`, or `None` when it has `max` already.
    pub fn try_acquire(
        &self,
        resource: &str,
        max: usize,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let sem = self
            .by_resource
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((resource.to_string(), max))
            .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(max)))
            .clone();
        sem.try_acquire_owned().ok()
    }
}
