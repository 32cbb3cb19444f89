//! Addresses: the gateway's listeners, the destinations resources match, direct egress, and
//! the connection-level limits that go with the listeners.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr, SocketAddr},
};

use ipnet::IpNet;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS,
    diag::Report,
    raw::{RawConfig, RawDestination, RawEgress},
};

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

/// `listen`, `listen_v6` and `max_connections`.
pub(super) struct Listeners {
    pub listen: SocketAddr,
    pub listen_v6: Option<SocketAddr>,
    pub max_connections: usize,
}

pub(super) fn listeners(raw: &RawConfig, report: &mut Report) -> Listeners {
    let listen = match &raw.listen {
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
    let listen_v6 = match &raw.listen_v6 {
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
    if let (Some(v6), Some(s)) = (listen_v6, &raw.listen_v6)
        && v6.port() != listen.port()
    {
        report.error(s, "`listen_v6` must use the same port as `listen`", None);
    }

    let max_connections = match &raw.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(s) if s.value == 0 => {
            report.error(s, "`max_connections` must be at least 1", None);
            DEFAULT_MAX_CONNECTIONS
        }
        Some(s) => s.value,
    };
    Listeners {
        listen,
        listen_v6,
        max_connections,
    }
}

impl RawDestination {
    pub(super) fn validate(&self, report: &mut Report) -> Option<Destination> {
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

pub(super) fn egress(raw: Option<&RawEgress>, report: &mut Report) -> Egress {
    match raw {
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
                        destination: d.validate(report)?,
                        transport: a.protocol,
                    })
                })
                .collect(),
            dns: e.dns,
        },
    }
}

/// How far agents must be contained. `strict` asks for containment of every task of a target
/// whatever started it (BPF LSM programs): this gateway has none to offer, so a policy that
/// requires it is refused rather than run with less than it asked for.
pub(super) fn containment(raw: Option<&Spanned<String>>, report: &mut Report) -> Containment {
    let Some(raw) = raw else {
        return Containment::Standard;
    };
    match raw.value.trim() {
        "standard" => Containment::Standard,
        "strict" => {
            report.error(
                raw,
                "`containment: strict` needs task-level containment (BPF LSM programs judging every task of a target, whatever started it), which this gateway does not have: the kernels it is built and tested on refuse BPF LSM programs at load",
                Some("use `containment: standard` and start agents with `sluice exec` as non-root users (README: Threat model and containment)"),
            );
            Containment::Standard
        }
        other => {
            report.error(
                raw,
                format!("`{other}` is not a containment level"),
                Some("standard or strict"),
            );
            Containment::Standard
        }
    }
}

/// See [`containment`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Containment {
    /// Interception and refusals by cgroup programs; per-task limits only for agents started
    /// by `sluice exec`.
    #[default]
    Standard,
}

pub(super) fn handshake_timeout(
    raw: Option<&Spanned<String>>,
    report: &mut Report,
) -> std::time::Duration {
    match raw {
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
    }
}
