//! SSH sessions served in-process: a russh client over `tokio::io::duplex` against
//! [`super::serve`]. A refused command never opens the upstream session, so no sshd is needed.

use std::sync::Arc;

use russh::{ChannelMsg, client};

use crate::testkit::{Kit, within};

fn policy() -> &'static str {
    "targets:\n  - name: agents\n    egress: deny\n\
     resources:\n  - name: web\n    protocol: ssh\n    match:\n      - { address: 10.0.0.7, port: 22 }\n\
     \x20   credentials: { mode: inject, user: deploy, password: { value: x } }\n\
     \x20   ssh:\n      host_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDyRNdZSo2p53bXrf/PIT/uoVjL9SVCDmFxwTlDpmbYT\"]\n\
     rules:\n  - { name: shell-reads, resources: [web], shell: [read], action: allow }\n\
     \x20 - { name: no-changes, resources: [web], shell: [write, unknown], action: deny }\n"
}

struct AnyHostKey;

impl client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

#[tokio::test]
async fn a_refused_exec_gets_a_sluice_line_on_stderr_and_exit_status_126() {
    let kit = Kit::new(policy());
    // Nothing listens there: a refused command must not need the upstream.
    let ctx = kit.ctx("web", "127.0.0.1:9".parse().unwrap());
    let services = kit.services.clone();
    let (agent_side, gateway_side) = tokio::io::duplex(64 * 1024);
    let session = tokio::spawn(async move { super::serve(gateway_side, &ctx, &services).await });
    let mut client = within(
        "the SSH handshake",
        client::connect_stream(Arc::new(client::Config::default()), agent_side, AnyHostKey),
    )
    .await
    .expect("SSH handshake");
    let auth = within("authentication", client.authenticate_none("deploy"))
        .await
        .expect("authentication");
    assert!(auth.success(), "{auth:?}");
    let mut channel = within("a session channel", client.channel_open_session())
        .await
        .expect("a session channel");
    let command = "rm -rf /srv/data";
    channel.exec(true, command).await.expect("exec");
    let mut stderr = Vec::new();
    let mut stdout = Vec::new();
    let mut status = None;
    loop {
        match within("the channel", channel.wait()).await {
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => stderr.extend_from_slice(&data),
            Some(ChannelMsg::Data { data }) => stdout.extend_from_slice(&data),
            Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
            Some(ChannelMsg::Close) | None => break,
            Some(_) => {}
        }
    }
    let commands = kit.audit_commands();
    assert_eq!(commands.len(), 1, "{commands:?}");
    let c = &commands[0];
    assert_eq!(
        (c.n, c.protocol.as_str(), c.text.as_str(), c.action.as_str()),
        (1, "ssh-exec", command, "deny")
    );
    assert_eq!(
        String::from_utf8(stderr).unwrap(),
        format!(
            "sluice: command blocked by rule \"{}\": {}\n",
            c.rule, c.reason
        )
    );
    assert_eq!(c.rule, "no-changes");
    assert_eq!(c.reason, "rm removes files (write)");
    assert!(stdout.is_empty());
    assert_eq!(status, Some(super::REFUSED_EXIT_STATUS));
    assert_eq!(super::REFUSED_EXIT_STATUS, 126);
    client
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await
        .expect("disconnect");
    let ended = within("the session to end", session).await.expect("task");
    let transfer = ended.expect("a clean end");
    assert_eq!(transfer.to_upstream, 0);
    kit.close_audit().await;
    let kinds: Vec<String> = kit
        .audit_records()
        .into_iter()
        .map(|(kind, _, _)| kind)
        .collect();
    assert_eq!(kinds, ["session_start", "command", "session_end"]);
}
