//! A scripted SSH server on loopback port 0 (in place of sshd) and the agent's russh client
//! over `tokio::io::duplex`. The server accepts one password login, answers every exec with
//! `ran: <command>\n` on stdout and exit status 0, and records each command it ran.

use std::{net::SocketAddr, sync::Arc};

use russh::{
    Channel, ChannelId, ChannelMsg, client,
    keys::{PrivateKey, ssh_key::private::Ed25519Keypair},
    server::{self, Auth, Msg, Session},
};
use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle};

use super::{Kit, within};
use crate::proto::{ProxyError, tcp::Transfer};

/// A scripted SSH server.
pub struct ScriptedSsh {
    pub addr: SocketAddr,
    /// The host key in `authorized_keys` form, for the policy's `ssh.host_keys`.
    pub host_key: String,
    ran: mpsc::UnboundedReceiver<String>,
    task: JoinHandle<()>,
}

impl Drop for ScriptedSsh {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Stub {
    user: String,
    password: String,
    ran: mpsc::UnboundedSender<String>,
    /// Kept open until the client closes them.
    channels: Vec<Channel<Msg>>,
}

impl server::Handler for Stub {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(if user == self.user && password == self.password {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        self.channels.push(channel);
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        let _ = self.ran.send(command.clone());
        session.channel_success(channel)?;
        session.data(channel, format!("ran: {command}\n").into_bytes())?;
        session.exit_status_request(channel, 0)?;
        session.eof(channel)?;
        session.close(channel)
    }
}

impl ScriptedSsh {
    /// Accepts `user` with `password`.
    pub async fn start(user: &str, password: &str) -> ScriptedSsh {
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]));
        let host_key = key.public_key().to_openssh().expect("host key");
        let config = Arc::new(server::Config {
            keys: vec![key],
            ..Default::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (tx, ran) = mpsc::unbounded_channel();
        let (user, password) = (user.to_string(), password.to_string());
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let stub = Stub {
                    user: user.clone(),
                    password: password.clone(),
                    ran: tx.clone(),
                    channels: Vec::new(),
                };
                let config = config.clone();
                tokio::spawn(async move {
                    if let Ok(session) = server::run_stream(config, s, stub).await {
                        let _ = session.await;
                    }
                });
            }
        });
        ScriptedSsh {
            addr,
            host_key,
            ran,
            task,
        }
    }

    /// The commands run so far (nothing waited for).
    pub fn ran(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(c) = self.ran.try_recv() {
            v.push(c);
        }
        v
    }
}

/// Trusts whatever host key the gateway shows (the agent side of the test).
pub struct AnyHostKey;

impl client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// The agent's end of an SSH session served in-process.
pub struct Agent {
    pub client: client::Handle<AnyHostKey>,
    pub session: JoinHandle<Result<Transfer, ProxyError>>,
}

/// What one exec channel gave the agent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Exec {
    pub stdout: String,
    pub stderr: String,
    pub status: Option<u32>,
}

impl Agent {
    /// Starts `proto::ssh::serve` for a connection to `resource` (redirected from `orig_dst`)
    /// and logs in as `user` (method `none`: the workload is the agent's identity).
    pub async fn connect(kit: &Kit, resource: &str, orig_dst: SocketAddr, user: &str) -> Agent {
        let ctx = kit.ctx(resource, orig_dst);
        let services = kit.services.clone();
        let state = kit.ssh.clone();
        let (agent_side, gateway_side) = tokio::io::duplex(64 * 1024);
        let session = tokio::spawn(async move {
            crate::proto::ssh::serve(gateway_side, &ctx, &services, &state).await
        });
        let mut client = within(
            "the SSH handshake",
            client::connect_stream(Arc::new(client::Config::default()), agent_side, AnyHostKey),
        )
        .await
        .expect("SSH handshake");
        let auth = within("authentication", client.authenticate_none(user))
            .await
            .expect("authentication");
        assert!(auth.success(), "{auth:?}");
        Agent { client, session }
    }

    /// Opens a session channel and sends `command` as an exec request.
    pub async fn exec_start(&self, command: &str) -> Channel<client::Msg> {
        let channel = within("a session channel", self.client.channel_open_session())
            .await
            .expect("a session channel");
        channel.exec(true, command).await.expect("exec");
        channel
    }

    /// Reads one exec channel to its close.
    pub async fn exec_output(channel: &mut Channel<client::Msg>) -> Exec {
        let mut out = Exec::default();
        loop {
            match within("the channel", channel.wait()).await {
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    out.stderr.push_str(&String::from_utf8_lossy(&data))
                }
                Some(ChannelMsg::Data { data }) => {
                    out.stdout.push_str(&String::from_utf8_lossy(&data))
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => out.status = Some(exit_status),
                Some(ChannelMsg::Close) | None => return out,
                Some(_) => {}
            }
        }
    }

    /// Runs `command` on a new channel and reads it to its close.
    pub async fn exec(&self, command: &str) -> Exec {
        let mut channel = self.exec_start(command).await;
        Agent::exec_output(&mut channel).await
    }

    /// Disconnects and returns how the session ended.
    pub async fn disconnect(self) -> Result<Transfer, ProxyError> {
        self.client
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await
            .expect("disconnect");
        within("the session to end", self.session)
            .await
            .expect("the session task")
    }
}
