//! Telling reviewers that a request waits (or was escalated, or decided): a signed generic
//! webhook and a Slack incoming webhook, plus the helpers of the Slack interactivity endpoint
//! (signature check, button payload).
//!
//! Delivery never slows the broker: notifications go through a bounded queue to one worker
//! thread; when the queue is full the notification is dropped with a warning (the request is
//! still visible in the API and on the web page, so a lost notification delays, never loses, a
//! decision).
//!
//! Every string in a request comes from the agent or the policy (the command, reasons, the
//! executable path, resource names), so the Slack message never lets one of them become markup:
//! they go into `plain_text` objects or a `rich_text` preformatted element (both literal), and
//! the one mrkdwn-parsed field, the fallback `text`, is escaped with [`mrkdwn_escape`].

mod delivery;
mod slack;
mod slack_interaction;
#[cfg(test)]
mod tests;
mod webhook;

pub use delivery::{Notifier, NotifyConfig};
pub use slack::{mrkdwn_escape, slack_message};
pub use slack_interaction::{
    InteractionError, SLACK_APPROVE_ACTION, SLACK_DENY_ACTION, SLACK_TOLERANCE, SlackAction,
    parse_slack_interaction, verify_slack_request,
};
pub use webhook::{SIGNATURE_HEADER, SignatureError, TIMESTAMP_HEADER, sign, verify, webhook_body};

use super::model::ApprovalView;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyEvent {
    /// A command was held; reviewers of `view.groups` may decide.
    Requested,
    /// Nobody decided in time, so more groups may decide now (`groups` are the added ones).
    Escalated { groups: Vec<String> },
    /// The request reached a final state (`view.state`).
    Decided,
}

impl NotifyEvent {
    /// The webhook's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            NotifyEvent::Requested => "sluice.approval.requested",
            NotifyEvent::Escalated { .. } => "sluice.approval.escalated",
            NotifyEvent::Decided => "sluice.approval.decided",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub event: NotifyEvent,
    pub view: ApprovalView,
    /// The request on the web page (see [`request_link`]).
    pub link: String,
}

/// The web page's URL of request `id`, given the gateway's public base URL.
pub fn request_link(base_url: &str, id: &str) -> String {
    format!("{}/approvals/{id}", base_url.trim_end_matches('/'))
}
