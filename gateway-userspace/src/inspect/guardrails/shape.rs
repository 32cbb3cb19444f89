//! A statement's shape: its text with every number and string literal replaced by `?`, all else
//! kept byte for byte. Two texts share a shape only if they differ in literal values alone, which
//! is what lets [`super::SqlAnalyzer`] reuse an analysis that never read a literal.
//!
//! The lexer is deliberately small and refuses (returns `None`, so the text is cached only
//! exactly) whatever it could read differently from PostgreSQL and sqlparser: backslashes,
//! prefixed strings (`E'..'`, `U&'..'`, `B'..'`), dollar quotes and parameters (`$`),
//! comments, non-ASCII bytes, numbers run into a word (`1a`, `0x1F`, `1_000`), and unterminated
//! quotes. Getting a literal's extent wrong must never make two different statements alike.

/// The shape of `sql` after `prefix`, or `None` when the text uses anything the lexer does not
/// model.
pub(crate) fn literal_shape(prefix: &str, sql: &str) -> Option<String> {
    let b = sql.as_bytes();
    if b.iter()
        .any(|&c| c >= 0x80 || matches!(c, b'\\' | b'$' | 0))
    {
        return None;
    }
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = String::with_capacity(prefix.len() + sql.len());
    out.push_str(prefix);
    // Bytes copied as they are accumulate from `copied` and are pushed in one go.
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !matches!(c, b'-' | b'/' | b'\'' | b'"' | b'0'..=b'9') {
            i += 1;
            continue;
        }
        out.push_str(&sql[copied..i]);
        copied = i;
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            b'\'' => {
                if i > 0 && (word(b[i - 1]) || b[i - 1] == b'&') {
                    return None;
                }
                i = closing_quote(b, i + 1, b'\'')?;
                copied = i;
                out.push('?');
            }
            b'"' => i = closing_quote(b, i + 1, b'"')?,
            b'0'..=b'9' if i == 0 || !(word(b[i - 1]) || b[i - 1] == b'.') => {
                i = number_end(b, i)?;
                copied = i;
                out.push('?');
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    Some(out)
}

/// Index just past the quote closing a quoted run that starts at `from` (`''`/`""` escape).
fn closing_quote(b: &[u8], mut from: usize, q: u8) -> Option<usize> {
    loop {
        let at = from + b[from..].iter().position(|&c| c == q)?;
        if b.get(at + 1) == Some(&q) {
            from = at + 2;
        } else {
            return Some(at + 1);
        }
    }
}

/// End of `digits [. digits] [e [+-] digits]`; `None` when a word or another dot follows.
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        digits(&mut i);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    match b.get(i) {
        Some(c) if c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.' => None,
        _ => Some(i),
    }
}

#[cfg(test)]
mod tests {
    fn shape(sql: &str) -> Option<String> {
        super::literal_shape("", sql)
    }

    #[test]
    fn literals_become_placeholders_and_the_rest_stays() {
        assert_eq!(
            shape("SELECT abalance FROM pgbench_accounts WHERE aid = 42;").unwrap(),
            "SELECT abalance FROM pgbench_accounts WHERE aid = ?;"
        );
        assert_eq!(
            shape("UPDATE t1 SET n = n + -1.5e3, s = 'it''s' WHERE \"Col 2\" = 7").unwrap(),
            "UPDATE t1 SET n = n + -?, s = ? WHERE \"Col 2\" = ?"
        );
        assert_eq!(
            shape("select x from t where id = 41"),
            shape("select x from t where id = 9000")
        );
        // Identifiers with digits, casts and typmods.
        assert_eq!(
            shape("SELECT c2::varchar(20) FROM s1.t_3 LIMIT 10").unwrap(),
            "SELECT c2::varchar(?) FROM s1.t_3 LIMIT ?"
        );
    }

    #[test]
    fn structure_still_differs() {
        let base = shape("DELETE FROM t WHERE id = 1");
        assert_ne!(base, shape("DELETE FROM t WHERE id = 1 OR true"));
        assert_ne!(base, shape("DELETE FROM u WHERE id = 1"));
        assert_ne!(base, shape("DELETE FROM t WHERE id = 1; DROP TABLE t"));
        assert_ne!(base, shape("delete from t where id = 1"));
    }

    #[test]
    fn what_the_lexer_does_not_model_has_no_shape() {
        for sql in [
            "SELECT E'\\'' ; DROP TABLE t; --'",
            "SELECT 'a\\' ",
            "SELECT $$x$$",
            "SELECT $1",
            "SELECT 1 -- c",
            "SELECT /* 'x */ 1",
            "SELECT U&'d\\0061t'",
            "SELECT B'101'",
            "SELECT 'unterminated",
            "SELECT \"unterminated",
            "SELECT 0x1F",
            "SELECT 1_000",
            "SELECT 1a",
            "SELECT 1.2.3",
            "SELECT 'é'",
            "SELECT 1e",
        ] {
            assert_eq!(shape(sql), None, "{sql}");
        }
    }
}
