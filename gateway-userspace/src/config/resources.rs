//! `resources:`: what agents reach through sluice, how sluice logs in upstream, TLS on each leg.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    path::Path,
    sync::{Arc, LazyLock},
};

use ipnet::IpNet;
use serde::Deserialize;

use super::{
    Destination,
    diag::Report,
    raw::{CredentialMode, RawCredentials, RawResource, UpstreamTlsMode},
    secret::{Secret, resolve_secret},
    valid_name,
};
use crate::proto::{postgres, ssh};

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
    /// The protocol sluice speaks with it, and the settings only that protocol reads.
    pub protocol: ProtocolSettings,
    pub matches: Vec<Destination>,
    /// Where sluice connects; `None` means the agent's original destination.
    pub upstream: Option<String>,
    /// How sluice logs in upstream (database protocols).
    pub credentials: Credentials,
    pub limits: FrameLimits,
    pub tls: ResourceTls,
    /// What the agent must present when it connects.
    pub agent_auth: AgentAuth,
}

/// A resource's protocol with its own settings, whose type, defaults and validation live in
/// `proto/<p>/settings.rs`. A new protocol adds a variant here and one to [`Protocol`].
#[derive(Clone, Debug)]
pub enum ProtocolSettings {
    Tcp,
    Postgres(postgres::settings::PgSettings),
    Ssh(ssh::settings::SshSettings),
}

impl ProtocolSettings {
    /// The `protocol:` the policy named.
    pub fn kind(&self) -> Protocol {
        match self {
            ProtocolSettings::Tcp => Protocol::Tcp,
            ProtocolSettings::Postgres(_) => Protocol::Postgres,
            ProtocolSettings::Ssh(_) => Protocol::Ssh,
        }
    }
}

impl fmt::Display for ProtocolSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind().fmt(f)
    }
}

impl Resource {
    /// The PostgreSQL settings; the defaults for a resource of another protocol (PostgreSQL
    /// code only serves PostgreSQL resources, so it never reads those).
    pub fn postgres(&self) -> &postgres::settings::PgSettings {
        static DEFAULTS: LazyLock<postgres::settings::PgSettings> = LazyLock::new(Default::default);
        match &self.protocol {
            ProtocolSettings::Postgres(s) => s,
            _ => &DEFAULTS,
        }
    }

    /// The SSH settings; `None` for a resource of another protocol.
    pub fn ssh(&self) -> Option<&ssh::settings::SshSettings> {
        match &self.protocol {
            ProtocolSettings::Ssh(s) => Some(s),
            _ => None,
        }
    }
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

/// The resources, and their names for the rules to refer to.
pub(super) fn validate(
    raw: &[RawResource],
    report: &mut Report,
) -> (Vec<Resource>, HashSet<String>) {
    let mut resources = Vec::new();
    let mut resource_names = HashSet::new();
    let mut seen_matches: BTreeMap<(IpNet, u16), String> = BTreeMap::new();
    for (i, r) in raw.iter().enumerate() {
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
            if let Some(d) = m.validate(report) {
                if let Some(other) = seen_matches.insert((d.net, d.port), r.name.value.clone()) {
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
                    password: c.password.as_ref().and_then(|p| resolve_secret(p, report)),
                    key: c.key.as_ref().and_then(|k| {
                        let secret = resolve_secret(k, report)?;
                        match ssh::settings::parse_private_key(secret.expose()) {
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
        let protocol = protocol_settings(r, report);
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
                report.secrets.note_file(Path::new(&k.value));
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
            protocol,
            matches,
            upstream: r.upstream.as_ref().map(|u| u.value.clone()),
            credentials,
            limits,
            tls,
            agent_auth: r.agent_auth.as_ref().map(|a| a.value).unwrap_or_default(),
        });
    }
    (resources, resource_names)
}

/// The settings of the resource's protocol (checked in `proto/<p>/settings.rs`), and refusals
/// of another protocol's block.
fn protocol_settings(r: &RawResource, report: &mut Report) -> ProtocolSettings {
    let ssh = if r.protocol.value == Protocol::Ssh {
        let inject = |c: &RawCredentials| {
            c.mode.value == CredentialMode::Inject && (c.key.is_some() || c.password.is_some())
        };
        let resource = ssh::settings::ResourceShape {
            name: &r.name,
            injects_credential: r.credentials.as_ref().is_some_and(inject),
            has_tls: r.tls.is_some(),
        };
        Some(ssh::settings::RawSsh::validate(
            r.ssh.as_ref(),
            &resource,
            report,
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
    let postgres = postgres::settings::RawPg::validate(r.postgres.as_ref(), report);
    match r.protocol.value {
        Protocol::Tcp => ProtocolSettings::Tcp,
        Protocol::Postgres => ProtocolSettings::Postgres(postgres),
        Protocol::Ssh => ProtocolSettings::Ssh(ssh.expect("validated for ssh resources")),
    }
}
