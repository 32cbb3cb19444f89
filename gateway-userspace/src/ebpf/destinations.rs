//! The allowed-destination maps of a target: resources, configured destinations and the
//! nameservers of `/etc/resolv.conf`.

use std::{
    fs,
    net::{IpAddr, SocketAddr},
};

use anyhow::Context;
use aya::{
    Ebpf,
    maps::lpm_trie::{Key, LpmTrie},
};
use gateway_common::{
    Action, PORT_PREFIX_BITS, PROTO_TCP, PROTO_UDP, ResourceEntry, ResourceKeyV4, ResourceKeyV6,
    resource_key_v4, resource_key_v6,
};
use tracing::debug;

use crate::config::{Config, Destination, Transport};

use super::ListenAddrs;

pub(super) fn fill_destinations(
    ebpf: &mut Ebpf,
    config: &Config,
    listen: ListenAddrs,
    own_addrs: &[SocketAddr],
) -> anyhow::Result<()> {
    let entry = |action: Action, resource_id: u32, protocols: u32| ResourceEntry {
        resource_id,
        action: action as u32,
        protocols,
    };
    let mut entries: Vec<(Destination, ResourceEntry)> = Vec::new();
    let mut resource_ports = std::collections::BTreeSet::new();
    for r in &config.resources {
        for d in &r.matches {
            entries.push((*d, entry(Action::Redirect, r.id, PROTO_TCP)));
            resource_ports.insert(d.port);
        }
    }
    // A listed resource's port on any other address: refused under `egress: deny`, reported
    // under `egress: allow` (the database reached over an address nobody listed).
    for port in resource_ports {
        for any in ["0.0.0.0/0", "::/0"] {
            entries.push((
                Destination {
                    net: any.parse().expect("valid prefix"),
                    port,
                },
                entry(Action::Monitor, u32::MAX, 0),
            ));
        }
    }
    for d in &config.egress.allow {
        let protocols = match d.transport {
            Transport::Tcp => PROTO_TCP,
            Transport::Udp => PROTO_UDP,
        };
        entries.push((d.destination, entry(Action::Allow, u32::MAX, protocols)));
    }
    if config.egress.dns {
        for ns in resolv_conf_nameservers() {
            entries.push((ns, entry(Action::Allow, u32::MAX, PROTO_TCP | PROTO_UDP)));
        }
    }
    // sluice's own listening addresses, also the loopback forms a dual-stack agent might use.
    // An unspecified address (an API on 0.0.0.0) is refused on every address.
    let mut own: Vec<SocketAddr> = vec![listen.v4];
    own.extend(listen.v6);
    own.extend_from_slice(own_addrs);
    for a in own {
        let net = if a.ip().is_unspecified() {
            if a.is_ipv4() { "0.0.0.0/0" } else { "::/0" }
                .parse()
                .expect("valid prefix")
        } else {
            a.ip().into()
        };
        entries.push((
            Destination {
                net,
                port: a.port(),
            },
            entry(Action::Deny, u32::MAX, PROTO_TCP | PROTO_UDP),
        ));
    }

    let mut v4: LpmTrie<_, ResourceKeyV4, ResourceEntry> = LpmTrie::try_from(
        ebpf.map_mut("RESOURCES_V4")
            .context("RESOURCES_V4 missing")?,
    )?;
    for (d, e) in &entries {
        if let IpAddr::V4(a) = d.net.addr() {
            let key = Key::new(
                PORT_PREFIX_BITS + u32::from(d.net.prefix_len()),
                resource_key_v4(d.port, a.octets()),
            );
            v4.insert(&key, e, 0)?;
        }
    }
    let mut v6: LpmTrie<_, ResourceKeyV6, ResourceEntry> = LpmTrie::try_from(
        ebpf.map_mut("RESOURCES_V6")
            .context("RESOURCES_V6 missing")?,
    )?;
    for (d, e) in &entries {
        if let IpAddr::V6(a) = d.net.addr() {
            let key = Key::new(
                PORT_PREFIX_BITS + u32::from(d.net.prefix_len()),
                resource_key_v6(d.port, a.octets()),
            );
            v6.insert(&key, e, 0)?;
        }
    }
    debug!(entries = entries.len(), "destination maps filled");
    Ok(())
}

/// Port 53 (TCP and UDP) of the configured nameservers stays reachable under `egress: deny`.
fn resolv_conf_nameservers() -> Vec<Destination> {
    let text = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| Destination {
            net: ip.into(),
            port: 53,
        })
        .collect()
}
