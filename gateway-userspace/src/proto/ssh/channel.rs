//! One agent session channel: the request that starts it (exec, shell, subsystem) is decided,
//! held or refused; then input and output are relayed between the agent and the upstream
//! channel, input lines decided at Enter, output masked as a stream and recorded.

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
        let settings = conn.ctx.resource.ssh.clone()?;
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

/// Reports and records a decided command (a starting request or a shell line), then enforces
/// it: `Ok` with its number once it may run (allowed, or held and approved), `Err` with the
/// sentence for the agent when refused. `what` names it in that sentence.
#[expect(
    clippy::too_many_arguments,
    reason = "one call per kind of command, each spelled out"
)]
async fn enforce_command(
    agent: &Agent,
    rx: &mut ChannelReadHalf,
    parked: &mut Parked,
    protocol: &str,
    what: &str,
    command: Command<'_>,
    payload: &[u8],
    decision: &Decision,
) -> Result<u64, String> {
    let gate = &agent.conn.gate;
    let (verdict, n) = gate.admit(protocol, &command, decision, 0).await;
    match verdict {
        Verdict::Allow => Ok(n),
        Verdict::Deny { rule, reason } => {
            info!(event = "ssh_refused", conn_id = gate.ctx.id, protocol, rule = %rule, "{what} refused");
            Err(format!("{what} blocked by rule \"{rule}\": {reason}"))
        }
        Verdict::Hold { rule, reason } => held(agent, rx, parked, &rule, &reason, command, payload)
            .await
            .map(|()| n),
    }
}

/// Input that arrived while a command was held, applied once it is released.
#[derive(Default)]
struct Parked {
    input: Vec<u8>,
    eof: bool,
    closed: bool,
}

/// Holds a command for approval while watching the agent: closing the channel (or Ctrl-C in
/// a terminal) cancels the request; other input is parked.
async fn held(
    agent: &Agent,
    rx: &mut ChannelReadHalf,
    parked: &mut Parked,
    rule: &str,
    reason: &str,
    command: Command<'_>,
    payload: &[u8],
) -> Result<(), String> {
    let spec = HoldSpec {
        protocol: "ssh",
        command,
        rule,
        reason,
        parameters: Vec::new(),
        payload,
    };
    let waiting = async |id: &str| {
        agent
            .notice(&format!(
                "held for approval (request {id}, rule \"{rule}\"); waiting for a reviewer..."
            ))
            .await;
    };
    let pty = agent.pty;
    let cancelled = async move {
        loop {
            match rx.wait().await {
                None | Some(ChannelMsg::Close) => {
                    parked.closed = true;
                    return;
                }
                Some(ChannelMsg::Eof) => parked.eof = true,
                Some(ChannelMsg::Data { data }) => {
                    if pty && data.contains(&0x03) {
                        return;
                    }
                    parked.input.extend_from_slice(&data);
                    if parked.input.len() > MAX_HELD_INPUT {
                        // Stop reading: SSH flow control makes the agent wait.
                        std::future::pending::<()>().await;
                    }
                }
                Some(_) => {}
            }
        }
    };
    agent
        .conn
        .gate
        .hold(spec, async |_| None, waiting, cancelled)
        .await
        .map_err(|r| match &r.by {
            // The reason goes with the rule: nothing else tells the agent why it was held.
            RefusedBy::NoApprovals => format!(
                "command requires approval (rule \"{}\": {}), and no approval service is enabled on this gateway",
                r.rule, r.reason
            ),
            RefusedBy::Reviewer { .. } => format!(
                "{} (approval request {})",
                r.sentence("command"),
                r.request.as_deref().unwrap_or("?")
            ),
            _ => r.sentence("command"),
        })
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

struct Relay {
    agent: Agent,
    agent_rx: ChannelReadHalf,
    up_rx: ChannelReadHalf,
    up_tx: ChannelWriteHalf<russh::client::Msg>,
    recorder: StreamRecorder,
    stdout: StreamMasker,
    stderr: StreamMasker,
    flush_at: Option<Instant>,
    idle: Duration,
    tracker: Option<inspect::LineTracker>,
    exit_status: Option<u32>,
    exit_signal: Option<String>,
    /// Input that arrived while a shell line was held.
    parked: Parked,
    /// An upstream message taken by [`Relay::upstream_idle`], handled next.
    ready: Option<Option<ChannelMsg>>,
    /// Input is a script piped to a shell (no terminal).
    script: bool,
    /// A file transfer: relayed unmasked (see [`Input::Transfer`]).
    transfer: bool,
    /// A script line was refused: the rest of the agent's input is dropped.
    input_closed: bool,
    /// The shell state the lines run in (kept from each line that runs).
    session: inspect::LineSession,
    /// The line being released changes the line editing: the tracker stops after it.
    lose_after_line: Option<String>,
}

impl Relay {
    fn new(
        agent: Agent,
        up: Channel<russh::client::Msg>,
        agent_rx: ChannelReadHalf,
        recorder: StreamRecorder,
        input: Input,
        utf8: bool,
        session: inspect::LineSession,
    ) -> Relay {
        let masker = agent.conn.services.masker();
        let (up_rx, up_tx) = up.split();
        let idle = if agent.pty {
            IDLE_FLUSH_PTY
        } else {
            IDLE_FLUSH_EXEC
        };
        Relay {
            tracker: match input {
                Input::Raw | Input::Transfer => None,
                Input::Lines(mode) => {
                    Some(inspect::LineTracker::new(mode, MAX_LINE).utf8_input(utf8))
                }
            },
            agent,
            agent_rx,
            up_rx,
            up_tx,
            recorder,
            stdout: StreamMasker::new(masker.clone()),
            stderr: StreamMasker::new(masker),
            flush_at: None,
            idle,
            exit_status: None,
            exit_signal: None,
            parked: Parked::default(),
            ready: None,
            script: input == Input::Lines(inspect::Mode::Lines),
            transfer: input == Input::Transfer,
            input_closed: false,
            session,
            lose_after_line: None,
        }
    }

    async fn run(mut self, parked: Parked) {
        let mut agent_open = !parked.closed;
        if !parked.input.is_empty() && !self.agent_input(&parked.input).await {
            agent_open = false;
        }
        if parked.eof {
            self.agent_eof().await;
        }
        if !agent_open {
            let _ = self.up_tx.close().await;
        }
        loop {
            if let Some(msg) = self.ready.take() {
                if !self.upstream(msg).await {
                    break;
                }
                continue;
            }
            let flush_at = self.flush_at;
            tokio::select! {
                msg = self.agent_rx.wait(), if agent_open => {
                    match msg {
                        Some(ChannelMsg::Data { data }) => {
                            if !self.agent_input(&data).await {
                                break;
                            }
                        }
                        Some(ChannelMsg::Eof) => {
                            self.agent_eof().await;
                        }
                        Some(ChannelMsg::WindowChange { col_width, row_height, pix_width, pix_height }) => {
                            self.recorder.resize(col_width, row_height);
                            let _ = self.up_tx.window_change(col_width, row_height, pix_width, pix_height).await;
                        }
                        Some(ChannelMsg::Signal { signal }) => {
                            let _ = self.up_tx.signal(signal).await;
                        }
                        Some(ChannelMsg::Close) | None => {
                            agent_open = false;
                            let _ = self.up_tx.close().await;
                        }
                        Some(_) => {}
                    }
                }
                msg = self.up_rx.wait() => {
                    if !self.upstream(msg).await {
                        break;
                    }
                }
                _ = tokio::time::sleep_until(flush_at.unwrap_or_else(Instant::now)), if flush_at.is_some() => {
                    self.flush().await;
                }
            }
        }
        self.recorder
            .finish(self.exit_status, self.exit_signal.take());
    }

    /// One message from the upstream channel; `false` when the channel is over.
    async fn upstream(&mut self, msg: Option<ChannelMsg>) -> bool {
        match msg {
            Some(ChannelMsg::Data { data }) => self.output(OutputCode::Stdout, &data).await,
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                self.output(OutputCode::Stderr, &data).await
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                self.flush().await;
                // A script cut short by a refused line did not succeed, whatever
                // the shell says about the part that ran.
                let exit_status = if self.input_closed {
                    REFUSED_EXIT_STATUS
                } else {
                    exit_status
                };
                self.exit_status = Some(exit_status);
                let _ = self.agent.tx.exit_status(exit_status).await;
            }
            Some(ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            }) => {
                self.flush().await;
                self.exit_signal = Some(signal_text(&signal_name));
                let _ = self
                    .agent
                    .handle
                    .exit_signal_request(
                        self.agent.id,
                        signal_name,
                        core_dumped,
                        error_message,
                        lang_tag,
                    )
                    .await;
            }
            Some(ChannelMsg::Eof) => {
                self.flush().await;
                let _ = self.agent.tx.eof().await;
            }
            Some(ChannelMsg::Close) | None => {
                self.flush().await;
                let _ = self.agent.tx.close().await;
                return false;
            }
            Some(_) => {}
        }
        true
    }

    /// Masks, records and relays a piece of output.
    async fn output(&mut self, code: OutputCode, data: &[u8]) {
        if let Some(t) = &mut self.tracker {
            // The tracker learns from the terminal whether bracketed paste is on.
            t.observe_output(data);
        }
        if self.transfer {
            self.send(code, data.to_vec()).await;
            return;
        }
        let masker = match code {
            OutputCode::Stdout => &mut self.stdout,
            _ => &mut self.stderr,
        };
        let mut out = Vec::with_capacity(data.len() + 64);
        if let Err(e) = masker.push(data, &mut out) {
            // Fail closed: output that could not be checked is not shown.
            warn!(event = "mask_failed", conn_id = self.agent.conn.ctx.id, error = %e, "output withheld");
            self.agent
                .notice(&format!("output withheld: masking failed: {e}"))
                .await;
            let _ = self.up_tx.close().await;
            return;
        }
        self.send(code, out).await;
        // In a terminal, a short chunk with nothing more queued behind it is an echo or a
        // prompt: released now, not after the idle timer (whose 1 ms ticks would add ~3 ms to
        // every keystroke). Bursts of output still wait for the idle gap.
        if self.agent.pty && data.len() <= SMALL_CHUNK && self.upstream_idle().await {
            self.flush().await;
        } else {
            self.flush_at = Some(Instant::now() + self.idle);
        }
    }

    /// Nothing more from upstream is ready right now. A message that is ready is kept for the
    /// main loop. Polls once, without a timer (a zero timeout still waits for a 1 ms tick); the
    /// channel's receive is cancel-safe.
    async fn upstream_idle(&mut self) -> bool {
        tokio::select! {
            biased;
            msg = self.up_rx.wait() => {
                self.ready = Some(msg);
                false
            }
            _ = std::future::ready(()) => true,
        }
    }

    async fn send(&mut self, code: OutputCode, out: Vec<u8>) {
        if out.is_empty() {
            return;
        }
        self.recorder.output(code, &out);
        self.agent
            .conn
            .bytes_to_agent
            .fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let bytes = Bytes::from(out);
        let _ = match code {
            OutputCode::Stdout => self.agent.tx.data_bytes(bytes).await,
            _ => self.agent.tx.extended_data_bytes(1, bytes).await,
        };
    }

    /// Releases what the maskers hold back (end of output, or idle).
    async fn flush(&mut self) {
        self.flush_at = None;
        for code in [OutputCode::Stdout, OutputCode::Stderr] {
            let masker = match code {
                OutputCode::Stdout => &mut self.stdout,
                _ => &mut self.stderr,
            };
            let mut out = Vec::new();
            if masker.flush(&mut out).is_ok() {
                self.send(code, out).await;
            }
        }
    }

    async fn send_upstream(&mut self, bytes: Vec<u8>) -> bool {
        if bytes.is_empty() {
            return true;
        }
        self.agent
            .conn
            .bytes_to_upstream
            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.up_tx.data_bytes(Bytes::from(bytes)).await.is_ok()
    }

    /// Agent input; `false` ends the channel.
    async fn agent_input(&mut self, data: &[u8]) -> bool {
        if self.input_closed {
            return true;
        }
        let Some(tracker) = &mut self.tracker else {
            return self.send_upstream(data.to_vec()).await;
        };
        let mut actions = tracker.feed(data);
        loop {
            if !self.act(actions).await {
                return false;
            }
            // What the agent typed while a line was held comes next, in order.
            let parked = std::mem::take(&mut self.parked);
            if parked.closed {
                return false;
            }
            if parked.input.is_empty() {
                if parked.eof {
                    self.agent_eof().await;
                }
                return true;
            }
            self.parked.eof = parked.eof;
            let Some(tracker) = &mut self.tracker else {
                return true;
            };
            actions = tracker.feed(&parked.input);
        }
    }

    async fn agent_eof(&mut self) {
        if self.input_closed {
            return;
        }
        if let Some(tracker) = &mut self.tracker {
            let actions = tracker.finish();
            self.act(actions).await;
        }
        let _ = self.up_tx.eof().await;
    }

    /// Carries out the tracker's actions in order. A `Submit` is decided before anything after
    /// it; the tracker keeps the rest of the input until then (and drops it after a refusal).
    async fn act(&mut self, actions: Vec<inspect::LineAction>) -> bool {
        let mut queue: VecDeque<inspect::LineAction> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                inspect::LineAction::Forward(bytes) => {
                    if !self.send_upstream(bytes).await {
                        return false;
                    }
                }
                inspect::LineAction::Dropped { what, bytes } => {
                    info!(
                        event = "ssh_input_dropped",
                        conn_id = self.agent.conn.ctx.id,
                        what,
                        bytes,
                        "input not forwarded"
                    );
                    self.agent
                        .notice(&format!("{what} was not forwarded"))
                        .await;
                }
                inspect::LineAction::Submit {
                    line, uncertain, ..
                } => {
                    let outcome = self.decide_line(&line, uncertain).await;
                    let Some(tracker) = self.tracker.as_mut() else {
                        return true;
                    };
                    let next = match outcome {
                        LineOutcome::Run => tracker.allow(),
                        LineOutcome::Continue => tracker.continue_line(),
                        LineOutcome::Refused => tracker.refuse(),
                    };
                    // The line's Enter went with `allow`; from now on nothing more does.
                    if let Some(why) = self.lose_after_line.take() {
                        tracker.lose(why);
                    }
                    queue.extend(next);
                    if outcome == LineOutcome::Refused && self.script {
                        // Later lines of a script may depend on the refused one: the shell gets
                        // end of input instead.
                        for action in std::mem::take(&mut queue) {
                            if let inspect::LineAction::Forward(bytes) = action {
                                let _ = self.send_upstream(bytes).await;
                            }
                        }
                        self.agent.notice("the rest of the input is not run").await;
                        self.input_closed = true;
                        let _ = self.up_tx.eof().await;
                        return true;
                    }
                }
            }
        }
        true
    }

    async fn decide_line(&mut self, line: &str, uncertain: Option<String>) -> LineOutcome {
        let conn = self.agent.conn.clone();
        let (decision, analysis) = match uncertain {
            Some(why) => (
                Decision {
                    action: Action::Deny,
                    rule: "uncertain-line".into(),
                    reason: format!(
                        "sluice could not follow the line editing ({why}); type the command in full"
                    ),
                },
                None,
            ),
            None => match inspect::decide_line(&conn, &self.session, line) {
                None => return LineOutcome::Continue,
                Some((d, a)) => (d, Some(a)),
            },
        };
        let mut parked = Parked::default();
        let result = enforce_command(
            &self.agent,
            &mut self.agent_rx,
            &mut parked,
            "ssh-line",
            "line",
            Command::Shell { line },
            line.as_bytes(),
            &decision,
        )
        .await;
        // What the agent typed while the line was held comes next.
        self.parked = parked;
        match result {
            Ok(_) => {
                // The line runs: the shell is now in the state it leaves.
                if let Some(a) = analysis {
                    self.session.state = a.state;
                    if let Some(why) = a.line_editing {
                        info!(event = "ssh_line_editing_changed", conn_id = conn.ctx.id, why = %why, "later lines are refused");
                        self.lose_after_line = Some(why);
                    }
                }
                LineOutcome::Run
            }
            Err(refused) => {
                self.agent.notice(&refused).await;
                LineOutcome::Refused
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LineOutcome {
    Run,
    /// The command goes on over more lines.
    Continue,
    Refused,
}

fn signal_text(sig: &Sig) -> String {
    match sig {
        Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// Decides on a local port forward (`ssh -L`, a direct-tcpip channel) and opens it upstream.
pub(super) async fn forward(
    conn: &Conn,
    host: &str,
    port: u32,
    originator: &str,
    originator_port: u32,
) -> Result<Channel<russh::client::Msg>, russh::ChannelOpenFailure> {
    let text = format!("<port forward to {host}:{port}>");
    let allowed = conn
        .ctx
        .resource
        .ssh
        .as_ref()
        .is_some_and(|s| s.port_forwarding == Forwarding::Allow);
    let decision = Decision {
        action: if allowed { Action::Allow } else { Action::Deny },
        rule: "port-forwarding".into(),
        reason: format!(
            "port forwarding is {} on this resource (ssh.port_forwarding)",
            if allowed { "allowed" } else { "denied" }
        ),
    };
    let (verdict, _) = conn
        .gate
        .admit(
            "ssh-forward",
            &Command::Session {
                kind: "port-forward",
                text: &text,
            },
            &decision,
            0,
        )
        .await;
    if verdict != Verdict::Allow {
        return Err(russh::ChannelOpenFailure::AdministrativelyProhibited);
    }
    let upstream = conn
        .upstream()
        .await
        .map_err(|_| russh::ChannelOpenFailure::ConnectFailed)?;
    upstream
        .channel_open_direct_tcpip(host, port, originator, originator_port)
        .await
        .map_err(|_| russh::ChannelOpenFailure::ConnectFailed)
}

/// Relays a forwarded connection's bytes (not inspected: they are not commands).
pub(super) async fn relay_forward(
    channel: Channel<Msg>,
    upstream: Channel<russh::client::Msg>,
    conn: Arc<Conn>,
) {
    let mut agent = channel.into_stream();
    let mut up = upstream.into_stream();
    if let Ok((to_up, to_agent)) = tokio::io::copy_bidirectional(&mut agent, &mut up).await {
        use std::sync::atomic::Ordering::Relaxed;
        conn.bytes_to_upstream.fetch_add(to_up, Relaxed);
        conn.bytes_to_agent.fetch_add(to_agent, Relaxed);
    }
}
