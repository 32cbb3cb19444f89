//! Audit records to syslog (RFC 5424), for SIEMs.
//!
//! One message per durable record:
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [sluice@32473 node="…" seq="…" session="…" hash="<hex>"] MSG
//! ```
//!
//! - PRI: the configured facility; severity `warning` when the body's top-level `action` is
//!   `deny`, `info` for everything else.
//! - TIMESTAMP: the record's time as stored. If it is not a valid RFC 5424 timestamp (at most six
//!   fraction digits, `T` and `Z` upper case), it is sent as `-` and the exact text goes into a
//!   `time` parameter, so that a receiver can always recompute the chain hash.
//! - MSGID: the record kind. PROCID: the gateway's pid.
//! - `session` is left out for records without one (the chain hashes "none" and "empty"
//!   differently, so an empty parameter would be ambiguous).
//! - MSG: the JSON body, byte for byte, without a BOM: JSON is UTF-8 by definition (RFC 8259)
//!   and a BOM only makes JSON consumers strip it.
//!
//! Transports: UDP (RFC 5426, one datagram per message), TCP (RFC 6587 octet counting) and a
//! local Unix datagram socket (`/dev/log`). Datagrams are capped at [`DATAGRAM_MAX`] octets
//! (rsyslog's default limit): a longer body is cut at a character boundary and a
//! `truncated` parameter gives its full length in octets. TCP messages are sent whole; the
//! receiver may still cut them at its own limit (rsyslog's `maxMessageSize`).
//!
//! [`SyslogSink`] never blocks the caller: records go through a bounded queue to one worker
//! thread, and are dropped (and counted) when the queue is full. Syslog is a copy for the SIEM;
//! the SQLite chain stays the record of truth.

use super::chain::Record;

mod format;
mod settings;
mod sink;
#[cfg(test)]
mod tests;

pub use format::{Severity, format_rfc5424, machine_hostname, severity};
pub use settings::{Facility, SyslogSettings, SyslogTarget, TargetError};
pub use sink::{SyslogSink, SyslogStats};

/// SD-ID of the record's structured data. 32473 is the private enterprise number IANA reserves
/// for documentation and examples (RFC 5612); sluice has no PEN of its own.
pub const SD_ID: &str = "sluice@32473";

/// Largest UDP or Unix datagram sent, in octets: rsyslog's default `maxMessageSize` (measured:
/// it cuts longer messages at 8096 octets, blindly, possibly inside a UTF-8 character). Cutting
/// here instead keeps the text valid and marks it. syslog-ng accepts 64 KiB by default.
pub const DATAGRAM_MAX: usize = 8096;

/// Records waiting for the worker before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 4096;
