//! Port forwards (`ssh -L`): decided through the gate, then relayed uninspected.

use super::*;

/// Decides on a local port forward (`ssh -L`, a direct-tcpip channel) and opens it upstream.
pub(crate) async fn forward(
    conn: &Conn,
    host: &str,
    port: u32,
    originator: &str,
    originator_port: u32,
) -> Result<Channel<russh::client::Msg>, russh::ChannelOpenFailure> {
    let text = format!("<port forward to {host}:{port}>");
    let allowed = conn
        .ctx
        .resource
        .ssh()
        .is_some_and(|s| s.port_forwarding == Forwarding::Allow);
    let decision = Decision {
        action: if allowed { Action::Allow } else { Action::Deny },
        rule: "port-forwarding".into(),
        reason: format!(
            "port forwarding is {} on this resource (ssh.port_forwarding)",
            if allowed { "allowed" } else { "denied" }
        ),
    };
    let (verdict, _) = conn
        .gate
        .admit(
            "ssh-forward",
            &Command::Session {
                kind: "port-forward",
                text: &text,
            },
            &decision,
            0,
        )
        .await;
    if verdict != Verdict::Allow {
        return Err(russh::ChannelOpenFailure::AdministrativelyProhibited);
    }
    let upstream = conn
        .upstream()
        .await
        .map_err(|_| russh::ChannelOpenFailure::ConnectFailed)?;
    upstream
        .channel_open_direct_tcpip(host, port, originator, originator_port)
        .await
        .map_err(|_| russh::ChannelOpenFailure::ConnectFailed)
}

/// Relays a forwarded connection's bytes (not inspected: they are not commands).
pub(crate) async fn relay_forward(
    channel: Channel<Msg>,
    upstream: Channel<russh::client::Msg>,
    conn: Arc<Conn>,
) {
    let mut agent = channel.into_stream();
    let mut up = upstream.into_stream();
    if let Ok((to_up, to_agent)) = tokio::io::copy_bidirectional(&mut agent, &mut up).await {
        use std::sync::atomic::Ordering::Relaxed;
        conn.bytes_to_upstream.fetch_add(to_up, Relaxed);
        conn.bytes_to_agent.fetch_add(to_agent, Relaxed);
    }
}
