//! Services handed to every protocol session (no globals, so tests can inject their own).
//! Nothing here is protocol-specific: what one protocol's sessions share is its own `State`.

pub mod alerts;
pub mod approvals;
pub mod audit;
pub mod cancel;
pub mod identity;

use std::sync::{Arc, RwLock};

use crate::{
    config::Config,
    inspect::{guardrails::SqlAnalyzer, masking::MaskingEngine},
};

pub struct Services {
    policy: RwLock<Arc<Config>>,
    pub analyzer: SqlAnalyzer,
    pub cancel: cancel::CancelRegistry,
    masker: RwLock<Arc<MaskingEngine>>,
    pub alerts: alerts::AlertSink,
    /// `None` when the policy has no `approvals:` section (holds are then refused).
    pub approvals: Option<Arc<approvals::Broker>>,
    /// Verifies agents' OIDC tokens (`agent_auth: oidc`).
    pub agent_tokens: Option<Arc<identity::OidcVerifier>>,
    /// Approval previews running at once: each is an extra database connection, and a burst of
    /// holds must not exhaust the database's connection slots.
    pub previews: tokio::sync::Semaphore,
    pub audit: Arc<audit::AuditLog>,
}

/// See [`Services::previews`].
pub const MAX_CONCURRENT_PREVIEWS: usize = 8;

/// Statement analyses cached per gateway (exact text → analysis).
const ANALYSIS_CACHE: usize = 10_000;

impl Services {
    /// Needs a tokio runtime (the alert worker is spawned).
    pub fn new(
        config: Arc<Config>,
        masker: Arc<MaskingEngine>,
        approvals: Option<Arc<approvals::Broker>>,
        agent_tokens: Option<Arc<identity::OidcVerifier>>,
        audit: Arc<audit::AuditLog>,
    ) -> Services {
        Services {
            audit,
            approvals,
            agent_tokens,
            previews: tokio::sync::Semaphore::new(MAX_CONCURRENT_PREVIEWS),
            policy: RwLock::new(config),
            analyzer: SqlAnalyzer::new(ANALYSIS_CACHE),
            cancel: cancel::CancelRegistry::default(),
            masker: RwLock::new(masker),
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

    /// Swaps the policy; the masking engine is rebuilt only when its settings changed.
    pub fn replace_policy(
        &self,
        config: Arc<Config>,
    ) -> Result<(), crate::inspect::masking::MaskError> {
        if config.masking != self.policy().masking {
            let engine = MaskingEngine::new(config.masking.clone())?;
            *self.masker.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(engine);
        }
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }

    /// The masking engine in force now.
    pub fn masker(&self) -> Arc<MaskingEngine> {
        self.masker
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
