//! Where an agent's shell command lines end, so that each is decided before the shell can run it.
//!
//! Two modes, by whether the agent asked for a pty:
//!
//! - [`Mode::Pty`]: the remote line editor (bash's readline, default emacs keymap) echoes and
//!   edits. Keystrokes are forwarded as typed, so the agent sees its typing, but the Enter is
//!   withheld until the line is decided. The tracker models the remote line buffer. Keys whose
//!   effect it cannot follow (completion, history, yank, unknown sequences...) make the line
//!   *uncertain*: still forwarded, but the submission says why, so the policy can refuse it.
//!   Keys that could run text sluice never saw (Ctrl-O, Ctrl-X, Escape + Ctrl-E...) are not
//!   forwarded at all ([`Action::Dropped`]).
//! - [`Mode::Lines`]: no pty (`ssh host < script`); the bytes are what the shell reads. Nothing
//!   is forwarded until a line, up to its `\n`, is decided; no key is interpreted.
//!
//! After an [`Action::Submit`] the tracker stops: the rest of the input waits inside it until
//! the session calls [`LineTracker::allow`], [`LineTracker::continue_line`] (the command is
//! incomplete: open quote, heredoc, trailing `|`) or [`LineTracker::refuse`], which discards
//! that rest, so lines pasted after a refused one never run.
//!
//! What the model assumes (the session and the policy must keep it true):
//! - readline in emacs mode with its built-in bindings. A remote in vi mode or with other
//!   bindings acts on keys differently: the policy should refuse what changes them (`bind`,
//!   `set -o vi`, `INPUTRC=`, `exec` of another shell).
//! - A bracketed paste (`ESC[200~ ... ESC[201~`) is inserted literally, newlines included, only
//!   once the remote editor announced bracketed paste (`ESC[?2004h`, bash 5.1+) in the output the
//!   session passes to [`LineTracker::observe_output`]: sent to an editor without it, each pasted
//!   newline would run a line. Until then a paste is uncertain and its newlines submit.
//! - Bash turns bracketed paste off (`ESC[?2004l`) while a command runs. Keys typed ahead then
//!   are edited by the terminal's canonical mode, whose erase rules differ from readline's
//!   (`Ctrl-W` stops at punctuation, `Ctrl-U` ignores the cursor), so editing keys typed in that
//!   state make the line uncertain.
//! - Without [`LineTracker::utf8_input`], readline may run with `convert-meta` on (the C locale)
//!   and read every byte >= 0x80 as Meta plus its low 7 bits: non-ASCII input is uncertain, and
//!   a character containing a byte that would read as a dangerous Meta key is dropped.
//! - Keys typed while a command runs go to that command (`read`, `psql`, an editor); the tracker
//!   still submits each line: interactive programs are seen as shell lines.
//!
//! Cost: a key costs at most one copy of the line (bounded by `max_line`).

mod pty;

use std::mem;

/// Longest escape sequence parsed; a longer one is an unknown key.
const MAX_SEQUENCE: usize = 32;
const PASTE_END: &[u8] = b"\x1b[201~";
/// What readline prints when it starts (`h`) and stops (`l`) reading a line with bracketed paste.
const PASTE_ON: &[u8] = b"\x1b[?2004h";
const PASTE_OFF: &[u8] = b"\x1b[?2004l";
/// Interrupt: the terminal sends SIGINT, readline discards the line (and a PS2 continuation).
const CTRL_C: u8 = 0x03;
/// Ctrl-E then Ctrl-U: in readline, end of line then kill to its start; in the terminal's own
/// line buffer, a character then the kill-line key that erases it all. No signal either way.
const ERASE_LINE: &[u8] = b"\x05\x15";

/// How the agent's input reaches the remote shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The agent asked for a pty: a line editor echoes and edits on the remote side.
    Pty,
    /// No pty: the shell reads the bytes as they are.
    Lines,
}

/// What the session does with the agent's input, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send upstream now.
    Forward(Vec<u8>),
    /// A complete line: decide it, then call [`LineTracker::allow`],
    /// [`LineTracker::continue_line`] or [`LineTracker::refuse`]. Nothing after it is forwarded
    /// before.
    Submit {
        /// The whole command: earlier continuation lines (each ending in `\n`) and this one. In
        /// lines mode exactly the bytes the shell will read (invalid UTF-8 shown as U+FFFD, and
        /// then uncertain); in pty mode the modelled line buffer.
        line: String,
        /// What [`LineTracker::allow`] releases after the text: `\r` or `\n` in pty mode, `\n`
        /// in lines mode; empty for a line cut at the length limit or ended by end of input.
        terminator: Vec<u8>,
        /// Why the shell may run something else than `line`; the policy should refuse it then.
        uncertain: Option<String>,
    },
    /// Input that was not forwarded (tell the agent why).
    Dropped { what: &'static str, bytes: usize },
}

/// What the remote line editor is doing, as far as its output shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Editor {
    /// No bracketed-paste announcement seen: readline assumed, pastes not trusted.
    Unknown,
    /// readline is reading a line, with bracketed paste on.
    Reading,
    /// The editor let go of the terminal (a command runs) and has not announced itself since.
    Away,
}

/// A submitted line waiting for its decision.
struct Pending {
    text: String,
    /// Pty mode: the line ends a command begun on earlier lines (the remote shows PS2).
    continued: bool,
    /// Lines mode: the exact bytes the decision releases, before the terminator.
    raw: Vec<u8>,
    terminator: Vec<u8>,
    uncertain: Option<String>,
}

/// How much of the unprocessed input one step used.
enum Step {
    Used(usize),
    /// An incomplete key sequence or character: wait for more input.
    NeedMore,
}

/// Tracks one channel's input; see the module documentation.
pub struct LineTracker {
    mode: Mode,
    max_line: usize,
    utf8: bool,
    editor: Editor,
    /// Not processed yet: the rest of the input after a submission, an incomplete key sequence.
    input: Vec<u8>,
    pending: Option<Pending>,
    finished: bool,
    out: Vec<Action>,
    /// Pty mode: earlier lines of an incomplete command (already sent; the remote shows PS2).
    held: String,
    /// Pty mode: the remote line buffer and the cursor in it (a byte offset).
    line: String,
    cursor: usize,
    /// Pty mode: inside a trusted bracketed paste.
    paste: bool,
    /// Lines mode: earlier lines of an incomplete command, and this line, as read.
    held_raw: Vec<u8>,
    raw: Vec<u8>,
    /// Lines mode: this line continues one cut at the length limit.
    cut: bool,
    uncertain: Option<String>,
    /// The end of the previous output chunk, for an announcement split across chunks.
    output_tail: Vec<u8>,
    /// Why the model no longer holds (a line changed the line editing): nothing more is
    /// forwarded, and every line is submitted uncertain.
    lost: Option<String>,
}

impl LineTracker {
    /// A tracker whose command lines (with their continuation lines) are at most `max_line`
    /// bytes: a longer one is reported uncertain (`overflow`) instead of growing.
    pub fn new(mode: Mode, max_line: usize) -> LineTracker {
        LineTracker {
            mode,
            max_line,
            utf8: false,
            editor: Editor::Unknown,
            input: Vec::new(),
            pending: None,
            finished: false,
            out: Vec::new(),
            held: String::new(),
            line: String::new(),
            cursor: 0,
            paste: false,
            held_raw: Vec::new(),
            raw: Vec::new(),
            cut: false,
            uncertain: None,
            output_tail: Vec::new(),
            lost: None,
        }
    }

    /// A line that ran changed how the remote reads keys or lines (`stty erase`, `bind`,
    /// `set -o vi`, another shell): sluice can no longer follow the terminal, so from now on
    /// nothing typed is forwarded and every line is refused as uncertain.
    pub fn lose(&mut self, why: String) {
        self.lost.get_or_insert(why);
    }

    /// Pty mode: the remote line editor reads UTF-8 (its locale is a UTF-8 one), so non-ASCII
    /// characters are text, not Meta keys.
    pub fn utf8_input(mut self, on: bool) -> LineTracker {
        self.utf8 = on;
        self
    }

    /// A submitted line waits for its decision.
    #[cfg(test)]
    pub fn awaiting(&self) -> bool {
        self.pending.is_some()
    }

    /// Input bytes held unprocessed (behind a pending submission, or an incomplete key).
    #[cfg(test)]
    pub fn unprocessed(&self) -> usize {
        self.input.len()
    }

    /// Pty mode: output from the remote, to follow whether its line editor is reading (its
    /// bracketed-paste announcements). Cheap: one scan of the chunk.
    pub fn observe_output(&mut self, output: &[u8]) {
        if self.mode != Mode::Pty || output.is_empty() {
            return;
        }
        // An announcement split across chunks lies in the old tail plus the chunk's first bytes;
        // any one found inside the chunk itself comes later and wins.
        let keep = PASTE_ON.len() - 1;
        let mut seam = mem::take(&mut self.output_tail);
        let old = seam.len();
        seam.extend_from_slice(&output[..output.len().min(keep)]);
        if let Some(e) = last_announcement(&seam) {
            self.editor = e;
        }
        if let Some(e) = last_announcement(output) {
            self.editor = e;
        }
        self.output_tail = if output.len() >= keep {
            output[output.len() - keep..].to_vec()
        } else {
            let mut t = seam[..old].to_vec();
            t.extend_from_slice(output);
            t.split_off(t.len().saturating_sub(keep))
        };
    }

    /// Agent input; returns what to do, in order. Stops at the first [`Action::Submit`] and
    /// keeps the rest. Fed while a line awaits its decision, input is only kept (up to
    /// `max_line` bytes; beyond, dropped): feed again once the decision is given.
    pub fn feed(&mut self, input: &[u8]) -> Vec<Action> {
        if self.finished {
            self.dropped("input after its end", input.len());
            return mem::take(&mut self.out);
        }
        if self.pending.is_some() {
            let keep = input
                .len()
                .min(self.max_line.saturating_sub(self.input.len()));
            self.input.extend_from_slice(&input[..keep]);
            self.dropped(
                "input beyond the limit while a line awaited its decision",
                input.len() - keep,
            );
            return mem::take(&mut self.out);
        }
        self.input.extend_from_slice(input);
        self.run()
    }

    /// End of the agent's input. Lines mode: a last line without `\n` (or an incomplete command)
    /// is submitted, with an empty terminator. Pty mode: a line without Enter never runs;
    /// nothing is submitted.
    pub fn finish(&mut self) -> Vec<Action> {
        self.finished = true;
        if self.pending.is_some() {
            return mem::take(&mut self.out);
        }
        self.run()
    }

    /// The submitted line may run: releases it (pty: the terminator; lines: the held text and
    /// its terminator), then goes on with the input after it.
    pub fn allow(&mut self) -> Vec<Action> {
        let Some(p) = self.pending.take() else {
            return Vec::new();
        };
        match self.mode {
            Mode::Pty => {
                self.forward(&p.terminator);
                self.released();
            }
            Mode::Lines => {
                let mut block = p.raw;
                block.extend_from_slice(&p.terminator);
                self.forward(&block);
                self.cut = p.terminator.is_empty();
            }
        }
        self.run()
    }

    /// The submitted text is an incomplete command: keep accumulating, and submit the whole
    /// command at its next line. Pty mode: the terminator is forwarded (the remote shell shows
    /// PS2 and holds the text; a later refusal's Ctrl-C discards it). Lines mode: nothing is
    /// forwarded; the whole block is released at once when allowed. A submission without a
    /// terminator (cut at the limit, or at end of input) cannot continue: it is discarded.
    pub fn continue_line(&mut self) -> Vec<Action> {
        let Some(p) = self.pending.take() else {
            return Vec::new();
        };
        if p.terminator.is_empty() {
            self.dropped(
                "an incomplete command at the length limit or at end of input",
                p.raw.len(),
            );
            return self.discard(p);
        }
        match self.mode {
            Mode::Pty => {
                self.forward(&p.terminator);
                self.released();
                self.held = p.text + "\n";
            }
            Mode::Lines => {
                self.held_raw = p.raw;
                self.held_raw.extend_from_slice(&p.terminator);
            }
        }
        self.uncertain = p.uncertain;
        self.run()
    }

    /// The submitted line must not run. Pty mode: Ctrl-C is forwarded, so the remote editor
    /// discards its line and any PS2 continuation; but a line typed ahead while the previous
    /// command still runs (the editor is away, no continuation) sits in the terminal's buffer,
    /// where Ctrl-C would interrupt that command: it is erased instead. Lines mode: nothing was
    /// sent. The input held
    /// behind the line is discarded ([`Action::Dropped`]): it was typed or pasted expecting the
    /// line to run.
    pub fn refuse(&mut self) -> Vec<Action> {
        match self.pending.take() {
            Some(p) => self.discard(p),
            None => Vec::new(),
        }
    }

    fn discard(&mut self, p: Pending) -> Vec<Action> {
        match self.mode {
            Mode::Pty => {
                if self.editor == Editor::Away && !p.continued {
                    self.forward(ERASE_LINE);
                } else {
                    self.forward(&[CTRL_C]);
                }
                self.interrupted();
            }
            Mode::Lines => {
                self.held_raw.clear();
                self.uncertain = None;
                // The rest of a cut line still arrives: it is no line of its own.
                self.cut = p.terminator.is_empty();
            }
        }
        let rest = mem::take(&mut self.input);
        self.dropped("input after a refused line", rest.len());
        mem::take(&mut self.out)
    }

    /// Processes the held input until a submission, or until it is used up.
    fn run(&mut self) -> Vec<Action> {
        let mut input = mem::take(&mut self.input);
        let mut at = 0;
        while self.pending.is_none() && at < input.len() {
            let step = match self.mode {
                Mode::Pty => self.step_pty(&input[at..]),
                Mode::Lines => self.step_lines(&input[at..]),
            };
            match step {
                Step::Used(n) => at += n,
                Step::NeedMore => break,
            }
        }
        input.drain(..at);
        self.input = input;
        if self.finished && self.pending.is_none() {
            self.at_end();
        }
        mem::take(&mut self.out)
    }

    fn at_end(&mut self) {
        match self.mode {
            Mode::Pty => {
                let n = mem::take(&mut self.input).len();
                self.dropped("an incomplete key sequence at end of input", n);
            }
            Mode::Lines => {
                if !self.raw.is_empty() || !self.held_raw.is_empty() {
                    self.submit_lines(Vec::new(), None);
                }
            }
        }
    }

    // ---- lines mode ----

    fn step_lines(&mut self, input: &[u8]) -> Step {
        let newline = input.iter().position(|&b| b == b'\n');
        let body = &input[..newline.unwrap_or(input.len())];
        let room = self
            .max_line
            .saturating_sub(self.held_raw.len() + self.raw.len());
        if body.len() > room {
            self.raw.extend_from_slice(&body[..room]);
            let why = format!("overflow: the line is longer than {} bytes", self.max_line);
            self.submit_lines(Vec::new(), Some(why));
            return Step::Used(room);
        }
        self.raw.extend_from_slice(body);
        let Some(i) = newline else {
            return Step::Used(input.len());
        };
        if self.raw.is_empty() && self.held_raw.is_empty() && !self.cut {
            // A blank line runs nothing.
            self.forward(b"\n");
        } else {
            self.submit_lines(b"\n".to_vec(), None);
        }
        Step::Used(i + 1)
    }

    fn submit_lines(&mut self, terminator: Vec<u8>, overflow: Option<String>) {
        let mut raw = mem::take(&mut self.held_raw);
        raw.append(&mut self.raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let uncertain = self
            .lost
            .clone()
            .or(overflow)
            .or_else(|| self.uncertain.take())
            .or_else(|| {
                self.cut.then(|| {
                    format!(
                        "continues a line longer than {} bytes: its start was submitted alone",
                        self.max_line
                    )
                })
            })
            .or_else(|| {
                std::str::from_utf8(&raw)
                    .is_err()
                    .then(|| "not valid UTF-8 (shown with U+FFFD)".to_string())
            })
            .or_else(|| {
                raw.contains(&0)
                    .then(|| "contains NUL bytes, which the shell skips".to_string())
            });
        self.cut = false;
        self.out.push(Action::Submit {
            line: text.clone(),
            terminator: terminator.clone(),
            uncertain: uncertain.clone(),
        });
        self.pending = Some(Pending {
            text,
            // Lines mode holds continued lines itself (`held_raw`); nothing runs remotely.
            continued: false,
            raw,
            terminator,
            uncertain,
        });
    }

    /// Ctrl-C: readline drops the line, a PS2 continuation and a paste.
    fn interrupted(&mut self) {
        self.line.clear();
        self.cursor = 0;
        self.held.clear();
        self.paste = false;
        self.uncertain = None;
        self.released();
    }

    /// The remote editor accepts or drops its line: it stops reading until its next prompt.
    fn released(&mut self) {
        if self.editor == Editor::Reading {
            self.editor = Editor::Away;
        }
    }

    /// An editing key typed while no line editor reads: the terminal applies its own rules.
    fn edited_away(&mut self) {
        if self.editor == Editor::Away {
            self.mark("editing keys typed while no line editor was reading (the terminal's own erase rules apply)");
        }
    }

    fn mark(&mut self, why: &str) {
        if self.uncertain.is_none() {
            self.uncertain = Some(why.to_string());
        }
    }

    fn forward(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.lost.is_some() {
            return;
        }
        if let Some(Action::Forward(last)) = self.out.last_mut() {
            last.extend_from_slice(bytes);
        } else {
            self.out.push(Action::Forward(bytes.to_vec()));
        }
    }

    fn dropped(&mut self, what: &'static str, bytes: usize) {
        if bytes > 0 {
            self.out.push(Action::Dropped { what, bytes });
        }
    }
}

/// Which announcement comes last in `hay`.
fn last_announcement(hay: &[u8]) -> Option<Editor> {
    hay.windows(PASTE_ON.len()).rev().find_map(|w| match w {
        _ if w == PASTE_ON => Some(Editor::Reading),
        _ if w == PASTE_OFF => Some(Editor::Away),
        _ => None,
    })
}

#[cfg(test)]
mod tests;
