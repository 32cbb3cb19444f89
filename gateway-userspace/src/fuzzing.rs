//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, run by hand: see
//! `fuzz/README.md`), and a unit test that replays their committed corpora through the same
//! functions on every `cargo test`, so an input that once crashed stays fixed.
//!
//! Each target checks invariants besides "does not crash": an analysis is deterministic, a
//! line with a finding is never allowed, an incomplete line carries nothing, the codec never
//! reads past a frame.

use std::{
    future::Future,
    path::Path,
    pin::pin,
    task::{Context, Poll, Waker},
};

use crate::{
    config::{Action, Config},
    inspect::{
        guardrails::{
            analyze,
            shell::{ShellKind, ShellOrigin, ShellState, analyze_shell_unguarded},
        },
        policy::{Subject, decide_shell},
    },
    proto::{
        postgres::codec,
        ssh::inspect::{LineAction, LineTracker, Mode},
    },
};

/// The shell analyser: the input as command lines of one session (split at NUL), each in an
/// origin picked by its first byte, with the state carried from line to line; and the same
/// bytes as keystrokes through the terminal line tracker.
pub fn shell(data: &[u8]) {
    static POLICY: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    let policy = POLICY.get_or_init(policy);
    let subject = Subject {
        target: "agents",
        resource: "web",
    };
    let mut state = ShellState::default();
    for chunk in data.split(|&b| b == 0) {
        let Some((&selector, line)) = chunk.split_first() else {
            continue;
        };
        let origin = ShellOrigin {
            terminal: selector & 1 != 0,
            line: selector & 2 != 0,
            interactive: selector & 4 != 0,
        };
        let text = String::from_utf8_lossy(line);
        let a = analyze_shell_unguarded(&text, origin, &state);
        let again = analyze_shell_unguarded(&text, origin, &state);
        assert_eq!(a, again, "the analysis of {text:?} is not deterministic");
        if a.incomplete {
            assert!(a.findings.is_empty() && a.runs.is_empty(), "{a:?}");
            continue;
        }
        if a.parse_error.is_some() {
            assert!(
                !a.findings.is_empty(),
                "a parse error without a finding: {a:?}"
            );
        }
        for r in &a.runs {
            assert_eq!(r.kind == ShellKind::Read, r.reason.is_empty(), "{r:?}");
        }
        let d = decide_shell(policy, &subject, &a);
        if !a.findings.is_empty() || a.parse_error.is_some() || a.uncertain.is_some() {
            assert_eq!(d.action, Action::Deny, "{text:?}: {a:?} gave {d:?}");
        } else if a.kind() != ShellKind::Read {
            assert_eq!(d.action, Action::Hold, "{text:?}: {a:?} gave {d:?}");
        }
        state = a.state;
    }
    line_tracker(data);
}

/// The keystroke model: whatever the input, it never forwards more than it was given (plus
/// the Ctrl-C and Ctrl-E Ctrl-U of refusals) and never submits a line longer than its bound.
fn line_tracker(data: &[u8]) {
    const MAX: usize = 256;
    let mut t = LineTracker::new(Mode::Pty, MAX).utf8_input(data.first() == Some(&b'u'));
    let mut decide = data.iter().copied().cycle();
    let mut forwarded = 0usize;
    let mut refusals = 0usize;
    for piece in data.chunks(7) {
        let mut actions = t.feed(piece);
        for _ in 0..64 {
            let mut next = Vec::new();
            for a in actions {
                match a {
                    LineAction::Forward(b) => forwarded += b.len(),
                    LineAction::Submit { line, .. } => {
                        assert!(line.len() <= MAX * 2, "a line past its bound");
                        next = match decide.next().unwrap_or(0) % 3 {
                            0 => t.allow(),
                            1 => t.continue_line(),
                            _ => {
                                refusals += 1;
                                t.refuse()
                            }
                        };
                    }
                    LineAction::Dropped { .. } => {}
                }
            }
            if next.is_empty() {
                break;
            }
            actions = next;
        }
    }
    assert!(
        forwarded <= data.len() + 2 * (refusals + 1),
        "forwarded {forwarded} bytes of {} typed",
        data.len()
    );
}

fn policy() -> Config {
    let text = "targets:\n  - { name: agents, egress: deny }\nresources:\n  - { name: web, protocol: tcp, match: [{ address: 10.0.0.7, port: 22 }] }\nrules:\n  - { name: reads, shell: [read], action: allow }\n  - { name: changes, shell: [write, unknown], action: hold }\n";
    Config::parse(text, Path::new("fuzz.yaml")).expect("the fuzz policy parses")
}

/// The PostgreSQL path: the input as a frontend stream (startup packet, then messages) or a
/// backend stream (messages), by its first byte; every message is decoded as the session
/// decodes it, and the SQL of `Query` and `Parse` goes through the analyser.
pub fn postgres(data: &[u8]) {
    let Some((&selector, mut stream)) = data.split_first() else {
        return;
    };
    const MAX: usize = 1 << 16;
    if selector & 1 == 0 {
        // Frontend.
        if selector & 2 != 0 {
            match block_on(codec::read_startup(&mut stream)) {
                Ok(Some((code, body))) if code == codec::PROTOCOL_3_0 => {
                    let _ = codec::startup_params(&body);
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
        while let Ok(Some(m)) = block_on(codec::read_message(&mut stream, MAX, "client")) {
            assert_eq!(m.raw.len(), m.body().len() + 5);
            let body = m.body();
            match m.tag {
                b'Q' => {
                    if let Ok(sql) = codec::query_text(body) {
                        sql_analysis(sql);
                    }
                }
                b'P' => {
                    if let Ok((_, sql)) = codec::parse_message(body) {
                        sql_analysis(sql);
                    }
                    let _ = codec::parse_param_types(body);
                }
                b'B' => {
                    if let Ok(b) = codec::bind_message(body) {
                        for i in 0..b.params.len() {
                            let _ = b.is_binary(i);
                        }
                    }
                }
                b'E' => {
                    let _ = codec::execute_portal(body);
                }
                b'C' => {
                    let _ = codec::close_target(body);
                }
                _ => {}
            }
        }
    } else {
        // Backend.
        while let Ok(Some(m)) = block_on(codec::read_message(&mut stream, MAX, "server")) {
            let body = m.body();
            match m.tag {
                b'T' => {
                    let _ = codec::row_description(body);
                }
                b'D' => {
                    if let Ok(fields) = codec::data_row_fields(body) {
                        for r in fields.into_iter().flatten() {
                            assert!(r.end <= body.len(), "a field past its row");
                        }
                    }
                }
                b'E' | b'N' => {
                    let fields = codec::notice_fields(body);
                    let _ = codec::build_notice(m.tag, &fields);
                }
                _ => {}
            }
        }
    }
}

/// The SQL analyser, and the invariants the policy relies on.
fn sql_analysis(sql: &str) {
    let a = analyze(sql, crate::inspect::Dialect::Postgres);
    if a.parse_error.is_some() {
        assert!(
            !a.findings.is_empty(),
            "a parse error without a finding: {sql:?}"
        );
    }
    assert_eq!(
        a,
        analyze(sql, crate::inspect::Dialect::Postgres),
        "the analysis of {sql:?} is not deterministic"
    );
}

/// Runs a future that never waits (the codec over a byte slice) to its end.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir =
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus")).join(target);
        let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .map(|p| {
                let data = std::fs::read(&p).unwrap();
                (p, data)
            })
            .collect();
        out.sort();
        assert!(!out.is_empty(), "{} is empty", dir.display());
        out
    }

    /// The committed corpora (with every input that once crashed) through the fuzz targets'
    /// own functions: a cheap regression run, no fuzzer needed. On a thread with the stack of
    /// the fuzzer's (release) build in mind: a debug build's frames are many times larger, and
    /// sqlparser recurses once per nested parenthesis.
    #[test]
    fn the_fuzz_corpora_replay_cleanly() {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(replay)
            .unwrap()
            .join()
            .unwrap();
    }

    fn replay() {
        for (path, data) in corpus("shell") {
            if std::env::var_os("SLUICE_FUZZ_TRACE").is_some() {
                eprintln!("replaying {}", path.display());
            }
            let r = std::panic::catch_unwind(|| super::shell(&data));
            assert!(r.is_ok(), "shell corpus input {} fails", path.display());
        }
        for (path, data) in corpus("postgres") {
            if std::env::var_os("SLUICE_FUZZ_TRACE").is_some() {
                eprintln!("replaying {}", path.display());
            }
            let r = std::panic::catch_unwind(|| super::postgres(&data));
            assert!(r.is_ok(), "postgres corpus input {} fails", path.display());
        }
    }
}
