//! SSH's calls into the policy: exec commands and shell lines through the shell guardrails,
//! file transfers and shells through the resource's `ssh:` settings. The `_text` functions are
//! what `sluice policy test --shell` calls too, so the tester and the gateway cannot disagree.

pub(crate) use super::line::{Action as LineAction, LineTracker, Mode};
use super::{
    Conn,
    settings::{Interactive, SshSettings},
};
use crate::{
    config::{Action, Config},
    inspect::{
        guardrails::shell::{ShellAnalysis, ShellOrigin, ShellState, analyze_shell_in},
        policy::{Decision, Subject, decide_shell},
    },
};

pub struct ExecDecision {
    pub decision: Decision,
    /// The command is a shell reading its commands from stdin (`ssh host bash < script`):
    /// its input is decided line by line like an interactive shell's, starting from `session`.
    pub reads_shell_from_stdin: Option<LineSession>,
    /// A file-transfer server (legacy scp, rsync): a binary protocol, relayed unmasked.
    pub transfer: bool,
}

/// What the shell of a session remembers between its lines (working directory, aliases,
/// functions, files written) and how its lines arrive. A line's state is kept once it runs.
#[derive(Clone, Debug)]
pub struct LineSession {
    pub origin: ShellOrigin,
    pub state: ShellState,
}

impl LineSession {
    /// A shell started by a shell request: interactive (history expansion) on a terminal.
    pub fn shell(pty: bool) -> LineSession {
        LineSession {
            origin: ShellOrigin {
                terminal: pty,
                line: true,
                interactive: pty,
            },
            state: ShellState::default(),
        }
    }
}

fn subject(conn: &Conn) -> Subject<'_> {
    Subject {
        target: &conn.ctx.target,
        resource: &conn.ctx.resource.name,
    }
}

fn file_transfer(settings: &SshSettings, what: &str) -> Decision {
    Decision {
        action: settings.file_transfer,
        rule: "file-transfer".into(),
        reason: format!("{what} (ssh.file_transfer: {})", settings.file_transfer),
    }
}

/// What a file-transfer server command is, if `argv` is one (legacy scp, rsync, sftp-server).
fn transfer_kind(argv: &[String]) -> Option<&'static str> {
    let program = argv.first()?.rsplit('/').next()?;
    match program {
        "scp" if argv.iter().any(|a| a == "-t" || a == "-f") => Some("scp file transfer"),
        "rsync" if argv.iter().any(|a| a == "--server") => Some("rsync file transfer"),
        "sftp-server" | "internal-sftp" => Some("sftp file transfer"),
        _ => None,
    }
}

/// Decides an exec request. `sluice policy test --shell` calls the same function.
pub fn decide_exec_text(
    policy: &Config,
    subject: &Subject,
    settings: Option<&SshSettings>,
    text: &str,
    pty: bool,
) -> ExecDecision {
    if let (Some(settings), Some(what)) = (
        settings,
        shell_words(text).as_deref().and_then(transfer_kind),
    ) {
        return ExecDecision {
            decision: file_transfer(settings, what),
            reads_shell_from_stdin: None,
            transfer: true,
        };
    }
    // sshd hands the command to the shell as a C string: a NUL cuts it short there, so the
    // shell would run less than sluice read.
    if text.contains('\0') {
        return ExecDecision {
            decision: unparseable_in(policy, "the command contains a NUL byte"),
            reads_shell_from_stdin: None,
            transfer: false,
        };
    }
    let origin = ShellOrigin {
        terminal: pty,
        line: false,
        interactive: false,
    };
    let analysis = analyze_shell_in(text, origin, &ShellState::default());
    let decision = if analysis.incomplete {
        unparseable_in(
            policy,
            "the command is incomplete (an open quote, heredoc or block)",
        )
    } else {
        decide_shell(policy, subject, &analysis)
    };
    let reads_shell_from_stdin = analysis.reads_session_input.then_some(LineSession {
        origin: ShellOrigin {
            terminal: pty,
            line: true,
            // bash on a terminal, or `bash -i`, expands history in what it reads.
            interactive: pty || analysis.session_input_interactive,
        },
        state: analysis.state,
    });
    ExecDecision {
        decision,
        reads_shell_from_stdin,
        transfer: false,
    }
}

pub(crate) fn decide_exec(
    conn: &Conn,
    settings: &SshSettings,
    text: &str,
    pty: bool,
) -> ExecDecision {
    decide_exec_text(
        &conn.services.policy(),
        &subject(conn),
        Some(settings),
        text,
        pty,
    )
}

/// Decides one line of a session: `None` while the command is incomplete (it goes on over
/// the next line). `sluice policy test --shell --line` calls the same function.
pub fn decide_line_text(
    policy: &Config,
    subject: &Subject,
    session: &LineSession,
    text: &str,
) -> Option<(Decision, ShellAnalysis)> {
    let analysis = analyze_shell_in(text, session.origin, &session.state);
    if analysis.incomplete {
        return None;
    }
    Some((decide_shell(policy, subject, &analysis), analysis))
}

pub(crate) fn decide_line(
    conn: &Conn,
    session: &LineSession,
    text: &str,
) -> Option<(Decision, ShellAnalysis)> {
    decide_line_text(&conn.services.policy(), &subject(conn), session, text)
}

pub(crate) fn unparseable(conn: &Conn, why: &str) -> Decision {
    unparseable_in(&conn.services.policy(), why)
}

fn unparseable_in(policy: &Config, why: &str) -> Decision {
    Decision {
        action: policy.guardrails.unparseable,
        rule: "unparseable".into(),
        reason: format!("{why}, so it cannot be checked"),
    }
}

pub(crate) fn decide_shell_request(settings: &SshSettings) -> Decision {
    match settings.interactive {
        Interactive::Allow => Decision {
            action: Action::Allow,
            rule: "interactive".into(),
            reason: "interactive shell; each line is decided at Enter".into(),
        },
        Interactive::Deny => Decision {
            action: Action::Deny,
            rule: "interactive".into(),
            reason: "interactive shells are not allowed on this resource (ssh.interactive: deny); run commands as `ssh host 'command'`".into(),
        },
    }
}

pub(crate) fn decide_subsystem(settings: &SshSettings, name: &str) -> Decision {
    if name == "sftp" {
        file_transfer(settings, "sftp file transfer")
    } else {
        Decision {
            action: Action::Deny,
            rule: "subsystem".into(),
            reason: format!("subsystem `{name}` is not supported"),
        }
    }
}

/// Splits a command the way the remote shell would for simple commands; `None` when it is not
/// a plain word list (then it is no file-transfer server command either).
fn shell_words(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    for w in text.split_ascii_whitespace() {
        if w.bytes().any(|b| b"'\"\\$`;&|<>(){}*?[]~".contains(&b)) {
            return None;
        }
        words.push(w.to_string());
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        shell_words(s).unwrap()
    }

    #[test]
    fn file_transfer_servers_are_recognised() {
        assert_eq!(
            transfer_kind(&words("scp -t /tmp/x")),
            Some("scp file transfer")
        );
        assert_eq!(
            transfer_kind(&words("/usr/bin/scp -r -f dir")),
            Some("scp file transfer")
        );
        assert_eq!(
            transfer_kind(&words("rsync --server -vlogDtpre.iLsfxC . /tmp")),
            Some("rsync file transfer")
        );
        assert_eq!(transfer_kind(&words("scp a b")), None);
        assert!(shell_words("scp -t '/tmp/x'").is_none());
    }

    #[test]
    fn an_exec_with_a_nul_byte_is_unparseable() {
        let policy = Config::parse(
            "targets:\n  - { name: a, egress: deny }\nresources:\n  - { name: r, protocol: tcp, match: [{ address: 10.0.0.1, port: 22 }] }\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let subject = Subject {
            target: "a",
            resource: "r",
        };
        let d = decide_exec_text(&policy, &subject, None, "ls\0; rm -rf ~", false);
        assert_eq!(
            (d.decision.action, d.decision.rule.as_str()),
            (Action::Deny, "unparseable")
        );
        let d = decide_exec_text(&policy, &subject, None, "ls -la", false);
        assert_eq!(d.decision.action, Action::Allow);
    }
}
