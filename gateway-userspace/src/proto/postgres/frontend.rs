//! The agent → database direction of a session: every statement is decided, recorded and then
//! forwarded, held or refused.
//!
//! Refusing a statement keeps the protocol exact without sending a byte of it upstream:
//! - a refused simple `Query` is replaced by an empty query; the upstream answers
//!   EmptyQueryResponse + ReadyForQuery, and the EmptyQueryResponse is swapped for sluice's
//!   ErrorResponse. Ordering behind earlier pipelined queries and the transaction status stay
//!   the upstream's own.
//! - a refused `Parse` (or `Bind`) drops every message up to the next `Sync` (as PostgreSQL does
//!   after an error); the `Sync` is forwarded and the ErrorResponse is injected just before its
//!   ReadyForQuery.
//!
//! `EXECUTE p` and a `Bind` of statement `p` are decided as the statement `p` is on the server
//! (see [`super::prepared`]), whichever protocol prepared it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tracing::warn;

use super::{
    codec::{self, CodecError, Message, SQLSTATE_REFUSED},
    decide::{Effect, Env, PREPARED_RULE, Shape, refusal},
    hold::{self, HeldBatch, HeldStatement, HoldSpec, PreviewInput, SessionIdentity},
    masking_plan::PlanTracker,
    pipeline::{Expect, Shared, push},
    prepared::{self, Entry, Op, Reply},
};
use crate::{
    conn::ConnCtx,
    gate::{Command, Gate},
    inspect::{Dialect, Verdict},
    proto::ProxyError,
    services::{Services, audit::session::Decided},
};

/// The refusal answered to the agent for a statement the policy denies (held statements are
/// answered by [`hold::hold`]).
pub(super) fn denial(rule: &str, reason: &str) -> Message {
    codec::error_response(
        SQLSTATE_REFUSED,
        &format!("sluice: statement blocked by rule \"{rule}\""),
        Some(reason),
        Some(
            "The gateway's policy does not allow this statement; nothing was sent to the database.",
        ),
    )
}

pub(super) struct Frontend<'a, W> {
    pub(super) env: Env<'a>,
    pub(super) ctx: &'a ConnCtx,
    pub(super) services: &'a Services,
    pub(super) identity: &'a SessionIdentity,
    pub(super) gate: &'a Gate,
    pub(super) shared: &'a Mutex<Shared>,
    /// Response masking's view of what was sent (see [`Frontend::send_up`]).
    plans: &'a PlanTracker,
    pub uw: BufWriter<W>,
    /// Bytes forwarded upstream.
    pub sent: u64,
    /// Largest message accepted from the agent.
    pub max: usize,
    /// Audited statements since the last Sync: the result recorded at its ReadyForQuery
    /// answers them.
    pub(super) batch_commands: Vec<u64>,
    /// Set after a refusal inside a batch: the refusal to deliver at the next Sync.
    pub(super) skipping: Option<Message>,
    /// Portals bound to a statement the policy holds; a batch executing one is held.
    held_portals: HashMap<String, Arc<HeldStatement>>,
    pub(super) batch: Option<HeldBatch>,
    /// An extended-protocol message came since the last Sync.
    extended_open: bool,
    /// Reads run read-only and writes are measured in the server (`read_only: transaction`).
    pub(super) enforce: bool,
    /// The agent's transaction block runs read-write (sluice opened it so).
    pub(super) block_rw: bool,
    /// The extended-protocol batch so far (enforcing: sent whole at its Sync, once sluice
    /// knows whether it writes), what it runs, and which statement each portal runs.
    pub(super) pending: BytesMut,
    pub(super) batch_shape: Shape,
    portals: HashMap<String, Arc<Entry>>,
    /// A `COPY ... FROM STDIN` write whose data the agent is sending.
    pub(super) copy_write: Option<super::enforce::InFlight>,
    /// What the agent's read-write transaction had changed at its last write (rows of the
    /// blast-radius measurement), the next write's "before"; `None`: to be asked.
    pub(super) stats: Option<Vec<Vec<Option<String>>>>,
}

impl<'a, W: AsyncWrite + Unpin> Frontend<'a, W> {
    pub fn new(
        gate: &'a Gate,
        pg: &'a super::State,
        identity: &'a SessionIdentity,
        shared: &'a Mutex<Shared>,
        plans: &'a PlanTracker,
        uw: BufWriter<W>,
        max: usize,
    ) -> Self {
        let (ctx, services) = (&gate.ctx, &*gate.services);
        Frontend {
            env: Env {
                ctx,
                services,
                pg,
                identity,
                shared,
            },
            ctx,
            services,
            identity,
            gate,
            shared,
            plans,
            uw,
            sent: 0,
            max,
            batch_commands: Vec::new(),
            skipping: None,
            held_portals: HashMap::new(),
            batch: None,
            extended_open: false,
            enforce: ctx.resource.postgres().measures_writes(),
            block_rw: false,
            pending: BytesMut::new(),
            batch_shape: Shape::default(),
            portals: HashMap::new(),
            copy_write: None,
            stats: None,
        }
    }

    pub async fn run<R: AsyncRead + Unpin>(
        &mut self,
        mut cr: BufReader<R>,
    ) -> Result<(), ProxyError> {
        loop {
            // A COPY FROM STDIN the server refused before its data (no table, no privilege)
            // is answered at once: the agent sends no data then, and waits for that answer.
            if let Some(f) = &mut self.copy_write
                && f.answered_before(&mut cr).await
            {
                self.finish_copy_write().await?;
                continue;
            }
            let msg = match codec::read_message(&mut cr, self.max, "client").await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    warn!(event = "protocol_error", conn_id = self.ctx.id, side = "client", error = %e, "closing");
                    // The upstream session ends cleanly; the agent gets its ErrorResponse from
                    // relay().
                    self.terminate().await;
                    return Err(ProxyError::client_protocol(e));
                }
            };
            // A COPY ... FROM STDIN write: its data goes straight through; its end completes it.
            if self.copy_write.is_some() {
                match msg.tag {
                    b'd' => {
                        self.write_up(&msg).await?;
                        continue;
                    }
                    b'c' | b'f' => {
                        self.write_up(&msg).await?;
                        self.finish_copy_write().await?;
                        continue;
                    }
                    _ => self.finish_copy_write().await?,
                }
            }
            // A simple query between an extended-protocol message and its Sync: after an error
            // the server skips it unanswered (and sluice's own queries with it), which would
            // leave every later answer paired with the wrong statement. Clients never do this.
            if self.extended_open && msg.tag == b'Q' {
                self.terminate().await;
                return Err(ProxyError::client_protocol(CodecError::Malformed(
                    "simple query inside an extended-protocol batch (before its Sync)",
                )));
            }
            match msg.tag {
                b'P' | b'B' | b'E' | b'D' | b'C' | b'H' => self.extended_open = true,
                b'S' => self.extended_open = false,
                _ => {}
            }
            if self.batch.is_some() && matches!(msg.tag, b'Q' | b'F') {
                // Mixing protocols inside a held batch has no exact answer; nothing of it was
                // sent.
                self.terminate().await;
                return Err(ProxyError::client_protocol(CodecError::Malformed(
                    "simple query inside an extended-protocol batch held for approval",
                )));
            }
            let forward = match msg.tag {
                b'Q' => self.query(msg, &mut cr).await?,
                b'P' if self.skipping.is_none() => self.parse(msg).await?,
                b'B' if self.skipping.is_none() => self.bind(msg).await?,
                b'E' if self.skipping.is_none() => {
                    let portal =
                        codec::execute_portal(msg.body()).map_err(ProxyError::client_protocol)?;
                    if self.batch.is_none()
                        && let Some(h) = self.held_portals.get(portal)
                    {
                        self.batch = Some(HeldBatch::new(h.clone()));
                    }
                    // A portal sluice did not see bound runs as a write (checked, measured).
                    let shape = self.portals.get(portal).map_or(
                        Shape {
                            writes: true,
                            statements: 1,
                            ..Shape::default()
                        },
                        |e| Shape::of(&e.analysis),
                    );
                    self.batch_shape = self.batch_shape.and(shape);
                    if self.enforce && shape.copy_in {
                        self.skipping = Some(denial(
                            "copy-in",
                            "COPY ... FROM STDIN goes through sluice as a simple query (the write is measured when its data has arrived)",
                        ));
                        self.batch = None;
                        None
                    } else {
                        Some(msg)
                    }
                }
                b'C' if self.skipping.is_none() => {
                    let (kind, name) =
                        codec::close_target(msg.body()).map_err(ProxyError::client_protocol)?;
                    let op = match kind {
                        b'S' => Op::Remove(name.to_string()),
                        _ => {
                            self.held_portals.remove(name);
                            Op::Nothing
                        }
                    };
                    Shared::lock(self.shared)
                        .prepared
                        .expect(Reply::CloseComplete, op);
                    Some(msg)
                }
                b'S' | b'H' if self.batch.is_some() && self.enforce => {
                    self.end_batch(msg, &mut cr).await?;
                    None
                }
                b'S' | b'H' if self.batch.is_some() => self.release_batch(msg, &mut cr).await?,
                b'S' | b'H' if self.enforce => {
                    self.end_batch(msg, &mut cr).await?;
                    None
                }
                b'S' => {
                    let commands = std::mem::take(&mut self.batch_commands);
                    match self.skipping.take() {
                        Some(err) => push(self.shared, Expect::InjectBeforeReady(err), commands),
                        None => push(self.shared, Expect::Pass, commands),
                    }
                    Some(msg)
                }
                // The fast-path function call names a function by OID, which statement checks
                // cannot see: refuse it like a refused query (it is answered with
                // ReadyForQuery too).
                b'F' => {
                    let err = codec::error_response(
                        SQLSTATE_REFUSED,
                        "sluice: the fast-path function call protocol is not allowed",
                        None,
                        Some("Call the function from a SQL statement instead."),
                    );
                    push(self.shared, Expect::ReplaceEmpty(err), Vec::new());
                    Some(codec::empty_query())
                }
                b'X' => {
                    self.send_up(&msg.raw).await?;
                    self.uw.flush().await?;
                    break;
                }
                // After a refusal, the rest of the batch is discarded like PostgreSQL would.
                _ if self.skipping.is_some() => None,
                _ => Some(msg),
            };
            if let Some(m) = forward {
                self.forward(m).await?;
            }
            // Flush when the agent has nothing more buffered: batches stay batched.
            if cr.buffer().is_empty() {
                self.uw.flush().await?;
            }
        }
        Ok(())
    }

    async fn terminate(&mut self) {
        let _ = self.uw.write_all(&Message::new(b'X', b"").raw).await;
        let _ = self.uw.flush().await;
    }

    /// Sends a message upstream now.
    pub(super) async fn write_up(&mut self, m: &Message) -> Result<(), ProxyError> {
        self.send_up(&m.raw).await
    }

    /// Writes whole messages of the agent's upstream. Response masking learns from them which
    /// statement and portal each answer belongs to, and may put in a `Describe` of its own.
    pub(super) async fn send_up(&mut self, bytes: &[u8]) -> Result<(), ProxyError> {
        let bytes = self.plans.on_forward_batch(bytes);
        self.sent += bytes.len() as u64;
        self.uw.write_all(&bytes).await?;
        Ok(())
    }

    /// Writes one of sluice's own simple queries: its answer is not the agent's, and masking
    /// passes it as it is.
    pub(super) async fn send_internal(&mut self, bytes: &[u8]) -> Result<(), ProxyError> {
        self.plans.on_forward_internal(bytes);
        self.sent += bytes.len() as u64;
        self.uw.write_all(bytes).await?;
        Ok(())
    }

    /// Forwards a message, or keeps it (bounded) in the held batch until its Sync decides, or
    /// (enforcing) in the batch until its Sync.
    async fn forward(&mut self, m: Message) -> Result<(), ProxyError> {
        if self.enforce && self.batch.is_none() && matches!(m.tag, b'P' | b'B' | b'E' | b'D' | b'C')
        {
            if self.pending.len() + m.raw.len() > self.max {
                return Err(ProxyError::client_protocol(CodecError::TooLarge {
                    side: "client",
                    len: self.pending.len() + m.raw.len(),
                    max: self.max,
                }));
            }
            self.pending.extend_from_slice(&m.raw);
            return Ok(());
        }
        match &mut self.batch {
            Some(b) => {
                if b.bytes.len() + m.raw.len() > self.max {
                    return Err(ProxyError::client_protocol(CodecError::TooLarge {
                        side: "client",
                        len: b.bytes.len() + m.raw.len(),
                        max: self.max,
                    }));
                }
                b.bytes.extend_from_slice(&m.raw);
            }
            None => {
                self.send_up(&m.raw).await?;
            }
        }
        Ok(())
    }

    async fn query<R: AsyncRead + Unpin>(
        &mut self,
        msg: Message,
        cr: &mut BufReader<R>,
    ) -> Result<Option<Message>, ProxyError> {
        let sql = codec::query_text(msg.body()).map_err(ProxyError::client_protocol)?;
        let started = Instant::now();
        let env = self.env;
        let analysis = env.with_catalog(env.analyze(sql).await).await;
        let decided = env.decide_query(sql, &analysis).await;
        let (verdict, n) = self
            .gate
            .admit(
                "simple",
                &Command::Sql {
                    text: &decided.shown,
                    dialect: Dialect::Postgres,
                },
                &decided.decision,
                started.elapsed().as_micros() as u64,
            )
            .await;
        let commands = if n > 0 { vec![n] } else { Vec::new() };
        let verdict = match verdict {
            Verdict::Hold { rule, reason } => {
                // Earlier pipelined statements go out before this one waits.
                self.uw.flush().await?;
                let spec = HoldSpec {
                    rule,
                    reason,
                    command: decided.shown.clone(),
                    parameters: Vec::new(),
                    payload: &msg.raw,
                    preview: PreviewInput::Simple(sql),
                };
                hold::hold(cr, spec, self.gate, self.identity).await
            }
            Verdict::Allow => Ok(()),
            Verdict::Deny { rule, reason } => Err(denial(&rule, &reason)),
        };
        let effect = decided.effect.map(|effect| match effect {
            Effect::Prepare { name, entry } => (
                Reply::Tag("PREPARE"),
                Op::Define(name, Arc::new(entry.into_entry(n))),
            ),
            Effect::Deallocate(reply, op) => (reply, op),
        });
        Ok(match verdict {
            Ok(()) if self.enforce => {
                let sql = sql.to_string();
                self.enforce_query(
                    msg,
                    &sql,
                    decided.shape,
                    decided.simple_dml,
                    commands,
                    effect,
                )
                .await?;
                None
            }
            Ok(()) => {
                if let Some((reply, op)) = effect {
                    Shared::lock(self.shared).prepared.expect(reply, op);
                }
                push(self.shared, Expect::Pass, commands);
                Some(msg)
            }
            Err(err) => {
                push(self.shared, Expect::ReplaceEmpty(err), commands);
                Some(codec::empty_query())
            }
        })
    }

    async fn parse(&mut self, msg: Message) -> Result<Option<Message>, ProxyError> {
        let (name, sql) = codec::parse_message(msg.body()).map_err(ProxyError::client_protocol)?;
        let started = Instant::now();
        let env = self.env;
        let analysis = env.with_catalog(env.analyze(sql).await).await;
        let decision = if !analysis.prepared.is_empty() {
            refusal(
                PREPARED_RULE,
                "PREPARE, EXECUTE, DEALLOCATE and DISCARD ALL go through sluice as simple queries; in the extended protocol use Parse, Bind and Close".into(),
            )
        } else if Shared::lock(self.shared).prepared.len() >= prepared::MAX_STATEMENTS {
            refusal(
                PREPARED_RULE,
                format!(
                    "this session has {} prepared statements; close the ones you no longer need",
                    prepared::MAX_STATEMENTS
                ),
            )
        } else {
            env.policy_decide(&analysis)
        };
        let (verdict, n) = self
            .gate
            .admit(
                "extended",
                &Command::Sql {
                    text: sql,
                    dialect: Dialect::Postgres,
                },
                &decision,
                started.elapsed().as_micros() as u64,
            )
            .await;
        if n > 0 {
            self.batch_commands.push(n);
        }
        let held = match verdict {
            Verdict::Allow => None,
            // Preparing runs nothing: the statement is held when a batch executes it.
            Verdict::Hold { rule, reason } => Some(Arc::new(HeldStatement {
                sql: sql.to_string(),
                rule,
                reason,
                param_types: codec::parse_param_types(msg.body())
                    .map_err(ProxyError::client_protocol)?,
            })),
            Verdict::Deny { rule, reason } => {
                self.skipping = Some(denial(&rule, &reason));
                // A held batch in progress is refused with it.
                self.batch = None;
                return Ok(None);
            }
        };
        if let (Some(h), Some(b)) = (&held, &mut self.batch) {
            b.add_statement(h.clone());
        }
        let entry = Entry {
            sql: sql.into(),
            analysis,
            held,
            parsed_as: n,
            executed: Default::default(),
        };
        Shared::lock(self.shared).prepared.expect(
            Reply::ParseComplete,
            Op::Define(name.to_string(), Arc::new(entry)),
        );
        Ok(Some(msg))
    }

    async fn bind(&mut self, msg: Message) -> Result<Option<Message>, ProxyError> {
        let bind = codec::bind_message(msg.body()).map_err(ProxyError::client_protocol)?;
        let candidates = Shared::lock(self.shared)
            .prepared
            .candidates(bind.statement);
        // The one that decides: a held candidate, else the newest.
        let Some(entry) = candidates
            .iter()
            .find(|c| c.held.is_some())
            .or(candidates.last())
            .cloned()
        else {
            self.skipping = Some(denial(
                PREPARED_RULE,
                &format!(
                    "binds prepared statement \"{}\", which this session has not prepared through sluice",
                    bind.statement
                ),
            ));
            self.batch = None;
            return Ok(None);
        };
        if let Some(refusal) = self.record_execution(&entry).await {
            self.skipping = Some(refusal);
            self.batch = None;
            return Ok(None);
        }
        if self.portals.len() >= prepared::MAX_STATEMENTS {
            self.portals.clear();
        }
        // Any candidate may be what runs: a writing one makes the portal a write.
        let runs = candidates
            .iter()
            .find(|c| c.analysis.writes())
            .unwrap_or(&entry)
            .clone();
        self.portals.insert(bind.portal.to_string(), runs);
        match &entry.held {
            Some(h) => {
                self.held_portals.insert(bind.portal.to_string(), h.clone());
                let b = self.batch.get_or_insert_with(|| HeldBatch::new(h.clone()));
                b.add_statement(h.clone());
                b.add_bind(&bind, &self.services.masker());
            }
            None => {
                self.held_portals.remove(bind.portal);
            }
        }
        Ok(Some(msg))
    }

    /// Records a prepared statement executed again (its first execution is covered by its
    /// Parse's record), durably, before the Bind is forwarded. Returns the refusal when it
    /// cannot be recorded.
    async fn record_execution(&mut self, entry: &Entry) -> Option<Message> {
        if entry.first_execution() {
            // The first execution answers the Parse's record (also when it comes in a later
            // batch).
            if entry.parsed_as > 0 && !self.batch_commands.contains(&entry.parsed_as) {
                self.batch_commands.push(entry.parsed_as);
            }
            return None;
        }
        let sql = entry.sql.clone();
        let recorded = self
            .gate
            .record(
                "execute",
                &Command::Sql {
                    text: &sql,
                    dialect: Dialect::Postgres,
                },
                Decided {
                    action: if entry.held.is_some() {
                        "hold"
                    } else {
                        "allow"
                    },
                    rule: "",
                    reason: "prepared statement executed again",
                },
            )
            .await;
        match recorded {
            Ok(n) => {
                if n > 0 {
                    self.batch_commands.push(n);
                }
                None
            }
            Err(e) => Some(denial("audit", &e.to_string())),
        }
    }

    /// The Sync (or Flush) that ends a held batch: hold it, then forward or refuse it whole.
    async fn release_batch<R: AsyncRead + Unpin>(
        &mut self,
        msg: Message,
        cr: &mut BufReader<R>,
    ) -> Result<Option<Message>, ProxyError> {
        let mut b = self.batch.take().expect("checked");
        b.bytes.extend_from_slice(&msg.raw);
        self.uw.flush().await?;
        let outcome = hold_batch(cr, &b, self.gate, self.identity).await;
        let is_sync = msg.tag == b'S';
        match outcome {
            Ok(()) => {
                if is_sync {
                    push(
                        self.shared,
                        Expect::Pass,
                        std::mem::take(&mut self.batch_commands),
                    );
                }
                self.send_up(&b.bytes).await?;
                Ok(None)
            }
            Err(err) if is_sync => {
                push(
                    self.shared,
                    Expect::InjectBeforeReady(err),
                    std::mem::take(&mut self.batch_commands),
                );
                Ok(Some(msg))
            }
            // Refused at a Flush: the rest up to Sync is dropped, the error comes there.
            Err(err) => {
                self.skipping = Some(err);
                Ok(None)
            }
        }
    }
}

/// Holds an extended-protocol batch: the command reviewers see is its held statements' text
/// with the first execution's parameters; the payload is every byte of the batch.
pub(super) async fn hold_batch<R: AsyncRead + Unpin>(
    cr: &mut BufReader<R>,
    b: &HeldBatch,
    gate: &Gate,
    identity: &SessionIdentity,
) -> Result<(), Message> {
    let first = &b.statements[0];
    let command = b
        .statements
        .iter()
        .map(|s| s.sql.as_str())
        .collect::<Vec<_>>()
        .join(";\n");
    let mut reason = first.reason.clone();
    if b.executions > 1 {
        reason.push_str(&format!(
            " ({} executions in one batch; parameters of the first shown)",
            b.executions
        ));
    }
    let spec = HoldSpec {
        rule: first.rule.clone(),
        reason,
        command,
        parameters: b.shown.clone(),
        payload: &b.bytes,
        preview: PreviewInput::Extended {
            sql: &first.sql,
            param_types: &first.param_types,
            bind: b.first_bind.as_ref(),
        },
    };
    hold::hold(cr, spec, gate, identity).await
}
