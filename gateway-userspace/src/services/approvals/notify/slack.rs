//! The Slack incoming-webhook message: Block Kit built so that no agent-supplied string becomes
//! markup.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::*;
use crate::services::approvals::model::{ApprovalView, Decision, State};

/// Slack Block Kit limits (characters), kept with a margin where Slack counts differently.
const SLACK_HEADER_MAX: usize = 150;
const SLACK_FIELD_MAX: usize = 2000;
pub(super) const SLACK_SECTION_MAX: usize = 3000;
/// The command's preformatted block: no documented cap of its own, so the section's.
pub(super) const SLACK_COMMAND_MAX: usize = 2900;
const SLACK_URL_MAX: usize = 3000;
const SLACK_VALUE_MAX: usize = 2000;

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
pub(super) fn truncate(s: &str, max: usize) -> String {
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
