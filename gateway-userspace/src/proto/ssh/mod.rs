//! SSH: sluice is the agent's SSH server (with its own host key) and an SSH client to the real
//! host (with the credential it holds; the agent never sees it).
//!
//! One agent connection is one russh server session. Its handler answers the SSH-level
//! requests at once (russh tracks one pending reply per channel, and OpenSSH pipelines
//! `pty-req`, `env` and `exec` without waiting), and hands each session channel to a task
//! ([`channel`]) that decides on the command, holds it, relays it upstream, masks the output
//! and records it. A denied command is still a successful SSH request: the agent gets a
//! `sluice:` line on stderr and exit status [`REFUSED_EXIT_STATUS`].
//!
//! The upstream session (one per agent connection) is opened on the first command that is
//! allowed, so a refused command never touches the host.

mod channel;
pub mod inspect;
pub mod known_hosts;
mod line;
#[cfg(test)]
mod session_tests;
pub mod settings;
mod state;
mod upstream;

pub use state::State;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use russh::{
    Channel, ChannelId, MethodKind, MethodSet,
    server::{self, Auth, Msg, Session},
};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::{
    config::AgentAuth,
    conn::ConnCtx,
    gate::{self, Gate},
    proto::{ProxyError, tcp::Transfer},
    services::Services,
};

/// Exit status of a command sluice refused (like a shell's "cannot execute").
pub const REFUSED_EXIT_STATUS: u32 = 126;
/// Session channels one agent connection may have open at once.
const MAX_CHANNELS: u32 = 16;
/// Environment variables an agent may pass (as OpenSSH's default `AcceptEnv`): others could
/// change what the remote shell runs (`BASH_ENV`, `LD_PRELOAD`).
fn env_allowed(name: &str) -> bool {
    name == "LANG" || name.starts_with("LC_") || name == "COLORTERM"
}

/// The russh server configuration with the gateway's host key (one per gateway).
pub fn server_config(key: russh::keys::PrivateKey) -> Arc<server::Config> {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::None);
    methods.push(MethodKind::Password);
    methods.push(MethodKind::PublicKey);
    Arc::new(server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-sluice".into()),
        methods,
        keys: vec![key],
        auth_rejection_time: Duration::from_millis(500),
        // OpenSSH probes with `none` first; answering that at once is not an oracle.
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        nodelay: true,
        ..Default::default()
    })
}

/// What every channel task of one agent connection shares.
pub(crate) struct Conn {
    pub ctx: ConnCtx,
    pub services: Arc<Services>,
    /// The user the agent asked for (`ssh user@host`).
    pub user: String,
    /// Policy, approvals, audit and identity for this connection.
    pub gate: Gate,
    upstream: OnceCell<Result<Arc<upstream::Upstream>, String>>,
    next_channel: AtomicU32,
    open_channels: AtomicU32,
    pub bytes_to_upstream: AtomicU64,
    pub bytes_to_agent: AtomicU64,
}

impl Conn {
    /// The upstream session, opened on first use; the error is the sentence for the agent.
    pub async fn upstream(&self) -> Result<Arc<upstream::Upstream>, String> {
        self.upstream
            .get_or_init(|| async {
                upstream::connect(&self.ctx, &self.user)
                    .await
                    .map(Arc::new)
                    .inspect_err(|e| warn!(event = "ssh_upstream_failed", conn_id = self.ctx.id, error = %e, "cannot open the upstream SSH session"))
            })
            .await
            .clone()
    }
}

struct AgentHandler {
    ctx: ConnCtx,
    services: Arc<Services>,
    user: String,
    subject: Option<String>,
    conn: Arc<Mutex<Option<Arc<Conn>>>>,
}

impl AgentHandler {
    fn conn(&self) -> Option<Arc<Conn>> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl server::Handler for AgentHandler {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        self.user = user.to_string();
        Ok(match self.ctx.resource.agent_auth {
            // The kernel already said which workload this is; that is the agent's identity.
            AgentAuth::None => Auth::Accept,
            AgentAuth::Oidc => Auth::Reject {
                proceed_with_methods: Some(MethodSet::from(&[MethodKind::Password][..])),
                partial_success: false,
            },
        })
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        _offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.any_key(user))
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        _key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.any_key(user))
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        self.user = user.to_string();
        if self.ctx.resource.agent_auth == AgentAuth::None {
            return Ok(Auth::Accept);
        }
        match gate::verify_agent(&self.ctx, &self.services, Some(password)).await {
            Ok(subject) => {
                self.subject = subject;
                Ok(Auth::Accept)
            }
            Err(_) => Ok(Auth::reject()),
        }
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        self.ctx.handshake.done();
        let gate = Gate::open(
            &self.ctx,
            &self.services,
            "ssh",
            &self.user,
            self.subject.clone(),
        );
        info!(event = "session_started", conn_id = self.ctx.id, protocol = "ssh", user = %self.user,
              audit_session = %gate.audit.id, "agent logged in");
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(Conn {
            ctx: self.ctx.clone(),
            services: self.services.clone(),
            user: self.user.clone(),
            gate,
            upstream: OnceCell::new(),
            next_channel: AtomicU32::new(0),
            open_channels: AtomicU32::new(0),
            bytes_to_upstream: AtomicU64::new(0),
            bytes_to_agent: AtomicU64::new(0),
        }));
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(conn) = self.conn() else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if conn.open_channels.fetch_add(1, Ordering::Relaxed) >= MAX_CHANNELS {
            conn.open_channels.fetch_sub(1, Ordering::Relaxed);
            warn!(
                event = "ssh_channel_refused",
                conn_id = self.ctx.id,
                "too many channels"
            );
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        reply.accept().await;
        let number = conn.next_channel.fetch_add(1, Ordering::Relaxed);
        let handle = session.handle();
        tokio::spawn(async move {
            channel::run(channel, number, conn.clone(), handle).await;
            conn.open_channels.fetch_sub(1, Ordering::Relaxed);
        });
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        originator: &str,
        originator_port: u32,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(conn) = self.conn() else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        match channel::forward(&conn, host, port, originator, originator_port).await {
            Ok(upstream) => {
                reply.accept().await;
                tokio::spawn(channel::relay_forward(channel, upstream, conn));
            }
            Err(failure) => reply.reject(failure).await,
        }
        Ok(())
    }

    // Replies are given here, at once and in order; the channel task does the work.
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if env_allowed(name) {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        // Remote forwarding would let the upstream host reach into the agent's side.
        warn!(
            event = "ssh_forward_refused",
            conn_id = self.ctx.id,
            address,
            port = *port,
            "remote port forwarding refused"
        );
        Ok(false)
    }
}

impl AgentHandler {
    /// Any key will do without `agent_auth`: the workload identity is the agent's identity.
    fn any_key(&mut self, user: &str) -> Auth {
        self.user = user.to_string();
        match self.ctx.resource.agent_auth {
            AgentAuth::None => Auth::Accept,
            AgentAuth::Oidc => Auth::reject(),
        }
    }
}

/// Serves one redirected agent connection to its end. `stream` is the agent's stream (the
/// server's accepted `TcpStream`, with `TCP_NODELAY` set by the caller; a `tokio::io::duplex`
/// end in tests).
pub async fn serve<S>(
    stream: S,
    ctx: &ConnCtx,
    services: &Arc<Services>,
    state: &State,
) -> Result<Transfer, ProxyError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let config = state
        .server_config(&services.policy().data_dir)
        .map_err(|e| ProxyError::Internal(format!("the gateway's SSH host key: {e}")))?;
    let conn = Arc::new(Mutex::new(None));
    let handler = AgentHandler {
        ctx: ctx.clone(),
        services: services.clone(),
        user: String::new(),
        subject: None,
        conn: conn.clone(),
    };
    let result = match server::run_stream(config, stream, handler).await {
        Ok(session) => session.await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let conn = conn.lock().unwrap_or_else(|p| p.into_inner()).take();
    let transfer = conn
        .as_ref()
        .map(|c| Transfer {
            to_upstream: c.bytes_to_upstream.load(Ordering::Relaxed),
            to_client: c.bytes_to_agent.load(Ordering::Relaxed),
        })
        .unwrap_or_default();
    let error = result.as_ref().err().cloned();
    if let Some(c) = &conn {
        // Channel tasks record their exits as the connection winds down; the end comes last.
        for _ in 0..200 {
            if c.open_channels.load(Ordering::Relaxed) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        c.gate
            .close(transfer.to_upstream, transfer.to_client, error.clone());
        if let Some(Ok(up)) = c.upstream.get() {
            let _ = up
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
        }
    }
    match error {
        Some(e) => Err(ProxyError::ClientSession {
            protocol: "SSH",
            message: e,
        }),
        None => Ok(transfer),
    }
}
