use regex::bytes::Regex;

use super::*;

/// xorshift64*: reproducible inputs without a rand dependency (the engine tests use it too).
pub(in crate::inspect::masking) struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const ALL: ShapeSet = ShapeSet {
    card: true,
    ssn: true,
    nanp: true,
    iban: true,
};

/// Bytes drawn mostly from the classes the shapes look at, so shapes (and near misses) are
/// frequent: digits, the separators, parentheses, uppercase letters, and a little else.
fn soup(r: &mut Rng, len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"0123456789012345678901234567890123456789--  ..()ABZGBx:\t\x00\xff";
    (0..len)
        .map(|_| ALPHABET[r.below(ALPHABET.len())])
        .collect()
}

fn hits_with(
    buf: &[u8],
    set: ShapeSet,
    classify: impl Fn(&[u8; 64]) -> Classes,
) -> Vec<(Trigger, usize)> {
    let mut v = Vec::new();
    scan_with(
        buf,
        set,
        |t, e| {
            v.push((t, e));
            true
        },
        classify,
    );
    v
}

fn hits(buf: &[u8], set: ShapeSet) -> Vec<(Trigger, usize)> {
    let mut v = Vec::new();
    scan(buf, set, |t, e| {
        v.push((t, e));
        true
    });
    v
}

/// Every end offset at which `expr` matches a suffix of `buf[..end]`: what Hyperscan reports
/// without start-of-match.
fn regex_ends(expr: &str, buf: &[u8]) -> Vec<usize> {
    let re = Regex::new(&format!("(?:{expr})\\z")).unwrap();
    (1..=buf.len())
        .filter(|&e| re.is_match(&buf[e.saturating_sub(24)..e]))
        .collect()
}

fn ends_of(hits: &[(Trigger, usize)], t: Trigger) -> Vec<usize> {
    hits.iter().filter(|h| h.0 == t).map(|h| h.1).collect()
}

#[cfg(target_arch = "x86_64")]
#[test]
fn simd_classifiers_agree_with_the_scalar_one() {
    let mut r = Rng(7);
    let mut windows: Vec<[u8; 64]> = (0..2000)
        .map(|_| soup(&mut r, 64).try_into().unwrap())
        .collect();
    // Every byte value at every position at least once.
    for b in 0..=255u8 {
        windows.push([b; 64]);
    }
    let mut checked = 0;
    for w in &windows {
        let want = classify_scalar(w);
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: checked just above.
            #[allow(unsafe_code)]
            let got = unsafe { simd::classify_avx512(w) };
            assert_eq!(got, want, "avx512 on {w:?}");
            checked += 1;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: checked just above.
            #[allow(unsafe_code)]
            let got = unsafe { simd::classify_avx2(w) };
            assert_eq!(got, want, "avx2 on {w:?}");
            checked += 1;
        }
    }
    // This machine has both; elsewhere at least say what was not covered.
    assert!(checked > 0, "no SIMD classifier available on this CPU");
}

#[test]
fn shapes_match_their_expressions_at_every_offset() {
    let mut r = Rng(42);
    // The card shape as a regex; SSN and NANP are the former Hyperscan expressions verbatim.
    let card = r"[0-9]{13}|[0-9]{4}[ \-][0-9]{4}[ \-][0-9]{4}|[0-9]{4}[ \-][0-9]{6}[ \-][0-9]{4}";
    let ssn = Trigger::Ssn.expressions().join("|");
    let nanp = Trigger::PhoneNanp.expressions().join("|");
    let iban = r"[A-Z]{2}[0-9]{2}";
    for round in 0..600 {
        // Lengths around the window step (48) and the window (64) exercise the edges.
        let len = [1, 11, 47, 48, 49, 63, 64, 65, 95, 96, 97, 200][round % 12] + r.below(3);
        let buf = soup(&mut r, len);
        let got = hits(&buf, ALL);
        assert!(got.is_sorted_by_key(|h| h.1), "hits out of order");
        for (t, expr) in [
            (Trigger::Card, card),
            (Trigger::Ssn, ssn.as_str()),
            (Trigger::PhoneNanp, nanp.as_str()),
            (Trigger::Iban, iban),
        ] {
            assert_eq!(
                ends_of(&got, t),
                regex_ends(expr, &buf),
                "{t:?} in {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
    }
}

#[test]
fn a_value_is_found_wherever_it_sits() {
    for value in [
        "123-45-6789",
        "(415) 555-0132",
        "4242 4242 4242 4242",
        "3782 822463 10005",
    ] {
        for at in 0..140 {
            let mut buf = vec![b'x'; at];
            buf.extend_from_slice(value.as_bytes());
            buf.extend_from_slice(&vec![b'y'; 150 - at]);
            let got = hits(&buf, ALL);
            let end = at + value.len();
            // A 4-6-5 card is found at its 4-6-4 prefix; the confirmer expands the whole run.
            assert!(
                !got.is_empty() && got.iter().all(|h| h.1 > at && h.1 <= end),
                "{value} at {at}: {got:?}"
            );
        }
    }
}

#[test]
fn every_classifier_reports_the_same_hits() {
    let mut r = Rng(99);
    for _ in 0..300 {
        let len = r.below(400);
        let buf = soup(&mut r, len);
        let want = hits_with(&buf, ALL, classify_scalar);
        assert_eq!(hits(&buf, ALL), want);
    }
}

#[test]
fn disabled_shapes_are_not_reported_and_a_scan_can_stop() {
    let buf = b"ssn 123-45-6789 card 4242424242424242 tel 415-555-0132 GB82WEST";
    let only_ssn = ShapeSet {
        ssn: true,
        ..ShapeSet::default()
    };
    assert_eq!(hits(buf, only_ssn), vec![(Trigger::Ssn, 15)]);
    assert!(hits(buf, ShapeSet::default()).is_empty());
    let mut seen = 0;
    scan(buf, ALL, |_, _| {
        seen += 1;
        false
    });
    assert_eq!(seen, 1);
}
