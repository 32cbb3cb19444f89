//! A value's replacement under its detector's strategy: redact, keyed hash, or partial.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{DetectorKind, MaskingEngine, Strategy};

impl MaskingEngine {
    /// The replacement of one value under its detector's strategy.
    pub fn render(&self, kind: DetectorKind, value: &[u8], out: &mut Vec<u8>) {
        self.render_with(kind, self.strategies[kind.index()], value, out)
    }

    pub(super) fn render_with(
        &self,
        kind: DetectorKind,
        strategy: Strategy,
        value: &[u8],
        out: &mut Vec<u8>,
    ) {
        let label = kind.label().as_bytes();
        match strategy {
            Strategy::Redact => redact(label, out),
            Strategy::Hash => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hash_key)
                    .expect("HMAC takes keys of any length");
                // The kind is part of the input so equal strings of different kinds do not join.
                mac.update(kind.name().as_bytes());
                mac.update(&[0]);
                mac.update(&normalize(kind, value));
                let tag = mac.finalize().into_bytes();
                out.push(b'[');
                out.extend_from_slice(label);
                out.push(b':');
                crate::util::hex_into(&tag[..6], out);
                out.push(b']');
            }
            Strategy::Partial => partial(kind, label, value, out),
        }
    }

    /// The placeholder of a whole value of `kind`, under that kind's strategy (`hash` keeps
    /// equal values joinable; `partial` has no safe part of a derived value, so it redacts).
    pub fn placeholder(&self, kind: DetectorKind, value: &[u8], out: &mut Vec<u8>) {
        match self.strategies[kind.index()] {
            Strategy::Hash => self.render_with(kind, Strategy::Hash, value, out),
            _ => redact(kind.label().as_bytes(), out),
        }
    }
}

pub(super) fn redact(label: &[u8], out: &mut Vec<u8>) {
    out.push(b'[');
    out.extend_from_slice(label);
    out.push(b']');
}

/// Equal values written differently hash alike: digits only for numbers, case-folded emails.
fn normalize(kind: DetectorKind, v: &[u8]) -> Vec<u8> {
    match kind {
        DetectorKind::Card | DetectorKind::Ssn | DetectorKind::Phone => {
            v.iter().copied().filter(u8::is_ascii_digit).collect()
        }
        DetectorKind::Email => v.to_ascii_lowercase(),
        DetectorKind::Iban => v.iter().copied().filter(|b| *b != b' ').collect(),
        _ => v.to_vec(),
    }
}

/// Stars every digit but the last `keep`, keeping separators (`**** **** **** 4242`).
fn keep_last_digits(v: &[u8], keep: usize, out: &mut Vec<u8>) {
    let total = v.iter().filter(|b| b.is_ascii_digit()).count();
    let mut seen = 0;
    for &b in v {
        if b.is_ascii_digit() {
            seen += 1;
            out.push(if seen > total.saturating_sub(keep) {
                b
            } else {
                b'*'
            });
        } else {
            out.push(b);
        }
    }
}

fn partial(kind: DetectorKind, label: &[u8], v: &[u8], out: &mut Vec<u8>) {
    match kind {
        DetectorKind::Card | DetectorKind::Ssn => keep_last_digits(v, 4, out),
        DetectorKind::Phone => keep_last_digits(v, 2, out),
        DetectorKind::Email => match v.iter().position(|&b| b == b'@') {
            // The local part identifies the person; its length would too.
            Some(at) => {
                out.extend_from_slice(b"****");
                out.extend_from_slice(&v[at..]);
            }
            None => redact(label, out),
        },
        DetectorKind::Iban if v.len() > 8 => {
            let alnum = v.iter().filter(|b| b.is_ascii_alphanumeric()).count();
            let mut seen = 0;
            for &b in v {
                if b.is_ascii_alphanumeric() {
                    seen += 1;
                    out.push(if seen <= 2 || seen > alnum - 4 {
                        b
                    } else {
                        b'*'
                    });
                } else {
                    out.push(b);
                }
            }
        }
        DetectorKind::Ip if v.contains(&b'.') && !v.contains(&b':') => {
            // Keep the network half of an IPv4 address: 10.0.*.*
            let mut dots = 0;
            for &b in v {
                if b == b'.' {
                    dots += 1;
                    out.push(b);
                } else if dots < 2 {
                    out.push(b);
                } else if out.last() != Some(&b'*') {
                    out.push(b'*');
                }
            }
        }
        // Secrets, dates of birth, IPv6, whole columns: no part is safe to show.
        _ => redact(label, out),
    }
}
