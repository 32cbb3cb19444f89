//! Approval holds end to end: psql (or tokio-postgres) in an intercepted cgroup as the agent, a
//! real PostgreSQL, reviewers using the `sluice approvals` CLI, the HTTP API and the web page.
//!
//! One file past ~700 lines on purpose: every test shares the hold fixture (gateway,
//! reviewers, CLI, API, web page); a file per channel would be a test binary per channel.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    process::{Command, Output},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, SystemTime},
};

use serde_json::Value;
use sluice::services::approvals::notify::verify;
use sluice_tests::{
    ClientRun, Gateway, PG_SCRAM, PgServer, Policy, TestCgroup, TestNet, bin_path, inject,
    is_event, oidc::OidcProvider, pg_resource, probe, psql_in, require_root, stderr,
};

const WAIT: Duration = Duration::from_secs(15);
pub const ALICE: &str = "alice-token-0123456789";
pub const BOB: &str = "bob-token-0123456789";
pub const CAROL: &str = "carol-token-0123456789";

const UPDATE: &str = "UPDATE accounts SET balance = balance + 1 WHERE id = 3";

struct Setup {
    _net: TestNet,
    pg: PgServer,
    cg: TestCgroup,
    gw: Gateway,
    api: String,
}

/// Static reviewer tokens: alice and carol are DBAs, bob is an SRE.
fn static_identity() -> String {
    format!(
        "identity:\n  static_tokens:\n    - {{ subject: alice, groups: [dba], token: {{ value: {ALICE} }} }}\n    - {{ subject: bob, groups: [sre], token: {{ value: {BOB} }} }}\n    - {{ subject: carol, groups: [dba], token: {{ value: {CAROL} }} }}\n"
    )
}

/// Writes are held under `approval`; reads and transaction control pass.
fn rules(approval: &str) -> String {
    format!(
        "rules:\n  - name: reads\n    statements: [select, show, set, transaction]\n    action: allow\n  - name: writes-need-approval\n    statements: [insert, update, delete]\n    action: hold\n    approval: {approval}\n"
    )
}

fn setup_with(approval: &str, extra: &str, identity: &str) -> Setup {
    setup_resource(approval, extra, identity, "")
}

/// A gateway for `orders-db` (with `resource_extra` appended to the resource) whose writes are
/// held under `approval`.
fn setup_resource(approval: &str, extra: &str, identity: &str, resource_extra: &str) -> Setup {
    require_root();
    let net = TestNet::new();
    let pg = PgServer::start(&net);
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny");
    policy.raw_resources = format!(
        "{}{resource_extra}",
        pg_resource("orders-db", &pg, &inject(PG_SCRAM))
    );
    policy.extra = format!(
        "{}approvals:\n  listen: 127.0.0.1:0\n{extra}{identity}",
        rules(approval)
    );
    let gw = Gateway::start(&policy);
    let api = api_of(&gw);
    Setup {
        _net: net,
        pg,
        cg,
        gw,
        api,
    }
}

fn api_of(gw: &Gateway) -> String {
    let ev = gw.log.wait_for(WAIT, |v| is_event(v, "approvals_api"));
    format!("http://{}", ev["listen"].as_str().unwrap())
}

fn setup(approval: &str) -> Setup {
    setup_with(approval, "", &static_identity())
}

const ONE_DBA: &str = "{ groups: [dba], timeout: 60s, preview: { explain: true, dry_run: true } }";

impl Setup {
    /// psql as the agent, in the background (it blocks while its statement is held).
    fn agent(&self, sql: &[&str]) -> JoinHandle<ClientRun> {
        self.agent_with_token("not-the-password", sql)
    }

    /// psql as an agent presenting `token` as its password (ignored unless `agent_auth: oidc`).
    fn agent_with_token(&self, token: &str, sql: &[&str]) -> JoinHandle<ClientRun> {
        let cg = self.cg.dir.clone();
        let conninfo = self.pg.conninfo(PG_SCRAM.0, token);
        let sql: Vec<String> = sql.iter().map(|s| s.to_string()).collect();
        std::thread::spawn(move || {
            let refs: Vec<&str> = sql.iter().map(String::as_str).collect();
            psql_in(&cg, &conninfo, &refs)
        })
    }

    /// Headless Chromium on the web page (`tests/browser/approve.mjs`) acting on request `id`.
    fn browser(&self, token: &str, id: &str, args: &[&str]) -> Output {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/approve.mjs");
        Command::new("node")
            .args([script, &self.api, token, id])
            .args(args)
            .output()
            .expect("node (run `cargo xtask setup`)")
    }

    /// The id of the `n`th request opened (0-based), waiting for it.
    fn request(&self, n: usize) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let opened = self.gw.log.matching(|v| is_event(v, "approval_requested"));
            if let Some(ev) = opened.get(n) {
                return ev["id"].as_str().unwrap().to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "request {n} was never opened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn balance(&self) -> String {
        self.pg
            .admin_sql("SELECT balance FROM accounts WHERE id = 3")
    }

    /// `sluice approvals --url API --token TOKEN ARGS...`
    fn cli(&self, token: &str, args: &[&str]) -> Output {
        Command::new(bin_path("sluice"))
            .args(["approvals", "--url", &self.api, "--token", token])
            .args(args)
            .output()
            .expect("sluice approvals")
    }

    fn show(&self, id: &str) -> Value {
        self.show_as(ALICE, id)
    }

    fn show_as(&self, token: &str, id: &str) -> Value {
        let out = self.cli(token, &["show", id]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[test]
fn held_update_is_approved_from_the_cli_and_runs_once() {
    let s = setup(ONE_DBA);
    let agent = s.agent(&[UPDATE, "SELECT balance FROM accounts WHERE id = 3"]);
    let id = s.request(0);
    // Held: nothing reached the database.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.balance(), "100");
    assert!(
        !agent.is_finished(),
        "the agent waits while its statement is held"
    );

    let view = s.show(&id);
    assert_eq!(view["state"], "pending");
    assert_eq!(view["command"], UPDATE);
    assert_eq!(view["rule"], "writes-need-approval");
    assert_eq!(
        view["requester"]["target"].as_str(),
        Some(s.gw.target.as_str())
    );
    assert!(view["requester"]["exe"].as_str().unwrap().ends_with("psql"));
    // Preview: the planner's estimate and the exact rows of a rolled-back dry run.
    assert_eq!(view["preview"]["rows_affected"], 1, "{view}");
    assert!(
        view["preview"]["estimated_rows"].as_f64().unwrap() >= 1.0,
        "{view}"
    );
    assert_eq!(s.balance(), "100", "the dry run was rolled back");
    let listed = s.cli(BOB, &["list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));

    let out = s.cli(ALICE, &["approve", &id, "--reason", "ticket OPS-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("approved"));
    let run = agent.join().unwrap();
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "UPDATE 1\n101",
        "the agent sees its own change"
    );
    assert_eq!(s.balance(), "101", "ran exactly once");
    assert_eq!(s.show(&id)["state"], "approved");
    // An approval is single use: a second decision is refused.
    let again = s.cli(CAROL, &["approve", &id]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("409"), "{}", stderr(&again));

    // The audit trail of the agent's session: the held command, the request and its decision
    // (bound to the same bytes), then what the agent got.
    let session = view["requester"]["session"].as_str().unwrap().to_string();
    // The session's last records are committed a few ms after it ends: read until it is there.
    let deadline = std::time::Instant::now() + WAIT;
    let records: Vec<Value> = loop {
        let export =
            s.gw.sluice(&["audit", "replay", &session, "--format", "jsonl"]);
        assert!(export.status.success(), "{}", stderr(&export));
        let records: Vec<Value> = String::from_utf8_lossy(&export.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if records.iter().any(|r| r["kind"] == "session_end")
            || std::time::Instant::now() > deadline
        {
            break records;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let kinds: Vec<String> = records
        .iter()
        .map(|r| match r["kind"].as_str().unwrap() {
            "command" => format!("command:{}", r["body"]["action"].as_str().unwrap()),
            "approval" => format!("approval:{}", r["body"]["event"].as_str().unwrap()),
            k => k.to_string(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "session_start",
            "command:hold",
            "approval:requested",
            "approval:decided",
            "result",
            "command:allow",
            "result",
            "session_end"
        ],
        "{records:#?}"
    );
    let decided = &records[3]["body"];
    assert_eq!(decided["state"], "approved");
    assert_eq!(decided["decisions"][0]["reviewer"], "alice");
    assert_eq!(decided["decisions"][0]["reason"], "ticket OPS-1");
    assert_eq!(decided["sha256"], view["sha256"]);
    assert_eq!(records[4]["body"]["sets"][0]["tag"], "UPDATE 1");
}

#[test]
fn denied_statement_returns_the_reviewers_reason() {
    let s = setup(ONE_DBA);
    let agent = s.agent(&[UPDATE]);
    let id = s.request(0);
    let no_reason = s.cli(ALICE, &["deny", &id, "--reason", " "]);
    assert!(!no_reason.status.success(), "a denial needs a reason");
    let out = s.cli(ALICE, &["deny", &id, "--reason", "not during the freeze"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = agent.join().unwrap();
    assert!(!run.status.success());
    assert!(run.stderr.contains("42501"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("denied by alice: not during the freeze"),
        "{}",
        run.stderr
    );
    assert_eq!(s.balance(), "100");
    assert_eq!(s.show(&id)["state"], "denied");
}

#[test]
fn unanswered_request_times_out() {
    let s = setup("{ groups: [dba], timeout: 2s }");
    let agent = s.agent(&[UPDATE]);
    let id = s.request(0);
    let run = agent.join().unwrap();
    assert!(!run.status.success());
    assert!(run.stderr.contains("timed out after 2s"), "{}", run.stderr);
    assert_eq!(s.balance(), "100");
    assert_eq!(s.show(&id)["state"], "expired");
    let late = s.cli(ALICE, &["approve", &id]);
    assert!(stderr(&late).contains("expired"), "{}", stderr(&late));
    assert_eq!(s.balance(), "100", "a late approval runs nothing");
}

#[test]
fn wrong_group_and_double_votes_are_refused_and_two_of_two_run() {
    let s = setup("{ groups: [dba], required: 2, timeout: 60s }");
    let agent = s.agent(&[UPDATE]);
    let id = s.request(0);
    let wrong = s.cli(BOB, &["approve", &id]);
    assert!(!wrong.status.success());
    assert!(stderr(&wrong).contains("403"), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("dba"), "{}", stderr(&wrong));

    let first = s.cli(ALICE, &["approve", &id]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(String::from_utf8_lossy(&first.stdout).contains("pending (1 of 2 approvals)"));
    let twice = s.cli(ALICE, &["approve", &id]);
    assert!(
        stderr(&twice).contains("already voted"),
        "{}",
        stderr(&twice)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.balance(), "100", "one approval of two runs nothing");
    assert!(!agent.is_finished());

    let second = s.cli(CAROL, &["approve", &id]);
    assert!(second.status.success(), "{}", stderr(&second));
    let run = agent.join().unwrap();
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(s.balance(), "101");
    let view = s.show(&id);
    assert_eq!(view["votes"].as_array().unwrap().len(), 2);
}

#[test]
fn an_approval_covers_one_statement_only() {
    let s = setup(ONE_DBA);
    // The same statement twice in one session: each needs its own approval.
    let agent = s.agent(&[UPDATE, UPDATE]);
    let first = s.request(0);
    assert!(s.cli(ALICE, &["approve", &first]).status.success());
    let second = s.request(1);
    assert_ne!(first, second);
    assert_eq!(s.show(&second)["state"], "pending");
    assert_eq!(
        s.show(&first)["sha256"],
        s.show(&second)["sha256"],
        "same bytes, still a new request"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.balance(), "101", "only the approved statement ran");
    assert!(
        s.cli(ALICE, &["deny", &second, "--reason", "once is enough"])
            .status
            .success()
    );
    let run = agent.join().unwrap();
    assert!(
        run.stderr.contains("once is enough"),
        "{} {}",
        run.stdout,
        run.stderr
    );
    assert_eq!(s.balance(), "101");
}

#[test]
fn just_in_time_grant_allows_the_same_shape_until_it_expires() {
    let s = setup(ONE_DBA);
    let agent = s.agent(&[UPDATE]);
    let id = s.request(0);
    let out = s.cli(ALICE, &["approve", &id, "--grant", "4s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(agent.join().unwrap().status.success());
    let grants = s.cli(BOB, &["grants", "--json"]);
    let grants: Value = serde_json::from_slice(&grants.stdout).unwrap();
    assert_eq!(
        grants[0]["pattern"],
        "update accounts set balance = balance + ? where id = ?"
    );
    assert_eq!(grants[0]["created_by"], "alice");

    // Same shape, other literals: runs at once under the grant.
    let run = s
        .agent(&["UPDATE accounts SET balance = balance + 5 WHERE id = 4"])
        .join()
        .unwrap();
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(
        s.pg.admin_sql("SELECT balance FROM accounts WHERE id = 4"),
        "105"
    );
    s.gw.log.wait_for(WAIT, |v| is_event(v, "grant_used"));
    // Another shape is still held.
    let other = s.agent(&["UPDATE accounts SET balance = 0 WHERE id > 0"]);
    let held = s.request(1);
    assert!(
        s.cli(ALICE, &["deny", &held, "--reason", "no"])
            .status
            .success()
    );
    assert!(!other.join().unwrap().status.success());

    // Expired: held again.
    std::thread::sleep(Duration::from_secs(4));
    let late = s.agent(&["UPDATE accounts SET balance = balance + 7 WHERE id = 5"]);
    let again = s.request(2);
    assert!(
        s.cli(ALICE, &["deny", &again, "--reason", "grant over"])
            .status
            .success()
    );
    assert!(!late.join().unwrap().status.success());
    assert_eq!(
        s.pg.admin_sql("SELECT balance FROM accounts WHERE id = 5"),
        "100"
    );
}

#[test]
fn revoked_grant_no_longer_applies() {
    let s = setup(ONE_DBA);
    let agent = s.agent(&[UPDATE]);
    let id = s.request(0);
    let out = s.cli(ALICE, &["approve", &id, "--grant", "1h", "--scope", "rule"]);
    assert!(out.status.success(), "{}", stderr(&out));
    agent.join().unwrap();
    let grants: Value =
        serde_json::from_slice(&s.cli(ALICE, &["grants", "--json"]).stdout).unwrap();
    let gid = grants[0]["id"].as_str().unwrap().to_string();
    assert_eq!(grants[0]["pattern"], "writes-need-approval");
    // Rule scope: any statement the rule holds.
    let run = s
        .agent(&["DELETE FROM accounts WHERE id = 10"])
        .join()
        .unwrap();
    assert!(run.status.success(), "{}", run.stderr);
    assert!(s.cli(BOB, &["revoke", &gid]).status.success());
    let held = s.agent(&["DELETE FROM accounts WHERE id = 9"]);
    let again = s.request(1);
    assert!(
        s.cli(ALICE, &["deny", &again, "--reason", "revoked"])
            .status
            .success()
    );
    assert!(!held.join().unwrap().status.success());
    assert_eq!(s.pg.admin_sql("SELECT count(*) FROM accounts"), "9");
}

#[test]
fn gateway_killed_while_pending_abandons_the_request() {
    let mut s = setup(ONE_DBA);
    let agent = s.agent(&[UPDATE]);
    let id = s.request(0);
    s.gw.crash();
    let run = agent.join().unwrap();
    assert!(!run.status.success(), "the agent gets an error");
    s.gw.restart();
    s.api = api_of(&s.gw);
    s.gw.log.wait_for(WAIT, |v| {
        is_event(v, "approval_abandoned") && v["id"] == id.as_str()
    });
    let view = s.show(&id);
    assert_eq!(view["state"], "abandoned");
    let late = s.cli(ALICE, &["approve", &id]);
    assert!(stderr(&late).contains("abandoned"), "{}", stderr(&late));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.balance(), "100", "nothing executes later");
}

#[test]
fn graceful_stop_tells_the_waiting_agent() {
    let mut s = setup(ONE_DBA);
    let agent = s.agent(&[UPDATE]);
    s.request(0);
    assert!(s.gw.stop().success());
    let run = agent.join().unwrap();
    assert!(run.stderr.contains("57P01"), "{}", run.stderr);
    assert!(run.stderr.contains("shutting down"), "{}", run.stderr);
    assert_eq!(s.balance(), "100");
}

#[test]
fn extended_protocol_batch_is_held_with_its_parameters() {
    let s = setup(ONE_DBA);
    let cg = s.cg.dir.clone();
    let conninfo = s.pg.conninfo(PG_SCRAM.0, "wrong");
    // tokio-postgres: Parse/Describe/Sync (passes: preparing runs nothing), then
    // Bind/Execute/Sync with the parameters (held).
    let agent = std::thread::spawn(move || {
        probe(
            Some(&cg),
            &[
                "pg",
                &conninfo,
                "params",
                "UPDATE accounts SET balance = balance - $1::text::int WHERE id = $2::text::int RETURNING balance",
                "4",
                "7",
            ],
        )
    });
    let id = s.request(0);
    let view = s.show(&id);
    assert_eq!(view["preview"]["rows_affected"], 1, "{view}");
    // tokio-postgres sends text parameters in binary format: hex, with the text beside it.
    assert_eq!(
        view["parameters"],
        serde_json::json!(["\\x34 (\"4\")", "\\x37 (\"7\")"]),
        "{view}"
    );
    assert_eq!(
        s.pg.admin_sql("SELECT balance FROM accounts WHERE id = 7"),
        "100"
    );
    assert!(s.cli(ALICE, &["approve", &id]).status.success());
    let out = agent.join().unwrap();
    assert_eq!(
        out["results"][0]["rows"],
        serde_json::json!([[96]]),
        "{out}"
    );
    assert_eq!(
        s.pg.admin_sql("SELECT balance FROM accounts WHERE id = 7"),
        "96"
    );
}

#[test]
fn cancel_request_cancels_a_held_statement() {
    let s = setup(ONE_DBA);
    let cg = s.cg.dir.clone();
    let conninfo = s.pg.conninfo(PG_SCRAM.0, "wrong");
    // The probe sends a CancelRequest 500 ms after the statement.
    let out = probe(Some(&cg), &["pg", &conninfo, "cancel", UPDATE]);
    assert_eq!(out["results"][0]["query"]["code"], "57014", "{out}");
    let ev =
        s.gw.log
            .wait_for(WAIT, |v| is_event(v, "approval_finished"));
    assert_eq!(ev["state"], "cancelled");
    assert_eq!(s.balance(), "100");
}

#[test]
fn outside_approval_hours_a_hold_is_refused_at_once() {
    // A window of one minute on no day at all is never open.
    let s = setup("{ groups: [dba], hours: { days: [], from: \"00:00\", to: \"00:01\" } }");
    let run = s.agent(&[UPDATE]).join().unwrap();
    assert!(!run.status.success());
    assert!(run.stderr.contains("approval hours"), "{}", run.stderr);
    assert_eq!(s.balance(), "100");
}

#[test]
fn api_requires_a_valid_token() {
    let s = setup(ONE_DBA);
    let out = s.cli("not-a-token", &["list"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    let who = s.cli(BOB, &["whoami"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&who.stdout).unwrap()["subject"],
        "bob"
    );
}

/// Reviewers (and the agent) with tokens from a real OpenID Connect provider.
fn oidc_setup(provider: &OidcProvider, approval: &str, extra: &str) -> Setup {
    let identity = format!(
        "identity:\n  oidc: {{ issuer: \"{}\", audience: sluice, leeway: 0s }}\n",
        provider.issuer
    );
    // The agent presents an OIDC token as its password.
    setup_resource(approval, extra, &identity, "    agent_auth: oidc\n")
}

fn provider() -> OidcProvider {
    OidcProvider::start(&[("alice", &["dba"]), ("bob", &["sre"]), ("carol", &["dba"])])
        .expect("starting the OIDC provider (run `cargo xtask setup`)")
}

#[test]
fn oidc_reviewers_cannot_approve_their_own_request_and_bad_tokens_are_refused() {
    let idp = provider();
    let s = oidc_setup(&idp, ONE_DBA, "");
    let alice = idp.token("alice").unwrap();
    // alice runs the agent herself.
    let agent = s.agent_with_token(&alice, &[UPDATE]);
    let id = s.request(0);
    let view = s.show_as(&alice, &id);
    assert_eq!(view["requester"]["subject"], "alice");

    let own = s.cli(&alice, &["approve", &id]);
    assert!(stderr(&own).contains("403"), "{}", stderr(&own));
    assert!(
        stderr(&own).contains("your own request"),
        "{}",
        stderr(&own)
    );

    let bob = idp.token("bob").unwrap();
    assert!(stderr(&s.cli(&bob, &["approve", &id])).contains("403"));

    let wrong_audience = idp.token_with("carol", "another-service", 600).unwrap();
    let out = s.cli(&wrong_audience, &["approve", &id]);
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    let mut forged = idp.token("carol").unwrap();
    // Change one character of the signature.
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let out = s.cli(&forged, &["approve", &id]);
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    let expired = idp.token_with("carol", "sluice", 1).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let out = s.cli(&expired, &["approve", &id]);
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    assert!(stderr(&out).contains("expired"), "{}", stderr(&out));
    assert_eq!(s.show_as(&alice, &id)["state"], "pending");

    let carol = idp.token("carol").unwrap();
    let out = s.cli(&carol, &["approve", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(agent.join().unwrap().status.success());
    assert_eq!(s.balance(), "101");
}

#[test]
fn agent_with_a_bad_token_is_refused_at_login() {
    let idp = provider();
    let s = oidc_setup(&idp, ONE_DBA, "");
    let expired = idp.token_with("alice", "sluice", 1).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    for token in [expired.as_str(), "not-a-jwt"] {
        let run = s.agent_with_token(token, &["SELECT 1"]).join().unwrap();
        assert!(!run.status.success());
        assert!(run.stderr.contains("token was refused"), "{}", run.stderr);
    }
    let ok = s
        .agent_with_token(&idp.token("alice").unwrap(), &["SELECT 1"])
        .join()
        .unwrap();
    assert!(ok.status.success(), "{}", ok.stderr);
}

/// Lower-cased header names and values, and the body, of one POST.
type Post = (Vec<(String, String)>, Vec<u8>);

/// Collects HTTP POSTs (headers and body) sent to it.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Post>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let store = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut headers = Vec::new();
                let mut line = String::new();
                reader.read_line(&mut line).ok();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.trim().split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let len = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                reader.read_exact(&mut body).ok();
                let mut stream = reader.into_inner();
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                store.lock().unwrap().push((headers, body));
            }
        });
        Receiver { url, seen }
    }

    /// Bodies (as JSON) received so far whose `type` is `kind`, waiting for at least one.
    fn wait_json(&self, pred: impl Fn(&Value) -> bool) -> (Vec<(String, String)>, Vec<u8>, Value) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            for (h, b) in self.seen.lock().unwrap().iter() {
                if let Ok(v) = serde_json::from_slice::<Value>(b)
                    && pred(&v)
                {
                    return (h.clone(), b.clone(), v);
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no matching POST arrived"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

#[test]
fn escalation_lets_the_next_group_decide_and_signed_webhooks_report_it() {
    let hook = Receiver::start();
    let slack = Receiver::start();
    let s = setup_with(
        "{ groups: [dba], timeout: 60s, escalation: [ { after: 2s, groups: [sre] } ] }",
        &format!(
            "  notify:\n    webhook: {{ url: \"{}\", secret: {{ value: hook-secret }} }}\n    slack: {{ webhook_url: {{ value: \"{}\" }} }}\n",
            hook.url, slack.url
        ),
        &static_identity(),
    );
    // A statement whose text tries to forge Slack markup.
    let sneaky = "UPDATE accounts SET balance = balance + 1 WHERE id = 3 /* <!channel> *approved* <https://evil.example|click> */";
    let agent = s.agent(&[sneaky]);
    let id = s.request(0);
    let (headers, body, requested) = hook.wait_json(|v| v["type"] == "sluice.approval.requested");
    assert_eq!(requested["approval"]["id"], id.as_str());
    assert!(
        requested["link"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/approvals/{id}"))
    );
    verify(
        b"hook-secret",
        header(&headers, "x-sluice-timestamp"),
        header(&headers, "x-sluice-signature"),
        &body,
        SystemTime::now(),
        Duration::from_secs(300),
    )
    .expect("the webhook is signed with the shared secret");
    assert!(
        verify(
            b"other",
            header(&headers, "x-sluice-timestamp"),
            header(&headers, "x-sluice-signature"),
            &body,
            SystemTime::now(),
            Duration::from_secs(300)
        )
        .is_err()
    );
    // Slack: the statement is plain text, never markup.
    let (_, _, message) = slack.wait_json(|v| v.get("blocks").is_some());
    assert!(
        !message["text"].as_str().unwrap().contains("<!channel>"),
        "{message}"
    );
    let mut carriers = Vec::new();
    markup_carriers(&message, &mut carriers);
    assert!(
        !carriers.is_empty(),
        "the statement is in the message: {message}"
    );
    for kind in carriers {
        assert!(
            kind == "plain_text" || kind == "text",
            "user text inside a `{kind}` object could be read as markup: {message}"
        );
    }

    // Before the escalation the SRE may not decide.
    let early = s.cli(BOB, &["approve", &id]);
    assert!(stderr(&early).contains("403"), "{}", stderr(&early));
    let (_, _, escalated) = hook.wait_json(|v| v["type"] == "sluice.approval.escalated");
    assert_eq!(escalated["groups"], serde_json::json!(["sre"]));
    let out = s.cli(BOB, &["approve", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(agent.join().unwrap().status.success());
    assert_eq!(s.balance(), "101");
    let (_, _, decided) = hook.wait_json(|v| v["type"] == "sluice.approval.decided");
    assert_eq!(decided["approval"]["state"], "approved");
}

/// Types of the JSON objects whose string fields carry the forged markup.
fn markup_carriers(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            let kind = map.get("type").and_then(Value::as_str).unwrap_or("");
            for (k, child) in map {
                match child {
                    Value::String(text) if k != "type" && text.contains("<!channel>") => {
                        out.push(kind.to_string())
                    }
                    _ => markup_carriers(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| markup_carriers(i, out)),
        _ => {}
    }
}

/// Slack's request signature: `v0=` hex HMAC-SHA256 over `v0:{timestamp}:{body}`.
fn slack_sign(secret: &[u8], ts: u64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let bytes = mac.finalize().into_bytes();
    format!(
        "v0={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[test]
fn slack_buttons_decide_only_with_a_valid_signature_and_a_mapped_user() {
    let s = setup_with(
        ONE_DBA,
        "  notify:\n    slack:\n      signing_secret: { value: slack-signing-secret }\n      users: { U0CAROL: { subject: carol, groups: [dba] } }\n",
        &static_identity(),
    );
    let agent = s.agent(&[UPDATE]);
    let id = s.request(0);
    let post = |user: &str, secret: &[u8]| -> (u16, String) {
        let payload = serde_json::json!({
            "type": "block_actions",
            "user": { "id": user },
            "actions": [ { "action_id": "sluice_approve", "value": id } ],
            "response_url": "https://hooks.slack.com/actions/x"
        });
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let out = Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"])
            .arg(format!("{}/slack/interactions", s.api))
            .args(["-H", &format!("x-slack-request-timestamp: {ts}")])
            .args([
                "-H",
                &format!("x-slack-signature: {}", slack_sign(secret, ts, &body)),
            ])
            .args(["-H", "content-type: application/x-www-form-urlencoded"])
            .args(["--data-binary", &body])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (resp, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), resp.to_string())
    };
    let (code, _) = post("U0CAROL", b"wrong-secret");
    assert_eq!(code, 401);
    let (code, resp) = post("U0MALLORY", b"slack-signing-secret");
    assert_eq!(code, 200);
    assert!(resp.contains("not a sluice reviewer"), "{resp}");
    assert_eq!(s.show(&id)["state"], "pending");
    let (code, resp) = post("U0CAROL", b"slack-signing-secret");
    assert_eq!(code, 200);
    assert!(resp.contains("approved"), "{resp}");
    assert!(agent.join().unwrap().status.success());
    assert_eq!(s.show(&id)["votes"][0]["reviewer"], "carol");
    assert_eq!(s.balance(), "101");
}

#[test]
fn web_page_approves_in_headless_chromium() {
    let s = setup(ONE_DBA);
    let agent = s.agent(&[UPDATE]);
    let id = s.request(0);
    let out = s.browser(ALICE, &id, &["approve", "approved in the browser"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["state"], "approved", "{result}");
    assert_eq!(result["command"], UPDATE);
    assert!(agent.join().unwrap().status.success());
    assert_eq!(s.balance(), "101");
    assert_eq!(s.show(&id)["votes"][0]["reason"], "approved in the browser");
}

#[test]
fn web_page_shows_a_refusal() {
    let idp = provider();
    let s = oidc_setup(&idp, ONE_DBA, "");
    let alice = idp.token("alice").unwrap();
    let agent = s.agent_with_token(&alice, &[UPDATE]);
    let id = s.request(0);
    let out = s.browser(&alice, &id, &["approve"]);
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        result["error"]
            .as_str()
            .unwrap_or_default()
            .contains("your own request"),
        "{result} {}",
        stderr(&out)
    );
    assert_eq!(result["state"], "pending");
    let carol = idp.token("carol").unwrap();
    assert!(
        s.cli(&carol, &["deny", &id, "--reason", "no"])
            .status
            .success()
    );
    assert!(!agent.join().unwrap().status.success());
}
