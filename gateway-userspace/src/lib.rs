//! sluice: a transparent, protocol-aware gateway between AI agents and production systems.
//!
//! # Layout
//! - [`config`]: the YAML policy, parsed with positions and validated completely.
//! - [`ebpf`]: loads the kernel programs into intercepted cgroups, reads their records.
//! - [`server`]: listeners, accept loop, target leases, graceful shutdown.
//! - [`conn`]: what is known about one connection ([`conn::ConnCtx`]).
//! - [`gate`]: the one door every protocol goes through to policy, approvals, audit and
//!   identity.
//! - [`proto`]: protocol sessions (opaque TCP, PostgreSQL, SSH): framing, state machines, and
//!   refusals in each protocol's own shape.
//! - [`inspect`]: guardrails (SQL and shell AST rules) and masking (Hyperscan prefilter + exact
//!   validators).
//! - [`services`]: what sessions share: the approval broker and its API, OIDC identity, cancel
//!   keys, alerts.
//! - [`exec`]: `sluice exec`, running a command sandboxed inside an intercepted cgroup.
//! - [`cleanup`]: `sluice cleanup`, the only way interception is removed (`--detach`).
//! - [`files`]: private directories and files (0700/0600), and reading secret files safely.
//! - [`peer`]: who serves a local socket (checked before a reviewer's token is sent).
//! - [`util`]: hex, digests, ids and time: one of each (a leaf).
//! - `testkit` (tests only): in-process sessions without root or eBPF (services on a
//!   temporary audit log, a hand-built connection, scripted upstreams on loopback).
// Denied everywhere; the exceptions (`ebpf::watch_readable`, the bpf() commands aya lacks in
// `ebpf::sys`, the SIMD byte classifiers in `inspect::masking::shapes`) explain themselves.
#![deny(unsafe_code)]

pub mod cleanup;
pub mod config;
pub mod conn;
pub mod ebpf;
pub mod exec;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod gate;
pub mod inspect;
pub mod peer;
pub mod proto;
pub mod server;
pub mod services;
#[cfg(test)]
pub(crate) mod testkit;
pub mod tls;
pub mod util;
