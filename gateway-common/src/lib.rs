//! Types shared by sluice's eBPF programs and its userspace.
//!
//! Everything here is `#[repr(C)]` plain data: the kernel side writes it into maps and the ring
//! buffer, userspace reads the same bytes back. The `user` feature adds `aya::Pod` so userspace
//! can use these types as map keys and values.
#![no_std]

/// `AF_INET`, as the kernel reports it in `bpf_sock_addr::user_family` and `bpf_sock_ops::family`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// Maximum entries in the connection-tracking LRU maps. Entries of connects that never reach the
/// proxy are evicted instead of leaking.
pub const CONN_MAP_ENTRIES: u32 = 65_536;
/// Maximum resource/allow entries per address family.
pub const RESOURCE_MAP_ENTRIES: u32 = 4_096;

/// What the connect hook does with a destination found in the resource trie.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Rewrite the destination to the sluice listener and record the original.
    Redirect = 1,
    /// Let the connect through untouched (DNS servers, explicitly allowed egress), for the
    /// transports in [`ResourceEntry::protocols`].
    Allow = 2,
    /// Refuse, whatever the egress mode: sluice's own listener and API ports. An agent that
    /// reached them directly could claim another connection's record or squat a port.
    Deny = 3,
    /// A listed resource's port on an address the policy does not list (prefix 0): refused
    /// under `egress: deny`, let through with an alert under `egress: allow` (monitoring mode).
    Monitor = 4,
}

/// [`ResourceEntry::protocols`] bit: TCP.
pub const PROTO_TCP: u32 = 1;
/// [`ResourceEntry::protocols`] bit: UDP.
pub const PROTO_UDP: u32 = 2;

/// Value of the resource LPM tries.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceEntry {
    /// Index of the resource in the loaded policy (meaningful for `Action::Redirect`).
    pub resource_id: u32,
    /// An [`Action`] as `u32` (enums are not safe to read from map memory).
    pub action: u32,
    /// For [`Action::Allow`]: the transports allowed, [`PROTO_TCP`] | [`PROTO_UDP`].
    pub protocols: u32,
}

/// Data part of an IPv4 LPM key: port first, so a key is "this port, then this prefix". The
/// prefix length of a key is therefore `16 + address prefix`.
pub type ResourceKeyV4 = [u8; 6];
/// Data part of an IPv6 LPM key, laid out like [`ResourceKeyV4`].
pub type ResourceKeyV6 = [u8; 18];

/// Bits of the port part of a resource key.
pub const PORT_PREFIX_BITS: u32 = 16;

/// Builds the data part of an IPv4 resource key. `addr` is in network order (as `Ipv4Addr::octets`).
pub const fn resource_key_v4(port: u16, addr: [u8; 4]) -> ResourceKeyV4 {
    let p = port.to_be_bytes();
    [p[0], p[1], addr[0], addr[1], addr[2], addr[3]]
}

/// Builds the data part of an IPv6 resource key.
pub const fn resource_key_v6(port: u16, addr: [u8; 16]) -> ResourceKeyV6 {
    let p = port.to_be_bytes();
    let mut key = [0u8; 18];
    key[0] = p[0];
    key[1] = p[1];
    let mut i = 0;
    while i < 16 {
        key[2 + i] = addr[i];
        i += 1;
    }
    key
}

/// What the connect hook learned about a redirected connection: the original destination and the
/// process that made it. Stored by socket cookie, then re-keyed by the client's address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnRecord {
    /// Original destination address; IPv4 (also IPv4-mapped IPv6) in the first 4 bytes.
    pub orig_addr: [u8; 16],
    /// Original destination port, host order.
    pub orig_port: u16,
    /// [`AF_INET`] or [`AF_INET6`] of `orig_addr`.
    pub family: u16,
    /// Index of the matched resource in the loaded policy.
    pub resource_id: u32,
    /// Thread-group id (the userspace "pid").
    pub pid: u32,
    /// Kernel task id (the userspace "tid").
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Leaf cgroup (v2) id of the connecting task.
    pub cgroup_id: u64,
    /// `comm` of the connecting task, NUL padded.
    pub comm: [u8; 16],
    /// Cookie of the agent's socket: the record lives exactly as long as that socket (it is
    /// removed when the socket closes), so it cannot be claimed by another connection later.
    pub cookie: u64,
    /// `bpf_ktime_get_ns()` at connect; userspace refuses records older than a bound.
    pub created_ns: u64,
}

/// Key of the by-client map: the client's local address as the proxy sees it in `getpeername()`.
/// IPv4-mapped IPv6 addresses are normalised to IPv4, because the proxy's IPv4 listener sees the
/// peer of such a socket as plain IPv4.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub addr: [u8; 16],
    /// Host order.
    pub port: u16,
    pub family: u16,
    pub _pad: u32,
}

impl ClientKey {
    pub const fn v4(addr: [u8; 4], port: u16) -> Self {
        let mut a = [0u8; 16];
        a[0] = addr[0];
        a[1] = addr[1];
        a[2] = addr[2];
        a[3] = addr[3];
        Self {
            addr: a,
            port,
            family: AF_INET,
            _pad: 0,
        }
    }

    pub const fn v6(addr: [u8; 16], port: u16) -> Self {
        match v4_mapped(addr) {
            Some(v4) => Self::v4(v4, port),
            None => Self {
                addr,
                port,
                family: AF_INET6,
                _pad: 0,
            },
        }
    }
}

/// The embedded IPv4 address of an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
pub const fn v4_mapped(addr: [u8; 16]) -> Option<[u8; 4]> {
    let mut i = 0;
    while i < 10 {
        if addr[i] != 0 {
            return None;
        }
        i += 1;
    }
    if addr[10] == 0xff && addr[11] == 0xff {
        Some([addr[12], addr[13], addr[14], addr[15]])
    } else {
        None
    }
}

/// What an [`Event`] reports: a refusal by a containment hook, or a monitoring alert.
pub mod event {
    /// A TCP connect refused by `egress: deny` (detail 1: to one of sluice's own ports).
    pub const EGRESS_DENIED: u16 = 1;
    /// A UDP connect or datagram to a destination the policy does not allow.
    pub const UDP_DENIED: u16 = 2;
    /// An inet socket of a kind the policy does not allow (raw, ICMP, SCTP, MPTCP...).
    pub const SOCKET_DENIED: u16 = 3;
    /// A bind refused by the inbound policy or to one of sluice's ports.
    pub const BIND_DENIED: u16 = 4;
    /// An incoming connection request (TCP SYN) or datagram dropped by the inbound policy.
    pub const INBOUND_DROPPED: u16 = 5;
    /// A write to a sysctl (`/proc/sys`).
    pub const SYSCTL_DENIED: u16 = 6;
    /// Access to a block device or to kernel memory, or creating a device node.
    pub const DEVICE_DENIED: u16 = 7;
    /// Monitoring mode (`egress: allow`): a connect to a listed resource's port on an address
    /// the policy does not list; let through, reported.
    pub const RESOURCE_PORT_UNLISTED: u16 = 8;
}

/// Something the kernel side refused (or, in monitoring mode, reported), with the process that
/// tried it; sent on the ring buffer for userspace to log and audit.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// An [`event`] constant.
    pub kind: u16,
    /// Kind-specific sub-reason.
    pub detail: u16,
    /// Address family of `addr`, when there is one.
    pub family: u16,
    /// Port, host order, when there is one.
    pub port: u16,
    /// An address, or (sysctl) the first bytes of a name.
    pub addr: [u8; 16],
    /// The process; 0 for packets (the hook runs in no process's context).
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    pub comm: [u8; 16],
    /// Kind-specific values (socket type and protocol, device numbers...).
    pub arg: u64,
    pub arg2: u64,
}

/// `inbound:` of a target, as the kernel side reads it.
pub mod inbound {
    /// No binds to a fixed port; no connection requests or unsolicited datagrams from outside
    /// the host.
    pub const DENY: u8 = 0;
    /// Binds to a fixed port only on loopback; connection requests and unsolicited datagrams
    /// only from loopback.
    pub const LOOPBACK: u8 = 1;
    pub const ALLOW: u8 = 2;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are `#[repr(C)]`, `Copy`, contain only integers and byte arrays, and
    // have no padding the kernel could leave uninitialised (checked by the size tests below).
    unsafe impl aya::Pod for super::ResourceEntry {}
    unsafe impl aya::Pod for super::ConnRecord {}
    unsafe impl aya::Pod for super::ClientKey {}
    unsafe impl aya::Pod for super::Event {}
}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::*;

    #[test]
    fn layouts_have_no_implicit_padding() {
        // Sums of field sizes: a mismatch means the compiler inserted padding, which the kernel
        // would not initialise and aya::Pod would expose.
        assert_eq!(size_of::<ResourceEntry>(), 4 + 4 + 4);
        assert_eq!(size_of::<ConnRecord>(), 16 + 2 + 2 + 4 * 5 + 8 + 16 + 8 + 8);
        assert_eq!(size_of::<ClientKey>(), 16 + 2 + 2 + 4);
        assert_eq!(size_of::<Event>(), 2 * 4 + 16 + 4 * 4 + 8 + 16 + 8 + 8);
    }

    #[test]
    fn resource_keys_put_the_port_first_in_network_order() {
        assert_eq!(
            resource_key_v4(5432, [10, 1, 2, 3]),
            [0x15, 0x38, 10, 1, 2, 3]
        );
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        let key = resource_key_v6(443, v6);
        assert_eq!(&key[..2], &[0x01, 0xbb]);
        assert_eq!(&key[2..], &v6);
    }

    #[test]
    fn client_key_normalises_v4_mapped_addresses() {
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(
            ClientKey::v6(mapped, 40000),
            ClientKey::v4([127, 0, 0, 1], 40000)
        );

        let mut loopback6 = [0u8; 16];
        loopback6[15] = 1;
        let key = ClientKey::v6(loopback6, 40000);
        assert_eq!(key.family, AF_INET6);
        assert_eq!(key.addr, loopback6);
    }

    #[test]
    fn v4_mapped_rejects_other_addresses() {
        let mut almost = [0u8; 16];
        almost[10] = 0xff; // only one of the two 0xff bytes
        assert_eq!(v4_mapped(almost), None);
        let mut compat = [0u8; 16];
        compat[12..].copy_from_slice(&[1, 2, 3, 4]); // deprecated v4-compatible form
        assert_eq!(v4_mapped(compat), None);
    }
}
