use serde::Serialize;

use super::*;
use crate::services::audit::{
    record::{
        ApprovalDecision, ApprovalRecord, IdentityRecord, OutputEvent, ProcessRecord, PtyInfo,
        SessionEnd, SessionStart,
    },
    replay::{ReplayFormat, replay},
    stream::{OutputCode, StreamRecorder},
};

const T0: &str = "2026-11-23T10:00:00.000Z";

/// Records as the store would return them, 100 ms apart from [`T0`].
fn stored(records: Vec<(String, String)>) -> Vec<Stored> {
    let t0 = humantime::parse_rfc3339(T0).unwrap();
    records
        .into_iter()
        .enumerate()
        .map(|(i, (kind, body))| Stored {
            record: Record {
                seq: i as u64 + 1,
                node: "gw".into(),
                time: humantime::format_rfc3339_millis(
                    t0 + std::time::Duration::from_millis(100 * i as u64),
                )
                .to_string(),
                kind,
                session: Some("s1".into()),
                body,
            },
            prev: Vec::new(),
            hash: Vec::new(),
        })
        .collect()
}

fn rec<T: Serialize>(kind: &str, body: T) -> (String, String) {
    (kind.into(), serde_json::to_string(&body).unwrap())
}

fn start(protocol: &str) -> (String, String) {
    rec(
        kind::SESSION_START,
        SessionStart {
            protocol: protocol.into(),
            resource: "web".into(),
            target: "agents".into(),
            client: "10.0.0.9:40000".into(),
            destination: "10.0.0.5:22".into(),
            process: ProcessRecord {
                pid: 42,
                uid: 1000,
                comm: "ssh".into(),
                exe: Some("/usr/bin/ssh".into()),
                ..Default::default()
            },
            identity: IdentityRecord {
                user: "deploy".into(),
                subject: None,
            },
            credentials: "inject".into(),
            conn_id: 7,
        },
    )
}

fn command(n: u64, text: &str, action: &str, rule: &str) -> (String, String) {
    rec(
        kind::COMMAND,
        CommandRecord {
            n,
            protocol: "exec".into(),
            text: text.into(),
            sha256: String::new(),
            action: action.into(),
            rule: rule.into(),
            reason: if rule.is_empty() {
                String::new()
            } else {
                "not here".into()
            },
        },
    )
}

fn terminal(channel: u32, command: Option<u64>, pty: bool) -> (String, String) {
    rec(
        kind::TERMINAL,
        TerminalRecord {
            channel,
            command,
            pty: pty.then(|| PtyInfo {
                term: "xterm-256color".into(),
                cols: 100,
                rows: 30,
            }),
            started: "2026-11-23T10:00:01.500Z".into(),
        },
    )
}

fn output(channel: u32, events: &[(f64, &str, &str)]) -> (String, String) {
    rec(
        kind::OUTPUT,
        OutputRecord {
            channel,
            events: events
                .iter()
                .map(|&(t, code, data)| OutputEvent {
                    t,
                    code: code.into(),
                    data: data.into(),
                })
                .collect(),
        },
    )
}

fn exit(channel: u32, status: Option<u32>, signal: Option<&str>) -> (String, String) {
    rec(
        kind::EXIT,
        ExitRecord {
            channel,
            command: None,
            status,
            signal: signal.map(str::to_string),
            bytes_out: 10,
            bytes_err: 5,
            recorded_bytes: 15,
            truncated: false,
            elapsed_ms: 12,
        },
    )
}

/// An exec of `uname -a`, a refused command, then a shell whose `ls` ends killed.
fn ssh_session() -> Vec<Stored> {
    stored(vec![
        start("ssh"),
        command(1, "uname -a", "allow", ""),
        terminal(0, Some(1), false),
        output(
            0,
            &[(0.01, "o", "Linux web 6.1\n"), (0.02, "e", "warn: x\n")],
        ),
        exit(0, Some(0), None),
        command(2, "rm -rf /", "deny", "no-rm"),
        terminal(1, None, true),
        output(
            1,
            &[
                (0.1, "o", "\x1b[?2004h\x1b]0;u@web\x07u@web:~$ "),
                (0.5, "o", "lss\x08 \x08"),
                (0.6, "r", "120x40"),
            ],
        ),
        command(3, "ls", "hold", "review"),
        rec(
            kind::APPROVAL,
            ApprovalRecord {
                event: "decided".into(),
                id: "a1".into(),
                state: "approved".into(),
                resource: "web".into(),
                rule: "review".into(),
                sha256: String::new(),
                decisions: vec![ApprovalDecision {
                    reviewer: "alice".into(),
                    approve: true,
                    reason: None,
                }],
                groups: Vec::new(),
                reason: None,
            },
        ),
        output(
            1,
            &[(
                1.0,
                "o",
                "\r\n\x1b[?2004l\r\x1b[01;34mdir\x1b[0m  file\r\n\x1b[",
            )],
        ),
        output(1, &[(1.1, "o", "0mu@web:~$ ")]),
        exit(1, None, Some("KILL")),
        rec(
            kind::SESSION_END,
            SessionEnd {
                commands: 3,
                bytes_to_upstream: 30,
                bytes_to_client: 200,
                elapsed_ms: 1300,
                error: None,
            },
        ),
    ])
}

#[test]
fn an_ssh_transcript_reads_as_a_timeline() {
    let text = replay(&ssh_session(), ReplayFormat::Transcript).unwrap();
    let expected = "\
# session s1 on node gw at 2026-11-23T10:00:00.000Z
# ssh resource `web` (10.0.0.5:22), from agents (pid 42, uid 1000, /usr/bin/ssh), user deploy

# [+0.100s] #1 allow
$ uname -a
# [+0.200s] channel 0: exec of #1, no pty
Linux web 6.1
warn: x
[exit 0]
# [+0.400s] channel 0 ended after 12 ms: 10 bytes out, 5 bytes err

# [+0.500s] #2 deny by rule \"no-rm\": not here
$ rm -rf /
# [+0.600s] channel 1: shell, pty xterm-256color 100x30
u@web:~$ ls

# [+0.800s] #3 hold by rule \"review\": not here
$ ls
# [+0.900s] approval a1 decided: approved; alice approved
# channel 1:

dir  file
u@web:~$ 
[exit signal KILL]
# [+1.200s] channel 1 ended after 12 ms: 10 bytes out, 5 bytes err

# [+1.300s] session ended after 1300 ms: 3 command(s), 30 bytes to the server, 200 to the agent
";
    assert_eq!(text, expected, "\n{text}");
}

#[test]
fn an_asciicast_replays_one_channel() {
    let records = ssh_session();
    // Default: the first channel with a pty.
    let cast = replay(&records, ReplayFormat::Asciicast { channel: None }).unwrap();
    let lines: Vec<serde_json::Value> = cast
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let started = humantime::parse_rfc3339("2026-11-23T10:00:01.500Z").unwrap();
    assert_eq!(
        lines[0],
        serde_json::json!({
            "version": 2, "width": 100, "height": 30,
            "timestamp": started.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            "env": { "TERM": "xterm-256color" },
            "title": "sluice session s1 channel 1",
        })
    );
    assert_eq!(cast.lines().next().unwrap().find("version"), Some(2));
    assert_eq!(
        lines[1..],
        [
            serde_json::json!([0.1, "o", "\x1b[?2004h\x1b]0;u@web\x07u@web:~$ "]),
            serde_json::json!([0.5, "o", "lss\x08 \x08"]),
            serde_json::json!([0.6, "r", "120x40"]),
            serde_json::json!([
                1.0,
                "o",
                "\r\n\x1b[?2004l\r\x1b[01;34mdir\x1b[0m  file\r\n\x1b["
            ]),
            serde_json::json!([1.1, "o", "0mu@web:~$ "]),
        ]
    );

    // An exec channel: 80x24, no TERM, stderr shown as output.
    let cast = replay(&records, ReplayFormat::Asciicast { channel: Some(0) }).unwrap();
    let lines: Vec<serde_json::Value> = cast
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        (&lines[0]["width"], &lines[0]["height"], &lines[0]["env"]),
        (
            &serde_json::json!(80),
            &serde_json::json!(24),
            &serde_json::Value::Null
        )
    );
    assert_eq!(lines[2], serde_json::json!([0.02, "o", "warn: x\n"]));
    assert_eq!(lines.len(), 3);
}

#[test]
fn replays_that_cannot_be_made_say_why() {
    let records = ssh_session();
    let err = replay(&records, ReplayFormat::Asciicast { channel: Some(9) }).unwrap_err();
    assert!(err.contains("no channel 9; its channels: 0, 1"), "{err}");
    let err = replay(&records, ReplayFormat::Psql).unwrap_err();
    assert!(
        err.contains("`ssh` session") && err.contains("asciicast"),
        "{err}"
    );
    let bare = stored(vec![start("ssh"), command(1, "id", "deny", "r")]);
    let err = replay(&bare, ReplayFormat::Asciicast { channel: None }).unwrap_err();
    assert!(err.contains("no terminal channel"), "{err}");
}

#[test]
fn a_reused_channel_number_replays_only_its_own_life() {
    let records = stored(vec![
        start("ssh"),
        terminal(0, None, true),
        output(0, &[(0.1, "o", "first")]),
        exit(0, Some(0), None),
        terminal(0, None, true),
        output(0, &[(0.1, "o", "second")]),
    ]);
    let cast = asciicast(&records, Some(0)).unwrap();
    assert!(cast.contains("first") && !cast.contains("second"), "{cast}");
}

#[test]
fn plain_text_survives_split_escape_sequences() {
    let mut out = String::new();
    let open = plain("a\x1b[1;3", &mut out);
    assert_eq!((out.as_str(), open), ("a", "\x1b[1;3"));
    let next = format!("{open}1mb\x1b(Bc\x1b]2;t\x1b\\d\r\n");
    let open = plain(&next, &mut out);
    assert_eq!((out.as_str(), open), ("abcd\n", ""));
}

/// A recording played by the asciinema player itself (`cargo xtask setup` installs it).
#[test]
fn asciinema_plays_a_recorded_channel() {
    let (audit, mut queued) = crate::services::audit::stream::tests::session();
    let (_, body) = start("ssh");
    audit.record(
        kind::SESSION_START,
        &serde_json::from_str::<SessionStart>(&body).unwrap(),
    );
    let pty = PtyInfo {
        term: "xterm".into(),
        cols: 80,
        rows: 24,
    };
    let mut r = StreamRecorder::start(audit, 0, None, Some(pty), 1 << 20);
    r.output(
        OutputCode::Stdout,
        b"$ echo hello from sluice\r\nhello from sluice, caf\xc3",
    );
    r.output(OutputCode::Stdout, b"\xa9\r\n");
    r.output(OutputCode::Stderr, b"warning: on stderr\r\n");
    r.resize(100, 30);
    r.finish(Some(0), None);
    let records = stored(
        queued
            .drain()
            .into_iter()
            .map(|(kind, _, body)| (kind, body))
            .collect(),
    );
    assert!(
        std::path::Path::new("/usr/bin/asciinema").exists(),
        "asciinema is missing: run `cargo xtask setup` (it installs Debian's asciinema)"
    );
    let cast = asciicast(&records, None).unwrap();
    let path = std::env::temp_dir().join(format!("sluice-cast-{}.cast", std::process::id()));
    std::fs::write(&path, &cast).unwrap();
    let played = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("asciinema cat {}", path.display()),
            "/dev/null",
        ])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&played.stdout);
    assert!(played.status.success(), "{played:?}");
    for expected in ["hello from sluice, café", "warning: on stderr"] {
        assert!(stdout.contains(expected), "{expected}: {stdout:?}");
    }
}
