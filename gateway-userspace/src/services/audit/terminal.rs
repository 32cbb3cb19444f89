//! Reading byte-stream sessions (SSH) back: a readable transcript of commands, decisions and
//! channel output, and asciicast v2 recordings of one channel (`asciinema play`).

use std::{collections::BTreeMap, fmt::Write, time::UNIX_EPOCH};

use serde::Serialize;

use super::{
    chain::{Record, Stored},
    record::{CommandRecord, ExitRecord, OutputRecord, TerminalRecord, kind},
    replay::{Clock, approval_line, decision_line, end_line, parse, session_id, start_lines},
};

/// Size of a channel without a pty in an asciicast recording.
const DEFAULT_SIZE: (u32, u32) = (80, 24);
/// An escape sequence left open longer than this is dropped instead of waiting for its end.
const MAX_ESCAPE: usize = 4096;

/// Commands (`$ text`, with their decision), approvals, and each channel's output as plain
/// text with its exit.
pub fn transcript(records: &[Stored]) -> Result<String, String> {
    let clock = Clock::new(records);
    let mut t = Transcript::default();
    for s in records {
        let r = &s.record;
        match r.kind.as_str() {
            kind::SESSION_START => t.out.push_str(&start_lines("#", r, &parse(r)?)),
            kind::COMMAND => t.command(&clock, r, &parse(r)?),
            kind::APPROVAL => t.note(&approval_line("#", &clock, r, &parse(r)?)),
            kind::TERMINAL => t.opened(&clock, r, &parse(r)?),
            kind::OUTPUT => t.output(&parse(r)?),
            kind::EXIT => t.exit(&clock, r, &parse(r)?),
            kind::SESSION_END => {
                t.blank();
                t.line(&end_line("#", &clock, r, &parse(r)?, "the server"));
            }
            _ => {}
        }
    }
    Ok(t.out)
}

#[derive(Default)]
struct Transcript {
    out: String,
    /// The channel whose output was printed last.
    current: Option<u32>,
    /// Per channel, an escape sequence cut off at the end of its last output record.
    carry: BTreeMap<u32, String>,
}

impl Transcript {
    /// Ends a line the output left open.
    fn close_line(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    fn line(&mut self, text: &str) {
        self.close_line();
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn blank(&mut self) {
        self.close_line();
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    /// A line between channel output: the output after it names its channel again.
    fn note(&mut self, text: &str) {
        self.line(text);
        self.current = None;
    }

    fn command(&mut self, clock: &Clock, r: &Record, c: &CommandRecord) {
        self.blank();
        self.line(&decision_line("#", clock, r, c));
        self.note(&format!("$ {}", c.text.trim_end().replace('\n', "\n> ")));
    }

    fn opened(&mut self, clock: &Clock, r: &Record, t: &TerminalRecord) {
        let what = match t.command {
            Some(n) => format!("exec of #{n}"),
            None => "shell".to_string(),
        };
        let pty = match &t.pty {
            Some(p) => format!("pty {} {}x{}", p.term, p.cols, p.rows),
            None => "no pty".to_string(),
        };
        self.line(&format!(
            "# [{}] channel {}: {what}, {pty}",
            clock.offset(&r.time),
            t.channel
        ));
        self.current = Some(t.channel);
    }

    /// Names the channel when the output switches to another one.
    fn switch_to(&mut self, channel: u32) {
        if self.current != Some(channel) {
            self.line(&format!("# channel {channel}:"));
            self.current = Some(channel);
        }
    }

    fn output(&mut self, o: &OutputRecord) {
        self.switch_to(o.channel);
        let mut text = self.carry.remove(&o.channel).unwrap_or_default();
        for e in o.events.iter().filter(|e| e.code != "r") {
            text.push_str(&e.data);
        }
        let open = plain(&text, &mut self.out);
        if !open.is_empty() {
            self.carry.insert(o.channel, open.to_string());
        }
    }

    fn exit(&mut self, clock: &Clock, r: &Record, x: &ExitRecord) {
        self.switch_to(x.channel);
        self.carry.remove(&x.channel);
        let how = match (x.status, &x.signal) {
            (_, Some(signal)) => format!("signal {signal}"),
            (Some(status), None) => status.to_string(),
            (None, None) => "status unknown".to_string(),
        };
        self.line(&format!("[exit {how}]"));
        let mut summary = format!(
            "# [{}] channel {} ended after {} ms: {} bytes out, {} bytes err",
            clock.offset(&r.time),
            x.channel,
            x.elapsed_ms,
            x.bytes_out,
            x.bytes_err
        );
        if x.truncated {
            let _ = write!(
                summary,
                "; only the first {} recorded (capture limit)",
                x.recorded_bytes
            );
        }
        self.line(&summary);
    }
}

/// Appends terminal output to `out` as plain text: escape sequences and carriage returns
/// removed, backspaces applied, other control characters dropped. Returns an escape sequence
/// cut off at the end of `text`, to be completed by the next output.
fn plain<'a>(text: &'a str, out: &mut String) -> &'a str {
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let mut next = i + c.len_utf8();
        match c {
            // Escape sequences end in ASCII: `i + n` is a character boundary.
            '\x1b' => match escape_len(&text.as_bytes()[i..]) {
                Some(n) => next = i + n,
                None if text.len() - i <= MAX_ESCAPE => return &text[i..],
                None => {}
            },
            '\n' | '\t' => out.push(c),
            '\x08' => {
                if !out.ends_with('\n') {
                    out.pop();
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
        i = next;
    }
    ""
}

/// Length of the escape sequence `seq` starts with (CSI, OSC, or Escape + intermediates +
/// final byte); `None` when it is not complete yet.
fn escape_len(seq: &[u8]) -> Option<usize> {
    match *seq.get(1)? {
        b'[' => seq[2..]
            .iter()
            .position(|b| (0x40..=0x7e).contains(b))
            .map(|p| p + 3),
        // Operating system command: up to BEL or ESC \.
        b']' => seq[2..].iter().enumerate().find_map(|(p, &b)| match b {
            0x07 => Some(p + 3),
            0x1b if seq.get(p + 3) == Some(&b'\\') => Some(p + 4),
            _ => None,
        }),
        _ => seq[1..]
            .iter()
            .position(|b| !(0x20..=0x2f).contains(b))
            .map(|p| p + 2),
    }
}

#[derive(Serialize)]
struct CastHeader<'a> {
    version: u8,
    width: u32,
    height: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<CastEnv<'a>>,
    title: String,
}

#[derive(Serialize)]
struct CastEnv<'a> {
    #[serde(rename = "TERM")]
    term: &'a str,
}

/// One channel as an asciicast v2 recording: its header, then one `[t, code, data]` line per
/// event (stderr shown as `o`, as the terminal showed it; resizes as `r`). `channel`: `None`
/// for the first channel with a pty, else the first channel.
pub fn asciicast(records: &[Stored], channel: Option<u32>) -> Result<String, String> {
    let id = session_id(records);
    let (at, t) = pick_channel(records, channel)?;
    let (width, height) = t.pty.as_ref().map_or(DEFAULT_SIZE, |p| (p.cols, p.rows));
    let header = CastHeader {
        version: 2,
        width,
        height,
        timestamp: humantime::parse_rfc3339(&t.started)
            .ok()
            .and_then(|s| s.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
        env: t.pty.as_ref().map(|p| CastEnv { term: &p.term }),
        title: format!("sluice session {id} channel {}", t.channel),
    };
    let mut out = to_line(&header);
    // Channel numbers may be reused: this channel's output ends at its exit.
    for s in &records[at + 1..] {
        let r = &s.record;
        match r.kind.as_str() {
            kind::OUTPUT => {
                let o: OutputRecord = parse(r)?;
                if o.channel != t.channel {
                    continue;
                }
                for e in &o.events {
                    let code = if e.code == "r" { "r" } else { "o" };
                    out.push_str(&to_line(&(e.t, code, &e.data)));
                }
            }
            kind::EXIT if parse::<ExitRecord>(r)?.channel == t.channel => break,
            _ => {}
        }
    }
    Ok(out)
}

/// The terminal record of the channel to replay, and its position.
fn pick_channel(
    records: &[Stored],
    channel: Option<u32>,
) -> Result<(usize, TerminalRecord), String> {
    let id = session_id(records);
    let mut terminals = Vec::new();
    for (i, s) in records.iter().enumerate() {
        if s.record.kind == kind::TERMINAL {
            terminals.push((i, parse::<TerminalRecord>(&s.record)?));
        }
    }
    if terminals.is_empty() {
        return Err(format!(
            "session `{id}` has no terminal channel: no shell or exec channel was recorded"
        ));
    }
    let found = match channel {
        Some(n) => terminals.iter().position(|(_, t)| t.channel == n),
        None => terminals
            .iter()
            .position(|(_, t)| t.pty.is_some())
            .or(Some(0)),
    };
    match found {
        Some(k) => Ok(terminals.swap_remove(k)),
        None => Err(format!(
            "session `{id}` has no channel {}; its channels: {}",
            channel.unwrap_or_default(),
            terminals
                .iter()
                .map(|(_, t)| t.channel.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn to_line<T: Serialize>(value: &T) -> String {
    // Our own headers and (f64, str, str) tuples always serialize.
    serde_json::to_string(value).expect("asciicast lines serialize") + "\n"
}

#[cfg(test)]
mod tests;
