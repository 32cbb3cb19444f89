//! Settings sluice pins on every upstream session, and the checks that keep them pinned.
//!
//! The guardrails read statement text as a UTF-8 session with `standard_conforming_strings = on`
//! reads it. So sluice logs in upstream with those values whatever the agent asked, refuses an
//! agent that asks for another client encoding (sluice relays bytes and does not transcode), and
//! refuses every statement that would change them (the `pinned-setting` guardrail). As a last
//! line, the server's own reports (ParameterStatus) are checked: if one of them ever says a
//! pinned value changed (a function sluice could not see into called `set_config`), the session
//! ends at once, before another statement is decided with the wrong reading.

use super::settings::{PgSettings, ReadOnly};

/// What sluice sends upstream at login, after the agent's own parameters: how text is read,
/// the read-only default (when enforced), and the resource's timeouts.
pub fn upstream_settings(pg: &PgSettings) -> Vec<(String, String)> {
    let ms = |d: std::time::Duration| d.as_millis().to_string();
    let mut v = vec![
        ("standard_conforming_strings".to_string(), "on".to_string()),
        ("client_encoding".into(), "UTF8".into()),
        ("statement_timeout".into(), ms(pg.statement_timeout)),
        ("lock_timeout".into(), ms(pg.lock_timeout)),
        (
            "idle_in_transaction_session_timeout".into(),
            ms(pg.idle_in_transaction_timeout),
        ),
    ];
    if pg.read_only == ReadOnly::Transaction {
        v.push(("default_transaction_read_only".into(), "on".into()));
    }
    v
}

/// The agent's startup parameters as sent upstream: its `client_encoding` is replaced by the
/// pinned one (see [`encoding_refusal`]).
pub fn upstream_params(params: &[(String, String)], pg: &PgSettings) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("client_encoding"))
        .cloned()
        .collect();
    out.extend(upstream_settings(pg));
    out
}

/// Why the agent's requested `client_encoding` cannot be served. UTF-8 under any of
/// PostgreSQL's names is fine, and so is SQL_ASCII (no conversion: the bytes are the same).
/// Any other encoding can put a backslash or a quote inside a multibyte character (SJIS 0x83
/// 0x5C), so the server would split text differently from the analyser.
pub fn encoding_refusal(params: &[(String, String)]) -> Option<String> {
    let (_, value) = params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("client_encoding"))?;
    // PostgreSQL ignores case and punctuation in encoding names (`utf-8`, `UTF_8`).
    let clean: String = value
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    match clean.as_str() {
        "utf8" | "unicode" | "sqlascii" => None,
        _ => Some(format!(
            "sluice: client_encoding \"{value}\" is not supported; sessions through sluice use UTF8"
        )),
    }
}

/// Why a setting the server reports (ParameterStatus) breaks what sluice pinned, if it does.
pub fn reported_violation(name: &str, value: &str, read_only: bool) -> Option<String> {
    let broken = match name.to_ascii_lowercase().as_str() {
        "standard_conforming_strings" => value != "on",
        "client_encoding" => !value.eq_ignore_ascii_case("UTF8"),
        "default_transaction_read_only" => read_only && value != "on",
        _ => false,
    };
    broken.then(|| {
        format!(
            "sluice: the database reports {name} = {value}, a setting sluice pins for the session; the session is closed"
        )
    })
}

/// (name, value) of a ParameterStatus ('S') body.
pub fn parameter_status(body: &[u8]) -> Option<(&str, &str)> {
    let mut r = super::codec::CStrReader::new(body);
    Some((r.cstr("name").ok()?, r.cstr("value").ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str) -> Vec<(String, String)> {
        vec![
            ("user".into(), "a".into()),
            ("client_encoding".into(), v.into()),
        ]
    }

    #[test]
    fn only_utf8_and_sql_ascii_are_served_and_upstream_gets_utf8() {
        for ok in ["UTF8", "utf-8", "Unicode", "UTF_8", "SQL_ASCII"] {
            assert_eq!(encoding_refusal(&p(ok)), None, "{ok}");
        }
        for bad in [
            "SJIS",
            "Shift_JIS",
            "BIG5",
            "GBK",
            "GB18030",
            "EUC_JP",
            "LATIN1",
            "auto",
        ] {
            assert!(encoding_refusal(&p(bad)).is_some(), "{bad}");
        }
        assert_eq!(encoding_refusal(&[("user".into(), "a".into())]), None);
        let up = upstream_params(&p("SQL_ASCII"), &PgSettings::default());
        let enc: Vec<&str> = up
            .iter()
            .filter(|(k, _)| k == "client_encoding")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(enc, ["UTF8"]);
        assert!(up.contains(&("default_transaction_read_only".into(), "on".into())));
    }

    #[test]
    fn a_reported_change_of_a_pinned_setting_is_a_violation() {
        assert!(reported_violation("standard_conforming_strings", "off", false).is_some());
        assert!(reported_violation("client_encoding", "SJIS", false).is_some());
        assert!(reported_violation("default_transaction_read_only", "off", true).is_some());
        assert!(reported_violation("default_transaction_read_only", "off", false).is_none());
        assert!(reported_violation("client_encoding", "UTF8", true).is_none());
        assert!(reported_violation("application_name", "x", true).is_none());
    }
}
