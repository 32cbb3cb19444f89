//! The relay once a request runs: agent input (lines decided at Enter in a terminal or a
//! script), upstream output masked as a stream and recorded, exit status and signals.

use super::*;

pub(super) struct Relay {
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
    pub(super) fn new(
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

    pub(super) async fn run(mut self, parked: Parked) {
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
