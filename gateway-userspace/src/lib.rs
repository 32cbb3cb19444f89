//! sluice: a transparent, protocol-aware gateway between AI agents and production systems.
//!
//! # Layout
//! - [`config`]: the YAML policy, parsed with positions and validated completely.
//! - [`ebpf`]: loads the kernel programs into intercepted cgroups, reads their records.
//! - [`server`]: listeners, accept loop, target leases, graceful shutdown.
//! - [`conn`]: what is known about one connection ([`conn::ConnCtx`]).
//! - [`proto`]: protocol sessions (opaque TCP, PostgreSQL with approval holds).
//! - [`inspect`]: guardrails (SQL and shell AST rules) and masking (Hyperscan prefilter + exact
//!   validators).
//! - [`services`]: what sessions share: the approval broker and its API, OIDC identity, cancel
//!   keys, alerts.
//! - [`exec`]: `sluice exec`, running a command inside an intercepted cgroup.
//! - [`files`]: creating files that hold secrets.
// Denied everywhere; the two exceptions (`ebpf::watch_readable`, the SIMD byte classifiers in
// `inspect::masking::shapes`) explain themselves.
#![deny(unsafe_code)]

pub mod config;
pub mod conn;
pub mod ebpf;
pub mod exec;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
pub mod proto;
pub mod server;
pub mod services;
pub mod tls;
