//! PostgreSQL v3: sluice is the server to the agent and a client to the real database.
//!
//! - [`codec`]: bounded framing, message helpers.
//! - [`auth`]: upstream login (held credential or relayed).
//! - [`session`]: startup, the query pipeline (parse → decide → forward or refuse), cancel
//!   forwarding.
//! - [`capture`]: what the agent saw, folded into result sets for the audit log.
//! - [`response`]: masking of everything the database sends, planned per result set from
//!   column lineage ([`masking_plan`] ties each result to its statement and portal, [`catalog`]
//!   knows the database's sensitive columns, [`binary`] keeps masked values valid for their
//!   types).

pub mod auth;
pub mod binary;
pub mod capture;
pub mod catalog;
pub mod codec;
pub mod hold;
pub mod masking_plan;
pub mod response;
pub mod session;

pub use session::serve;
