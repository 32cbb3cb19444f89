//! Strategies (partial, keyed hash, per detector) and column plans (rules, `ssn`/`dob` columns,
//! name heuristics).

use super::{
    columns::{glob_match, name_tokens},
    tests::{assert_untouched, default_engine, engine_with, mask_with},
    *,
};

#[test]
fn strategy_partial() {
    let e = engine_with(r#"{"strategy":"partial"}"#);
    assert_eq!(mask_with(&e, "4242424242424242"), "************4242");
    assert_eq!(mask_with(&e, "4242 4242 4242 4242"), "**** **** **** 4242");
    assert_eq!(mask_with(&e, "john.doe@example.com"), "****@example.com");
    assert_eq!(mask_with(&e, "(415) 555-0132"), "(***) ***-**32");
    assert_eq!(mask_with(&e, "123-45-6789"), "***-**-6789");
    assert_eq!(
        mask_with(&e, "GB82WEST12345698765432"),
        "GB****************5432"
    );
    assert_eq!(mask_with(&e, "AKIAIOSFODNN7EXAMPLE"), "[SECRET]");
    let ip = engine_with(r#"{"strategy":"partial","detectors":{"ip":{"enabled":true}}}"#);
    assert_eq!(mask_with(&ip, "10.20.30.40"), "10.20.*.*");
}

#[test]
fn strategy_hash_is_deterministic_keyed_and_joinable() {
    let cfg = r#"{"strategy":"hash","hash_key":"0123456789abcdef-policy-key"}"#;
    let e = engine_with(cfg);
    let a = mask_with(&e, "bob@example.com");
    assert!(
        a.starts_with("[EMAIL:") && a.ends_with(']') && a.len() == "[EMAIL:]".len() + 12,
        "{a}"
    );
    assert_eq!(
        a,
        mask_with(&engine_with(cfg), "BOB@example.com"),
        "case-folded, stable across engines"
    );
    assert_ne!(a, mask_with(&e, "alice@example.com"));
    let other = engine_with(r#"{"strategy":"hash","hash_key":"another-key-0123456789"}"#);
    assert_ne!(a, mask_with(&other, "bob@example.com"));
    // Formatting does not change a card's hash.
    assert_eq!(
        mask_with(&e, "4242424242424242"),
        mask_with(&e, "4242 4242 4242 4242")
    );
    // No key: refused rather than hashing under a guessable key.
    assert!(MaskingEngine::new(serde_json::from_str(r#"{"strategy":"hash"}"#).unwrap()).is_err());
}

#[test]
fn per_detector_overrides() {
    let e =
        engine_with(r#"{"detectors":{"card":{"strategy":"partial"},"email":{"enabled":false}}}"#);
    assert_eq!(
        mask_with(&e, "4242424242424242 bob@example.com 123-45-6789"),
        "************4242 bob@example.com [SSN]"
    );
    let off = engine_with(r#"{"enabled":false}"#);
    assert_untouched(&off, &["bob@example.com 4242424242424242"]);
    assert!(!off.could_contain(b"bob@example.com").unwrap());
    assert_eq!(
        off.plan_column(&ColumnContext {
            name: "ssn",
            ..Default::default()
        }),
        ColumnPlan::default()
    );
}

#[test]
fn ssn_and_dob_columns() {
    let e = default_engine();
    let cell = |name: &str, v: &str| {
        e.mask_cell(
            &ColumnContext {
                name,
                ..Default::default()
            },
            v.as_bytes(),
        )
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
    };
    for name in [
        "ssn",
        "SSN",
        "customer_ssn",
        "social_security_number",
        "SocialSecurityNo",
        "ssnValue",
    ] {
        assert_eq!(cell(name, "123456789").as_deref(), Some("[SSN]"), "{name}");
    }
    assert_eq!(cell("ssn", "000000000"), None);
    assert_eq!(cell("ssn", "12345678"), None);
    // Nine digits elsewhere are ids.
    assert_eq!(cell("customer_id", "123456789"), None);
    assert_eq!(
        cell("lesson", "123456789"),
        None,
        "ssn inside a word is no SSN column"
    );
    for name in [
        "dob",
        "date_of_birth",
        "birth_date",
        "birthdate",
        "BirthDate",
        "patient_dob",
    ] {
        assert_eq!(cell(name, "1990-05-17").as_deref(), Some("[DOB]"), "{name}");
    }
    assert_eq!(cell("dob", "unknown"), None);
    assert_eq!(cell("created_at", "1990-05-17"), None);
    // Content detection still applies in those columns.
    assert_eq!(
        cell("ssn", "mail bob@example.com").as_deref(),
        Some("mail [EMAIL]")
    );
    assert!(
        e.plan_column(&ColumnContext {
            name: "ssn",
            ..Default::default()
        })
        .needs_cell_work()
    );
    assert!(
        !e.plan_column(&ColumnContext {
            name: "notes",
            ..Default::default()
        })
        .needs_cell_work()
    );
    assert_eq!(cell("notes", ""), None);
}

#[test]
fn configured_column_rules_add_to_detection() {
    let e = engine_with(
        r#"{"columns":[{"name":"notes","full":true},{"name":"customer_ref","as":"ssn"},
                       {"name":"*_email","as":"email","strategy":"partial"},{"name":"legacy_*","full":true,"strategy":"hash"}],
            "hash_key":"0123456789abcdef0123"}"#,
    );
    let cell = |name: &str, v: &str| {
        e.mask_cell(
            &ColumnContext {
                name,
                ..Default::default()
            },
            v.as_bytes(),
        )
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(
        cell("notes", "anything at all").as_deref(),
        Some("[REDACTED]")
    );
    assert_eq!(cell("NOTES", "x").as_deref(), Some("[REDACTED]"));
    assert_eq!(cell("notes", ""), None, "empty cells stay empty");
    assert_eq!(cell("customer_ref", "123456789").as_deref(), Some("[SSN]"));
    assert_eq!(cell("customer_ref", "CR-1001"), None);
    assert_eq!(
        cell("billing_email", "bob@example.com").as_deref(),
        Some("****@example.com")
    );
    assert!(cell("legacy_blob", "x").unwrap().starts_with("[REDACTED:"));
    // Unmatched columns: content detection only.
    assert_eq!(
        cell("comment", "card 4242424242424242").as_deref(),
        Some("card [CARD]")
    );
    assert_eq!(cell("comment", "123456789"), None);
    let mut report = Report::default();
    let plan = e.plan_column(&ColumnContext {
        name: "notes",
        ..Default::default()
    });
    e.mask_cell_planned(&plan, b"x", &mut report).unwrap();
    assert_eq!(report.findings.get(&DetectorKind::Column), Some(&1));
}

#[test]
fn name_tokens_and_globs() {
    assert_eq!(name_tokens("customerSSN").0, vec!["customer", "ssn"]);
    assert_eq!(name_tokens("date_of_birth").1, "dateofbirth");
    assert!(glob_match(b"*_notes", b"Internal_Notes"));
    assert!(glob_match(b"a*b*c", b"axxbyyc"));
    assert!(!glob_match(b"notes", b"notes2"));
    assert!(glob_match(b"*", b""));
}
