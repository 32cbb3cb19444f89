//! The policy as serde reads it: every value that can be wrong carries its position
//! (`Spanned`) so that validation can say where. Nothing here checks anything.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{
    Action, AgentAuth, EgressMode, InboundMode, Protocol, Transport, UnixMode, secret::RawSecret,
};
use crate::services::{
    approvals::settings::{RawApprovals, RawIdentity, RawPolicy},
    audit::settings::RawAudit,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) listen: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) listen_v6: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) state_dir: Option<String>,
    #[serde(default)]
    pub(crate) data_dir: Option<String>,
    #[serde(default)]
    pub(crate) max_connections: Option<Spanned<usize>>,
    #[serde(default)]
    pub(crate) handshake_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) containment: Option<Spanned<String>>,
    // `Option` so that a key left empty (`resources:`) reads as an empty list.
    #[serde(default)]
    pub(crate) targets: Option<Vec<RawTarget>>,
    #[serde(default)]
    pub(crate) resources: Option<Vec<RawResource>>,
    #[serde(default)]
    pub(crate) egress: Option<RawEgress>,
    #[serde(default)]
    pub(crate) rules: Option<Vec<RawRule>>,
    #[serde(default)]
    pub(crate) guardrails: Option<RawGuardrails>,
    #[serde(default)]
    pub(crate) alerts: Option<RawAlerts>,
    #[serde(default)]
    pub(crate) masking: Option<Spanned<crate::inspect::masking::MaskingConfig>>,
    #[serde(default)]
    pub(crate) approvals: Option<RawApprovals>,
    #[serde(default)]
    pub(crate) identity: Option<RawIdentity>,
    #[serde(default)]
    pub(crate) audit: Option<RawAudit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) name: Spanned<String>,
    #[serde(default)]
    pub(crate) resources: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) targets: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) guardrails: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) statements: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) commands: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) shell: Vec<Spanned<String>>,
    pub(crate) action: Spanned<Action>,
    #[serde(default)]
    pub(crate) approval: Option<RawPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGuardrails {
    #[serde(default)]
    pub(crate) unparseable: Option<Spanned<Action>>,
    #[serde(default)]
    pub(crate) default: Option<Spanned<Action>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    #[serde(default)]
    pub(crate) webhook: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCredentials {
    pub(crate) mode: Spanned<CredentialMode>,
    #[serde(default)]
    pub(crate) user: Option<String>,
    #[serde(default)]
    pub(crate) database: Option<String>,
    #[serde(default)]
    pub(crate) password: Option<Spanned<RawSecret>>,
    #[serde(default)]
    pub(crate) key: Option<Spanned<RawSecret>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CredentialMode {
    Inject,
    Passthrough,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    #[serde(default)]
    pub(crate) max_client_message: Option<Spanned<usize>>,
    #[serde(default)]
    pub(crate) max_upstream_message: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    pub(crate) name: Spanned<String>,
    #[serde(default)]
    pub(crate) cgroup: Option<Spanned<String>>,
    pub(crate) egress: Spanned<EgressMode>,
    #[serde(default)]
    pub(crate) inbound: Option<InboundMode>,
    #[serde(default)]
    pub(crate) unix: Option<UnixMode>,
    #[serde(default)]
    pub(crate) max_connections: Option<Spanned<usize>>,
    #[serde(default)]
    pub(crate) max_connections_per_process: Option<Spanned<usize>>,
    #[serde(default)]
    pub(crate) run_as: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) landlock: Option<Spanned<crate::exec::settings::RawLandlock>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawResource {
    pub(crate) name: Spanned<String>,
    pub(crate) protocol: Spanned<Protocol>,
    #[serde(rename = "match")]
    pub(crate) matches: Spanned<Vec<RawDestination>>,
    #[serde(default)]
    pub(crate) upstream: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) credentials: Option<RawCredentials>,
    #[serde(default)]
    pub(crate) limits: Option<RawLimits>,
    #[serde(default)]
    pub(crate) tls: Option<RawTls>,
    #[serde(default)]
    pub(crate) agent_auth: Option<Spanned<AgentAuth>>,
    #[serde(default)]
    pub(crate) ssh: Option<crate::proto::ssh::settings::RawSsh>,
    #[serde(default)]
    pub(crate) postgres: Option<crate::proto::postgres::settings::RawPg>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    #[serde(default)]
    pub(crate) upstream: Option<Spanned<UpstreamTlsMode>>,
    #[serde(default)]
    pub(crate) ca: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) server_name: Option<String>,
    #[serde(default)]
    pub(crate) agent_cert: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) agent_key: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum UpstreamTlsMode {
    Disable,
    /// Encrypted and verified (chain and host name); there is no unverified mode.
    Verify,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDestination {
    pub(crate) address: Spanned<String>,
    pub(crate) port: Spanned<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEgress {
    #[serde(default)]
    pub(crate) allow: Vec<RawAllow>,
    #[serde(default = "default_true")]
    pub(crate) dns: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAllow {
    pub(crate) address: Spanned<String>,
    pub(crate) port: Spanned<u16>,
    #[serde(default)]
    pub(crate) protocol: Transport,
}

fn default_true() -> bool {
    true
}
