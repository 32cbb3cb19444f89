//! sluice's kernel side. One object is loaded per intercepted cgroup (target), so its globals
//! are that target's settings and its maps that target's state.
//!
//! * [`net`]: cgroup programs on the target's own sockets: the TCP redirect to the proxy, the
//!   egress policy (TCP and UDP), binds, the socket kinds allowed, the record's life (sock_ops)
//!   and the original peer (getpeername).
//! * [`inbound`]: the inbound policy on packets (connection requests and datagrams from outside).
//! * [`host`]: what the target's *tasks* may do to the host: no sysctl writes, no block devices,
//!   no kernel memory, no device nodes.
//! * [`common`]: globals, maps and reporting shared by all.
//!
//! cgroup sock_addr and skb programs judge a socket by the cgroup it was created in; sysctl and
//! device programs judge the task. What they cannot see (a socket made outside and brought in,
//! unix sockets, ptrace) is closed for `sluice exec` agents by the sandbox (seccomp, Landlock,
//! capabilities); see the README's threat model.
// The programs only mean something for the BPF target; on the host (workspace-wide clippy or
// builds) this is an empty binary.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(not(target_arch = "bpf"), allow(dead_code, unused_imports))]

#[cfg(not(target_arch = "bpf"))]
fn main() {}

mod common;
mod host;
mod inbound;
mod net;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
