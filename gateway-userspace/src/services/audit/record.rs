//! What the audit log records: one JSON body per record kind.
//!
//! Bodies are written once with serde_json and stored (and hashed) as that exact text; readers
//! parse them back with these same types. Every text that came from a response, a statement or
//! a parameter went through the masking engine first: raw sensitive values never reach the log.

use serde::{Deserialize, Serialize};

/// The `kind` column of each record.
pub mod kind {
    pub const SESSION_START: &str = "session_start";
    pub const COMMAND: &str = "command";
    pub const RESULT: &str = "result";
    pub const APPROVAL: &str = "approval";
    pub const SESSION_END: &str = "session_end";
    pub const TERMINAL: &str = "terminal";
    pub const OUTPUT: &str = "output";
    pub const EXIT: &str = "exit";
    /// Something a target's process tried that containment refused (or, in monitoring mode,
    /// reported): a datagram, a socket kind, ptrace, a protected file...
    pub const CONTAINMENT: &str = "containment";
}

/// The process that opened the connection (from the kernel's record and /proc).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    pub comm: String,
    pub exe: Option<String>,
    pub cmdline: Vec<String>,
}

/// Who the agent is: the database user it asked for and, with `agent_auth: oidc`, its verified
/// token subject.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    pub user: String,
    pub subject: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStart {
    /// `postgres`, `ssh`, ...
    pub protocol: String,
    pub resource: String,
    /// The intercepted target (cgroup) the connection came from.
    pub target: String,
    /// The agent's end of the redirected connection.
    pub client: String,
    /// Where the agent meant to connect.
    pub destination: String,
    pub process: ProcessRecord,
    pub identity: IdentityRecord,
    /// `inject` (the gateway's credential) or `passthrough`.
    pub credentials: String,
    /// Gateway-local connection id, as in the gateway's log lines.
    pub conn_id: u64,
}

/// One statement (or shell line, or request) and the policy's decision, recorded durably before
/// anything of it is forwarded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// Position in the session, from 1.
    pub n: u64,
    /// `simple`/`extended` for PostgreSQL.
    pub protocol: String,
    /// The command text, masked.
    pub text: String,
    /// SHA-256 (hex) of the exact, unmasked text: proves what ran without storing it.
    pub sha256: String,
    /// `allow`, `alert`, `hold` or `deny`.
    pub action: String,
    pub rule: String,
    pub reason: String,
}

/// What the agent received for one or more commands (a simple `Query`, or an extended-protocol
/// batch up to its `Sync`), after masking.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// The commands this answers (their `n`); empty when the batch only executed statements
    /// prepared earlier.
    pub commands: Vec<u64>,
    /// From forwarding to the final ReadyForQuery.
    pub elapsed_us: u64,
    pub sets: Vec<ResultSet>,
}

/// One statement's answer: its rows as the agent saw them, then its completion or error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultSet {
    /// Empty for statements that return no rows.
    pub columns: Vec<ResultColumn>,
    /// Captured rows; a cell is its text (binary-format cells as `\x` hex), `None` for NULL.
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows the agent received, captured or not.
    pub row_count: u64,
    /// Rows beyond the capture limit were counted but not kept.
    pub truncated: bool,
    /// CommandComplete tag (`SELECT 3`, `INSERT 0 1`); `None` if the statement failed.
    pub tag: Option<String>,
    pub error: Option<PgMessage>,
    pub notices: Vec<PgMessage>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultColumn {
    pub name: String,
    pub type_oid: u32,
}

/// An ErrorResponse or NoticeResponse (masked).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgMessage {
    /// `ERROR`, `NOTICE`, ... (non-localized).
    pub severity: String,
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

/// An approval request's life: requested, escalated, decided (approved, denied, timed out,
/// cancelled, abandoned).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub event: String,
    pub id: String,
    pub state: String,
    pub resource: String,
    pub rule: String,
    /// SHA-256 of the exact bytes the approval releases.
    pub sha256: String,
    /// Reviewers who decided, with their reasons.
    pub decisions: Vec<ApprovalDecision>,
    /// Groups notified (escalation).
    pub groups: Vec<String>,
    /// The final reason: a denial's words, the timeout, the cancellation.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    pub reviewer: String,
    pub approve: bool,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnd {
    pub commands: u64,
    pub bytes_to_upstream: u64,
    pub bytes_to_client: u64,
    pub elapsed_ms: u64,
    /// Why the session ended when it was not the agent's clean goodbye.
    pub error: Option<String>,
}

/// A shell or exec channel opened (SSH, or any protocol whose responses are byte streams).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalRecord {
    /// The channel's number in the session (numbers may be reused once a channel ended).
    pub channel: u32,
    /// The `n` of the command record an exec channel runs; `None` for a shell.
    pub command: Option<u64>,
    pub pty: Option<PtyInfo>,
    /// RFC 3339; the times of the channel's output events count from here.
    pub started: String,
}

/// The terminal the agent asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtyInfo {
    /// `TERM`, e.g. `xterm-256color`.
    pub term: String,
    pub cols: u32,
    pub rows: u32,
}

/// A batch of one channel's output events, as the agent received them (masked).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub channel: u32,
    pub events: Vec<OutputEvent>,
}

/// One output event, stored as the JSON array `[t, code, data]` (as in asciicast v2).
#[derive(Clone, Debug, PartialEq)]
pub struct OutputEvent {
    /// Seconds since the channel started (microsecond precision).
    pub t: f64,
    /// `o` stdout, `e` stderr, `r` resize (`data` is `COLSxROWS`).
    pub code: String,
    /// The text, masked; bytes that were not UTF-8 are U+FFFD.
    pub data: String,
}

impl Serialize for OutputEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.t, &self.code, &self.data).serialize(s)
    }
}

impl<'de> Deserialize<'de> for OutputEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (t, code, data) = <(f64, String, String)>::deserialize(d)?;
        Ok(OutputEvent { t, code, data })
    }
}

/// A channel ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub channel: u32,
    /// As in the channel's terminal record.
    pub command: Option<u64>,
    /// Exit status, when the remote sent one.
    pub status: Option<u32>,
    /// The signal that ended it (`KILL`, `TERM`, ...), when the remote sent one.
    pub signal: Option<String>,
    /// What the agent received on stdout and stderr, recorded or not.
    pub bytes_out: u64,
    pub bytes_err: u64,
    /// Of those, what the output records hold.
    pub recorded_bytes: u64,
    /// Output beyond the capture limit was counted but not recorded.
    pub truncated: bool,
    pub elapsed_ms: u64,
}
