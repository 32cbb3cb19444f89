//! Approval holds, for every protocol: a held command waits here, its exact bytes bound to
//! the approval, while reviewers decide. Nothing of it reaches the upstream before, and only
//! the bytes reviewers approved are released.

use std::{future::Future, time::Duration};

use tracing::{info, warn};

use super::{Command, Gate, masked_text};
use crate::services::approvals::{
    HoldRequest, Opened, Outcome, identity_of, model::Preview, settings::PreviewSettings,
    sha256_hex,
};

/// A command to hold.
pub struct HoldSpec<'a> {
    /// The protocol, as reviewers and the approval store name it (`postgres`, `ssh`).
    pub protocol: &'static str,
    pub command: Command<'a>,
    pub rule: &'a str,
    pub reason: &'a str,
    /// Bound parameters as reviewers see them (masked by the broker).
    pub parameters: Vec<Option<String>>,
    /// The exact bytes forwarded on approval.
    pub payload: &'a [u8],
}

/// Why a command does not run. Each protocol words it in its own refusal shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub by: RefusedBy,
    /// The rule that held it, and why.
    pub rule: String,
    pub reason: String,
    /// The approval request, once one was opened.
    pub request: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefusedBy {
    /// No approval service is enabled: a hold cannot wait anywhere.
    NoApprovals,
    /// The broker refused to open the request (approval hours, too many pending, store).
    CannotHold(String),
    Reviewer {
        reviewer: String,
        reason: String,
    },
    Timeout(Duration),
    /// The agent gave up (closed, cancelled, Ctrl-C).
    Cancelled,
    /// The request ended without a decision (the gateway is stopping, the broker lost it).
    Abandoned(String),
    /// The bytes about to be forwarded are not the ones reviewers approved.
    Mismatch,
}

impl Refusal {
    /// The common sentence (without the protocol's prefix): `what` names the command
    /// (`statement`, `command`).
    pub fn sentence(&self, what: &str) -> String {
        let id = self.request.as_deref().unwrap_or("?");
        let rule = &self.rule;
        match &self.by {
            RefusedBy::NoApprovals => format!(
                "{what} requires approval (rule \"{rule}\"), and no approval service is enabled on this gateway"
            ),
            RefusedBy::CannotHold(why) => {
                format!("{what} requires approval (rule \"{rule}\") and cannot be held: {why}")
            }
            RefusedBy::Reviewer { reviewer, reason } => {
                format!("{what} denied by {reviewer}: {reason}")
            }
            RefusedBy::Timeout(after) => format!(
                "approval request {id} timed out after {} without a decision",
                humantime::format_duration(*after)
            ),
            RefusedBy::Cancelled => format!("approval request {id} cancelled"),
            RefusedBy::Abandoned(why) => format!("approval request {id} abandoned: {why}"),
            RefusedBy::Mismatch => format!("approval {id} does not match the held {what}"),
        }
    }
}

impl Gate {
    /// Holds a command until reviewers approve it (`Ok`: forward `spec.payload`, exactly) or
    /// it is refused. A just-in-time grant covering the command releases it at once.
    ///
    /// `preview` computes what reviewers are shown about the command's effect (given the
    /// rule's preview settings; called only when a request is opened). `waiting` is told the
    /// request's id once it is open. `cancelled` resolves when the agent gives up.
    pub async fn hold<P>(
        &self,
        spec: HoldSpec<'_>,
        preview: impl FnOnce(PreviewSettings) -> P,
        waiting: impl AsyncFnOnce(&str),
        cancelled: impl Future<Output = ()>,
    ) -> Result<(), Refusal>
    where
        P: Future<Output = Option<Preview>>,
    {
        let ctx = &self.ctx;
        let services = &self.services;
        let refusal = |by: RefusedBy, request: Option<&str>| Refusal {
            by,
            rule: spec.rule.to_string(),
            reason: spec.reason.to_string(),
            request: request.map(str::to_string),
        };
        let (Some(broker), Some(policy)) = (
            &services.approvals,
            crate::services::approvals::policy_for(services, spec.rule),
        ) else {
            return Err(refusal(RefusedBy::NoApprovals, None));
        };
        let text = spec.command.text();
        let fingerprint = spec.command.fingerprint();
        let identity = identity_of(self.subject.as_deref(), ctx);
        if let Some(grant) =
            broker.grant_for(&identity, &ctx.resource.name, spec.rule, &fingerprint)
        {
            info!(event = "grant_used", conn_id = ctx.id, grant = %grant, rule = %spec.rule,
                  command = %masked_text(services, text),
                  "held command allowed by a just-in-time grant");
            return Ok(());
        }
        let preview = preview(policy.preview).await;
        let opened = broker.open(HoldRequest {
            ctx,
            subject: self.subject.clone(),
            session: Some(self.audit.id.clone()),
            protocol: spec.protocol,
            rule: spec.rule.to_string(),
            reason: spec.reason.to_string(),
            command: text.to_string(),
            parameters: spec.parameters,
            payload: spec.payload,
            fingerprint,
            policy,
            preview,
            masker: &services.masker(),
        });
        let ticket = match opened {
            Opened::Waiting(t) => t,
            Opened::Refused { reason } => return Err(refusal(RefusedBy::CannotHold(reason), None)),
        };
        let id = ticket.id.clone();
        let expected = ticket.sha256.clone();
        waiting(&id).await;
        let outcome = broker.wait(ticket, cancelled).await;
        info!(event = "hold_outcome", conn_id = ctx.id, id = %id, outcome = ?outcome, "held command resolved");
        let by = match outcome {
            Outcome::Approved { reviewers } => {
                // The bytes about to be forwarded must be the ones reviewers saw.
                if sha256_hex(spec.payload) != expected {
                    warn!(event = "hold_hash_mismatch", conn_id = ctx.id, id = %id, "approved bytes changed; refusing");
                    RefusedBy::Mismatch
                } else {
                    info!(event = "hold_released", conn_id = ctx.id, id = %id, reviewers = ?reviewers,
                          "approved command forwarded");
                    return Ok(());
                }
            }
            Outcome::Denied { reviewer, reason } => RefusedBy::Reviewer { reviewer, reason },
            Outcome::Expired { after } => RefusedBy::Timeout(after),
            Outcome::Cancelled => RefusedBy::Cancelled,
            Outcome::Abandoned { reason } => RefusedBy::Abandoned(reason),
        };
        Err(refusal(by, Some(&id)))
    }
}
