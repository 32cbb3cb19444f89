//! Approval holds for SSH: an exec command or a shell line waits here, its exact bytes bound
//! to the approval, while reviewers decide. Nothing of it reaches the host before.

use tracing::{info, warn};

use super::Conn;
use crate::{
    services::approvals::{HoldRequest, Opened as BrokerOpened, Outcome, identity_of},
    util::sha256_hex,
};

/// A hold that was opened: already covered by a grant, or waiting for reviewers.
pub enum Opened {
    Granted,
    Waiting(crate::services::approvals::Ticket),
}

/// Opens a hold for `command` (forwarded as `payload` on approval). `Err` is the sentence the
/// agent is shown.
pub fn open(
    conn: &Conn,
    rule: &str,
    reason: &str,
    command: &str,
    payload: &[u8],
) -> Result<Opened, String> {
    let services = &conn.services;
    let ctx = &conn.ctx;
    let (Some(broker), Some(policy)) = (
        &services.approvals,
        crate::services::approvals::policy_for(services, rule),
    ) else {
        return Err(format!(
            "command requires approval (rule \"{rule}\": {reason}), and no approval service is enabled on this gateway"
        ));
    };
    // Shell commands have no literal-insensitive shape: a grant covers exactly this text.
    let fingerprint = format!("ssh:{}", sha256_hex(command.as_bytes()));
    let identity = identity_of(conn.subject.as_deref(), ctx);
    if let Some(grant) = broker.grant_for(&identity, &ctx.resource.name, rule, &fingerprint) {
        info!(event = "grant_used", conn_id = ctx.id, grant = %grant, rule,
              command = %crate::proto::command::masked_text(services, command),
              "held command allowed by a just-in-time grant");
        return Ok(Opened::Granted);
    }
    match broker.open(HoldRequest {
        ctx,
        subject: conn.subject.clone(),
        session: Some(conn.audit.id.clone()),
        protocol: "ssh",
        rule: rule.to_string(),
        reason: reason.to_string(),
        command: command.to_string(),
        parameters: Vec::new(),
        payload,
        fingerprint,
        policy,
        preview: None,
        masker: &services.masker(),
    }) {
        BrokerOpened::Waiting(t) => Ok(Opened::Waiting(t)),
        BrokerOpened::Refused { reason: why } => Err(format!(
            "command requires approval (rule \"{rule}\") and cannot be held: {why}"
        )),
    }
}

/// Waits for the reviewers. `Ok` releases the command; `Err` is the sentence for the agent.
/// `cancelled` resolves when the agent gives up (closes the channel, or presses Ctrl-C).
pub async fn wait(
    conn: &Conn,
    ticket: crate::services::approvals::Ticket,
    payload: &[u8],
    cancelled: impl Future<Output = ()>,
) -> Result<(), String> {
    let ctx = &conn.ctx;
    let Some(broker) = &conn.services.approvals else {
        return Err("the approval service stopped".into());
    };
    let id = ticket.id.clone();
    let expected = ticket.sha256.clone();
    let outcome = broker.wait(ticket, cancelled).await;
    info!(event = "hold_outcome", conn_id = ctx.id, id = %id, outcome = ?outcome, "held command resolved");
    match outcome {
        Outcome::Approved { reviewers } => {
            if sha256_hex(payload) != expected {
                warn!(event = "hold_hash_mismatch", conn_id = ctx.id, id = %id, "approved bytes changed; refusing");
                return Err(format!("approval {id} does not match the held command"));
            }
            info!(event = "hold_released", conn_id = ctx.id, id = %id, reviewers = ?reviewers, "approved command forwarded");
            Ok(())
        }
        Outcome::Denied { reviewer, reason } => Err(format!(
            "command denied by {reviewer}: {reason} (approval request {id})"
        )),
        Outcome::Expired { after } => Err(format!(
            "approval request {id} timed out after {} without a decision",
            humantime::format_duration(after)
        )),
        Outcome::Cancelled => Err(format!("approval request {id} cancelled")),
        Outcome::Abandoned { reason } => Err(format!("approval request {id} abandoned: {reason}")),
    }
}
