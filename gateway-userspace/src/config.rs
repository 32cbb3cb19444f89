//! The policy file (YAML).
//!
//! Loading is two steps: serde parses a *raw* form in which every value carries its position
//! (`Spanned`), then [`RawConfig::validate`] converts it into [`Config`], collecting **every**
//! problem with `file:line:col` and a hint instead of stopping at the first.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
};

use ipnet::IpNet;
use serde::Deserialize;
use serde_saphyr::Spanned;

pub use crate::services::{
    approvals::settings::{ApprovalPolicy, ApprovalSettings, IdentitySettings},
    audit::settings::{AuditSettings, CaptureLimits, StoreSettings},
};
use crate::services::{
    approvals::settings::{RawApprovals, RawIdentity, RawPolicy},
    audit::settings::{DEFAULT_DATA_DIR, RawAudit},
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

/// An intercepted cgroup and its egress default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub cgroup: TargetCgroup,
    pub egress: EgressMode,
    /// `run_as` and `landlock`: how `sluice exec` confines the agent.
    pub sandbox: crate::exec::settings::TargetSandbox,
    pub inbound: InboundMode,
    /// Whether its sockets may connect to unix-domain sockets (paths and abstract names).
    pub unix: UnixMode,
    /// Concurrent connections of this target, and of one of its processes.
    pub max_connections: usize,
    pub max_connections_per_process: usize,
}

/// Unix-domain sockets: a local database's socket, `docker.sock`, any daemon's: another way out
/// of the network policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnixMode {
    /// No connect or send to a unix socket by path or abstract name, from the target's sockets
    /// (socket pairs between its own processes keep working).
    #[default]
    Deny,
    Allow,
}

/// What a target's processes may accept from others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InboundMode {
    /// No binds to a fixed port; connection requests and unsolicited datagrams from outside the
    /// host are dropped.
    Deny,
    /// Servers on loopback only (tools that talk to themselves): binds to a fixed port only on
    /// loopback; connection requests from outside the host are dropped.
    #[default]
    Loopback,
    Allow,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetCgroup {
    /// Created and removed by sluice (`<cgroup2>/sluice/<name>`); `sluice exec --name` joins it.
    Managed,
    /// An existing cgroup, relative to the cgroup v2 mount (Kubernetes pods, systemd units).
    Path(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EgressMode {
    /// TCP connects to anything that is not a listed resource or allowed destination fail (EPERM).
    Deny,
    /// Unlisted destinations are reached directly, untouched.
    Allow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Opaque TCP, forwarded byte for byte.
    Tcp,
    /// PostgreSQL v3 wire protocol: guardrails, masking, held credentials.
    Postgres,
    /// SSH: sluice is the agent's SSH server and logs in upstream with its own credential.
    Ssh,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Postgres => "postgres",
            Protocol::Ssh => "ssh",
        })
    }
}

/// Something agents reach through sluice.
#[derive(Clone, Debug)]
pub struct Resource {
    /// Position in `Config::resources`; the kernel reports it with each redirected connection.
    pub id: u32,
    pub name: String,
    pub protocol: Protocol,
    pub matches: Vec<Destination>,
    /// Where sluice connects; `None` means the agent's original destination.
    pub upstream: Option<String>,
    /// How sluice logs in upstream (database protocols).
    pub credentials: Credentials,
    pub limits: FrameLimits,
    pub tls: ResourceTls,
    /// What the agent must present when it connects.
    pub agent_auth: AgentAuth,
    /// SSH resources only.
    pub ssh: Option<crate::proto::ssh::settings::SshSettings>,
    /// PostgreSQL resources (defaults elsewhere, unused).
    pub postgres: crate::proto::postgres::settings::PgSettings,
}

/// How an agent authenticates to sluice itself (separate from the upstream login).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentAuth {
    /// Nothing: the workload identity from the kernel is the agent's identity.
    #[default]
    None,
    /// An OIDC token as the password (PostgreSQL: cleartext password message), verified offline;
    /// its subject becomes the requester of approvals.
    Oidc,
}

/// TLS on each leg of a resource's connections.
#[derive(Clone, Debug, Default)]
pub struct ResourceTls {
    /// Verify-full TLS to the upstream (chain and name); `None` is plaintext.
    pub upstream: Option<UpstreamTls>,
    /// Terminate agents' TLS with this certificate; `None` answers agents' TLS requests "no".
    pub agent: Option<Arc<rustls::ServerConfig>>,
}

#[derive(Clone, Debug)]
pub struct UpstreamTls {
    pub config: Arc<rustls::ClientConfig>,
    /// Name checked against the certificate (default: the upstream's host).
    pub server_name: Option<String>,
}

/// Upstream login of a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// The agent's own authentication is relayed unchanged.
    Passthrough,
    /// sluice logs in with a secret it holds; whatever the agent presents is ignored.
    Inject {
        user: Option<String>,
        password: Option<Secret>,
        database: Option<String>,
        /// An OpenSSH private key (SSH resources), checked when the policy is loaded.
        key: Option<Secret>,
    },
}

/// A credential value. `Debug` never shows it, so it cannot leak through logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(crate) String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The environment variables and files the policy's secrets come from: an agent must never get
/// such a variable (`sluice exec`) nor a Landlock grant over such a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretSources {
    pub env: std::collections::BTreeSet<String>,
    pub files: std::collections::BTreeSet<PathBuf>,
}

/// Largest message accepted from each side; anything larger ends the connection with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    pub client: usize,
    pub upstream: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        // Clients send statements and COPY chunks; servers can return rows up to 1 GiB but a
        // row that large is not something an agent should pull through a gateway.
        FrameLimits {
            client: 16 << 20,
            upstream: 256 << 20,
        }
    }
}

/// What a rule does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    /// Allowed, and an alert is raised.
    Alert,
    /// Held for approval.
    Hold,
    Deny,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Alert => "alert",
            Action::Hold => "hold",
            Action::Deny => "deny",
        })
    }
}

/// A policy rule: every matcher present must match.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub resources: Vec<String>,
    pub targets: Vec<String>,
    /// Guardrail findings (rule ids such as `drop`, `delete-without-where`).
    pub guardrails: Vec<String>,
    /// Statement kinds (`select`, `insert`, `update`, ...).
    pub statements: Vec<String>,
    /// Programs of a shell command line (`ls`, `cat`, `psql`; basenames, wrappers included).
    pub commands: Vec<String>,
    /// Kinds of shell commands (`read`, `write`, `unknown`): what is not on the read-only list.
    pub shell: Vec<String>,
    pub action: Action,
    /// Who approves what this rule holds (else `approvals.default`).
    pub approval: Option<ApprovalPolicy>,
}

#[derive(Clone, Debug)]
pub struct GuardrailSettings {
    /// For input that does not parse: deny or hold, never allow.
    pub unparseable: Action,
    /// For SQL statement kinds no rule names (built-in: deny).
    pub default: Action,
    /// For shell runs no rule names that are known to be read-only: `guardrails.default` when
    /// the policy sets it, else allow. Any other run is held at least (see `decide_shell`).
    pub shell_default: Action,
}

impl Default for GuardrailSettings {
    fn default() -> Self {
        GuardrailSettings {
            unparseable: Action::Deny,
            // A statement kind no rule names is something nobody decided to allow.
            default: Action::Deny,
            shell_default: Action::Allow,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Alerts {
    /// POSTed a JSON document for every refused command and every `alert` rule match.
    pub webhook: Option<String>,
}

/// A prefix and a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destination {
    pub net: IpNet,
    pub port: u16,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} port {}", self.net, self.port)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Egress {
    /// Destinations every intercepted process may reach directly even under `egress: deny`.
    pub allow: Vec<EgressAllow>,
    /// Also allow port 53 (UDP and TCP) of the nameservers of /etc/resolv.conf.
    pub dns: bool,
}

/// A destination reachable directly, over one transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EgressAllow {
    pub destination: Destination,
    pub transport: Transport,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
}

/// One problem in a policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub hint: Option<String>,
}

/// Every problem found in a policy file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: error: {}",
                self.file.display(),
                d.line,
                d.column,
                d.message
            )?;
            if let Some(hint) = &d.hint {
                write!(f, "\n  hint: {hint}")?;
            }
        }
        Ok(())
    }
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listen: Option<Spanned<String>>,
    #[serde(default)]
    listen_v6: Option<Spanned<String>>,
    #[serde(default)]
    state_dir: Option<String>,
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(default)]
    max_connections: Option<Spanned<usize>>,
    #[serde(default)]
    handshake_timeout: Option<Spanned<String>>,
    // `Option` so that a key left empty (`resources:`) reads as an empty list.
    #[serde(default)]
    targets: Option<Vec<RawTarget>>,
    #[serde(default)]
    resources: Option<Vec<RawResource>>,
    #[serde(default)]
    egress: Option<RawEgress>,
    #[serde(default)]
    rules: Option<Vec<RawRule>>,
    #[serde(default)]
    guardrails: Option<RawGuardrails>,
    #[serde(default)]
    alerts: Option<RawAlerts>,
    #[serde(default)]
    masking: Option<Spanned<crate::inspect::masking::MaskingConfig>>,
    #[serde(default)]
    approvals: Option<RawApprovals>,
    #[serde(default)]
    identity: Option<RawIdentity>,
    #[serde(default)]
    audit: Option<RawAudit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    #[serde(default)]
    resources: Vec<Spanned<String>>,
    #[serde(default)]
    targets: Vec<Spanned<String>>,
    #[serde(default)]
    guardrails: Vec<Spanned<String>>,
    #[serde(default)]
    statements: Vec<Spanned<String>>,
    #[serde(default)]
    commands: Vec<Spanned<String>>,
    #[serde(default)]
    shell: Vec<Spanned<String>>,
    action: Spanned<Action>,
    #[serde(default)]
    approval: Option<RawPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuardrails {
    #[serde(default)]
    unparseable: Option<Spanned<Action>>,
    #[serde(default)]
    default: Option<Spanned<Action>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    #[serde(default)]
    webhook: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    mode: Spanned<CredentialMode>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    database: Option<String>,
    #[serde(default)]
    password: Option<Spanned<RawSecret>>,
    #[serde(default)]
    key: Option<Spanned<RawSecret>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CredentialMode {
    Inject,
    Passthrough,
}

/// Where a secret comes from: inline (tests, demos), an environment variable, or a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub(crate) enum RawSecret {
    Value(String),
    Env(String),
    File(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default)]
    max_client_message: Option<Spanned<usize>>,
    #[serde(default)]
    max_upstream_message: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: Spanned<String>,
    #[serde(default)]
    cgroup: Option<Spanned<String>>,
    egress: Spanned<EgressMode>,
    #[serde(default)]
    inbound: Option<InboundMode>,
    #[serde(default)]
    unix: Option<UnixMode>,
    #[serde(default)]
    max_connections: Option<Spanned<usize>>,
    #[serde(default)]
    max_connections_per_process: Option<Spanned<usize>>,
    #[serde(default)]
    run_as: Option<Spanned<String>>,
    #[serde(default)]
    landlock: Option<Spanned<crate::exec::settings::RawLandlock>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    name: Spanned<String>,
    protocol: Spanned<Protocol>,
    #[serde(rename = "match")]
    matches: Spanned<Vec<RawDestination>>,
    #[serde(default)]
    upstream: Option<Spanned<String>>,
    #[serde(default)]
    credentials: Option<RawCredentials>,
    #[serde(default)]
    limits: Option<RawLimits>,
    #[serde(default)]
    tls: Option<RawTls>,
    #[serde(default)]
    agent_auth: Option<Spanned<AgentAuth>>,
    #[serde(default)]
    ssh: Option<crate::proto::ssh::settings::RawSsh>,
    #[serde(default)]
    postgres: Option<crate::proto::postgres::settings::RawPg>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    upstream: Option<Spanned<UpstreamTlsMode>>,
    #[serde(default)]
    ca: Option<Spanned<String>>,
    #[serde(default)]
    server_name: Option<String>,
    #[serde(default)]
    agent_cert: Option<Spanned<String>>,
    #[serde(default)]
    agent_key: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum UpstreamTlsMode {
    Disable,
    /// Encrypted and verified (chain and host name); there is no unverified mode.
    Verify,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    address: Spanned<String>,
    port: Spanned<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEgress {
    #[serde(default)]
    allow: Vec<RawAllow>,
    #[serde(default = "default_true")]
    dns: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    address: Spanned<String>,
    port: Spanned<u16>,
    #[serde(default)]
    protocol: Transport,
}

pub(crate) fn resolve_secret(raw: &Spanned<RawSecret>, report: &mut Report) -> Option<Secret> {
    report.1.note(&raw.value);
    match &raw.value {
        RawSecret::Value(v) => Some(Secret(v.clone())),
        RawSecret::Env(name) => match std::env::var(name) {
            Ok(v) => Some(Secret(v)),
            Err(_) => {
                report.error(
                    raw,
                    format!("environment variable `{name}` is not set"),
                    None,
                );
                None
            }
        },
        // Refused when group or others could read it, or another user owns it (files.rs).
        RawSecret::File(path) => match crate::files::read_secret_text(Path::new(path)) {
            Ok(v) => Some(Secret(v)),
            Err(e) => {
                report.error(raw, e.to_string(), None);
                None
            }
        },
    }
}

fn default_true() -> bool {
    true
}

/// Collects diagnostics while validating (and where secrets came from).
#[derive(Default)]
pub(crate) struct Report(Vec<Diagnostic>, SecretSources);

impl SecretSources {
    fn note(&mut self, raw: &RawSecret) {
        match raw {
            RawSecret::Value(_) => {}
            RawSecret::Env(name) => {
                self.env.insert(name.clone());
            }
            RawSecret::File(path) => self.note_file(Path::new(path)),
        }
    }

    pub(crate) fn note_file(&mut self, path: &Path) {
        self.files.insert(path.into());
    }
}

impl Report {
    pub(crate) fn error<T>(
        &mut self,
        at: &Spanned<T>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) {
        self.0.push(Diagnostic {
            line: at.referenced.line(),
            column: at.referenced.column(),
            message: message.into(),
            hint: hint.map(str::to_string),
        });
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !s.starts_with('.')
}

impl RawDestination {
    fn validate(&self, report: &mut Report) -> Option<Destination> {
        let text = self.address.value.trim();
        let net = if text.contains('/') {
            text.parse::<IpNet>().ok()
        } else {
            text.parse::<IpAddr>().ok().map(IpNet::from)
        };
        let Some(net) = net else {
            report.error(
                &self.address,
                format!("`{text}` is not an IP address or CIDR prefix"),
                Some(
                    "write e.g. 10.0.0.5, 10.0.0.0/24 or fd00::5/128; host names are not resolved",
                ),
            );
            return None;
        };
        if self.port.value == 0 {
            report.error(
                &self.port,
                "port 0 matches nothing",
                Some("give the service's TCP port"),
            );
            return None;
        }
        Some(Destination {
            net: net.trunc(),
            port: self.port.value,
        })
    }
}

impl RawConfig {
    fn validate(self, source: &Path) -> Result<Config, ConfigError> {
        let mut report = Report::default();

        let listen = match &self.listen {
            None => DEFAULT_LISTEN.parse().expect("valid default"),
            Some(s) => match s.value.parse::<SocketAddr>() {
                Ok(a) if a.is_ipv4() && a.ip().is_loopback() => a,
                Ok(_) => {
                    report.error(
                        s,
                        "`listen` must be an IPv4 loopback address",
                        Some("the listener only receives connections redirected on this host; e.g. 127.0.0.1:15001"),
                    );
                    DEFAULT_LISTEN.parse().expect("valid default")
                }
                Err(_) => {
                    report.error(
                        s,
                        format!("`{}` is not an address:port", s.value),
                        Some("e.g. 127.0.0.1:15001"),
                    );
                    DEFAULT_LISTEN.parse().expect("valid default")
                }
            },
        };
        let listen_v6 = match &self.listen_v6 {
            None => Some(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port())),
            Some(s) if s.value == "none" => None,
            Some(s) => match s.value.parse::<SocketAddr>() {
                Ok(a) if a.is_ipv6() && a.ip().is_loopback() => Some(a),
                _ => {
                    report.error(
                        s,
                        format!("`{}` is not an IPv6 loopback address:port", s.value),
                        Some("e.g. [::1]:15001, or `none` to leave IPv6 connects unredirected"),
                    );
                    None
                }
            },
        };
        if let (Some(v6), Some(s)) = (listen_v6, &self.listen_v6)
            && v6.port() != listen.port()
        {
            report.error(s, "`listen_v6` must use the same port as `listen`", None);
        }

        let max_connections = match &self.max_connections {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(s) if s.value == 0 => {
                report.error(s, "`max_connections` must be at least 1", None);
                DEFAULT_MAX_CONNECTIONS
            }
            Some(s) => s.value,
        };

        let mut targets = Vec::new();
        let mut target_names = HashSet::new();
        let mut cgroup_paths: BTreeMap<String, Spanned<String>> = BTreeMap::new();
        for t in self.targets.iter().flatten() {
            if !valid_name(&t.name.value) {
                report.error(
                    &t.name,
                    format!("target name `{}` is not valid", t.name.value),
                    Some("use 1-64 letters, digits, '-', '_' or '.'"),
                );
            } else if !target_names.insert(t.name.value.clone()) {
                report.error(
                    &t.name,
                    format!("target `{}` is defined twice", t.name.value),
                    None,
                );
            }
            let cgroup = match &t.cgroup {
                None => TargetCgroup::Managed,
                Some(p) => {
                    let path = p.value.trim_matches('/').to_string();
                    if path.is_empty() {
                        report.error(
                            p,
                            "the root cgroup cannot be intercepted",
                            Some("name the agent's own cgroup (e.g. a pod or a systemd unit), or omit `cgroup` to let sluice manage one"),
                        );
                    } else if path
                        .split('/')
                        .any(|c| c == ".." || c == "." || c.is_empty())
                    {
                        report.error(
                            p,
                            format!("cgroup path `{}` is not a plain relative path", p.value),
                            None,
                        );
                    } else {
                        cgroup_paths.insert(path.clone(), p.clone());
                    }
                    TargetCgroup::Path(path)
                }
            };
            let at_least_one = |v: &Option<Spanned<usize>>, what: &str, report: &mut Report| {
                v.as_ref().and_then(|s| {
                    if s.value == 0 {
                        report.error(s, format!("`{what}` must be at least 1"), None);
                        None
                    } else {
                        Some(s.value)
                    }
                })
            };
            targets.push(Target {
                name: t.name.value.clone(),
                cgroup,
                egress: t.egress.value,
                inbound: t.inbound.unwrap_or_default(),
                unix: t.unix.unwrap_or_default(),
                max_connections: at_least_one(&t.max_connections, "max_connections", &mut report)
                    .unwrap_or(DEFAULT_TARGET_MAX_CONNECTIONS.min(max_connections)),
                max_connections_per_process: at_least_one(
                    &t.max_connections_per_process,
                    "max_connections_per_process",
                    &mut report,
                )
                .unwrap_or(DEFAULT_PROCESS_MAX_CONNECTIONS),
                sandbox: crate::exec::settings::validate(
                    t.run_as.as_ref(),
                    t.landlock.as_ref(),
                    &mut report,
                ),
            });
        }
        // Programs attached to a cgroup also run for its descendants: a nested target would be
        // intercepted twice with possibly contradicting policies.
        let paths: Vec<&String> = cgroup_paths.keys().collect();
        for (i, a) in paths.iter().enumerate() {
            for b in &paths[i + 1..] {
                if b.starts_with(a.as_str()) && b.as_bytes().get(a.len()) == Some(&b'/') {
                    report.error(
                        &cgroup_paths[*b],
                        format!("cgroup `{b}` is inside target cgroup `{a}`"),
                        Some("targets must not be nested; the outer target already covers it"),
                    );
                }
            }
        }

        let mut resources = Vec::new();
        let mut resource_names = HashSet::new();
        let mut seen_matches: BTreeMap<(IpNet, u16), String> = BTreeMap::new();
        for (i, r) in self.resources.iter().flatten().enumerate() {
            if !valid_name(&r.name.value) {
                report.error(
                    &r.name,
                    format!("resource name `{}` is not valid", r.name.value),
                    Some("use 1-64 letters, digits, '-', '_' or '.'"),
                );
            } else if !resource_names.insert(r.name.value.clone()) {
                report.error(
                    &r.name,
                    format!("resource `{}` is defined twice", r.name.value),
                    None,
                );
            }
            if r.matches.value.is_empty() {
                report.error(
                    &r.matches,
                    format!("resource `{}` matches no destination", r.name.value),
                    Some("list at least one {address, port}"),
                );
            }
            let mut matches = Vec::new();
            for m in &r.matches.value {
                if let Some(d) = m.validate(&mut report) {
                    if let Some(other) = seen_matches.insert((d.net, d.port), r.name.value.clone())
                    {
                        report.error(
                            &m.address,
                            format!("{d} is already matched by resource `{other}`"),
                            None,
                        );
                    }
                    matches.push(d);
                }
            }
            if let Some(u) = &r.upstream
                && u.value
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_none()
            {
                report.error(
                    u,
                    format!("upstream `{}` is not host:port", u.value),
                    Some("e.g. db.internal:5432 or 10.0.0.5:5432"),
                );
            }
            let credentials = match &r.credentials {
                None => Credentials::Passthrough,
                Some(c) if r.protocol.value == Protocol::Tcp => {
                    report.error(
                        &c.mode,
                        "`credentials` need a protocol sluice speaks",
                        Some("use protocol: postgres"),
                    );
                    Credentials::Passthrough
                }
                Some(c) => match c.mode.value {
                    CredentialMode::Passthrough => Credentials::Passthrough,
                    CredentialMode::Inject => Credentials::Inject {
                        user: c.user.clone(),
                        database: c.database.clone(),
                        password: c
                            .password
                            .as_ref()
                            .and_then(|p| resolve_secret(p, &mut report)),
                        key: c.key.as_ref().and_then(|k| {
                            let secret = resolve_secret(k, &mut report)?;
                            match crate::proto::ssh::settings::parse_private_key(secret.expose()) {
                                Ok(_) => Some(secret),
                                Err(e) => {
                                    report.error(k, e, None);
                                    None
                                }
                            }
                        }),
                    },
                },
            };
            if let Some(c) = &r.credentials
                && c.key.is_some()
                && r.protocol.value != Protocol::Ssh
            {
                report.error(&c.mode, "`credentials.key` is for ssh resources", None);
            }
            let ssh = if r.protocol.value == Protocol::Ssh {
                let inject = |c: &RawCredentials| {
                    c.mode.value == CredentialMode::Inject
                        && (c.key.is_some() || c.password.is_some())
                };
                if !r.credentials.as_ref().is_some_and(inject) {
                    report.error(
                        &r.name,
                        format!("ssh resource `{}` needs `credentials: {{ mode: inject, user: ..., key: ... }}`", r.name.value),
                        Some("the agent's own SSH signature cannot be replayed upstream: sluice logs in with a key or password it holds"),
                    );
                }
                if r.tls.is_some() {
                    report.error(&r.name, "`tls` does not apply to ssh resources", None);
                }
                Some(crate::proto::ssh::settings::RawSsh::validate(
                    r.ssh.as_ref(),
                    &r.name,
                    &mut report,
                ))
            } else {
                if r.ssh.is_some() {
                    report.error(&r.name, "`ssh:` settings need `protocol: ssh`", None);
                }
                None
            };
            if r.postgres.is_some() && r.protocol.value != Protocol::Postgres {
                report.error(
                    &r.name,
                    "`postgres:` settings need `protocol: postgres`",
                    None,
                );
            }
            let postgres =
                crate::proto::postgres::settings::RawPg::validate(r.postgres.as_ref(), &mut report);
            if let Some(a) = &r.agent_auth
                && a.value == AgentAuth::Oidc
                && !matches!(credentials, Credentials::Inject { .. })
            {
                report.error(
                    a,
                    "`agent_auth: oidc` needs `credentials: { mode: inject }`",
                    Some("with passthrough the agent's password goes to the database"),
                );
            }
            let mut limits = FrameLimits::default();
            if let Some(l) = &r.limits {
                for (field, value) in [
                    (&l.max_client_message, &mut limits.client),
                    (&l.max_upstream_message, &mut limits.upstream),
                ] {
                    if let Some(v) = field {
                        if v.value < 1024 || v.value > 1 << 30 {
                            report.error(v, "message limits must be between 1 KiB and 1 GiB", None);
                        } else {
                            *value = v.value;
                        }
                    }
                }
            }
            let mut tls = ResourceTls::default();
            if let Some(t) = &r.tls {
                if r.protocol.value == Protocol::Tcp {
                    report.error(
                        &r.name,
                        "`tls` needs a protocol sluice speaks",
                        Some("opaque TCP is relayed as is, TLS included"),
                    );
                }
                if let Some(mode) = &t.upstream
                    && mode.value == UpstreamTlsMode::Verify
                {
                    match crate::tls::upstream_config(
                        t.ca.as_ref().map(|c| Path::new(c.value.as_str())),
                    ) {
                        Ok(config) => {
                            tls.upstream = Some(UpstreamTls {
                                config,
                                server_name: t.server_name.clone(),
                            })
                        }
                        Err(e) => match &t.ca {
                            Some(ca) => report.error(ca, e, None),
                            None => report.error(mode, e, None),
                        },
                    }
                }
                if let Some(k) = &t.agent_key {
                    report.1.note_file(Path::new(&k.value));
                }
                match (&t.agent_cert, &t.agent_key) {
                    (Some(c), Some(k)) => {
                        // The certificate is public; the key is a secret file like any other.
                        match crate::files::read_secret_file(Path::new(&k.value)) {
                            Ok(key) => match crate::tls::agent_config(Path::new(&c.value), &key) {
                                Ok(config) => tls.agent = Some(config),
                                Err(e) => report.error(c, e, None),
                            },
                            Err(e) => report.error(k, e.to_string(), None),
                        }
                    }
                    (Some(c), None) => report.error(c, "`agent_cert` needs `agent_key`", None),
                    (None, Some(k)) => report.error(k, "`agent_key` needs `agent_cert`", None),
                    (None, None) => {}
                }
            }
            resources.push(Resource {
                id: i as u32,
                name: r.name.value.clone(),
                protocol: r.protocol.value,
                matches,
                upstream: r.upstream.as_ref().map(|u| u.value.clone()),
                credentials,
                limits,
                tls,
                agent_auth: r.agent_auth.as_ref().map(|a| a.value).unwrap_or_default(),
                ssh,
                postgres,
            });
        }

        let egress = match &self.egress {
            None => Egress {
                allow: Vec::new(),
                dns: true,
            },
            Some(e) => Egress {
                allow: e
                    .allow
                    .iter()
                    .filter_map(|a| {
                        let d = RawDestination {
                            address: a.address.clone(),
                            port: a.port.clone(),
                        };
                        Some(EgressAllow {
                            destination: d.validate(&mut report)?,
                            transport: a.protocol,
                        })
                    })
                    .collect(),
                dns: e.dns,
            },
        };
        let handshake_timeout = match &self.handshake_timeout {
            None => DEFAULT_HANDSHAKE_TIMEOUT,
            Some(raw) => match humantime::parse_duration(raw.value.trim()) {
                Ok(d) if !d.is_zero() => d,
                _ => {
                    report.error(
                        raw,
                        format!("`{}` is not a duration longer than zero", raw.value),
                        Some("e.g. 10s"),
                    );
                    DEFAULT_HANDSHAKE_TIMEOUT
                }
            },
        };

        let mut rules = Vec::new();
        let mut rule_names = HashSet::new();
        for r in self.rules.iter().flatten() {
            if !valid_name(&r.name.value) {
                report.error(
                    &r.name,
                    format!("rule name `{}` is not valid", r.name.value),
                    Some("use 1-64 letters, digits, '-', '_' or '.'"),
                );
            } else if !rule_names.insert(r.name.value.clone()) {
                report.error(
                    &r.name,
                    format!("rule `{}` is defined twice", r.name.value),
                    None,
                );
            }
            for res in &r.resources {
                if !resource_names.contains(&res.value) {
                    report.error(
                        res,
                        format!("rule refers to unknown resource `{}`", res.value),
                        None,
                    );
                }
            }
            for t in &r.targets {
                if !target_names.contains(&t.value) {
                    report.error(
                        t,
                        format!("rule refers to unknown target `{}`", t.value),
                        None,
                    );
                }
            }
            for g in &r.guardrails {
                if g.value == "pinned-setting" {
                    report.error(
                        g,
                        "`pinned-setting` cannot be loosened: the guardrails read SQL as the pinned settings say",
                        Some("remove it from `guardrails:`; changes of pinned settings are always refused"),
                    );
                } else if !crate::inspect::guardrails::is_rule_id(&g.value) {
                    let hint = format!(
                        "one of: {}",
                        crate::inspect::guardrails::all_rule_ids()
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    report.error(g, format!("unknown guardrail `{}`", g.value), Some(&hint));
                }
            }
            for c in &r.commands {
                // Matched against basenames, so a path or a blank could never match.
                if c.value.is_empty()
                    || c.value.contains('/')
                    || c.value.contains(char::is_whitespace)
                {
                    report.error(
                        c,
                        format!("`{}` is not a program name", c.value),
                        Some("give the program's name alone, e.g. `ls` (not `/bin/ls`)"),
                    );
                }
            }
            for k in &r.statements {
                if !crate::inspect::guardrails::STATEMENT_KINDS.contains(&k.value.as_str()) {
                    let hint = format!(
                        "one of: {}",
                        crate::inspect::guardrails::STATEMENT_KINDS.join(", ")
                    );
                    report.error(
                        k,
                        format!("unknown statement kind `{}`", k.value),
                        Some(&hint),
                    );
                }
            }
            for k in &r.shell {
                if !crate::inspect::guardrails::shell::SHELL_KINDS.contains(&k.value.as_str()) {
                    let hint = format!(
                        "one of: {}",
                        crate::inspect::guardrails::shell::SHELL_KINDS.join(", ")
                    );
                    report.error(
                        k,
                        format!("unknown shell command kind `{}`", k.value),
                        Some(&hint),
                    );
                }
            }
            if r.guardrails.is_empty()
                && r.statements.is_empty()
                && r.commands.is_empty()
                && r.shell.is_empty()
            {
                report.error(
                    &r.name,
                    format!("rule `{}` matches no command", r.name.value),
                    Some(
                        "give `guardrails:` (findings), `statements:` (SQL kinds), `commands:` (shell programs) and/or `shell:` (read, write, unknown)",
                    ),
                );
            }
            rules.push(Rule {
                name: r.name.value.clone(),
                resources: r.resources.iter().map(|x| x.value.clone()).collect(),
                targets: r.targets.iter().map(|x| x.value.clone()).collect(),
                guardrails: r.guardrails.iter().map(|x| x.value.clone()).collect(),
                statements: r.statements.iter().map(|x| x.value.clone()).collect(),
                commands: r.commands.iter().map(|x| x.value.clone()).collect(),
                shell: r.shell.iter().map(|x| x.value.clone()).collect(),
                action: r.action.value,
                approval: r.approval.as_ref().map(|a| {
                    if r.action.value != Action::Hold {
                        report.error(
                            &r.action,
                            "`approval` only applies to rules with `action: hold`",
                            None,
                        );
                    }
                    a.validate(&mut report)
                }),
            });
        }
        let mut guardrails = GuardrailSettings::default();
        if let Some(g) = &self.guardrails {
            if let Some(u) = &g.unparseable {
                if matches!(u.value, Action::Allow | Action::Alert) {
                    report.error(
                        u,
                        "unparseable statements cannot be allowed",
                        Some("use deny or hold"),
                    );
                } else {
                    guardrails.unparseable = u.value;
                }
            }
            if let Some(d) = &g.default {
                guardrails.default = d.value;
                guardrails.shell_default = d.value;
            }
        }
        let masking = match &self.masking {
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
        let alerts = Alerts {
            webhook: self
                .alerts
                .as_ref()
                .and_then(|a| a.webhook.as_ref())
                .and_then(|w| {
                    if w.value.starts_with("http://") || w.value.starts_with("https://") {
                        Some(w.value.clone())
                    } else {
                        report.error(
                            w,
                            "the alert webhook must be an http:// or https:// URL",
                            None,
                        );
                        None
                    }
                }),
        };

        let approvals = self.approvals.as_ref().map(|a| a.validate(&mut report));
        let identity = self
            .identity
            .as_ref()
            .map(|i| i.validate(&mut report))
            .unwrap_or_default();
        if let Some(a) = &approvals {
            if a.default.is_none() {
                for (raw, rule) in self.rules.iter().flatten().zip(&rules) {
                    if rule.action == Action::Hold && rule.approval.is_none() {
                        report.error(
                            &raw.name,
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
                let at = self.approvals.as_ref().and_then(|a| a.listen_span());
                let message = "approvals are enabled, but no reviewer can sign in";
                let hint = Some(
                    "configure `identity.oidc` (or `identity.static_tokens` for a single-user setup)",
                );
                match at {
                    Some(at) => report.error(at, message, hint),
                    None => report.0.push(Diagnostic {
                        line: 1,
                        column: 1,
                        message: message.into(),
                        hint: hint.map(str::to_string),
                    }),
                }
            }
        }
        for (raw, res) in self.resources.iter().flatten().zip(&resources) {
            if let Some(a) = &raw.agent_auth
                && a.value == AgentAuth::Oidc
                && identity.oidc.is_none()
            {
                report.error(a, format!("resource `{}` asks agents for an OIDC token, but `identity.oidc` is not configured", res.name), None);
            }
        }

        let data_dir = PathBuf::from(
            self.data_dir
                .clone()
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
        );
        let audit = match &self.audit {
            Some(a) => a.validate(&data_dir, &mut report),
            None => AuditSettings::defaults(&data_dir),
        };

        let state_dir = PathBuf::from(self.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()));
        let protected = crate::exec::settings::protected_paths(
            source,
            &state_dir,
            &data_dir,
            &audit,
            approvals.as_ref(),
            &report.1.files,
        );
        for t in self.targets.iter().flatten() {
            crate::exec::settings::check_grants(t.landlock.as_ref(), &protected, &mut report);
        }

        if !report.0.is_empty() {
            return Err(ConfigError {
                file: source.into(),
                diagnostics: report.0,
            });
        }
        Ok(Config {
            source: source.into(),
            listen,
            listen_v6,
            state_dir,
            data_dir,
            audit,
            max_connections,
            handshake_timeout,
            targets,
            resources,
            egress,
            rules,
            guardrails,
            alerts,
            masking,
            approvals,
            identity,
            secrets: report.1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("policy.yaml"))
    }

    #[test]
    fn parses_a_full_policy() {
        let c = parse(
            "listen: 127.0.0.1:16000\n\
             targets:\n  - name: agents\n    egress: deny\n  - name: pod\n    cgroup: /kubepods/pod1\n    egress: allow\n\
             resources:\n  - name: db\n    protocol: tcp\n    match:\n      - { address: 10.0.0.0/24, port: 5432 }\n    upstream: db.internal:5432\n\
             egress:\n  allow: [{ address: 192.0.2.1, port: 443 }]\n  dns: false\n",
        )
        .unwrap();
        assert_eq!(c.listen.port(), 16000);
        assert_eq!(c.listen_v6.unwrap().port(), 16000);
        assert_eq!(c.targets[0].cgroup, TargetCgroup::Managed);
        assert_eq!(
            c.targets[1].cgroup,
            TargetCgroup::Path("kubepods/pod1".into())
        );
        assert_eq!(c.resources[0].matches[0].net.to_string(), "10.0.0.0/24");
        assert_eq!(
            c.egress.allow[0].destination.net.to_string(),
            "192.0.2.1/32"
        );
        assert_eq!(c.egress.allow[0].transport, Transport::Tcp);
        assert!(!c.egress.dns);
    }

    #[test]
    fn the_shipped_example_policy_is_valid() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/policy.yaml"
        ));
        // The example reads its secret from the environment; give it one without touching the
        // process environment (tests run in parallel).
        let text = std::fs::read_to_string(path)
            .unwrap()
            .replace("{ env: ORDERS_DB_PASSWORD }", "{ value: x }")
            .replace("{ env: WEB_SSH_PASSWORD }", "{ value: x }");
        let c = Config::parse(&text, path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.targets[0].egress, EgressMode::Deny);
        assert!(!c.resources.is_empty());
        // Its ssh resource: reads run, everything else is held, destruction is denied.
        use crate::inspect::{
            guardrails::shell::analyze_shell,
            policy::{Subject, decide_shell},
        };
        let web = Subject {
            target: "agents",
            resource: "web",
        };
        let decide = |cmd: &str| decide_shell(&c, &web, &analyze_shell(cmd));
        assert_eq!(
            decide("journalctl -u nginx --since today | tail").action,
            Action::Allow
        );
        assert_eq!(decide("systemctl restart nginx").action, Action::Hold);
        assert_eq!(decide("./fix.sh").action, Action::Hold);
        assert_eq!(decide("rm -rf /").action, Action::Deny);
    }

    /// Every key of the example policy is described by the JSON Schema shipped for editors, and
    /// every enum the schema lists for guardrails and statement kinds is one the parser accepts.
    #[test]
    fn the_json_schema_describes_the_example_policy() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/");
        let schema: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{root}policy.schema.json")).unwrap(),
        )
        .unwrap();
        let example: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(format!("{root}policy.yaml")).unwrap())
                .unwrap();
        fn resolve<'a>(
            schema: &'a serde_json::Value,
            node: &'a serde_json::Value,
        ) -> &'a serde_json::Value {
            match node.get("$ref").and_then(|r| r.as_str()) {
                Some(r) => &schema["$defs"][r.trim_start_matches("#/$defs/")],
                None => node,
            }
        }
        fn walk(
            schema: &serde_json::Value,
            node: &serde_json::Value,
            value: &serde_json::Value,
            path: &str,
        ) {
            let node = resolve(schema, node);
            match value {
                serde_json::Value::Object(map) => {
                    assert_eq!(
                        node["additionalProperties"], false,
                        "{path}: schema must be closed like the parser"
                    );
                    for (k, v) in map {
                        let sub = &node["properties"][k];
                        assert!(!sub.is_null(), "{path}.{k} is not in the schema");
                        walk(schema, sub, v, &format!("{path}.{k}"));
                    }
                }
                serde_json::Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        walk(schema, &node["items"], v, &format!("{path}[{i}]"));
                    }
                }
                _ => {}
            }
        }
        walk(&schema, &schema, &example, "");
        let enum_of = |p: &str| -> Vec<String> {
            schema["properties"]["rules"]["items"]["properties"][p]["items"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            enum_of("guardrails"),
            crate::inspect::guardrails::all_rule_ids().collect::<Vec<_>>()
        );
        assert_eq!(
            enum_of("statements"),
            crate::inspect::guardrails::STATEMENT_KINDS
        );
        assert_eq!(
            enum_of("shell"),
            crate::inspect::guardrails::shell::SHELL_KINDS
        );
    }

    #[test]
    fn audit_settings_default_to_the_data_dir_and_are_checked() {
        let base = "targets:\n  - name: a\n    egress: allow\ndata_dir: /srv/sluice\n";
        let ok = parse(base).unwrap();
        let a = &ok.audit;
        assert!(a.enabled);
        assert!(
            matches!(&a.store, StoreSettings::Sqlite(p) if p == Path::new("/srv/sluice/audit.db"))
        );
        assert_eq!(a.key, Path::new("/srv/sluice/audit.key"));
        assert!(!a.node.is_empty());
        let pg = parse(&format!(
            "{base}audit:\n  node: gw-1\n  postgres: {{ connection: \"host=db user=s dbname=audit\", password: {{ value: pw }} }}\n  capture: {{ rows: 5, terminal_bytes: 1024 }}\n  syslog: {{ target: \"udp://127.0.0.1:514\" }}\n"
        ))
        .unwrap();
        assert!(matches!(pg.audit.store, StoreSettings::Postgres { .. }));
        assert_eq!((pg.audit.node.as_str(), pg.audit.capture.rows), ("gw-1", 5));
        assert_eq!(
            (pg.audit.capture.bytes, pg.audit.capture.terminal_bytes),
            (262_144, 1024)
        );
        assert!(pg.audit.syslog.is_some());

        let messages = |text: &str| -> Vec<String> {
            parse(&format!("{base}{text}"))
                .unwrap_err()
                .diagnostics
                .into_iter()
                .map(|d| d.message)
                .collect()
        };
        let m = messages(
            "audit:\n  store: /x.db\n  postgres: { connection: \"host=db\" }\n  node: \"two words\"\n  checkpoint: { every: 0, interval: 1ms }\n  capture: { bytes: 999999999, terminal_bytes: 9999999999 }\n",
        );
        for expected in [
            "are exclusive",
            "printable characters",
            "at least 1",
            "at least 100ms",
            "`capture.bytes` is at most",
            "`capture.terminal_bytes` is at most",
        ] {
            assert!(m.iter().any(|x| x.contains(expected)), "{expected}: {m:?}");
        }
        let m = messages("audit:\n  syslog: { target: \"ftp://x:1\" }\n");
        assert!(
            m.iter().any(|x| x.contains("invalid syslog target")),
            "{m:?}"
        );
    }

    #[test]
    fn approval_settings_are_checked() {
        let base = "targets:\n  - name: a\n    egress: allow\n\
                    resources:\n  - name: db\n    protocol: postgres\n    match: [ { address: 10.0.0.1, port: 5432 } ]\n";
        let messages = |text: &str| -> Vec<String> {
            parse(&format!("{base}{text}"))
                .unwrap_err()
                .diagnostics
                .into_iter()
                .map(|d| d.message)
                .collect()
        };
        // A hold nobody may approve, and approvals nobody can sign in to.
        let m = messages(
            "rules:\n  - { name: w, statements: [update], action: hold }\napprovals: {}\n",
        );
        assert!(m.iter().any(|x| x.contains("nobody may approve")), "{m:?}");
        assert!(
            m.iter().any(|x| x.contains("no reviewer can sign in")),
            "{m:?}"
        );
        // `approval` on a rule that does not hold; an escalation after the timeout; bad hours.
        let m = messages(
            "rules:\n  - { name: r, statements: [select], action: allow, approval: { groups: [dba] } }\n\
             \x20 - { name: w, statements: [update], action: hold, approval: { groups: [dba], timeout: 1m, escalation: [ { after: 2m, groups: [sre] } ], hours: { days: [moon], from: \"18:00\", to: \"09:00\" } } }\n\
             approvals: {}\nidentity: { static_tokens: [ { subject: me, token: { value: short } } ] }\n",
        );
        for expected in [
            "only applies to rules with `action: hold`",
            "before the timeout",
            "`moon` is not a day",
            "later than `from`",
            "at least 16 characters",
        ] {
            assert!(m.iter().any(|x| x.contains(expected)), "{expected}: {m:?}");
        }
        let ok = parse(&format!(
            "{base}rules:\n  - {{ name: w, statements: [update], action: hold, approval: {{ groups: [dba], required: 2, timeout: 10m, escalation: [ {{ after: 5m, groups: [sre] }} ] }} }}\n\
             approvals: {{ listen: 127.0.0.1:0 }}\nidentity: {{ oidc: {{ issuer: https://idp.example.com, audience: sluice }} }}\n"
        ))
        .unwrap();
        let policy = ok.rules[0].approval.as_ref().unwrap();
        assert_eq!(policy.required, 2);
        assert_eq!(policy.escalation[0].groups, ["sre"]);
        assert_eq!(ok.identity.oidc.as_ref().unwrap().groups_claim, "groups");
    }

    #[test]
    fn reports_every_error_with_its_position() {
        let err = parse(
            "listen: 0.0.0.0:1\n\
             targets:\n  - name: root\n    cgroup: /\n    egress: deny\n  - name: root\n    egress: deny\n\
             resources:\n  - name: db\n    protocol: tcp\n    match:\n      - { address: not-an-ip, port: 5432 }\n      - { address: 10.0.0.1, port: 0 }\n",
        )
        .unwrap_err();
        let lines: Vec<(u64, &str)> = err
            .diagnostics
            .iter()
            .map(|d| (d.line, d.message.as_str()))
            .collect();
        assert_eq!(lines.len(), 5, "{err}");
        assert_eq!(lines[0].0, 1);
        assert!(lines[0].1.contains("loopback"));
        assert_eq!(lines[1].0, 4);
        assert!(lines[1].1.contains("root cgroup"));
        assert_eq!(lines[2].0, 6);
        assert!(lines[2].1.contains("defined twice"));
        assert_eq!(lines[3].0, 12);
        assert!(lines[3].1.contains("not-an-ip"));
        assert_eq!(lines[4].0, 13);
        let shown = err.to_string();
        assert!(shown.starts_with("policy.yaml:1:9: error:"), "{shown}");
        assert!(shown.contains("hint:"));
    }

    #[test]
    fn unknown_fields_are_refused_with_a_position() {
        let err = parse("targets:\n  - name: a\n    egres: deny\n").unwrap_err();
        assert_eq!(err.diagnostics.len(), 1);
        assert_eq!(err.diagnostics[0].line, 3, "{err}");
        assert!(err.diagnostics[0].message.contains("egres"), "{err}");
    }

    #[test]
    fn secrets_come_from_env_or_file_and_never_show_in_debug() {
        use std::os::unix::fs::PermissionsExt;
        let file = std::env::temp_dir().join(format!("sluice-secret-{}", std::process::id()));
        std::fs::write(&file, "from-file\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = parse(&format!(
            "resources:\n  - name: db\n    protocol: postgres\n    match: [{{ address: 10.0.0.5, port: 5432 }}]\n    credentials: {{ mode: inject, user: app, password: {{ file: {} }} }}\n",
            file.display()
        ))
        .unwrap();
        let Credentials::Inject {
            password: Some(p), ..
        } = &c.resources[0].credentials
        else {
            panic!()
        };
        assert_eq!(p.expose(), "from-file", "trailing newline dropped");
        assert!(
            !format!("{c:?}").contains("from-file"),
            "Debug must not show secrets"
        );
        let err = parse(
            "resources:\n  - name: db\n    protocol: postgres\n    match: [{ address: 10.0.0.5, port: 5432 }]\n    credentials: { mode: inject, password: { env: SLUICE_TEST_UNSET_VARIABLE } }\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("SLUICE_TEST_UNSET_VARIABLE` is not set"),
            "{err}"
        );
        let _ = std::fs::remove_file(file);
    }

    /// A secret file written with the usual umask (0644) is refused with its position, as
    /// every other `file:` secret of the policy (credentials, tokens, webhook secrets).
    #[test]
    fn secret_files_readable_by_others_are_refused_with_their_position() {
        use std::os::unix::fs::PermissionsExt;
        let file = std::env::temp_dir().join(format!("sluice-open-secret-{}", std::process::id()));
        std::fs::write(&file, "a-reviewer-token-of-24-chars\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = parse(&format!(
            "resources:\n  - name: db\n    protocol: postgres\n    match: [{{ address: 10.0.0.5, port: 5432 }}]\n    credentials: {{ mode: inject, user: app, password: {{ file: {f} }} }}\n\
             approvals: {{}}\nidentity:\n  static_tokens:\n    - {{ subject: dana, groups: [dba], token: {{ file: {f} }} }}\n    - {{ subject: eve, groups: [dba], token: {{ value: another-token-of-24-chars }} }}\n\
             audit:\n  postgres: {{ connection: \"host=db\", password: {{ file: {f} }} }}\n",
            f = file.display()
        ))
        .unwrap_err();
        let expected = format!(
            "permissions 0644 for '{f}' are too open; it must be readable by its owner only: chmod 600 {f}",
            f = file.display()
        );
        let lines: Vec<u64> = err.diagnostics.iter().map(|d| d.line).collect();
        assert_eq!(lines, [5, 9, 12], "{err}");
        assert!(
            err.diagnostics.iter().all(|d| d.message == expected),
            "{err}"
        );
        assert!(err.to_string().starts_with("policy.yaml:5:"), "{err}");
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn syntax_errors_name_their_position_once() {
        let err = parse("targets:\n  - name: a\n    egress: [deny\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("policy.yaml:"), "{text}");
        assert!(!text.contains("error: error"), "{text}");
        assert!(!text.contains(" line "), "{text}");
    }

    #[test]
    fn empty_sections_are_empty_lists() {
        let c = parse("targets:\nresources:\n").unwrap();
        assert!(c.targets.is_empty() && c.resources.is_empty());
    }

    #[test]
    fn nested_targets_and_duplicate_matches_are_refused() {
        let err = parse(
            "targets:\n  - { name: a, cgroup: k/p1, egress: deny }\n  - { name: b, cgroup: k/p1/c, egress: deny }\n\
             resources:\n  - { name: x, protocol: tcp, match: [{ address: 10.0.0.1, port: 1 }] }\n  - { name: y, protocol: tcp, match: [{ address: 10.0.0.1/32, port: 1 }] }\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("inside target cgroup `k/p1`"), "{text}");
        assert!(text.contains("already matched by resource `x`"), "{text}");
    }
}
