//! The policy commands, run as a user would.

use std::process::Command;

use serde_json::Value;
use sluice_tests::{bin_path, temp_dir};

const POLICY: &str = "targets:\n  - { name: agents, egress: deny }\nresources:\n  - name: db\n    protocol: postgres\n    match: [{ address: 10.0.0.5, port: 5432 }]\nrules:\n  - { name: reads, statements: [select], action: allow }\n  - { name: writes, statements: [insert, update, delete], action: hold }\n";

fn decide(sql: &str) -> Value {
    let dir = temp_dir();
    let path = dir.join("p.yaml");
    std::fs::write(&path, POLICY).unwrap();
    let out = Command::new(bin_path("sluice"))
        .args(["policy", "test", "--config"])
        .arg(&path)
        .args(["--resource", "db", "--sql", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn policy_test_prints_the_decision_as_json() {
    let d = decide("SELECT * FROM orders");
    assert_eq!(
        (d["action"].as_str(), d["rule"].as_str()),
        (Some("allow"), Some("reads"))
    );
    let d = decide("insert into orders values (1)");
    assert_eq!(
        (d["action"].as_str(), d["rule"].as_str()),
        (Some("hold"), Some("writes"))
    );
    let d = decide("/* harmless */ drop   TABLE \"Orders\"");
    assert_eq!(
        (d["action"].as_str(), d["rule"].as_str()),
        (Some("deny"), Some("drop"))
    );
    assert!(d["reason"].as_str().unwrap().contains("Orders"), "{d}");
}

#[test]
fn policy_check_reports_every_error_and_exits_1() {
    let dir = temp_dir();
    let path = dir.join("bad.yaml");
    std::fs::write(&path, "listen: 10.0.0.1:1\nresources:\n  - { name: db, protocol: postgres, match: [{ address: nope, port: 5432 }] }\nrules:\n  - { name: r, statements: [selekt], action: deny }\n").unwrap();
    let out = Command::new(bin_path("sluice"))
        .args(["policy", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches(": error: ").count(), 3, "{err}");
    assert!(err.contains("bad.yaml:1:9: error:"), "{err}");
    assert!(err.contains("bad.yaml:3:"), "{err}");
    assert!(err.contains("bad.yaml:5:"), "{err}");
    let ok = Command::new(bin_path("sluice"))
        .args(["policy", "check"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/policy.yaml"
        ))
        .env("ORDERS_DB_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
