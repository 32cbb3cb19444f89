//! Logging and alerting on a decided command, with its text masked as the audit log masks it.

use tracing::{Level, debug, enabled, info, warn};

use crate::{
    conn::ConnCtx,
    inspect::{Verdict, policy::Decision},
    services::{Services, alerts::Alert},
};

/// The text as it may be stored: sensitive values masked. If masking fails the text is
/// withheld, never stored raw.
pub fn masked_text(services: &Services, text: &str) -> String {
    masked_by(&services.masker(), text)
}

/// [`masked_text`] with a given engine (the approval broker, which holds no `Services`).
pub use crate::inspect::masking::masked_by;

/// Logs and alerts on a decision (`decide_us`: how long deciding took). The process log and
/// alerts carry the masked text, like the audit log. Plainly allowed commands are logged at
/// debug level: they are in the audit log, and a line per statement cost a busy gateway more
/// than deciding it; alerts, holds and refusals stay at info.
pub fn report(
    ctx: &ConnCtx,
    services: &Services,
    protocol: &str,
    command: &str,
    decision: &Decision,
    decide_us: u64,
) {
    let policy = services.policy();
    let quiet = !decision.alerts() && matches!(decision.verdict(), Verdict::Allow);
    if quiet && !enabled!(Level::DEBUG) {
        return;
    }
    let command = masked_text(services, command);
    if decision.alerts() {
        let verdict_word = match decision.verdict() {
            Verdict::Allow => "allowed with an alert",
            Verdict::Hold { .. } => "held for approval",
            Verdict::Deny { .. } => "refused",
        };
        warn!(event = "alert", conn_id = ctx.id, resource = %ctx.resource.name, pid = ctx.process.pid,
              action = %decision.action, rule = %decision.rule, reason = %decision.reason, command = %command,
              "command {verdict_word}");
        if let Some(url) = &policy.alerts.webhook {
            services.alerts.send(
                url,
                Alert {
                    kind: "sluice.alert",
                    time: crate::util::now_rfc3339(),
                    action: decision.action.to_string(),
                    rule: decision.rule.clone(),
                    reason: decision.reason.clone(),
                    resource: ctx.resource.name.clone(),
                    target: ctx.target.clone(),
                    conn_id: ctx.id,
                    pid: ctx.process.pid,
                    uid: ctx.process.uid,
                    exe: ctx.process.exe.as_ref().map(|p| p.display().to_string()),
                    command: command.clone(),
                },
            );
        }
    }
    if quiet {
        debug!(event = "command", conn_id = ctx.id, protocol, resource = %ctx.resource.name, action = %decision.action,
               rule = %decision.rule, reason = %decision.reason, decide_us, command = %command, "command");
    } else {
        info!(event = "command", conn_id = ctx.id, protocol, resource = %ctx.resource.name, action = %decision.action,
              rule = %decision.rule, reason = %decision.reason, decide_us, command = %command, "command");
    }
}
