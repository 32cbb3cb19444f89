//! What the two directions of a session share: the answers the agent → database direction is
//! waiting for, in order, the prepared statements as the server confirmed them, and the
//! transaction status the server last reported.
//!
//! Each `Query` or `Sync` sent upstream pushes one [`Pending`], popped at its ReadyForQuery by
//! the database → agent direction. Most are the agent's own (relayed, or with sluice's error in
//! place of a refused statement). The rest are sluice's: its own queries around a statement
//! (`BEGIN READ WRITE`, savepoints, the measurement of what a write changed), whose answers
//! never reach the agent, and the agent's write whose answer is kept until sluice has measured
//! it and decided to keep it ([`Expect::Held`], [`Expect::Release`]).

use std::{collections::VecDeque, sync::Mutex, time::Instant};

use tokio::sync::{Notify, oneshot};

use super::{
    codec::{self, Message},
    prepared::{self, Desync, Registry, Reply},
};

pub(super) enum Expect {
    /// Relay the upstream's answer unchanged.
    Pass,
    /// Answer the EmptyQueryResponse of a substituted query with this error instead.
    ReplaceEmpty(Message),
    /// Put this error before the ReadyForQuery.
    InjectBeforeReady(Message),
    /// Relay the answer, and tell the frontend how it ended.
    PassNotify(oneshot::Sender<Answer>),
    /// sluice's own query: nothing of its answer reaches the agent.
    Internal(oneshot::Sender<Answer>),
    /// The agent's statement whose fate sluice decides after it ran: its answer is kept
    /// (CopyInResponse excepted: the agent must send its data) until a [`Expect::Release`].
    Held(oneshot::Sender<Answer>),
    /// sluice's own query that ends a held answer: at its ReadyForQuery the agent gets the
    /// kept answer (or this error instead, or this query's own error), with this query's
    /// ReadyForQuery.
    Release(Option<Message>),
    /// The agent's query with sluice's statements around it (`head` before, `tail` after):
    /// their CommandCompletes are not relayed.
    Wrapped { head: usize, tail: usize },
}

/// How an answer ended, and what a query of sluice's returned.
#[derive(Debug, Default)]
pub(super) struct Answer {
    /// The ReadyForQuery status: `I`, `T` or `E` (0 if the session ended first).
    pub status: u8,
    /// CommandComplete tags, in order.
    pub tags: Vec<String>,
    /// (SQLSTATE, message) of the first ErrorResponse.
    pub error: Option<(String, String)>,
    /// Rows of sluice's own queries, as text.
    pub rows: Vec<Vec<Option<String>>>,
    /// A held answer grew past [`MAX_HELD_ANSWER`] (what came after was dropped).
    pub overflow: bool,
}

/// A write's answer kept while sluice measures it; a larger one is refused.
pub(super) const MAX_HELD_ANSWER: usize = 64 << 20;
/// Rows kept of one of sluice's own queries.
const MAX_INTERNAL_ROWS: usize = 10_000;

/// A forwarded `Query` or `Sync` awaiting its ReadyForQuery.
pub(super) struct Pending {
    pub expect: Expect,
    /// The audited commands it answers.
    pub commands: Vec<u64>,
    pub sent: Instant,
}

#[derive(Default)]
pub(super) struct Shared {
    pub expect: VecDeque<Pending>,
    pub prepared: Registry,
    /// The last ReadyForQuery status the server sent (`I` before the first).
    pub status: u8,
    /// Woken at each ReadyForQuery (the frontend waits for the queue to drain).
    pub ready: std::sync::Arc<Notify>,
    /// Set (and `release` woken) by the frontend: deliver the kept answer now, as it is,
    /// without waiting for a message from the database.
    pub release_now: bool,
    pub release: std::sync::Arc<Notify>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            status: b'I',
            ..Shared::default()
        }
    }

    pub fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Frontend: a `Query` or `Sync` is about to be forwarded.
pub(super) fn push(shared: &Mutex<Shared>, expect: Expect, commands: Vec<u64>) {
    let mut s = Shared::lock(shared);
    let agents = !matches!(expect, Expect::Internal(_) | Expect::Release(_));
    s.prepared.batch_sent(agents);
    s.expect.push_back(Pending {
        expect,
        commands,
        sent: Instant::now(),
    });
}

/// Frontend: waits until every answer sent for is in; returns the server's transaction status.
pub(super) async fn drained(shared: &Mutex<Shared>) -> u8 {
    let ready = Shared::lock(shared).ready.clone();
    loop {
        let notified = ready.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let s = Shared::lock(shared);
            if s.expect.is_empty() {
                return s.status;
            }
        }
        notified.await;
    }
}

/// Backend: notes what a message from the database confirms (before it is relayed).
pub(super) fn observe(shared: &Mutex<Shared>, msg: &Message) -> Result<(), Desync> {
    let reply = match msg.tag {
        b'1' => Reply::ParseComplete,
        b'3' => Reply::CloseComplete,
        b'C' => match codec::query_text(msg.body())
            .ok()
            .and_then(prepared::tag_reply)
        {
            Some(r) => r,
            None => return Ok(()),
        },
        b'Z' => {
            let mut s = Shared::lock(shared);
            s.prepared.batch_done();
            s.status = msg.body().first().copied().unwrap_or(b'I');
            return Ok(());
        }
        _ => return Ok(()),
    };
    Shared::lock(shared).prepared.confirmed_by(reply)
}

/// Backend: wakes the frontend after a ReadyForQuery was handled.
pub(super) fn ready(shared: &Mutex<Shared>) {
    Shared::lock(shared).ready.notify_waiters();
}

/// What the backend keeps between messages for sluice's own modes.
#[derive(Default)]
pub(super) struct Routing {
    answer: Answer,
    /// The kept answer of a [`Expect::Held`] statement (its ReadyForQuery apart), and the
    /// audit commands it answers.
    held: Vec<Message>,
    held_ready: Option<Message>,
    held_bytes: usize,
    held_commands: Vec<u64>,
    /// [`Expect::Wrapped`]: CommandCompletes seen, and the last ones held back.
    wrapped_seen: usize,
    wrapped_tail: VecDeque<Message>,
    wrapped_error: bool,
}

/// Backend: what to relay for one message from the database: nothing (sluice's own answers,
/// kept answers), the message, or several (a released answer).
pub(super) fn route(shared: &Mutex<Shared>, r: &mut Routing, msg: Message) -> Vec<Message> {
    // A notification may come at any time: it is the agent's, whoever's answer is pending.
    if msg.tag == b'A' {
        return vec![msg];
    }
    let mut s = Shared::lock(shared);
    let Some(front) = s.expect.front_mut() else {
        return vec![msg];
    };
    match &mut front.expect {
        Expect::Pass | Expect::ReplaceEmpty(_) | Expect::InjectBeforeReady(_) => vec![msg],
        Expect::PassNotify(_) => {
            note(&mut r.answer, &msg, false);
            if msg.tag == b'Z' {
                let answer = std::mem::take(&mut r.answer);
                if let Expect::PassNotify(tx) = std::mem::replace(&mut front.expect, Expect::Pass) {
                    let _ = tx.send(answer);
                }
            }
            vec![msg]
        }
        Expect::Internal(_) => {
            note(&mut r.answer, &msg, true);
            if msg.tag == b'Z'
                && let Some(Pending {
                    expect: Expect::Internal(tx),
                    ..
                }) = s.expect.pop_front()
            {
                let _ = tx.send(std::mem::take(&mut r.answer));
            }
            Vec::new()
        }
        Expect::Held(_) => {
            note(&mut r.answer, &msg, false);
            if msg.tag == b'G' {
                // The agent sends its COPY data only after it has seen this.
                return vec![msg];
            }
            if msg.tag != b'Z' {
                if r.held_bytes + msg.raw.len() > MAX_HELD_ANSWER {
                    r.answer.overflow = true;
                } else {
                    r.held_bytes += msg.raw.len();
                    r.held.push(msg);
                }
                return Vec::new();
            }
            if let Some(Pending {
                expect: Expect::Held(tx),
                commands,
                ..
            }) = s.expect.pop_front()
            {
                r.held_commands = commands;
                r.held_ready = Some(msg);
                let _ = tx.send(std::mem::take(&mut r.answer));
            }
            Vec::new()
        }
        Expect::Release(_) => {
            note(&mut r.answer, &msg, true);
            if msg.tag != b'Z' {
                return Vec::new();
            }
            let own_error = r.answer.error.take();
            r.answer = Answer::default();
            let Expect::Release(refusal) = std::mem::replace(&mut front.expect, Expect::Pass)
            else {
                unreachable!("matched above")
            };
            // The relayed ReadyForQuery pops this entry and files the result under the
            // commands the held answer answers.
            front.commands = std::mem::take(&mut r.held_commands);
            let held = std::mem::take(&mut r.held);
            r.held_bytes = 0;
            r.held_ready = None;
            let mut out = match (refusal, own_error) {
                // The batch's acknowledgements stay (ParseComplete, BindComplete, ...): only
                // the execution's outcome is replaced by the refusal.
                (Some(err), _) => {
                    let mut acks: Vec<Message> = held
                        .into_iter()
                        .filter(|m| matches!(m.tag, b'1' | b'2' | b'3' | b't' | b'n'))
                        .collect();
                    acks.push(err);
                    acks
                }
                // The release itself failed (a deferred constraint at COMMIT): that is the
                // statement's outcome.
                (None, Some((code, message))) => {
                    vec![codec::error_response(&code, &message, None, None)]
                }
                (None, None) => held,
            };
            out.push(msg);
            out
        }
        Expect::Wrapped { head, tail } => {
            let (head, tail) = (*head, *tail);
            match msg.tag {
                b'C' => {
                    r.wrapped_seen += 1;
                    if r.wrapped_seen <= head {
                        return Vec::new();
                    }
                    r.wrapped_tail.push_back(msg);
                    if r.wrapped_tail.len() > tail {
                        return r.wrapped_tail.pop_front().into_iter().collect();
                    }
                    Vec::new()
                }
                b'Z' => {
                    // Without an error, the held-back ones are sluice's own.
                    let mut out: Vec<Message> = if r.wrapped_error {
                        r.wrapped_tail.drain(..).collect()
                    } else {
                        r.wrapped_tail.clear();
                        Vec::new()
                    };
                    r.wrapped_seen = 0;
                    r.wrapped_error = false;
                    out.push(msg);
                    out
                }
                _ => {
                    if msg.tag == b'E' {
                        r.wrapped_error = true;
                    }
                    let mut out: Vec<Message> = r.wrapped_tail.drain(..).collect();
                    out.push(msg);
                    out
                }
            }
        }
    }
}

/// Backend: the kept answer, to deliver now as it is (the frontend asked, see
/// [`Shared::release_now`]), with its own ReadyForQuery; `None` if there is nothing to deliver.
/// An entry at the front of the queue files its result under the commands it answers.
pub(super) fn release_now(shared: &Mutex<Shared>, r: &mut Routing) -> Option<Vec<Message>> {
    let mut s = Shared::lock(shared);
    if !std::mem::take(&mut s.release_now) {
        return None;
    }
    let ready = r.held_ready.take()?;
    s.expect.push_front(Pending {
        expect: Expect::Pass,
        commands: std::mem::take(&mut r.held_commands),
        sent: Instant::now(),
    });
    r.held_bytes = 0;
    let mut out = std::mem::take(&mut r.held);
    out.push(ready);
    Some(out)
}

/// Folds a message into an answer summary (`rows`: keep DataRows as text).
fn note(a: &mut Answer, msg: &Message, rows: bool) {
    match msg.tag {
        b'Z' => a.status = msg.body().first().copied().unwrap_or(0),
        b'C' => a.tags.push(
            codec::query_text(msg.body())
                .unwrap_or_default()
                .to_string(),
        ),
        b'E' if a.error.is_none() => {
            let fields = codec::notice_fields(msg.body());
            a.error = Some((
                codec::notice_field(&fields, b'C'),
                codec::notice_field(&fields, b'M'),
            ));
        }
        b'D' if rows && a.rows.len() < MAX_INTERNAL_ROWS => {
            let body = msg.body();
            if let Ok(fields) = codec::data_row_fields(body) {
                a.rows.push(
                    fields
                        .into_iter()
                        .map(|f| f.map(|r| String::from_utf8_lossy(&body[r]).into_owned()))
                        .collect(),
                );
            }
        }
        _ => {}
    }
}
