//! One agent session channel: the request that starts it (exec, shell, subsystem) is decided,
//! held or refused; then input and output are relayed between the agent and the upstream
//! channel, input lines decided at Enter, output masked as a stream and recorded.

mod enforce;
mod forward;
mod relay;

use enforce::{Parked, enforce_command};
pub(crate) use forward::{forward, relay_forward};
use relay::Relay;

use std::{collections::VecDeque, sync::Arc, time::Duration};

use bytes::Bytes;
use russh::{
    Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig,
    server::{self, Msg},
};
use tokio::time::Instant;
use tracing::{info, warn};

use super::{
    Conn, REFUSED_EXIT_STATUS, env_allowed, inspect, settings::Forwarding, upstream::Upstream,
};
use crate::{
    config::Action,
    gate::{Command, HoldSpec, RefusedBy},
    inspect::{Verdict, masking::StreamMasker, policy::Decision},
    services::audit::{
        record::PtyInfo,
        stream::{OutputCode, StreamRecorder},
    },
};

/// Input buffered while a command is held (stdin of an exec waiting for approval); beyond it
/// the agent is not read, and SSH flow control pushes back.
const MAX_HELD_INPUT: usize = 1 << 20;
/// Longest shell line (or multi-line command) sluice decides on.
const MAX_LINE: usize = 64 * 1024;
/// Output held by the masker is released after this much silence: in a terminal, so echo and
/// prompts appear; for exec output, so a slow stream (`tail -f`) still flows.
const IDLE_FLUSH_PTY: Duration = Duration::from_millis(2);
const IDLE_FLUSH_EXEC: Duration = Duration::from_millis(50);
/// Terminal output up to this size, with nothing queued behind it, is released at once.
const SMALL_CHUNK: usize = 256;

struct Pty {
    term: String,
    cols: u32,
    rows: u32,
    pix: (u32, u32),
    modes: Vec<(russh::Pty, u32)>,
}

/// How the channel's input is treated once it runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Input {
    /// Bytes for the command (stdin of an exec): relayed as they are.
    Raw,
    /// A file transfer (sftp, scp, rsync): a binary protocol both ways, relayed as it is. Its
    /// output is not masked (that would corrupt the protocol) and its content not recorded,
    /// which is why `ssh.file_transfer` defaults to deny.
    Transfer,
    /// Shell input: each line decided before the remote shell may run it.
    Lines(inspect::Mode),
}

pub(super) async fn run(agent: Channel<Msg>, number: u32, conn: Arc<Conn>, handle: server::Handle) {
    let id = agent.id();
    let (mut rx, tx) = agent.split();
    let mut pty: Option<Pty> = None;
    let mut env: Vec<(String, String)> = Vec::new();
    // Requests before the one that starts the channel.
    let start = loop {
        match rx.wait().await {
            Some(ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
                ..
            }) => {
                pty = Some(Pty {
                    term,
                    cols: col_width,
                    rows: row_height,
                    pix: (pix_width, pix_height),
                    modes: terminal_modes,
                })
            }
            Some(ChannelMsg::WindowChange {
                col_width,
                row_height,
                ..
            }) => {
                if let Some(p) = &mut pty {
                    p.cols = col_width;
                    p.rows = row_height;
                }
            }
            Some(ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            }) if env_allowed(&variable_name) && env.len() < 32 => {
                env.push((variable_name, variable_value))
            }
            Some(ChannelMsg::Exec { command, .. }) => break Start::Exec(command),
            Some(ChannelMsg::RequestShell { .. }) => break Start::Shell,
            Some(ChannelMsg::RequestSubsystem { name, .. }) => break Start::Subsystem(name),
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return,
            Some(_) => {}
        }
    };
    let mut ch = Agent {
        conn: conn.clone(),
        tx,
        handle,
        id,
        pty: pty.is_some(),
    };
    let mut parked = Parked::default();
    let prepared = ch.prepare(&mut rx, &mut parked, start, pty.as_ref()).await;
    let Some((request, input, n, session)) = prepared else {
        return;
    };
    let recorder = StreamRecorder::start(
        conn.gate.audit.clone(),
        number,
        n,
        pty.as_ref().map(|p| PtyInfo {
            term: p.term.clone(),
            cols: p.cols,
            rows: p.rows,
        }),
        match (input, pty.is_some()) {
            (Input::Transfer, _) => 0,
            (_, true) => conn.gate.audit.capture().terminal_bytes,
            (_, false) => conn.gate.audit.capture().bytes,
        },
    );
    let up = match open_upstream(&conn, pty.as_ref(), &env, &request).await {
        Ok(c) => c,
        Err(e) => {
            ch.refuse(&format!("cannot run the command upstream: {e}"), 255)
                .await;
            recorder.finish(Some(255), None);
            return;
        }
    };
    // With a UTF-8 locale passed on, the remote editor reads non-ASCII as text, not Meta keys.
    let utf8 = env
        .iter()
        .any(|(_, v)| v.to_ascii_lowercase().replace('-', "").contains("utf8"));
    let relay = Relay::new(ch, up, rx, recorder, input, utf8, session);
    relay.run(parked).await;
}

enum Start {
    Exec(Vec<u8>),
    Shell,
    Subsystem(String),
}

/// What to start upstream once allowed.
enum Request {
    Exec(Vec<u8>),
    Shell,
    Subsystem(String),
}

/// The agent's side of the channel.
struct Agent {
    conn: Arc<Conn>,
    tx: ChannelWriteHalf<Msg>,
    handle: server::Handle,
    id: russh::ChannelId,
    pty: bool,
}

impl Agent {
    /// A `sluice:` line for the agent: on stderr, or in a terminal (whose output is raw: CRLF)
    /// in the output stream itself. A terminal has one output, as sshd merges a pty's stderr
    /// too, and the ssh client writes the two streams in whatever order it reads them: as
    /// stderr, a refusal's notice could land after the remote's fresh prompt.
    async fn notice(&self, text: &str) {
        let _ = if self.pty {
            let line = format!("\r\nsluice: {text}\r\n");
            self.tx.data_bytes(Bytes::from(line)).await
        } else {
            let line = format!("sluice: {text}\n");
            self.tx.extended_data_bytes(1, Bytes::from(line)).await
        };
    }

    /// Ends the channel with a message and an exit status.
    async fn refuse(&self, text: &str, status: u32) {
        self.notice(text).await;
        let _ = self.tx.exit_status(status).await;
        let _ = self.tx.eof().await;
        let _ = self.tx.close().await;
    }

    /// Decides on the starting request; `None` when it was refused (and answered).
    async fn prepare(
        &mut self,
        rx: &mut ChannelReadHalf,
        parked: &mut Parked,
        start: Start,
        pty: Option<&Pty>,
    ) -> Option<(Request, Input, Option<u64>, inspect::LineSession)> {
        let conn = self.conn.clone();
        let settings = conn.ctx.resource.ssh().cloned()?;
        // A shell reading a terminal has a line editor: its keys are followed as in a shell
        // session; without one, the bytes are the lines.
        let line_mode = if pty.is_some() {
            inspect::Mode::Pty
        } else {
            inspect::Mode::Lines
        };
        match start {
            Start::Exec(bytes) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let mut session = inspect::LineSession::shell(pty.is_some());
                let (decision, input) = if String::from_utf8(bytes.clone()).is_err() {
                    (
                        inspect::unparseable(&conn, "the command is not valid UTF-8"),
                        Input::Raw,
                    )
                } else {
                    let d = inspect::decide_exec(&conn, &settings, &text, pty.is_some());
                    let input = if d.transfer {
                        Input::Transfer
                    } else if let Some(s) = d.reads_shell_from_stdin {
                        session = s;
                        Input::Lines(line_mode)
                    } else {
                        Input::Raw
                    };
                    (d.decision, input)
                };
                let n = self
                    .enforce(
                        rx,
                        parked,
                        "ssh-exec",
                        Command::Shell { line: &text },
                        &bytes,
                        &decision,
                    )
                    .await?;
                Some((Request::Exec(bytes), input, Some(n), session))
            }
            Start::Shell => {
                let decision = inspect::decide_shell_request(&settings);
                let text = "<interactive shell>";
                let n = self
                    .enforce(
                        rx,
                        parked,
                        "ssh-shell",
                        Command::Session {
                            kind: "shell",
                            text,
                        },
                        text.as_bytes(),
                        &decision,
                    )
                    .await?;
                let session = inspect::LineSession::shell(pty.is_some());
                Some((Request::Shell, Input::Lines(line_mode), Some(n), session))
            }
            Start::Subsystem(name) => {
                let decision = inspect::decide_subsystem(&settings, &name);
                let text = format!("<subsystem {name}>");
                let n = self
                    .enforce(
                        rx,
                        parked,
                        "ssh-subsystem",
                        Command::Session {
                            kind: "subsystem",
                            text: &text,
                        },
                        text.as_bytes(),
                        &decision,
                    )
                    .await?;
                Some((
                    Request::Subsystem(name),
                    Input::Transfer,
                    Some(n),
                    inspect::LineSession::shell(false),
                ))
            }
        }
    }

    /// Enforces a decision on a starting request; `None` when refused (and answered).
    async fn enforce(
        &self,
        rx: &mut ChannelReadHalf,
        parked: &mut Parked,
        protocol: &str,
        command: Command<'_>,
        payload: &[u8],
        decision: &Decision,
    ) -> Option<u64> {
        match enforce_command(
            self, rx, parked, protocol, "command", command, payload, decision,
        )
        .await
        {
            Ok(n) => Some(n),
            Err(refused) => {
                self.refuse(&refused, REFUSED_EXIT_STATUS).await;
                None
            }
        }
    }
}

/// Opens the upstream channel and starts the request on it.
async fn open_upstream(
    conn: &Conn,
    pty: Option<&Pty>,
    env: &[(String, String)],
    request: &Request,
) -> Result<Channel<russh::client::Msg>, String> {
    let upstream: Arc<Upstream> = conn.upstream().await?;
    let mut ch = upstream
        .channel_open_session()
        .await
        .map_err(|e| format!("opening a channel upstream: {e}"))?;
    if let Some(p) = pty {
        ch.request_pty(false, &p.term, p.cols, p.rows, p.pix.0, p.pix.1, &p.modes)
            .await
            .map_err(|e| e.to_string())?;
    }
    for (k, v) in env {
        ch.set_env(false, k.as_str(), v.as_str())
            .await
            .map_err(|e| e.to_string())?;
    }
    match request {
        Request::Exec(cmd) => ch.exec(true, cmd.clone()).await,
        Request::Shell => ch.request_shell(true).await,
        Request::Subsystem(name) => ch.request_subsystem(true, name.as_str()).await,
    }
    .map_err(|e| e.to_string())?;
    // The upstream's answer to the starting request comes before any data of it.
    loop {
        match ch.wait().await {
            Some(ChannelMsg::Success) => return Ok(ch),
            Some(ChannelMsg::Failure) => return Err("the upstream host refused the request".into()),
            Some(ChannelMsg::Close) | None => return Err("the upstream closed the channel".into()),
            Some(_) => {}
        }
    }
}
