//! Prefilter triggers and their exact confirmers.
//!
//! Hyperscan runs without start-of-match tracking (SOM costs ~50x), so it only tells us where a
//! trigger *ends*. Each trigger is therefore either fixed-width (the start is `end - width`) or
//! anchored on a run that the confirmer re-expands by hand. Confirmers parse a bounded window
//! around the hit and return the exact span; they never look further than [`MAX_LOOKBEHIND`]
//! before or [`MAX_SPAN`] after the hit, which is what lets the stream masker keep a bounded tail.

use super::{config::DetectorKind, validators as v};

/// How far a confirmer may look left of a trigger's start.
pub const MAX_LOOKBEHIND: usize = 160;
/// Longest span of anything but JWTs and PEM blocks (emails: 64 + 1 + 253).
pub const MAX_SPAN: usize = 400;
/// PEM private key blocks are masked from BEGIN up to END, at most this many bytes; without an
/// END within the bound, the first `PEM_MAX` bytes are masked (fail closed) and scanning resumes.
pub const PEM_MAX: usize = 8 * 1024;
/// JWTs longer than this are masked up to this length only.
pub const JWT_MAX: usize = 16 * 1024;

/// A confirmed finding: `buf[start..end]` is a value of `kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: DetectorKind,
}

/// What a trigger looks like and how its hit is confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Email,
    Card,
    Ssn,
    PhoneIntl,
    PhoneNanp,
    Iban,
    Ipv4,
    Ipv6,
    Aws,
    Github,
    GithubPat,
    Slack,
    SlackApp,
    Stripe,
    Anthropic,
    Openai,
    Pem,
    Jwt,
    /// `ssn`/`social` followed closely by a 3-2-4 number with spaces, dots, dashes or nothing.
    SsnLabel,
    Gitlab,
    GoogleApi,
    Npm,
    Sendgrid,
    Huggingface,
    /// `scheme://user:PASSWORD@host`.
    UrlPassword,
    /// `password=...`, `pwd=...` in connection strings.
    KeywordPassword,
}

impl Trigger {
    pub const ALL: [Trigger; 26] = [
        Trigger::Email,
        Trigger::Card,
        Trigger::Ssn,
        Trigger::PhoneIntl,
        Trigger::PhoneNanp,
        Trigger::Iban,
        Trigger::Ipv4,
        Trigger::Ipv6,
        Trigger::Aws,
        Trigger::Github,
        Trigger::GithubPat,
        Trigger::Slack,
        Trigger::SlackApp,
        Trigger::Stripe,
        Trigger::Anthropic,
        Trigger::Openai,
        Trigger::Pem,
        Trigger::Jwt,
        Trigger::SsnLabel,
        Trigger::Gitlab,
        Trigger::GoogleApi,
        Trigger::Npm,
        Trigger::Sendgrid,
        Trigger::Huggingface,
        Trigger::UrlPassword,
        Trigger::KeywordPassword,
    ];

    pub fn kind(self) -> DetectorKind {
        use Trigger::*;
        match self {
            Email => DetectorKind::Email,
            Card => DetectorKind::Card,
            Ssn => DetectorKind::Ssn,
            PhoneIntl | PhoneNanp => DetectorKind::Phone,
            Iban => DetectorKind::Iban,
            Ipv4 | Ipv6 => DetectorKind::Ip,
            Aws => DetectorKind::AwsKey,
            Github | GithubPat => DetectorKind::GithubToken,
            Slack | SlackApp => DetectorKind::SlackToken,
            Stripe => DetectorKind::StripeKey,
            Anthropic => DetectorKind::AnthropicKey,
            Openai => DetectorKind::OpenaiKey,
            Pem => DetectorKind::PrivateKey,
            Jwt => DetectorKind::Jwt,
            SsnLabel => DetectorKind::Ssn,
            Gitlab => DetectorKind::GitlabToken,
            GoogleApi => DetectorKind::GoogleApiKey,
            Npm => DetectorKind::NpmToken,
            Sendgrid => DetectorKind::SendgridKey,
            Huggingface => DetectorKind::HuggingfaceToken,
            UrlPassword | KeywordPassword => DetectorKind::Password,
        }
    }

    /// Hyperscan expressions (no SOM). Fixed-width ones must match [`Trigger::width`].
    pub fn expressions(self) -> Vec<String> {
        use Trigger::*;
        let s = |x: &str| vec![x.to_string()];
        match self {
            // One hit per '@': a local-part byte, '@', a domain byte.
            Email => s(r"[A-Za-z0-9._%+\-]@[A-Za-z0-9]"),
            // 13 digits with optional single separators; the confirmer re-expands the whole run.
            Card => s(r"[0-9](?:[ \-]?[0-9]){12}"),
            Ssn => s(r"[0-9]{3}-[0-9]{2}-[0-9]{4}"),
            PhoneIntl => s(r"\+[1-9]"),
            PhoneNanp => vec![
                r"[0-9]{3}-[0-9]{3}-[0-9]{4}".into(),
                r"[0-9]{3}\.[0-9]{3}\.[0-9]{4}".into(),
                r"\([0-9]{3}\) ?[0-9]{3}[\-. ][0-9]{4}".into(),
            ],
            Iban => vec![format!("(?:{})[0-9]{{2}}", v::IBAN_COUNTRIES.join("|"))],
            Ipv4 => s(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]"),
            Ipv6 => s(r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{1,4}"),
            Aws => s(r"(?:AKIA|ASIA)[0-9A-Z]{16}"),
            Github => s(r"gh[pousr]_[A-Za-z0-9]{36}"),
            GithubPat => s(r"github_pat_[A-Za-z0-9_]{22}"),
            Slack => s(r"xox[abprs]-[0-9A-Za-z]{4}"),
            SlackApp => s(r"xapp-[0-9]-[0-9A-Za-z]{4}"),
            Stripe => s(r"[rs]k_(?:live|test)_[0-9A-Za-z]{10}"),
            Anthropic => s(r"sk-ant-[A-Za-z0-9_\-]{10}"),
            Openai => s(r"sk-[A-Za-z0-9_\-]{20}"),
            Pem => s(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"),
            Jwt => s(r"eyJ[A-Za-z0-9_\-]{6}"),
            // The label; the confirmer reads the number after it.
            SsnLabel => s(r"(?i)(?:\bssn|\bsocial)"),
            Gitlab => s(r"gl(?:pat|ptt|dt|rt|cbt|imt|ft|soat|oas)-[0-9A-Za-z_\-]{20}"),
            GoogleApi => s(r"AIza[0-9A-Za-z_\-]{35}"),
            Npm => s(r"npm_[A-Za-z0-9]{36}"),
            Sendgrid => s(r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{10}"),
            Huggingface => s(r"hf_[A-Za-z]{34}"),
            // `://` then a user and ':' (no '/', '@' or space in between), then the password's
            // first byte: the confirmer finds the '@' that ends it.
            UrlPassword => s(r"://[^\s/@:]{1,64}:[^\s/@]"),
            KeywordPassword => s(r"(?i)\b(?:password|passwd|pwd)\s?=[^\s;&]"),
        }
    }

    /// Width of fixed-width triggers (the start of the hit is `end - width`).
    fn width(self) -> usize {
        use Trigger::*;
        match self {
            Email => 3,
            Ssn => 11,
            PhoneIntl => 2,
            Iban => 4,
            Aws => 20,
            Github => 40,
            GithubPat => 33,
            Slack => 9,
            SlackApp => 11,
            Stripe => 18,
            Anthropic => 17,
            Openai => 23,
            Jwt => 9,
            GoogleApi => 39,
            Npm => 40,
            Sendgrid => 36,
            Huggingface => 37,
            Card | PhoneNanp | Ipv4 | Ipv6 | Pem | SsnLabel | Gitlab | UrlPassword
            | KeywordPassword => 0,
        }
    }
}

/// Confirms the hit of `trigger` ending at `end`. `resume` is the trigger's watermark: a
/// confirmer that examined a whole run sets it to the run's end so later hits inside the same
/// run are skipped in O(1) (Hyperscan reports every end inside a long digit run).
pub fn confirm(trigger: Trigger, buf: &[u8], end: usize, resume: &mut usize, out: &mut Vec<Span>) {
    if trigger == Trigger::Card {
        card(buf, end, resume, out);
        return;
    }
    if let Some(span) = confirm_one(trigger, buf, end, resume) {
        out.push(span);
    }
}

fn confirm_one(trigger: Trigger, buf: &[u8], end: usize, resume: &mut usize) -> Option<Span> {
    let w = trigger.width();
    if end < w {
        return None;
    }
    let start = end - w;
    let span = |s: usize, e: usize| {
        Some(Span {
            start: s,
            end: e,
            kind: trigger.kind(),
        })
    };
    use Trigger::*;
    match trigger {
        Email => email(buf, start + 1).and_then(|(s, e)| span(s, e)),
        Card => None,
        Ssn => {
            let c = &buf[start..end];
            (word_left_ok(buf, start)
                && digit_right_ok(buf, end)
                && v::is_ssn(&c[..3], &c[4..6], &c[7..]))
            .then(|| span(start, end))
            .flatten()
        }
        PhoneIntl => phone_intl(buf, start).and_then(|e| span(start, e)),
        PhoneNanp => phone_nanp(buf, end).and_then(|s| span(s, end)),
        Iban => iban(buf, start).and_then(|e| span(start, e)),
        Ipv4 => ipv4(buf, end, resume).and_then(|(s, e)| span(s, e)),
        Ipv6 => ipv6(buf, end, resume).and_then(|(s, e)| span(s, e)),
        Aws => (word_left_ok(buf, start)
            && buf.get(end).is_none_or(|&b| !b.is_ascii_alphanumeric()))
        .then(|| span(start, end))
        .flatten(),
        Github | Stripe | GithubPat => {
            token(buf, start, end, v::is_word, 0).and_then(|e| span(start, e))
        }
        Slack | SlackApp => token(
            buf,
            start,
            end,
            |b| b.is_ascii_alphanumeric() || b == b'-',
            20,
        )
        .and_then(|e| span(start, e)),
        Anthropic => {
            token(buf, start, end, |b| v::is_word(b) || b == b'-', 0).and_then(|e| span(start, e))
        }
        Openai => {
            if buf[start..].starts_with(b"sk-ant-") {
                return None; // the Anthropic trigger owns these
            }
            token(buf, start, end, |b| v::is_word(b) || b == b'-', 0).and_then(|e| span(start, e))
        }
        Pem => pem(buf, end, resume).and_then(|(s, e)| span(s, e)),
        Jwt => jwt(buf, start, resume).and_then(|e| span(start, e)),
        SsnLabel => ssn_after_label(buf, end).and_then(|(s, e)| span(s, e)),
        Gitlab => gitlab(buf, end).and_then(|(s, e)| span(s, e)),
        GoogleApi | Npm | Huggingface => (word_left_ok(buf, start)
            && buf.get(end).is_none_or(|&b| !(v::is_word(b) || b == b'-')))
        .then(|| span(start, end))
        .flatten(),
        Sendgrid => token(buf, start, end, |b| v::is_word(b) || b == b'-', 0)
            .filter(|e| e - start == 69)
            .and_then(|e| span(start, e)),
        UrlPassword => url_password(buf, end, resume).and_then(|(s, e)| span(s, e)),
        KeywordPassword => keyword_password(buf, end).and_then(|(s, e)| span(s, e)),
    }
}

/// `end` is just after `ssn` or `social` (any case). Up to 24 bytes of label words and
/// punctuation (`ssn=`, `SSN #: `, `social security no. `), then an SSN written with spaces,
/// dots, dashes or no separator: in context these shapes are SSNs, alone they are not.
fn ssn_after_label(buf: &[u8], end: usize) -> Option<(usize, usize)> {
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

/// `end` is 20 token bytes after `gl<kind>-`: back up to the `gl`, extend over the token.
fn gitlab(buf: &[u8], end: usize) -> Option<(usize, usize)> {
    let dash = end.checked_sub(21)?;
    let mut s = dash;
    while s > 0 && dash - s < 7 && buf[s - 1].is_ascii_lowercase() {
        s -= 1;
    }
    while s < dash && !buf[s..].starts_with(b"gl") {
        s += 1;
    }
    if s >= dash || !word_left_ok(buf, s) {
        return None;
    }
    token(buf, s, end, |b| v::is_word(b) || b == b'-', 0).map(|e| (s, e))
}

/// `end` is just after the password's first byte in `scheme://user:p...`: the password runs to
/// the '@' before the host (at most 256 bytes, no space or '/'); only the password is masked.
fn url_password(buf: &[u8], end: usize, resume: &mut usize) -> Option<(usize, usize)> {
    let s = end - 1;
    let limit = (s + 256).min(buf.len());
    let mut e = s;
    while e < limit && !matches!(buf[e], b'@' | b'/' | b' ' | b'\t' | b'\n' | b'\r') {
        e += 1;
    }
    if buf.get(e) != Some(&b'@') {
        return None;
    }
    // A host must follow.
    if !buf
        .get(e + 1)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'[')
    {
        return None;
    }
    *resume = e;
    Some((s, e))
}

/// `end` is just after the value's first byte in `password=v...`: the value runs to a space,
/// `;` or `&`; a quoted value (`password='a b'`) to its closing quote.
fn keyword_password(buf: &[u8], end: usize) -> Option<(usize, usize)> {
    let s = end - 1;
    let limit = (s + 256).min(buf.len());
    let q = buf[s];
    if matches!(q, b'\'' | b'"') {
        let close = buf[s + 1..limit].iter().position(|&b| b == q)?;
        return (close > 0).then_some((s + 1, s + 1 + close));
    }
    let mut e = s;
    while e < limit
        && !matches!(
            buf[e],
            b' ' | b'\t' | b'\n' | b'\r' | b';' | b'&' | b'"' | b'\''
        )
    {
        e += 1;
    }
    Some((s, e))
}

/// No word character immediately before `s`.
fn word_left_ok(buf: &[u8], s: usize) -> bool {
    s == 0 || !v::is_word(buf[s - 1])
}

/// Left edge of a number: no word character, and not the tail of a dotted/dashed number
/// (`1.2` or `12-` right before it).
fn digit_left_ok(buf: &[u8], s: usize) -> bool {
    if s == 0 {
        return true;
    }
    let p = buf[s - 1];
    if v::is_word(p) {
        return false;
    }
    !(matches!(p, b'.' | b'-') && s >= 2 && buf[s - 2].is_ascii_digit())
}

/// Right edge of a number: no word character, and no `.5`/`-5` continuation.
fn digit_right_ok(buf: &[u8], e: usize) -> bool {
    match buf.get(e) {
        None => true,
        Some(&n) if v::is_word(n) => false,
        Some(&n) => !(matches!(n, b'.' | b'-') && buf.get(e + 1).is_some_and(u8::is_ascii_digit)),
    }
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// `at` is the index of '@'. Local part: up to 64 of `[A-Za-z0-9._%+-]`; domain: at least two
/// labels, an alphabetic TLD of 2+ letters (so `pkg@1.2.3` and `user@localhost` stay).
fn email(buf: &[u8], at: usize) -> Option<(usize, usize)> {
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

fn card(buf: &[u8], end: usize, resume: &mut usize, out: &mut Vec<Span>) {
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
fn phone_intl(buf: &[u8], p: usize) -> Option<usize> {
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
fn phone_nanp(buf: &[u8], end: usize) -> Option<usize> {
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
fn iban(buf: &[u8], s: usize) -> Option<usize> {
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

fn ipv4(buf: &[u8], end: usize, resume: &mut usize) -> Option<(usize, usize)> {
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

fn ipv6(buf: &[u8], end: usize, resume: &mut usize) -> Option<(usize, usize)> {
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

/// A prefixed token: the trigger matched `buf[s..trig_end]`; extend over `class`, up to 256.
fn token(
    buf: &[u8],
    s: usize,
    trig_end: usize,
    class: impl Fn(u8) -> bool,
    min_len: usize,
) -> Option<usize> {
    if !word_left_ok(buf, s) {
        return None;
    }
    let mut e = trig_end;
    while e < buf.len() && e - s < 256 && class(buf[e]) {
        e += 1;
    }
    (e - s >= min_len).then_some(e)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `end` is just after `-----BEGIN ... PRIVATE KEY-----`.
fn pem(buf: &[u8], end: usize, resume: &mut usize) -> Option<(usize, usize)> {
    let lo = end.saturating_sub(64);
    let rel = buf[lo..end]
        .windows(11)
        .rposition(|w| w == b"-----BEGIN ")?;
    let s = lo + rel;
    let limit = (s + PEM_MAX).min(buf.len());
    let e = match find(&buf[end..limit], b"-----END ") {
        Some(i) => {
            let after = end + i + 9;
            let hi = (after + 64).min(limit);
            match find(&buf[after..hi], b"-----") {
                Some(j) => after + j + 5,
                None => limit,
            }
        }
        None => limit,
    };
    *resume = e;
    Some((s, e))
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// `s` is the start of `eyJ`: a header that decodes to JSON with `alg`, '.', a payload, and an
/// optional '.' signature (empty for `alg: none`).
fn jwt(buf: &[u8], s: usize, resume: &mut usize) -> Option<usize> {
    if s > 0 && (is_b64url(buf[s - 1]) || buf[s - 1] == b'.') {
        return None;
    }
    let limit = (s + JWT_MAX).min(buf.len());
    let seg = |from: usize| {
        let mut i = from;
        while i < limit && is_b64url(buf[i]) {
            i += 1;
        }
        i
    };
    let h = seg(s);
    *resume = h;
    if buf.get(h) != Some(&b'.') || h - s > 2048 || !v::is_jwt_header(&buf[s..h]) {
        return None;
    }
    let p = seg(h + 1);
    if p == h + 1 {
        return None;
    }
    let e = if p < limit && buf[p] == b'.' {
        seg(p + 1)
    } else {
        p
    };
    *resume = e;
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_triggers_match_their_width() {
        // A trigger's confirmer reads `end - width`: the expression must be exactly that wide.
        let samples: &[(Trigger, &str)] = &[
            (Trigger::Email, "a@b"),
            (Trigger::Ssn, "123-45-6789"),
            (Trigger::PhoneIntl, "+4"),
            (Trigger::Iban, "GB82"),
            (Trigger::Aws, "AKIAIOSFODNN7EXAMPLE"),
            (Trigger::Github, "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            (Trigger::GithubPat, "github_pat_aaaaaaaaaaaaaaaaaaaaaa"),
            (Trigger::Slack, "xoxb-1234"),
            (Trigger::SlackApp, "xapp-1-ABCD"),
            (Trigger::Stripe, "sk_live_abcdefghij"),
            (Trigger::Anthropic, "sk-ant-api03-abcd"),
            (Trigger::Openai, "sk-proj-abcdefghijklmno"),
            (Trigger::Jwt, "eyJhbGciO"),
            (
                Trigger::GoogleApi,
                "AIzaSyA1234567890abcdefghijklmnopqrstuv",
            ),
            (Trigger::Npm, "npm_abcdefghijklmnopqrstuvwxyz0123456789"),
            (Trigger::Sendgrid, "SG.abcdefghijklmnopqrstuv.abcdefghij"),
            (
                Trigger::Huggingface,
                "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
            ),
        ];
        for (t, s) in samples {
            assert_eq!(s.len(), t.width(), "{t:?}");
            let re = regex::Regex::new(&format!("^(?:{})$", t.expressions()[0])).unwrap();
            assert!(re.is_match(s), "{t:?} does not match its sample {s}");
        }
    }
}
