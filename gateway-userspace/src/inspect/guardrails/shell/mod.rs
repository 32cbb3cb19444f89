//! Shell guardrails: a pure analysis of a shell command line (an SSH `exec` request, a line typed
//! into a session) into the programs it runs and rule findings.
//!
//! The policy layer maps findings to actions (see `policy::decide_shell`); nothing here decides.
//! Every rule matches on argv as the shell will build it, from brush-parser's POSIX/bash AST:
//! never on substrings of the text, so `echo "rm -rf /"` runs `echo` and `ls;rm -rf /` runs `rm`.
//!
//! # What is looked into
//! The whole AST (lists, pipelines, subshells, groups, `if`/`while`/`for`/`case` bodies, function
//! bodies), every command and process substitution (also in double quotes, assignments,
//! redirect targets, `${x:-...}` defaults and arithmetic), and the programs other programs run:
//! wrappers (`sudo`, `env`, `nice`, `timeout`, `xargs`, `find -exec`, `busybox`, ...) are
//! unwrapped, and `sh -c STRING`, `eval`, literal input piped or here-doc'ed into a shell, and
//! `alias`/`trap` bodies are parsed in turn, [`MAX_DEPTH`] levels deep.
//!
//! # Decisions worth knowing
//! - A command name that is not literal (`$CMD`, `"$(echo rm)"`) is [`ShellRuleId::DynamicCommand`]:
//!   what it runs is unknown, so it fails closed. So is a shell reading commands from a file,
//!   `source`, or `eval` of anything not literal.
//! - Paths are judged lexically and only when absolute (or `~`): the working directory is
//!   unknown, so `cd /etc && echo x > passwd` is not seen as a write to `/etc`.
//! - SQL that a client runs (`psql -c`, here-documents, `echo ... | psql`) goes through the SQL
//!   guardrails, and its findings carry the SQL ids (`drop`, ...), so one policy rule covers
//!   both. SQL sluice cannot see (`psql -f file`, `cmd | psql`) is [`ShellRuleId::OpaqueSql`].
//! - Input that ends inside a quote, a here-document, after `|`, `&&` or `\`, or in an open
//!   `if`/`for`/`{`/`(` is `incomplete`, not unparseable: an interactive shell would ask for more.

mod cluster;
mod editing;
mod effects;
mod interp;
mod names;
mod paths;
mod readonly;
mod rules;
mod shutdown;
mod sql_client;
mod state;
mod stdout;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_attacks;
#[cfg(test)]
mod tests_parse;
mod walk;
mod words;
mod wrappers;

use std::{fmt, io::Cursor, str::FromStr};

use brush_parser::{ParseError, Parser, ast};
use serde::{Deserialize, Serialize};

pub use self::state::ShellState;
use super::{RuleId, UnknownRuleId};

/// A shell guardrail; the serde and `Display` form is the stable id used in policies and audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShellRuleId {
    /// Recursive `rm` (or `find -delete`) of `/`, a system directory, `~`, `.`, `*`, or of
    /// operands only known at run time.
    RmRf,
    /// Creating or wiping filesystems and partition tables (`mkfs*`, `wipefs -a`, `fdisk`, ...).
    Mkfs,
    /// Writing to a device node: `dd of=/dev/sda`, `> /dev/sda`, `tee /dev/nvme0n1`.
    DdDevice,
    /// Stopping or restarting the host: `shutdown`, `reboot`, `systemctl poweroff`, `kill 1`.
    Shutdown,
    /// Deleting cluster objects: `kubectl delete`, `oc delete`, `helm uninstall`.
    KubectlDelete,
    /// Running downloaded code: `curl ... | sh`, `bash <(curl ...)`, `bash -c "$(curl ...)"`.
    PipeToShell,
    /// Writing under `/etc`: redirects, `tee`, `cp`/`mv`/`install`/`ln`/`rsync`, `sed -i`, ...
    WriteEtc,
    /// A database client runs SQL that sluice cannot see (`psql -f file`, `cmd | psql`).
    OpaqueSql,
    /// What runs is not known: a command name built at run time, `eval` of an expansion.
    DynamicCommand,
    /// Code sluice cannot judge: an interpreter's inline program (`python3 -c`, `perl -e`,
    /// `node -e`, an awk program that runs commands or writes files), a script file (`sh x.sh`,
    /// `source x`), a program read from standard input (`python3 -`), a file this input wrote.
    OpaqueCode,
    /// A program that takes commands from the terminal, key by key or line by line, in a way
    /// sluice does not follow: a REPL (`python3`, `psql`), an editor, `less FILE`.
    InteractiveProgram,
    /// A function that starts copies of itself in the background or a pipeline.
    ForkBomb,
}

impl ShellRuleId {
    pub const ALL: [ShellRuleId; 12] = [
        ShellRuleId::RmRf,
        ShellRuleId::Mkfs,
        ShellRuleId::DdDevice,
        ShellRuleId::Shutdown,
        ShellRuleId::KubectlDelete,
        ShellRuleId::PipeToShell,
        ShellRuleId::WriteEtc,
        ShellRuleId::OpaqueSql,
        ShellRuleId::DynamicCommand,
        ShellRuleId::OpaqueCode,
        ShellRuleId::InteractiveProgram,
        ShellRuleId::ForkBomb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ShellRuleId::RmRf => "rm-rf",
            ShellRuleId::Mkfs => "mkfs",
            ShellRuleId::DdDevice => "dd-device",
            ShellRuleId::Shutdown => "shutdown",
            ShellRuleId::KubectlDelete => "kubectl-delete",
            ShellRuleId::PipeToShell => "pipe-to-shell",
            ShellRuleId::WriteEtc => "write-etc",
            ShellRuleId::OpaqueSql => "opaque-sql",
            ShellRuleId::DynamicCommand => "dynamic-command",
            ShellRuleId::OpaqueCode => "opaque-code",
            ShellRuleId::InteractiveProgram => "interactive-program",
            ShellRuleId::ForkBomb => "fork-bomb",
        }
    }
}

impl fmt::Display for ShellRuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ShellRuleId {
    type Err = UnknownRuleId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ShellRuleId::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRuleId(s.to_owned()))
    }
}

/// Shell rule ids as policies write them (the order of [`ShellRuleId::ALL`]). They share the
/// `guardrails:` list of a rule with the SQL ids ([`super::RULE_IDS`]).
pub const SHELL_RULE_IDS: &[&str] = &[
    "rm-rf",
    "mkfs",
    "dd-device",
    "shutdown",
    "kubectl-delete",
    "pipe-to-shell",
    "write-etc",
    "opaque-sql",
    "dynamic-command",
    "opaque-code",
    "interactive-program",
    "fork-bomb",
];

/// The rule of a shell finding: a shell rule, or a SQL rule that fired on SQL the command line
/// hands to a database client. Serialises as the bare id (`"rm-rf"`, `"drop"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum ShellRule {
    Shell(ShellRuleId),
    Sql(RuleId),
}

impl ShellRule {
    /// The id policies use in `guardrails:`.
    pub fn as_str(self) -> &'static str {
        match self {
            ShellRule::Shell(r) => r.as_str(),
            ShellRule::Sql(r) => r.as_str(),
        }
    }
}

impl fmt::Display for ShellRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ShellRuleId> for ShellRule {
    fn from(r: ShellRuleId) -> Self {
        ShellRule::Shell(r)
    }
}

impl From<RuleId> for ShellRule {
    fn from(r: RuleId) -> Self {
        ShellRule::Sql(r)
    }
}

/// One rule that matched somewhere in the command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShellFinding {
    pub rule: ShellRule,
    /// Human readable, names what was found, e.g. `rm -r on / (the root directory)`.
    pub reason: String,
}

/// What a command does to the host, as far as sluice can prove. Ordered: a command line is as
/// much as its most doubtful part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShellKind {
    /// On the read-only list, in a form that only reads.
    Read,
    /// Known to change something: a redirect to a file, `rm`, `sed -i`, `systemctl restart`.
    Write,
    /// Not known to be read-only: a program not on the list, a form of it the list does not
    /// know, a program reached by a path or a changed `PATH`, code sluice cannot see.
    Unknown,
}

impl ShellKind {
    pub const ALL: [ShellKind; 3] = [ShellKind::Read, ShellKind::Write, ShellKind::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            ShellKind::Read => "read",
            ShellKind::Write => "write",
            ShellKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ShellKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Shell command kinds as policies write them in a rule's `shell:` list.
pub const SHELL_KINDS: &[&str] = &["read", "write", "unknown"];

/// One thing a command line runs: a program (wrappers included, each its own run), or
/// something the shell itself does (`program: None`: a redirect to a file, an assignment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShellRun {
    pub program: Option<String>,
    pub kind: ShellKind,
    /// Why it is not a read, for reviewers and the agent (empty for reads).
    pub reason: String,
}

/// Where a command line comes from; it changes what some programs do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShellOrigin {
    /// The channel has a terminal: pagers and REPLs are interactive, keys reach programs.
    pub terminal: bool,
    /// A line of a session whose later input sluice decides line by line (a shell reading the
    /// session's input): what a program reads from the terminal is decided as later lines.
    /// An exec request's input is relayed as it is: a program reading it reads unseen input.
    pub line: bool,
    /// An interactive shell reads the line: history expansion (`!!`, `^a^b`) applies.
    pub interactive: bool,
}

/// The result of analysing one command line (possibly several commands).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShellAnalysis {
    /// Program names (basename, after unwrapping wrappers) of every simple command, in order.
    /// Wrappers are listed too (`sudo rm x` is `["sudo", "rm"]`), so a policy can name them.
    pub commands: Vec<String>,
    /// Everything the line runs with its kind, in order (see [`ShellRun`]).
    pub runs: Vec<ShellRun>,
    pub findings: Vec<ShellFinding>,
    /// The parser's message when the text does not parse (and is not merely incomplete).
    pub parse_error: Option<String>,
    /// The input is a valid prefix that needs more lines (open quote, here-document, trailing
    /// `\`, `|`, `&&`, open `if`/`for`/`{`/`(`...): an interactive shell would print its PS2
    /// prompt. Nothing else is filled in; the caller waits for the rest.
    pub incomplete: bool,
    /// A shell on this line reads its commands from the session's own input (`bash`,
    /// `sudo sh -s`): that input is shell code too, for the caller to decide line by line.
    pub reads_session_input: bool,
    /// The shell reading the session's input is interactive (`bash -i`): its lines are read
    /// with history expansion.
    pub session_input_interactive: bool,
    /// Why the shell will not run the line as written (history expansion, `!!`, `^a^b`): the
    /// session refuses it as `uncertain-line`.
    pub uncertain: Option<String>,
    /// The line changes how the terminal or the shell reads later lines (`stty erase`, `bind`,
    /// `set -o vi`, `INPUTRC=`, another shell's line editor): sluice's model of the line
    /// editor no longer holds for the rest of the session.
    pub line_editing: Option<String>,
    /// The shell's state after the line, if it runs (working directory, aliases, functions,
    /// files written...), for the session's next line.
    #[serde(skip)]
    pub state: ShellState,
}

impl ShellAnalysis {
    /// The kind of the whole line: its most doubtful run (`read` for a line that runs nothing).
    pub fn kind(&self) -> ShellKind {
        self.runs
            .iter()
            .map(|r| r.kind)
            .max()
            .unwrap_or(ShellKind::Read)
    }

    pub fn has(&self, rule: impl Into<ShellRule>) -> bool {
        let rule = rule.into();
        self.findings.iter().any(|f| f.rule == rule)
    }

    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.parse_error.is_none() && !self.incomplete
    }
}

/// Longer command lines are not parsed: they yield `unparseable`. Interactive lines and SSH
/// `exec` requests are short; a script this long should be uploaded and reviewed as a file.
pub const MAX_SHELL_LEN: usize = 64 * 1024;

/// How many times a string may be handed back to a shell (`sh -c`, `eval`, `$(...)`, wrappers
/// running wrappers) before the analysis gives up with `unparseable`.
pub const MAX_DEPTH: usize = 8;

/// Texts up to this length are analysed on the caller's stack. brush's tokenizer and PEG parser
/// recurse once per nesting level (`$(`, `(`, `if`) without a bound: in a debug build 100
/// nested `if`s (2 KiB of text) overflow a 2 MiB tokio worker stack and abort the gateway.
/// Longer lines get a short-lived thread with a stack sized for them (tens of microseconds).
const CALLER_STACK_LEN: usize = 256;

/// Stack for longer texts: a nesting level costs 9 or more bytes of input and up to ~20 KiB of
/// stack (debug build), so 4 KiB per input byte, plus headroom. Only touched pages are committed.
fn big_stack_size(len: usize) -> usize {
    (16 << 20) + len * 4096
}

/// Analyse a shell command line as an exec request without a terminal, in a fresh shell (its
/// working directory is the home directory). Pure: the same text always gives the same analysis.
pub fn analyze_shell(text: &str) -> ShellAnalysis {
    analyze_shell_in(text, ShellOrigin::default(), &ShellState::default())
}

/// Analyse a shell command line from `origin`, in a shell whose state earlier lines of the
/// session left (`state`). Pure; the state after the line is in [`ShellAnalysis::state`].
pub fn analyze_shell_in(text: &str, origin: ShellOrigin, state: &ShellState) -> ShellAnalysis {
    if text.len() > MAX_SHELL_LEN {
        return refused(
            format!(
                "command line of {} bytes is longer than the {MAX_SHELL_LEN} bytes analysed",
                text.len()
            ),
            state,
        );
    }
    if text.len() <= CALLER_STACK_LEN {
        return analyze_guarded(text, origin, state);
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("sluice-shell-analyze".into())
            .stack_size(big_stack_size(text.len()))
            .spawn_scoped(scope, || analyze_guarded(text, origin, state))
            .map_err(|e| format!("cannot start the analysis thread: {e}"))
            .and_then(|t| t.join().map_err(|_| "the analysis panicked".to_owned()))
            .unwrap_or_else(|e| refused(e, state))
    })
}

/// A panic inside the parser is a bug there, not a reason to take the session down: report the
/// line as unparseable, which the policy never allows.
fn analyze_guarded(text: &str, origin: ShellOrigin, state: &ShellState) -> ShellAnalysis {
    std::panic::catch_unwind(|| analyze_unguarded(text, origin, state))
        .unwrap_or_else(|_| refused("the shell parser panicked".to_owned(), state))
}

fn analyze_unguarded(text: &str, origin: ShellOrigin, state: &ShellState) -> ShellAnalysis {
    match parse(text) {
        Parsed::Program(program) => {
            let mut walker = walk::Walker::new(origin, state.clone());
            if origin.interactive {
                editing::history_expansion(&mut walker, text);
            }
            walker.walk(text, &program, &walk::Input::Terminal);
            walker.into_analysis()
        }
        Parsed::Incomplete => ShellAnalysis {
            incomplete: true,
            state: state.clone(),
            ..ShellAnalysis::default()
        },
        Parsed::Error(e) => refused(e, state),
    }
}

/// [`analyze_shell_in`] without its guard: a panic in the parser or the walk propagates (the
/// fuzz targets want to see it; the gateway turns it into `unparseable`).
#[doc(hidden)]
pub fn analyze_shell_unguarded(
    text: &str,
    origin: ShellOrigin,
    state: &ShellState,
) -> ShellAnalysis {
    if text.len() > MAX_SHELL_LEN {
        return analyze_shell_in(text, origin, state);
    }
    if text.len() <= CALLER_STACK_LEN {
        return analyze_unguarded(text, origin, state);
    }
    std::thread::scope(|scope| {
        let t = std::thread::Builder::new()
            .stack_size(big_stack_size(text.len()))
            .spawn_scoped(scope, || analyze_unguarded(text, origin, state))
            .expect("a thread for the analysis");
        t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// One unparseable line.
fn refused(why: String, state: &ShellState) -> ShellAnalysis {
    ShellAnalysis {
        findings: vec![ShellFinding {
            rule: ShellRule::Sql(RuleId::Unparseable),
            reason: format!("the command line could not be parsed, so it cannot be checked: {why}"),
        }],
        parse_error: Some(why),
        state: state.clone(),
        ..ShellAnalysis::default()
    }
}

enum Parsed {
    Program(ast::Program),
    Incomplete,
    Error(String),
}

/// Parses a command line with bash syntax. The final newline the Enter key adds is not part of
/// the command: without it, a trailing `\` is an unterminated escape (more input wanted) rather
/// than a line continuation that the tokenizer silently drops.
fn parse(text: &str) -> Parsed {
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if let Some(why) = too_nested_to_parse(text) {
        return Parsed::Error(why);
    }
    match parse_program(text) {
        Ok(p) => Parsed::Program(p),
        Err(e) if wants_more(&e) => {
            // brush's own shell stops here (bash's PS2 rule), but brush also reports a stray
            // `fi`, `done` or `}` at the very end as "end of input". A real prefix stays one
            // when a command follows on a new line: the parser then succeeds, still wants
            // more, or trips over the new command; it never trips inside the original text.
            match parse_program(&format!("{text}\n:")) {
                Err(ParseError::ParsingNear(at)) if at.index < text.chars().count() => {
                    Parsed::Error(format!(
                        "syntax error at line {} col {}",
                        at.line, at.column
                    ))
                }
                Err(ParseError::ParsingNear(at)) if at.index == text.chars().count() => {
                    Parsed::Error("syntax error at the end of the line".to_owned())
                }
                _ => Parsed::Incomplete,
            }
        }
        Err(e) => Parsed::Error(e.to_string()),
    }
}

/// Parentheses (quoted or not) nested deeper than this are not parsed.
const MAX_PAREN_DEPTH: usize = 12;
/// `case` commands nested deeper than this are not parsed.
const MAX_CASE_DEPTH: usize = 6;

/// brush's parser backtracks exponentially on nested unclosed parentheses and `case` patterns
/// (`(( ((((((((((((x` or `case a in b) case a in b) ...` took seconds to minutes; found by
/// fuzzing). Nobody types that deep: such lines are refused before parsing. Quotes are not
/// skipped, so this counts at least as deep as the parser would go.
fn too_nested_to_parse(text: &str) -> Option<String> {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in text.chars() {
        match c {
            '(' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if max > MAX_PAREN_DEPTH {
        return Some(format!(
            "parentheses nested {max} deep (more than the {MAX_PAREN_DEPTH} analysed)"
        ));
    }
    let (mut cases, mut max_cases) = (0usize, 0usize);
    for word in text.split(|c: char| c.is_whitespace() || ";&|()`".contains(c)) {
        match word {
            "case" => {
                cases += 1;
                max_cases = max_cases.max(cases);
            }
            "esac" => cases = cases.saturating_sub(1),
            _ => {}
        }
    }
    if max_cases > MAX_CASE_DEPTH {
        return Some(format!(
            "case commands nested {max_cases} deep (more than the {MAX_CASE_DEPTH} analysed)"
        ));
    }
    // brush's tokenizer loops forever, growing memory, on a here-document operator followed
    // by a control character such as a carriage return (`cat <<\r;; ls `; found by fuzzing).
    let chars: Vec<char> = text.chars().collect();
    for (i, w) in chars.windows(2).enumerate() {
        if w == ['<', '<'] && chars.get(i + 2) != Some(&'<') {
            let after = chars[i + 2..]
                .iter()
                .skip_while(|c| **c == '-')
                .find(|c| **c != ' ' && **c != '\t');
            if after.is_some_and(|c| c.is_control() && *c != '\n') {
                return Some("a here-document operator followed by a control character".into());
            }
        }
    }
    // brush unwraps a redirect's file-descriptor number as a 32-bit integer (`99999999999>x`
    // panicked inside it; found by fuzzing).
    let b = text.as_bytes();
    let mut run = 0usize;
    for (i, &c) in b.iter().enumerate() {
        if c.is_ascii_digit() {
            run += 1;
        } else {
            if run >= 10 && matches!(c, b'<' | b'>') && i >= run {
                return Some("a file descriptor number too large for a redirect".into());
            }
            run = 0;
        }
    }
    None
}

fn parse_program(text: &str) -> Result<ast::Program, ParseError> {
    Parser::new(Cursor::new(text.as_bytes()), &words::options()).parse_program()
}

/// What brush's interactive shell reads as "needs another line": the tokenizer ran out inside a
/// quote, escape, substitution or here-document, or the grammar ran out of tokens.
fn wants_more(e: &ParseError) -> bool {
    match e {
        ParseError::Tokenizing { inner, .. } => inner.is_incomplete(),
        ParseError::ParsingAtEndOfInput => true,
        ParseError::ParsingNear(_) => false,
    }
}
