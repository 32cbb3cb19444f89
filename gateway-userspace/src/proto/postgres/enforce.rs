//! Enforcing in the server what sluice decided: reads run read-only, writes run in a
//! transaction (or savepoint) sluice opens, and what a write changed is measured there before it
//! is kept.
//!
//! Upstream sessions default to read-only transactions (`default_transaction_read_only`,
//! pinned). For a write it allowed, sluice opens `BEGIN READ WRITE` (outside a transaction
//! block) or a savepoint (inside the agent's read-write block), runs the statement, reads
//! `pg_stat_xact_user_tables` (rows inserted, updated and deleted by this transaction, triggers
//! and functions included) and either keeps the write (`COMMIT` / `RELEASE SAVEPOINT`, then the
//! agent gets its answer) or rolls it back and refuses it with the count. A read inside the
//! agent's read-write block runs between `SAVEPOINT ...; SET TRANSACTION READ ONLY` and
//! `ROLLBACK TO SAVEPOINT ...`.

use bytes::BytesMut;
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
    sync::oneshot,
};
use tracing::{info, warn};

use super::{
    blast::{Delta, Judgement, STATS, count_query, deltas, judge, judge_counts, tag_delta},
    codec::{self, Message, SQLSTATE_REFUSED},
    decide::{Env, Shape},
    frontend::{Frontend, denial, hold_batch},
    pipeline::{Answer, Expect, Shared, drained, push},
    prepared::{Op, Reply},
    settings::BlastRadius,
};
use crate::proto::ProxyError;

pub const SAVEPOINT_WRITE: &str = "sluice_write";
pub const SAVEPOINT_READ: &str = "sluice_read";

/// The agent's read text wrapped to run read-only inside its read-write transaction. The
/// server reads the whole string before running any of it (a simple query), and an error
/// stops it, so the savepoint is rolled back only when the read succeeded: a failed read leaves
/// the transaction aborted, as the agent expects. Returns the text and how many of sluice's
/// statements come before and after the agent's.
pub fn wrap_read(sql: &str) -> (String, usize, usize) {
    (
        format!(
            "SAVEPOINT {SAVEPOINT_READ}; SET TRANSACTION READ ONLY;\n{sql}\n;ROLLBACK TO SAVEPOINT {SAVEPOINT_READ}; RELEASE SAVEPOINT {SAVEPOINT_READ}"
        ),
        2,
        2,
    )
}

pub fn read_prefix() -> String {
    format!("SAVEPOINT {SAVEPOINT_READ}; SET TRANSACTION READ ONLY")
}

pub fn read_suffix() -> String {
    format!("ROLLBACK TO SAVEPOINT {SAVEPOINT_READ}; RELEASE SAVEPOINT {SAVEPOINT_READ}")
}

/// A write sent upstream whose answer sluice has not decided on yet.
pub(super) struct InFlight {
    /// The transaction status it started in: `I` (sluice opened a transaction) or `T` (a
    /// savepoint inside the agent's block).
    status: u8,
    before: Before,
    answer: oneshot::Receiver<Answer>,
    after: Option<oneshot::Receiver<Answer>>,
    /// The answer is an extended-protocol batch's.
    extended: bool,
    /// The answer, when it came while sluice was waiting for the agent's COPY data.
    answered: Option<Answer>,
    /// The table it changes alone, counted by its command tag (as written).
    fast: Option<String>,
}

impl InFlight {
    /// Waits for the agent's next bytes or the write's answer, whichever comes first; true if
    /// the answer came first (a COPY the server refused before any data).
    pub(super) async fn answered_before<R: AsyncRead + Unpin>(
        &mut self,
        agent: &mut BufReader<R>,
    ) -> bool {
        if self.answered.is_some() {
            return true;
        }
        tokio::select! {
            biased;
            // fill_buf only looks: cancelling it loses nothing.
            _ = tokio::io::AsyncBufReadExt::fill_buf(agent) => false,
            a = &mut self.answer => {
                self.answered = Some(a.unwrap_or_default());
                true
            }
        }
    }
}

/// A write to send: its bytes, the audit commands its answer answers, what it does to
/// prepared statements, and how it is measured.
struct Write {
    payload: Vec<u8>,
    commands: Vec<u64>,
    effect: Option<(Reply, Op)>,
    /// An extended-protocol batch (else a simple query).
    extended: bool,
    /// `COPY ... FROM STDIN`: measured once its data has arrived.
    copy_in: bool,
    /// The one table it changes, counted by its command tag ([`counted_by_its_tag`]).
    fast: Option<String>,
}

/// What the transaction had changed before a write.
enum Before {
    /// Nothing to compare with (sluice's own fresh transaction, or no measurement).
    Nothing,
    /// Asked for just before the write.
    Asked(oneshot::Receiver<Answer>),
    /// The last measurement in this transaction (see [`Frontend::stats`]).
    Known(Vec<Vec<Option<String>>>),
}

/// The table a write changes alone, if its command tag counts exactly what it changed (a
/// plain DML statement, and by the catalog a table without triggers, rules or children): it
/// is then measured without the statistics queries.
async fn counted_by_its_tag(env: Env<'_>, simple_dml: Option<(String, String)>) -> Option<String> {
    let (written, name) = simple_dml?;
    env.ctx.resource.postgres().blast_radius?;
    let login = env.identity.login.as_ref()?;
    env.catalog()
        .plain_table(&name, env.ctx, login)
        .await
        .ok()
        .filter(|plain| *plain)
        .map(|_| written)
}

/// The session ended while sluice waited for an answer of its own.
fn gone(_: oneshot::error::RecvError) -> ProxyError {
    ProxyError::UpstreamRefused {
        code: "08006".into(),
        message: "the database connection ended".into(),
    }
}

fn blast_refusal(why: &str) -> Message {
    codec::error_response(
        SQLSTATE_REFUSED,
        "sluice: statement blocked by rule \"blast-radius\"",
        Some(&format!(
            "{why}. It was rolled back: nothing it changed was kept."
        )),
        Some(
            "Narrow the statement (a precise WHERE), or ask for the resource's blast_radius to be raised.",
        ),
    )
}

impl<W: AsyncWrite + Unpin> Frontend<'_, W> {
    /// Sends one of sluice's own queries; its answer never reaches the agent.
    async fn internal(&mut self, sql: &str) -> Result<oneshot::Receiver<Answer>, ProxyError> {
        let (tx, rx) = oneshot::channel();
        push(self.shared, Expect::Internal(tx), Vec::new());
        let mut buf = BytesMut::new();
        postgres_protocol::message::frontend::query(sql, &mut buf)
            .map_err(|e| ProxyError::ClientRefused(e.to_string()))?;
        self.send_internal(&buf).await?;
        Ok(rx)
    }

    /// Sends sluice's query that ends a held answer (see [`Expect::Release`]).
    async fn release(&mut self, sql: &str, refusal: Option<Message>) -> Result<(), ProxyError> {
        push(self.shared, Expect::Release(refusal), Vec::new());
        let mut buf = BytesMut::new();
        postgres_protocol::message::frontend::query(sql, &mut buf)
            .map_err(|e| ProxyError::ClientRefused(e.to_string()))?;
        self.send_internal(&buf).await?;
        self.uw.flush().await?;
        Ok(())
    }

    /// Has the backend deliver the kept answer as it is, without a message from the database.
    fn deliver_now(&self) {
        let release = {
            let mut s = Shared::lock(self.shared);
            s.release_now = true;
            s.release.clone()
        };
        release.notify_one();
    }

    /// Waits for every answer; what the server says about the transaction then.
    async fn settle(&mut self) -> Result<u8, ProxyError> {
        self.uw.flush().await?;
        let status = drained(self.shared).await;
        if status != b'T' {
            self.block_rw = false;
            self.stats = None;
        }
        Ok(status)
    }

    fn register(&self, effect: Option<(Reply, Op)>) {
        if let Some((reply, op)) = effect {
            Shared::lock(self.shared).prepared.expect(reply, op);
        }
    }

    /// An allowed simple query, run as what it is (see the module doc).
    pub(super) async fn enforce_query(
        &mut self,
        msg: Message,
        sql: &str,
        shape: Shape,
        simple_dml: Option<(String, String)>,
        commands: Vec<u64>,
        effect: Option<(Reply, Op)>,
    ) -> Result<(), ProxyError> {
        if shape.writes && shape.controls {
            let err = denial(
                "transaction-control",
                "a write and transaction control (BEGIN, COMMIT, SAVEPOINT, ...) in one query string: sluice runs each write in a transaction or savepoint of its own",
            );
            push(self.shared, Expect::ReplaceEmpty(err), commands);
            return self.write_up(&codec::empty_query()).await;
        }
        if shape.writes {
            let fast = counted_by_its_tag(self.env, simple_dml).await;
            let status = self.settle().await?;
            let flight = self
                .start_write(
                    Write {
                        payload: msg.raw.to_vec(),
                        commands,
                        effect,
                        extended: false,
                        copy_in: shape.copy_in,
                        fast,
                    },
                    status,
                )
                .await?;
            match flight {
                Some(f) if shape.copy_in => self.copy_write = Some(f),
                Some(f) => self.finish_write(f).await?,
                None => {}
            }
            return self.barrier(shape).await;
        }
        if shape.controls {
            self.register(effect);
            push(self.shared, Expect::Pass, commands);
            self.write_up(&msg).await?;
            return self.after_controls(shape).await;
        }
        self.register(effect);
        if self.block_rw && shape.plain_read {
            let (text, head, tail) = wrap_read(sql);
            push(self.shared, Expect::Wrapped { head, tail }, commands);
            let mut buf = BytesMut::new();
            postgres_protocol::message::frontend::query(&text, &mut buf)
                .map_err(|e| ProxyError::ClientRefused(e.to_string()))?;
            self.send_up(&buf).await?;
            return self.barrier(shape).await;
        }
        push(self.shared, Expect::Pass, commands);
        self.write_up(&msg).await?;
        self.barrier(shape).await
    }

    /// After a statement that calls code sluice cannot see into, nothing more is decided
    /// until its answer is in: that code may have changed a pinned setting, and the server's
    /// report of it (which ends the session) must come before the next statement goes out.
    async fn barrier(&mut self, shape: Shape) -> Result<(), ProxyError> {
        if shape.user_code {
            self.settle().await?;
        }
        Ok(())
    }

    /// After transaction control: learn the new status, and open a block the agent began
    /// (without READ ONLY) read-write: its writes are then measured in savepoints and its
    /// reads run read-only in savepoints rolled back after them.
    async fn after_controls(&mut self, shape: Shape) -> Result<(), ProxyError> {
        let elevation = match shape.lone_begin {
            Some(false) => Some(self.internal("SET TRANSACTION READ WRITE").await?),
            _ => None,
        };
        let status = self.settle().await?;
        // After transaction control the next write asks what was counted before it.
        self.stats = None;
        match elevation {
            Some(rx) => {
                let a = rx.await.map_err(gone)?;
                self.block_rw = status == b'T' && a.error.is_none();
            }
            None if status == b'T' => {}
            None => self.block_rw = false,
        }
        Ok(())
    }

    /// Sends a write: in a transaction of sluice's (idle) or a savepoint (the agent's
    /// read-write block), its answer held, and (unless its COPY data is still to come) the
    /// measurement after it. `None`: sent as it is (a read-only or aborted block: the server
    /// refuses or skips it).
    async fn start_write(&mut self, w: Write, status: u8) -> Result<Option<InFlight>, ProxyError> {
        let Write {
            payload,
            commands,
            effect,
            extended,
            copy_in,
            fast,
        } = w;
        let measure = self.ctx.resource.postgres().blast_radius.is_some();
        // Counted by its tag: no statistics before or after.
        let stats_needed = measure && fast.is_none();
        let before = match status {
            // The counts are the session's since its last report to the statistics system
            // (at most once a second), not this transaction's alone: "before" is always asked.
            b'I' if stats_needed => {
                Before::Asked(self.internal(&format!("BEGIN READ WRITE; {STATS}")).await?)
            }
            b'I' => {
                drop(self.internal("BEGIN READ WRITE").await?);
                Before::Nothing
            }
            // Inside the agent's read-write block a write needs a savepoint only to be rolled
            // back if it changed too much; unmeasured, it runs as it is.
            b'T' if self.block_rw && measure && !stats_needed => {
                drop(
                    self.internal(&format!("SAVEPOINT {SAVEPOINT_WRITE}"))
                        .await?,
                );
                Before::Nothing
            }
            b'T' if self.block_rw && measure => match self.stats.clone() {
                Some(rows) => {
                    drop(
                        self.internal(&format!("SAVEPOINT {SAVEPOINT_WRITE}"))
                            .await?,
                    );
                    Before::Known(rows)
                }
                None => Before::Asked(
                    self.internal(&format!("SAVEPOINT {SAVEPOINT_WRITE}; {STATS}"))
                        .await?,
                ),
            },
            _ => {
                self.register(effect);
                push(self.shared, Expect::Pass, commands);
                self.send_up(&payload).await?;
                return Ok(None);
            }
        };
        self.register(effect);
        let (tx, answer) = oneshot::channel();
        push(self.shared, Expect::Held(tx), commands);
        self.send_up(&payload).await?;
        let mut flight = InFlight {
            status,
            before,
            answer,
            after: None,
            extended,
            answered: None,
            fast,
        };
        if copy_in {
            // Measured once its data has arrived (see finish_copy_write).
            self.uw.flush().await?;
            return Ok(Some(flight));
        }
        if stats_needed {
            flight.after = Some(self.internal(STATS).await?);
        }
        self.uw.flush().await?;
        Ok(Some(flight))
    }

    /// The COPY data has all been sent: measure and decide.
    pub(super) async fn finish_copy_write(&mut self) -> Result<(), ProxyError> {
        let Some(mut f) = self.copy_write.take() else {
            return Ok(());
        };
        if self.ctx.resource.postgres().blast_radius.is_some() && f.answered.is_none() {
            f.after = Some(self.internal(STATS).await?);
        }
        self.uw.flush().await?;
        self.finish_write(f).await
    }

    /// Decides on a write that ran: keep it (the agent gets its answer) or roll it back and
    /// refuse it with the count.
    async fn finish_write(&mut self, f: InFlight) -> Result<(), ProxyError> {
        let in_block = f.status == b'T';
        let before = match f.before {
            Before::Asked(rx) => Some(rx.await.map_err(gone)?),
            Before::Known(rows) => Some(Answer {
                rows,
                ..Answer::default()
            }),
            Before::Nothing => None,
        };
        let answer = match f.answered {
            Some(a) => a,
            None => f.answer.await.map_err(gone)?,
        };
        let after = match f.after {
            Some(rx) => Some(rx.await.map_err(gone)?),
            None => None,
        };
        // The next write in this block compares with this one's measurement (one counted by
        // its tag leaves the last measurement: an older "before" only makes a delta larger).
        match &after {
            Some(a) if in_block && a.error.is_none() => self.stats = Some(a.rows.clone()),
            None if in_block && f.fast.is_some() => {}
            _ => self.stats = None,
        }
        if answer.error.is_some() || answer.status == b'E' {
            // The server refused it: that is the agent's answer. An aborted block stays
            // aborted; sluice's own transaction is rolled back first.
            if in_block {
                self.deliver_now();
                return Ok(());
            }
            return self.release("ROLLBACK", None).await;
        }
        let refusal = match (self.ctx.resource.postgres().blast_radius, &after) {
            _ if answer.overflow => Some(format!(
                "the statement's answer is larger than the {} MiB sluice keeps while measuring a write",
                super::pipeline::MAX_HELD_ANSWER >> 20
            )),
            (None, _) => None,
            (Some(bounds), None) => match &f.fast {
                Some(table) => {
                    self.judged(&bounds, &tag_delta(table, &answer.tags))
                        .await?
                }
                None => Some("the write could not be measured".to_string()),
            },
            (Some(bounds), Some(after)) => {
                let before_rows = before.as_ref().map_or(&[][..], |b| b.rows.as_slice());
                if let Some((_, e)) = after
                    .error
                    .as_ref()
                    .or(before.as_ref().and_then(|b| b.error.as_ref()))
                {
                    Some(format!("the write could not be measured: {e}"))
                } else {
                    self.judged(&bounds, &deltas(before_rows, &after.rows))
                        .await?
                }
            }
        };
        match refusal {
            // Inside the agent's block the answer goes now and the savepoint is released
            // behind it (a RELEASE of a savepoint that exists cannot fail); outside, the
            // COMMIT (which can: deferred constraints) comes first.
            None if in_block => {
                self.deliver_now();
                drop(self.internal("RELEASE SAVEPOINT sluice_write").await?);
                Ok(())
            }
            None => self.release("COMMIT", None).await,
            Some(why) => {
                warn!(event = "blast_radius", conn_id = self.ctx.id, resource = %self.ctx.resource.name,
                      reason = %why, "write rolled back and refused");
                let _ = f.extended;
                let err = blast_refusal(&why);
                self.release(
                    if in_block {
                        "ROLLBACK TO SAVEPOINT sluice_write; RELEASE SAVEPOINT sluice_write"
                    } else {
                        "ROLLBACK"
                    },
                    Some(err),
                )
                .await
            }
        }
    }

    /// Why the change is over the bound, if it is (counting the tables that need it).
    async fn judged(
        &mut self,
        bounds: &BlastRadius,
        d: &[Delta],
    ) -> Result<Option<String>, ProxyError> {
        Ok(match judge(bounds, d) {
            Judgement::Within => None,
            Judgement::Over(why) => Some(why),
            Judgement::Count(checks) => {
                let counted = self.internal(&count_query(&checks)).await?;
                self.uw.flush().await?;
                let counted = counted.await.map_err(gone)?;
                match counted.error {
                    Some((_, e)) => {
                        Some(format!("the tables it changed could not be counted: {e}"))
                    }
                    None => match judge_counts(bounds, &checks, &counted.rows) {
                        Judgement::Over(why) => Some(why),
                        _ => None,
                    },
                }
            }
        })
    }

    /// The Sync (or Flush) that ends an extended-protocol batch while enforcing: hold it if a
    /// statement in it is held, then send it as what it runs.
    pub(super) async fn end_batch<R: AsyncRead + Unpin>(
        &mut self,
        msg: Message,
        cr: &mut BufReader<R>,
    ) -> Result<(), ProxyError> {
        let is_sync = msg.tag == b'S';
        let shape = std::mem::take(&mut self.batch_shape);
        let mut payload = std::mem::take(&mut self.pending);
        if let Some(b) = self.batch.take() {
            self.uw.flush().await?;
            match hold_batch(cr, &b, self.gate, self.identity).await {
                Ok(()) => payload.extend_from_slice(&b.bytes),
                Err(err) => {
                    payload.clear();
                    self.skipping = Some(err);
                }
            }
        }
        if let Some(err) = self.skipping.take() {
            // A refusal refuses its whole batch: nothing of it is sent.
            if is_sync {
                let commands = std::mem::take(&mut self.batch_commands);
                push(self.shared, Expect::InjectBeforeReady(err), commands);
                return self.write_up(&msg).await;
            }
            self.skipping = Some(err);
            return Ok(());
        }
        if !is_sync {
            // A Flush: the client wants the answers so far, before its Sync. A write cannot
            // be answered before it is measured.
            if shape.writes && self.block_rw {
                self.skipping = Some(denial(
                    "flush",
                    "a write in a read-write transaction is measured before it is answered: end its batch with Sync, not Flush",
                ));
                return Ok(());
            }
            // Outside a read-write block, the server's read-only default stands guard.
            self.batch_shape = shape;
            self.send_up(&payload).await?;
            return self.write_up(&msg).await;
        }
        payload.extend_from_slice(&msg.raw);
        let commands = std::mem::take(&mut self.batch_commands);
        if shape.writes && shape.controls {
            let err = denial(
                "transaction-control",
                "a write and transaction control (BEGIN, COMMIT, SAVEPOINT, ...) in one batch: sluice runs each write in a transaction or savepoint of its own",
            );
            push(self.shared, Expect::InjectBeforeReady(err), commands);
            return self.write_up(&msg).await;
        }
        if shape.writes {
            let status = self.settle().await?;
            if let Some(f) = self
                .start_write(
                    Write {
                        payload: payload.to_vec(),
                        commands,
                        effect: None,
                        extended: true,
                        copy_in: false,
                        fast: None,
                    },
                    status,
                )
                .await?
            {
                self.finish_write(f).await?;
            }
            return self.barrier(shape).await;
        }
        if shape.controls {
            push(self.shared, Expect::Pass, commands);
            self.send_up(&payload).await?;
            return self.after_controls(shape).await;
        }
        if self.block_rw && shape.plain_read && shape.statements > 0 {
            // Read-only for the batch, in a savepoint rolled back after it (unless it failed:
            // the block then stays aborted, as the agent expects).
            drop(self.internal(&read_prefix()).await?);
            let (tx, rx) = oneshot::channel();
            push(self.shared, Expect::PassNotify(tx), commands);
            self.send_up(&payload).await?;
            self.uw.flush().await?;
            let a = rx.await.map_err(gone)?;
            if a.status == b'T' && a.error.is_none() {
                drop(self.internal(&read_suffix()).await?);
            }
            return self.barrier(shape).await;
        }
        push(self.shared, Expect::Pass, commands);
        self.send_up(&payload).await?;
        self.barrier(shape).await?;
        if shape.statements > 0 && self.block_rw && !shape.plain_read {
            info!(
                event = "unwrapped_read",
                conn_id = self.ctx.id,
                "a read that cannot run in a savepoint ran as it is"
            );
        }
        Ok(())
    }
}
