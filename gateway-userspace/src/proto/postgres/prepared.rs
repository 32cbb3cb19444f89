//! Prepared statements as the server has them, learnt from its answers.
//!
//! What a name refers to is decided by the server, not by what the agent sent: a `Parse` of an
//! existing name fails (the old statement stays), a `Close` after a failed message of the same
//! batch is skipped (the statement stays), SQL `PREPARE`/`DEALLOCATE` share the namespace with
//! the protocol's `Parse`/`Close`. So a definition or removal only takes effect here when the
//! server confirms it (ParseComplete, CloseComplete, the `PREPARE`/`DEALLOCATE` command tags);
//! until then the name may refer to either, and a statement executing it is decided as the most
//! severe of the two.
//!
//! Matching answers to requests needs no full protocol model: the server handles a batch's
//! messages in order and stops at the first error until `Sync`, and each successful Parse /
//! Close / PREPARE / DEALLOCATE answers exactly once, with a message no other request produces.
//! So the confirmations of a batch are a prefix of its tracked requests, and at the batch's
//! ReadyForQuery the rest did not happen.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use super::hold::HeldStatement;
use crate::inspect::guardrails::Analysis;

/// A statement the agent prepared, with what sluice decided for it.
#[derive(Debug)]
pub struct Entry {
    pub sql: Arc<str>,
    pub analysis: Arc<Analysis>,
    /// `Some` when the policy holds it: each batch executing it waits for approval.
    pub held: Option<Arc<HeldStatement>>,
    /// The audit number of its Parse or PREPARE (0: not recorded).
    pub parsed_as: u64,
    /// Set at its first execution, which its Parse's record covers; later ones get their own.
    pub executed: AtomicBool,
}

impl Entry {
    /// Whether this is the first execution (and marks it done).
    pub fn first_execution(&self) -> bool {
        !self.executed.swap(true, Ordering::Relaxed)
    }
}

/// What a request does once the server confirms it.
#[derive(Debug)]
pub enum Op {
    Define(String, Arc<Entry>),
    Remove(String),
    RemoveAll,
    /// A portal's Close: confirmed like a statement's, changes nothing here.
    Nothing,
}

/// The server's answer that confirms a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    ParseComplete,
    CloseComplete,
    /// A CommandComplete with this tag (`PREPARE`, `DEALLOCATE`, `DEALLOCATE ALL`, ...).
    Tag(&'static str),
}

/// The command tags that confirm a tracked SQL statement.
pub const TRACKED_TAGS: &[&str] = &["PREPARE", "DEALLOCATE", "DEALLOCATE ALL", "DISCARD ALL"];

struct Awaited {
    /// The ReadyForQuery (counted from the session's start) that ends its batch.
    batch: u64,
    reply: Reply,
    op: Op,
}

/// The server answered something sluice did not ask for: its model of the session is wrong.
#[derive(Debug, thiserror::Error)]
#[error("the database confirmed a {0} sluice did not expect")]
pub struct Desync(pub &'static str);

/// Bounds the statements a session may have prepared (and in flight) at once.
pub const MAX_STATEMENTS: usize = 10_000;

#[derive(Default)]
pub struct Registry {
    confirmed: HashMap<String, Arc<Entry>>,
    awaited: VecDeque<Awaited>,
    /// Requests of the batch the agent is still sending (their batch is numbered when its
    /// `Sync` goes out: sluice may send queries of its own before it).
    unsent: VecDeque<(Reply, Op)>,
    /// Batches (`Query` or `Sync`) sent upstream, each answered by one ReadyForQuery.
    batches_sent: u64,
    /// ReadyForQuery messages seen.
    batches_done: u64,
}

impl Registry {
    /// Frontend: a tracked request of the agent's current batch.
    pub fn expect(&mut self, reply: Reply, op: Op) {
        self.unsent.push_back((reply, op));
    }

    /// Frontend: a `Query` or `Sync` goes out (its ReadyForQuery closes the batch). The
    /// agent's own carries the requests of its batch; one of sluice's carries none.
    pub fn batch_sent(&mut self, agents: bool) {
        if agents {
            let batch = self.batches_sent;
            self.awaited
                .extend(
                    self.unsent
                        .drain(..)
                        .map(|(reply, op)| Awaited { batch, reply, op }),
                );
        }
        self.batches_sent += 1;
    }

    /// What `name` may refer to when the next message reaches the server: the confirmed
    /// statement and every definition still in flight (most recent last). Inside the batch
    /// being sent, the server stops at the first error: a definition earlier in the same
    /// batch is what runs if anything does, and a removal there means nothing runs.
    pub fn candidates(&self, name: &str) -> Vec<Arc<Entry>> {
        let in_batch = self.unsent.iter().rev().find_map(|(_, op)| match op {
            Op::Define(n, e) if n == name => Some(Some(e.clone())),
            Op::Remove(n) if n == name => Some(None),
            Op::RemoveAll => Some(None),
            _ => None,
        });
        if let Some(latest) = in_batch {
            return latest.into_iter().collect();
        }
        let mut out: Vec<Arc<Entry>> = self.confirmed.get(name).cloned().into_iter().collect();
        for a in &self.awaited {
            if let Op::Define(n, e) = &a.op
                && n == name
            {
                out.push(e.clone());
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.confirmed.len() + self.awaited.len() + self.unsent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Backend: a confirming message arrived.
    pub fn confirmed_by(&mut self, reply: Reply) -> Result<(), Desync> {
        let what = match reply {
            Reply::ParseComplete => "Parse",
            Reply::CloseComplete => "Close",
            Reply::Tag(_) => "PREPARE or DEALLOCATE",
        };
        // The batch being sent may already be answered in part (a Flush, or a result larger
        // than the server's output buffer): its requests are the unsent ones then.
        let op = match self.awaited.front() {
            Some(front) if front.batch == self.batches_done && front.reply == reply => {
                self.awaited.pop_front().expect("checked").op
            }
            None if self.batches_done == self.batches_sent
                && self.unsent.front().is_some_and(|(r, _)| *r == reply) =>
            {
                self.unsent.pop_front().expect("checked").1
            }
            _ => return Err(Desync(what)),
        };
        match op {
            Op::Define(name, entry) => {
                self.confirmed.insert(name, entry);
            }
            Op::Remove(name) => {
                self.confirmed.remove(&name);
            }
            Op::RemoveAll => self.confirmed.clear(),
            Op::Nothing => {}
        }
        Ok(())
    }

    /// Backend: a ReadyForQuery ended the oldest batch; what it did not confirm was skipped.
    pub fn batch_done(&mut self) {
        while self
            .awaited
            .front()
            .is_some_and(|a| a.batch <= self.batches_done)
        {
            self.awaited.pop_front();
        }
        self.batches_done += 1;
    }
}

/// The reply a CommandComplete tag stands for, if it confirms a tracked request.
pub fn tag_reply(tag: &str) -> Option<Reply> {
    TRACKED_TAGS
        .iter()
        .find(|t| **t == tag)
        .map(|t| Reply::Tag(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sql: &str) -> Arc<Entry> {
        Arc::new(Entry {
            sql: sql.into(),
            analysis: Arc::new(crate::inspect::guardrails::analyze(
                sql,
                crate::inspect::Dialect::Postgres,
            )),
            held: None,
            parsed_as: 0,
            executed: AtomicBool::new(false),
        })
    }

    fn sqls(v: Vec<Arc<Entry>>) -> Vec<String> {
        v.iter().map(|e| e.sql.to_string()).collect()
    }

    #[test]
    fn a_refused_parse_leaves_the_old_statement() {
        let mut r = Registry::default();
        r.expect(
            Reply::ParseComplete,
            Op::Define("s".into(), entry("DELETE")),
        );
        r.batch_sent(true);
        r.confirmed_by(Reply::ParseComplete).unwrap();
        r.batch_done();
        // Parse s again: in flight, both are candidates; the server refuses it.
        r.expect(
            Reply::ParseComplete,
            Op::Define("s".into(), entry("SELECT 1")),
        );
        r.batch_sent(true);
        assert_eq!(sqls(r.candidates("s")), ["DELETE", "SELECT 1"]);
        r.batch_done(); // ErrorResponse, then ReadyForQuery: no ParseComplete
        assert_eq!(sqls(r.candidates("s")), ["DELETE"]);
    }

    #[test]
    fn a_skipped_close_keeps_the_statement_and_later_batches_line_up() {
        let mut r = Registry::default();
        r.expect(
            Reply::ParseComplete,
            Op::Define("s".into(), entry("DELETE")),
        );
        r.batch_sent(true);
        // Next batch (pipelined before the first answer): a failing Execute, then Close s.
        r.expect(Reply::CloseComplete, Op::Remove("s".into()));
        r.batch_sent(true);
        r.expect(
            Reply::Tag("PREPARE"),
            Op::Define("p".into(), entry("UPDATE")),
        );
        r.batch_sent(true);
        r.confirmed_by(Reply::ParseComplete).unwrap();
        r.batch_done();
        // A CloseComplete now would belong to batch 2, but the answer is an error, then Z.
        r.batch_done();
        assert_eq!(sqls(r.candidates("s")), ["DELETE"]);
        r.confirmed_by(Reply::Tag("PREPARE")).unwrap();
        r.batch_done();
        assert_eq!(sqls(r.candidates("p")), ["UPDATE"]);
        assert!(
            r.confirmed_by(Reply::CloseComplete).is_err(),
            "nothing awaits it"
        );
    }

    #[test]
    fn inside_one_batch_the_latest_definition_is_what_runs() {
        let mut r = Registry::default();
        r.expect(Reply::ParseComplete, Op::Define("".into(), entry("UPDATE")));
        r.batch_sent(true);
        r.confirmed_by(Reply::ParseComplete).unwrap();
        r.batch_done();
        // Parse "" then Bind "" in one batch: the new statement, or (the Parse failed) nothing.
        r.expect(
            Reply::ParseComplete,
            Op::Define("".into(), entry("SELECT 1")),
        );
        assert_eq!(sqls(r.candidates("")), ["SELECT 1"]);
        r.expect(Reply::CloseComplete, Op::Remove("".into()));
        assert!(r.candidates("").is_empty());
        r.batch_sent(true);
        // Once sent, the server may have refused it: the old one counts again.
        assert_eq!(sqls(r.candidates("")), ["UPDATE", "SELECT 1"]);
    }

    #[test]
    fn deallocate_all_and_tags() {
        let mut r = Registry::default();
        for n in ["a", "b"] {
            r.expect(
                Reply::ParseComplete,
                Op::Define(n.into(), entry("SELECT 1")),
            );
        }
        r.expect(Reply::Tag("DISCARD ALL"), Op::RemoveAll);
        r.batch_sent(true);
        r.confirmed_by(Reply::ParseComplete).unwrap();
        r.confirmed_by(Reply::ParseComplete).unwrap();
        assert!(
            r.confirmed_by(Reply::Tag("PREPARE")).is_err(),
            "wrong reply"
        );
    }

    #[test]
    fn tags() {
        assert_eq!(
            tag_reply("DEALLOCATE ALL"),
            Some(Reply::Tag("DEALLOCATE ALL"))
        );
        assert_eq!(tag_reply("SELECT 1"), None);
    }
}
