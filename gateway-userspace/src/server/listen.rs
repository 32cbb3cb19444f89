//! The gateway's TCP listeners: bound here, or handed over by the service manager (systemd socket
//! activation, `LISTEN_FDS`). Under socket activation the sockets stay bound while the gateway
//! restarts: connections queue in the kernel instead of being refused, and nobody can take the
//! port in between.

use std::{net::SocketAddr, sync::Mutex};

use tokio::net::{TcpListener, TcpSocket};
use tracing::info;

/// Agents open connections in bursts (connection pools, parallel tools); a short accept queue
/// drops SYNs and costs the client a 1 s retransmit, so listen as deep as the kernel allows.
const LISTEN_BACKLOG: u32 = 4096;

/// Listening sockets passed by the service manager, taken by address.
#[derive(Default)]
pub struct Inherited(Mutex<Vec<std::net::TcpListener>>);

impl Inherited {
    /// The sockets of `LISTEN_FDS` (if `LISTEN_PID` is this process); the variables are removed
    /// so that children do not see them.
    pub fn from_env() -> Inherited {
        let mut fds = listenfd::ListenFd::from_env();
        let sockets = (0..fds.len())
            .filter_map(|i| fds.take_tcp_listener(i).ok().flatten())
            .collect::<Vec<_>>();
        if !sockets.is_empty() {
            info!(
                event = "socket_activation",
                sockets = sockets.len(),
                "listening sockets handed over by the service manager"
            );
        }
        Inherited(Mutex::new(sockets))
    }

    fn take(&self, addr: SocketAddr) -> Option<std::net::TcpListener> {
        let mut sockets = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let i = sockets
            .iter()
            .position(|l| l.local_addr().is_ok_and(|a| a == addr))?;
        Some(sockets.swap_remove(i))
    }

    /// The listener for `addr`: the inherited one, else a new one.
    pub fn bind(&self, addr: SocketAddr) -> std::io::Result<TcpListener> {
        if let Some(l) = self.take(addr) {
            l.set_nonblocking(true)?;
            return TcpListener::from_std(l);
        }
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    }
}
