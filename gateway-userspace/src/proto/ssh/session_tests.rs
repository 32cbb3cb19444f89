//! SSH sessions served in-process: a russh client over `tokio::io::duplex` against
//! [`super::serve`], the upstream a scripted russh server on loopback (see
//! [`crate::testkit::ssh`]). No root, no eBPF, no sshd.

use crate::testkit::{
    Kit,
    ssh::{Agent, Exec, ScriptedSsh},
};

/// `host_key`: the upstream's, in `authorized_keys` form.
fn policy(host_key: &str) -> String {
    format!(
        "targets:\n  - name: agents\n    egress: deny\n\
         resources:\n  - name: web\n    protocol: ssh\n    match:\n      - {{ address: 10.0.0.7, port: 22 }}\n\
         \x20   credentials: {{ mode: inject, user: deploy, password: {{ value: upstream-pw }} }}\n\
         \x20   ssh:\n      host_keys: [\"{host_key}\"]\n\
         rules:\n\
         \x20 - {{ name: shell-reads, resources: [web], shell: [read], action: allow }}\n\
         \x20 - {{ name: no-changes, resources: [web], shell: [write], action: deny }}\n\
         \x20 - name: unknown-needs-approval\n    resources: [web]\n    shell: [unknown]\n    action: hold\n\
         \x20   approval: {{ groups: [sre], timeout: 10m }}\n\
         approvals: {{}}\n\
         identity: {{ static_tokens: [ {{ subject: bob, groups: [sre], token: {{ value: 0123456789abcdef0123 }} }} ] }}\n"
    )
}

/// A key nobody connects to: a refused command must not need the upstream.
const UNUSED_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDyRNdZSo2p53bXrf/PIT/uoVjL9SVCDmFxwTlDpmbYT";

#[tokio::test]
async fn a_refused_exec_gets_a_sluice_line_on_stderr_and_exit_status_126() {
    let kit = Kit::new(&policy(UNUSED_KEY));
    // Nothing listens there.
    let agent = Agent::connect(&kit, "web", "127.0.0.1:9".parse().unwrap(), "deploy").await;
    let command = "rm -rf /srv/data";
    let out = agent.exec(command).await;
    let commands = kit.audit_commands();
    assert_eq!(commands.len(), 1, "{commands:?}");
    let c = &commands[0];
    assert_eq!(
        (c.n, c.protocol.as_str(), c.text.as_str(), c.action.as_str()),
        (1, "ssh-exec", command, "deny")
    );
    assert_eq!(
        (c.rule.as_str(), c.reason.as_str()),
        ("no-changes", "rm removes files (write)")
    );
    assert_eq!(
        out,
        Exec {
            stdout: String::new(),
            stderr: "sluice: command blocked by rule \"no-changes\": rm removes files (write)\n"
                .into(),
            status: Some(super::REFUSED_EXIT_STATUS),
        }
    );
    assert_eq!(super::REFUSED_EXIT_STATUS, 126);
    let transfer = agent.disconnect().await.expect("a clean end");
    assert_eq!(transfer.to_upstream, 0);
    kit.close_audit().await;
    let kinds: Vec<String> = kit
        .audit_records()
        .into_iter()
        .map(|(kind, _, _)| kind)
        .collect();
    assert_eq!(kinds, ["session_start", "command", "session_end"]);
}

#[tokio::test]
async fn a_read_runs_upstream_and_a_held_command_runs_once_approved() {
    let mut up = ScriptedSsh::start("deploy", "upstream-pw").await;
    let mut kit = Kit::new(&policy(&up.host_key));
    let agent = Agent::connect(&kit, "web", up.addr, "agent-user").await;

    assert_eq!(
        agent.exec("df -h").await,
        Exec {
            stdout: "ran: df -h\n".into(),
            stderr: String::new(),
            status: Some(0),
        }
    );
    assert_eq!(up.ran(), ["df -h"]);

    let mut channel = agent.exec_start("./deploy.sh --now").await;
    let request = kit.next_request().await;
    assert_eq!(
        (
            request.command.as_str(),
            request.rule.as_str(),
            request.protocol.as_str()
        ),
        ("./deploy.sh --now", "unknown-needs-approval", "ssh")
    );
    // Nothing of it ran while it waited.
    assert_eq!(up.ran(), Vec::<String>::new());
    kit.broker()
        .decide(
            &request.id,
            &crate::services::approvals::settings::Reviewer {
                subject: "bob".into(),
                groups: vec!["sre".into()],
            },
            crate::services::approvals::model::Decision::Approve,
            None,
            None,
        )
        .expect("approve");
    assert_eq!(
        Agent::exec_output(&mut channel).await,
        Exec {
            stdout: "ran: ./deploy.sh --now\n".into(),
            stderr: format!(
                "sluice: held for approval (request {}, rule \"unknown-needs-approval\"); waiting for a reviewer...\n",
                request.id
            ),
            status: Some(0),
        }
    );
    agent.disconnect().await.expect("a clean end");
    assert_eq!(up.ran(), ["./deploy.sh --now"]);
    let commands = kit.audit_commands();
    assert_eq!(
        commands
            .iter()
            .map(|c| (c.text.as_str(), c.action.as_str(), c.rule.as_str()))
            .collect::<Vec<_>>(),
        [
            ("df -h", "allow", "shell-reads"),
            ("./deploy.sh --now", "hold", "unknown-needs-approval"),
        ]
    );
}
