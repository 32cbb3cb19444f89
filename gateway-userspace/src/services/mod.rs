//! Services handed to every protocol session (no globals, so tests can inject their own).

pub mod alerts;
pub mod cancel;

use std::sync::{Arc, RwLock};

use crate::{config::Config, inspect::guardrails::SqlAnalyzer};

/// Response masking as sessions use it; implemented by the masking engine.
pub trait Masker: Send + Sync {
    /// Cheap check over a whole raw buffer: `false` means nothing in it can need masking.
    fn may_match(&self, raw: &[u8]) -> bool;
    /// The masked value of one cell, or `None` to keep it.
    fn mask_cell(&self, column: &str, value: &[u8]) -> Option<Vec<u8>>;
}

/// Masks nothing (masking disabled).
pub struct NoMasking;

impl Masker for NoMasking {
    fn may_match(&self, _: &[u8]) -> bool {
        false
    }
    fn mask_cell(&self, _: &str, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

pub struct Services {
    policy: RwLock<Arc<Config>>,
    pub analyzer: SqlAnalyzer,
    pub cancel: cancel::CancelRegistry,
    pub masker: Arc<dyn Masker>,
    pub alerts: alerts::AlertSink,
}

/// Statement analyses cached per gateway (exact text → analysis).
const ANALYSIS_CACHE: usize = 10_000;

impl Services {
    /// Needs a tokio runtime (the alert worker is spawned).
    pub fn new(config: Arc<Config>, masker: Arc<dyn Masker>) -> Services {
        Services {
            policy: RwLock::new(config),
            analyzer: SqlAnalyzer::new(ANALYSIS_CACHE),
            cancel: cancel::CancelRegistry::default(),
            masker,
            alerts: alerts::AlertSink::start(),
        }
    }

    /// The policy in force now (hot reload swaps it; a session reads it per command).
    pub fn policy(&self) -> Arc<Config> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn replace_policy(&self, config: Arc<Config>) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = config;
    }
}
