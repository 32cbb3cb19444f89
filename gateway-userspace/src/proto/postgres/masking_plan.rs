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
}

/// Per session, shared by its two directions.
#[derive(Default)]
pub struct PlanTracker {
    state: Mutex<State>,
    /// Called with each statement text sent upstream, before it is sent.
    on_statement: Option<StatementHook>,
}

/// See [`PlanTracker::with_statement_hook`].
pub type StatementHook = Box<dyn Fn(&str) + Send + Sync>;

impl PlanTracker {
    /// A tracker that also shows `hook` every statement text before it goes upstream (what a
    /// statement does to session state must be known before its effects can be seen).
    pub fn with_statement_hook(hook: StatementHook) -> PlanTracker {
        PlanTracker {
            state: Mutex::default(),
            on_statement: Some(hook),
        }
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
        let mut s = self.lock();
        match msg.tag {
            b'Q' => {
                let sql = codec::query_text(body).unwrap_or_default();
                s.steps.push_back(Step::Query { sql: sql.into() });
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
                    // The extended protocol skips to Sync after an error.
                    Some(_) => {
                        while let Some(st) = s.steps.front() {
                            if matches!(st, Step::Sync | Step::Query { .. }) {
                                break;
                            }
                            s.steps.pop_front();
                        }
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
mod tests {
    use super::*;

    fn parse(name: &str, sql: &str) -> Message {
        let mut b = Vec::new();
        b.extend_from_slice(name.as_bytes());
        b.push(0);
        b.extend_from_slice(sql.as_bytes());
        b.extend_from_slice(&[0, 0, 0]);
        Message::new(b'P', &b)
    }

    fn bind(portal: &str, stmt: &str, formats: &[i16]) -> Message {
        let mut b = Vec::new();
        b.extend_from_slice(portal.as_bytes());
        b.push(0);
        b.extend_from_slice(stmt.as_bytes());
        b.push(0);
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(&(formats.len() as i16).to_be_bytes());
        for f in formats {
            b.extend_from_slice(&f.to_be_bytes());
        }
        Message::new(b'B', &b)
    }

    fn execute(portal: &str) -> Message {
        let mut b = portal.as_bytes().to_vec();
        b.extend_from_slice(&[0, 0, 0, 0, 0]);
        Message::new(b'E', &b)
    }

    fn row_desc(names: &[&str]) -> Message {
        let mut b = (names.len() as i16).to_be_bytes().to_vec();
        for n in names {
            b.extend_from_slice(n.as_bytes());
            b.push(0);
            b.extend_from_slice(&[0; 4]); // table oid
            b.extend_from_slice(&[0; 2]); // attnum
            b.extend_from_slice(&25u32.to_be_bytes());
            b.extend_from_slice(&[0xff, 0xff]);
            b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
            b.extend_from_slice(&[0, 0]);
        }
        Message::new(b'T', &b)
    }

    fn m(tag: u8) -> Message {
        Message::new(tag, b"")
    }

    #[test]
    fn an_execute_without_describe_gets_sluices_own_describe_and_its_own_plan() {
        let t = PlanTracker::default();
        assert!(
            t.on_forward(&parse("s1", "select reverse(card) from customers"))
                .is_none()
        );
        assert!(t.on_forward(&bind("p1", "s1", &[1])).is_none());
        let injected = t
            .on_forward(&execute("p1"))
            .expect("a Describe of p1 is sent first");
        assert_eq!(injected.tag, b'D');
        t.on_forward(&m(b'S'));
        assert!(matches!(t.on_backend(&m(b'1')), Event::Other));
        assert!(matches!(t.on_backend(&m(b'2')), Event::Other));
        // The injected Describe's answer is kept from the agent but recorded for the portal.
        assert!(matches!(
            t.on_backend(&row_desc(&["reverse"])),
            Event::Swallow
        ));
        let Event::PortalStart { portal: Some(p) } = t.on_backend(&m(b'D')) else {
            panic!("rows of p1")
        };
        assert_eq!(&*p.statement.sql, "select reverse(card) from customers");
        assert_eq!(p.result_columns().unwrap()[0].name, "reverse");
        assert!(matches!(t.on_backend(&m(b'C')), Event::Complete { .. }));
        assert!(matches!(t.on_backend(&m(b'Z')), Event::Ready));
    }

    #[test]
    fn a_resumed_portal_keeps_its_own_statement_after_another_query() {
        let t = PlanTracker::default();
        for msg in [parse("a", "select card from customers"), m(b'S')] {
            t.on_forward(&msg);
        }
        let d = {
            let mut b = vec![b'S'];
            b.extend_from_slice(b"a\0");
            Message::new(b'D', &b)
        };
        t.on_forward(&d);
        t.on_forward(&m(b'S'));
        for msg in [m(b'1'), m(b'Z')] {
            t.on_backend(&msg);
        }
        t.on_backend(&Message::new(b't', b""));
        t.on_backend(&row_desc(&["card"]));
        t.on_backend(&m(b'Z'));
        // Bind a portal, run one row (suspended), run another query, resume the portal.
        assert!(
            t.on_forward(&bind("pa", "a", &[1])).is_none(),
            "statement was described"
        );
        t.on_forward(&execute("pa"));
        t.on_forward(&m(b'S'));
        t.on_backend(&m(b'2'));
        t.on_backend(&m(b'D'));
        t.on_backend(&m(b's'));
        t.on_backend(&m(b'Z'));
        t.on_forward(&Message::new(b'Q', b"select 1\0"));
        assert!(matches!(
            t.on_backend(&row_desc(&["?column?"])),
            Event::ResultSet { .. }
        ));
        assert!(matches!(t.on_backend(&m(b'D')), Event::Rows));
        t.on_backend(&m(b'C'));
        t.on_backend(&m(b'Z'));
        t.on_forward(&execute("pa"));
        t.on_forward(&m(b'S'));
        let Event::PortalStart { portal: Some(p) } = t.on_backend(&m(b'D')) else {
            panic!()
        };
        let cols = p.result_columns().unwrap();
        assert_eq!((cols[0].name.as_str(), cols[0].format), ("card", 1));
    }

    #[test]
    fn an_error_skips_to_sync_and_a_refused_parse_replaces_nothing() {
        let t = PlanTracker::default();
        t.on_forward(&parse("s", "select email from customers"));
        t.on_forward(&m(b'S'));
        t.on_backend(&m(b'1'));
        t.on_backend(&m(b'Z'));
        // Parse `s` again (the server refuses: it exists), then bind and execute `s`.
        t.on_forward(&parse("s", "select 1"));
        t.on_forward(&bind("", "s", &[]));
        t.on_forward(&execute(""));
        t.on_forward(&m(b'S'));
        t.on_backend(&m(b'E'));
        t.on_backend(&m(b'Z'));
        t.on_forward(&bind("", "s", &[]));
        t.on_forward(&execute(""));
        t.on_forward(&m(b'S'));
        t.on_backend(&m(b'2'));
        t.on_backend(&m(b'T'));
        let Event::PortalStart { portal: Some(p) } = t.on_backend(&m(b'D')) else {
            panic!()
        };
        assert_eq!(&*p.statement.sql, "select email from customers");
    }
}
