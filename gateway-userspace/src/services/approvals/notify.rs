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

use std::{
    fmt::{self, Write as _},
    sync::mpsc,
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use tracing::{error, warn};

use super::model::{ApprovalView, Decision, State};

/// Notifications waiting for delivery; past this they are dropped (see the module doc).
const QUEUE: usize = 256;
/// Per delivery attempt: a slow receiver holds up the queue for at most this long.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Slack refuses requests older than this; we apply the same window to Slack's calls to us.
pub const SLACK_TOLERANCE: Duration = Duration::from_secs(5 * 60);

pub const TIMESTAMP_HEADER: &str = "X-Sluice-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Sluice-Signature";

/// Slack Block Kit limits (characters), kept with a margin where Slack counts differently.
const SLACK_HEADER_MAX: usize = 150;
const SLACK_FIELD_MAX: usize = 2000;
const SLACK_SECTION_MAX: usize = 3000;
/// The command's preformatted block: no documented cap of its own, so the section's.
const SLACK_COMMAND_MAX: usize = 2900;
const SLACK_URL_MAX: usize = 3000;
const SLACK_VALUE_MAX: usize = 2000;

pub const SLACK_APPROVE_ACTION: &str = "sluice_approve";
pub const SLACK_DENY_ACTION: &str = "sluice_deny";

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

// ---------------------------------------------------------------------------------------------
// Generic signed webhook

#[derive(Serialize)]
struct WebhookBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    link: &'a str,
    approval: &'a ApprovalView,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<&'a [String]>,
}

/// The JSON body of the generic webhook.
pub fn webhook_body(n: &Notification, time: SystemTime) -> Vec<u8> {
    let body = WebhookBody {
        kind: n.event.type_name(),
        // The documented webhook shape: whole seconds.
        time: humantime::format_rfc3339_seconds(time).to_string(),
        link: &n.link,
        approval: &n.view,
        groups: match &n.event {
            NotifyEvent::Escalated { groups } => Some(groups),
            _ => None,
        },
    };
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the timestamp header is not a Unix time in seconds")]
    BadTimestamp,
    #[error(
        "the timestamp is {age_secs} s away from now, more than allowed (a replay, or clock skew)"
    )]
    Stale { age_secs: i128 },
    #[error("the signature header has no {0}<hex> value")]
    Malformed(&'static str),
    #[error("the signature does not match the body")]
    Mismatch,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length")
}

/// `X-Sluice-Signature` of `body` sent at `timestamp` (Unix seconds):
/// `v1=` + hex HMAC-SHA256(secret, "<timestamp>.<body>"). Signing the timestamp with the body
/// lets receivers refuse replays of an old, validly signed request.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(format!("{timestamp}.").as_bytes());
    m.update(body);
    format!("v1={}", crate::util::hex(&m.finalize().into_bytes()))
}

/// Checks a generic webhook as a receiver would: the timestamp within `tolerance` of `now`
/// (either side, for clock skew) and one of the comma-separated `v1=` signatures matching
/// (several are allowed so a secret can be rotated). The comparison is constant-time.
pub fn verify(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let ts = fresh_timestamp(timestamp_header, now, tolerance)?;
    let mut m = mac(secret);
    m.update(format!("{ts}.").as_bytes());
    m.update(body);
    check_signatures(m, signature_header, "v1=")
}

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

fn fresh_timestamp(
    header: &str,
    now: SystemTime,
    tolerance: Duration,
) -> Result<u64, SignatureError> {
    let ts: u64 = header
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SignatureError::BadTimestamp)?
        .as_secs();
    let age_secs = i128::from(now) - i128::from(ts);
    if age_secs.unsigned_abs() > u128::from(tolerance.as_secs()) {
        return Err(SignatureError::Stale { age_secs });
    }
    Ok(ts)
}

fn check_signatures(
    m: Hmac<Sha256>,
    header: &str,
    prefix: &'static str,
) -> Result<(), SignatureError> {
    let mut seen = false;
    for candidate in header.split(',').map(str::trim) {
        let Some(sig) = candidate.strip_prefix(prefix).and_then(crate::util::unhex) else {
            continue;
        };
        seen = true;
        if m.clone().verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err(if seen {
        SignatureError::Mismatch
    } else {
        SignatureError::Malformed(prefix)
    })
}

// ---------------------------------------------------------------------------------------------
// Slack message

/// Escapes text for a mrkdwn-parsed Slack field: `&`, `<`, `>` as Slack requires (so no
/// `<!channel>`, `<@U…>` or `<url|label>` can be formed), and the formatting characters
/// `` ` * _ ~ `` replaced by look-alikes (Slack has no escape for them).
pub fn mrkdwn_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '`' => out.push('\u{02CB}'), // modifier letter grave accent
            '*' => out.push('\u{2217}'), // asterisk operator
            '_' => out.push('\u{02CD}'), // modifier letter low macron
            '~' => out.push('\u{223C}'), // tilde operator
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters; a cut string ends with a marker saying how much is missing.
fn truncate(s: &str, max: usize) -> String {
    let count = s.chars().count();
    if count <= max {
        return s.to_string();
    }
    // Sized for the largest number the marker can show, so the result never exceeds `max`.
    let marker = |shown: usize| format!("\n… [truncated: {shown} of {count} characters shown]");
    let keep = max.saturating_sub(marker(count).chars().count());
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(&marker(keep));
    out
}

fn plain(text: &str, max: usize) -> Value {
    json!({"type": "plain_text", "text": truncate(text, max), "emoji": false})
}

fn describe_requester(v: &ApprovalView) -> String {
    let r = &v.requester;
    let mut s = format!(
        "{} · {} · pid {} · uid {}",
        r.target,
        r.exe.as_deref().unwrap_or("unknown executable"),
        r.pid,
        r.uid
    );
    if let Some(sub) = &r.subject {
        let _ = write!(s, " · {sub}");
    }
    s
}

fn title(n: &Notification) -> String {
    let v = &n.view;
    match &n.event {
        NotifyEvent::Requested => format!("Approval requested on {}", v.resource),
        NotifyEvent::Escalated { groups } => format!(
            "Approval escalated to {} on {}",
            groups.join(", "),
            v.resource
        ),
        NotifyEvent::Decided => format!("Request {} on {}", v.state.as_str(), v.resource),
    }
}

/// The Slack incoming-webhook payload (Block Kit) for a notification. Pending requests get
/// Approve/Deny buttons for Slack's interactivity endpoint (`value` = the request id) and every
/// message a button to the web page.
pub fn slack_message(n: &Notification) -> Value {
    let v = &n.view;
    let approvals = v
        .votes
        .iter()
        .filter(|vote| vote.decision == Decision::Approve)
        .count();
    let mut fields = vec![
        plain(&format!("Request\n{}", v.id), SLACK_FIELD_MAX),
        plain(&format!("State\n{}", v.state.as_str()), SLACK_FIELD_MAX),
        plain(
            &format!("Resource\n{} ({})", v.resource, v.protocol),
            SLACK_FIELD_MAX,
        ),
        plain(
            &format!("Requester\n{}", describe_requester(v)),
            SLACK_FIELD_MAX,
        ),
        plain(&format!("Rule\n{}: {}", v.rule, v.reason), SLACK_FIELD_MAX),
        plain(
            &format!(
                "Approvals\n{approvals} of {} · groups: {}",
                v.required,
                v.groups.join(", ")
            ),
            SLACK_FIELD_MAX,
        ),
    ];
    fields.push(match &v.decided_at {
        Some(at) => plain(&format!("Decided\n{at}"), SLACK_FIELD_MAX),
        None => plain(&format!("Expires\n{}", v.expires_at), SLACK_FIELD_MAX),
    });

    let mut blocks = vec![
        json!({"type": "header", "text": plain(&title(n), SLACK_HEADER_MAX)}),
        json!({"type": "section", "fields": fields}),
        // rich_text elements are literal text: nothing in the command is parsed, and the
        // preformatted style keeps it monospaced like the SQL it is.
        json!({"type": "rich_text", "elements": [{
            "type": "rich_text_preformatted",
            "elements": [{"type": "text", "text": truncate(&v.command, SLACK_COMMAND_MAX)}],
        }]}),
    ];

    if !v.parameters.is_empty() {
        let params = v
            .parameters
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                Some(p) => format!("${} = {p}", i + 1),
                None => format!("${} = NULL", i + 1),
            })
            .collect::<Vec<_>>()
            .join("\n");
        blocks.push(json!({"type": "section",
            "text": plain(&format!("Parameters\n{params}"), SLACK_SECTION_MAX)}));
    }

    if let Some(p) = &v.preview {
        let mut parts = Vec::new();
        if let Some(rows) = p.estimated_rows {
            parts.push(format!("~{rows} rows estimated"));
        }
        if let Some(rows) = p.rows_affected {
            parts.push(format!("{rows} rows affected in a rolled-back run"));
        }
        if let Some(note) = &p.note {
            parts.push(note.clone());
        }
        if !parts.is_empty() {
            blocks.push(json!({"type": "context", "elements": [
                plain(&format!("Preview: {}", parts.join(" · ")), SLACK_SECTION_MAX)
            ]}));
        }
    }

    let mut decisions: Vec<String> = v
        .votes
        .iter()
        .map(|vote| {
            let verb = match vote.decision {
                Decision::Approve => "approved",
                Decision::Deny => "denied",
            };
            match &vote.reason {
                Some(r) => format!("{} {verb}: {r}", vote.reviewer),
                None => format!("{} {verb}", vote.reviewer),
            }
        })
        .collect();
    if let Some(r) = &v.decision_reason {
        decisions.push(format!("Decision: {r}"));
    }
    if let Some(g) = &v.grant {
        decisions.push(format!("Grant: {g}"));
    }
    if !decisions.is_empty() {
        blocks.push(
            json!({"type": "section", "text": plain(&decisions.join("\n"), SLACK_SECTION_MAX)}),
        );
    }

    let mut actions = Vec::new();
    if n.link.len() <= SLACK_URL_MAX {
        actions.push(json!({"type": "button", "action_id": "sluice_open",
            "text": plain("Open in sluice", 75), "url": n.link}));
    }
    let decidable = matches!(
        n.event,
        NotifyEvent::Requested | NotifyEvent::Escalated { .. }
    ) && v.state == State::Pending;
    if decidable && v.id.len() <= SLACK_VALUE_MAX {
        actions.push(json!({"type": "button", "action_id": SLACK_APPROVE_ACTION,
        "style": "primary", "text": plain("Approve", 75), "value": v.id,
        // A second look before a risky command runs from a chat message.
        "confirm": {
            "title": plain("Run this command?", 100),
            "text": plain(&format!("{} on {}", truncate(&v.command, 200), v.resource), 300),
            "confirm": plain("Approve", 30),
            "deny": plain("Cancel", 30),
        }}));
        actions.push(json!({"type": "button", "action_id": SLACK_DENY_ACTION,
            "style": "danger", "text": plain("Deny", 75), "value": v.id}));
    }
    if !actions.is_empty() {
        blocks.push(json!({"type": "actions", "elements": actions}));
    }

    json!({
        // The notification fallback is the only mrkdwn-parsed text: escaped, and mrkdwn off.
        "text": mrkdwn_escape(&truncate(&format!("sluice: {}", title(n)), SLACK_SECTION_MAX)),
        "mrkdwn": false,
        "unfurl_links": false,
        "unfurl_media": false,
        "blocks": blocks,
    })
}

// ---------------------------------------------------------------------------------------------
// Slack interactivity

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

// ---------------------------------------------------------------------------------------------
// Delivery

/// Where notifications go. Both are optional; with neither, [`Notifier::send`] does nothing.
#[derive(Clone, Default)]
pub struct NotifyConfig {
    /// Generic webhook: URL and the HMAC secret of `X-Sluice-Signature`.
    pub webhook: Option<(String, String)>,
    /// Slack incoming-webhook URL (it is a credential itself).
    pub slack_webhook: Option<String>,
}

/// Hand-written so the secrets never reach a log line.
impl fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyConfig")
            .field(
                "webhook",
                &self.webhook.as_ref().map(|(url, _)| (url, "<secret>")),
            )
            .field(
                "slack_webhook",
                &self.slack_webhook.as_ref().map(|_| "<url>"),
            )
            .finish()
    }
}

pub struct Notifier {
    tx: Option<mpsc::SyncSender<Notification>>,
}

impl Notifier {
    /// Starts the delivery thread (none when nothing is configured). A plain thread, not a tokio
    /// task, so it works without a runtime and blocking HTTP never occupies the runtime's pool.
    pub fn start(config: NotifyConfig) -> Notifier {
        if config.webhook.is_none() && config.slack_webhook.is_none() {
            return Notifier { tx: None };
        }
        let (tx, rx) = mpsc::sync_channel::<Notification>(QUEUE);
        let spawned = thread::Builder::new()
            .name("sluice-notify".into())
            .spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(TIMEOUT))
                    .build()
                    .into();
                // Ends when the Notifier (the only sender) is dropped.
                while let Ok(n) = rx.recv() {
                    deliver(&agent, &config, &n);
                }
            });
        match spawned {
            Ok(_) => Notifier { tx: Some(tx) },
            Err(e) => {
                error!(error = %e, "cannot start the notification thread; notifications are off");
                Notifier { tx: None }
            }
        }
    }

    /// Queues a notification; never waits.
    pub fn send(&self, n: Notification) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(n) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(n)) => warn!(
                event = "notification_dropped",
                approval = %n.view.id,
                "notification queue full; reviewers see the request on the web page only"
            ),
            Err(mpsc::TrySendError::Disconnected(n)) => error!(
                event = "notification_dropped",
                approval = %n.view.id,
                "notification thread is gone"
            ),
        }
    }
}

fn deliver(agent: &ureq::Agent, config: &NotifyConfig, n: &Notification) {
    if let Some((url, secret)) = &config.webhook {
        let now = SystemTime::now();
        let body = webhook_body(n, now);
        let ts = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let result = agent
            .post(url)
            .header("user-agent", "sluice")
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, sign(secret.as_bytes(), ts, &body))
            .send(&body[..]);
        if let Err(e) = result {
            warn!(event = "notification_failed", approval = %n.view.id, sink = "webhook",
                error = %e, "webhook did not accept the notification");
        }
    }
    if let Some(url) = &config.slack_webhook
        && let Err(e) = agent
            .post(url)
            .header("user-agent", "sluice")
            .send_json(slack_message(n))
    {
        warn!(event = "notification_failed", approval = %n.view.id, sink = "slack",
            error = %e, "Slack did not accept the notification");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;
    use crate::services::approvals::model::{Preview, Requester, Vote};

    fn view(command: &str) -> ApprovalView {
        ApprovalView {
            id: "apr_01".into(),
            state: State::Pending,
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at: "2026-01-01T00:05:00Z".into(),
            decided_at: None,
            requester: Requester {
                target: "agent-1".into(),
                pid: 4242,
                uid: 1000,
                exe: Some("/usr/bin/<!here>".into()),
                cgroup_id: 7,
                subject: Some("agent@example.com".into()),
                session: None,
            },
            resource: "prod-db".into(),
            protocol: "postgres".into(),
            command: command.into(),
            parameters: vec![Some("*x*".into()), None],
            sha256: "ab".repeat(32),
            rule: "no-unbounded-delete".into(),
            reason: "DELETE without WHERE <@U123>".into(),
            preview: Some(Preview {
                estimated_rows: Some(1200.0),
                plan: None,
                rows_affected: Some(1187),
                note: None,
            }),
            groups: vec!["dba".into()],
            required: 1,
            votes: vec![Vote {
                reviewer: "bob".into(),
                decision: Decision::Deny,
                reason: Some("_no_ <https://evil|click>".into()),
                at: "2026-01-01T00:01:00Z".into(),
            }],
            decision_reason: None,
            grant: None,
        }
    }

    fn notification(event: NotifyEvent, command: &str) -> Notification {
        Notification {
            event,
            view: view(command),
            link: request_link("https://sluice.example.com/", "apr_01"),
        }
    }

    #[test]
    fn sign_matches_a_vector_computed_with_openssl() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'whsec-test-secret'
        assert_eq!(
            sign(b"whsec-test-secret", 1_700_000_000, br#"{"a":1}"#),
            "v1=4b776f4eda0086dafb75030a7dcbe0b60f5c49dbdc5376afc01e2e4d98eff080"
        );
    }

    #[test]
    fn verify_accepts_fresh_and_rejects_tampered_stale_or_malformed() {
        let secret = b"s3cret";
        let body = br#"{"type":"sluice.approval.requested"}"#;
        let ts = 1_700_000_000u64;
        let now = UNIX_EPOCH + Duration::from_secs(ts + 10);
        let tol = Duration::from_secs(300);
        let sig = sign(secret, ts, body);
        assert_eq!(verify(secret, "1700000000", &sig, body, now, tol), Ok(()));
        // A rotated secret: any listed signature may match.
        let both = format!("v1=00ff, {sig}");
        assert_eq!(verify(secret, "1700000000", &both, body, now, tol), Ok(()));

        let tampered = br#"{"type":"sluice.approval.decided"}"#;
        assert_eq!(
            verify(secret, "1700000000", &sig, tampered, now, tol),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", "1700000000", &sig, body, now, tol),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed: moving it forward to pass the freshness check fails.
        assert_eq!(
            verify(secret, "1700000005", &sig, body, now, tol),
            Err(SignatureError::Mismatch)
        );
        let late = UNIX_EPOCH + Duration::from_secs(ts + 301);
        assert_eq!(
            verify(secret, "1700000000", &sig, body, late, tol),
            Err(SignatureError::Stale { age_secs: 301 })
        );
        let early = UNIX_EPOCH + Duration::from_secs(ts - 301);
        assert!(matches!(
            verify(secret, "1700000000", &sig, body, early, tol),
            Err(SignatureError::Stale { .. })
        ));
        assert_eq!(
            verify(secret, "yesterday", &sig, body, now, tol),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(secret, "1700000000", "sha256=abc", body, now, tol),
            Err(SignatureError::Malformed("v1="))
        );
        assert_eq!(
            verify(secret, "1700000000", "v1=zz", body, now, tol),
            Err(SignatureError::Malformed("v1="))
        );
    }

    /// Slack's own example in "Verifying requests from Slack" (a slash-command body).
    #[test]
    fn slack_signature_matches_slacks_documented_example() {
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        let now = UNIX_EPOCH + Duration::from_secs(1_531_420_618 + 60);
        assert_eq!(
            verify_slack_request(secret, "1531420618", sig, body, now),
            Ok(())
        );
        let mut tampered = body.to_vec();
        tampered[6] ^= 1;
        assert_eq!(
            verify_slack_request(secret, "1531420618", sig, &tampered, now),
            Err(SignatureError::Mismatch)
        );
        let later = UNIX_EPOCH + Duration::from_secs(1_531_420_618 + 5 * 60 + 1);
        assert!(matches!(
            verify_slack_request(secret, "1531420618", sig, body, later),
            Err(SignatureError::Stale { .. })
        ));
        // Our own v1 scheme is not accepted for Slack, nor Slack's for ours.
        assert_eq!(
            verify_slack_request(secret, "1531420618", "v1=00", body, now),
            Err(SignatureError::Malformed("v0="))
        );
    }

    /// Every string value anywhere in the message, with the key it sits under.
    fn strings<'a>(v: &'a Value, key: &str, out: &mut Vec<(String, &'a str)>) {
        match v {
            Value::String(s) => out.push((key.to_string(), s)),
            Value::Array(a) => a.iter().for_each(|x| strings(x, key, out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| strings(x, k, out)),
            _ => {}
        }
    }

    /// The objects that hold a `text` string, with their `type`.
    fn text_objects(v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| text_objects(x, out)),
            Value::Object(o) => {
                if let Some(Value::String(t)) = o.get("text") {
                    let kind = o.get("type").and_then(Value::as_str).unwrap_or("message");
                    out.push((kind.to_string(), t.clone()));
                }
                o.values().for_each(|x| text_objects(x, out));
            }
            _ => {}
        }
    }

    #[test]
    fn slack_message_never_lets_user_strings_become_markup() {
        let evil = "<!channel> *bold* <https://evil|click> `x` & done";
        let msg = slack_message(&notification(NotifyEvent::Requested, evil));
        let mut texts = Vec::new();
        text_objects(&msg, &mut texts);
        // No text object is mrkdwn: the only parsed text is the top-level fallback.
        assert!(texts.iter().all(|(kind, _)| kind != "mrkdwn"), "{texts:?}");
        assert_eq!(msg["mrkdwn"], false);
        // The command appears, verbatim, only as literal text (preformatted or plain_text).
        let literal: Vec<_> = texts
            .iter()
            .filter(|(_, t)| t.contains("<!channel>"))
            .collect();
        assert!(!literal.is_empty());
        assert!(
            literal
                .iter()
                .all(|(kind, _)| kind == "text" || kind == "plain_text"),
            "{literal:?}"
        );
        assert!(
            texts
                .iter()
                .any(|(kind, t)| kind == "text" && t.as_str() == evil)
        );
        // The fallback `text` carries only escaped content.
        let fallback = msg["text"].as_str().unwrap();
        for bad in ['<', '>', '`', '*'] {
            assert!(!fallback.contains(bad), "{fallback}");
        }
        // The requester's exe and the rule reason (also user-controlled) are plain_text.
        let mut all = Vec::new();
        strings(&msg, "", &mut all);
        for needle in ["<!here>", "<@U123>", "<https://evil|click>", "*x*"] {
            let holders: Vec<_> = all.iter().filter(|(_, s)| s.contains(needle)).collect();
            assert!(!holders.is_empty(), "{needle} missing");
            assert!(
                holders.iter().all(|(k, _)| k == "text"),
                "{needle}: {holders:?}"
            );
        }
    }

    #[test]
    fn mrkdwn_escape_neutralises_controls_and_formatting() {
        assert_eq!(
            mrkdwn_escape("<!channel> & `x` *b* _i_ ~s~"),
            "&lt;!channel&gt; &amp; ˋxˋ ∗b∗ ˍiˍ ∼s∼"
        );
    }

    #[test]
    fn slack_message_truncates_long_commands_with_a_marker() {
        let long = "SELECT 1;".repeat(1000);
        let msg = slack_message(&notification(NotifyEvent::Requested, &long));
        let mut texts = Vec::new();
        text_objects(&msg, &mut texts);
        let cmd = &texts
            .iter()
            .find(|(k, t)| k == "text" && t.starts_with("SELECT 1;"))
            .unwrap()
            .1;
        assert!(cmd.chars().count() <= SLACK_COMMAND_MAX);
        assert!(cmd.contains("truncated") && cmd.contains("of 9000 characters"));
        for (kind, t) in &texts {
            if kind == "plain_text" {
                assert!(t.chars().count() <= SLACK_SECTION_MAX);
            }
        }
        assert_eq!(truncate("héllo", 5), "héllo");
        let t = truncate(&"é".repeat(500), 100);
        // Never over the limit, and at most a few characters under (the marker's digits).
        assert!((95..=100).contains(&t.chars().count()), "{t}");
    }

    fn action_ids(msg: &Value) -> Vec<String> {
        msg["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().unwrap().clone())
            .map(|e| e["action_id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn slack_buttons_only_while_decidable() {
        let msg = slack_message(&notification(NotifyEvent::Requested, "DELETE FROM t"));
        assert_eq!(
            action_ids(&msg),
            ["sluice_open", "sluice_approve", "sluice_deny"]
        );
        let actions = msg["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .unwrap();
        assert_eq!(
            actions["elements"][0]["url"],
            "https://sluice.example.com/approvals/apr_01"
        );
        assert_eq!(actions["elements"][1]["value"], "apr_01");
        assert_eq!(actions["elements"][2]["value"], "apr_01");

        let esc = notification(
            NotifyEvent::Escalated {
                groups: vec!["sre".into()],
            },
            "DELETE FROM t",
        );
        assert_eq!(action_ids(&slack_message(&esc)).len(), 3);
        assert!(
            slack_message(&esc)["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("escalated to sre")
        );

        let mut done = notification(NotifyEvent::Decided, "DELETE FROM t");
        done.view.state = State::Denied;
        done.view.decision_reason = Some("not today".into());
        let msg = slack_message(&done);
        assert_eq!(action_ids(&msg), ["sluice_open"]);
        assert!(msg.to_string().contains("Decision: not today"));
    }

    #[test]
    fn webhook_body_has_the_documented_shape() {
        let n = notification(
            NotifyEvent::Escalated {
                groups: vec!["sre".into()],
            },
            "DELETE FROM t",
        );
        let body: Value =
            serde_json::from_slice(&webhook_body(&n, UNIX_EPOCH + Duration::from_secs(1))).unwrap();
        assert_eq!(body["type"], "sluice.approval.escalated");
        assert_eq!(body["time"], "1970-01-01T00:00:01Z");
        assert_eq!(body["link"], "https://sluice.example.com/approvals/apr_01");
        assert_eq!(body["approval"]["id"], "apr_01");
        assert_eq!(body["groups"], json!(["sre"]));
        let plain = notification(NotifyEvent::Requested, "x");
        let body: Value = serde_json::from_slice(&webhook_body(&plain, UNIX_EPOCH)).unwrap();
        assert_eq!(body["type"], "sluice.approval.requested");
        assert!(body.get("groups").is_none());
    }

    /// Shaped like what Slack sends for a button press in a message (trimmed).
    #[test]
    fn parses_a_block_actions_interaction() {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": "U0123ABCD", "username": "alice", "team_id": "T1"},
            "api_app_id": "A1", "token": "legacy", "trigger_id": "1.2.3",
            "container": {"type": "message", "message_ts": "1.2", "channel_id": "C1"},
            "channel": {"id": "C1", "name": "approvals"},
            "response_url": "https://hooks.slack.com/actions/T1/1/abc",
            "actions": [{
                "action_id": "sluice_deny", "block_id": "x", "type": "button",
                "text": {"type": "plain_text", "text": "Deny"},
                "value": "apr_01", "style": "danger", "action_ts": "1.3"
            }]
        });
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        let a = parse_slack_interaction(body.as_bytes()).unwrap();
        assert_eq!(
            a,
            SlackAction {
                decision: Decision::Deny,
                request_id: "apr_01".into(),
                slack_user: "U0123ABCD".into(),
                response_url: Some("https://hooks.slack.com/actions/T1/1/abc".into()),
            }
        );

        let other = json!({"type": "block_actions", "user": {"id": "U1"},
            "actions": [{"action_id": "sluice_open"}]});
        let body = format!(
            "payload={}",
            form_urlencoded::byte_serialize(other.to_string().as_bytes()).collect::<String>()
        );
        assert!(matches!(
            parse_slack_interaction(body.as_bytes()),
            Err(InteractionError::UnknownAction(_))
        ));
        assert!(matches!(
            parse_slack_interaction(b"token=x"),
            Err(InteractionError::NoPayload)
        ));
        assert!(matches!(
            parse_slack_interaction(b"payload=%7B%22type%22%3A%22view_submission%22%7D"),
            Err(InteractionError::Type(_))
        ));
        assert!(matches!(
            parse_slack_interaction(b"payload=not-json"),
            Err(InteractionError::Json(_))
        ));
    }

    /// Accepts one HTTP/1.1 request, answers 200, returns its headers (lower-cased) and body.
    async fn receive_one(listener: TcpListener) -> (String, HashMap<String, String>, Vec<u8>) {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let header_end = loop {
            let mut chunk = [0u8; 4096];
            let n = sock.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the headers ended");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8(buf[..header_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap().to_string();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers["content-length"].parse().unwrap();
        let mut body = buf[header_end..].to_vec();
        while body.len() < len {
            let mut chunk = [0u8; 4096];
            let n = sock.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the body ended");
            body.extend_from_slice(&chunk[..n]);
        }
        sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await
            .unwrap();
        (request_line, headers, body)
    }

    #[tokio::test]
    async fn notifier_delivers_a_signed_webhook_and_a_slack_message() {
        let hook = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let slack = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let notifier = Notifier::start(NotifyConfig {
            webhook: Some((
                format!("http://{}/hooks/sluice", hook.local_addr().unwrap()),
                "receiver-secret".into(),
            )),
            slack_webhook: Some(format!(
                "http://{}/services/T/B/X",
                slack.local_addr().unwrap()
            )),
        });
        let n = notification(NotifyEvent::Requested, "DELETE FROM orders");
        notifier.send(n.clone());

        let wait = Duration::from_secs(20);
        let (line, headers, body) = tokio::time::timeout(wait, receive_one(hook))
            .await
            .expect("the webhook was not called");
        assert_eq!(line, "POST /hooks/sluice HTTP/1.1");
        assert_eq!(headers["content-type"], "application/json");
        let ts = &headers["x-sluice-timestamp"];
        let sig = &headers["x-sluice-signature"];
        assert_eq!(
            verify(
                b"receiver-secret",
                ts,
                sig,
                &body,
                SystemTime::now(),
                Duration::from_secs(300)
            ),
            Ok(())
        );
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["type"], "sluice.approval.requested");
        assert_eq!(json["approval"]["command"], "DELETE FROM orders");

        let (line, _, body) = tokio::time::timeout(wait, receive_one(slack))
            .await
            .expect("Slack was not called");
        assert_eq!(line, "POST /services/T/B/X HTTP/1.1");
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json, slack_message(&n));
    }

    #[test]
    fn an_unconfigured_notifier_does_nothing_and_debug_hides_secrets() {
        Notifier::start(NotifyConfig::default())
            .send(notification(NotifyEvent::Decided, "SELECT 1"));
        let c = NotifyConfig {
            webhook: Some(("https://h.example/x".into(), "topsecret".into())),
            slack_webhook: Some("https://hooks.slack.com/services/SECRET".into()),
        };
        let d = format!("{c:?}");
        assert!(
            !d.contains("topsecret") && !d.contains("SECRET") && d.contains("h.example"),
            "{d}"
        );
    }
}
