//! How `sluice approvals` reaches the approval API, and how it makes sure the gateway is what
//! answers before a reviewer's token leaves.
//!
//! - The gateway's unix socket (the default): the server's pid and uid come from the kernel
//!   (`SO_PEERCRED`) and must be root or the caller, and the gateway that holds the socket's
//!   lease; the process must not run inside an intercepted cgroup.
//! - A loopback URL: the same checks, the server traced through `/proc/net/tcp`.
//! - Any other URL (a remote gateway): HTTPS with the system's trust store; plain `http://`
//!   gets a warning, since the token then crosses the network in clear.
//!
//! Each call opens a connection of its own and checks it: what was checked is exactly what
//! the token is sent on.

use std::{
    net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Uri, header};
use sluice::{
    config::{Config, DEFAULT_STATE_DIR, TargetCgroup},
    ebpf::cgroup,
    peer,
    services::approvals::{
        settings::DEFAULT_SOCKET_NAME,
        socket::{SocketLease, live_lease},
    },
};

const TIMEOUT: Duration = Duration::from_secs(30);
/// Answers are JSON lists of requests; anything larger is not the API.
const MAX_ANSWER: usize = 64 << 20;

/// Where the API is.
#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint {
    Socket(PathBuf),
    Url(String),
}

/// What is known about the gateway the caller means (from `-c policy.yaml`).
#[derive(Default)]
pub struct Expected {
    /// The policy's approval socket, whose lease names the gateway's pid.
    pub socket: Option<PathBuf>,
    /// The policy's target cgroups (an agent runs there).
    pub intercepted: Vec<PathBuf>,
}

/// The endpoint: `--socket`, `--url`, `$SLUICE_SOCKET`, `$SLUICE_URL`, the policy's socket
/// (`-c`), else the default socket. There is no fallback to a TCP port: a port can be held by
/// anyone once the gateway is gone.
pub fn resolve(
    socket: Option<&Path>,
    url: Option<&str>,
    config: Option<&Path>,
) -> anyhow::Result<(Endpoint, Expected)> {
    let mut expected = Expected::default();
    let mut from_policy = None;
    if let Some(path) = config {
        let config = Config::load(path)?;
        let approvals = config
            .approvals
            .as_ref()
            .context("the policy has no `approvals:` section")?;
        let socket = approvals.socket_path(&config.state_dir);
        if let Ok(mount) = cgroup::cgroup2_mount() {
            expected.intercepted = config
                .targets
                .iter()
                .map(|t| match &t.cgroup {
                    TargetCgroup::Managed => cgroup::managed_dir(&mount, &t.name),
                    TargetCgroup::Path(p) => mount.join(p),
                })
                .collect();
        }
        expected.socket = Some(socket.clone());
        from_policy = Some(socket);
    }
    let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let endpoint = match (socket, url) {
        (Some(s), _) => Endpoint::Socket(s.into()),
        (None, Some(u)) => Endpoint::Url(u.into()),
        (None, None) => match (env("SLUICE_SOCKET"), env("SLUICE_URL"), from_policy) {
            (Some(s), _, _) => Endpoint::Socket(s.into()),
            (None, Some(u), _) => Endpoint::Url(u),
            (None, None, Some(s)) => Endpoint::Socket(s),
            (None, None, None) => {
                Endpoint::Socket(Path::new(DEFAULT_STATE_DIR).join(DEFAULT_SOCKET_NAME))
            }
        },
    };
    Ok((endpoint, expected))
}

/// An HTTP exchange's status and body.
pub struct Answer {
    pub status: u16,
    pub reason: &'static str,
    pub body: String,
}

pub struct Transport {
    endpoint: Endpoint,
    expected: Expected,
    /// For remote URLs only.
    agent: Option<ureq::Agent>,
}

enum Local {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Transport {
    pub fn new(endpoint: Endpoint, expected: Expected) -> anyhow::Result<Transport> {
        let mut agent = None;
        if let Endpoint::Url(url) = &endpoint {
            let uri: Uri = url
                .parse()
                .with_context(|| format!("`{url}` is not a URL"))?;
            match uri.scheme_str() {
                Some("http") if !is_loopback_host(&uri) => eprintln!(
                    "sluice: warning: {url} is plain http to another host: the reviewer token \
                     crosses the network in clear; use https"
                ),
                Some("http") => {}
                Some("https") => {}
                _ => bail!("`{url}` must be an http:// or https:// URL"),
            }
            if !(uri.scheme_str() == Some("http") && is_loopback_host(&uri)) {
                agent = Some(
                    ureq::Agent::config_builder()
                        .timeout_global(Some(TIMEOUT))
                        // API errors carry a JSON reason worth showing.
                        .http_status_as_error(false)
                        .build()
                        .into(),
                );
            }
        }
        Ok(Transport {
            endpoint,
            expected,
            agent,
        })
    }

    /// What this talks to, for messages.
    pub fn describe(&self, path: &str) -> String {
        match &self.endpoint {
            Endpoint::Socket(s) => format!("{path} on {}", s.display()),
            Endpoint::Url(u) => format!("{}{path}", u.trim_end_matches('/')),
        }
    }

    /// One request: connect, check who answers, then send.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Answer> {
        let (local, host) = match &self.endpoint {
            Endpoint::Socket(socket) => (
                Local::Unix(self.open_socket(socket)?),
                "localhost".to_string(),
            ),
            Endpoint::Url(url) => match &self.agent {
                Some(agent) => return remote_call(agent, url, method, path, token, body),
                None => {
                    let uri: Uri = url.parse()?;
                    (
                        Local::Tcp(self.open_loopback(&uri)?),
                        uri.authority().map(|a| a.to_string()).unwrap_or_default(),
                    )
                }
            },
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .header(header::HOST, host)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(bytes::Bytes::from(body.unwrap_or_default())))?;
            let exchange = async {
                match local {
                    Local::Unix(s) => {
                        s.set_nonblocking(true)?;
                        exchange(tokio::net::UnixStream::from_std(s)?, req).await
                    }
                    Local::Tcp(s) => {
                        s.set_nonblocking(true)?;
                        exchange(tokio::net::TcpStream::from_std(s)?, req).await
                    }
                }
            };
            tokio::time::timeout(TIMEOUT, exchange)
                .await
                .context("no answer within 30 s")?
        })
    }

    fn lease(&self, socket: &Path) -> anyhow::Result<Option<SocketLease>> {
        live_lease(socket).with_context(|| format!("checking who serves {}", socket.display()))
    }

    fn intercepted(&self, lease: Option<&SocketLease>) -> Vec<PathBuf> {
        let mut dirs = self.expected.intercepted.clone();
        if let Some(l) = lease {
            dirs.extend(l.targets.iter().cloned());
        }
        // Managed targets live below `<cgroup2>/sluice`: never the gateway's place.
        if let Ok(mount) = cgroup::cgroup2_mount() {
            dirs.push(mount.join("sluice"));
        }
        dirs
    }

    /// Connects to the gateway's socket and checks, before anything is written, that the
    /// process listening is the gateway holding the socket's lease.
    fn open_socket(&self, socket: &Path) -> anyhow::Result<UnixStream> {
        let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "no approval socket at {} (is the gateway running? give its policy with -c, or --socket or --url)",
                socket.display()
            ),
            std::io::ErrorKind::ConnectionRefused => anyhow::anyhow!(
                "nothing listens on {}: the gateway is not running",
                socket.display()
            ),
            _ => anyhow::Error::new(e).context(format!("connecting to {}", socket.display())),
        })?;
        let what = format!("the approval socket {}", socket.display());
        let peer = peer::unix_peer(&stream)?;
        // The uid first: another user's process gets no further, whatever its lease says.
        peer::verify_uid(&peer, &what)?;
        let Some(lease) = self.lease(socket)? else {
            bail!(
                "{what} is served by pid {}, but no running gateway holds its lease ({}): \
                 refusing to send the reviewer token",
                peer.pid.map_or("unknown".into(), |p| p.to_string()),
                sluice::services::approvals::socket::lease_path(socket).display()
            );
        };
        peer::verify(
            &peer,
            Some(lease.pid),
            &self.intercepted(Some(&lease)),
            &what,
        )?;
        Ok(stream)
    }

    /// Connects to a loopback URL and checks the listener the same way (the lease only when
    /// `-c` named the gateway: a URL alone does not say which gateway is meant).
    fn open_loopback(&self, uri: &Uri) -> anyhow::Result<TcpStream> {
        let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
        let port = uri.port_u16().unwrap_or(80);
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {host}"))?
            .filter(|a| a.ip().is_loopback())
            .collect();
        let stream = addrs
            .iter()
            .find_map(|a| TcpStream::connect_timeout(a, Duration::from_secs(5)).ok())
            .with_context(|| {
                format!("nothing listens on {host}:{port} (is the gateway running?)")
            })?;
        let what = format!("{host}:{port}");
        let peer = peer::tcp_peer(&stream)?;
        let lease = match &self.expected.socket {
            Some(s) => self.lease(s)?,
            None => None,
        };
        peer::verify(
            &peer,
            lease.as_ref().map(|l| l.pid),
            &self.intercepted(lease.as_ref()),
            &what,
        )?;
        Ok(stream)
    }
}

fn is_loopback_host(uri: &Uri) -> bool {
    match uri.host().map(|h| h.trim_matches(['[', ']'])) {
        Some("localhost") => true,
        Some(h) => h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

async fn exchange<S>(io: S, req: Request<Full<bytes::Bytes>>) -> anyhow::Result<Answer>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
    let driver = tokio::spawn(conn);
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
        .to_bytes();
    driver.abort();
    Ok(Answer {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or(""),
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn remote_call(
    agent: &ureq::Agent,
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<Answer> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let auth = format!("Bearer {token}");
    let result = match method {
        "GET" => agent.get(&url).header("authorization", &auth).call(),
        "DELETE" => agent.delete(&url).header("authorization", &auth).call(),
        _ => agent
            .post(&url)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .send(body.unwrap_or_default()),
    };
    let mut resp = result?;
    let status = resp.status();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER as u64)
        .read_to_string()?;
    Ok(Answer {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or(""),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_come_before_the_environment_and_the_default_is_the_socket() {
        // Nothing given (and no SLUICE_* set in the test environment): the default socket,
        // never a TCP port.
        if std::env::var_os("SLUICE_SOCKET").is_none() && std::env::var_os("SLUICE_URL").is_none() {
            let (e, _) = resolve(None, None, None).unwrap();
            assert_eq!(e, Endpoint::Socket("/run/sluice/approvals.sock".into()));
        }
        let (e, _) = resolve(Some(Path::new("/x.sock")), Some("http://127.0.0.1:1"), None).unwrap();
        assert_eq!(e, Endpoint::Socket("/x.sock".into()));
        let (e, _) = resolve(None, Some("https://sluice.example.com"), None).unwrap();
        assert_eq!(e, Endpoint::Url("https://sluice.example.com".into()));
    }

    #[test]
    fn loopback_hosts() {
        for (u, local) in [
            ("http://127.0.0.1:7070", true),
            ("http://[::1]:7070", true),
            ("http://localhost:7070", true),
            ("http://10.0.0.5:7070", false),
            ("http://sluice.example.com", false),
        ] {
            assert_eq!(is_loopback_host(&u.parse().unwrap()), local, "{u}");
        }
    }
}
