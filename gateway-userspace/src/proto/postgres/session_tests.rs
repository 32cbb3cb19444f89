//! PostgreSQL sessions served in-process: the agent over `tokio::io::duplex`, the database a
//! scripted server on loopback (see [`crate::testkit`]). No root, no eBPF, no real database.

use crate::testkit::{
    Kit,
    postgres::{
        Agent, BACKEND_PID, ScriptedPg, Seen, bind, command_complete, error, execute, msg, parse,
        query, ready, sync,
    },
};

const PASSWORD: &str = "s3cret-upstream";

fn policy() -> String {
    format!(
        "targets:\n  - name: agents\n    egress: deny\n\
         resources:\n  - name: db\n    protocol: postgres\n    match:\n      - {{ address: 10.0.0.5, port: 5432 }}\n\
         \x20   credentials: {{ mode: inject, user: app, password: {{ value: {PASSWORD} }} }}\n\
         \x20   postgres: {{ read_only: off }}\n\
         rules:\n\
         \x20 - {{ name: reads, statements: [select], action: allow }}\n\
         \x20 - {{ name: no-deletes, statements: [delete], action: deny }}\n\
         \x20 - name: writes-need-approval\n    statements: [update]\n    action: hold\n\
         \x20   approval: {{ groups: [dba], timeout: 10m, preview: {{ explain: false }} }}\n\
         approvals: {{}}\n\
         identity: {{ static_tokens: [ {{ subject: alice, groups: [dba], token: {{ value: 0123456789abcdef0123 }} }} ] }}\n"
    )
}

/// The refusal of a statement the policy denies.
fn denied(rule: &str, reason: &str) -> Vec<u8> {
    error(
        "42501",
        &format!("sluice: statement blocked by rule \"{rule}\""),
        Some(reason),
        Some(
            "The gateway's policy does not allow this statement; nothing was sent to the database.",
        ),
    )
}

/// The messages the agent's upstream connection (the first) received. sluice's own lookups
/// (the masking catalog) come on connections of their own, which the scripted server answers
/// too.
fn upstream_messages(seen: &[Seen]) -> Vec<Vec<u8>> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Message { conn: 1, raw } => Some(raw.clone()),
            _ => None,
        })
        .collect()
}

/// Logs in and checks what the scripted server saw of the login: the gateway's user and the
/// settings it pins, never the agent's own user.
async fn login(kit: &Kit, up: &mut ScriptedPg) -> Agent {
    let agent = Agent::connect(kit, "db", up.addr, "agent-user").await;
    let Seen::Startup { conn: 1, params } = up.next().await else {
        panic!("the first connection's startup");
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("user"), Some("app"));
    assert_eq!(get("database"), Some("orders"));
    assert_eq!(get("standard_conforming_strings"), Some("on"));
    assert_eq!(get("client_encoding"), Some("UTF8"));
    agent
}

#[tokio::test]
async fn the_login_injects_the_credential_and_the_agent_gets_a_key_minted_by_sluice() {
    let kit = Kit::new(&policy());
    let mut up = ScriptedPg::start(PASSWORD).await;
    let ctx = kit.ctx("db", up.addr);
    let services = kit.services.clone();
    let pg = kit.pg.clone();
    let (mut io, gateway_side) = tokio::io::duplex(64 * 1024);
    let session = tokio::spawn(async move {
        crate::proto::postgres::serve(gateway_side, &ctx, &services, &pg).await
    });
    let mut body = 196_608i32.to_be_bytes().to_vec();
    body.extend_from_slice(b"user\0agent-user\0\0");
    let mut startup = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    startup.extend_from_slice(&body);
    tokio::io::AsyncWriteExt::write_all(&mut io, &startup)
        .await
        .unwrap();
    let mut agent = Agent {
        io,
        session,
        key: (0, 0),
    };
    let hello = agent.until_ready().await;
    // AuthenticationOk, the server's settings as it reported them, a key that is not the
    // server's, ReadyForQuery.
    assert_eq!(hello[0], msg(b'R', &0i32.to_be_bytes()));
    assert_eq!(hello[1], msg(b'S', b"server_version\x0017.0\0"));
    assert_eq!(hello[2], msg(b'S', b"standard_conforming_strings\0on\0"));
    assert_eq!(hello[3], msg(b'S', b"client_encoding\0UTF8\0"));
    assert_eq!(hello[4], msg(b'S', b"default_transaction_read_only\0off\0"));
    assert_eq!(hello[5][0], b'K');
    assert_ne!(&hello[5][5..9], &BACKEND_PID.to_be_bytes());
    assert_eq!(hello[6], ready(b'I'));
    assert_eq!(hello.len(), 7);
    let Seen::Startup { params, .. } = up.next().await else {
        panic!("startup");
    };
    assert!(params.contains(&("user".into(), "app".into())));
    // Without a database the agent's user names it, as PostgreSQL does; the gateway's user
    // logs in.
    assert!(params.contains(&("database".into(), "app".into())));
    let Seen::Message { raw, .. } = up.next().await else {
        panic!("password");
    };
    assert_eq!(raw, msg(b'p', format!("{PASSWORD}\0").as_bytes()));
    agent.terminate().await.expect("a clean end");
}

#[tokio::test]
async fn a_denied_query_is_replaced_by_an_empty_one_and_refused_with_42501() {
    let kit = Kit::new(&policy());
    let mut up = ScriptedPg::start(PASSWORD).await;
    let mut agent = login(&kit, &mut up).await;
    let sql = "DELETE FROM orders WHERE id = 7";
    agent.send(&query(sql)).await;
    let answer = agent.until_ready().await;
    let commands = kit.audit_commands();
    assert_eq!(commands.len(), 1, "{commands:?}");
    let c = &commands[0];
    assert_eq!(
        (c.n, c.protocol.as_str(), c.text.as_str(), c.action.as_str()),
        (1, "simple", sql, "deny")
    );
    assert_eq!(c.rule, "no-deletes");
    assert_eq!(c.sha256, crate::util::sha256_hex(sql.as_bytes()));
    assert_eq!(answer, [denied("no-deletes", &c.reason), ready(b'I')]);
    assert_eq!(c.reason, "delete statement");
    // The session goes on: the next statement runs.
    agent.send(&query("SELECT 1")).await;
    assert_eq!(
        agent.until_ready().await,
        [command_complete("SELECT 1"), ready(b'I')]
    );
    agent.terminate().await.expect("a clean end");
    let seen = up.until_closed(1).await;
    assert_eq!(
        upstream_messages(&seen),
        [
            msg(b'p', format!("{PASSWORD}\0").as_bytes()),
            query(""),
            query("SELECT 1"),
            msg(b'X', b""),
        ]
    );
}

#[tokio::test]
async fn a_denied_parse_drops_its_batch_and_is_refused_right_before_its_ready_for_query() {
    let kit = Kit::new(&policy());
    let mut up = ScriptedPg::start(PASSWORD).await;
    let mut agent = login(&kit, &mut up).await;
    // Skip the password message.
    assert!(matches!(up.next().await, Seen::Message { .. }));
    let sql = "DELETE FROM orders WHERE id = $1";
    let batch = [parse(sql), bind(&["7"]), execute(), sync()].concat();
    agent.send(&batch).await;
    let answer = agent.until_ready().await;
    let commands = kit.audit_commands();
    assert_eq!(commands.len(), 1, "{commands:?}");
    let c = &commands[0];
    assert_eq!(
        (
            c.protocol.as_str(),
            c.text.as_str(),
            c.action.as_str(),
            c.rule.as_str()
        ),
        ("extended", sql, "deny", "no-deletes")
    );
    assert_eq!(c.reason, "delete statement");
    assert_eq!(answer, [denied("no-deletes", &c.reason), ready(b'I')]);
    // The server answered the Sync: everything it got of the batch is already recorded.
    assert_eq!(upstream_messages(&up.so_far()), [sync()]);
    agent.terminate().await.expect("a clean end");
    assert_eq!(
        upstream_messages(&up.until_closed(1).await),
        [msg(b'X', b"")]
    );
}

#[tokio::test]
async fn a_held_statement_runs_once_when_approved_and_never_when_denied() {
    let mut kit = Kit::new(&policy());
    let mut up = ScriptedPg::start(PASSWORD).await;
    let mut agent = login(&kit, &mut up).await;
    assert!(matches!(up.next().await, Seen::Message { .. }));
    let alice = crate::services::approvals::settings::Reviewer {
        subject: "alice".into(),
        groups: vec!["dba".into()],
    };
    use crate::services::approvals::model::Decision;

    // Approved: exactly the held bytes reach the server, once.
    let first = query("UPDATE orders SET paid = true WHERE id = 1");
    agent.send(&first).await;
    let request = kit.next_request().await;
    assert_eq!(
        request.command,
        "UPDATE orders SET paid = true WHERE id = 1"
    );
    assert_eq!(request.rule, "writes-need-approval");
    assert_eq!(
        (request.requester.target.as_str(), request.requester.uid),
        ("agents", 1000)
    );
    assert_eq!(request.sha256, crate::util::sha256_hex(&first));
    // Nothing of it went upstream while it waited.
    assert_eq!(upstream_messages(&up.so_far()), Vec::<Vec<u8>>::new());
    kit.broker()
        .decide(&request.id, &alice, Decision::Approve, None, None)
        .expect("approve");
    assert_eq!(
        agent.until_ready().await,
        [command_complete("UPDATE 1"), ready(b'I')]
    );

    // Denied: the agent is told who denied it and why; the server never sees it.
    agent
        .send(&query("UPDATE orders SET paid = true WHERE id = 2"))
        .await;
    let request2 = kit.next_request().await;
    kit.broker()
        .decide(
            &request2.id,
            &alice,
            Decision::Deny,
            Some("not during the audit".into()),
            None,
        )
        .expect("deny");
    let answer = agent.until_ready().await;
    let commands = kit.audit_commands();
    assert_eq!(
        commands
            .iter()
            .map(|c| (c.text.as_str(), c.action.as_str(), c.rule.as_str()))
            .collect::<Vec<_>>(),
        [
            (
                "UPDATE orders SET paid = true WHERE id = 1",
                "hold",
                "writes-need-approval"
            ),
            (
                "UPDATE orders SET paid = true WHERE id = 2",
                "hold",
                "writes-need-approval"
            ),
        ]
    );
    assert_eq!(commands[1].reason, "update statement");
    assert_eq!(
        answer,
        [
            error(
                "42501",
                "sluice: statement denied by alice: not during the audit",
                Some(&format!(
                    "approval request {} (rule \"writes-need-approval\": {})",
                    request2.id, commands[1].reason
                )),
                Some("Nothing was sent to the database."),
            ),
            ready(b'I'),
        ]
    );
    agent.terminate().await.expect("a clean end");
    assert_eq!(
        upstream_messages(&up.until_closed(1).await),
        [first, query(""), msg(b'X', b"")]
    );
}

#[tokio::test]
async fn a_statement_that_cannot_be_audited_is_refused_with_rule_audit() {
    let kit = Kit::new(&policy());
    let mut up = ScriptedPg::start(PASSWORD).await;
    let mut agent = login(&kit, &mut up).await;
    assert!(matches!(up.next().await, Seen::Message { .. }));
    kit.close_audit().await;
    agent.send(&query("SELECT 1")).await;
    assert_eq!(
        agent.until_ready().await,
        [
            denied(
                "audit",
                "the audit log cannot record it: the audit writer has stopped"
            ),
            ready(b'I'),
        ]
    );
    agent.terminate().await.expect("a clean end");
    assert_eq!(
        upstream_messages(&up.until_closed(1).await),
        [query(""), msg(b'X', b"")]
    );
    // Nothing of the refused statement is in the log.
    assert!(kit.audit_commands().is_empty());
}

#[tokio::test]
async fn a_held_extended_batch_is_released_whole_once_approved() {
    let mut kit = Kit::new(&policy());
    let mut up = ScriptedPg::start(PASSWORD).await;
    let mut agent = login(&kit, &mut up).await;
    assert!(matches!(up.next().await, Seen::Message { .. }));
    let sql = "UPDATE orders SET paid = true WHERE id = $1";
    // Preparing runs nothing: the Parse goes on; the batch that executes it is held from its
    // Bind to its Sync.
    let held = [bind(&["42"]), execute(), sync()].concat();
    agent.send(&[parse(sql), held.clone()].concat()).await;
    let request = kit.next_request().await;
    assert_eq!(
        (request.command.as_str(), request.rule.as_str()),
        (sql, "writes-need-approval")
    );
    assert_eq!(request.parameters, [Some("42".to_string())]);
    assert_eq!(request.sha256, crate::util::sha256_hex(&held));
    kit.broker()
        .decide(
            &request.id,
            &crate::services::approvals::settings::Reviewer {
                subject: "alice".into(),
                groups: vec!["dba".into()],
            },
            crate::services::approvals::model::Decision::Approve,
            None,
            None,
        )
        .expect("approve");
    assert_eq!(
        agent.until_ready().await,
        [
            msg(b'1', b""),
            msg(b'2', b""),
            command_complete("UPDATE 1"),
            ready(b'I')
        ]
    );
    agent.terminate().await.expect("a clean end");
    assert_eq!(
        upstream_messages(&up.until_closed(1).await),
        [
            parse(sql),
            bind(&["42"]),
            // Response masking's own Describe of the portal (its NoData is not relayed).
            msg(b'D', b"P\0"),
            execute(),
            sync(),
            msg(b'X', b"")
        ]
    );
    let commands = kit.audit_commands();
    assert_eq!(
        commands
            .iter()
            .map(|c| (c.protocol.as_str(), c.text.as_str(), c.action.as_str()))
            .collect::<Vec<_>>(),
        [("extended", sql, "hold")]
    );
}

#[tokio::test]
async fn a_cancel_request_ends_a_hold_with_57014_and_is_forwarded_upstream() {
    let mut kit = Kit::new(&policy());
    let mut up = ScriptedPg::start(PASSWORD).await;
    let mut agent = login(&kit, &mut up).await;
    assert!(matches!(up.next().await, Seen::Message { .. }));
    // The agent holds a key minted by sluice, not the server's.
    assert_ne!(
        agent.key,
        (BACKEND_PID, crate::testkit::postgres::BACKEND_SECRET)
    );
    agent
        .send(&query("UPDATE orders SET paid = true WHERE id = 3"))
        .await;
    let request = kit.next_request().await;
    // The test runtime has one thread: the session is already waiting on the request (and
    // listening for a cancel) when its event reaches the test.
    agent.cancel(&kit, up.addr).await;
    assert_eq!(
        agent.until_ready().await,
        [
            error(
                "57014",
                "canceling statement due to user request (it was held for approval)",
                Some(&format!("approval request {} cancelled", request.id)),
                Some("Nothing was sent to the database."),
            ),
            ready(b'I'),
        ]
    );
    assert_eq!(
        kit.broker().get(&request.id).map(|v| v.state),
        Some(crate::services::approvals::model::State::Cancelled)
    );
    agent.terminate().await.expect("a clean end");
    let mut seen = up.until_closed(1).await;
    // The server's own key went upstream with the cancel, on a connection of its own (which
    // may be recorded after the session's end).
    let cancel = loop {
        if let Some(c) = seen.iter().find(|s| matches!(s, Seen::Cancel { .. })) {
            break c.clone();
        }
        seen.push(up.next().await);
    };
    let Seen::Cancel { conn, pid, secret } = cancel else {
        unreachable!()
    };
    assert!(conn > 1);
    assert_eq!(
        (pid, secret),
        (BACKEND_PID, crate::testkit::postgres::BACKEND_SECRET)
    );
    assert_eq!(upstream_messages(&seen), [query(""), msg(b'X', b"")]);
}
