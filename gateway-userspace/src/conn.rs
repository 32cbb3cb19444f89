//! What sluice knows about one intercepted connection.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use gateway_common::{AF_INET, ClientKey, ConnRecord};

use crate::config::Resource;

/// The agent's end of a redirected connection, as the proxy's `accept()` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Where the agent meant to connect before the kernel redirected it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrigDstAddr(pub SocketAddr);

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for OrigDstAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ClientAddr {
    /// The key under which the kernel filed this connection.
    pub fn map_key(&self) -> ClientKey {
        match self.0 {
            SocketAddr::V4(a) => ClientKey::v4(a.ip().octets(), a.port()),
            SocketAddr::V6(a) => ClientKey::v6(a.ip().octets(), a.port()),
        }
    }
}

/// The process that made the connection: ids from the kernel at connect time, the rest read
/// from /proc when the proxy accepts (best effort: a short-lived process may be gone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    pub comm: String,
    pub exe: Option<PathBuf>,
    pub cmdline: Vec<String>,
}

/// Bound on how much of /proc/PID/cmdline is kept (it is logged and audited).
const MAX_CMDLINE: usize = 4096;

impl ProcessInfo {
    pub fn from_record(rec: &ConnRecord) -> Self {
        let proc_dir = PathBuf::from(format!("/proc/{}", rec.pid));
        let exe = std::fs::read_link(proc_dir.join("exe")).ok();
        let cmdline = std::fs::read(proc_dir.join("cmdline"))
            .map(|mut raw| {
                raw.truncate(MAX_CMDLINE);
                raw.split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ProcessInfo {
            pid: rec.pid,
            tid: rec.tid,
            uid: rec.uid,
            gid: rec.gid,
            cgroup_id: rec.cgroup_id,
            comm: comm_to_string(&rec.comm),
            exe,
            cmdline,
        }
    }
}

pub fn comm_to_string(comm: &[u8; 16]) -> String {
    let end = comm.iter().position(|b| *b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

/// The destination recorded by the kernel, as a socket address.
pub fn record_destination(family: u16, addr: &[u8; 16], port: u16) -> SocketAddr {
    let ip: IpAddr = if family == AF_INET {
        Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).into()
    } else {
        Ipv6Addr::from(*addr).into()
    };
    SocketAddr::new(ip, port)
}

/// Everything a protocol session needs to know about its connection.
#[derive(Clone, Debug)]
pub struct ConnCtx {
    /// Unique per gateway process, for correlating log lines.
    pub id: u64,
    /// Name of the intercepted target (cgroup) the connection came from.
    pub target: String,
    pub client: ClientAddr,
    pub orig_dst: OrigDstAddr,
    pub process: ProcessInfo,
    pub resource: Arc<Resource>,
    /// Marked by the protocol once the agent is logged in; until then the connection runs under
    /// the gateway's handshake deadline.
    pub handshake: Handshake,
}

/// Whether a connection finished its handshake (login). A connection that has not finished it
/// in time is closed: idle half-open logins must not hold the gateway's or a database's slots.
#[derive(Clone, Debug, Default)]
pub struct Handshake(Arc<AtomicBool>);

impl Handshake {
    /// The agent is logged in: no deadline any more.
    pub fn done(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_done(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Completes `timeout` from now unless the handshake finished by then (then never).
    pub async fn deadline(&self, timeout: Duration) {
        tokio::time::sleep(timeout).await;
        if self.is_done() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_match_what_the_kernel_writes() {
        let v4 = ClientAddr("127.0.0.1:40000".parse().unwrap());
        assert_eq!(v4.map_key(), ClientKey::v4([127, 0, 0, 1], 40000));
        // A dual-stack socket's mapped address is filed as IPv4 by the kernel side.
        let mapped = ClientAddr("[::ffff:127.0.0.1]:40000".parse().unwrap());
        assert_eq!(mapped.map_key(), v4.map_key());
    }

    #[test]
    fn comm_stops_at_nul() {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"psql");
        assert_eq!(comm_to_string(&comm), "psql");
        assert_eq!(comm_to_string(&[b'x'; 16]), "x".repeat(16));
    }

    #[test]
    fn record_destinations_decode_both_families() {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[10, 1, 2, 3]);
        assert_eq!(
            record_destination(AF_INET, &a, 5432),
            "10.1.2.3:5432".parse::<SocketAddr>().unwrap()
        );
        let v6: Ipv6Addr = "fd00::5".parse().unwrap();
        assert_eq!(
            record_destination(gateway_common::AF_INET6, &v6.octets(), 22),
            "[fd00::5]:22".parse::<SocketAddr>().unwrap()
        );
    }
}
