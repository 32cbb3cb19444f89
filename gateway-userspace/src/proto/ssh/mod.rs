//! SSH: sluice is the server to the agent and a client to the real sshd.

pub mod line;
