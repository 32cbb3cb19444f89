//! What the approval API shows about requests and grants (the JSON of the HTTP API, the CLI,
//! the web page and the notifications).

use serde::{Deserialize, Serialize};

/// Where a request stands. Only `Pending` can change; every other state is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    /// Enough reviewers approved; the held bytes were released to the upstream.
    Approved,
    Denied,
    /// Nobody decided before the timeout (the agent got an error).
    Expired,
    /// The gateway stopped (or restarted) while the request was pending; nothing ran.
    Abandoned,
    /// The agent went away or cancelled the statement while it was held.
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Expired => "expired",
            State::Abandoned => "abandoned",
            State::Cancelled => "cancelled",
        }
    }
}

/// Who asked: the workload (from the kernel's record of the connecting process) and, when the
/// agent presented a token, its OIDC subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    pub target: String,
    pub pid: u32,
    pub uid: u32,
    pub exe: Option<String>,
    pub cgroup_id: u64,
    /// The OIDC subject of the agent's token, if it presented one.
    pub subject: Option<String>,
    /// The audit log's session id (`sluice audit replay SESSION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// What the statement would do, computed before anyone decides.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    /// The planner's estimate of rows (top plan node), from `EXPLAIN (FORMAT JSON)`.
    pub estimated_rows: Option<f64>,
    /// The plan, as PostgreSQL returned it.
    pub plan: Option<serde_json::Value>,
    /// Rows affected when the statement ran inside `BEGIN ... ROLLBACK` (policy opt-in).
    pub rows_affected: Option<u64>,
    /// Why a part of the preview is missing (it never blocks the request).
    pub note: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Deny,
}

/// One reviewer's decision on a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The reviewer's subject (OIDC `sub`, or the static token's configured name).
    pub reviewer: String,
    pub decision: Decision,
    pub reason: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// A request for approval as reviewers see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalView {
    pub id: String,
    pub state: State,
    /// RFC 3339 timestamps.
    pub created_at: String,
    pub expires_at: String,
    pub decided_at: Option<String>,
    pub requester: Requester,
    pub resource: String,
    /// `postgres`, later `ssh` and `http`.
    pub protocol: String,
    /// The exact command text that will run if approved.
    pub command: String,
    /// Bound parameter values (extended protocol), as text; `None` is SQL NULL.
    pub parameters: Vec<Option<String>>,
    /// SHA-256 (hex) of the exact bytes that will be forwarded on approval.
    pub sha256: String,
    /// The policy rule that held the command, and its reason.
    pub rule: String,
    pub reason: String,
    pub preview: Option<Preview>,
    /// Groups whose members may decide now (grows when the request escalates).
    pub groups: Vec<String>,
    /// How many distinct approvals are needed.
    pub required: u32,
    pub votes: Vec<Vote>,
    /// The final reason: the denying reviewer's words, the timeout, the abandonment.
    pub decision_reason: Option<String>,
    /// The just-in-time grant created with the approval, if any.
    pub grant: Option<String>,
}

/// What a just-in-time grant covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantScope {
    /// Statements of the same shape (literals replaced by placeholders).
    Fingerprint,
    /// Anything the same policy rule holds.
    Rule,
}

/// A time-limited permission created by a reviewer: held commands from this requester on this
/// resource that match it are allowed without a new request until it expires or is revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    pub id: String,
    /// The requester identity it is bound to (OIDC subject, or `target/uid`).
    pub identity: String,
    pub resource: String,
    pub scope: GrantScope,
    /// The fingerprint or the rule name.
    pub pattern: String,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_by: Option<String>,
    pub uses: u64,
}

/// Body of `POST /api/v1/approvals/{id}/approve` and `.../deny`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    #[serde(default)]
    pub reason: Option<String>,
    /// Approve only: also grant this for a while (`{"duration": "1h", "scope": "fingerprint"}`).
    #[serde(default)]
    pub grant: Option<GrantRequest>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// humantime, e.g. `1h`, `30m`.
    pub duration: String,
    pub scope: GrantScope,
}

/// An API error body: `{"error": "..."}` with the HTTP status saying which kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}
