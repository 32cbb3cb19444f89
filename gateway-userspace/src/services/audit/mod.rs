//! The tamper-evident audit log.
//!
//! - [`chain`]: every record carries the SHA-256 of the one before (per node), with periodic
//!   Ed25519 checkpoints, also written to a witness file outside the store, so that cutting
//!   off the tail is detectable too; verification reports the first broken link.
//! - [`sqlite`] (embedded default) and [`postgres`] (a fleet writing one database): the same
//!   tables; triggers refuse UPDATE and DELETE.
//! - [`AuditLog`]: the gateway's writer. One thread owns the store and commits in groups: every
//!   record queued while the previous commit ran goes into the next transaction, so concurrent
//!   sessions share one fsync, and a session forwards a command only once the commit holding
//!   its record returned ([`AuditLog::durable`]).
//! - [`record`]: what is recorded; [`session`] and [`stream`] (a channel's output) write it;
//!   [`psql`]/[`replay`]/[`terminal`]: reading it back.
//!
//! What is hashed is exactly what is stored: sequence number, node, time, kind, session and the
//! JSON body text, each length-prefixed, after the previous record's hash.

pub mod chain;
pub mod postgres;
pub mod psql;
pub mod record;
pub mod replay;
pub mod session;
pub mod settings;
pub mod sqlite;
pub mod stream;
pub mod syslog;
pub mod terminal;

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use self::{
    chain::{AuditError, Chain, Checkpoint, Entry, Store, Stored},
    settings::{AuditSettings, StoreSettings},
};
use crate::util::now_rfc3339;

/// Records per transaction at most (a burst larger than this takes several commits).
const MAX_GROUP: usize = 4096;
/// Records nobody waits for (results, session ends) wait this long for a record somebody
/// waits for, so that both share one commit: a statement costs one fsync, not two.
pub(crate) const LAZY_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);
/// A failed commit is retried this many times before the waiting commands are refused.
const COMMIT_ATTEMPTS: u32 = 3;

/// Opens the store the settings name (for the writer, or read-only for the CLI).
pub fn open_store(settings: &StoreSettings, read_only: bool) -> Result<Box<dyn Store>, AuditError> {
    match settings {
        StoreSettings::Sqlite(path) if read_only => {
            Ok(Box::new(sqlite::SqliteStore::open_read_only(path)?))
        }
        StoreSettings::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open(path)?)),
        StoreSettings::Postgres {
            connection,
            password,
        } => {
            let mut config: ::postgres::Config = connection
                .parse()
                .map_err(|e: ::postgres::Error| AuditError::Refused(e.to_string()))?;
            if let Some(p) = password {
                config.password(p.expose());
            }
            config.application_name("sluice-audit");
            Ok(Box::new(postgres::PgStore::open(config)?))
        }
    }
}

/// The audit log could not make a record durable: the command it was for is refused.
#[derive(Clone, Debug, thiserror::Error)]
#[error("the audit log cannot record it: {0}")]
pub struct Unavailable(pub Arc<str>);

enum Job {
    Append {
        kind: &'static str,
        session: Option<String>,
        body: String,
        done: Option<oneshot::Sender<Result<u64, Unavailable>>>,
    },
    Checkpoint,
    Close(oneshot::Sender<()>),
}

impl Job {
    /// Somebody waits for it: commit now.
    fn is_urgent(&self) -> bool {
        !matches!(self, Job::Append { done: None, .. })
    }
}

/// Called with each record once it is durable, and with each checkpoint (the syslog sink).
pub trait Forward: Send {
    fn record(&mut self, stored: &Stored);
    fn checkpoint(&mut self, checkpoint: &Checkpoint);
}

/// Sends what the writer committed to a syslog receiver. A checkpoint goes as a record of
/// kind `checkpoint` (its seq and hash are the signed head's), so the receiver holds signed
/// heads off the host.
pub struct SyslogForward(pub syslog::SyslogSink);

impl Forward for SyslogForward {
    fn record(&mut self, stored: &Stored) {
        if let Ok(hash) = <[u8; 32]>::try_from(stored.hash.as_slice()) {
            self.0.send(&stored.record, &hash);
        }
    }

    fn checkpoint(&mut self, c: &Checkpoint) {
        let Ok(hash) = <[u8; 32]>::try_from(c.hash.as_slice()) else {
            return;
        };
        let record = chain::Record {
            seq: c.seq,
            node: c.node.clone(),
            time: c.time.clone(),
            kind: "checkpoint".into(),
            session: None,
            body: to_json(c),
        };
        self.0.send(&record, &hash);
    }
}

/// The gateway's handle on the audit log.
pub struct AuditLog {
    /// Unbounded on purpose: commands wait for their commit, so the queue holds at most a
    /// few records per open session; a bounded queue would have to drop or block.
    tx: Option<mpsc::UnboundedSender<Job>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    ticker: Option<tokio::task::AbortHandle>,
    pub capture: settings::CaptureLimits,
    pub node: String,
}

impl AuditLog {
    /// Opens the store, claims this node's chain and starts the writer (needs a tokio runtime
    /// for the checkpoint timer). Fails when the store cannot be opened: a gateway that cannot
    /// audit does not start.
    pub fn open(
        settings: &AuditSettings,
        forward: Option<Box<dyn Forward>>,
    ) -> Result<AuditLog, AuditError> {
        if !settings.enabled {
            warn!(
                event = "audit_disabled",
                "audit: {{ enabled: false }}: nothing is recorded"
            );
            return Ok(AuditLog {
                tx: None,
                writer: Mutex::new(None),
                ticker: None,
                capture: settings.capture,
                node: settings.node.clone(),
            });
        }
        let key = chain::load_or_create_key(&settings.key)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (opened_tx, opened_rx) = std::sync::mpsc::channel();
        let writer_settings = settings.clone();
        // The store is opened on the writer's own thread: the PostgreSQL client runs its own
        // runtime, which may not be started from inside tokio's.
        let writer = std::thread::Builder::new()
            .name("sluice-audit".into())
            .spawn(move || {
                let opened = open_store(&writer_settings.store, false)
                    .and_then(|store| Chain::open(store, &writer_settings.node, key));
                match opened {
                    Ok(chain) => {
                        let _ = opened_tx.send(Ok(()));
                        write_loop(chain, rx, &writer_settings, forward);
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                    }
                }
            })?;
        opened_rx
            .recv()
            .map_err(|_| AuditError::Refused("the audit writer died while opening".into()))??;
        info!(event = "audit_open", store = %settings.store.describe(), node = %settings.node,
              "audit log open");
        let ticker = {
            let tx = tx.clone();
            let every = settings.checkpoint_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if tx.send(Job::Checkpoint).is_err() {
                        return;
                    }
                }
            })
            .abort_handle()
        };
        Ok(AuditLog {
            tx: Some(tx),
            writer: Mutex::new(Some(writer)),
            ticker: Some(ticker),
            capture: settings.capture,
            node: settings.node.clone(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Appends a record and waits until it is durable; returns its sequence number (0 when
    /// auditing is disabled).
    pub async fn durable<T: Serialize>(
        &self,
        kind: &'static str,
        session: Option<&str>,
        body: &T,
    ) -> Result<u64, Unavailable> {
        let Some(tx) = &self.tx else { return Ok(0) };
        let (done, wait) = oneshot::channel();
        tx.send(Job::Append {
            kind,
            session: session.map(str::to_string),
            body: to_json(body),
            done: Some(done),
        })
        .map_err(|_| Unavailable("the audit writer has stopped".into()))?;
        wait.await
            .map_err(|_| Unavailable("the audit writer has stopped".into()))?
    }

    /// Queues a record behind everything queued before it (it is committed with the next
    /// group; a failure is logged by the writer).
    pub fn record<T: Serialize>(&self, kind: &'static str, session: Option<&str>, body: &T) {
        let Some(tx) = &self.tx else { return };
        if tx
            .send(Job::Append {
                kind,
                session: session.map(str::to_string),
                body: to_json(body),
                done: None,
            })
            .is_err()
        {
            error!(
                event = "audit_lost",
                kind, "the audit writer has stopped; record lost"
            );
        }
    }

    /// Commits what is queued, signs a final checkpoint and stops the writer.
    pub async fn close(&self) {
        if let Some(t) = &self.ticker {
            t.abort();
        }
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Job::Close(done)).is_ok() {
            let _ = wait.await;
        }
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = writer {
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
    }
}

impl Drop for AuditLog {
    /// Without the timer's sender the writer ends once the last session's handle is gone.
    fn drop(&mut self) {
        if let Some(t) = &self.ticker {
            t.abort();
        }
    }
}

/// Records queued to an [`AuditLog::in_memory`] log.
#[cfg(test)]
pub(crate) struct Queued(mpsc::UnboundedReceiver<Job>);

#[cfg(test)]
impl AuditLog {
    /// A log without a store: its records wait in the returned queue.
    pub(crate) fn in_memory(capture: settings::CaptureLimits) -> (AuditLog, Queued) {
        let (tx, rx) = mpsc::unbounded_channel();
        let log = AuditLog {
            tx: Some(tx),
            writer: Mutex::new(None),
            ticker: None,
            capture,
            node: "test".into(),
        };
        (log, Queued(rx))
    }
}

#[cfg(test)]
impl Queued {
    /// The records queued so far: (kind, session, body).
    pub(crate) fn drain(&mut self) -> Vec<(String, Option<String>, String)> {
        let mut out = Vec::new();
        while let Ok(job) = self.0.try_recv() {
            if let Job::Append {
                kind,
                session,
                body,
                ..
            } = job
            {
                out.push((kind.to_string(), session, body));
            }
        }
        out
    }
}

fn to_json<T: Serialize>(body: &T) -> String {
    // Serialising our own record types cannot fail (no maps with non-string keys).
    serde_json::to_string(body).unwrap_or_else(|e| format!("{{\"unserializable\":\"{e}\"}}"))
}

fn write_loop(
    mut chain: Chain,
    mut rx: mpsc::UnboundedReceiver<Job>,
    settings: &AuditSettings,
    mut forward: Option<Box<dyn Forward>>,
) {
    // Only for timed waits on the queue; the store is called outside it.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(event = "audit_writer_failed", error = %e, "cannot start the audit writer");
            return;
        }
    };
    let mut jobs = Vec::new();
    loop {
        let Some(first) = rt.block_on(rx.recv()) else {
            break;
        };
        jobs.push(first);
        let mut closed = false;
        let deadline = std::time::Instant::now() + settings.lazy_window;
        loop {
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            if closed || jobs.len() >= MAX_GROUP || jobs.iter().any(Job::is_urgent) {
                break;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rt.block_on(async { tokio::time::timeout(left, rx.recv()).await }) {
                Ok(Some(j)) => jobs.push(j),
                Ok(None) => closed = true,
                Err(_) => break,
            }
        }
        let time = now_rfc3339();
        let entries: Vec<Entry<'_>> = jobs
            .iter()
            .filter_map(|j| match j {
                Job::Append {
                    kind,
                    session,
                    body,
                    ..
                } => Some(Entry {
                    time: &time,
                    kind,
                    session: session.as_deref(),
                    body,
                }),
                _ => None,
            })
            .collect();
        let mut outcome = Ok(Vec::new());
        if !entries.is_empty() {
            for attempt in 1..=COMMIT_ATTEMPTS {
                outcome = chain.append_all(&entries);
                match &outcome {
                    Ok(_) => break,
                    Err(e) => {
                        error!(event = "audit_commit_failed", attempt, records = entries.len(), error = %e,
                               "cannot commit audit records");
                        std::thread::sleep(std::time::Duration::from_millis(
                            50 * u64::from(attempt),
                        ));
                    }
                }
            }
        }
        drop(entries);
        let mut checkpoint_now = chain.unsigned() >= settings.checkpoint_every;
        let mut close = None;
        let mut sealed = match &outcome {
            Ok(s) => s.iter(),
            Err(_) => [].iter(),
        };
        let failure = outcome
            .as_ref()
            .err()
            .map(|e| Unavailable(e.to_string().into()));
        for job in jobs.drain(..) {
            match job {
                Job::Append { done, kind, .. } => {
                    let result = match (&failure, sealed.next()) {
                        (None, Some(s)) => {
                            if let Some(f) = &mut forward {
                                f.record(s);
                            }
                            Ok(s.record.seq)
                        }
                        (Some(e), _) => {
                            if done.is_none() {
                                error!(event = "audit_lost", kind, error = %e, "audit record lost");
                            }
                            Err(e.clone())
                        }
                        (None, None) => Err(Unavailable("internal: record not sealed".into())),
                    };
                    if let Some(done) = done {
                        let _ = done.send(result);
                    }
                }
                Job::Checkpoint => checkpoint_now = true,
                Job::Close(done) => {
                    checkpoint_now = true;
                    close = Some(done);
                }
            }
        }
        if checkpoint_now {
            match chain.checkpoint(&now_rfc3339()) {
                Ok(Some(c)) => {
                    if let Err(e) = chain::write_witness(&settings.witness, &c) {
                        error!(event = "audit_witness_failed", path = %settings.witness.display(), error = %e,
                               "cannot write the checkpoint witness");
                    }
                    if let Some(f) = &mut forward {
                        f.checkpoint(&c);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    error!(event = "audit_checkpoint_failed", error = %e, "cannot sign a checkpoint")
                }
            }
        }
        if let Some(done) = close {
            let _ = done.send(());
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{chain::Store, *};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_nobody_waits_for_rides_with_the_next_durable_one() {
        let dir = std::env::temp_dir().join(format!("sluice-audit-lazy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // A window far longer than any scheduling delay: the grouping is what is checked, not
        // how fast this machine is.
        let settings = AuditSettings {
            lazy_window: std::time::Duration::from_secs(30),
            ..AuditSettings::defaults(&dir)
        };
        let log = AuditLog::open(&settings, None).unwrap();
        for i in 0..3 {
            log.record("result", Some("s"), &i);
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            log.durable("command", Some("s"), &i).await.unwrap();
        }
        log.close().await;
        let mut store = sqlite::SqliteStore::open_read_only(&dir.join("audit.db")).unwrap();
        let records = store.records(&settings.node, 0, 100).unwrap();
        let times: Vec<&str> = records.iter().map(|r| r.record.time.as_str()).collect();
        assert_eq!(records.len(), 6);
        // One commit (one batch time) per pair.
        for pair in times.chunks(2) {
            assert_eq!(pair[0], pair[1], "{times:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
