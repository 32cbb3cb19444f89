//! The tamper-evident audit log (work in progress for the audit issue): an append-only SQLite
//! table in which every record carries the SHA-256 of the previous one, with periodic Ed25519
//! checkpoints so that cutting off the tail is detectable too.
//!
//! What is hashed is exactly what is stored: sequence number, node, time, kind, session and the
//! JSON body text, each length-prefixed, after the previous record's hash.

pub mod chain;
pub mod record;
pub mod syslog;
