//! Approval holds: a held command waits in the gateway until reviewers decide.
//!
//! The session that holds a command keeps the exact bytes and waits on a [`Ticket`]; nothing
//! reaches the upstream meanwhile. The broker only records votes and decides; the waiting
//! session runs the timers (escalation, timeout) so that a request can never outlive the
//! connection it belongs to. An approval is single use: it releases one batch of bytes whose
//! SHA-256 was fixed when the request was opened, and the session checks that hash again
//! before forwarding.

pub mod api;
pub mod fingerprint;
pub mod model;
pub mod notify;
pub mod settings;
pub mod socket;
pub mod store;

use std::{
    collections::{HashMap, VecDeque},
    path::Path,
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use model::{
    ApprovalView, Decision, GrantRequest, GrantScope, GrantView, Preview, Requester, State, Vote,
};
use settings::{ApprovalPolicy, ApprovalSettings, Reviewer};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::{conn::ConnCtx, gate::masked_by, inspect::masking::MaskingEngine};

/// Decided requests kept in memory for the API (older ones are read from the store).
const RECENT: usize = 1000;
/// Longest grant a reviewer may give.
const MAX_GRANT: Duration = Duration::from_secs(24 * 3600);
/// Longest reason kept (reviewers' words go into notifications and the audit log).
const MAX_REASON: usize = 2000;

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Lowercase hex of `bytes` (ids, hashes, signatures, binary parameters).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The bytes of lowercase or uppercase hex; `None` for anything else.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// A random id (requests, grants, audit sessions).
pub fn new_id() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("OS randomness");
    hex(&b)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The approval policy for a rule: its own, else the gateway's default.
pub fn policy_for(services: &crate::services::Services, rule: &str) -> Option<ApprovalPolicy> {
    let config = services.policy();
    config
        .rules
        .iter()
        .find(|r| r.name == rule)
        .and_then(|r| r.approval.clone())
        .or_else(|| config.approvals.as_ref().and_then(|a| a.default.clone()))
}

fn mask_parameters(masker: &MaskingEngine, params: &[Option<String>]) -> Vec<Option<String>> {
    params
        .iter()
        .map(|p| p.as_deref().map(|v| masked_by(masker, v)))
        .collect()
}

/// A preview's plan and notes hold values of the statement too (`Filter: (email = '...')`,
/// `invalid input syntax for type integer: "..."`): every string in them is masked.
fn mask_preview(masker: &MaskingEngine, mut p: Preview) -> Preview {
    fn walk(masker: &MaskingEngine, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = masked_by(masker, s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|i| walk(masker, i)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|i| walk(masker, i)),
            _ => {}
        }
    }
    if let Some(plan) = &mut p.plan {
        walk(masker, plan);
    }
    p.note = p.note.map(|n| masked_by(masker, &n));
    p
}

/// Masks what a view shows of a command: for stores written before views were masked.
pub fn mask_view(masker: &MaskingEngine, mut v: ApprovalView) -> ApprovalView {
    v.command = masked_by(masker, &v.command);
    v.parameters = mask_parameters(masker, &v.parameters);
    v.reason = masked_by(masker, &v.reason);
    v.preview = v.preview.map(|p| mask_preview(masker, p));
    v
}

/// How a held command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Approved { reviewers: Vec<String> },
    Denied { reviewer: String, reason: String },
    Expired { after: Duration },
    Abandoned { reason: String },
    Cancelled,
}

/// What a session asks the broker to hold. The command, parameters, reason and preview are
/// masked by the broker before anyone (the API, notifications, the store) sees them; only
/// `payload`, the exact bytes, stays raw, and it stays in the waiting session.
pub struct HoldRequest<'a> {
    pub ctx: &'a ConnCtx,
    /// The agent's OIDC subject, when it presented a token.
    pub subject: Option<String>,
    /// The audit session the request comes from.
    pub session: Option<String>,
    pub protocol: &'static str,
    pub rule: String,
    pub reason: String,
    pub command: String,
    pub parameters: Vec<Option<String>>,
    /// The exact bytes that will be forwarded on approval.
    pub payload: &'a [u8],
    /// The command's shape, for just-in-time grants.
    pub fingerprint: String,
    pub policy: ApprovalPolicy,
    pub preview: Option<Preview>,
    /// The masking engine in force (as the audit log masks the same command).
    pub masker: &'a MaskingEngine,
}

impl HoldRequest<'_> {
    /// The requester identity grants are bound to and self-approval is checked against.
    pub fn identity(&self) -> String {
        identity_of(self.subject.as_deref(), self.ctx)
    }
}

pub fn identity_of(subject: Option<&str>, ctx: &ConnCtx) -> String {
    match subject {
        Some(s) => s.to_string(),
        None => format!("{}/uid:{}", ctx.target, ctx.process.uid),
    }
}

/// The answer to [`Broker::open`].
pub enum Opened {
    Waiting(Ticket),
    /// Refused at once (outside approval hours, too many pending, store failure).
    Refused {
        reason: String,
    },
}

/// A pending request, owned by the waiting session.
pub struct Ticket {
    pub id: String,
    pub sha256: String,
    rx: oneshot::Receiver<Outcome>,
    opened: Instant,
    timeout: Duration,
    escalations: Vec<Duration>,
}

struct Pending {
    policy: ApprovalPolicy,
    identity: String,
    fingerprint: String,
    tx: Option<oneshot::Sender<Outcome>>,
    /// Approvals with the grant each asked for.
    grant_asks: Vec<Option<GrantRequest>>,
}

struct Grant {
    view: GrantView,
    expires: SystemTime,
}

#[derive(Default)]
struct Inner {
    views: HashMap<String, ApprovalView>,
    pending: HashMap<String, Pending>,
    /// Decided ids, oldest first, to bound `views`.
    decided: VecDeque<String>,
    grants: HashMap<String, Grant>,
}

/// Why a reviewer's call was refused (the API maps these to HTTP statuses).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecideError {
    #[error("no approval request `{0}`")]
    NotFound(String),
    #[error("the request is {0}, not pending")]
    NotPending(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
}

/// Events for notifiers (webhooks, Slack).
#[derive(Clone, Debug)]
pub enum BrokerEvent {
    Requested(ApprovalView),
    Escalated {
        view: ApprovalView,
        groups: Vec<String>,
    },
    Decided(ApprovalView),
}

pub struct Broker {
    inner: Mutex<Inner>,
    store: Mutex<store::Store>,
    max_pending: usize,
    events: Option<Box<dyn Fn(BrokerEvent) + Send + Sync>>,
}

impl Broker {
    /// Opens the store; requests left pending by a previous gateway become abandoned.
    pub fn start(
        settings: &ApprovalSettings,
        store_path: &Path,
        masker: &MaskingEngine,
    ) -> Result<Broker, store::StoreError> {
        let store = store::Store::open(store_path, masker)?;
        let loaded = store.load(&now_rfc3339())?;
        for v in &loaded.abandoned {
            warn!(event = "approval_abandoned", id = %v.id, resource = %v.resource, rule = %v.rule,
                  "request left pending by a previous gateway marked abandoned");
        }
        let mut inner = Inner::default();
        for v in loaded.recent.into_iter().rev() {
            inner.decided.push_back(v.id.clone());
            inner.views.insert(v.id.clone(), v);
        }
        for g in loaded.grants {
            let expires = humantime::parse_rfc3339(&g.expires_at).unwrap_or(SystemTime::now());
            inner
                .grants
                .insert(g.id.clone(), Grant { view: g, expires });
        }
        Ok(Broker {
            inner: Mutex::new(inner),
            store: Mutex::new(store),
            max_pending: settings.max_pending,
            events: None,
        })
    }

    /// Sends every request, escalation and decision to `sink` (notifiers).
    pub fn with_events(mut self, sink: impl Fn(BrokerEvent) + Send + Sync + 'static) -> Self {
        self.events = Some(Box::new(sink));
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, view: &ApprovalView) {
        if let Err(e) = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(view)
        {
            error!(event = "approval_store_failed", id = %view.id, error = %e, "cannot persist approval request");
        }
    }

    fn persist_grant(&self, grant: &GrantView) {
        if let Err(e) = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put_grant(grant)
        {
            error!(event = "approval_store_failed", id = %grant.id, error = %e, "cannot persist grant");
        }
    }

    fn emit(&self, event: BrokerEvent) {
        if let Some(sink) = &self.events {
            sink(event);
        }
    }

    /// A live grant covering this command, if any (its use is counted).
    pub fn grant_for(
        &self,
        identity: &str,
        resource: &str,
        rule: &str,
        fingerprint: &str,
    ) -> Option<String> {
        let now = SystemTime::now();
        let mut inner = self.lock();
        let grant = inner.grants.values_mut().find(|g| {
            g.view.revoked_by.is_none()
                && g.expires > now
                && g.view.identity == identity
                && g.view.resource == resource
                && match g.view.scope {
                    GrantScope::Fingerprint => g.view.pattern == fingerprint,
                    GrantScope::Rule => g.view.pattern == rule,
                }
        })?;
        grant.view.uses += 1;
        let view = grant.view.clone();
        drop(inner);
        self.persist_grant(&view);
        Some(view.id)
    }

    /// Opens a request for a held command (check [`Broker::grant_for`] first).
    pub fn open(&self, req: HoldRequest<'_>) -> Opened {
        let identity = req.identity();
        let now = SystemTime::now();
        if let Some(hours) = &req.policy.hours {
            let unix = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            if !hours.contains(unix) {
                return Opened::Refused {
                    reason: "approval requests for this rule are only accepted during its approval hours".into(),
                };
            }
        }
        let (tx, rx) = oneshot::channel();
        let id = new_id();
        let sha256 = sha256_hex(req.payload);
        let view = ApprovalView {
            id: id.clone(),
            state: State::Pending,
            created_at: rfc3339(now),
            expires_at: rfc3339(now + req.policy.timeout),
            decided_at: None,
            requester: Requester {
                target: req.ctx.target.clone(),
                pid: req.ctx.process.pid,
                uid: req.ctx.process.uid,
                exe: req
                    .ctx
                    .process
                    .exe
                    .as_ref()
                    .map(|p| p.display().to_string()),
                cgroup_id: req.ctx.process.cgroup_id,
                subject: req.subject.clone(),
                session: req.session.clone(),
            },
            resource: req.ctx.resource.name.clone(),
            protocol: req.protocol.into(),
            command: masked_by(req.masker, &req.command),
            parameters: mask_parameters(req.masker, &req.parameters),
            sha256: sha256.clone(),
            rule: req.rule,
            reason: masked_by(req.masker, &req.reason),
            preview: req.preview.map(|p| mask_preview(req.masker, p)),
            groups: req.policy.groups.clone(),
            required: req.policy.required,
            votes: Vec::new(),
            decision_reason: None,
            grant: None,
        };
        let ticket = Ticket {
            id: id.clone(),
            sha256,
            rx,
            opened: Instant::now(),
            timeout: req.policy.timeout,
            escalations: req.policy.escalation.iter().map(|e| e.after).collect(),
        };
        {
            let mut inner = self.lock();
            if inner.pending.len() >= self.max_pending {
                return Opened::Refused {
                    reason: format!(
                        "the gateway already holds {} requests awaiting approval",
                        self.max_pending
                    ),
                };
            }
            inner.pending.insert(
                id.clone(),
                Pending {
                    policy: req.policy,
                    identity,
                    fingerprint: req.fingerprint,
                    tx: Some(tx),
                    grant_asks: Vec::new(),
                },
            );
            inner.views.insert(id.clone(), view.clone());
        }
        self.persist(&view);
        info!(event = "approval_requested", id = %id, conn_id = req.ctx.id, resource = %view.resource,
              rule = %view.rule, sha256 = %view.sha256, groups = ?view.groups, required = view.required,
              "command held for approval");
        self.emit(BrokerEvent::Requested(view));
        Opened::Waiting(ticket)
    }

    /// Waits for the decision, running the escalation and timeout timers. `cancelled` resolves
    /// when the agent cancels the statement or goes away.
    pub async fn wait(&self, mut ticket: Ticket, cancelled: impl Future<Output = ()>) -> Outcome {
        tokio::pin!(cancelled);
        let deadline = tokio::time::Instant::from_std(ticket.opened + ticket.timeout);
        let mut stage = 0;
        // After a timer or a cancel ends the request, only the channel is left to read.
        let mut ended = false;
        loop {
            let next_escalation = ticket
                .escalations
                .get(stage)
                .map(|after| tokio::time::Instant::from_std(ticket.opened + *after));
            tokio::select! {
                outcome = &mut ticket.rx => {
                    return outcome.unwrap_or(Outcome::Abandoned { reason: "the approval service stopped".into() });
                }
                _ = tokio::time::sleep_until(next_escalation.unwrap_or(deadline)), if !ended && next_escalation.is_some() => {
                    self.escalate(&ticket.id, stage);
                    stage += 1;
                }
                _ = tokio::time::sleep_until(deadline), if !ended => {
                    ended = true;
                    self.finish(&ticket.id, State::Expired, None, Outcome::Expired { after: ticket.timeout });
                }
                _ = &mut cancelled, if !ended => {
                    ended = true;
                    self.finish(&ticket.id, State::Cancelled, Some("the agent cancelled the statement or disconnected".into()), Outcome::Cancelled);
                }
            }
            // After `finish` the outcome is in the channel: the decision that won the race.
        }
    }

    /// Ends a pending request (timeout, cancel, shutdown); no-op when already decided.
    fn finish(&self, id: &str, state: State, reason: Option<String>, outcome: Outcome) {
        let mut inner = self.lock();
        let Some(mut pending) = inner.pending.remove(id) else {
            return;
        };
        let view = inner
            .views
            .get_mut(id)
            .expect("pending requests have a view");
        view.state = state;
        view.decided_at = Some(now_rfc3339());
        view.decision_reason = reason.or_else(|| match &outcome {
            Outcome::Expired { after } => Some(format!(
                "nobody decided within {}",
                humantime::format_duration(*after)
            )),
            _ => None,
        });
        let view = view.clone();
        inner.decided.push_back(id.to_string());
        Self::trim(&mut inner);
        drop(inner);
        if let Some(tx) = pending.tx.take() {
            let _ = tx.send(outcome);
        }
        self.persist(&view);
        info!(event = "approval_finished", id = %id, state = state.as_str(), "approval request ended");
        self.emit(BrokerEvent::Decided(view));
    }

    fn trim(inner: &mut Inner) {
        while inner.decided.len() > RECENT {
            if let Some(old) = inner.decided.pop_front() {
                inner.views.remove(&old);
            }
        }
    }

    fn escalate(&self, id: &str, stage: usize) {
        let mut inner = self.lock();
        let Some(groups) = inner
            .pending
            .get(id)
            .and_then(|p| p.policy.escalation.get(stage))
            .map(|e| e.groups.clone())
        else {
            return;
        };
        let view = inner
            .views
            .get_mut(id)
            .expect("pending requests have a view");
        for g in &groups {
            if !view.groups.contains(g) {
                view.groups.push(g.clone());
            }
        }
        let view = view.clone();
        drop(inner);
        self.persist(&view);
        info!(event = "approval_escalated", id = %id, groups = ?groups, "approval request escalated");
        self.emit(BrokerEvent::Escalated { view, groups });
    }

    /// A reviewer's vote.
    pub fn decide(
        &self,
        id: &str,
        reviewer: &Reviewer,
        decision: Decision,
        reason: Option<String>,
        grant: Option<GrantRequest>,
    ) -> Result<ApprovalView, DecideError> {
        let reason = reason
            .map(|r| r.trim().chars().take(MAX_REASON).collect::<String>())
            .filter(|r| !r.is_empty());
        if let Some(g) = &grant {
            if decision == Decision::Deny {
                return Err(DecideError::BadRequest("only an approval can grant".into()));
            }
            let d = humantime::parse_duration(&g.duration).map_err(|e| {
                DecideError::BadRequest(format!("grant duration `{}`: {e}", g.duration))
            })?;
            if d.is_zero() || d > MAX_GRANT {
                return Err(DecideError::BadRequest(format!(
                    "a grant lasts between 1s and {}",
                    humantime::format_duration(MAX_GRANT)
                )));
            }
        }
        if decision == Decision::Deny && reason.is_none() {
            return Err(DecideError::BadRequest(
                "a denial needs a reason (the agent is told it)".into(),
            ));
        }
        let mut inner = self.lock();
        let Some(view) = inner.views.get(id) else {
            drop(inner);
            // Older requests live only in the store.
            return match self.lookup_stored(id) {
                Some(v) => Err(DecideError::NotPending(v.state.as_str())),
                None => Err(DecideError::NotFound(id.into())),
            };
        };
        if view.state != State::Pending {
            return Err(DecideError::NotPending(view.state.as_str()));
        }
        let pending = inner.pending.get(id).expect("pending view has its entry");
        if decision == Decision::Approve && pending.identity == reviewer.subject {
            return Err(DecideError::Forbidden(
                "you cannot approve your own request".into(),
            ));
        }
        if !reviewer.groups.iter().any(|g| view.groups.contains(g)) {
            return Err(DecideError::Forbidden(format!(
                "deciding on this request needs membership in one of: {}",
                view.groups.join(", ")
            )));
        }
        if view.votes.iter().any(|v| v.reviewer == reviewer.subject) {
            return Err(DecideError::Forbidden(
                "you already voted on this request; another reviewer must decide".into(),
            ));
        }
        let required = pending.policy.required;
        if grant.is_some() && required > 1 {
            return Err(DecideError::BadRequest(
                "grants need a rule that requires a single approval; approve without a grant"
                    .into(),
            ));
        }
        let now = SystemTime::now();
        let vote = Vote {
            reviewer: reviewer.subject.clone(),
            decision,
            reason: reason.clone(),
            at: rfc3339(now),
        };
        let view = inner.views.get_mut(id).expect("checked above");
        view.votes.push(vote);
        let approvals = view
            .votes
            .iter()
            .filter(|v| v.decision == Decision::Approve)
            .count() as u32;
        let final_state = match decision {
            Decision::Deny => Some(State::Denied),
            Decision::Approve if approvals >= required => Some(State::Approved),
            Decision::Approve => None,
        };
        let pending = inner.pending.get_mut(id).expect("checked above");
        if decision == Decision::Approve {
            pending.grant_asks.push(grant);
        }
        let Some(state) = final_state else {
            let view = inner.views[id].clone();
            drop(inner);
            self.persist(&view);
            info!(event = "approval_vote", id = %id, reviewer = %reviewer.subject, approvals, required,
                  "approval recorded; more needed");
            return Ok(view);
        };
        let mut pending = inner.pending.remove(id).expect("checked above");
        let new_grant = match (state, pending.grant_asks.first().cloned().flatten()) {
            (State::Approved, Some(ask)) => {
                let d = humantime::parse_duration(&ask.duration).expect("validated above");
                let view = &inner.views[id];
                let g = GrantView {
                    id: new_id(),
                    identity: pending.identity.clone(),
                    resource: view.resource.clone(),
                    scope: ask.scope,
                    pattern: match ask.scope {
                        GrantScope::Fingerprint => pending.fingerprint.clone(),
                        GrantScope::Rule => view.rule.clone(),
                    },
                    created_by: reviewer.subject.clone(),
                    created_at: rfc3339(now),
                    expires_at: rfc3339(now + d),
                    revoked_by: None,
                    uses: 0,
                };
                inner.grants.insert(
                    g.id.clone(),
                    Grant {
                        view: g.clone(),
                        expires: now + d,
                    },
                );
                Some(g)
            }
            _ => None,
        };
        let view = inner.views.get_mut(id).expect("checked above");
        view.state = state;
        view.decided_at = Some(rfc3339(now));
        view.decision_reason = match state {
            State::Denied => reason.clone(),
            _ => reason.clone().or(Some(format!(
                "approved by {}",
                view.votes
                    .iter()
                    .map(|v| v.reviewer.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
        view.grant = new_grant.as_ref().map(|g| g.id.clone());
        let view = view.clone();
        inner.decided.push_back(id.to_string());
        Self::trim(&mut inner);
        drop(inner);
        let outcome = match state {
            State::Denied => Outcome::Denied {
                reviewer: reviewer.subject.clone(),
                reason: reason.unwrap_or_default(),
            },
            _ => Outcome::Approved {
                reviewers: view.votes.iter().map(|v| v.reviewer.clone()).collect(),
            },
        };
        if let Some(tx) = pending.tx.take() {
            let _ = tx.send(outcome);
        }
        self.persist(&view);
        if let Some(g) = &new_grant {
            self.persist_grant(g);
            info!(event = "grant_created", id = %g.id, identity = %g.identity, resource = %g.resource,
                  pattern = %g.pattern, expires_at = %g.expires_at, by = %g.created_by, "just-in-time grant");
        }
        info!(event = "approval_decided", id = %id, state = state.as_str(), reviewer = %reviewer.subject,
              "approval request decided");
        self.emit(BrokerEvent::Decided(view.clone()));
        Ok(view)
    }

    fn lookup_stored(&self, id: &str) -> Option<ApprovalView> {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .ok()
            .flatten()
    }

    pub fn get(&self, id: &str) -> Option<ApprovalView> {
        let view = self.lock().views.get(id).cloned();
        view.or_else(|| self.lookup_stored(id))
    }

    /// Newest first; `state` filters.
    pub fn list(&self, state: Option<State>) -> Vec<ApprovalView> {
        let mut views: Vec<ApprovalView> = self
            .lock()
            .views
            .values()
            .filter(|v| state.is_none_or(|s| v.state == s))
            .cloned()
            .collect();
        views.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        views
    }

    pub fn pending_count(&self) -> usize {
        self.lock().pending.len()
    }

    /// Live (unexpired) grants, revoked ones included.
    pub fn grants(&self) -> Vec<GrantView> {
        let now = SystemTime::now();
        let mut inner = self.lock();
        inner.grants.retain(|_, g| g.expires > now);
        let mut v: Vec<GrantView> = inner.grants.values().map(|g| g.view.clone()).collect();
        v.sort_by(|a, b| a.expires_at.cmp(&b.expires_at));
        v
    }

    pub fn revoke(&self, id: &str, by: &Reviewer) -> Result<GrantView, DecideError> {
        let mut inner = self.lock();
        let Some(g) = inner.grants.get_mut(id) else {
            return Err(DecideError::NotFound(id.into()));
        };
        if g.view.revoked_by.is_some() {
            return Err(DecideError::NotPending("revoked"));
        }
        g.view.revoked_by = Some(by.subject.clone());
        let view = g.view.clone();
        drop(inner);
        self.persist_grant(&view);
        info!(event = "grant_revoked", id = %id, by = %by.subject, "just-in-time grant revoked");
        Ok(view)
    }

    /// Abandons every pending request (graceful stop): their agents get an error now.
    pub fn shutdown(&self) {
        let ids: Vec<String> = self.lock().pending.keys().cloned().collect();
        for id in ids {
            let reason =
                "the gateway is shutting down; nothing was sent to the database".to_string();
            self.finish(
                &id,
                State::Abandoned,
                Some(reason.clone()),
                Outcome::Abandoned { reason },
            );
        }
    }
}
