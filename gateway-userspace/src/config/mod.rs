//! The policy file (YAML).
//!
//! Loading is two steps: serde parses a *raw* form ([`raw`]) in which every value carries its
//! position (`Spanned`), then validation converts it into [`Config`], section by section,
//! collecting **every** problem with `file:line:col` and a hint ([`diag`]) instead of stopping at
//! the first.
//!
//! Dependencies run one way: this module imports each section's settings module (approvals,
//! audit, identity, protocol settings, the sandbox); those import only the leaves [`diag`],
//! [`secret`] and [`action`], never the rest of `config`.

pub mod action;
pub mod diag;
mod network;
mod raw;
mod resources;
mod rules;
pub mod secret;
mod targets;
#[cfg(test)]
mod tests;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

pub use self::{
    action::Action,
    diag::{ConfigError, Diagnostic, SecretSources},
    network::{Containment, Destination, Egress, EgressAllow, Transport},
    resources::{
        AgentAuth, Credentials, FrameLimits, Protocol, ProtocolSettings, Resource, ResourceTls,
        UpstreamTls,
    },
    rules::{Alerts, GuardrailSettings, Rule},
    secret::Secret,
    targets::{EgressMode, InboundMode, Target, TargetCgroup, UnixMode},
};
use self::{diag::Report, raw::RawConfig};
use crate::services::audit::settings::DEFAULT_DATA_DIR;
pub use crate::services::{
    approvals::settings::{ApprovalPolicy, ApprovalSettings, IdentitySettings},
    audit::settings::{AuditSettings, CaptureLimits, StoreSettings},
};

/// Default IPv4 listener for redirected connections.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:15001";
/// Default directory for runtime state (running targets, locks).
pub const DEFAULT_STATE_DIR: &str = "/run/sluice";
/// Default cap on concurrent proxied connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default cap on one target's concurrent connections: one target's agents cannot take every
/// slot of the gateway.
pub const DEFAULT_TARGET_MAX_CONNECTIONS: usize = 1_000;
/// Default cap on one process's concurrent connections: one agent process cannot take every slot
/// of its target (a connection pool of a few dozen stays far below it).
pub const DEFAULT_PROCESS_MAX_CONNECTIONS: usize = 256;
/// Default time a connection has from accept to an authenticated session (PostgreSQL startup
/// and login, SSH key exchange and authentication).
pub const DEFAULT_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A validated policy.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the file came from, for messages.
    pub source: PathBuf,
    pub listen: SocketAddr,
    /// `None` when IPv6 interception is disabled (`listen_v6: none`).
    pub listen_v6: Option<SocketAddr>,
    pub state_dir: PathBuf,
    /// Persistent data (the audit log and its key).
    pub data_dir: PathBuf,
    pub max_connections: usize,
    /// From accept to an authenticated session; slower connections are closed.
    pub handshake_timeout: std::time::Duration,
    pub containment: Containment,
    pub targets: Vec<Target>,
    pub resources: Vec<Resource>,
    pub egress: Egress,
    pub rules: Vec<Rule>,
    pub guardrails: GuardrailSettings,
    pub alerts: Alerts,
    /// Response masking (on by default with the built-in detectors).
    pub masking: crate::inspect::masking::MaskingConfig,
    /// The approval service; `None`: holds are refused (nobody could approve them).
    pub approvals: Option<ApprovalSettings>,
    /// How reviewers (and agents presenting tokens) are authenticated.
    pub identity: IdentitySettings,
    pub audit: AuditSettings,
    /// Where the policy's secrets were read from (`sluice exec` keeps them from the agent).
    pub secrets: SecretSources,
}

impl Config {
    /// Reads, parses and validates a policy file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.into(),
            diagnostics: vec![Diagnostic {
                line: 0,
                column: 0,
                message: format!("cannot read the policy file: {e}"),
                hint: None,
            }],
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates policy text; `source` is only used in messages.
    pub fn parse(text: &str, source: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            ConfigError {
                file: source.into(),
                diagnostics: vec![Diagnostic {
                    line,
                    column,
                    message: parser_message(&e.to_string()),
                    hint: Some("see examples/policy.yaml for the accepted fields".into()),
                }],
            }
        })?;
        raw.validate(source)
    }

    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }
}

/// The parser's message without its own "error: line L column C:" prefix (the position is
/// reported separately, in the file:line:col form).
fn parser_message(s: &str) -> String {
    let first = s.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match first
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((_, message)) => message.to_string(),
        None => first.to_string(),
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !s.starts_with('.')
}

impl RawConfig {
    fn validate(self, source: &Path) -> Result<Config, ConfigError> {
        let raw = self;
        let mut report = Report::default();
        let report = &mut report;

        let network::Listeners {
            listen,
            listen_v6,
            max_connections,
        } = network::listeners(&raw, report);
        let targets = raw.targets.as_deref().unwrap_or_default();
        let (targets, target_names) = targets::validate(targets, max_connections, report);
        let resources = raw.resources.as_deref().unwrap_or_default();
        let (resources, resource_names) = resources::validate(resources, report);
        let egress = network::egress(raw.egress.as_ref(), report);
        let handshake_timeout = network::handshake_timeout(raw.handshake_timeout.as_ref(), report);
        let containment = network::containment(raw.containment.as_ref(), report);
        let rules = raw.rules.as_deref().unwrap_or_default();
        let rules = rules::validate(rules, &resource_names, &target_names, report);
        let guardrails = rules::guardrails(raw.guardrails.as_ref(), report);
        let masking = match &raw.masking {
            None => crate::inspect::masking::MaskingConfig::default(),
            Some(m) => {
                if let Err(errors) = m.value.validate() {
                    for e in errors {
                        report.error(m, format!("masking: {e}"), None);
                    }
                }
                m.value.clone()
            }
        };
        let alerts = rules::alerts(raw.alerts.as_ref(), report);

        let approvals = raw.approvals.as_ref().map(|a| a.validate(report));
        let identity = raw
            .identity
            .as_ref()
            .map(|i| i.validate(report))
            .unwrap_or_default();
        if let Some(a) = &approvals {
            if a.default.is_none() {
                for (raw_rule, rule) in raw.rules.iter().flatten().zip(&rules) {
                    if rule.action == Action::Hold && rule.approval.is_none() {
                        report.error(
                            &raw_rule.name,
                            format!(
                                "rule `{}` holds commands, but nobody may approve them",
                                rule.name
                            ),
                            Some("give the rule an `approval:` block or set `approvals.default`"),
                        );
                    }
                }
            }
            if identity.oidc.is_none() && identity.static_tokens.is_empty() {
                let at = raw.approvals.as_ref().and_then(|a| a.listen_span());
                let message = "approvals are enabled, but no reviewer can sign in";
                let hint = Some(
                    "configure `identity.oidc` (or `identity.static_tokens` for a single-user setup)",
                );
                match at {
                    Some(at) => report.error(at, message, hint),
                    None => report.error_at_start(message, hint),
                }
            }
        }
        for (raw_res, res) in raw.resources.iter().flatten().zip(&resources) {
            if let Some(a) = &raw_res.agent_auth
                && a.value == AgentAuth::Oidc
                && identity.oidc.is_none()
            {
                report.error(a, format!("resource `{}` asks agents for an OIDC token, but `identity.oidc` is not configured", res.name), None);
            }
        }

        let data_dir = PathBuf::from(
            raw.data_dir
                .clone()
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
        );
        let audit = match &raw.audit {
            Some(a) => a.validate(&data_dir, report),
            None => AuditSettings::defaults(&data_dir),
        };

        let state_dir = PathBuf::from(raw.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()));
        let protected = crate::exec::settings::protected_paths(
            source,
            &state_dir,
            &data_dir,
            &audit,
            approvals.as_ref(),
            &report.secrets.files,
        );
        for t in raw.targets.iter().flatten() {
            crate::exec::settings::check_grants(t.landlock.as_ref(), &protected, report);
        }

        let secrets = std::mem::take(report).finish(source)?;
        Ok(Config {
            source: source.into(),
            listen,
            listen_v6,
            state_dir,
            data_dir,
            audit,
            max_connections,
            handshake_timeout,
            containment,
            targets,
            resources,
            egress,
            rules,
            guardrails,
            alerts,
            masking,
            approvals,
            identity,
            secrets,
        })
    }
}
