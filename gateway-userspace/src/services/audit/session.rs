//! One agent session's view of the audit log, for every protocol.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use serde::Serialize;

use super::{
    AuditLog, Unavailable,
    record::{
        CommandRecord, IdentityRecord, ProcessRecord, ResultRecord, SessionEnd, SessionStart, kind,
    },
};
use crate::conn::ConnCtx;

/// Shared by the session's tasks (`Arc<SessionAudit>`: one per SSH channel, for instance).
pub struct SessionAudit {
    log: Arc<AuditLog>,
    /// Random, so ids from different nodes and restarts never collide.
    pub id: String,
    commands: AtomicU64,
    started: Instant,
}

/// The decision a command is recorded with.
pub struct Decided<'a> {
    pub action: &'a str,
    pub rule: &'a str,
    pub reason: &'a str,
}

impl SessionAudit {
    /// Records the session's start (queued; the first command's durable commit covers it).
    pub fn start(
        log: Arc<AuditLog>,
        ctx: &ConnCtx,
        protocol: &str,
        identity: IdentityRecord,
        credentials: &str,
    ) -> SessionAudit {
        let id = crate::util::new_id();
        let p = &ctx.process;
        log.record(
            kind::SESSION_START,
            Some(&id),
            &SessionStart {
                protocol: protocol.into(),
                resource: ctx.resource.name.clone(),
                target: ctx.target.clone(),
                client: ctx.client.to_string(),
                destination: ctx.orig_dst.to_string(),
                process: ProcessRecord {
                    pid: p.pid,
                    uid: p.uid,
                    gid: p.gid,
                    cgroup_id: p.cgroup_id,
                    comm: p.comm.clone(),
                    exe: p.exe.as_ref().map(|e| e.display().to_string()),
                    cmdline: p.cmdline.clone(),
                },
                identity,
                credentials: credentials.into(),
                conn_id: ctx.id,
            },
        );
        SessionAudit {
            log,
            id,
            commands: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Records a command and its decision; returns its number in the session once the record
    /// is durable. `masked` gives the text as it may be stored; `exact` is only hashed. Neither
    /// is computed when auditing is off.
    pub async fn command(
        &self,
        protocol: &str,
        exact: &str,
        masked: impl FnOnce() -> String,
        decided: Decided<'_>,
    ) -> Result<u64, Unavailable> {
        let n = self.commands.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.log.enabled() {
            return Ok(n);
        }
        self.log
            .durable(
                kind::COMMAND,
                Some(&self.id),
                &CommandRecord {
                    n,
                    protocol: protocol.into(),
                    text: masked(),
                    sha256: crate::util::sha256_hex(exact.as_bytes()),
                    action: decided.action.into(),
                    rule: decided.rule.into(),
                    reason: decided.reason.into(),
                },
            )
            .await?;
        Ok(n)
    }

    pub fn result(&self, result: &ResultRecord) {
        self.log.record(kind::RESULT, Some(&self.id), result);
    }

    pub fn end(&self, bytes_to_upstream: u64, bytes_to_client: u64, error: Option<String>) {
        self.log.record(
            kind::SESSION_END,
            Some(&self.id),
            &SessionEnd {
                commands: self.commands.load(Ordering::Relaxed),
                bytes_to_upstream,
                bytes_to_client,
                elapsed_ms: self.started.elapsed().as_millis() as u64,
                error,
            },
        );
    }

    pub fn capture(&self) -> super::settings::CaptureLimits {
        self.log.capture
    }

    /// Queues a record of this session (best effort, like results).
    pub(super) fn record<T: Serialize>(&self, kind: &'static str, body: &T) {
        self.log.record(kind, Some(&self.id), body);
    }

    /// A session without a connection, writing to `log`.
    #[cfg(test)]
    pub(crate) fn for_tests(log: Arc<AuditLog>, id: &str) -> SessionAudit {
        SessionAudit {
            log,
            id: id.into(),
            commands: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}
