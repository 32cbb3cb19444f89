//! Who is at the other end of a local connection: the check `sluice approvals` makes before it
//! sends a reviewer's token, so that a process squatting the approval socket or port (an agent
//! that bound it after a gateway crash) is told nothing.
//!
//! A unix socket names its server exactly (`SO_PEERCRED`: the pid and uid of the process that
//! listens). A loopback TCP connection is traced through `/proc/net/tcp{,6}`: the server side
//! of this very connection carries the listener's uid, and the listener's inode leads to the
//! process holding it.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};

/// The process serving a connection, as far as the kernel tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    /// `None` when it cannot be seen (a TCP listener of another user, not readable in `/proc`).
    pub pid: Option<u32>,
    /// The listening socket's inode (TCP), to match against a known process.
    pub listener_inode: Option<u64>,
}

/// The server of a unix socket connection (`SO_PEERCRED`, fixed when it called `listen`).
pub fn unix_peer(stream: &UnixStream) -> anyhow::Result<Peer> {
    let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .context("reading the socket's peer credentials (SO_PEERCRED)")?;
    Ok(Peer {
        uid: cred.uid(),
        // 0: the server is in a pid namespace this process cannot see into.
        pid: (cred.pid() > 0).then_some(cred.pid() as u32),
        listener_inode: None,
    })
}

/// One row of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TcpRow {
    local: SocketAddr,
    remote: SocketAddr,
    listening: bool,
    uid: u32,
    inode: u64,
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6), as the kernel prints them: each
/// 32-bit word of the address in host byte order.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<[u8; 4]> = (0..addr.len() / 8)
        .map(|i| {
            u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16)
                .ok()
                .map(u32::to_ne_bytes)
        })
        .collect::<Option<_>>()?;
    let ip = match words.as_slice() {
        [w] => IpAddr::V4(Ipv4Addr::from(*w)),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].into_iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(w);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(canonical(ip), port))
}

/// `::ffff:a.b.c.d` (a dual-stack socket's view of an IPv4 peer) as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn parse_rows(text: &str) -> Vec<TcpRow> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some(TcpRow {
                local: parse_addr(f.get(1)?)?,
                remote: parse_addr(f.get(2)?)?,
                listening: *f.get(3)? == "0A",
                uid: f.get(7)?.parse().ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// The server of a loopback TCP connection. The server side of *this* connection (its local
/// address is our peer, its remote our local address) exists as soon as `connect` returned and
/// carries the listener's uid; its inode is 0 until the server accepts it, so the process is
/// found through the listener's inode instead.
pub fn tcp_peer(stream: &TcpStream) -> anyhow::Result<Peer> {
    let ours = stream.local_addr()?;
    let theirs = stream.peer_addr()?;
    let (ours, theirs) = (
        SocketAddr::new(canonical(ours.ip()), ours.port()),
        SocketAddr::new(canonical(theirs.ip()), theirs.port()),
    );
    let mut rows = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            rows.extend(parse_rows(&text));
        }
    }
    let server_side = rows
        .iter()
        .find(|r| !r.listening && r.local == theirs && r.remote == ours)
        .with_context(|| {
            format!("cannot find the server side of {ours} -> {theirs} in /proc/net/tcp")
        })?;
    let listener = rows.iter().find(|r| {
        r.listening
            && r.local.port() == theirs.port()
            && (r.local.ip() == theirs.ip() || r.local.ip().is_unspecified())
    });
    let listener_inode = listener.map(|l| l.inode).filter(|i| *i != 0);
    Ok(Peer {
        uid: server_side.uid,
        pid: listener_inode.and_then(socket_owner),
        listener_inode,
    })
}

/// The process holding socket `inode`, among those whose descriptors this process may read.
fn socket_owner(inode: u64) -> Option<u32> {
    let wanted = format!("socket:[{inode}]");
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        holds(pid, &wanted).then_some(pid)
    })
}

fn holds(pid: u32, wanted: &str) -> bool {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == wanted))
        })
        .unwrap_or(false)
}

/// Whether process `pid` holds the socket with `inode`.
pub fn holds_socket(pid: u32, inode: u64) -> bool {
    holds(pid, &format!("socket:[{inode}]"))
}

/// The cgroup v2 directory `pid` runs in.
pub fn cgroup_of(pid: u32, mount: &Path) -> anyhow::Result<PathBuf> {
    crate::ebpf::cgroup::cgroup_of(&pid.to_string(), mount)
}

/// `cgroup` is one of `intercepted` or below one of them.
pub fn inside_any(cgroup: &Path, intercepted: &[PathBuf]) -> Option<PathBuf> {
    intercepted
        .iter()
        .find(|dir| cgroup.starts_with(dir))
        .cloned()
}

/// Names of sluice's connect programs (the kernel keeps 15 characters).
const CONNECT_PROGRAMS: [&str; 2] = ["sluice_connect4", "sluice_connect6"];

/// Whether sluice's connect programs apply to processes of `cgroup` (attached to it or to an
/// ancestor): ground truth from the kernel, which a process there cannot forge the way it could
/// forge files. `None` when the kernel cannot be asked (no CAP_NET_ADMIN / CAP_SYS_ADMIN: a
/// reviewer that is not root; the file-based checks then stand alone).
pub fn intercepted_by_sluice(cgroup: &Path) -> Option<bool> {
    let dir = fs::File::open(cgroup).ok()?;
    let mut effective = Vec::new();
    for attach_type in [BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT] {
        effective.extend(query_effective(&dir, attach_type).ok()?);
    }
    if effective.is_empty() {
        return Some(false);
    }
    let ours: Vec<u32> = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| {
            p.name_as_str()
                .is_some_and(|n| CONNECT_PROGRAMS.contains(&n))
        })
        .map(|p| p.id())
        .collect();
    Some(effective.iter().any(|id| ours.contains(id)))
}

const BPF_CGROUP_INET4_CONNECT: u32 = 10;
const BPF_CGROUP_INET6_CONNECT: u32 = 11;

/// Ids of the programs in effect on `attach_type` for a cgroup (its own and inherited).
fn query_effective(cgroup: &fs::File, attach_type: u32) -> std::io::Result<Vec<u32>> {
    crate::ebpf::sys::attached_programs(cgroup, attach_type, true)
}

/// The uid `sluice approvals` may trust to serve the API: root, or itself.
pub fn trusted_uid(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// The first check: a server running as another user than root or the caller.
pub fn verify_uid(peer: &Peer, what: &str) -> anyhow::Result<()> {
    if !trusted_uid(peer.uid) {
        bail!(
            "{what} is served by uid {} (pid {}), not by root or by you: another user's process \
             (an agent?) holds it; refusing to send the reviewer token",
            peer.uid,
            peer.pid.map_or("unknown".into(), |p| p.to_string())
        );
    }
    Ok(())
}

/// Checks the server of a connection before anything is sent: it runs as root or as the
/// caller, it is the gateway recorded in `expected_pid` when one is known, and it is not inside
/// an intercepted cgroup (where an agent runs, whatever uid it has).
pub fn verify(
    peer: &Peer,
    expected_pid: Option<u32>,
    intercepted: &[PathBuf],
    what: &str,
) -> anyhow::Result<()> {
    verify_uid(peer, what)?;
    if let Some(expected) = expected_pid {
        let matches = match (peer.pid, peer.listener_inode) {
            (Some(pid), _) if pid == expected => true,
            (_, Some(inode)) => holds_socket(expected, inode),
            _ => false,
        };
        if !matches {
            bail!(
                "{what} is served by pid {}, not by the gateway that holds the approval socket's \
                 lease (pid {expected}); refusing to send the reviewer token",
                peer.pid.map_or("unknown".into(), |p| p.to_string())
            );
        }
    }
    let pid = match (peer.pid, expected_pid) {
        (Some(p), _) => Some(p),
        (None, Some(e)) => Some(e),
        (None, None) => None,
    };
    if let Some(pid) = pid {
        let mount = crate::ebpf::cgroup::cgroup2_mount()?;
        let cgroup = cgroup_of(pid, &mount)
            .with_context(|| format!("reading the cgroup of pid {pid} (serving {what})"))?;
        // The policy's and the lease's list of targets first, then the kernel itself: a lease
        // can be forged by whoever can write the state directory, the attachment cannot.
        let inside = inside_any(&cgroup, intercepted).or_else(|| {
            intercepted_by_sluice(&cgroup)
                .unwrap_or(false)
                .then(|| cgroup.clone())
        });
        if let Some(dir) = inside {
            bail!(
                "{what} is served by pid {pid} in {}, inside the intercepted cgroup {}: an agent, \
                 not the gateway; refusing to send the reviewer token",
                cgroup.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn proc_net_tcp_rows_parse() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000   997        0 4242 1 0000000000000000 100 0 0 10 0\n";
        let rows = parse_rows(text);
        assert_eq!(
            rows,
            [TcpRow {
                local: "127.0.0.1:8080".parse().unwrap(),
                remote: "0.0.0.0:0".parse().unwrap(),
                listening: true,
                uid: 997,
                inode: 4242,
            }]
        );
        // ::ffff:127.0.0.1 port 80, as a dual-stack listener's connection shows in tcp6.
        assert_eq!(
            parse_addr("0000000000000000FFFF00000100007F:0050"),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            parse_addr("00000000000000000000000001000000:0016"),
            Some("[::1]:22".parse().unwrap())
        );
    }

    /// A listener of this very process: its uid is ours, and its pid is found (by our own
    /// descriptors) before it accepts anything.
    #[test]
    fn a_loopback_connection_leads_to_the_listening_process() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let peer = tcp_peer(&s).unwrap();
        assert_eq!(peer.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(peer.pid, Some(std::process::id()));
        verify(&peer, Some(std::process::id()), &[], "the test listener").unwrap();
        let err = verify(&peer, Some(1), &[], "the test listener")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not by the gateway"), "{err}");
        let own = cgroup_of(
            std::process::id(),
            &crate::ebpf::cgroup::cgroup2_mount().unwrap(),
        )
        .unwrap();
        let err = verify(&peer, None, std::slice::from_ref(&own), "the test listener")
            .unwrap_err()
            .to_string();
        assert!(err.contains("inside the intercepted cgroup"), "{err}");
    }

    /// The kernel answers for a cgroup nobody attached sluice to (this test's own, outside
    /// any target): not intercepted. (Attached cgroups are checked end to end in
    /// tests/tests/reviewer_cli.rs.)
    #[test]
    fn the_kernel_says_an_unattached_cgroup_is_not_intercepted() {
        let mount = crate::ebpf::cgroup::cgroup2_mount().unwrap();
        let own = cgroup_of(std::process::id(), &mount).unwrap();
        assert_eq!(
            intercepted_by_sluice(&own),
            Some(false),
            "run the unit tests as root: the query needs CAP_NET_ADMIN"
        );
    }

    #[test]
    fn a_unix_socket_names_its_server() {
        let dir = std::env::temp_dir().join(format!("sluice-peer-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let s = UnixStream::connect(&path).unwrap();
        let peer = unix_peer(&s).unwrap();
        assert_eq!(peer.pid, Some(std::process::id()));
        assert!(trusted_uid(peer.uid));
        let stranger = Peer { uid: 12345, ..peer };
        let err = verify(&stranger, None, &[], "the socket")
            .unwrap_err()
            .to_string();
        assert!(err.contains("uid 12345"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
