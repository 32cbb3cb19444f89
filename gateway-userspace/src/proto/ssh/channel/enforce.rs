//! A decided command's enforcement: recorded through the gate, then run, refused, or held
//! (the agent's input parked meanwhile).

use super::*;

/// Reports and records a decided command (a starting request or a shell line), then enforces
/// it: `Ok` with its number once it may run (allowed, or held and approved), `Err` with the
/// sentence for the agent when refused. `what` names it in that sentence.
#[expect(
    clippy::too_many_arguments,
    reason = "one call per kind of command, each spelled out"
)]
pub(super) async fn enforce_command(
    agent: &Agent,
    rx: &mut ChannelReadHalf,
    parked: &mut Parked,
    protocol: &str,
    what: &str,
    command: Command<'_>,
    payload: &[u8],
    decision: &Decision,
) -> Result<u64, String> {
    let gate = &agent.conn.gate;
    let (verdict, n) = gate.admit(protocol, &command, decision, 0).await;
    match verdict {
        Verdict::Allow => Ok(n),
        Verdict::Deny { rule, reason } => {
            info!(event = "ssh_refused", conn_id = gate.ctx.id, protocol, rule = %rule, "{what} refused");
            Err(format!("{what} blocked by rule \"{rule}\": {reason}"))
        }
        Verdict::Hold { rule, reason } => held(agent, rx, parked, &rule, &reason, command, payload)
            .await
            .map(|()| n),
    }
}

/// Input that arrived while a command was held, applied once it is released.
#[derive(Default)]
pub(super) struct Parked {
    pub input: Vec<u8>,
    pub eof: bool,
    pub closed: bool,
}

/// Holds a command for approval while watching the agent: closing the channel (or Ctrl-C in
/// a terminal) cancels the request; other input is parked.
async fn held(
    agent: &Agent,
    rx: &mut ChannelReadHalf,
    parked: &mut Parked,
    rule: &str,
    reason: &str,
    command: Command<'_>,
    payload: &[u8],
) -> Result<(), String> {
    let spec = HoldSpec {
        protocol: "ssh",
        command,
        rule,
        reason,
        parameters: Vec::new(),
        payload,
    };
    let waiting = async |id: &str| {
        agent
            .notice(&format!(
                "held for approval (request {id}, rule \"{rule}\"); waiting for a reviewer..."
            ))
            .await;
    };
    let pty = agent.pty;
    let cancelled = async move {
        loop {
            match rx.wait().await {
                None | Some(ChannelMsg::Close) => {
                    parked.closed = true;
                    return;
                }
                Some(ChannelMsg::Eof) => parked.eof = true,
                Some(ChannelMsg::Data { data }) => {
                    if pty && data.contains(&0x03) {
                        return;
                    }
                    parked.input.extend_from_slice(&data);
                    if parked.input.len() > MAX_HELD_INPUT {
                        // Stop reading: SSH flow control makes the agent wait.
                        std::future::pending::<()>().await;
                    }
                }
                Some(_) => {}
            }
        }
    };
    agent
        .conn
        .gate
        .hold(spec, async |_| None, waiting, cancelled)
        .await
        .map_err(|r| match &r.by {
            // The reason goes with the rule: nothing else tells the agent why it was held.
            RefusedBy::NoApprovals => format!(
                "command requires approval (rule \"{}\": {}), and no approval service is enabled on this gateway",
                r.rule, r.reason
            ),
            RefusedBy::Reviewer { .. } => format!(
                "{} (approval request {})",
                r.sentence("command"),
                r.request.as_deref().unwrap_or("?")
            ),
            _ => r.sentence("command"),
        })
}
