//! The Slack interactivity endpoint's helpers: the request signature and the button payload.

use std::time::{Duration, SystemTime};

use hmac::Mac;
use serde::Deserialize;

use super::{
    webhook::{check_signatures, fresh_timestamp, mac},
    *,
};
use crate::services::approvals::model::Decision;

/// Slack refuses requests older than this; we apply the same window to Slack's calls to us.
pub const SLACK_TOLERANCE: Duration = Duration::from_secs(5 * 60);

pub const SLACK_APPROVE_ACTION: &str = "sluice_approve";
pub const SLACK_DENY_ACTION: &str = "sluice_deny";

/// Checks a request from Slack (interactivity, slash commands) with the app's signing secret:
/// `X-Slack-Signature` is `v0=` + hex HMAC-SHA256 over `v0:{timestamp}:{body}`, and
/// `X-Slack-Request-Timestamp` must be within five minutes of `now`.
pub fn verify_slack_request(
    signing_secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: SystemTime,
) -> Result<(), SignatureError> {
    let ts = fresh_timestamp(timestamp_header, now, SLACK_TOLERANCE)?;
    let mut m = mac(signing_secret);
    m.update(format!("v0:{ts}:").as_bytes());
    m.update(body);
    check_signatures(m, signature_header, "v0=")
}

/// A reviewer pressed Approve or Deny in Slack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlackAction {
    pub decision: Decision,
    pub request_id: String,
    /// Slack's user id (`U…`): map it to a reviewer before deciding.
    pub slack_user: String,
    /// Where to post the updated message (valid for 30 minutes, 5 uses).
    pub response_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InteractionError {
    #[error("the form has no payload field")]
    NoPayload,
    #[error("the payload is not the expected JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("interaction type {0:?} is not handled (only block_actions)")]
    Type(String),
    #[error("the payload has no {0}")]
    Missing(&'static str),
    #[error("action {0:?} is not a sluice action")]
    UnknownAction(String),
}

#[derive(Deserialize)]
struct InteractionPayload {
    #[serde(rename = "type")]
    kind: String,
    user: Option<SlackUser>,
    #[serde(default)]
    actions: Vec<SlackButton>,
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct SlackUser {
    id: String,
}

#[derive(Deserialize)]
struct SlackButton {
    action_id: String,
    value: Option<String>,
}

/// Decodes the body Slack POSTs to the interactivity URL (`application/x-www-form-urlencoded`
/// with one `payload` field holding JSON). Verify the signature on the raw body first.
pub fn parse_slack_interaction(body: &[u8]) -> Result<SlackAction, InteractionError> {
    let payload = form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v)
        .ok_or(InteractionError::NoPayload)?;
    let p: InteractionPayload = serde_json::from_str(&payload)?;
    if p.kind != "block_actions" {
        return Err(InteractionError::Type(p.kind));
    }
    let slack_user = p
        .user
        .map(|u| u.id)
        .filter(|id| !id.is_empty())
        .ok_or(InteractionError::Missing("user.id"))?;
    let action = p
        .actions
        .into_iter()
        .next()
        .ok_or(InteractionError::Missing("actions[0]"))?;
    let decision = match action.action_id.as_str() {
        SLACK_APPROVE_ACTION => Decision::Approve,
        SLACK_DENY_ACTION => Decision::Deny,
        _ => return Err(InteractionError::UnknownAction(action.action_id)),
    };
    let request_id = action
        .value
        .filter(|v| !v.is_empty())
        .ok_or(InteractionError::Missing("actions[0].value"))?;
    Ok(SlackAction {
        decision,
        request_id,
        slack_user,
        response_url: p.response_url,
    })
}
