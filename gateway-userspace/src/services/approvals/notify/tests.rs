use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::{
    slack::{SLACK_COMMAND_MAX, SLACK_SECTION_MAX, truncate},
    *,
};
use crate::services::approvals::model::{ApprovalView, Decision, Preview, Requester, State, Vote};

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
    Notifier::start(NotifyConfig::default()).send(notification(NotifyEvent::Decided, "SELECT 1"));
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
