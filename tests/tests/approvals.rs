//! Approval holds end to end: psql (or tokio-postgres) in an intercepted cgroup as the agent, a
//! real PostgreSQL, reviewers using the `sluice approvals` CLI, the HTTP API and the web page.

use std::{
    process::{Command, Output},
    thread::JoinHandle,
    time::Duration,
};

use serde_json::Value;
use sluice_tests::{
    ClientRun, Gateway, PG_SCRAM, PgServer, Policy, TestCgroup, TestNet, bin_path, inject,
    is_event, pg_resource, probe, psql_in, require_root,
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
    require_root();
    let net = TestNet::new();
    let pg = PgServer::start(&net);
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny");
    policy.raw_resources = pg_resource("orders-db", &pg, &inject(PG_SCRAM));
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
        let cg = self.cg.dir.clone();
        let conninfo = self.pg.conninfo(PG_SCRAM.0, "not-the-password");
        let sql: Vec<String> = sql.iter().map(|s| s.to_string()).collect();
        std::thread::spawn(move || {
            let refs: Vec<&str> = sql.iter().map(String::as_str).collect();
            psql_in(&cg, &conninfo, &refs)
        })
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
        let out = self.cli(ALICE, &["show", id]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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
