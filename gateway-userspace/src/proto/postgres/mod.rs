//! PostgreSQL v3: sluice is the server to the agent and a client to the real database.
//!
//! - [`codec`]: bounded framing, message helpers.
//! - [`auth`]: upstream login (held credential or relayed).
//! - [`session`]: startup, login, the relay, cancel forwarding.
//! - `frontend`: the agent's messages, decided (parse → decide → forward, hold or refuse);
//!   `decide`: the decision for a statement; `enforce`: running it read-only or measured.
//! - `pipeline`: what the two directions share; [`prepared`]: prepared statements as the
//!   server confirmed them.
//! - [`capture`]: what the agent saw, folded into result sets for the audit log.
//! - [`response`]: masking of everything the database sends, planned per result set from
//!   column lineage ([`masking_plan`] ties each result to its statement and portal, [`catalog`]
//!   knows the database's sensitive columns, [`binary`] keeps masked values valid for their
//!   types).
//! - [`proc_catalog`]: the server's `pg_proc`, asked on sluice's own connection (functions'
//!   volatility, for the guardrails).
//! - [`pinned`]: settings pinned upstream (how the server reads SQL text), and their checks.

pub mod auth;
pub mod binary;
mod blast;
pub mod capture;
pub mod catalog;
pub mod codec;
mod decide;
mod enforce;
mod frontend;
pub mod hold;
pub mod masking_plan;
pub mod pinned;
mod pipeline;
pub mod prepared;
pub mod proc_catalog;
pub mod response;
pub mod session;
#[cfg(test)]
mod session_tests;
pub mod settings;
mod upstream;

pub use session::serve;

/// What every PostgreSQL session of the gateway shares, owned by the server and handed to
/// [`serve`].
#[derive(Default)]
pub struct State {
    /// What response masking knows of each database (sensitive columns, samples, statement
    /// lineages), shared by its sessions.
    pub catalogs: catalog::Registry,
    /// Upstreams' function catalogs, for the guardrails (one lookup connection and cache per
    /// upstream, shared by its sessions).
    pub proc_catalogs: proc_catalog::Catalogs,
    /// Each resource's upstream sessions at once (`postgres.max_sessions`).
    pub sessions: settings::SessionCaps,
}
