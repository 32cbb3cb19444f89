//! The cgroup programs: what the target's own sockets may reach and bind.
//!
//! * `connect4|6`: TCP to a listed resource is rewritten to the sluice listener and recorded;
//!   TCP and UDP elsewhere follow the destination map and the egress mode.
//! * `sendmsg4|6`: unconnected UDP datagrams, the same UDP policy (only allowed destinations,
//!   by default the configured DNS resolvers).
//! * `bind4|6`: the inbound policy; sluice's own ports are never bindable (no squatting).
//! * `sock_create`: only TCP and UDP sockets in the inet families (no raw, ICMP, SCTP, MPTCP:
//!   MPTCP would connect past the TCP-only redirect).
//! * `sock_ops`: re-keys the record by the client's address at established, and removes it when
//!   the agent's socket closes, so a record cannot outlive its connection and be claimed.
//! * `getpeername4|6`: the agent sees the original peer, not the proxy.

use aya_ebpf::{
    EbpfContext,
    bindings::{
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_STATE_CB, BPF_SOCK_OPS_STATE_CB_FLAG,
        BPF_TCP_CLOSE, bpf_sock_addr,
    },
    helpers::{
        bpf_get_current_comm,
        generated::{bpf_get_socket_cookie, bpf_ktime_get_ns},
    },
    macros::{cgroup_sock, cgroup_sock_addr, sock_ops},
    maps::lpm_trie::Key,
    programs::{SockAddrContext, SockContext, SockOpsContext},
};
use aya_log_ebpf::debug;
use gateway_common::{
    AF_INET, AF_INET6, Action, ClientKey, ConnRecord, PORT_PREFIX_BITS, PROTO_TCP, PROTO_UDP,
    ResourceEntry, event, inbound, resource_key_v4, resource_key_v6, v4_mapped,
};

use crate::common::{
    BY_CLIENT, BY_COOKIE, EGRESS_DENY, INBOUND, PROCEED, PROXY_ADDR_V4, PROXY_ADDR_V6, PROXY_PORT,
    REFUSE, RESOURCES_V4, RESOURCES_V6, Report, bytes_to_words, current_cgroup, is_loopback_v4,
    is_loopback_v6, is_sluice_port, pid_tid, report, uid_gid, widen, words_to_bytes,
};

const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;

/// The transport of a sock_addr context: only TCP and UDP sockets exist in the target
/// (`sock_create`), anything else is refused wherever it shows up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Udp,
    Other,
}

fn transport(sa: &bpf_sock_addr) -> Transport {
    match (sa.type_, sa.protocol) {
        (SOCK_STREAM, IPPROTO_TCP) => Transport::Tcp,
        (SOCK_DGRAM, IPPROTO_UDP) => Transport::Udp,
        _ => Transport::Other,
    }
}

#[cgroup_sock_addr(connect4)]
pub fn sluice_connect4(ctx: SockAddrContext) -> i32 {
    try_connect4(&ctx).unwrap_or(REFUSE)
}

#[cgroup_sock_addr(connect6)]
pub fn sluice_connect6(ctx: SockAddrContext) -> i32 {
    try_connect6(&ctx).unwrap_or(REFUSE)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sluice_sendmsg4(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel hands sock_addr programs a valid context pointer.
    let sa = unsafe { &*ctx.sock_addr };
    let addr = sa.user_ip4.to_ne_bytes();
    let port = u16::from_be(sa.user_port as u16);
    udp_verdict(lookup_v4(port, addr), AF_INET, widen(addr), port, 1)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sluice_sendmsg6(ctx: SockAddrContext) -> i32 {
    // SAFETY: as in sluice_sendmsg4.
    let sa = unsafe { &*ctx.sock_addr };
    let addr = words_to_bytes(get_ip6(sa));
    let port = u16::from_be(sa.user_port as u16);
    match v4_mapped(addr) {
        Some(v4) => udp_verdict(lookup_v4(port, v4), AF_INET, widen(v4), port, 1),
        None => udp_verdict(lookup_v6(port, addr), AF_INET6, addr, port, 1),
    }
}

#[cgroup_sock_addr(bind4)]
pub fn sluice_bind4(ctx: SockAddrContext) -> i32 {
    // SAFETY: as in sluice_sendmsg4.
    let sa = unsafe { &*ctx.sock_addr };
    let addr = sa.user_ip4.to_ne_bytes();
    let port = u16::from_be(sa.user_port as u16);
    bind_verdict(is_loopback_v4(addr), AF_INET, widen(addr), port)
}

#[cgroup_sock_addr(bind6)]
pub fn sluice_bind6(ctx: SockAddrContext) -> i32 {
    // SAFETY: as in sluice_sendmsg4.
    let sa = unsafe { &*ctx.sock_addr };
    let addr = words_to_bytes(get_ip6(sa));
    let port = u16::from_be(sa.user_port as u16);
    bind_verdict(is_loopback_v6(addr), AF_INET6, addr, port)
}

#[cgroup_sock(sock_create)]
pub fn sluice_sock_create(ctx: SockContext) -> i32 {
    // SAFETY: the kernel hands sock programs a valid context pointer.
    let sk = unsafe { &*ctx.sock };
    let allowed = matches!(
        (sk.type_, sk.protocol),
        (SOCK_STREAM, IPPROTO_TCP) | (SOCK_DGRAM, IPPROTO_UDP)
    );
    if allowed {
        return PROCEED;
    }
    let mut r = Report::new(event::SOCKET_DENIED);
    r.arg = u64::from(sk.family);
    r.arg2 = (u64::from(sk.type_) << 32) | u64::from(sk.protocol);
    report(r);
    REFUSE
}

#[cgroup_sock_addr(getpeername4)]
pub fn sluice_getpeername4(ctx: SockAddrContext) -> i32 {
    restore_peer(&ctx, false);
    PROCEED
}

#[cgroup_sock_addr(getpeername6)]
pub fn sluice_getpeername6(ctx: SockAddrContext) -> i32 {
    restore_peer(&ctx, true);
    PROCEED
}

#[sock_ops]
pub fn sluice_sock_ops(ctx: SockOpsContext) -> u32 {
    match ctx.op() {
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB => rekey_by_client(&ctx),
        BPF_SOCK_OPS_STATE_CB if ctx.arg(1) == BPF_TCP_CLOSE => forget_closed(&ctx),
        _ => {}
    }
    0
}

fn try_connect4(ctx: &SockAddrContext) -> Result<i32, i32> {
    // SAFETY: the kernel hands sock_addr programs a valid context pointer.
    let sa = unsafe { &mut *ctx.sock_addr };
    let ip = sa.user_ip4;
    let port_be = sa.user_port;
    let addr = ip.to_ne_bytes();
    let port = u16::from_be(port_be as u16);
    let proto = transport(sa);
    if proto == Transport::Tcp && ip == PROXY_ADDR_V4.load() && port_be == PROXY_PORT.load() {
        return Ok(to_listener(ctx, AF_INET, widen(addr), port));
    }
    let found = lookup_v4(port, addr);
    match proto {
        Transport::Tcp => {}
        Transport::Udp => return Ok(udp_verdict(found, AF_INET, widen(addr), port, 0)),
        Transport::Other => return Ok(REFUSE),
    }
    match found {
        Some(entry) if entry.action == Action::Redirect as u32 => {
            record(ctx, AF_INET, widen(addr), port, entry.resource_id)?;
            sa.user_ip4 = PROXY_ADDR_V4.load();
            sa.user_port = PROXY_PORT.load();
            debug!(
                ctx,
                "redirect v4 port {} resource {}", port, entry.resource_id
            );
            Ok(PROCEED)
        }
        entry => Ok(tcp_verdict(entry, AF_INET, widen(addr), port)),
    }
}

fn try_connect6(ctx: &SockAddrContext) -> Result<i32, i32> {
    // SAFETY: as in try_connect4.
    let sa = unsafe { &mut *ctx.sock_addr };
    let words = get_ip6(sa);
    let port_be = sa.user_port;
    let addr = words_to_bytes(words);
    let port = u16::from_be(port_be as u16);
    let proto = transport(sa);

    // A dual-stack socket reaching an IPv4 destination uses ::ffff:a.b.c.d; it must obey the
    // IPv4 policy, and is redirected to the IPv4 listener in the same mapped form.
    if let Some(v4) = v4_mapped(addr) {
        if proto == Transport::Tcp
            && u32::from_ne_bytes(v4) == PROXY_ADDR_V4.load()
            && port_be == PROXY_PORT.load()
        {
            return Ok(to_listener(ctx, AF_INET, widen(v4), port));
        }
        let found = lookup_v4(port, v4);
        match proto {
            Transport::Tcp => {}
            Transport::Udp => return Ok(udp_verdict(found, AF_INET, widen(v4), port, 0)),
            Transport::Other => return Ok(REFUSE),
        }
        return match found {
            Some(entry) if entry.action == Action::Redirect as u32 => {
                record(ctx, AF_INET, widen(v4), port, entry.resource_id)?;
                set_ip6(sa, v4_mapped_words(PROXY_ADDR_V4.load()));
                sa.user_port = PROXY_PORT.load();
                Ok(PROCEED)
            }
            entry => Ok(tcp_verdict(entry, AF_INET, widen(v4), port)),
        };
    }

    let proxy6 = PROXY_ADDR_V6.load();
    if proto == Transport::Tcp && words == proxy6 && port_be == PROXY_PORT.load() {
        return Ok(to_listener(ctx, AF_INET6, addr, port));
    }
    let found = lookup_v6(port, addr);
    match proto {
        Transport::Tcp => {}
        Transport::Udp => return Ok(udp_verdict(found, AF_INET6, addr, port, 0)),
        Transport::Other => return Ok(REFUSE),
    }
    match found {
        Some(entry) if entry.action == Action::Redirect as u32 => {
            record(ctx, AF_INET6, addr, port, entry.resource_id)?;
            set_ip6(sa, proxy6);
            sa.user_port = PROXY_PORT.load();
            debug!(
                ctx,
                "redirect v6 port {} resource {}", port, entry.resource_id
            );
            Ok(PROCEED)
        }
        entry => Ok(tcp_verdict(entry, AF_INET6, addr, port)),
    }
}

/// A connect whose destination is sluice's listener. Another sluice program attached to this
/// cgroup before this one (a gateway taking over from a dead one) may have redirected it
/// already: then its record is in the shared map and the connect goes on. Otherwise the agent
/// connects to the listener directly, which it must never do (it could present itself as a
/// connection it is not).
fn to_listener(ctx: &SockAddrContext, family: u16, addr: [u8; 16], port: u16) -> i32 {
    // SAFETY: the context pointer is the one the kernel passed to this program.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // SAFETY: LRU map values are plain data.
    if unsafe { BY_COOKIE.get(cookie) }.is_some() {
        return PROCEED;
    }
    refuse_tcp(family, addr, port, 1)
}

pub fn lookup_v4(port: u16, addr: [u8; 4]) -> Option<ResourceEntry> {
    let key = Key::new(PORT_PREFIX_BITS + 32, resource_key_v4(port, addr));
    RESOURCES_V4.get(&key).copied()
}

pub fn lookup_v6(port: u16, addr: [u8; 16]) -> Option<ResourceEntry> {
    let key = Key::new(PORT_PREFIX_BITS + 128, resource_key_v6(port, addr));
    RESOURCES_V6.get(&key).copied()
}

/// A TCP destination that is not a redirect.
fn tcp_verdict(entry: Option<ResourceEntry>, family: u16, addr: [u8; 16], port: u16) -> i32 {
    let deny = EGRESS_DENY.load() != 0;
    match entry {
        Some(e) if e.action == Action::Allow as u32 && e.protocols & PROTO_TCP != 0 => PROCEED,
        // sluice's own ports: refused in every egress mode.
        Some(e) if e.action == Action::Deny as u32 => refuse_tcp(family, addr, port, 1),
        Some(e) if e.action == Action::Monitor as u32 && !deny => {
            report(Report::at(
                event::RESOURCE_PORT_UNLISTED,
                family,
                addr,
                port,
            ));
            PROCEED
        }
        _ if deny => refuse_tcp(family, addr, port, 0),
        _ => PROCEED,
    }
}

/// Refuses a TCP connect and reports it (`detail` 1: to one of sluice's own ports).
fn refuse_tcp(family: u16, addr: [u8; 16], port: u16, detail: u16) -> i32 {
    let mut r = Report::at(event::EGRESS_DENIED, family, addr, port);
    r.detail = detail;
    report(r);
    // Refused even when the ring buffer is full: reporting is best effort, enforcement is not.
    REFUSE
}

/// A UDP connect (`how` 0) or datagram (`how` 1): only allowed destinations under
/// `egress: deny`; never one of sluice's ports.
fn udp_verdict(
    entry: Option<ResourceEntry>,
    family: u16,
    addr: [u8; 16],
    port: u16,
    how: u64,
) -> i32 {
    let verdict = match entry {
        Some(e) if e.action == Action::Allow as u32 && e.protocols & PROTO_UDP != 0 => PROCEED,
        Some(e) if e.action == Action::Deny as u32 => REFUSE,
        _ if EGRESS_DENY.load() != 0 => REFUSE,
        _ => PROCEED,
    };
    if verdict == REFUSE {
        let mut r = Report::at(event::UDP_DENIED, family, addr, port);
        r.arg = how;
        report(r);
    }
    verdict
}

fn bind_verdict(loopback: bool, family: u16, addr: [u8; 16], port: u16) -> i32 {
    let allowed = if is_sluice_port(port) {
        false
    } else {
        match INBOUND.load() {
            inbound::ALLOW => true,
            // Port 0 is what clients bind (before a connect, a UDP socket); a fixed port on a
            // reachable address is a service for others to connect to.
            inbound::LOOPBACK => loopback || port == 0,
            _ => port == 0,
        }
    };
    if allowed {
        return PROCEED;
    }
    report(Report::at(event::BIND_DENIED, family, addr, port));
    REFUSE
}

fn record(
    ctx: &SockAddrContext,
    family: u16,
    addr: [u8; 16],
    port: u16,
    resource_id: u32,
) -> Result<(), i32> {
    let (pid, tid) = pid_tid();
    let (uid, gid) = uid_gid();
    // SAFETY: the context pointer is the one the kernel passed to this program.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let rec = ConnRecord {
        orig_addr: addr,
        orig_port: port,
        family,
        resource_id,
        pid,
        tid,
        uid,
        gid,
        cgroup_id: current_cgroup(),
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        cookie,
        // SAFETY: helper without pointer arguments.
        created_ns: unsafe { bpf_ktime_get_ns() },
    };
    // If the record cannot be stored the proxy could not tell where this connection was going:
    // the caller refuses the connect rather than redirecting it blind.
    BY_COOKIE.insert(cookie, rec, 0).map_err(|_| REFUSE)
}

fn restore_peer(ctx: &SockAddrContext, v6: bool) {
    // SAFETY: the context pointer is the one the kernel passed to this program.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // SAFETY: LRU map values are plain data; a concurrent update can at worst give a stale copy.
    let Some(rec) = (unsafe { BY_COOKIE.get(cookie) }).copied() else {
        return;
    };
    // SAFETY: as in try_connect4.
    let sa = unsafe { &mut *ctx.sock_addr };
    let port_be = u32::from(rec.orig_port.to_be());
    if !v6 {
        sa.user_ip4 = u32::from_ne_bytes([
            rec.orig_addr[0],
            rec.orig_addr[1],
            rec.orig_addr[2],
            rec.orig_addr[3],
        ]);
    } else if rec.family == AF_INET {
        let a = rec.orig_addr;
        set_ip6(
            sa,
            v4_mapped_words(u32::from_ne_bytes([a[0], a[1], a[2], a[3]])),
        );
    } else {
        set_ip6(sa, bytes_to_words(rec.orig_addr));
    }
    sa.user_port = port_be;
}

fn client_key(ctx: &SockOpsContext) -> ClientKey {
    // local_port is host order in sock_ops (unlike remote_port).
    let port = ctx.local_port() as u16;
    if u32::from(AF_INET) == ctx.family() {
        ClientKey::v4(ctx.local_ip4().to_ne_bytes(), port)
    } else {
        ClientKey::v6(words_to_bytes(ctx.local_ip6()), port)
    }
}

fn rekey_by_client(ctx: &SockOpsContext) {
    // SAFETY: the context pointer is the one the kernel passed to this program.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // SAFETY: see restore_peer.
    let Some(rec) = (unsafe { BY_COOKIE.get(cookie) }).copied() else {
        return;
    };
    if BY_CLIENT.insert(client_key(ctx), rec, 0).is_ok() {
        // Tell us when this socket closes, to drop its record.
        let _ = ctx.set_cb_flags(BPF_SOCK_OPS_STATE_CB_FLAG as i32);
    }
}

fn forget_closed(ctx: &SockOpsContext) {
    // SAFETY: the context pointer is the one the kernel passed to this program.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let key = client_key(ctx);
    // SAFETY: see restore_peer.
    if let Some(rec) = unsafe { BY_CLIENT.get(key) }
        && rec.cookie == cookie
    {
        let _ = BY_CLIENT.remove(key);
    }
    let _ = BY_COOKIE.remove(cookie);
}

/// The verifier only accepts 4-byte accesses to `user_ip6`; volatile word accesses keep the
/// compiler from merging them into 8-byte ones.
fn get_ip6(sa: &bpf_sock_addr) -> [u32; 4] {
    let p = sa.user_ip6.as_ptr();
    // SAFETY: p points at the 4-word array inside the kernel-provided context.
    unsafe {
        [
            core::ptr::read_volatile(p),
            core::ptr::read_volatile(p.add(1)),
            core::ptr::read_volatile(p.add(2)),
            core::ptr::read_volatile(p.add(3)),
        ]
    }
}

fn set_ip6(sa: &mut bpf_sock_addr, w: [u32; 4]) {
    let p = sa.user_ip6.as_mut_ptr();
    // SAFETY: as in get_ip6.
    unsafe {
        core::ptr::write_volatile(p, w[0]);
        core::ptr::write_volatile(p.add(1), w[1]);
        core::ptr::write_volatile(p.add(2), w[2]);
        core::ptr::write_volatile(p.add(3), w[3]);
    }
}

/// `::ffff:a.b.c.d` as network-order words, from an IPv4 address in network order.
fn v4_mapped_words(ip4: u32) -> [u32; 4] {
    [0, 0, u32::from_ne_bytes([0, 0, 0xff, 0xff]), ip4]
}
