//! Confirmers of credentials: provider tokens, passwords in URLs and after keywords, PEM private
//! key blocks, JWTs.

use super::{JWT_MAX, PEM_MAX, v, word_left_ok};

/// `end` is 20 token bytes after `gl<kind>-`: back up to the `gl`, extend over the token.
pub(super) fn gitlab(buf: &[u8], end: usize) -> Option<(usize, usize)> {
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
pub(super) fn url_password(buf: &[u8], end: usize, resume: &mut usize) -> Option<(usize, usize)> {
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
pub(super) fn keyword_password(buf: &[u8], end: usize) -> Option<(usize, usize)> {
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
/// A prefixed token: the trigger matched `buf[s..trig_end]`; extend over `class`, up to 256.
pub(super) fn token(
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
pub(super) fn pem(buf: &[u8], end: usize, resume: &mut usize) -> Option<(usize, usize)> {
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
pub(super) fn jwt(buf: &[u8], s: usize, resume: &mut usize) -> Option<usize> {
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
