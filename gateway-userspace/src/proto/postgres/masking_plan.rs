//! Which statement each result belongs to, per prepared statement and per portal, so that every
//! `DataRow` is masked with its own statement's plan: an `Execute` without a `Describe`, or a
//! portal resumed after another query, must not borrow the last `RowDescription` seen.
//!
//! Fed from both directions of a session: [`PlanTracker::on_forward`] for each message sent
//! upstream (it queues the answers the server will give, in order), and
//! [`PlanTracker::on_backend`] for each message from the server (it pops them). The server
//! answers in order and, after an error in the extended protocol, skips to `Sync`; the queue
//! does the same. Statements and portals are recorded when the server confirms them
//! (`ParseComplete`, `BindComplete`), so a refused `Parse` never replaces a statement.
//!
//! When an `Execute` is sent for a portal whose columns nobody asked for (neither a `Describe`
//! of the portal nor of its statement), sluice sends a `Describe` of the portal just before it
//! and keeps the answer to itself: the plan then rests on the server's own description.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, OnceLock},
};

use bytes::BytesMut;

use super::codec::{self, Column, Message};

/// Prepared statements and portals a session may have; beyond this the oldest knowledge is
/// not kept and their results are planned as unknown (masked).
const MAX_TRACKED: usize = 10_000;

/// A prepared statement the server confirmed.
#[derive(Debug)]
pub struct Prepared {
    pub sql: Arc<str>,
    /// Its result columns, from the answer to a `Describe` of the statement (formats are not
    /// known until a portal binds it).
    pub columns: OnceLock<Arc<Vec<Column>>>,
}

/// A portal the server confirmed.
#[derive(Debug, Clone)]
pub struct Portal {
    pub statement: Arc<Prepared>,
    /// Result format codes as bound: none (all text), one (for all) or one per column.
    pub formats: Vec<i16>,
    /// From the answer to a `Describe` of the portal, with the real formats.
    pub columns: Option<Arc<Vec<Column>>>,
}

impl Portal {
    /// The portal's result columns with their formats, when known.
    pub fn result_columns(&self) -> Option<Arc<Vec<Column>>> {
        if let Some(c) = &self.columns {
            return Some(c.clone());
        }
        let cols = self.statement.columns.get()?;
        let mut cols = (**cols).clone();
        for (i, c) in cols.iter_mut().enumerate() {
            c.format = match self.formats.len() {
                0 => 0,
                1 => self.formats[0],
                _ => self.formats.get(i).copied().unwrap_or(0),
            };
        }
        Some(Arc::new(cols))
    }
}

/// An answer the server owes, in order.
#[derive(Debug)]
enum Step {
    Query {
        sql: Arc<str>,
    },
    Parse {
        name: String,
        sql: Arc<str>,
    },
    Bind {
        portal: String,
        statement: String,
        formats: Vec<i16>,
    },
    DescribeStatement {
        name: String,
    },
    DescribePortal {
        name: String,
        injected: bool,
    },
    Execute {
        portal: String,
        started: bool,
    },
    Close {
        kind: u8,
        name: String,
    },
    Sync,
    /// sluice's own simple query (guardrails' enforcement): its answer is not the agent's.
    Internal,
}

/// What a message from the server is, for masking.
#[derive(Debug, Clone)]
pub enum Event {
    /// The rows that follow are a simple query's result set: statement `index` of `sql`.
    ResultSet { sql: Arc<str>, index: usize },
    /// The first row (or COPY start) of a portal's execution (`None`: a portal sluice does
    /// not know, masked as unknown).
    PortalStart { portal: Option<Portal> },
    /// A `CopyOutResponse`: COPY of statement `index` of `sql` (`None`: unknown) starts.
    CopyOut { sql: Option<Arc<str>>, index: usize },
    /// A row or COPY data of the current result set.
    Rows,
    /// A statement finished: statement `index` of `sql` (for DDL and writes).
    Complete { sql: Arc<str>, index: usize },
    /// The answer to sluice's own `Describe`: not for the agent.
    Swallow,
    /// The server is ready: a batch ended.
    Ready,
    /// Part of the answer to sluice's own query: passed as it is (sluice reads it, the agent
    /// never sees it).
    Internal,
    /// Anything else (async messages, answers that need no masking).
    Other,
}

#[derive(Default)]
struct State {
    steps: VecDeque<Step>,
    statements: HashMap<String, Arc<Prepared>>,
    portals: HashMap<String, Portal>,
    /// Statements completed in the current simple query.
    simple_index: usize,
    /// Agent side: statements and portals whose columns a forwarded `Describe` will give.
    described_statements: HashSet<String>,
    described_portals: HashSet<String>,
    bound: HashMap<String, String>,
    /// Statements (by text) the current batch ran, for errors, notices and settings reported
    /// before its `ReadyForQuery`.
    batch: Vec<Arc<str>>,
    /// The server is ignoring everything up to the next `Sync` (an extended-protocol error with
    /// no `Sync` sent yet): what is sent meanwhile gets no answer.
    skipping_to_sync: bool,
}

/// Per session, shared by its two directions.
#[derive(Default)]
pub struct PlanTracker {
    state: Mutex<State>,
    /// Called with each statement text sent upstream, before it is sent.
    on_statement: Option<StatementHook>,
    /// The text of a prepared statement by name, when exactly one can run (see
    /// [`PlanTracker::with_prepared`]).
    prepared: Option<PreparedLookup>,
}

/// See [`PlanTracker::with_prepared`].
pub type PreparedLookup = Box<dyn Fn(&str) -> Option<Arc<str>> + Send + Sync>;

/// See [`PlanTracker::with_statement_hook`].
pub type StatementHook = Box<dyn Fn(&str) + Send + Sync>;

impl PlanTracker {
    /// A tracker that also shows `hook` every statement text before it goes upstream (what a
    /// statement does to session state must be known before its effects can be seen).
    pub fn with_statement_hook(hook: StatementHook) -> PlanTracker {
        PlanTracker {
            state: Mutex::default(),
            on_statement: Some(hook),
            prepared: None,
        }
    }

    /// A query that is one SQL `EXECUTE name` is planned as the prepared statement it runs
    /// (`lookup` gives its text), not as output sluice cannot attribute (masked whole).
    pub fn with_prepared(mut self, lookup: PreparedLookup) -> PlanTracker {
        self.prepared = Some(lookup);
        self
    }

    /// The statement a simple query runs, for its plan: the prepared statement's text for a
    /// lone `EXECUTE` whose statement is known, else the query itself.
    fn planned_text(&self, sql: &str) -> Arc<str> {
        let lone_execute = self.prepared.as_ref().and_then(|lookup| {
            let head = sql.trim_start().get(..7)?;
            if !head.eq_ignore_ascii_case("execute") {
                return None;
            }
            let dialect = sqlparser::dialect::PostgreSqlDialect {};
            let parsed = sqlparser::parser::Parser::parse_sql(&dialect, sql).ok()?;
            match parsed.as_slice() {
                [
                    sqlparser::ast::Statement::Execute {
                        name: Some(name), ..
                    },
                ] => match name.0.as_slice() {
                    [sqlparser::ast::ObjectNamePart::Identifier(i)] => {
                        lookup(&if i.quote_style.is_some() {
                            i.value.clone()
                        } else {
                            i.value.to_ascii_lowercase()
                        })
                    }
                    _ => None,
                },
                _ => None,
            }
        });
        lone_execute.unwrap_or_else(|| sql.into())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called for every message sent upstream, just before it is written. Returns a message to
    /// write before it (sluice's own `Describe` of a portal nobody described).
    pub fn on_forward(&self, msg: &Message) -> Option<Message> {
        let body = msg.body();
        if let Some(hook) = &self.on_statement {
            match msg.tag {
                b'Q' => hook(codec::query_text(body).unwrap_or_default()),
                b'P' => hook(codec::parse_message(body).map(|p| p.1).unwrap_or_default()),
                _ => {}
            }
        }
        // Resolved before the lock: the lookup takes the session's own.
        let planned = (msg.tag == b'Q')
            .then(|| self.planned_text(codec::query_text(body).unwrap_or_default()));
        let mut s = self.lock();
        if s.skipping_to_sync {
            if msg.tag != b'S' {
                return None;
            }
            s.skipping_to_sync = false;
        }
        match msg.tag {
            b'Q' => {
                let sql = planned.unwrap_or_default();
                s.steps.push_back(Step::Query { sql });
            }
            b'P' => {
                let (name, sql) = codec::parse_message(body).unwrap_or_default();
                s.described_statements.remove(name);
                s.steps.push_back(Step::Parse {
                    name: name.to_string(),
                    sql: sql.into(),
                });
            }
            b'B' => {
                if let Ok(b) = codec::bind_message(body) {
                    let formats = result_formats(body).unwrap_or_default();
                    s.described_portals.remove(b.portal);
                    if s.bound.len() < MAX_TRACKED || s.bound.contains_key(b.portal) {
                        s.bound
                            .insert(b.portal.to_string(), b.statement.to_string());
                    }
                    s.steps.push_back(Step::Bind {
                        portal: b.portal.to_string(),
                        statement: b.statement.to_string(),
                        formats,
                    });
                }
            }
            b'D' => {
                if let Ok((kind, name)) = codec::close_target(body) {
                    if kind == b'S' {
                        if s.described_statements.len() < MAX_TRACKED {
                            s.described_statements.insert(name.to_string());
                        }
                        s.steps.push_back(Step::DescribeStatement {
                            name: name.to_string(),
                        });
                    } else {
                        if s.described_portals.len() < MAX_TRACKED {
                            s.described_portals.insert(name.to_string());
                        }
                        s.steps.push_back(Step::DescribePortal {
                            name: name.to_string(),
                            injected: false,
                        });
                    }
                }
            }
            b'E' => {
                let portal = codec::execute_portal(body).unwrap_or_default().to_string();
                let known = s.described_portals.contains(&portal)
                    || s.bound
                        .get(&portal)
                        .is_some_and(|st| s.described_statements.contains(st));
                let inject = (!known).then(|| {
                    s.described_portals.insert(portal.clone());
                    s.steps.push_back(Step::DescribePortal {
                        name: portal.clone(),
                        injected: true,
                    });
                    describe_portal(&portal)
                });
                s.steps.push_back(Step::Execute {
                    portal,
                    started: false,
                });
                return inject;
            }
            b'C' => {
                if let Ok((kind, name)) = codec::close_target(body) {
                    if kind == b'S' {
                        s.described_statements.remove(name);
                    } else {
                        s.described_portals.remove(name);
                        s.bound.remove(name);
                    }
                    s.steps.push_back(Step::Close {
                        kind,
                        name: name.to_string(),
                    });
                }
            }
            b'S' => s.steps.push_back(Step::Sync),
            _ => {}
        }
        None
    }

    /// [`PlanTracker::on_forward`] for a batch of whole messages written at once (a held batch
    /// released): returns the bytes to write, with sluice's `Describe`s put in.
    pub fn on_forward_batch(&self, bytes: &[u8]) -> BytesMut {
        let mut out = BytesMut::with_capacity(bytes.len());
        let mut at = 0;
        while at + 5 <= bytes.len() {
            let len =
                i32::from_be_bytes([bytes[at + 1], bytes[at + 2], bytes[at + 3], bytes[at + 4]]);
            let end = at + 1 + len.max(4) as usize;
            if end > bytes.len() {
                break;
            }
            let msg = Message::new(bytes[at], &bytes[at + 5..end]);
            if let Some(extra) = self.on_forward(&msg) {
                out.extend_from_slice(&extra.raw);
            }
            out.extend_from_slice(&bytes[at..end]);
            at = end;
        }
        out.extend_from_slice(&bytes[at..]);
        out
    }

    /// sluice's own simple queries, written upstream between the agent's batches.
    pub fn on_forward_internal(&self, bytes: &[u8]) {
        let mut s = self.lock();
        if s.skipping_to_sync {
            return;
        }
        let mut at = 0;
        while at + 5 <= bytes.len() {
            let len =
                i32::from_be_bytes([bytes[at + 1], bytes[at + 2], bytes[at + 3], bytes[at + 4]]);
            if bytes[at] == b'Q' {
                s.steps.push_back(Step::Internal);
            }
            at += 1 + len.max(4) as usize;
        }
    }

    /// Called for every message from the server, in order, before it is masked.
    pub fn on_backend(&self, msg: &Message) -> Event {
        let mut s = self.lock();
        let s = &mut *s;
        // Asynchronous messages (notices, settings, notifications) are masked whoever's answer
        // they come in.
        if matches!(s.steps.front(), Some(Step::Internal))
            && matches!(msg.tag, b'T' | b'D' | b'C' | b'I' | b'E' | b'Z')
        {
            if msg.tag == b'Z' {
                s.steps.pop_front();
            }
            return Event::Internal;
        }
        match msg.tag {
            b'1' => {
                if let Some(Step::Parse { name, sql }) =
                    pop_if(s, |st| matches!(st, Step::Parse { .. }))
                    && (s.statements.len() < MAX_TRACKED || s.statements.contains_key(&name))
                {
                    s.statements.insert(name, new_prepared(sql));
                }
                Event::Other
            }
            b'2' => {
                if let Some(Step::Bind {
                    portal,
                    statement,
                    formats,
                }) = pop_if(s, |st| matches!(st, Step::Bind { .. }))
                    && let Some(p) = s.statements.get(&statement).cloned()
                    && (s.portals.len() < MAX_TRACKED || s.portals.contains_key(&portal))
                {
                    s.portals.insert(
                        portal,
                        Portal {
                            statement: p,
                            formats,
                            columns: None,
                        },
                    );
                }
                Event::Other
            }
            b'3' => {
                if let Some(Step::Close { kind, name }) =
                    pop_if(s, |st| matches!(st, Step::Close { .. }))
                {
                    if kind == b'S' {
                        s.statements.remove(&name);
                    } else {
                        s.portals.remove(&name);
                    }
                }
                Event::Other
            }
            // ParameterDescription: the RowDescription or NoData of the same Describe follows.
            b't' => Event::Other,
            b'T' | b'n' => {
                let cols = (msg.tag == b'T')
                    .then(|| codec::row_description(msg.body()).ok())
                    .flatten()
                    .unwrap_or_default();
                match s.steps.front() {
                    Some(Step::DescribeStatement { .. }) => {
                        let Some(Step::DescribeStatement { name }) = s.steps.pop_front() else {
                            unreachable!("matched")
                        };
                        // Answered after its Parse (ParseComplete comes first) or for an older
                        // statement of that name.
                        if let Some(p) = s.statements.get(&name) {
                            let _ = p.columns.set(Arc::new(cols));
                        }
                        Event::Other
                    }
                    Some(Step::DescribePortal { .. }) => {
                        let Some(Step::DescribePortal { name, injected }) = s.steps.pop_front()
                        else {
                            unreachable!("matched")
                        };
                        if let Some(p) = s.portals.get_mut(&name) {
                            p.columns = Some(Arc::new(cols));
                        }
                        if injected {
                            Event::Swallow
                        } else {
                            Event::Other
                        }
                    }
                    Some(Step::Query { sql }) if msg.tag == b'T' => Event::ResultSet {
                        sql: sql.clone(),
                        index: s.simple_index,
                    },
                    _ => Event::Other,
                }
            }
            b'D' | b'H' | b'd' | b'c' => {
                let copy = msg.tag == b'H';
                match s.steps.front_mut() {
                    Some(Step::Query { sql }) if copy => Event::CopyOut {
                        sql: Some(sql.clone()),
                        index: s.simple_index,
                    },
                    Some(Step::Query { .. }) => Event::Rows,
                    Some(Step::Execute { portal, started }) => {
                        let first = !std::mem::replace(started, true);
                        let p = s.portals.get(portal);
                        match (first, copy) {
                            (_, true) => Event::CopyOut {
                                sql: p.map(|p| p.statement.sql.clone()),
                                index: 0,
                            },
                            (true, false) => Event::PortalStart { portal: p.cloned() },
                            (false, false) => Event::Rows,
                        }
                    }
                    _ => Event::PortalStart { portal: None },
                }
            }
            b'C' | b'I' => match s.steps.front() {
                Some(Step::Query { sql }) => {
                    let e = Event::Complete {
                        sql: sql.clone(),
                        index: s.simple_index,
                    };
                    s.simple_index += 1;
                    e
                }
                Some(Step::Execute { portal, .. }) => {
                    let sql = s.portals.get(portal).map(|p| p.statement.sql.clone());
                    s.steps.pop_front();
                    match sql {
                        Some(sql) => {
                            s.batch_push(sql.clone());
                            Event::Complete { sql, index: 0 }
                        }
                        None => Event::Other,
                    }
                }
                _ => Event::Other,
            },
            b's' => {
                pop_if(s, |st| matches!(st, Step::Execute { .. }));
                Event::Other
            }
            b'E' => {
                match s.steps.front() {
                    Some(Step::Query { .. }) | None => {}
                    // The extended protocol skips to Sync after an error: every message up
                    // to it, simple queries (the agent's and sluice's own) included, gets no
                    // answer. Without a Sync sent yet, what comes until one is skipped too.
                    Some(_) => {
                        while s.steps.front().is_some_and(|st| !matches!(st, Step::Sync)) {
                            s.steps.pop_front();
                        }
                        s.skipping_to_sync = s.steps.is_empty();
                    }
                }
                Event::Other
            }
            b'Z' => {
                // Ends a simple query, or the extended batch up to its Sync.
                while let Some(st) = s.steps.pop_front() {
                    if matches!(st, Step::Sync | Step::Query { .. }) {
                        break;
                    }
                }
                s.simple_index = 0;
                s.batch.clear();
                Event::Ready
            }
            _ => Event::Other,
        }
    }

    /// The statements the server is working on now (the current simple query, or the current
    /// batch's executed and executing statements): what an error, notice or setting change
    /// reported now may come from.
    pub fn current_statements(&self) -> Vec<Arc<str>> {
        let s = self.lock();
        let mut out = s.batch.clone();
        match s.steps.front() {
            Some(Step::Query { sql }) => out.push(sql.clone()),
            Some(Step::Execute { portal, .. }) => {
                if let Some(p) = s.portals.get(portal) {
                    out.push(p.statement.sql.clone());
                } else {
                    // Unknown portal: nothing can be said of it.
                    out.push(Arc::from(""));
                }
            }
            Some(Step::Parse { sql, .. }) => out.push(sql.clone()),
            Some(Step::Bind { statement, .. }) => {
                if let Some(p) = s.statements.get(statement) {
                    out.push(p.sql.clone());
                }
            }
            _ => {}
        }
        out
    }
}

impl State {
    fn batch_push(&mut self, sql: Arc<str>) {
        if self.batch.len() < 64 && !self.batch.iter().any(|s| Arc::ptr_eq(s, &sql)) {
            self.batch.push(sql);
        }
    }
}

fn new_prepared(sql: Arc<str>) -> Arc<Prepared> {
    Arc::new(Prepared {
        sql,
        columns: OnceLock::new(),
    })
}

/// Pops the first step if it is the expected one (a mismatch means sluice lost track: the
/// results that follow are then planned as unknown, which masks them).
fn pop_if(s: &mut State, f: impl Fn(&Step) -> bool) -> Option<Step> {
    if s.steps.front().is_some_and(f) {
        s.steps.pop_front()
    } else {
        None
    }
}

/// The result format codes of a `Bind` (after its parameters).
fn result_formats(body: &[u8]) -> Option<Vec<i16>> {
    let mut r = codec::CStrReader::new(body);
    r.cstr("Bind portal").ok()?;
    r.cstr("Bind statement").ok()?;
    let rest = r.rest();
    let u16_at = |at: usize| {
        rest.get(at..at + 2)
            .map(|x| u16::from_be_bytes([x[0], x[1]]))
    };
    let nf = u16_at(0)? as usize;
    let mut at = 2 + 2 * nf;
    let np = u16_at(at)? as usize;
    at += 2;
    for _ in 0..np {
        let len = i32::from_be_bytes(rest.get(at..at + 4)?.try_into().ok()?);
        at += 4 + len.max(0) as usize;
    }
    let nr = u16_at(at)? as usize;
    at += 2;
    (0..nr)
        .map(|i| u16_at(at + 2 * i).map(|f| f as i16))
        .collect()
}

fn describe_portal(name: &str) -> Message {
    let mut body = Vec::with_capacity(name.len() + 2);
    body.push(b'P');
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    Message::new(b'D', &body)
}

#[cfg(test)]
mod tests;
