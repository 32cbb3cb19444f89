use std::sync::{Arc, OnceLock};

use super::*;

pub(super) fn default_engine() -> &'static MaskingEngine {
    static E: OnceLock<MaskingEngine> = OnceLock::new();
    E.get_or_init(|| MaskingEngine::with_defaults().unwrap())
}

pub(super) fn engine_with(json: &str) -> MaskingEngine {
    MaskingEngine::new(serde_json::from_str(json).unwrap()).unwrap()
}

pub(super) fn mask_with(e: &MaskingEngine, s: &str) -> String {
    match e.mask(s.as_bytes()).unwrap() {
        Some(v) => String::from_utf8(v).unwrap(),
        None => s.to_string(),
    }
}

fn m(s: &str) -> String {
    mask_with(default_engine(), s)
}

/// Every decoy must come back byte-identical, and `mask` must say "unchanged" (None).
pub(super) fn assert_untouched(e: &MaskingEngine, decoys: &[&str]) {
    for d in decoys {
        assert_eq!(
            e.mask(d.as_bytes()).unwrap(),
            None,
            "decoy was masked: {d:?} -> {:?}",
            mask_with(e, d)
        );
    }
}

#[test]
fn engine_is_send_sync_and_shareable() {
    fn check<T: Send + Sync>() {}
    check::<MaskingEngine>();
    let e = Arc::new(MaskingEngine::with_defaults().unwrap());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let e = e.clone();
            std::thread::spawn(move || mask_with(&e, "mail bob@example.com now"))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), "mail [EMAIL] now");
    }
}

#[test]
fn two_engines_share_one_thread_scratch() {
    let a = MaskingEngine::with_defaults().unwrap();
    let b = engine_with(r#"{"detectors":{"ip":{"enabled":true}}}"#);
    for _ in 0..3 {
        assert_eq!(
            mask_with(&a, "x 10.0.0.1 bob@example.com"),
            "x 10.0.0.1 [EMAIL]"
        );
        assert_eq!(
            mask_with(&b, "x 10.0.0.1 bob@example.com"),
            "x [IP] [EMAIL]"
        );
    }
}

#[test]
fn email() {
    assert_eq!(
        m("contact: john.doe+tag@mail.example.co.uk."),
        "contact: [EMAIL]."
    );
    assert_eq!(m("<a@b.io>"), "<[EMAIL]>");
    assert_eq!(m("x,First_Last@Example.COM,y"), "x,[EMAIL],y");
    assert_untouched(
        default_engine(),
        &[
            "npm i pkg@1.2.3",
            "user@localhost",
            "@example.com",
            "a@b",
            "twitter @handle",
            "a@-x.com",
            "foo..@x",
        ],
    );
}

#[test]
fn card() {
    assert_eq!(m("card 4242424242424242 ok"), "card [CARD] ok");
    assert_eq!(m("4242 4242 4242 4242"), "[CARD]");
    assert_eq!(m("4242-4242-4242-4242,"), "[CARD],");
    assert_eq!(m("amex 3782 822463 10005"), "amex [CARD]");
    assert_eq!(m("visa13 4222222222222"), "visa13 [CARD]");
    assert_eq!(
        m("mc 5555555555554444 and 2223003122003222"),
        "mc [CARD] and [CARD]"
    );
    // A card followed by an expiry in a space-separated run.
    assert_eq!(m("4111 1111 1111 1111 12 25"), "[CARD] 12 25");
    assert_eq!(m("1234 4242 4242 4242 4242"), "1234 [CARD]");
    assert_untouched(
        default_engine(),
        &[
            "4242424242424241",           // Luhn fails
            "9123456789012344",           // no network
            "order 12345678901234567890", // 20 digits
            "id=x4242424242424242",       // glued to a word
            "4242424242424242.5",         // a decimal
            "4242-4242 4242-4242",        // mixed separators
            "1Z999AA10123456784",         // UPS tracking
            "9400111899223100012345",     // USPS tracking (22 digits)
            "ts 1700000000000 ms",
            "4242 4242",
        ],
    );
}

#[test]
fn ssn() {
    assert_eq!(m("ssn: 123-45-6789."), "ssn: [SSN].");
    assert_untouched(
        default_engine(),
        &[
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123456789",     // bare 9 digits only in SSN columns
            "1123-45-6789",  // longer number
            "123-45-6789-1", // part of a dashed id
            "2024-01-15",    // a date
            "ab123-45-6789",
        ],
    );
}

#[test]
fn iban() {
    assert_eq!(m("pay GB82WEST12345698765432 now"), "pay [IBAN] now");
    assert_eq!(m("IBAN: GB82 WEST 1234 5698 7654 32"), "IBAN: [IBAN]");
    assert_eq!(m("DE89370400440532013000"), "[IBAN]");
    assert_eq!(m("FR14 2004 1010 0505 0001 3M02 606"), "[IBAN]");
    assert_untouched(
        default_engine(),
        &[
            "GB82WEST12345698765433",  // checksum
            "GB82WEST1234569876543",   // too short
            "XGB82WEST12345698765432", // glued
            "gb82west12345698765432",  // lowercase not matched
            "DE12 and more",
            "CODE1234",
        ],
    );
}

#[test]
fn phone() {
    assert_eq!(m("call +14155550132 now"), "call [PHONE] now");
    assert_eq!(m("call +44 20 7946 0958."), "call [PHONE].");
    assert_eq!(m("+44 (0)20 7946 0958"), "[PHONE]");
    assert_eq!(m("+33 1 23 45 67 89"), "[PHONE]");
    assert_eq!(m("tel (415) 555-0132"), "tel [PHONE]");
    assert_eq!(m("tel (415)555-0132"), "tel [PHONE]");
    assert_eq!(m("tel 415-555-0132"), "tel [PHONE]");
    assert_eq!(m("tel 415.555.0132"), "tel [PHONE]");
    assert_eq!(m("1-800-555-0199"), "[PHONE]");
    assert_eq!(m("+1 415-555-0132"), "[PHONE]");
    assert_untouched(
        default_engine(),
        &[
            "2024-01-15T10:30:00+05:30",
            "x+1 = 2",
            "+1234567",              // 7 digits
            "+12345678901234567",    // 17 digits
            "123-456-7890",          // area starts with 1
            "415-155-0132",          // exchange starts with 1
            "415-555.0132",          // mixed separators
            "4155550132",            // bare 10 digits are not assumed to be phones
            "v1.2.3+415.555.0132.5", // inside a version
            "+1 2 3 4 5 6 7 8",
            "a415-555-0132",
        ],
    );
}

#[test]
fn ip_off_by_default_and_on_when_enabled() {
    assert_untouched(default_engine(), &["host 10.0.0.1", "2001:db8::1"]);
    let e = engine_with(r#"{"detectors":{"ip":{"enabled":true}}}"#);
    assert_eq!(
        mask_with(&e, "from 10.0.0.1, to 192.168.1.254."),
        "from [IP], to [IP]."
    );
    assert_eq!(
        mask_with(&e, "v6 2001:db8::1 and fe80::202:b3ff:fe1e:8329"),
        "v6 [IP] and [IP]"
    );
    assert_eq!(mask_with(&e, "1.2.3.4"), "[IP]");
    assert_untouched(
        &e,
        &[
            "version 10.2.3",
            "v1.2.3.4",
            "1.2.3.4.5",
            "256.1.1.1",
            "at 10:30:00",
            "mac 00:1a:2b:3c:4d:5e",
            "std::io::Result",
            "Vec::new()",
            "550e8400-e29b-41d4-a716-446655440000",
        ],
    );
}

#[test]
fn secrets() {
    let cases = [
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAY34FZKBOKMUTVV7A",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abc",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxp-123456789012-123456789012-123456789012-abcdef0123456789abcdef0123456789",
        "xapp-1-A0123456789-1234567890123-abcdef0123456789",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "rk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789_-ABCDEFGHIJ",
        "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD",
        "sk-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ];
    for c in cases {
        assert_eq!(m(&format!("key={c};")), "key=[SECRET];", "{c}");
    }
    let e = default_engine();
    let kinds: Vec<DetectorKind> = cases
        .iter()
        .map(|c| e.find(c.as_bytes()).unwrap()[0].kind)
        .collect();
    assert_eq!(kinds[0], DetectorKind::AwsKey);
    assert_eq!(kinds[2], DetectorKind::GithubToken);
    assert_eq!(kinds[5], DetectorKind::SlackToken);
    assert_eq!(kinds[8], DetectorKind::StripeKey);
    assert_eq!(kinds[11], DetectorKind::AnthropicKey);
    assert_eq!(kinds[12], DetectorKind::OpenaiKey);
    assert_eq!(kinds[14], DetectorKind::Jwt);
    assert_untouched(
        e,
        &[
            "AKIAIOSFODNN7EXAMPL",   // short
            "XAKIAIOSFODNN7EXAMPLE", // glued
            "AKIAIOSFODNN7EXAMPLEX", // long
            "ghp_short",
            "task-abcdefghijklmnopqrstuvwxyz", // `sk-` inside a word
            "pk_live_4eC39HqLyjWDarjtT1zdp7dc", // publishable, not secret
            "xoxo-hugs",
            "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.sig", // header without alg
            "eyJhbGciOiJIUzI1NiJ9",                   // header alone
            "sk-learn",
        ],
    );
}

#[test]
fn pem_private_key() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234567890abcdef\nQWERTYUIOP==\n-----END RSA PRIVATE KEY-----";
    assert_eq!(m(&format!("key:\n{pem}\nrest")), "key:\n[SECRET]\nrest");
    let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----";
    assert_eq!(m(openssh), "[SECRET]");
    // No END: masked up to the bound (fail closed), then scanning resumes.
    let body = "A".repeat(detectors::PEM_MAX);
    let out = m(&format!("-----BEGIN PRIVATE KEY-----\n{body}tail"));
    assert_eq!(out, format!("[SECRET]{}tail", "A".repeat(28)));
    assert_untouched(
        default_engine(),
        &[
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "-----BEGIN PUBLIC KEY-----",
        ],
    );
}

#[test]
fn decoys_survive() {
    let decoys = [
        "order #100234567 shipped",
        "ORD-2024-000123",
        "550e8400-e29b-41d4-a716-446655440000",
        "2024-01-15T10:30:00.123456Z",
        "2024-01-15 10:30:00+00",
        "release 1.2.3.4 built",
        "version 10.2.3",
        "id 123456789",
        "amount 1234567.89",
        "1Z999AA10123456784",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "GET /api/v1/users/42?page=2 200 1532 12.4ms",
    ];
    assert_untouched(default_engine(), &decoys);
    for d in decoys {
        assert!(
            default_engine()
                .mask_cell(
                    &ColumnContext {
                        name: "ref",
                        ..Default::default()
                    },
                    d.as_bytes()
                )
                .unwrap()
                .is_none(),
            "{d}"
        );
    }
}

#[test]
fn overlapping_findings_merge() {
    // The phone trigger and the SSN both fire inside other values; one placeholder per value.
    assert_eq!(m("4242 4242 4242 4242 bob@example.com"), "[CARD] [EMAIL]");
    let spans = default_engine().find(b"+1 415-555-0132").unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!((spans[0].start, spans[0].end), (0, 15));
    let merged = merge(vec![
        Span {
            start: 0,
            end: 5,
            kind: DetectorKind::Phone,
        },
        Span {
            start: 2,
            end: 12,
            kind: DetectorKind::Card,
        },
        Span {
            start: 12,
            end: 14,
            kind: DetectorKind::Email,
        },
    ]);
    assert_eq!(merged.len(), 2);
    assert_eq!((merged[0].end, merged[0].kind), (12, DetectorKind::Card));
}

#[test]
fn could_contain_is_a_superset_of_findings() {
    let e = default_engine();
    assert!(
        !e.could_contain(b"id 42, name Alice, created 2024-01-15")
            .unwrap()
    );
    for s in [
        "bob@example.com",
        "4242424242424242",
        "AKIAIOSFODNN7EXAMPLE",
        "123-45-6789",
    ] {
        assert!(e.could_contain(s.as_bytes()).unwrap(), "{s}");
    }
    // A Postgres DataRow payload: cells framed by lengths; a hit in any cell is a hit in the row.
    let mut row = vec![0, 2];
    for cell in [&b"42"[..], b"bob@example.com"] {
        row.extend_from_slice(&(cell.len() as i32).to_be_bytes());
        row.extend_from_slice(cell);
    }
    assert!(e.could_contain(&row).unwrap());
}

#[test]
fn report_counts_per_detector() {
    let mut r = Report::default();
    default_engine()
        .mask_with_report(
            b"a@b.io c@d.io 4242424242424242 123-45-6789 AKIAIOSFODNN7EXAMPLE",
            &mut r,
        )
        .unwrap();
    assert_eq!(r.findings[&DetectorKind::Email], 2);
    assert_eq!(r.findings[&DetectorKind::Card], 1);
    assert_eq!(r.findings[&DetectorKind::Ssn], 1);
    assert_eq!(r.findings[&DetectorKind::AwsKey], 1);
    assert_eq!(r.total(), 5);
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains(r#""email":2"#), "{json}");
}

/// The digit-shaped triggers moved from Hyperscan to the shape scanner: on inputs full of
/// digits, separators and near misses, both engines must find exactly the same values.
#[test]
fn shape_scanner_finds_what_the_hyperscan_triggers_found() {
    use crate::inspect::masking::shapes::tests::Rng;
    const TOKENS: &[&str] = &[
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "4242424242424242",
        "5555555555554444",
        "4111 1111 1111 1111 12 25",
        "3782 822463 10005",
        "378282246310005",
        "6011 0009 9013 9424",
        "4242 4242 4242 4242 4242",
        "123-45-6789",
        "078-05-1120",
        "415-555-0132",
        "415.555.0132",
        "(415) 555-0132",
        "(415)555-0132",
        "1-415-555-0132",
        "+44 20 7946 0958",
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "DE89370400440532013000",
        "2024-01-15 10:22:33.123456+00",
        "ORD-2024-123456",
        "jane.doe@example.com",
        "10.0.0.1",
        "fe80::1",
    ];
    let mut r = Rng(0xfeed);
    let mut buf = Vec::new();
    let configs = [
        MaskingConfig::default(),
        serde_json::from_str(r#"{"detectors":{"ip":{"enabled":true}}}"#).unwrap(),
    ];
    for config in configs {
        let new = MaskingEngine::new(config.clone()).unwrap();
        let old = MaskingEngine::hyperscan_only(config).unwrap();
        let mut found = 0;
        for _ in 0..400 {
            buf.clear();
            for _ in 0..r.below(60) {
                match r.below(4) {
                    0 => buf.extend_from_slice(TOKENS[r.below(TOKENS.len())].as_bytes()),
                    // Digit runs of any length with stray separators: near misses.
                    1 => {
                        for _ in 0..r.below(24) {
                            buf.push(b"0123456789012345678901234567890123456789 -.()"[r.below(45)]);
                        }
                    }
                    2 => buf.extend_from_slice(b"AB"),
                    _ => {}
                }
                buf.push(b" -.\t\n,:()x"[r.below(10)]);
            }
            let want = old.find(&buf).unwrap();
            assert_eq!(
                new.find(&buf).unwrap(),
                want,
                "in {:?}",
                String::from_utf8_lossy(&buf)
            );
            // The prefilter may say "maybe" for nothing, never "no" for something.
            assert!(want.is_empty() || new.could_contain(&buf).unwrap());
            found += want.len();
        }
        assert!(found > 1000, "the inputs should hold many values ({found})");
    }
}

#[test]
fn ssns_written_with_spaces_or_dots_are_found_next_to_a_label_only() {
    assert_eq!(m("ssn=123 45 6789 on file"), "ssn=[SSN] on file");
    assert_eq!(m("SSN: 219.09.9999"), "SSN: [SSN]");
    assert_eq!(
        m("Social Security No. 078 05 1120."),
        "Social Security No. [SSN]."
    );
    assert_eq!(m("ssn 123456789"), "ssn [SSN]");
    assert_eq!(m("{\"ssn\": \"457-55-5462\"}"), "{\"ssn\": \"[SSN]\"}");
    assert_untouched(
        default_engine(),
        &[
            "call 123 45 6789 tomorrow",
            "ref 219.09.9999",
            "ssn=000 12 3456",
            "social media campaign 2024 reached 123 people",
            "ssn=666 12 3456",
            "classn 123 45 6789",
        ],
    );
}

#[test]
fn passwords_in_urls_and_connection_strings() {
    assert_eq!(
        m("postgres://app:S3cr3t-Pa55@db.internal:5432/app"),
        "postgres://app:[PASSWORD]@db.internal:5432/app"
    );
    assert_eq!(
        m("amqp://guest:guest@rabbit/vhost"),
        "amqp://guest:[PASSWORD]@rabbit/vhost"
    );
    assert_eq!(
        m("host=db user=app password=hunter2-long sslmode=require"),
        "host=db user=app password=[PASSWORD] sslmode=require"
    );
    assert_eq!(
        m("Server=x;Pwd='a b c';Database=y"),
        "Server=x;Pwd='[PASSWORD]';Database=y"
    );
    assert_untouched(
        default_engine(),
        &[
            "https://example.org:8443/path",
            "postgres://db.internal:5432/app",
            "the password field is required",
        ],
    );
}

#[test]
fn more_token_formats_real_dumps_carry() {
    for (t, k) in [
        ("glpat-abcdefghijklmnopqrst", "SECRET"),
        ("gldt-ABCDEFGHIJKLMNOPQRST", "SECRET"),
        ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "SECRET"),
        ("npm_abcdefghijklmnopqrstuvwxyz0123456789", "SECRET"),
        (
            "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            "SECRET",
        ),
        ("hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "SECRET"),
    ] {
        assert_eq!(m(&format!("key {t} end")), format!("key [{k}] end"), "{t}");
    }
    // Look-alikes: too short, wrong alphabet, part of a longer word.
    assert_untouched(
        default_engine(),
        &[
            "glpat-short",
            "xglpat-abcdefghijklmnopqrst",
            "AIzaShort",
            "npm_install_script",
            "SG.abc.def",
            "hf_hub_download",
            "3f2b8c1e-9a4d-4e6b-8f7a-2c1d0e9b8a76",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "1Z999AA10123456784",
            "978-0-306-40615-7",
            "1700000000",
        ],
    );
}
