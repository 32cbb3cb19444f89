//! The `audit.syslog` settings: where messages go and with which facility.

use std::{fmt, path::PathBuf, str::FromStr};

use serde::Deserialize;

/// The `audit.syslog` settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSettings {
    /// `udp://HOST:PORT`, `tcp://HOST:PORT` or `unix:///PATH`.
    pub target: SyslogTarget,
    #[serde(default)]
    pub facility: Facility,
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// Defaults to the machine's hostname.
    #[serde(default)]
    pub hostname: Option<String>,
}

fn default_app_name() -> String {
    "sluice".into()
}

impl SyslogSettings {
    pub fn new(target: SyslogTarget) -> SyslogSettings {
        SyslogSettings {
            target,
            facility: Facility::default(),
            app_name: default_app_name(),
            hostname: None,
        }
    }
}

/// Where messages go.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SyslogTarget {
    /// Host is a name or an IP address (IPv6 without brackets); resolved at every (re)connect.
    Udp {
        host: String,
        port: u16,
    },
    Tcp {
        host: String,
        port: u16,
    },
    /// A Unix datagram socket, such as `/dev/log`.
    Unix(PathBuf),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid syslog target `{target}`: {reason} (expected udp://HOST:PORT, tcp://HOST:PORT or \
     unix:///PATH)"
)]
pub struct TargetError {
    pub target: String,
    pub reason: String,
}

impl FromStr for SyslogTarget {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<SyslogTarget, TargetError> {
        let err = |reason: String| TargetError {
            target: s.to_string(),
            reason,
        };
        let (scheme, rest) = s.split_once("://").ok_or_else(|| err("no scheme".into()))?;
        match scheme {
            "udp" | "tcp" => {
                let (host, port) = host_port(rest).map_err(err)?;
                Ok(if scheme == "udp" {
                    SyslogTarget::Udp { host, port }
                } else {
                    SyslogTarget::Tcp { host, port }
                })
            }
            "unix" => {
                if !rest.starts_with('/') {
                    return Err(err(format!(
                        "the socket path must be absolute (unix:///{rest})"
                    )));
                }
                Ok(SyslogTarget::Unix(rest.into()))
            }
            other => Err(err(format!("unknown scheme `{other}`"))),
        }
    }
}

/// `host:port` or `[v6]:port`.
fn host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(bracketed) = s.strip_prefix('[') {
        let (host, rest) = bracketed
            .split_once(']')
            .ok_or("unclosed `[` in the host")?;
        let port = rest.strip_prefix(':').ok_or("missing :PORT")?;
        (host, port)
    } else {
        let (host, port) = s.rsplit_once(':').ok_or("missing :PORT")?;
        if host.contains(':') {
            return Err("an IPv6 address goes in brackets: [::1]:514".into());
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    if host.contains(|c: char| c == '/' || c.is_whitespace()) {
        return Err(format!("invalid host `{host}`"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("invalid port `{port}` (1 to 65535)")),
        Ok(port) => Ok((host.to_string(), port)),
    }
}

impl TryFrom<String> for SyslogTarget {
    type Error = TargetError;

    fn try_from(s: String) -> Result<SyslogTarget, TargetError> {
        s.parse()
    }
}

impl fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let net = |f: &mut fmt::Formatter<'_>, scheme: &str, host: &str, port: u16| {
            if host.contains(':') {
                write!(f, "{scheme}://[{host}]:{port}")
            } else {
                write!(f, "{scheme}://{host}:{port}")
            }
        };
        match self {
            SyslogTarget::Udp { host, port } => net(f, "udp", host, *port),
            SyslogTarget::Tcp { host, port } => net(f, "tcp", host, *port),
            SyslogTarget::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// Facility codes of RFC 5424, section 6.2.1, by their usual names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Kern = 0,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Ntp,
    /// "log audit"
    Audit,
    /// "log alert"
    Alert,
    Clock,
    #[default]
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}
