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
        .env("WEB_SSH_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn sluice_mask_filters_a_stream_and_reports_findings() {
    use std::io::Write;
    let input = "2024-05-01T12:00:00Z user=ada@example.com paid with 4111 1111 1111 1111 (order ORD-2024-000123)\n\
                 deploy key AKIAIOSFODNN7EXAMPLE from 10.0.0.1 version 1.2.3.4 id 3f2b8c1e-9a4d-4e6b-8f7a-2c1d0e9b8a76\n";
    let mut child = Command::new(bin_path("sluice"))
        .args(["mask", "--report"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Written in tiny pieces: values split across reads are still caught.
    {
        let mut stdin = child.stdin.take().unwrap();
        for chunk in input.as_bytes().chunks(7) {
            stdin.write_all(chunk).unwrap();
            stdin.flush().unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let masked = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        masked,
        "2024-05-01T12:00:00Z user=[EMAIL] paid with [CARD] (order ORD-2024-000123)\n\
         deploy key [SECRET] from 10.0.0.1 version 1.2.3.4 id 3f2b8c1e-9a4d-4e6b-8f7a-2c1d0e9b8a76\n"
    );
    let report: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(report["findings"]["email"], 1, "{report}");
    assert_eq!(report["findings"]["card"], 1, "{report}");
    assert_eq!(report["findings"]["aws_key"], 1, "{report}");
}
