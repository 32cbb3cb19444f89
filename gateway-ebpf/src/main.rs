//! sluice's kernel side, attached to each intercepted cgroup (v2):
//!
//! * `cgroup/connect4|6`: a TCP connect to a listed resource is rewritten to the sluice listener
//!   and its original destination and process are recorded by socket cookie; under
//!   `egress: deny` any other TCP connect fails with EPERM and is reported on a ring buffer.
//! * `sock_ops` (active established): the record is re-keyed by the client's local address, which
//!   is what the proxy sees from `getpeername()` on the accepted socket (socket cookies differ
//!   between the two ends of a connection, so the cookie alone cannot be used).
//! * `cgroup/getpeername4|6`: the agent sees the original peer, not the proxy.
//!
//! One object is loaded per intercepted cgroup, so its globals are that cgroup's settings.
// The programs only mean something for the BPF target; on the host (workspace-wide clippy or
// builds) this is an empty binary.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(not(target_arch = "bpf"), allow(dead_code, unused_imports))]

#[cfg(not(target_arch = "bpf"))]
fn main() {}

use aya_ebpf::{
    EbpfContext, Global,
    bindings::{BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, bpf_sock_addr},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{bpf_get_current_cgroup_id, bpf_get_socket_cookie},
    },
    macros::{cgroup_sock_addr, map, sock_ops},
    maps::{LpmTrie, LruHashMap, RingBuf, lpm_trie::Key},
    programs::{SockAddrContext, SockOpsContext},
};
use aya_log_ebpf::debug;
use gateway_common::{
    AF_INET, AF_INET6, Action, CONN_MAP_ENTRIES, ClientKey, ConnRecord, DenyEvent,
    EVENT_EGRESS_DENIED, PORT_PREFIX_BITS, RESOURCE_MAP_ENTRIES, ResourceEntry, ResourceKeyV4,
    ResourceKeyV6, resource_key_v4, resource_key_v6, v4_mapped,
};

/// Return values of cgroup sock_addr programs: 1 lets the call proceed, 0 fails it with EPERM.
const PROCEED: i32 = 1;
const REFUSE: i32 = 0;

const SOCK_STREAM: u32 = 1;
const IPPROTO_TCP: u32 = 6;

/// Sluice's IPv4 listener address, network order (as in `bpf_sock_addr::user_ip4`).
#[unsafe(no_mangle)]
static PROXY_ADDR_V4: Global<u32> = Global::new(0);
/// Sluice's IPv6 listener address, network order words (as in `bpf_sock_addr::user_ip6`).
#[unsafe(no_mangle)]
static PROXY_ADDR_V6: Global<[u32; 4]> = Global::new([0; 4]);
/// Sluice's listener port, network order in the low 16 bits (as in `bpf_sock_addr::user_port`).
#[unsafe(no_mangle)]
static PROXY_PORT: Global<u32> = Global::new(0);
/// 1 when this cgroup's policy is `egress: deny`.
#[unsafe(no_mangle)]
static EGRESS_DENY: Global<u8> = Global::new(0);

#[map]
static RESOURCES_V4: LpmTrie<ResourceKeyV4, ResourceEntry> =
    LpmTrie::with_max_entries(RESOURCE_MAP_ENTRIES, 0);
#[map]
static RESOURCES_V6: LpmTrie<ResourceKeyV6, ResourceEntry> =
    LpmTrie::with_max_entries(RESOURCE_MAP_ENTRIES, 0);
/// Socket cookie → record, written at connect; read by sock_ops and getpeername.
#[map]
static BY_COOKIE: LruHashMap<u64, ConnRecord> = LruHashMap::with_max_entries(CONN_MAP_ENTRIES, 0);
/// Client local address → record, written at established; read (and deleted) by the proxy.
#[map]
static BY_CLIENT: LruHashMap<ClientKey, ConnRecord> =
    LruHashMap::with_max_entries(CONN_MAP_ENTRIES, 0);
/// Egress refusals for userspace to log and audit.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

#[cgroup_sock_addr(connect4)]
pub fn sluice_connect4(ctx: SockAddrContext) -> i32 {
    try_connect4(&ctx).unwrap_or(REFUSE)
}

#[cgroup_sock_addr(connect6)]
pub fn sluice_connect6(ctx: SockAddrContext) -> i32 {
    try_connect6(&ctx).unwrap_or(REFUSE)
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
    if ctx.op() == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB {
        rekey_by_client(&ctx);
    }
    0
}

fn is_tcp(sa: &bpf_sock_addr) -> bool {
    sa.type_ == SOCK_STREAM && sa.protocol == IPPROTO_TCP
}

fn try_connect4(ctx: &SockAddrContext) -> Result<i32, i32> {
    // SAFETY: the kernel hands sock_addr programs a valid context pointer.
    let sa = unsafe { &mut *ctx.sock_addr };
    if !is_tcp(sa) {
        return Ok(PROCEED);
    }
    let ip = sa.user_ip4;
    let port_be = sa.user_port;
    if ip == PROXY_ADDR_V4.load() && port_be == PROXY_PORT.load() {
        return Ok(PROCEED);
    }
    let addr = ip.to_ne_bytes();
    let port = u16::from_be(port_be as u16);
    match lookup_v4(port, addr) {
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
        Some(_) => Ok(PROCEED),
        None => Ok(egress_default(AF_INET, widen(addr), port)),
    }
}

fn try_connect6(ctx: &SockAddrContext) -> Result<i32, i32> {
    // SAFETY: as in try_connect4.
    let sa = unsafe { &mut *ctx.sock_addr };
    if !is_tcp(sa) {
        return Ok(PROCEED);
    }
    let words = get_ip6(sa);
    let port_be = sa.user_port;
    let addr = words_to_bytes(words);
    let port = u16::from_be(port_be as u16);

    // A dual-stack socket reaching an IPv4 destination uses ::ffff:a.b.c.d; it must obey the
    // IPv4 policy, and is redirected to the IPv4 listener in the same mapped form.
    if let Some(v4) = v4_mapped(addr) {
        if u32::from_ne_bytes(v4) == PROXY_ADDR_V4.load() && port_be == PROXY_PORT.load() {
            return Ok(PROCEED);
        }
        return match lookup_v4(port, v4) {
            Some(entry) if entry.action == Action::Redirect as u32 => {
                record(ctx, AF_INET, widen(v4), port, entry.resource_id)?;
                set_ip6(sa, v4_mapped_words(PROXY_ADDR_V4.load()));
                sa.user_port = PROXY_PORT.load();
                Ok(PROCEED)
            }
            Some(_) => Ok(PROCEED),
            None => Ok(egress_default(AF_INET, widen(v4), port)),
        };
    }

    let proxy6 = PROXY_ADDR_V6.load();
    if words == proxy6 && port_be == PROXY_PORT.load() {
        return Ok(PROCEED);
    }
    let key = Key::new(PORT_PREFIX_BITS + 128, resource_key_v6(port, addr));
    match RESOURCES_V6.get(&key).copied() {
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
        Some(_) => Ok(PROCEED),
        None => Ok(egress_default(AF_INET6, addr, port)),
    }
}

fn lookup_v4(port: u16, addr: [u8; 4]) -> Option<ResourceEntry> {
    let key = Key::new(PORT_PREFIX_BITS + 32, resource_key_v4(port, addr));
    RESOURCES_V4.get(&key).copied()
}

/// Not a listed resource nor an allowed destination: refuse under `egress: deny` and report it.
fn egress_default(family: u16, addr: [u8; 16], port: u16) -> i32 {
    if EGRESS_DENY.load() == 0 {
        return PROCEED;
    }
    if let Some(mut slot) = EVENTS.reserve::<DenyEvent>(0) {
        let (pid, tid) = pid_tid();
        let (uid, gid) = uid_gid();
        slot.write(DenyEvent {
            kind: EVENT_EGRESS_DENIED,
            family,
            dst_port: port,
            dst_addr: addr,
            pid,
            tid,
            uid,
            gid,
            // SAFETY: helper without pointer arguments.
            cgroup_id: unsafe { bpf_get_current_cgroup_id() },
            comm: bpf_get_current_comm().unwrap_or([0; 16]),
        });
        slot.submit(0);
    }
    // Refused even when the ring buffer is full: reporting is best effort, enforcement is not.
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
    let rec = ConnRecord {
        orig_addr: addr,
        orig_port: port,
        family,
        resource_id,
        pid,
        tid,
        uid,
        gid,
        // SAFETY: helper without pointer arguments.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    // SAFETY: the context pointer is the one the kernel passed to this program.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
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

fn rekey_by_client(ctx: &SockOpsContext) {
    // SAFETY: the context pointer is the one the kernel passed to this program.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // SAFETY: see restore_peer.
    let Some(rec) = (unsafe { BY_COOKIE.get(cookie) }).copied() else {
        return;
    };
    // local_port is host order in sock_ops (unlike remote_port).
    let port = ctx.local_port() as u16;
    let key = if u32::from(AF_INET) == ctx.family() {
        ClientKey::v4(ctx.local_ip4().to_ne_bytes(), port)
    } else {
        ClientKey::v6(words_to_bytes(ctx.local_ip6()), port)
    };
    let _ = BY_CLIENT.insert(key, rec, 0);
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

fn pid_tid() -> (u32, u32) {
    let v = bpf_get_current_pid_tgid();
    ((v >> 32) as u32, v as u32)
}

fn uid_gid() -> (u32, u32) {
    let v = bpf_get_current_uid_gid();
    (v as u32, (v >> 32) as u32)
}

fn widen(a: [u8; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0] = a[0];
    out[1] = a[1];
    out[2] = a[2];
    out[3] = a[3];
    out
}

fn words_to_bytes(w: [u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 4 {
        let b = w[i].to_ne_bytes();
        out[i * 4] = b[0];
        out[i * 4 + 1] = b[1];
        out[i * 4 + 2] = b[2];
        out[i * 4 + 3] = b[3];
        i += 1;
    }
    out
}

fn bytes_to_words(b: [u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
        u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
    ]
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
