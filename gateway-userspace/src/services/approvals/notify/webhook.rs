//! The generic webhook: its JSON body, and the HMAC signature with a timestamp that both it
//! and Slack's requests to us use.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::*;
use crate::services::approvals::model::ApprovalView;

pub const TIMESTAMP_HEADER: &str = "X-Sluice-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Sluice-Signature";

// ---------------------------------------------------------------------------------------------
// Generic signed webhook

#[derive(Serialize)]
struct WebhookBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    link: &'a str,
    approval: &'a ApprovalView,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<&'a [String]>,
}

/// The JSON body of the generic webhook.
pub fn webhook_body(n: &Notification, time: SystemTime) -> Vec<u8> {
    let body = WebhookBody {
        kind: n.event.type_name(),
        // The documented webhook shape: whole seconds.
        time: humantime::format_rfc3339_seconds(time).to_string(),
        link: &n.link,
        approval: &n.view,
        groups: match &n.event {
            NotifyEvent::Escalated { groups } => Some(groups),
            _ => None,
        },
    };
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the timestamp header is not a Unix time in seconds")]
    BadTimestamp,
    #[error(
        "the timestamp is {age_secs} s away from now, more than allowed (a replay, or clock skew)"
    )]
    Stale { age_secs: i128 },
    #[error("the signature header has no {0}<hex> value")]
    Malformed(&'static str),
    #[error("the signature does not match the body")]
    Mismatch,
}

pub(super) fn mac(secret: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length")
}

/// `X-Sluice-Signature` of `body` sent at `timestamp` (Unix seconds):
/// `v1=` + hex HMAC-SHA256(secret, "<timestamp>.<body>"). Signing the timestamp with the body
/// lets receivers refuse replays of an old, validly signed request.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(format!("{timestamp}.").as_bytes());
    m.update(body);
    format!("v1={}", crate::util::hex(&m.finalize().into_bytes()))
}

/// Checks a generic webhook as a receiver would: the timestamp within `tolerance` of `now`
/// (either side, for clock skew) and one of the comma-separated `v1=` signatures matching
/// (several are allowed so a secret can be rotated). The comparison is constant-time.
pub fn verify(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let ts = fresh_timestamp(timestamp_header, now, tolerance)?;
    let mut m = mac(secret);
    m.update(format!("{ts}.").as_bytes());
    m.update(body);
    check_signatures(m, signature_header, "v1=")
}

pub(super) fn fresh_timestamp(
    header: &str,
    now: SystemTime,
    tolerance: Duration,
) -> Result<u64, SignatureError> {
    let ts: u64 = header
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SignatureError::BadTimestamp)?
        .as_secs();
    let age_secs = i128::from(now) - i128::from(ts);
    if age_secs.unsigned_abs() > u128::from(tolerance.as_secs()) {
        return Err(SignatureError::Stale { age_secs });
    }
    Ok(ts)
}

pub(super) fn check_signatures(
    m: Hmac<Sha256>,
    header: &str,
    prefix: &'static str,
) -> Result<(), SignatureError> {
    let mut seen = false;
    for candidate in header.split(',').map(str::trim) {
        let Some(sig) = candidate.strip_prefix(prefix).and_then(crate::util::unhex) else {
            continue;
        };
        seen = true;
        if m.clone().verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err(if seen {
        SignatureError::Mismatch
    } else {
        SignatureError::Malformed(prefix)
    })
}
