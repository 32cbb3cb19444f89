//! Approval holds: a held command waits in the gateway until reviewers decide.

pub mod model;
pub mod notify;
