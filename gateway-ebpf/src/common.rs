//! What every program shares: the target's settings (globals set by the loader), the maps, the
//! identity of the current task, and reporting.

use aya_ebpf::{
    Global,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::bpf_get_current_cgroup_id,
    },
    macros::map,
    maps::{LpmTrie, LruHashMap, RingBuf},
};
use gateway_common::{
    CONN_MAP_ENTRIES, ClientKey, ConnRecord, Event, RESOURCE_MAP_ENTRIES, ResourceEntry,
    ResourceKeyV4, ResourceKeyV6,
};

/// Return values of cgroup sock_addr and sock programs: 1 lets the call proceed, 0 fails it
/// with EPERM.
pub const PROCEED: i32 = 1;
pub const REFUSE: i32 = 0;

/// Sluice's IPv4 listener address, network order (as in `bpf_sock_addr::user_ip4`).
#[unsafe(no_mangle)]
pub static PROXY_ADDR_V4: Global<u32> = Global::new(0);
/// Sluice's IPv6 listener address, network order words (as in `bpf_sock_addr::user_ip6`).
#[unsafe(no_mangle)]
pub static PROXY_ADDR_V6: Global<[u32; 4]> = Global::new([0; 4]);
/// Sluice's listener port, network order in the low 16 bits (as in `bpf_sock_addr::user_port`).
#[unsafe(no_mangle)]
pub static PROXY_PORT: Global<u32> = Global::new(0);
/// 1 when this cgroup's policy is `egress: deny`.
#[unsafe(no_mangle)]
pub static EGRESS_DENY: Global<u8> = Global::new(0);
/// `inbound:` of this target ([`gateway_common::inbound`]).
#[unsafe(no_mangle)]
pub static INBOUND: Global<u8> = Global::new(gateway_common::inbound::LOOPBACK);
/// Ports sluice itself listens on (host order; 0 = unused): never bindable from the target.
#[unsafe(no_mangle)]
pub static SLUICE_PORTS: Global<[u16; 4]> = Global::new([0; 4]);
#[map]
pub static RESOURCES_V4: LpmTrie<ResourceKeyV4, ResourceEntry> =
    LpmTrie::with_max_entries(RESOURCE_MAP_ENTRIES, 0);
#[map]
pub static RESOURCES_V6: LpmTrie<ResourceKeyV6, ResourceEntry> =
    LpmTrie::with_max_entries(RESOURCE_MAP_ENTRIES, 0);
/// Socket cookie → record, written at connect; read by sock_ops and getpeername. Pinned by name,
/// so a gateway that takes over from a dead one shares it: a connect redirected by the old
/// programs is still recognised (and served) by the new ones.
#[map]
pub static BY_COOKIE: LruHashMap<u64, ConnRecord> = LruHashMap::pinned(CONN_MAP_ENTRIES, 0);
/// Client local address → record, written at established, removed when the agent's socket
/// closes; read (and deleted) by the proxy. Pinned like [`BY_COOKIE`].
#[map]
pub static BY_CLIENT: LruHashMap<ClientKey, ConnRecord> = LruHashMap::pinned(CONN_MAP_ENTRIES, 0);
/// Refusals and alerts for userspace to log and audit.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);
pub fn pid_tid() -> (u32, u32) {
    let v = bpf_get_current_pid_tgid();
    ((v >> 32) as u32, v as u32)
}

pub fn uid_gid() -> (u32, u32) {
    let v = bpf_get_current_uid_gid();
    (v as u32, (v >> 32) as u32)
}

pub fn current_cgroup() -> u64 {
    // SAFETY: helper without pointer arguments.
    unsafe { bpf_get_current_cgroup_id() }
}

/// What an event says besides the process.
pub struct Report {
    pub kind: u16,
    pub detail: u16,
    pub family: u16,
    pub port: u16,
    pub addr: [u8; 16],
    pub arg: u64,
    pub arg2: u64,
}

impl Report {
    pub const fn new(kind: u16) -> Report {
        Report {
            kind,
            detail: 0,
            family: 0,
            port: 0,
            addr: [0; 16],
            arg: 0,
            arg2: 0,
        }
    }

    /// A report about a destination or a bound address.
    pub const fn at(kind: u16, family: u16, addr: [u8; 16], port: u16) -> Report {
        let mut r = Report::new(kind);
        r.family = family;
        r.addr = addr;
        r.port = port;
        r
    }
}

/// Reports a refusal with the current process. Best effort (a full ring buffer drops the
/// report); enforcement never depends on it.
pub fn report(r: Report) {
    let (pid, tid) = pid_tid();
    let (uid, gid) = uid_gid();
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    submit(r, pid, tid, uid, gid, current_cgroup(), comm);
}

/// Reports something that happened in no process's context (a packet); `uid` is the socket's.
pub fn report_packet(r: Report, uid: u32) {
    submit(r, 0, 0, uid, 0, 0, [0; 16]);
}

fn submit(r: Report, pid: u32, tid: u32, uid: u32, gid: u32, cgroup_id: u64, comm: [u8; 16]) {
    if let Some(mut slot) = EVENTS.reserve::<Event>(0) {
        slot.write(Event {
            kind: r.kind,
            detail: r.detail,
            family: r.family,
            port: r.port,
            addr: r.addr,
            pid,
            tid,
            uid,
            gid,
            cgroup_id,
            comm,
            arg: r.arg,
            arg2: r.arg2,
        });
        slot.submit(0);
    }
}

pub fn widen(a: [u8; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0] = a[0];
    out[1] = a[1];
    out[2] = a[2];
    out[3] = a[3];
    out
}

pub fn words_to_bytes(w: [u32; 4]) -> [u8; 16] {
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

pub fn bytes_to_words(b: [u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
        u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
    ]
}

/// IPv4 loopback (127.0.0.0/8), from network-order bytes.
pub fn is_loopback_v4(a: [u8; 4]) -> bool {
    a[0] == 127
}

/// `::1`, or an IPv4-mapped loopback address.
pub fn is_loopback_v6(a: [u8; 16]) -> bool {
    if let Some(v4) = gateway_common::v4_mapped(a) {
        return is_loopback_v4(v4);
    }
    let mut i = 0;
    while i < 15 {
        if a[i] != 0 {
            return false;
        }
        i += 1;
    }
    a[15] == 1
}

/// Whether `port` (host order) is one of sluice's own.
pub fn is_sluice_port(port: u16) -> bool {
    if port == 0 {
        return false;
    }
    let ports = SLUICE_PORTS.load();
    ports[0] == port || ports[1] == port || ports[2] == port || ports[3] == port
}
