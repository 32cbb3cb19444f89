//! Inspection shared by every protocol: guardrails decide on commands, masking rewrites
//! responses. Protocol sessions call them at fixed phases (see ARCHITECTURE.md); an error inside
//! inspection is a deny.

mod dialect;
pub mod guardrails;
pub mod masking;
pub mod policy;

pub use dialect::Dialect;
use serde::Serialize;

/// What the policy says about a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny {
        rule: String,
        reason: String,
    },
    /// Wait for a reviewer (approval broker); a timeout is a deny.
    Hold {
        rule: String,
        reason: String,
    },
}
