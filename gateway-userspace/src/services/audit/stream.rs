//! Recording one channel's byte streams (an SSH shell or exec channel; any protocol whose
//! responses are byte streams): a `terminal` record when it opens, its output as asciicast-style
//! events batched into `output` records, an `exit` record when it ends.
//!
//! All of it is queued, not waited for (like `result` records): what the agent sent is made
//! durable by [`SessionAudit::command`] before it is forwarded; output is what came back, kept
//! best effort and up to a per-channel limit.

use std::{
    mem,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    record::{ExitRecord, OutputEvent, OutputRecord, PtyInfo, TerminalRecord, kind},
    session::SessionAudit,
};
use crate::util::now_rfc3339;

/// An `output` record holds about this much text at most.
pub const BATCH_BYTES: usize = 32 * 1024;
/// A batch whose first event is older than this is written at the next event, so a quiet
/// terminal's output reaches the log within about a second of the next activity.
pub const BATCH_AGE: Duration = Duration::from_secs(1);

/// Which stream output came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputCode {
    Stdout,
    Stderr,
}

impl OutputCode {
    fn code(self) -> &'static str {
        match self {
            OutputCode::Stdout => "o",
            OutputCode::Stderr => "e",
        }
    }
}

/// One channel's recorder; [`StreamRecorder::finish`] writes its `exit` record (dropped
/// unfinished, it writes one without status).
pub struct StreamRecorder {
    audit: Arc<SessionAudit>,
    channel: u32,
    command: Option<u64>,
    limit: usize,
    started: Instant,
    batch: Vec<OutputEvent>,
    batch_bytes: usize,
    batch_first: Option<Instant>,
    /// The incomplete UTF-8 character at the end of each stream's last chunk.
    tails: [Vec<u8>; 2],
    bytes_out: u64,
    bytes_err: u64,
    recorded: usize,
    truncated: bool,
    finished: bool,
}

impl StreamRecorder {
    /// Writes the channel's `terminal` record. `command` is the `n` of the command an exec
    /// channel runs; `limit_bytes` caps the output recorded (`capture.bytes` for exec channels,
    /// `capture.terminal_bytes` for shells).
    pub fn start(
        audit: Arc<SessionAudit>,
        channel: u32,
        command: Option<u64>,
        pty: Option<PtyInfo>,
        limit_bytes: usize,
    ) -> StreamRecorder {
        audit.record(
            kind::TERMINAL,
            &TerminalRecord {
                channel,
                command,
                pty,
                started: now_rfc3339(),
            },
        );
        StreamRecorder {
            audit,
            channel,
            command,
            limit: limit_bytes,
            started: Instant::now(),
            batch: Vec::new(),
            batch_bytes: 0,
            batch_first: None,
            tails: [Vec::new(), Vec::new()],
            bytes_out: 0,
            bytes_err: 0,
            recorded: 0,
            truncated: false,
            finished: false,
        }
    }

    /// Output the agent received, already masked.
    pub fn output(&mut self, code: OutputCode, masked: &[u8]) {
        self.output_at(Instant::now(), code, masked);
    }

    /// The agent's terminal changed size.
    pub fn resize(&mut self, cols: u32, rows: u32) {
        self.resize_at(Instant::now(), cols, rows);
    }

    /// Writes what is batched and the `exit` record.
    pub fn finish(mut self, status: Option<u32>, signal: Option<String>) {
        self.end(Instant::now(), status, signal);
    }

    fn output_at(&mut self, now: Instant, code: OutputCode, masked: &[u8]) {
        match code {
            OutputCode::Stdout => self.bytes_out += masked.len() as u64,
            OutputCode::Stderr => self.bytes_err += masked.len() as u64,
        }
        if self.truncated {
            return;
        }
        let kept = masked.len().min(self.limit - self.recorded);
        self.recorded += kept;
        let tail = &mut self.tails[code as usize];
        let text = decode(tail, &masked[..kept]);
        if kept < masked.len() {
            self.truncated = true;
        }
        self.push(now, code.code(), &text);
    }

    fn resize_at(&mut self, now: Instant, cols: u32, rows: u32) {
        if !self.truncated {
            self.push(now, "r", &format!("{cols}x{rows}"));
        }
    }

    fn end(&mut self, now: Instant, status: Option<u32>, signal: Option<String>) {
        for code in [OutputCode::Stdout, OutputCode::Stderr] {
            // A character cut off by the end of the stream.
            if !mem::take(&mut self.tails[code as usize]).is_empty() && !self.truncated {
                self.push(now, code.code(), "\u{fffd}");
            }
        }
        self.flush();
        self.audit.record(
            kind::EXIT,
            &ExitRecord {
                channel: self.channel,
                command: self.command,
                status,
                signal,
                bytes_out: self.bytes_out,
                bytes_err: self.bytes_err,
                recorded_bytes: self.recorded as u64,
                truncated: self.truncated,
                elapsed_ms: now.saturating_duration_since(self.started).as_millis() as u64,
            },
        );
        self.finished = true;
    }

    /// Appends events for `data`, split so that no batch grows beyond [`BATCH_BYTES`].
    fn push(&mut self, now: Instant, code: &str, mut data: &str) {
        if self
            .batch_first
            .is_some_and(|first| now.saturating_duration_since(first) >= BATCH_AGE)
        {
            self.flush();
        }
        let t = now.saturating_duration_since(self.started).as_micros() as f64 / 1e6;
        while !data.is_empty() {
            if self.batch_bytes >= BATCH_BYTES {
                self.flush();
            }
            let piece = prefix_within(data, BATCH_BYTES - self.batch_bytes);
            data = &data[piece.len()..];
            self.batch.push(OutputEvent {
                t,
                code: code.into(),
                data: piece.into(),
            });
            self.batch_bytes += piece.len();
            self.batch_first.get_or_insert(now);
        }
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.audit.record(
            kind::OUTPUT,
            &OutputRecord {
                channel: self.channel,
                events: mem::take(&mut self.batch),
            },
        );
        self.batch_bytes = 0;
        self.batch_first = None;
    }
}

impl Drop for StreamRecorder {
    /// A channel task that ended without [`StreamRecorder::finish`] (an error, a panic) still
    /// leaves its output and an `exit` record without status.
    fn drop(&mut self) {
        if !self.finished {
            self.end(Instant::now(), None, None);
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes ending at a character boundary (at least
/// one character, so that progress is made).
fn prefix_within(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end == 0 {
        end = s.chars().next().map_or(0, char::len_utf8);
    }
    &s[..end]
}

/// `tail` + `data` as text: invalid bytes become U+FFFD, an incomplete character at the end is
/// kept in `tail` for the next chunk.
fn decode(tail: &mut Vec<u8>, data: &[u8]) -> String {
    let mut bytes = mem::take(tail);
    bytes.extend_from_slice(data);
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes.as_slice();
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(&String::from_utf8_lossy(valid));
                match e.error_len() {
                    Some(n) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        rest = &after[n..];
                    }
                    None => {
                        *tail = after.to_vec();
                        return out;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::services::audit::{
        AuditLog, Queued,
        record::{ExitRecord, OutputRecord, TerminalRecord},
        settings::CaptureLimits,
    };

    /// A session whose records are queued in memory.
    pub(crate) fn session() -> (Arc<SessionAudit>, Queued) {
        let (log, queued) = AuditLog::in_memory(CaptureLimits {
            rows: 10,
            bytes: 1024,
            terminal_bytes: 4096,
        });
        (
            Arc::new(SessionAudit::for_tests(Arc::new(log), "s1")),
            queued,
        )
    }

    /// The queued records: terminal, the events of every output record, exit.
    fn read(queued: &mut Queued) -> (TerminalRecord, Vec<Vec<OutputEvent>>, Option<ExitRecord>) {
        let records = queued.drain();
        assert!(records.iter().all(|r| r.1.as_deref() == Some("s1")));
        let (first, rest) = records.split_first().expect("a terminal record");
        assert_eq!(first.0, kind::TERMINAL);
        let terminal = serde_json::from_str(&first.2).unwrap();
        let mut batches = Vec::new();
        let mut exit = None;
        for (k, _, body) in rest {
            match k.as_str() {
                kind::OUTPUT => {
                    batches.push(serde_json::from_str::<OutputRecord>(body).unwrap().events)
                }
                kind::EXIT => exit = Some(serde_json::from_str(body).unwrap()),
                other => panic!("unexpected {other}"),
            }
        }
        (terminal, batches, exit)
    }

    fn texts(batches: &[Vec<OutputEvent>]) -> Vec<(&str, &str)> {
        batches
            .iter()
            .flatten()
            .map(|e| (e.code.as_str(), e.data.as_str()))
            .collect()
    }

    #[test]
    fn records_are_asciicast_shaped() {
        let (audit, mut queued) = session();
        let pty = PtyInfo {
            term: "xterm".into(),
            cols: 80,
            rows: 24,
        };
        let mut r = StreamRecorder::start(audit, 3, Some(7), Some(pty.clone()), 4096);
        let t0 = r.started;
        r.output_at(
            t0 + Duration::from_micros(1_234_567),
            OutputCode::Stdout,
            b"hi\n",
        );
        r.output_at(
            t0 + Duration::from_millis(1500),
            OutputCode::Stderr,
            b"oops\n",
        );
        r.resize_at(t0 + Duration::from_millis(1600), 120, 40);
        r.end(t0 + Duration::from_millis(2000), Some(0), None);
        let records = queued.drain();
        let kinds: Vec<&str> = records.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(kinds, [kind::TERMINAL, kind::OUTPUT, kind::EXIT]);
        let terminal: TerminalRecord = serde_json::from_str(&records[0].2).unwrap();
        assert_eq!(
            (terminal.channel, terminal.command, terminal.pty),
            (3, Some(7), Some(pty))
        );
        assert!(humantime::parse_rfc3339(&terminal.started).is_ok());
        assert_eq!(
            records[1].2,
            r#"{"channel":3,"events":[[1.234567,"o","hi\n"],[1.5,"e","oops\n"],[1.6,"r","120x40"]]}"#
        );
        let exit: ExitRecord = serde_json::from_str(&records[2].2).unwrap();
        assert_eq!(
            exit,
            ExitRecord {
                channel: 3,
                command: Some(7),
                status: Some(0),
                signal: None,
                bytes_out: 3,
                bytes_err: 5,
                recorded_bytes: 8,
                truncated: false,
                elapsed_ms: 2000,
            }
        );
    }

    #[test]
    fn batches_close_by_size_and_by_age() {
        let (audit, mut queued) = session();
        let mut r = StreamRecorder::start(audit, 0, None, None, usize::MAX);
        let t0 = r.started;
        // 40 KiB in 10 KiB chunks: the first batch closes at 32 KiB, splitting a chunk.
        for _ in 0..4 {
            r.output_at(t0, OutputCode::Stdout, &[b'x'; 10 * 1024]);
        }
        // An event more than a second after the batch's first one starts a new batch.
        r.output_at(t0 + Duration::from_millis(100), OutputCode::Stdout, b"a");
        r.output_at(t0 + Duration::from_millis(1200), OutputCode::Stdout, b"b");
        r.output_at(t0 + Duration::from_millis(1300), OutputCode::Stdout, b"c");
        r.end(t0 + Duration::from_millis(1400), None, None);
        let (_, batches, exit) = read(&mut queued);
        let sizes: Vec<usize> = batches
            .iter()
            .map(|b| b.iter().map(|e| e.data.len()).sum())
            .collect();
        assert_eq!(sizes, [32 * 1024, 8 * 1024 + 1, 2]);
        assert_eq!(batches[2].len(), 2);
        assert_eq!(exit.unwrap().recorded_bytes, 40 * 1024 + 3);
    }

    #[test]
    fn a_character_split_across_chunks_is_kept_whole() {
        let (audit, mut queued) = session();
        let mut r = StreamRecorder::start(audit, 0, None, None, 4096);
        let euro = "€".as_bytes();
        r.output(OutputCode::Stdout, &[b'a', euro[0]]);
        // The other stream's tail is its own.
        r.output(OutputCode::Stderr, &[0xc3]);
        r.output(OutputCode::Stdout, &euro[1..]);
        r.output(OutputCode::Stderr, &[0xa9, 0xff, b'!']);
        // Cut off by the end of the stream.
        r.output(OutputCode::Stdout, &euro[..2]);
        r.finish(Some(1), None);
        let (_, batches, _) = read(&mut queued);
        assert_eq!(
            texts(&batches),
            [
                ("o", "a"),
                ("o", "€"),
                ("e", "é\u{fffd}!"),
                ("o", "\u{fffd}")
            ]
        );
    }

    #[test]
    fn output_beyond_the_limit_is_counted_not_recorded() {
        let (audit, mut queued) = session();
        let mut r = StreamRecorder::start(audit, 0, None, None, 10);
        r.output(OutputCode::Stdout, b"0123456");
        r.output(OutputCode::Stderr, b"789abc");
        r.output(OutputCode::Stdout, b"more");
        r.resize(100, 30);
        r.finish(None, Some("KILL".into()));
        let (_, batches, exit) = read(&mut queued);
        assert_eq!(texts(&batches), [("o", "0123456"), ("e", "789")]);
        let exit = exit.unwrap();
        assert_eq!(
            (
                exit.bytes_out,
                exit.bytes_err,
                exit.recorded_bytes,
                exit.truncated
            ),
            (11, 6, 10, true)
        );
        assert_eq!(exit.signal.as_deref(), Some("KILL"));
        assert_eq!(exit.status, None);
    }

    #[test]
    fn a_dropped_recorder_still_ends_its_channel() {
        let (audit, mut queued) = session();
        let mut r = StreamRecorder::start(audit.clone(), 4, None, None, 4096);
        r.output(OutputCode::Stdout, b"partial");
        drop(r);
        let (_, batches, exit) = read(&mut queued);
        assert_eq!(texts(&batches), [("o", "partial")]);
        let exit = exit.unwrap();
        assert_eq!((exit.channel, exit.status, exit.signal), (4, None, None));
    }
}
