//! What the two directions of a session share: the answers the agent → database direction is
//! waiting for, in order, and the prepared statements as the server confirmed them.
//!
//! Each forwarded `Query` or `Sync` pushes one [`Pending`], popped at its ReadyForQuery by the
//! database → agent direction.

use std::{collections::VecDeque, sync::Mutex, time::Instant};

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
}

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
}

impl Shared {
    pub fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Frontend: a `Query` or `Sync` is about to be forwarded.
pub(super) fn push(shared: &Mutex<Shared>, expect: Expect, commands: Vec<u64>) {
    let mut s = Shared::lock(shared);
    s.prepared.batch_sent();
    s.expect.push_back(Pending {
        expect,
        commands,
        sent: Instant::now(),
    });
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
            Shared::lock(shared).prepared.batch_done();
            return Ok(());
        }
        _ => return Ok(()),
    };
    Shared::lock(shared).prepared.confirmed_by(reply)
}
