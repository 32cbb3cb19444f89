//! Errors and notices: the detectors on every text field, and quoted values (or the whole
//! text of a `RAISE`) when the statement reads sensitive data.

use super::*;

/// Error and notice fields that hold text (not codes, positions or source locations).
fn is_text_field(t: u8) -> bool {
    !matches!(t, b'S' | b'V' | b'C' | b'P' | b'p' | b'F' | b'L' | b'R')
}

/// Masks an ErrorResponse/NoticeResponse: every text field through the detectors; when the
/// statement reads sensitive data, also every quoted value (`"..."`), every `(...)=(...)` key
/// and `Failing row contains (...)`, and the whole text of a `RAISE` (SQLSTATE class P0) or a
/// notice, which can be any value at all. A quoted word the statements themselves contain
/// (`column "emial" does not exist`) stays: the agent wrote it.
pub fn mask_notice(
    msg: Message,
    engine: &MaskingEngine,
    tainted: bool,
    statements: &[Arc<str>],
) -> Result<Message, MaskFailure> {
    if !engine.config().enabled {
        return Ok(msg);
    }
    if !tainted && !engine.could_contain(msg.body())? {
        return Ok(msg);
    }
    let mut fields = codec::notice_fields(msg.body());
    let code = codec::notice_field(&fields, b'C');
    let raise = msg.tag == b'N' || code.starts_with("P0");
    let mut changed = false;
    for (t, v) in fields.iter_mut() {
        if !is_text_field(*t) {
            continue;
        }
        let mut text = v.clone();
        if tainted {
            if raise && matches!(*t, b'M' | b'D' | b'H') {
                text = "[REDACTED]".into();
            } else {
                text = redact_quoted(&text, |q| {
                    !q.is_empty() && statements.iter().any(|s| mentions(s, q))
                });
            }
        }
        if let Some(m) = engine.mask(text.as_bytes())? {
            text = String::from_utf8_lossy(&m).into_owned();
        }
        if text != *v {
            *v = text;
            changed = true;
        }
    }
    Ok(if changed {
        codec::build_notice(msg.tag, &fields)
    } else {
        msg
    })
}

/// `"..."` → `"[REDACTED]"`, `(...)=(...)` → `(...)=([REDACTED])`, and the row of `Failing row
/// contains (...)`.
fn redact_quoted(s: &str, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            match s[i + 1..].find('"') {
                Some(j) => {
                    let quoted = &s[i + 1..i + 1 + j];
                    if keep(quoted) {
                        out.push_str(&s[i..i + j + 2]);
                    } else {
                        out.push_str("\"[REDACTED]\"");
                    }
                    i += j + 2;
                    continue;
                }
                None => {
                    out.push_str("\"[REDACTED]");
                    break;
                }
            }
        }
        if s[i..].starts_with(")=(") || s[i..].starts_with("contains (") {
            let open = i + s[i..].find('(').expect("prefix has one") + 1;
            out.push_str(&s[i..open]);
            // To the matching parenthesis (values may hold parentheses).
            let mut depth = 1;
            let mut j = open;
            while j < b.len() && depth > 0 {
                match b[j] {
                    b'(' => depth += 1,
                    b')' => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            out.push_str("[REDACTED]");
            if depth == 0 {
                out.push(')');
            }
            i = j;
            continue;
        }
        let ch = s[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_in_errors_are_redacted() {
        assert_eq!(
            redact_quoted(
                r#"invalid input syntax for type integer: "moc.elpmaxe@ada""#,
                |_| false
            ),
            r#"invalid input syntax for type integer: "[REDACTED]""#
        );
        assert_eq!(
            redact_quoted("Key (email)=(ada@example.com) already exists.", |_| false),
            "Key (email)=([REDACTED]) already exists."
        );
        assert_eq!(
            redact_quoted("Failing row contains (1, x (y), null).", |_| false),
            "Failing row contains ([REDACTED])."
        );
        // Words of the agent's own statement stay.
        assert_eq!(
            redact_quoted(r#"column "emial" must appear in "x""#, |q| q == "emial"),
            r#"column "emial" must appear in "[REDACTED]""#
        );
    }
}
