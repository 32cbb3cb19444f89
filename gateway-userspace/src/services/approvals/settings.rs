//! The `approvals:` and `identity:` sections of the policy file, and per-rule `approval:`.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::{
    diag::Report,
    secret::{RawSecret, Secret, resolve_secret},
};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
pub const DEFAULT_MAX_PENDING: usize = 10_000;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_PREVIEW_TIMEOUT: Duration = Duration::from_secs(2);

/// The approval service: where reviewers reach it and what it does by default.
#[derive(Clone, Debug)]
pub struct ApprovalSettings {
    /// HTTP API and web page.
    pub listen: SocketAddr,
    /// Base URL used in notification links (default `http://<bound listen address>`).
    pub public_url: Option<String>,
    /// Requests and grants survive restarts here (a restarted gateway marks pending ones
    /// abandoned). `None`: `<state_dir>/approvals.db`.
    pub store: Option<PathBuf>,
    /// More pending requests than this are refused at once (bounds memory).
    pub max_pending: usize,
    /// For holds from rules without their own `approval:` (and guardrail defaults).
    pub default: Option<ApprovalPolicy>,
    pub notify: NotifySettings,
    /// The same API on a unix socket, for reviewers on the gateway's host (`sluice approvals`
    /// checks who serves it before sending a token). `None`: `<state_dir>/approvals.sock`.
    pub socket: Option<PathBuf>,
}

/// File name of the approval socket in `state_dir` unless `approvals.socket` says otherwise.
pub const DEFAULT_SOCKET_NAME: &str = "approvals.sock";
/// `sun_path` holds 108 bytes with the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

impl ApprovalSettings {
    pub fn socket_path(&self, state_dir: &std::path::Path) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| state_dir.join(DEFAULT_SOCKET_NAME))
    }

    pub fn store_path(&self, state_dir: &std::path::Path) -> PathBuf {
        self.store
            .clone()
            .unwrap_or_else(|| state_dir.join("approvals.db"))
    }
}

/// Who may approve what a rule holds, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// Members of any of these groups may decide.
    pub groups: Vec<String>,
    /// Distinct approvals needed (N of M).
    pub required: u32,
    pub timeout: Duration,
    /// After each delay (from the request), these groups are notified and may decide too.
    pub escalation: Vec<Escalation>,
    /// Requests are only opened inside this window; outside it a hold is refused at once.
    pub hours: Option<Hours>,
    pub preview: PreviewSettings,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escalation {
    pub after: Duration,
    pub groups: Vec<String>,
}

/// A weekly window in a fixed UTC offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hours {
    /// Bit 0 = Monday ... bit 6 = Sunday.
    pub days: u8,
    /// Minutes after midnight, local to `utc_offset_min`; `from < to`.
    pub from: u16,
    pub to: u16,
    pub utc_offset_min: i32,
}

impl Hours {
    /// Whether `unix_secs` falls inside the window.
    pub fn contains(&self, unix_secs: u64) -> bool {
        let local = unix_secs as i64 + i64::from(self.utc_offset_min) * 60;
        let days = local.div_euclid(86_400);
        let minute = (local.rem_euclid(86_400) / 60) as u16;
        // 1970-01-01 was a Thursday (index 3 with Monday = 0).
        let weekday = (days + 3).rem_euclid(7) as u8;
        self.days & (1 << weekday) != 0 && minute >= self.from && minute < self.to
    }
}

/// What reviewers see before deciding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreviewSettings {
    /// `EXPLAIN (FORMAT JSON)` on a separate upstream connection (estimated rows).
    pub explain: bool,
    /// Run the statement inside `BEGIN ... ROLLBACK` for the exact rows affected. Off by default:
    /// effects outside the transaction (sequences, functions with side effects) are not undone.
    pub dry_run: bool,
    pub timeout: Duration,
}

impl Default for PreviewSettings {
    fn default() -> Self {
        PreviewSettings {
            explain: true,
            dry_run: false,
            timeout: DEFAULT_PREVIEW_TIMEOUT,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct NotifySettings {
    /// URL and HMAC secret of the generic signed webhook.
    pub webhook: Option<(String, Secret)>,
    pub slack: Option<SlackSettings>,
}

#[derive(Clone, Debug)]
pub struct SlackSettings {
    /// Incoming-webhook URL (a secret: anyone holding it can post).
    pub webhook_url: Option<Secret>,
    /// Verifies requests to the interaction endpoint (`/slack/interactions`).
    pub signing_secret: Option<Secret>,
    /// Slack user id → reviewer identity; other Slack users cannot decide.
    pub users: BTreeMap<String, Reviewer>,
}

/// A reviewer as configured (static tokens, Slack users).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reviewer {
    pub subject: String,
    pub groups: Vec<String>,
}

/// How callers prove who they are.
#[derive(Clone, Debug, Default)]
pub struct IdentitySettings {
    pub oidc: Option<OidcConfig>,
    /// Fixed bearer tokens, for local single-user setups only.
    pub static_tokens: Vec<(Secret, Reviewer)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    pub groups_claim: String,
    /// Clock skew tolerated on `exp`/`nbf`/`iat`.
    pub leeway: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApprovals {
    #[serde(default)]
    listen: Option<Spanned<String>>,
    #[serde(default)]
    public_url: Option<Spanned<String>>,
    #[serde(default)]
    store: Option<String>,
    #[serde(default)]
    max_pending: Option<Spanned<usize>>,
    #[serde(default)]
    default: Option<RawPolicy>,
    #[serde(default)]
    notify: Option<RawNotify>,
    #[serde(default)]
    socket: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    groups: Spanned<Vec<String>>,
    #[serde(default)]
    required: Option<Spanned<u32>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    escalation: Vec<RawEscalation>,
    #[serde(default)]
    hours: Option<RawHours>,
    #[serde(default)]
    preview: Option<RawPreview>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    after: Spanned<String>,
    groups: Spanned<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHours {
    days: Spanned<Vec<String>>,
    from: Spanned<String>,
    to: Spanned<String>,
    #[serde(default)]
    utc_offset: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreview {
    #[serde(default)]
    explain: Option<bool>,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    #[serde(default)]
    webhook: Option<RawWebhook>,
    #[serde(default)]
    slack: Option<RawSlack>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Spanned<String>,
    secret: Spanned<RawSecret>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    #[serde(default)]
    webhook_url: Option<Spanned<RawSecret>>,
    #[serde(default)]
    signing_secret: Option<Spanned<RawSecret>>,
    #[serde(default)]
    users: BTreeMap<String, RawReviewer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReviewer {
    subject: Spanned<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {
    #[serde(default)]
    oidc: Option<RawOidc>,
    #[serde(default)]
    static_tokens: Vec<RawStaticToken>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    issuer: Spanned<String>,
    audience: Spanned<String>,
    #[serde(default)]
    groups_claim: Option<String>,
    #[serde(default)]
    leeway: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStaticToken {
    subject: Spanned<String>,
    #[serde(default)]
    groups: Vec<String>,
    token: Spanned<RawSecret>,
}

fn duration(raw: &Spanned<String>, what: &str, report: &mut Report) -> Option<Duration> {
    match humantime::parse_duration(raw.value.trim()) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            report.error(raw, format!("`{what}` must be longer than zero"), None);
            None
        }
        Err(e) => {
            report.error(
                raw,
                format!("`{}` is not a duration: {e}", raw.value),
                Some("e.g. 30s, 15m, 1h"),
            );
            None
        }
    }
}

fn clock(raw: &Spanned<String>, report: &mut Report) -> Option<u16> {
    let parsed = raw.value.split_once(':').and_then(|(h, m)| {
        let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
    });
    if parsed.is_none() {
        report.error(
            raw,
            format!("`{}` is not a time of day", raw.value),
            Some("write HH:MM, e.g. 09:00 or 18:30 (24:00 is the end of the day)"),
        );
    }
    parsed
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl RawHours {
    fn validate(&self, report: &mut Report) -> Option<Hours> {
        let mut days = 0u8;
        for d in &self.days.value {
            match DAYS.iter().position(|x| x.eq_ignore_ascii_case(d)) {
                Some(i) => days |= 1 << i,
                None => report.error(
                    &self.days,
                    format!("`{d}` is not a day"),
                    Some("use mon, tue, wed, thu, fri, sat, sun"),
                ),
            }
        }
        let (from, to) = (clock(&self.from, report)?, clock(&self.to, report)?);
        if from >= to {
            report.error(
                &self.to,
                "`to` must be later than `from`",
                Some("windows across midnight are not supported; use two rules"),
            );
            return None;
        }
        let utc_offset_min = match &self.utc_offset {
            None => 0,
            Some(o) => {
                let text = o.value.trim();
                let (sign, rest) = match text.as_bytes().first() {
                    Some(b'+') => (1, &text[1..]),
                    Some(b'-') => (-1, &text[1..]),
                    _ => (0, text),
                };
                let parsed = rest
                    .split_once(':')
                    .and_then(|(h, m)| Some(h.parse::<i32>().ok()? * 60 + m.parse::<i32>().ok()?));
                match parsed {
                    Some(m) if sign != 0 && m <= 14 * 60 => sign * m,
                    _ => {
                        report.error(
                            o,
                            format!("`{text}` is not a UTC offset"),
                            Some("write +HH:MM or -HH:MM, e.g. +01:00"),
                        );
                        0
                    }
                }
            }
        };
        Some(Hours {
            days,
            from,
            to,
            utc_offset_min,
        })
    }
}

fn groups(raw: &Spanned<Vec<String>>, report: &mut Report) -> Vec<String> {
    if raw.value.is_empty() || raw.value.iter().any(|g| g.trim().is_empty()) {
        report.error(
            raw,
            "approver groups must be non-empty names",
            Some("name the OIDC groups whose members may decide, e.g. [dba]"),
        );
    }
    raw.value.clone()
}

impl RawPolicy {
    pub(crate) fn validate(&self, report: &mut Report) -> ApprovalPolicy {
        let groups_now = groups(&self.groups, report);
        let required = match &self.required {
            None => 1,
            Some(r) if r.value == 0 => {
                report.error(
                    r,
                    "`required` must be at least 1",
                    Some("a hold nobody needs to approve is an allow"),
                );
                1
            }
            Some(r) => r.value,
        };
        let timeout = self
            .timeout
            .as_ref()
            .and_then(|t| duration(t, "timeout", report))
            .unwrap_or(DEFAULT_TIMEOUT);
        let mut escalation = Vec::new();
        for e in &self.escalation {
            let after = duration(&e.after, "after", report).unwrap_or(timeout);
            if after >= timeout {
                report.error(
                    &e.after,
                    "an escalation must come before the timeout",
                    Some("lower `after` or raise `timeout`"),
                );
            }
            if let Some(prev) = escalation.last().map(|p: &Escalation| p.after)
                && after <= prev
            {
                report.error(&e.after, "escalations must be in increasing order", None);
            }
            escalation.push(Escalation {
                after,
                groups: groups(&e.groups, report),
            });
        }
        let hours = self.hours.as_ref().and_then(|h| h.validate(report));
        let mut preview = PreviewSettings::default();
        if let Some(p) = &self.preview {
            preview.explain = p.explain.unwrap_or(preview.explain);
            preview.dry_run = p.dry_run.unwrap_or(preview.dry_run);
            if let Some(t) = &p.timeout {
                preview.timeout = duration(t, "timeout", report).unwrap_or(preview.timeout);
            }
        }
        ApprovalPolicy {
            groups: groups_now,
            required,
            timeout,
            escalation,
            hours,
            preview,
        }
    }
}

impl RawApprovals {
    pub(crate) fn listen_span(&self) -> Option<&Spanned<String>> {
        self.listen.as_ref()
    }

    pub(crate) fn validate(&self, report: &mut Report) -> ApprovalSettings {
        let listen = match &self.listen {
            None => DEFAULT_LISTEN.parse().expect("valid default"),
            Some(s) => s.value.parse::<SocketAddr>().unwrap_or_else(|_| {
                report.error(
                    s,
                    format!("`{}` is not an address:port", s.value),
                    Some("e.g. 127.0.0.1:7070"),
                );
                DEFAULT_LISTEN.parse().expect("valid default")
            }),
        };
        let public_url = match &self.public_url {
            Some(u) => {
                if !(u.value.starts_with("https://") || u.value.starts_with("http://")) {
                    report.error(
                        u,
                        "`public_url` must be an http(s) URL",
                        Some("e.g. https://sluice.example.com"),
                    );
                }
                Some(u.value.trim_end_matches('/').to_string())
            }
            None => None,
        };
        let max_pending = match &self.max_pending {
            None => DEFAULT_MAX_PENDING,
            Some(m) if m.value == 0 => {
                report.error(m, "`max_pending` must be at least 1", None);
                DEFAULT_MAX_PENDING
            }
            Some(m) => m.value,
        };
        let mut notify = NotifySettings::default();
        if let Some(n) = &self.notify {
            if let Some(w) = &n.webhook {
                if !(w.url.value.starts_with("https://") || w.url.value.starts_with("http://")) {
                    report.error(&w.url, "the webhook `url` must be an http(s) URL", None);
                }
                if let Some(secret) = resolve_secret(&w.secret, report) {
                    notify.webhook = Some((w.url.value.clone(), secret));
                }
            }
            if let Some(s) = &n.slack {
                let users = s
                    .users
                    .iter()
                    .map(|(id, r)| {
                        (
                            id.clone(),
                            Reviewer {
                                subject: r.subject.value.clone(),
                                groups: r.groups.clone(),
                            },
                        )
                    })
                    .collect();
                notify.slack = Some(SlackSettings {
                    webhook_url: s
                        .webhook_url
                        .as_ref()
                        .and_then(|w| resolve_secret(w, report)),
                    signing_secret: s
                        .signing_secret
                        .as_ref()
                        .and_then(|w| resolve_secret(w, report)),
                    users,
                });
            }
        }
        let socket = self.socket.as_ref().and_then(|p| {
            let path = PathBuf::from(&p.value);
            if !path.is_absolute() || path.file_name().is_none() {
                report.error(
                    p,
                    format!("`socket` must be an absolute file path, not `{}`", p.value),
                    Some("e.g. /run/sluice/approvals.sock"),
                );
                None
            } else if p.value.len() > MAX_SOCKET_PATH {
                report.error(
                    p,
                    format!("`socket` is longer than a unix socket path can be ({MAX_SOCKET_PATH} bytes)"),
                    None,
                );
                None
            } else {
                Some(path)
            }
        });
        ApprovalSettings {
            listen,
            public_url,
            store: self.store.as_ref().map(PathBuf::from),
            max_pending,
            default: self.default.as_ref().map(|p| p.validate(report)),
            notify,
            socket,
        }
    }
}

impl RawIdentity {
    pub(crate) fn validate(&self, report: &mut Report) -> IdentitySettings {
        let oidc = self.oidc.as_ref().map(|o| {
            let issuer = o.issuer.value.trim_end_matches('/').to_string();
            if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                report.error(&o.issuer, "`issuer` must be an http(s) URL", None);
            }
            OidcConfig {
                issuer,
                audience: o.audience.value.clone(),
                groups_claim: o.groups_claim.clone().unwrap_or_else(|| "groups".into()),
                leeway: match &o.leeway {
                    None => Duration::from_secs(30),
                    Some(l) => match humantime::parse_duration(l.value.trim()) {
                        Ok(d) if d <= Duration::from_secs(300) => d,
                        _ => {
                            report.error(
                                l,
                                "`leeway` must be a duration of at most 5m",
                                Some("e.g. 30s, or 0s"),
                            );
                            Duration::from_secs(30)
                        }
                    },
                },
            }
        });
        let mut static_tokens = Vec::new();
        for t in &self.static_tokens {
            if let Some(secret) = resolve_secret(&t.token, report) {
                if secret.expose().len() < 16 {
                    report.error(
                        &t.token,
                        "a static token must be at least 16 characters",
                        Some("generate one with `openssl rand -hex 24`"),
                    );
                }
                static_tokens.push((
                    secret,
                    Reviewer {
                        subject: t.subject.value.clone(),
                        groups: t.groups.clone(),
                    },
                ));
            }
        }
        IdentitySettings {
            oidc,
            static_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_window() {
        // Monday to Friday, 09:00-17:00 UTC+01:00.
        let h = Hours {
            days: 0b0011111,
            from: 9 * 60,
            to: 17 * 60,
            utc_offset_min: 60,
        };
        // 2026-11-23 is a Monday. 08:30 UTC = 09:30 local.
        let monday_0830_utc = 1_795_422_600;
        assert!(h.contains(monday_0830_utc));
        // 07:30 UTC = 08:30 local: before the window.
        assert!(!h.contains(monday_0830_utc - 3600));
        // Saturday at the same hour.
        assert!(!h.contains(monday_0830_utc + 5 * 86_400));
        // Friday.
        assert!(h.contains(monday_0830_utc + 4 * 86_400));
    }
}
