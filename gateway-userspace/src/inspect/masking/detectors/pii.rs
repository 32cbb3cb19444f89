//! Confirmers of personal and network identifiers: SSNs, emails, payment cards, phone numbers,
//! IBANs, IP addresses.

use super::{Span, digit_left_ok, digit_right_ok, v, word_left_ok};
use crate::inspect::masking::config::DetectorKind;

/// `end` is just after `ssn` or `social` (any case). Up to 24 bytes of label words and
/// punctuation (`ssn=`, `SSN #: `, `social security no. `), then an SSN written with spaces,
/// dots, dashes or no separator: in context these shapes are SSNs, alone they are not.
pub(super) fn ssn_after_label(buf: &[u8], end: usize) -> Option<(usize, usize)> {
    let mut i = end;
    let limit = (end + 24).min(buf.len());
    while i < limit && !buf[i].is_ascii_digit() {
        let b = buf[i];
        if !(b.is_ascii_alphabetic()
            || matches!(
                b,
                b' ' | b':' | b'=' | b'#' | b'.' | b'-' | b'_' | b'"' | b'\'' | b'\t'
            ))
        {
            return None;
        }
        i += 1;
    }
    let s = i;
    if s >= buf.len() || !digit_left_ok(buf, s) {
        return None;
    }
    let d = |k: usize| buf.get(k).is_some_and(u8::is_ascii_digit);
    let digits = |from: usize, n: usize| (from..from + n).all(d);
    if !digits(s, 3) {
        return None;
    }
    let sep = *buf.get(s + 3)?;
    let (g, e) = if matches!(sep, b' ' | b'.' | b'-') {
        if !(digits(s + 4, 2) && buf.get(s + 6) == Some(&sep) && digits(s + 7, 4)) {
            return None;
        }
        ((s + 4, s + 7), s + 11)
    } else {
        if !digits(s + 3, 6) {
            return None;
        }
        ((s + 3, s + 5), s + 9)
    };
    (digit_right_ok(buf, e) && v::is_ssn(&buf[s..s + 3], &buf[g.0..g.0 + 2], &buf[g.1..e]))
        .then_some((s, e))
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// `at` is the index of '@'. Local part: up to 64 of `[A-Za-z0-9._%+-]`; domain: at least two
/// labels, an alphabetic TLD of 2+ letters (so `pkg@1.2.3` and `user@localhost` stay).
pub(super) fn email(buf: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut s = at;
    while s > 0 && at - s < 64 && is_local(buf[s - 1]) {
        s -= 1;
    }
    // A local part cannot start with '.'.
    while s < at && buf[s] == b'.' {
        s += 1;
    }
    if s == at || buf[at - 1] == b'.' {
        return None;
    }
    // `scheme://user:password@host`: the part before '@' is a password, which the URL
    // password confirmer masks (exactly the shape its trigger needs, so nothing slips between).
    if s > 0 && buf[s - 1] == b':' {
        let colon = s - 1;
        let mut u = colon;
        while u > 0
            && colon - u < 64
            && !matches!(buf[u - 1], b'/' | b'@' | b':')
            && !buf[u - 1].is_ascii_whitespace()
        {
            u -= 1;
        }
        if u < colon && u >= 3 && &buf[u - 3..u] == b"://" {
            return None;
        }
    }
    let mut e = at + 1;
    while e < buf.len() && e - at <= 253 && is_domain(buf[e]) {
        e += 1;
    }
    // Sentence punctuation after the domain is not part of it.
    while e > at + 1 && matches!(buf[e - 1], b'.' | b'-') {
        e -= 1;
    }
    let domain = &buf[at + 1..e];
    let mut labels = 0;
    let mut tld: &[u8] = &[];
    for label in domain.split(|&b| b == b'.') {
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return None;
        }
        labels += 1;
        tld = label;
    }
    (labels >= 2 && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic)).then_some((s, e))
}

/// Longest run of digits joined by single ' ' or '-' that a card could span.
const CARD_RUN_MAX: usize = 96;

pub(super) fn card(buf: &[u8], end: usize, resume: &mut usize, out: &mut Vec<Span>) {
    // Expand the maximal run of digit groups around the hit.
    let mut s = end - 1;
    while s > 0 && end - s < CARD_RUN_MAX {
        if buf[s - 1].is_ascii_digit() {
            s -= 1;
        } else if s >= 2 && matches!(buf[s - 1], b' ' | b'-') && buf[s - 2].is_ascii_digit() {
            s -= 2;
        } else {
            break;
        }
    }
    let mut e = end;
    while e < buf.len() && e - s < CARD_RUN_MAX {
        if buf[e].is_ascii_digit() {
            e += 1;
        } else if matches!(buf[e], b' ' | b'-') && buf.get(e + 1).is_some_and(u8::is_ascii_digit) {
            e += 2;
        } else {
            break;
        }
    }
    *resume = e;
    if e - s >= CARD_RUN_MAX {
        return; // a table of numbers, not a card
    }
    let run = &buf[s..e];
    // Groups: (offset in run, length), and the separator after each group but the last.
    let mut groups: Vec<(usize, usize)> = Vec::with_capacity(8);
    let mut seps: Vec<u8> = Vec::with_capacity(8);
    let mut g = 0;
    for (i, &b) in run.iter().enumerate() {
        if !b.is_ascii_digit() {
            groups.push((g, i - g));
            seps.push(b);
            g = i + 1;
        }
    }
    groups.push((g, run.len() - g));
    let shape_ok = |gs: &[(usize, usize)]| -> bool {
        let lens: Vec<usize> = gs.iter().map(|g| g.1).collect();
        match lens.as_slice() {
            [n] => (13..=19).contains(n),
            [4, 6, 5] | [4, 6, 4] => true,
            [rest @ .., last] => {
                rest.len() >= 3 && rest.iter().all(|&l| l == 4) && (1..=4).contains(last)
            }
            [] => false,
        }
    };
    let try_range = |i: usize, j: usize| -> Option<(usize, usize)> {
        let gs = &groups[i..j];
        // Mixed separators inside one value make it a formatted id, not a card.
        let inner = &seps[i..j - 1];
        if inner.windows(2).any(|w| w[0] != w[1]) || !shape_ok(gs) {
            return None;
        }
        let (cs, ce) = (s + gs[0].0, s + gs[j - i - 1].0 + gs[j - i - 1].1);
        let digits: Vec<u8> = buf[cs..ce]
            .iter()
            .copied()
            .filter(u8::is_ascii_digit)
            .collect();
        (v::is_card_number(&digits) && digit_left_ok(buf, cs) && digit_right_ok(buf, ce))
            .then_some((cs, ce))
    };
    let n = groups.len();
    let push = |out: &mut Vec<Span>, (start, end): (usize, usize)| {
        out.push(Span {
            start,
            end,
            kind: DetectorKind::Card,
        })
    };
    if let Some(r) = try_range(0, n) {
        push(out, r);
        return;
    }
    // A run may hold cards next to other numbers ("4242 ... 4242 12 25"): take the longest card
    // starting at each group, left to right. The edge checks keep dash-joined ids whole
    // ("4242-...-4242-01" has no card: a '-' followed by a digit continues the number).
    if n > 1 {
        let mut i = 0;
        'next: while i < n {
            for j in (i + 1..=n).rev() {
                if let Some(r) = try_range(i, j) {
                    push(out, r);
                    i = j;
                    continue 'next;
                }
            }
            i += 1;
        }
    }
}

/// `p` is the index of '+'. Digits in groups separated by single ' ', '-' or '.', optionally a
/// parenthesised group (`+44 (0)20 ...`); 8-15 digits in at most 6 groups.
pub(super) fn phone_intl(buf: &[u8], p: usize) -> Option<usize> {
    if p > 0 && (v::is_word(buf[p - 1]) || buf[p - 1] == b'+') {
        return None;
    }
    let mut i = p + 1;
    let mut digits = 0;
    let mut groups = 0;
    let mut end;
    loop {
        let paren = buf.get(i) == Some(&b'(');
        if paren {
            i += 1;
        }
        let g0 = i;
        while i < buf.len() && buf[i].is_ascii_digit() {
            i += 1;
        }
        if i == g0 || i - g0 > 15 {
            return None;
        }
        if paren {
            if buf.get(i) != Some(&b')') {
                return None;
            }
            i += 1;
        }
        digits += i - g0;
        groups += 1;
        end = i;
        match (buf.get(i), buf.get(i + 1)) {
            (Some(b' ' | b'-' | b'.'), Some(n)) if n.is_ascii_digit() || *n == b'(' => i += 1,
            (Some(b'('), _) if !paren => {}
            // `(0)20`: the group after a parenthesised trunk digit follows directly.
            (Some(d), _) if paren && d.is_ascii_digit() => {}
            _ => break,
        }
        if digits > 15 || groups > 6 {
            return None;
        }
    }
    ((8..=15).contains(&digits) && groups <= 6 && digit_right_ok(buf, end)).then_some(end)
}

/// North American number ending at `end` (`415-555-0132`, `415.555.0132`, `(415) 555-0132`),
/// area and exchange starting 2-9; a leading `1-`/`1 `/`1.` trunk prefix is included.
pub(super) fn phone_nanp(buf: &[u8], end: usize) -> Option<usize> {
    let exch_first = buf[end - 8];
    let (s, area_first) = if buf[end - 9] == b')' || buf[end - 10] == b')' {
        let close = if buf[end - 9] == b')' {
            end - 9
        } else {
            end - 10
        };
        let s = close - 4;
        (s, buf[s + 1])
    } else {
        // 3-3-4 with the same separator twice.
        if buf[end - 5] != buf[end - 9] {
            return None;
        }
        (end - 12, buf[end - 12])
    };
    if !(b'2'..=b'9').contains(&area_first) || !(b'2'..=b'9').contains(&exch_first) {
        return None;
    }
    if !digit_right_ok(buf, end) {
        return None;
    }
    // Trunk prefix "1-" etc. belongs to the number.
    if s >= 2
        && buf[s - 2] == b'1'
        && matches!(buf[s - 1], b'-' | b' ' | b'.')
        && digit_left_ok(buf, s - 2)
    {
        return Some(s - 2);
    }
    digit_left_ok(buf, s).then_some(s)
}

/// `s` is the country code. Compact (`GB82WEST1234...`) or grouped by four with single spaces
/// (`GB82 WEST 1234 ...`); uppercase only.
pub(super) fn iban(buf: &[u8], s: usize) -> Option<usize> {
    if !word_left_ok(buf, s) {
        return None;
    }
    let len = v::iban_length(&buf[s..s + 2])?;
    let ok = |b: u8| b.is_ascii_digit() || b.is_ascii_uppercase();
    let spaced = buf.get(s + 4) == Some(&b' ');
    let mut compact = Vec::with_capacity(len);
    let mut i = s;
    while compact.len() < len {
        let b = *buf.get(i)?;
        if spaced && compact.len() % 4 == 0 && !compact.is_empty() && buf[i - 1] != b' ' {
            if b != b' ' {
                return None;
            }
            i += 1;
            continue;
        }
        if !ok(b) {
            return None;
        }
        compact.push(b);
        i += 1;
    }
    (buf.get(i).is_none_or(|&b| !v::is_word(b)) && v::is_iban(&compact)).then_some(i)
}

pub(super) fn ipv4(buf: &[u8], end: usize, resume: &mut usize) -> Option<(usize, usize)> {
    // Maximal run of digits joined by single dots.
    let mut s = end - 1;
    while s > 0 && end - s < 64 {
        if buf[s - 1].is_ascii_digit() {
            s -= 1;
        } else if s >= 2 && buf[s - 1] == b'.' && buf[s - 2].is_ascii_digit() {
            s -= 2;
        } else {
            break;
        }
    }
    let mut e = end;
    while e < buf.len() && e - s < 64 {
        if buf[e].is_ascii_digit() {
            e += 1;
        } else if buf[e] == b'.' && buf.get(e + 1).is_some_and(u8::is_ascii_digit) {
            e += 2;
        } else {
            break;
        }
    }
    *resume = e;
    let left_ok = s == 0 || !(v::is_word(buf[s - 1]) || buf[s - 1] == b'.');
    let right_ok = buf.get(e).is_none_or(|&b| !v::is_word(b));
    (left_ok && right_ok && v::is_ipv4(&buf[s..e])).then_some((s, e))
}

pub(super) fn ipv6(buf: &[u8], end: usize, resume: &mut usize) -> Option<(usize, usize)> {
    let c = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
    let mut s = end;
    while s > 0 && end - s < 64 && c(buf[s - 1]) {
        s -= 1;
    }
    let mut e = end;
    while e < buf.len() && e - s < 64 && c(buf[e]) {
        e += 1;
    }
    *resume = e;
    // A trailing '.' is punctuation.
    let mut te = e;
    while te > s && buf[te - 1] == b'.' {
        te -= 1;
    }
    let left_ok = s == 0 || !v::is_word(buf[s - 1]);
    let right_ok = buf.get(e).is_none_or(|&b| !v::is_word(b));
    (left_ok && right_ok && v::is_ipv6(&buf[s..te])).then_some((s, te))
}
