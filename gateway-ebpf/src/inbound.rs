//! The inbound policy on packets arriving for the target's sockets (`cgroup_skb/ingress`).
//!
//! A bind to a fixed port is already refused (`bind4|6`), but `listen()` on an unbound socket
//! binds an ephemeral port on every address without a bind call. So connection requests (a TCP
//! SYN without ACK) from outside the host are dropped here under `inbound: loopback|deny`, as
//! are datagrams from anywhere the UDP policy would not let the target send to (its DNS
//! resolvers' answers come from an allowed destination and pass). Established connections the
//! target opened are untouched.

use aya_ebpf::{macros::cgroup_skb, programs::SkBuffContext};
use gateway_common::{AF_INET, AF_INET6, Action, PROTO_UDP, event, inbound};

use crate::{
    common::{EGRESS_DENY, INBOUND, Report, is_loopback_v4, is_loopback_v6, report_packet, widen},
    net::{lookup_v4, lookup_v6},
};

/// Return values of cgroup skb programs.
const PASS: i32 = 1;
const DROP: i32 = 0;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

#[cgroup_skb(ingress)]
pub fn sluice_ingress(ctx: SkBuffContext) -> i32 {
    if INBOUND.load() == inbound::ALLOW {
        return PASS;
    }
    inspect(&ctx).unwrap_or(DROP)
}

/// What an incoming packet is, as far as the inbound policy cares.
struct Packet {
    family: u16,
    addr: [u8; 16],
    loopback: bool,
    protocol: u8,
    /// Offset of the transport header.
    l4: usize,
    udp_allowed: bool,
}

fn inspect(ctx: &SkBuffContext) -> Result<i32, i64> {
    // cgroup skb programs see the packet from its network header.
    let version = ctx.load::<u8>(0)? >> 4;
    let p = match version {
        4 => {
            let ihl = (ctx.load::<u8>(0)? & 0x0f) as usize * 4;
            let protocol = ctx.load::<u8>(9)?;
            let src = ctx.load::<[u8; 4]>(12)?;
            let udp_allowed = protocol == IPPROTO_UDP && {
                let port = u16::from_be(ctx.load::<u16>(ihl)?);
                udp_source_allowed(lookup_v4(port, src).map(|e| (e.action, e.protocols)))
            };
            Packet {
                family: AF_INET,
                addr: widen(src),
                loopback: is_loopback_v4(src),
                protocol,
                l4: ihl,
                udp_allowed,
            }
        }
        6 => {
            let protocol = ctx.load::<u8>(6)?;
            let src = ctx.load::<[u8; 16]>(8)?;
            let udp_allowed = protocol == IPPROTO_UDP && {
                let port = u16::from_be(ctx.load::<u16>(40)?);
                let found = match gateway_common::v4_mapped(src) {
                    Some(v4) => lookup_v4(port, v4),
                    None => lookup_v6(port, src),
                };
                udp_source_allowed(found.map(|e| (e.action, e.protocols)))
            };
            Packet {
                family: AF_INET6,
                addr: src,
                loopback: is_loopback_v6(src),
                protocol,
                l4: 40,
                udp_allowed,
            }
        }
        _ => return Ok(DROP),
    };
    if p.loopback {
        return Ok(PASS);
    }
    let verdict = match p.protocol {
        IPPROTO_TCP => {
            let flags = ctx.load::<u8>(p.l4 + 13)?;
            if flags & TCP_SYN != 0 && flags & TCP_ACK == 0 {
                DROP
            } else {
                PASS
            }
        }
        IPPROTO_UDP if p.udp_allowed || EGRESS_DENY.load() == 0 => PASS,
        // Neighbour discovery and ICMP errors for the target's own connections.
        IPPROTO_ICMPV6 | 1 => PASS,
        // Anything else from outside (an IPv6 extension header in front of a TCP SYN...) is
        // not something the target asked for.
        _ => DROP,
    };
    if verdict == DROP {
        let mut r = Report::new(event::INBOUND_DROPPED);
        r.family = p.family;
        r.addr = p.addr;
        r.arg = u64::from(p.protocol);
        report_packet(r, ctx.get_socket_uid());
    }
    Ok(verdict)
}

/// A datagram's source is an allowed UDP destination (a resolver answering).
fn udp_source_allowed(entry: Option<(u32, u32)>) -> bool {
    matches!(entry, Some((action, protocols)) if action == Action::Allow as u32 && protocols & PROTO_UDP != 0)
}
