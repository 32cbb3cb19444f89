//! Parsing and validation of whole policies.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("policy.yaml"))
}

#[test]
fn parses_a_full_policy() {
    let c = parse(
        "listen: 127.0.0.1:16000\n\
         targets:\n  - name: agents\n    egress: deny\n  - name: pod\n    cgroup: /kubepods/pod1\n    egress: allow\n\
         resources:\n  - name: db\n    protocol: tcp\n    match:\n      - { address: 10.0.0.0/24, port: 5432 }\n    upstream: db.internal:5432\n\
         egress:\n  allow: [{ address: 192.0.2.1, port: 443 }]\n  dns: false\n",
    )
    .unwrap();
    assert_eq!(c.listen.port(), 16000);
    assert_eq!(c.listen_v6.unwrap().port(), 16000);
    assert_eq!(c.targets[0].cgroup, TargetCgroup::Managed);
    assert_eq!(
        c.targets[1].cgroup,
        TargetCgroup::Path("kubepods/pod1".into())
    );
    assert_eq!(c.resources[0].matches[0].net.to_string(), "10.0.0.0/24");
    assert_eq!(
        c.egress.allow[0].destination.net.to_string(),
        "192.0.2.1/32"
    );
    assert_eq!(c.egress.allow[0].transport, Transport::Tcp);
    assert!(!c.egress.dns);
}

#[test]
fn the_shipped_example_policy_is_valid() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/policy.yaml"
    ));
    // The example reads its secret from the environment; give it one without touching the
    // process environment (tests run in parallel).
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("{ env: ORDERS_DB_PASSWORD }", "{ value: x }")
        .replace("{ env: WEB_SSH_PASSWORD }", "{ value: x }");
    let c = Config::parse(&text, path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.targets[0].egress, EgressMode::Deny);
    assert!(!c.resources.is_empty());
    // Its ssh resource: reads run, everything else is held, destruction is denied.
    use crate::inspect::{
        guardrails::shell::analyze_shell,
        policy::{Subject, decide_shell},
    };
    let web = Subject {
        target: "agents",
        resource: "web",
    };
    let decide = |cmd: &str| decide_shell(&c, &web, &analyze_shell(cmd));
    assert_eq!(
        decide("journalctl -u nginx --since today | tail").action,
        Action::Allow
    );
    assert_eq!(decide("systemctl restart nginx").action, Action::Hold);
    assert_eq!(decide("./fix.sh").action, Action::Hold);
    assert_eq!(decide("rm -rf /").action, Action::Deny);
}

/// Every key of the example policy is described by the JSON Schema shipped for editors, and
/// every enum the schema lists for guardrails and statement kinds is one the parser accepts.
#[test]
fn the_json_schema_describes_the_example_policy() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}policy.schema.json")).unwrap(),
    )
    .unwrap();
    let example: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(format!("{root}policy.yaml")).unwrap())
            .unwrap();
    fn resolve<'a>(
        schema: &'a serde_json::Value,
        node: &'a serde_json::Value,
    ) -> &'a serde_json::Value {
        match node.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => &schema["$defs"][r.trim_start_matches("#/$defs/")],
            None => node,
        }
    }
    fn walk(
        schema: &serde_json::Value,
        node: &serde_json::Value,
        value: &serde_json::Value,
        path: &str,
    ) {
        let node = resolve(schema, node);
        match value {
            serde_json::Value::Object(map) => {
                assert_eq!(
                    node["additionalProperties"], false,
                    "{path}: schema must be closed like the parser"
                );
                for (k, v) in map {
                    let sub = &node["properties"][k];
                    assert!(!sub.is_null(), "{path}.{k} is not in the schema");
                    walk(schema, sub, v, &format!("{path}.{k}"));
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(schema, &node["items"], v, &format!("{path}[{i}]"));
                }
            }
            _ => {}
        }
    }
    walk(&schema, &schema, &example, "");
    let enum_of = |p: &str| -> Vec<String> {
        schema["properties"]["rules"]["items"]["properties"][p]["items"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        enum_of("guardrails"),
        crate::inspect::guardrails::all_rule_ids().collect::<Vec<_>>()
    );
    assert_eq!(
        enum_of("statements"),
        crate::inspect::guardrails::STATEMENT_KINDS
    );
    assert_eq!(
        enum_of("shell"),
        crate::inspect::guardrails::shell::SHELL_KINDS
    );
}

#[test]
fn audit_settings_default_to_the_data_dir_and_are_checked() {
    let base = "targets:\n  - name: a\n    egress: allow\ndata_dir: /srv/sluice\n";
    let ok = parse(base).unwrap();
    let a = &ok.audit;
    assert!(a.enabled);
    assert!(matches!(&a.store, StoreSettings::Sqlite(p) if p == Path::new("/srv/sluice/audit.db")));
    assert_eq!(a.key, Path::new("/srv/sluice/audit.key"));
    assert!(!a.node.is_empty());
    let pg = parse(&format!(
        "{base}audit:\n  node: gw-1\n  postgres: {{ connection: \"host=db user=s dbname=audit\", password: {{ value: pw }} }}\n  capture: {{ rows: 5, terminal_bytes: 1024 }}\n  syslog: {{ target: \"udp://127.0.0.1:514\" }}\n"
    ))
    .unwrap();
    assert!(matches!(pg.audit.store, StoreSettings::Postgres { .. }));
    assert_eq!((pg.audit.node.as_str(), pg.audit.capture.rows), ("gw-1", 5));
    assert_eq!(
        (pg.audit.capture.bytes, pg.audit.capture.terminal_bytes),
        (262_144, 1024)
    );
    assert!(pg.audit.syslog.is_some());

    let messages = |text: &str| -> Vec<String> {
        parse(&format!("{base}{text}"))
            .unwrap_err()
            .diagnostics
            .into_iter()
            .map(|d| d.message)
            .collect()
    };
    let m = messages(
        "audit:\n  store: /x.db\n  postgres: { connection: \"host=db\" }\n  node: \"two words\"\n  checkpoint: { every: 0, interval: 1ms }\n  capture: { bytes: 999999999, terminal_bytes: 9999999999 }\n",
    );
    for expected in [
        "are exclusive",
        "printable characters",
        "at least 1",
        "at least 100ms",
        "`capture.bytes` is at most",
        "`capture.terminal_bytes` is at most",
    ] {
        assert!(m.iter().any(|x| x.contains(expected)), "{expected}: {m:?}");
    }
    let m = messages("audit:\n  syslog: { target: \"ftp://x:1\" }\n");
    assert!(
        m.iter().any(|x| x.contains("invalid syslog target")),
        "{m:?}"
    );
}

#[test]
fn approval_settings_are_checked() {
    let base = "targets:\n  - name: a\n    egress: allow\n\
                resources:\n  - name: db\n    protocol: postgres\n    match: [ { address: 10.0.0.1, port: 5432 } ]\n";
    let messages = |text: &str| -> Vec<String> {
        parse(&format!("{base}{text}"))
            .unwrap_err()
            .diagnostics
            .into_iter()
            .map(|d| d.message)
            .collect()
    };
    // A hold nobody may approve, and approvals nobody can sign in to.
    let m =
        messages("rules:\n  - { name: w, statements: [update], action: hold }\napprovals: {}\n");
    assert!(m.iter().any(|x| x.contains("nobody may approve")), "{m:?}");
    assert!(
        m.iter().any(|x| x.contains("no reviewer can sign in")),
        "{m:?}"
    );
    // `approval` on a rule that does not hold; an escalation after the timeout; bad hours.
    let m = messages(
        "rules:\n  - { name: r, statements: [select], action: allow, approval: { groups: [dba] } }\n\
         \x20 - { name: w, statements: [update], action: hold, approval: { groups: [dba], timeout: 1m, escalation: [ { after: 2m, groups: [sre] } ], hours: { days: [moon], from: \"18:00\", to: \"09:00\" } } }\n\
         approvals: {}\nidentity: { static_tokens: [ { subject: me, token: { value: short } } ] }\n",
    );
    for expected in [
        "only applies to rules with `action: hold`",
        "before the timeout",
        "`moon` is not a day",
        "later than `from`",
        "at least 16 characters",
    ] {
        assert!(m.iter().any(|x| x.contains(expected)), "{expected}: {m:?}");
    }
    let ok = parse(&format!(
        "{base}rules:\n  - {{ name: w, statements: [update], action: hold, approval: {{ groups: [dba], required: 2, timeout: 10m, escalation: [ {{ after: 5m, groups: [sre] }} ] }} }}\n\
         approvals: {{ listen: 127.0.0.1:0 }}\nidentity: {{ oidc: {{ issuer: https://idp.example.com, audience: sluice }} }}\n"
    ))
    .unwrap();
    let policy = ok.rules[0].approval.as_ref().unwrap();
    assert_eq!(policy.required, 2);
    assert_eq!(policy.escalation[0].groups, ["sre"]);
    assert_eq!(ok.identity.oidc.as_ref().unwrap().groups_claim, "groups");
}

#[test]
fn reports_every_error_with_its_position() {
    let err = parse(
        "listen: 0.0.0.0:1\n\
         targets:\n  - name: root\n    cgroup: /\n    egress: deny\n  - name: root\n    egress: deny\n\
         resources:\n  - name: db\n    protocol: tcp\n    match:\n      - { address: not-an-ip, port: 5432 }\n      - { address: 10.0.0.1, port: 0 }\n",
    )
    .unwrap_err();
    let lines: Vec<(u64, &str)> = err
        .diagnostics
        .iter()
        .map(|d| (d.line, d.message.as_str()))
        .collect();
    assert_eq!(lines.len(), 5, "{err}");
    assert_eq!(lines[0].0, 1);
    assert!(lines[0].1.contains("loopback"));
    assert_eq!(lines[1].0, 4);
    assert!(lines[1].1.contains("root cgroup"));
    assert_eq!(lines[2].0, 6);
    assert!(lines[2].1.contains("defined twice"));
    assert_eq!(lines[3].0, 12);
    assert!(lines[3].1.contains("not-an-ip"));
    assert_eq!(lines[4].0, 13);
    let shown = err.to_string();
    assert!(shown.starts_with("policy.yaml:1:9: error:"), "{shown}");
    assert!(shown.contains("hint:"));
}

#[test]
fn unknown_fields_are_refused_with_a_position() {
    let err = parse("targets:\n  - name: a\n    egres: deny\n").unwrap_err();
    assert_eq!(err.diagnostics.len(), 1);
    assert_eq!(err.diagnostics[0].line, 3, "{err}");
    assert!(err.diagnostics[0].message.contains("egres"), "{err}");
}

#[test]
fn secrets_come_from_env_or_file_and_never_show_in_debug() {
    use std::os::unix::fs::PermissionsExt;
    let file = std::env::temp_dir().join(format!("sluice-secret-{}", std::process::id()));
    std::fs::write(&file, "from-file\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = parse(&format!(
        "resources:\n  - name: db\n    protocol: postgres\n    match: [{{ address: 10.0.0.5, port: 5432 }}]\n    credentials: {{ mode: inject, user: app, password: {{ file: {} }} }}\n",
        file.display()
    ))
    .unwrap();
    let Credentials::Inject {
        password: Some(p), ..
    } = &c.resources[0].credentials
    else {
        panic!()
    };
    assert_eq!(p.expose(), "from-file", "trailing newline dropped");
    assert!(
        !format!("{c:?}").contains("from-file"),
        "Debug must not show secrets"
    );
    let err = parse(
        "resources:\n  - name: db\n    protocol: postgres\n    match: [{ address: 10.0.0.5, port: 5432 }]\n    credentials: { mode: inject, password: { env: SLUICE_TEST_UNSET_VARIABLE } }\n",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("SLUICE_TEST_UNSET_VARIABLE` is not set"),
        "{err}"
    );
    let _ = std::fs::remove_file(file);
}

/// A secret file written with the usual umask (0644) is refused with its position, as
/// every other `file:` secret of the policy (credentials, tokens, webhook secrets).
#[test]
fn secret_files_readable_by_others_are_refused_with_their_position() {
    use std::os::unix::fs::PermissionsExt;
    let file = std::env::temp_dir().join(format!("sluice-open-secret-{}", std::process::id()));
    std::fs::write(&file, "a-reviewer-token-of-24-chars\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = parse(&format!(
        "resources:\n  - name: db\n    protocol: postgres\n    match: [{{ address: 10.0.0.5, port: 5432 }}]\n    credentials: {{ mode: inject, user: app, password: {{ file: {f} }} }}\n\
         approvals: {{}}\nidentity:\n  static_tokens:\n    - {{ subject: dana, groups: [dba], token: {{ file: {f} }} }}\n    - {{ subject: eve, groups: [dba], token: {{ value: another-token-of-24-chars }} }}\n\
         audit:\n  postgres: {{ connection: \"host=db\", password: {{ file: {f} }} }}\n",
        f = file.display()
    ))
    .unwrap_err();
    let expected = format!(
        "permissions 0644 for '{f}' are too open; it must be readable by its owner only: chmod 600 {f}",
        f = file.display()
    );
    let lines: Vec<u64> = err.diagnostics.iter().map(|d| d.line).collect();
    assert_eq!(lines, [5, 9, 12], "{err}");
    assert!(
        err.diagnostics.iter().all(|d| d.message == expected),
        "{err}"
    );
    assert!(err.to_string().starts_with("policy.yaml:5:"), "{err}");
    let _ = std::fs::remove_file(file);
}

#[test]
fn syntax_errors_name_their_position_once() {
    let err = parse("targets:\n  - name: a\n    egress: [deny\n").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("policy.yaml:"), "{text}");
    assert!(!text.contains("error: error"), "{text}");
    assert!(!text.contains(" line "), "{text}");
}

#[test]
fn empty_sections_are_empty_lists() {
    let c = parse("targets:\nresources:\n").unwrap();
    assert!(c.targets.is_empty() && c.resources.is_empty());
}

#[test]
fn nested_targets_and_duplicate_matches_are_refused() {
    let err = parse(
        "targets:\n  - { name: a, cgroup: k/p1, egress: deny }\n  - { name: b, cgroup: k/p1/c, egress: deny }\n\
         resources:\n  - { name: x, protocol: tcp, match: [{ address: 10.0.0.1, port: 1 }] }\n  - { name: y, protocol: tcp, match: [{ address: 10.0.0.1/32, port: 1 }] }\n",
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("inside target cgroup `k/p1`"), "{text}");
    assert!(text.contains("already matched by resource `x`"), "{text}");
}

/// A policy that requires task-level containment is refused, not run with less.
#[test]
fn strict_containment_is_refused_and_standard_is_the_default() {
    let base = "targets:\n  - { name: agents, egress: deny }\n";
    assert_eq!(parse(base).unwrap().containment, Containment::Standard);
    assert_eq!(
        parse(&format!("containment: standard\n{base}"))
            .unwrap()
            .containment,
        Containment::Standard
    );
    let e = parse(&format!("containment: strict\n{base}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("policy.yaml:1:14"), "{e}");
    assert!(
        e.contains("task-level containment") && e.contains("sluice exec"),
        "{e}"
    );
    let e = parse(&format!("containment: lax\n{base}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a containment level"), "{e}");
}
