use std::sync::Arc;

use super::*;
use crate::inspect::masking::MaskingConfig;

fn engine(ip: bool) -> Arc<MaskingEngine> {
    let mut c = MaskingConfig::default();
    if ip {
        c.detectors.insert(DetectorKind::Ip, Default::default());
        c.detectors.get_mut(&DetectorKind::Ip).unwrap().enabled = Some(true);
    }
    Arc::new(MaskingEngine::new(c).unwrap())
}

fn block(e: &MaskingEngine, input: &[u8]) -> Vec<u8> {
    e.mask(input).unwrap().unwrap_or_else(|| input.to_vec())
}

fn stream(e: &Arc<MaskingEngine>, chunks: &[&[u8]]) -> (Vec<u8>, Report) {
    let mut s = StreamMasker::new(e.clone());
    let mut out = Vec::new();
    for c in chunks {
        s.push(c, &mut out).unwrap();
        assert!(s.held() <= HOLD + c.len(), "held {} bytes", s.held());
    }
    let r = s.finish(&mut out).unwrap();
    (out, r)
}

/// Text with one of every detector, padded so that the stream holds back and emits in between.
fn corpus() -> Vec<u8> {
    let values = [
        "bob.smith@example.com",
        "4242 4242 4242 4242",
        "5555555555554444",
        "123-45-6789",
        "GB82 WEST 1234 5698 7654 32",
        "+44 20 7946 0958",
        "(415) 555-0132",
        "10.20.30.40",
        "2001:db8::1",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
        "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n-----END EC PRIVATE KEY-----",
    ];
    let mut s = String::new();
    for (i, v) in values.iter().enumerate() {
        s.push_str(&format!(
            "line {i}: order 100{i}23 at 2024-01-15T10:30:0{}Z value {v} ok\n",
            i % 10
        ));
        if i % 4 == 3 {
            s.push_str(&"filler text with 1.2.3 and id 123456789 ".repeat(30));
            s.push('\n');
        }
    }
    s.into_bytes()
}

#[test]
fn split_at_every_offset_matches_block_mode() {
    for ip in [false, true] {
        let e = engine(ip);
        let input = corpus();
        assert!(input.len() > 2 * HOLD, "corpus must exceed the hold");
        let expected = block(&e, &input);
        assert_ne!(expected, input);
        let (_, block_report) = {
            let mut r = Report::default();
            e.mask_with_report(&input, &mut r).unwrap();
            ((), r)
        };
        for cut in 0..=input.len() {
            let (out, report) = stream(&e, &[&input[..cut], &input[cut..]]);
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&expected),
                "split at {cut} (ip {ip})"
            );
            assert_eq!(report.findings, block_report.findings, "split at {cut}");
        }
    }
}

#[test]
fn byte_at_a_time_and_odd_chunk_sizes() {
    let e = engine(true);
    let input = corpus();
    let expected = block(&e, &input);
    for size in [1, 2, 3, 7, 64, 1000, 5000] {
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        let (out, _) = stream(&e, &chunks);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected),
            "chunk size {size}"
        );
    }
}

#[test]
fn values_split_at_every_offset_in_a_short_stream() {
    // Shorter than the hold: everything is judged at finish, whatever the split.
    let e = engine(false);
    let input = b"to bob@example.com card 4111-1111-1111-1111 ssn 123-45-6789";
    let expected = b"to [EMAIL] card [CARD] ssn [SSN]".to_vec();
    for cut in 0..=input.len() {
        assert_eq!(
            stream(&e, &[&input[..cut], &input[cut..]]).0,
            expected,
            "split at {cut}"
        );
    }
}

#[test]
fn long_jwt_and_pem_beyond_the_hold_use_continuations() {
    let e = engine(false);
    let payload = "A".repeat(3 * HOLD);
    let jwt = format!("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{payload}.c2lnbmF0dXJl");
    let body = "QUJD\n".repeat(HOLD / 2);
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY-----");
    let input = format!(
        "{}\ntoken {jwt} end\n{pem}\nafter bob@example.com\n",
        "x".repeat(HOLD)
    )
    .into_bytes();
    let expected = block(&e, &input);
    assert_eq!(
        String::from_utf8_lossy(&expected[HOLD..]),
        "\ntoken [SECRET] end\n[SECRET]\nafter [EMAIL]\n"
    );
    for size in [1, 100, 999, 4096] {
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        let (out, r) = stream(&e, &chunks);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected),
            "chunk size {size}"
        );
        assert_eq!(r.total(), 3);
    }
}

#[test]
fn pem_without_end_is_bounded() {
    let e = engine(false);
    let input = format!(
        "-----BEGIN PRIVATE KEY-----\n{}",
        "B".repeat(3 * detectors::PEM_MAX)
    )
    .into_bytes();
    let expected = block(&e, &input);
    assert!(expected.starts_with(b"[SECRET]BBB"));
    assert_eq!(
        expected.len(),
        "[SECRET]".len() + input.len() - detectors::PEM_MAX
    );
    for size in [1000, 4096, 10000] {
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        assert_eq!(stream(&e, &chunks).0, expected, "chunk size {size}");
    }
}

#[test]
fn flush_emits_everything_held() {
    let e = engine(false);
    let mut s = StreamMasker::new(e);
    let mut out = Vec::new();
    s.push(b"$ cat user\nbob@example.com\n", &mut out).unwrap();
    assert!(out.is_empty(), "short output is held until flushed");
    s.flush(&mut out).unwrap();
    assert_eq!(out, b"$ cat user\n[EMAIL]\n");
    assert_eq!(s.held(), 0);
    s.push(b"more", &mut out).unwrap();
    let r = s.finish(&mut out).unwrap();
    assert_eq!(out, b"$ cat user\n[EMAIL]\nmore");
    assert_eq!(r.total(), 1);
    assert_eq!(r.bytes_in, 31);
}

#[test]
fn memory_stays_bounded_on_a_long_stream() {
    let e = engine(false);
    let mut s = StreamMasker::new(e);
    let mut out = Vec::new();
    let line = b"2024-01-15 INFO request id=123456789 user=bob@example.com ok\n";
    for _ in 0..2000 {
        s.push(line, &mut out).unwrap();
        assert!(s.held() <= HOLD + line.len());
        assert!(s.buf.len() <= HOLD + CONTEXT + line.len());
    }
    s.finish(&mut out).unwrap();
    assert_eq!(
        out.len(),
        2000 * (line.len() - "bob@example.com".len() + "[EMAIL]".len())
    );
}
