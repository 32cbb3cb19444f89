//! Loads sluice's eBPF programs into an intercepted cgroup and reads what they record.
//!
//! One object is loaded per target: its globals hold that target's listener, egress and inbound
//! modes, its maps that target's connections and allowed destinations. The programs govern the
//! target's own sockets (egress, binds, inbound packets, socket kinds) and its tasks' access to
//! sysctls and devices. Every link is pinned in bpffs, so neither a crash nor a stop of the
//! gateway releases an agent: connects to resources then fail with "connection refused" and
//! everything else stays refused (fail closed). Only `sluice cleanup --detach` removes
//! interception.

pub mod cgroup;
mod destinations;
mod pins;
pub mod sys;

use std::{
    fs,
    net::SocketAddr,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use anyhow::{Context, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, RingBuf},
    programs::{
        CgroupAttachMode, CgroupDevice, CgroupSkb, CgroupSkbAttachType, CgroupSock, CgroupSockAddr,
        CgroupSysctl, SockOps,
        links::{FdLink, PinnedLink},
    },
};
use gateway_common::{ClientKey, ConnRecord, inbound};
use tracing::{info, warn};

use crate::{
    config::{Config, EgressMode, InboundMode, Target, UnixMode},
    conn::ClientAddr,
};

use destinations::fill_destinations;
use pins::{ensure_bpffs, maps_dir, private_dir, remove_other_map_dirs, remove_pins};
pub use pins::{has_pins, pin_dir, remove_stale_pins};

/// The compiled programs, built by build.rs from the gateway-ebpf crate.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gateway-ebpf"));

/// Where sluice pins its links and shared maps; one directory per target, root-only.
pub const PIN_ROOT: &str = "/sys/fs/bpf/sluice";

/// How a program is loaded and attached.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    SockAddr,
    SockCreate,
    SockOps,
    Ingress,
    Sysctl,
    Device,
}

/// Every program, with its kind and kernel attach type (for `BPF_PROG_QUERY`).
const PROGRAMS: [(&str, Kind, u32); 13] = [
    ("sluice_connect4", Kind::SockAddr, 10),
    ("sluice_connect6", Kind::SockAddr, 11),
    ("sluice_getpeername4", Kind::SockAddr, 29),
    ("sluice_getpeername6", Kind::SockAddr, 30),
    ("sluice_sendmsg4", Kind::SockAddr, 14),
    ("sluice_sendmsg6", Kind::SockAddr, 15),
    ("sluice_bind4", Kind::SockAddr, 8),
    ("sluice_bind6", Kind::SockAddr, 9),
    ("sluice_sock_create", Kind::SockCreate, 2),
    ("sluice_sock_ops", Kind::SockOps, 3),
    ("sluice_ingress", Kind::Ingress, 0),
    ("sluice_sysctl", Kind::Sysctl, 18),
    ("sluice_device", Kind::Device, 6),
];

/// The unix-socket hooks (Linux 6.7): connect and unconnected send by path or abstract name.
const UNIX_PROGRAMS: [(&str, u32); 2] = [("sluice_unix_connect", 49), ("sluice_unix_sendmsg", 50)];

/// A record older than this was not accepted in time (or belongs to a connection that went
/// elsewhere): refused. Connect-to-accept takes microseconds; a deep accept queue under load,
/// seconds.
const RECORD_MAX_AGE: Duration = Duration::from_secs(60);

/// The listener addresses the kernel rewrites redirected connects to.
#[derive(Clone, Copy, Debug)]
pub struct ListenAddrs {
    pub v4: SocketAddr,
    pub v6: Option<SocketAddr>,
}

/// What to attach for one target.
pub struct AttachPlan<'a> {
    pub target: &'a Target,
    pub cgroup_dir: &'a Path,
    pub listen: ListenAddrs,
    pub config: &'a Config,
    /// sluice's other listening addresses (the approval API): never reachable nor bindable from
    /// the target.
    pub own_addrs: &'a [SocketAddr],
}

/// The programs attached to one target's cgroup.
pub struct Interceptor {
    pub target: Target,
    pub cgroup_dir: PathBuf,
    pin_dir: PathBuf,
    links: Vec<(PathBuf, PinnedLink)>,
    /// (attach type, program id, name) of each program, to check they stay attached.
    attached: Vec<(u32, u32, &'static str)>,
    by_client: Mutex<HashMap<MapData, ClientKey, ConnRecord>>,
    events: Option<RingBuf<MapData>>,
    /// The loaded unix-socket programs (not part of the aya object), to re-attach them.
    unix_programs: Vec<(&'static str, u32, OwnedFd)>,
    /// Keeps the programs and remaining maps loaded for as long as the interceptor lives.
    ebpf: Ebpf,
}

/// Kernel-side log level: debug statements only, forwarded when debug logging is on.
fn kernel_log_level() -> u8 {
    if tracing::enabled!(target: "sluice::ebpf::kernel", tracing::Level::DEBUG) {
        4 // aya_log_common::Level::Debug
    } else {
        0
    }
}

/// A link attached but not pinned yet.
enum NewLink {
    Aya(FdLink),
    Raw(OwnedFd),
}

impl NewLink {
    fn pin(self, path: &Path) -> anyhow::Result<PinnedLink> {
        match self {
            NewLink::Aya(link) => Ok(link.pin(path)?),
            NewLink::Raw(fd) => {
                sys::obj_pin(&fd, path)?;
                Ok(PinnedLink::from_pin(path)?)
            }
        }
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    Ok(ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the object"))?
        .try_into()?)
}

/// Loads a program and returns its kernel id.
fn load(ebpf: &mut Ebpf, name: &str, kind: Kind) -> anyhow::Result<u32> {
    let loaded = match kind {
        Kind::SockAddr => {
            let p: &mut CgroupSockAddr = program(ebpf, name)?;
            p.load().and_then(|()| p.info())
        }
        Kind::SockCreate => {
            let p: &mut CgroupSock = program(ebpf, name)?;
            p.load().and_then(|()| p.info())
        }
        Kind::SockOps => {
            let p: &mut SockOps = program(ebpf, name)?;
            p.load().and_then(|()| p.info())
        }
        Kind::Ingress => {
            let p: &mut CgroupSkb = program(ebpf, name)?;
            p.load().and_then(|()| p.info())
        }
        Kind::Sysctl => {
            let p: &mut CgroupSysctl = program(ebpf, name)?;
            p.load().and_then(|()| p.info())
        }
        Kind::Device => {
            let p: &mut CgroupDevice = program(ebpf, name)?;
            p.load().and_then(|()| p.info())
        }
    };
    Ok(loaded
        .with_context(|| format!("verifier refused {name}"))?
        .id())
}

/// Attaches a loaded program to a cgroup (as a link, alongside whatever else is attached).
fn attach(
    ebpf: &mut Ebpf,
    name: &str,
    kind: Kind,
    attach_type: u32,
    cgroup: &fs::File,
) -> anyhow::Result<NewLink> {
    let mode = CgroupAttachMode::Single;
    Ok(match kind {
        Kind::SockAddr => {
            let p: &mut CgroupSockAddr = program(ebpf, name)?;
            let id = p.attach(cgroup, mode)?;
            NewLink::Aya(p.take_link(id)?.try_into()?)
        }
        Kind::SockCreate => {
            let p: &mut CgroupSock = program(ebpf, name)?;
            let id = p.attach(cgroup, mode)?;
            NewLink::Aya(p.take_link(id)?.try_into()?)
        }
        Kind::SockOps => {
            let p: &mut SockOps = program(ebpf, name)?;
            let id = p.attach(cgroup, mode)?;
            NewLink::Aya(p.take_link(id)?.try_into()?)
        }
        Kind::Ingress => {
            let p: &mut CgroupSkb = program(ebpf, name)?;
            let id = p.attach(cgroup, CgroupSkbAttachType::Ingress, mode)?;
            NewLink::Aya(p.take_link(id)?.try_into()?)
        }
        Kind::Sysctl => {
            let p: &mut CgroupSysctl = program(ebpf, name)?;
            NewLink::Raw(sys::link_create(p.fd()?, cgroup, attach_type)?)
        }
        Kind::Device => {
            let p: &mut CgroupDevice = program(ebpf, name)?;
            NewLink::Raw(sys::link_create(p.fd()?, cgroup, attach_type)?)
        }
    })
}

impl Interceptor {
    /// Loads the programs for a target, fills its maps and attaches to its cgroup, replacing the
    /// pins of a previous gateway without a gap.
    pub fn attach(plan: &AttachPlan<'_>) -> anyhow::Result<Interceptor> {
        let AttachPlan {
            target,
            cgroup_dir,
            listen,
            config,
            ..
        } = *plan;
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
        let inbound_mode = match target.inbound {
            InboundMode::Deny => inbound::DENY,
            InboundMode::Loopback => inbound::LOOPBACK,
            InboundMode::Allow => inbound::ALLOW,
        };
        let mut sluice_ports = [0u16; 4];
        for (slot, port) in sluice_ports
            .iter_mut()
            .zip(std::iter::once(listen.v4.port()).chain(plan.own_addrs.iter().map(|a| a.port())))
        {
            *slot = port;
        }
        let log_level = kernel_log_level();

        let pin_dir = pin_dir(&target.name);
        private_dir(Path::new(PIN_ROOT))?;
        private_dir(&pin_dir)?;
        let maps_dir = maps_dir(&pin_dir);
        remove_other_map_dirs(&pin_dir, &maps_dir);
        private_dir(&maps_dir)?;

        let mut ebpf = EbpfLoader::new()
            .override_global("PROXY_ADDR_V4", &proxy_v4, true)
            .override_global("PROXY_ADDR_V6", &proxy_v6, true)
            .override_global("PROXY_PORT", &proxy_port, true)
            .override_global("EGRESS_DENY", &egress_deny, true)
            .override_global("INBOUND", &inbound_mode, true)
            .override_global("SLUICE_PORTS", &sluice_ports, true)
            .override_global("AYA_LOG_LEVEL", &log_level, false)
            .default_map_pin_directory(&maps_dir)
            .load(EBPF_OBJECT)
            .context("loading the eBPF object")?;
        if log_level > 0 {
            spawn_kernel_logger(&mut ebpf);
        }

        fill_destinations(&mut ebpf, config, listen, plan.own_addrs)?;

        let cgroup = fs::File::open(cgroup_dir)
            .with_context(|| format!("opening cgroup {}", cgroup_dir.display()))?;
        let mut new_links = Vec::new();
        let mut attached = Vec::new();
        for (name, kind, attach_type) in PROGRAMS {
            let id = load(&mut ebpf, name, kind)?;
            attached.push((attach_type, id, name));
            let link = attach(&mut ebpf, name, kind, attach_type, &cgroup)
                .with_context(|| format!("attaching {name} to {}", cgroup_dir.display()))?;
            new_links.push((name, link));
        }
        let mut unix_programs = Vec::new();
        if target.unix == UnixMode::Deny {
            for (name, attach_type) in UNIX_PROGRAMS {
                let refuse =
                    sys::load_constant_sock_addr(name, attach_type, 0).with_context(|| {
                        format!(
                            "loading {name}: this kernel may lack the unix-socket cgroup hooks \
                         (Linux 6.7); give target `{}` `unix: allow` to run without them",
                            target.name
                        )
                    })?;
                attached.push((attach_type, sys::program_id(&refuse)?, name));
                let link = sys::link_create(&refuse, &cgroup, attach_type)
                    .with_context(|| format!("attaching {name} to {}", cgroup_dir.display()))?;
                new_links.push((name, NewLink::Raw(link)));
                unix_programs.push((name, attach_type, refuse));
            }
        }

        // Pins of a gateway that stopped or died: take them over. The new links are already
        // attached, and the old programs let connects redirected by the new ones through (the
        // record maps are shared), so dropping the old links after pinning the new ones leaves
        // no moment without interception.
        let mut stale = Vec::new();
        for entry in fs::read_dir(&pin_dir)? {
            let path = entry?.path();
            if path.is_dir() {
                continue;
            }
            match PinnedLink::from_pin(&path) {
                Ok(old) => stale.push(old.unpin()?),
                Err(e) => warn!(path = %path.display(), error = %e, "removing unreadable pin"),
            }
            let _ = fs::remove_file(&path);
        }
        if !stale.is_empty() {
            warn!(event = "stale_pins_replaced", target = %target.name, links = stale.len(),
                  "took over the links of a gateway that is no longer running");
        }
        let mut links = Vec::new();
        for (name, link) in new_links {
            let path = pin_dir.join(name);
            let pinned = link.pin(&path).with_context(|| format!("pinning {name}"))?;
            links.push((path, pinned));
        }
        drop(stale);

        let by_client = HashMap::try_from(
            ebpf.take_map("BY_CLIENT")
                .context("BY_CLIENT map missing")?,
        )?;
        let events = RingBuf::try_from(ebpf.take_map("EVENTS").context("EVENTS map missing")?)?;
        info!(event = "attached", target = %target.name, cgroup = %cgroup_dir.display(),
              egress = ?target.egress, inbound = ?target.inbound, "intercepting the target");
        Ok(Interceptor {
            target: target.clone(),
            cgroup_dir: cgroup_dir.to_path_buf(),
            pin_dir,
            links,
            attached,
            by_client: Mutex::new(by_client),
            events: Some(events),
            unix_programs,
            ebpf,
        })
    }

    /// The kernel's record of a redirected connection, consumed: each accepted connection is
    /// looked up once, whatever happens to it next. A record older than [`RECORD_MAX_AGE`] is
    /// refused.
    pub fn take_record(&self, client: &ClientAddr) -> Option<ConnRecord> {
        let key = client.map_key();
        let mut map = self.by_client.lock().unwrap_or_else(|p| p.into_inner());
        let rec = map.get(&key, 0).ok()?;
        let _ = map.remove(&key);
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
        let now_ns = now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64;
        if now_ns.saturating_sub(rec.created_ns) > RECORD_MAX_AGE.as_nanos() as u64 {
            warn!(event = "stale_record", %client, "redirect record too old; closing");
            return None;
        }
        Some(rec)
    }

    /// The refusal ring buffer (once).
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }

    /// Checks that the cgroup programs are still attached (someone with the privilege may have
    /// detached a link, e.g. `bpftool link detach`); re-attaches the missing ones. Returns the
    /// names of those that were missing.
    pub fn ensure_attached(&mut self) -> anyhow::Result<Vec<&'static str>> {
        let cgroup = fs::File::open(&self.cgroup_dir)
            .with_context(|| format!("opening cgroup {}", self.cgroup_dir.display()))?;
        let mut missing = Vec::new();
        for (attach_type, prog_id, name) in &self.attached {
            let ids = sys::attached_programs(&cgroup, *attach_type, false)
                .with_context(|| format!("querying {}", self.cgroup_dir.display()))?;
            if !ids.contains(prog_id) {
                missing.push(*name);
            }
        }
        for name in &missing {
            let link = match self.unix_programs.iter().find(|(n, ..)| n == name) {
                Some((_, attach_type, prog)) => {
                    NewLink::Raw(sys::link_create(prog, &cgroup, *attach_type)?)
                }
                None => {
                    let (_, kind, attach_type) = PROGRAMS
                        .iter()
                        .find(|(n, ..)| n == name)
                        .copied()
                        .expect("a known program");
                    attach(&mut self.ebpf, name, kind, attach_type, &cgroup)?
                }
            };
            let path = self.pin_dir.join(name);
            if let Some(i) = self.links.iter().position(|(p, _)| *p == path) {
                let (_, old) = self.links.swap_remove(i);
                let _ = old.unpin();
            }
            let _ = fs::remove_file(&path);
            let pinned = link.pin(&path)?;
            self.links.push((path, pinned));
        }
        Ok(missing)
    }

    /// Detaches every program (unpins the links and the shared maps) and removes the pin
    /// directory: interception ends for this target.
    pub fn detach(self) -> anyhow::Result<()> {
        let Interceptor {
            target,
            pin_dir,
            links,
            ..
        } = self;
        for (_, link) in links {
            // Unpinning removes the bpffs file; dropping the returned fd detaches the link.
            drop(link.unpin()?);
        }
        remove_pins(&pin_dir)?;
        info!(event = "detached", target = %target.name, "interception removed");
        Ok(())
    }
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
