//! `ParameterStatus` and notifications: the free-text values the server sends outside a result
//! set, masked whole when a statement that reads sensitive data may have set them.

use super::*;

/// Parameters PostgreSQL itself validates: their values cannot carry data.
const VALIDATED_PARAMETERS: &[&str] = &[
    "server_version",
    "server_encoding",
    "client_encoding",
    "DateStyle",
    "IntervalStyle",
    "TimeZone",
    "integer_datetimes",
    "standard_conforming_strings",
    "is_superuser",
    "session_authorization",
    "default_transaction_read_only",
    "in_hot_standby",
    "scram_iterations",
];

impl ResponseMasker<'_> {
    /// `ParameterStatus`: a free-text setting (`application_name`, custom ones) set by a
    /// statement that reads sensitive data is masked whole.
    pub(super) async fn parameter_status(&mut self, msg: Message) -> Result<Message, MaskFailure> {
        let mut r = codec::CStrReader::new(msg.body());
        let (Ok(name), Ok(value)) = (
            r.cstr("ParameterStatus name"),
            r.cstr("ParameterStatus value"),
        ) else {
            return Ok(msg);
        };
        if VALIDATED_PARAMETERS.contains(&name) || value.is_empty() {
            return Ok(msg);
        }
        let (name, value) = (name.to_string(), value.to_string());
        let new_value = if self.statements_tainted().await || self.catalog.settings_tainted() {
            self.catalog.taint_settings();
            let mut p = Vec::new();
            self.engine
                .placeholder(DetectorKind::Column, value.as_bytes(), &mut p);
            Some(p)
        } else {
            self.engine.mask(value.as_bytes())?
        };
        Ok(match new_value {
            None => msg,
            Some(v) => {
                let mut body = Vec::with_capacity(name.len() + v.len() + 2);
                body.extend_from_slice(name.as_bytes());
                body.push(0);
                body.extend(v.iter().filter(|b| **b != 0));
                body.push(0);
                Message::new(b'S', &body)
            }
        })
    }

    /// `NotificationResponse`: once a statement through sluice sent a value read from the
    /// database as a notification (in any session), payloads are masked whole; otherwise they,
    /// and always the channel, go through the detectors.
    pub(super) async fn notification(&mut self, msg: Message) -> Result<Message, MaskFailure> {
        let body = msg.body();
        if body.len() < 4 {
            return Ok(msg);
        }
        let mut r = codec::CStrReader::new(&body[4..]);
        let (Ok(channel), Ok(payload)) = (r.cstr("channel"), r.cstr("payload")) else {
            return Ok(msg);
        };
        let engine = self.engine.clone();
        let sensitive = engine.config().enabled && self.catalog.settings_tainted();
        let new_payload: Option<Vec<u8>> = if sensitive && !payload.is_empty() {
            let mut p = Vec::new();
            engine.placeholder(DetectorKind::Column, payload.as_bytes(), &mut p);
            Some(p)
        } else {
            engine.mask(payload.as_bytes())?
        };
        let new_channel = engine.mask(channel.as_bytes())?;
        if new_payload.is_none() && new_channel.is_none() {
            return Ok(msg);
        }
        let mut out = body[..4].to_vec();
        out.extend(new_channel.unwrap_or_else(|| channel.as_bytes().to_vec()));
        out.push(0);
        out.extend(new_payload.unwrap_or_else(|| payload.as_bytes().to_vec()));
        out.push(0);
        Ok(Message::new(b'A', &out))
    }
}
