//! A statement's shape for just-in-time grants: literals become `?`, keywords and identifiers
//! are case-folded, whitespace and comments are dropped. `UPDATE t SET a = 1 WHERE id = 7` and
//! `update t set a = 2 where id = 9` share a fingerprint; adding `OR true` does not.

use sqlparser::tokenizer::{Token, Tokenizer};

use crate::inspect::Dialect;

/// The fingerprint of `sql`. Text the tokenizer cannot read gets a fingerprint of its exact
/// bytes, so a grant can only ever cover that same text.
pub fn sql_fingerprint(sql: &str, dialect: Dialect) -> String {
    let Ok(tokens) = Tokenizer::new(dialect.parser(), sql).tokenize() else {
        return format!("exact:{}", crate::util::sha256_hex(sql.as_bytes()));
    };
    let mut out = String::with_capacity(sql.len());
    for t in tokens {
        let piece = match t {
            Token::Whitespace(_) => continue,
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::UnicodeStringLiteral(_) => "?".to_string(),
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_lowercase(),
            other => other.to_string(),
        };
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&piece);
    }
    // A trailing `;` does not change what runs.
    while out.ends_with(" ;") || out == ";" {
        out.truncate(out.len().saturating_sub(2));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fingerprints in PostgreSQL, the dialect these cases are written in.
    fn sql_fingerprint(sql: &str) -> String {
        super::sql_fingerprint(sql, Dialect::Postgres)
    }

    #[test]
    fn literals_and_case_do_not_matter() {
        assert_eq!(
            sql_fingerprint("UPDATE accounts SET balance = 10 WHERE id = 7"),
            sql_fingerprint("update accounts  set balance=2.5 where id = 9;")
        );
        assert_eq!(
            sql_fingerprint("UPDATE t SET name = 'a' WHERE id = 1"),
            "update t set name = ? where id = ?"
        );
    }

    #[test]
    fn structure_matters() {
        let base = sql_fingerprint("UPDATE t SET a = 1 WHERE id = 1");
        assert_ne!(
            base,
            sql_fingerprint("UPDATE t SET a = 1 WHERE id = 1 OR true")
        );
        assert_ne!(base, sql_fingerprint("UPDATE u SET a = 1 WHERE id = 1"));
        assert_ne!(
            base,
            sql_fingerprint("UPDATE t SET a = 1 WHERE id = 1; DROP TABLE t")
        );
        // Quoted identifiers keep their case: "T" and t are different tables.
        assert_ne!(
            sql_fingerprint(r#"UPDATE "T" SET a = 1"#),
            sql_fingerprint("UPDATE t SET a = 1")
        );
    }

    #[test]
    fn untokenizable_is_exact() {
        let f = sql_fingerprint("SELECT 'unterminated");
        assert!(f.starts_with("exact:"));
        assert_ne!(f, sql_fingerprint("SELECT 'unterminated2"));
    }
}
