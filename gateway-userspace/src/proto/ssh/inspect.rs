//! SSH's calls into the policy: exec commands and shell lines through the shell guardrails,
//! file transfers and shells through the resource's `ssh:` settings.

pub use super::line::{Action as LineAction, LineTracker, Mode};
use super::{
    Conn,
    settings::{Interactive, SshSettings},
};
use crate::{
    config::Action,
    inspect::{
        guardrails::shell::analyze_shell,
        policy::{Decision, Subject, decide_shell},
    },
};

pub struct ExecDecision {
    pub decision: Decision,
    /// The command is a shell reading its commands from stdin (`ssh host bash < script`):
    /// its input is decided line by line like an interactive shell's.
    pub reads_shell_from_stdin: bool,
    /// A file-transfer server (legacy scp, rsync): a binary protocol, relayed unmasked.
    pub transfer: bool,
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

pub fn decide_exec(conn: &Conn, settings: &SshSettings, text: &str) -> ExecDecision {
    if let Some(what) = shell_words(text).as_deref().and_then(transfer_kind) {
        return ExecDecision {
            decision: file_transfer(settings, what),
            reads_shell_from_stdin: false,
            transfer: true,
        };
    }
    let analysis = analyze_shell(text);
    let policy = conn.services.policy();
    let decision = if analysis.incomplete {
        unparseable(
            conn,
            "the command is incomplete (an open quote, heredoc or block)",
        )
    } else {
        decide_shell(&policy, &subject(conn), &analysis)
    };
    ExecDecision {
        decision,
        reads_shell_from_stdin: analysis.reads_session_input,
        transfer: false,
    }
}

/// A shell line: `None` while the command is incomplete (it goes on over the next line).
pub fn decide_line(conn: &Conn, text: &str) -> Option<Decision> {
    let analysis = analyze_shell(text);
    if analysis.incomplete {
        return None;
    }
    Some(decide_shell(
        &conn.services.policy(),
        &subject(conn),
        &analysis,
    ))
}

pub fn unparseable(conn: &Conn, why: &str) -> Decision {
    Decision {
        action: conn.services.policy().guardrails.unparseable,
        rule: "unparseable".into(),
        reason: format!("{why}, so it cannot be checked"),
    }
}

pub fn decide_shell_request(settings: &SshSettings) -> Decision {
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

pub fn decide_subsystem(settings: &SshSettings, name: &str) -> Decision {
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
}
