//! What a rule does when it matches. A leaf, shared by the rules and by protocol settings that
//! choose an action (SSH file transfer).

use std::fmt;

use serde::Deserialize;

/// What a rule does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    /// Allowed, and an alert is raised.
    Alert,
    /// Held for approval.
    Hold,
    Deny,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Alert => "alert",
            Action::Hold => "hold",
            Action::Deny => "deny",
        })
    }
}
