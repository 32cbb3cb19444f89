//! One RFC 5424 message: the header fields, the structured data and the body, sanitized.

use std::{fmt::Write as _, sync::OnceLock};

use serde::Deserialize;

use super::*;

// RFC 5424 section 6 field limits.
const HOSTNAME_MAX: usize = 255;
const APP_NAME_MAX: usize = 48;
const PROCID_MAX: usize = 128;
const MSGID_MAX: usize = 32;

/// Severities of RFC 5424, section 6.2.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Emergency = 0,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Informational,
    Debug,
}

/// `warning` for a denied command, `info` otherwise.
pub fn severity(record: &Record) -> Severity {
    #[derive(Deserialize)]
    struct Action {
        action: Option<String>,
    }
    // Only command bodies carry `action`: skip parsing (possibly large) result bodies.
    if !record.body.contains("\"action\"") {
        return Severity::Informational;
    }
    match serde_json::from_str::<Action>(&record.body) {
        Ok(Action {
            action: Some(action),
        }) if action == "deny" => Severity::Warning,
        _ => Severity::Informational,
    }
}

/// The message for `record`, whole (as sent over TCP, without its octet count).
pub fn format_rfc5424(settings: &SyslogSettings, record: &Record, hash: &[u8; 32]) -> String {
    Header::new(settings).format(record, hash, None)
}

/// What is the same in every message, sanitized once.
#[derive(Clone, Debug)]
pub(super) struct Header {
    facility: Facility,
    hostname: String,
    app_name: String,
    procid: String,
}

impl Header {
    pub(super) fn new(settings: &SyslogSettings) -> Header {
        let hostname = match &settings.hostname {
            Some(h) => h.as_str(),
            None => machine_hostname().unwrap_or("-"),
        };
        Header {
            facility: settings.facility,
            hostname: header_field(hostname, HOSTNAME_MAX),
            app_name: header_field(&settings.app_name, APP_NAME_MAX),
            procid: header_field(&std::process::id().to_string(), PROCID_MAX),
        }
    }

    /// With `limit`, the message is at most that many octets (the body is cut to fit).
    pub(super) fn format(&self, record: &Record, hash: &[u8; 32], limit: Option<usize>) -> String {
        let pri = self.facility as u8 * 8 + severity(record) as u8;
        let (timestamp, exact_time) = if is_rfc5424_timestamp(&record.time) {
            (record.time.as_str(), None)
        } else {
            ("-", Some(record.time.as_str()))
        };
        let mut out = String::with_capacity(256 + record.body.len());
        let _ = write!(
            out,
            "<{pri}>1 {timestamp} {} {} {} {} [{SD_ID}",
            self.hostname,
            self.app_name,
            self.procid,
            header_field(&record.kind, MSGID_MAX),
        );
        sd_param(&mut out, "node", &record.node);
        sd_param(&mut out, "seq", &record.seq.to_string());
        if let Some(session) = &record.session {
            sd_param(&mut out, "session", session);
        }
        if let Some(time) = exact_time {
            sd_param(&mut out, "time", time);
        }
        sd_param(&mut out, "hash", &crate::util::hex(hash));
        let body = match limit {
            Some(limit) if out.len() + 2 + record.body.len() > limit => {
                sd_param(&mut out, "truncated", &record.body.len().to_string());
                floor_char_boundary(&record.body, limit.saturating_sub(out.len() + 2))
            }
            _ => &record.body,
        };
        out.push_str("] ");
        out.push_str(body);
        out
    }
}

/// A header field: printable US-ASCII only, at most `max` characters, `-` (NILVALUE) if empty.
fn header_field(s: &str, max: usize) -> String {
    let v: String = s.chars().filter(char::is_ascii_graphic).take(max).collect();
    if v.is_empty() { "-".into() } else { v }
}

/// ` name="value"`, with `"`, `\` and `]` escaped as RFC 5424 section 6.3.3 requires.
fn sd_param(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// The longest prefix of `s` of at most `max` octets that ends on a character boundary.
fn floor_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// RFC 5424's TIMESTAMP: `YYYY-MM-DDTHH:MM:SS[.1-6 digits](Z|+HH:MM|-HH:MM)`. Field ranges are
/// not checked; the shape is what receivers parse.
pub(super) fn is_rfc5424_timestamp(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if b.len() < 20
        || !(digits(&b[0..4])
            && b[4] == b'-'
            && digits(&b[5..7])
            && b[7] == b'-'
            && digits(&b[8..10])
            && b[10] == b'T'
            && digits(&b[11..13])
            && b[13] == b':'
            && digits(&b[14..16])
            && b[16] == b':'
            && digits(&b[17..19]))
    {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return false;
        }
        rest = &frac[n..];
    }
    rest == b"Z"
        || (rest.len() == 6
            && (rest[0] == b'+' || rest[0] == b'-')
            && digits(&rest[1..3])
            && rest[3] == b':'
            && digits(&rest[4..6]))
}

/// The kernel's hostname, read once (no unsafe `gethostname` needed).
pub fn machine_hostname() -> Option<&'static str> {
    static HOSTNAME: OnceLock<Option<String>> = OnceLock::new();
    HOSTNAME
        .get_or_init(|| {
            ["/proc/sys/kernel/hostname", "/etc/hostname"]
                .iter()
                .find_map(|p| {
                    let h = std::fs::read_to_string(p).ok()?;
                    let h = h.trim();
                    (!h.is_empty()).then(|| h.to_string())
                })
        })
        .as_deref()
}
