//! Loads sluice's eBPF programs into an intercepted cgroup and reads what they record.
//!
//! One object is loaded per target: its globals hold that target's listener and egress mode and
//! its maps hold that target's connections. Links are pinned in bpffs so that a crashed gateway
//! leaves the redirect in place: connects then fail with "connection refused" instead of reaching
//! the real destination (fail closed). A graceful stop unpins and so detaches them.

pub mod cgroup;

use std::{
    fs,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::{Context, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{
        HashMap, MapData, RingBuf,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{
        CgroupAttachMode, CgroupSockAddr, SockOps,
        links::{FdLink, PinnedLink},
    },
};
use gateway_common::{
    Action, ClientKey, ConnRecord, PORT_PREFIX_BITS, ResourceEntry, ResourceKeyV4, ResourceKeyV6,
    resource_key_v4, resource_key_v6,
};
use tracing::{debug, info, warn};

use crate::{
    config::{Config, Destination, EgressMode, Target},
    conn::ClientAddr,
};

/// The compiled programs, built by build.rs from the gateway-ebpf crate.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gateway-ebpf"));

/// Where sluice pins its links; one directory per target.
pub const PIN_ROOT: &str = "/sys/fs/bpf/sluice";

const CGROUP_PROGRAMS: [&str; 4] = [
    "sluice_connect4",
    "sluice_connect6",
    "sluice_getpeername4",
    "sluice_getpeername6",
];
const SOCK_OPS_PROGRAM: &str = "sluice_sock_ops";

/// The listener addresses the kernel rewrites redirected connects to.
#[derive(Clone, Copy, Debug)]
pub struct ListenAddrs {
    pub v4: SocketAddr,
    pub v6: Option<SocketAddr>,
}

/// The programs attached to one target's cgroup.
pub struct Interceptor {
    pub target: Target,
    pub cgroup_dir: PathBuf,
    pin_dir: PathBuf,
    links: Vec<PinnedLink>,
    by_client: Mutex<HashMap<MapData, ClientKey, ConnRecord>>,
    events: Option<RingBuf<MapData>>,
    /// Keeps the programs and remaining maps loaded for as long as the interceptor lives.
    _ebpf: Ebpf,
}

/// Pin directory of a target.
pub fn pin_dir(target: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(target)
}

fn ensure_bpffs() -> anyhow::Result<()> {
    let mounts = fs::read_to_string("/proc/self/mounts")?;
    let mounted = mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 2 && f[1] == "/sys/fs/bpf" && f[2] == "bpf"
    });
    if !mounted {
        bail!(
            "bpffs is not mounted at /sys/fs/bpf; sluice pins its links there so interception \
             fails closed if the gateway dies. Run `mount -t bpf bpf /sys/fs/bpf` (cargo xtask setup does)"
        );
    }
    Ok(())
}

/// Kernel-side log level: debug statements only, forwarded when debug logging is on.
fn kernel_log_level() -> u8 {
    if tracing::enabled!(target: "sluice::ebpf::kernel", tracing::Level::DEBUG) {
        4 // aya_log_common::Level::Debug
    } else {
        0
    }
}

impl Interceptor {
    /// Loads the programs for `target`, fills the resource maps from `config` and attaches to
    /// `cgroup_dir`, replacing the pins of a previous (crashed) gateway without a gap.
    pub fn attach(
        target: &Target,
        cgroup_dir: &Path,
        listen: ListenAddrs,
        config: &Config,
    ) -> anyhow::Result<Interceptor> {
        ensure_bpffs()?;
        let SocketAddr::V4(v4) = listen.v4 else {
            bail!("the IPv4 listener must be an IPv4 address")
        };
        // Globals are compared with raw context fields, which hold network-order bytes.
        let proxy_v4 = u32::from_ne_bytes(v4.ip().octets());
        let proxy_port = u32::from(listen.v4.port().to_be());
        let proxy_v6: [u32; 4] = match listen.v6 {
            Some(SocketAddr::V6(a)) => {
                let o = a.ip().octets();
                std::array::from_fn(|i| {
                    u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
                })
            }
            _ => [0; 4],
        };
        let egress_deny = u8::from(target.egress == EgressMode::Deny);
        let log_level = kernel_log_level();

        let mut ebpf = EbpfLoader::new()
            .override_global("PROXY_ADDR_V4", &proxy_v4, true)
            .override_global("PROXY_ADDR_V6", &proxy_v6, true)
            .override_global("PROXY_PORT", &proxy_port, true)
            .override_global("EGRESS_DENY", &egress_deny, true)
            .override_global("AYA_LOG_LEVEL", &log_level, false)
            .load(EBPF_OBJECT)
            .context("loading the eBPF object")?;
        if log_level > 0 {
            spawn_kernel_logger(&mut ebpf);
        }

        fill_destinations(&mut ebpf, config)?;

        let cgroup = fs::File::open(cgroup_dir)
            .with_context(|| format!("opening cgroup {}", cgroup_dir.display()))?;
        let mut new_links: Vec<(&str, FdLink)> = Vec::new();
        for name in CGROUP_PROGRAMS {
            let prog: &mut CgroupSockAddr = ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing from the object"))?
                .try_into()?;
            prog.load()
                .with_context(|| format!("verifier refused {name}"))?;
            let id = prog
                .attach(&cgroup, CgroupAttachMode::Single)
                .with_context(|| format!("attaching {name} to {}", cgroup_dir.display()))?;
            new_links.push((name, prog.take_link(id)?.try_into()?));
        }
        let prog: &mut SockOps = ebpf
            .program_mut(SOCK_OPS_PROGRAM)
            .context("sock_ops program missing from the object")?
            .try_into()?;
        prog.load()
            .context("verifier refused the sock_ops program")?;
        let id = prog
            .attach(&cgroup, CgroupAttachMode::Single)
            .with_context(|| format!("attaching sock_ops to {}", cgroup_dir.display()))?;
        new_links.push((SOCK_OPS_PROGRAM, prog.take_link(id)?.try_into()?));

        // Pins of a gateway that died: take them over. The new links are already attached, and
        // the old programs let connects to the listener through, so dropping the old links
        // after pinning the new ones leaves no moment without interception.
        let pin_dir = pin_dir(&target.name);
        fs::create_dir_all(&pin_dir).with_context(|| format!("creating {}", pin_dir.display()))?;
        let mut stale = Vec::new();
        for entry in fs::read_dir(&pin_dir)? {
            let path = entry?.path();
            match PinnedLink::from_pin(&path) {
                Ok(old) => stale.push(old.unpin()?),
                Err(e) => warn!(path = %path.display(), error = %e, "removing unreadable pin"),
            }
            let _ = fs::remove_file(&path);
        }
        if !stale.is_empty() {
            warn!(event = "stale_pins_replaced", target = %target.name, links = stale.len(),
                  "replaced the links of a gateway that did not stop cleanly");
        }
        let mut links = Vec::new();
        for (name, link) in new_links {
            links.push(
                link.pin(pin_dir.join(name))
                    .with_context(|| format!("pinning {name}"))?,
            );
        }
        drop(stale);

        let by_client = HashMap::try_from(
            ebpf.take_map("BY_CLIENT")
                .context("BY_CLIENT map missing")?,
        )?;
        let events = RingBuf::try_from(ebpf.take_map("EVENTS").context("EVENTS map missing")?)?;
        info!(event = "attached", target = %target.name, cgroup = %cgroup_dir.display(),
              egress = ?target.egress, "intercepting connects");
        Ok(Interceptor {
            target: target.clone(),
            cgroup_dir: cgroup_dir.to_path_buf(),
            pin_dir,
            links,
            by_client: Mutex::new(by_client),
            events: Some(events),
            _ebpf: ebpf,
        })
    }

    /// The kernel's record of a redirected connection, consumed: each accepted connection is
    /// looked up once.
    pub fn take_record(&self, client: &ClientAddr) -> Option<ConnRecord> {
        let key = client.map_key();
        let mut map = self.by_client.lock().unwrap_or_else(|p| p.into_inner());
        let rec = map.get(&key, 0).ok()?;
        let _ = map.remove(&key);
        Some(rec)
    }

    /// The egress-refusal ring buffer (once).
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }

    /// Detaches the programs (unpins the links) and removes the pin directory.
    pub fn detach(self) -> anyhow::Result<()> {
        for link in self.links {
            // Unpinning removes the bpffs file; dropping the returned fd detaches the link.
            drop(link.unpin()?);
        }
        let _ = fs::remove_dir(&self.pin_dir);
        info!(event = "detached", target = %self.target.name, "interception removed");
        Ok(())
    }
}

/// Detaches links left pinned by a gateway that did not stop cleanly (`sluice cleanup`).
pub fn remove_stale_pins(target: &str) -> anyhow::Result<usize> {
    let dir = pin_dir(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(0);
    };
    let mut n = 0;
    for entry in entries {
        let path = entry?.path();
        if let Ok(link) = PinnedLink::from_pin(&path) {
            drop(link.unpin()?);
            n += 1;
        } else {
            fs::remove_file(&path)?;
        }
    }
    let _ = fs::remove_dir(&dir);
    Ok(n)
}

fn fill_destinations(ebpf: &mut Ebpf, config: &Config) -> anyhow::Result<()> {
    let mut v4: LpmTrie<_, ResourceKeyV4, ResourceEntry> = LpmTrie::try_from(
        ebpf.map_mut("RESOURCES_V4")
            .context("RESOURCES_V4 missing")?,
    )?;
    let mut entries: Vec<(Destination, ResourceEntry)> = Vec::new();
    for r in &config.resources {
        for d in &r.matches {
            entries.push((
                *d,
                ResourceEntry {
                    resource_id: r.id,
                    action: Action::Redirect as u32,
                },
            ));
        }
    }
    let mut allow = config.egress.allow.clone();
    if config.egress.dns {
        allow.extend(resolv_conf_nameservers());
    }
    for d in allow {
        entries.push((
            d,
            ResourceEntry {
                resource_id: u32::MAX,
                action: Action::Allow as u32,
            },
        ));
    }
    for (d, entry) in &entries {
        if let IpAddr::V4(a) = d.net.addr() {
            let key = Key::new(
                PORT_PREFIX_BITS + u32::from(d.net.prefix_len()),
                resource_key_v4(d.port, a.octets()),
            );
            v4.insert(&key, entry, 0)?;
        }
    }
    let mut v6: LpmTrie<_, ResourceKeyV6, ResourceEntry> = LpmTrie::try_from(
        ebpf.map_mut("RESOURCES_V6")
            .context("RESOURCES_V6 missing")?,
    )?;
    for (d, entry) in &entries {
        if let IpAddr::V6(a) = d.net.addr() {
            let key = Key::new(
                PORT_PREFIX_BITS + u32::from(d.net.prefix_len()),
                resource_key_v6(d.port, a.octets()),
            );
            v6.insert(&key, entry, 0)?;
        }
    }
    debug!(entries = entries.len(), "destination maps filled");
    Ok(())
}

/// TCP port 53 of the configured nameservers stays reachable under `egress: deny` (large DNS
/// answers fall back to TCP).
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

fn spawn_kernel_logger(ebpf: &mut Ebpf) {
    match aya_log::EbpfLogger::init(ebpf) {
        Ok(logger) => {
            tokio::spawn(async move {
                let Ok(mut fd) = watch_readable(logger) else {
                    return;
                };
                loop {
                    let Ok(mut guard) = fd.readable_mut().await else {
                        return;
                    };
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
            });
        }
        Err(e) => warn!(error = %e, "kernel-side logging unavailable"),
    }
}

/// Registers an aya object that owns its file descriptor (a ring buffer map, the kernel logger)
/// with tokio's reactor for readability.
pub fn watch_readable<T: std::os::fd::AsRawFd>(
    inner: T,
) -> std::io::Result<tokio::io::unix::AsyncFd<T>> {
    // Tokio's safe constructors are deprecated for lacking I/O safety; the unsafe one asks that
    // the fd stay open and unchanged while registered.
    #[allow(unsafe_code)]
    // SAFETY: aya's `RingBuf<MapData>` and `EbpfLogger` hold an `OwnedFd` for their whole life
    // and `as_raw_fd` always returns it; the `AsyncFd` owns `inner`, so it cannot close first.
    let fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(inner, tokio::io::Interest::READABLE)
    };
    fd.map_err(std::io::Error::from)
}
