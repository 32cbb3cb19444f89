//! Prefilter triggers and their exact confirmers.
//!
//! Hyperscan runs without start-of-match tracking (SOM costs ~50x), so it only tells us where a
//! trigger *ends*. Each trigger is therefore either fixed-width (the start is `end - width`) or
//! anchored on a run that the confirmer re-expands by hand. Confirmers parse a bounded window
//! around the hit and return the exact span; they never look further than [`MAX_LOOKBEHIND`]
//! before or [`MAX_SPAN`] after the hit, which is what lets the stream masker keep a bounded tail.

mod pii;
mod secrets;

use super::{config::DetectorKind, validators as v};

use pii::{card, email, iban, ipv4, ipv6, phone_intl, phone_nanp, ssn_after_label};
use secrets::{gitlab, jwt, keyword_password, pem, token, url_password};

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

/// No word character immediately before `s`.
pub(super) fn word_left_ok(buf: &[u8], s: usize) -> bool {
    s == 0 || !v::is_word(buf[s - 1])
}

/// Left edge of a number: no word character, and not the tail of a dotted/dashed number
/// (`1.2` or `12-` right before it).
pub(super) fn digit_left_ok(buf: &[u8], s: usize) -> bool {
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
pub(super) fn digit_right_ok(buf: &[u8], e: usize) -> bool {
    match buf.get(e) {
        None => true,
        Some(&n) if v::is_word(n) => false,
        Some(&n) => !(matches!(n, b'.' | b'-') && buf.get(e + 1).is_some_and(u8::is_ascii_digit)),
    }
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
