//! PostgreSQL v3: sluice is the server to the agent and a client to the real database.
//!
//! - [`codec`]: bounded framing, message helpers.
//! - [`auth`]: upstream login (held credential or relayed).
//! - [`session`]: startup, the query pipeline (parse → decide → forward or refuse), response
//!   masking, cancel forwarding.
//! - [`capture`]: what the agent saw, folded into result sets for the audit log.
//! - [`pinned`]: settings pinned upstream (how the server reads SQL text), and their checks.

pub mod auth;
pub mod capture;
pub mod codec;
pub mod hold;
pub mod pinned;
pub mod session;

pub use session::serve;
