//! The sink: a bounded queue, one worker thread, and the connection it keeps to the receiver.

use std::{
    io::{self, Write as _},
    net::{TcpStream, ToSocketAddrs, UdpSocket},
    os::unix::net::UnixDatagram,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, SyncSender, TrySendError},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use super::{format::Header, *};

/// How long `shutdown`/`Drop` waits for the queue to drain.
pub(super) const FLUSH_WAIT: Duration = Duration::from_secs(2);
/// One error line per this many lost records (the first one is always logged).
const LOG_EVERY: u64 = 1000;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Counters since the sink started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyslogStats {
    /// Written to the socket (for TCP: accepted by the kernel).
    pub sent: u64,
    /// Not queued: the queue was full (or the worker was gone).
    pub dropped: u64,
    /// Queued but not delivered: sending failed twice, or shutdown's wait ran out.
    pub failed: u64,
}

#[derive(Default)]
struct Shared {
    sent: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// Set by shutdown: the worker stops retrying after it.
    deadline: OnceLock<Instant>,
}

impl Shared {
    fn past_deadline(&self) -> bool {
        self.deadline.get().is_some_and(|d| Instant::now() >= *d)
    }
}

/// Counts `n` lost records; logs on the first and then once per [`LOG_EVERY`].
fn count_lost(counter: &AtomicU64, n: u64, target: &SyslogTarget, what: &str) {
    if n == 0 {
        return;
    }
    let before = counter.fetch_add(n, Ordering::Relaxed);
    let after = before + n;
    if before == 0 || after / LOG_EVERY > before / LOG_EVERY {
        tracing::error!(%target, total = after, "syslog: audit records {what}");
    }
}

/// Sends audit records to syslog from a worker thread. Cheap to call from any thread; never
/// blocks. Dropping it flushes the queue (waiting at most 2 s).
pub struct SyslogSink {
    tx: Option<SyncSender<Vec<u8>>>,
    header: Header,
    target: SyslogTarget,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl SyslogSink {
    /// Starts the worker, which connects in the background: an unreachable receiver is logged
    /// and retried, never an error here.
    pub fn start(settings: SyslogSettings) -> SyslogSink {
        let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
        let shared = Arc::new(Shared::default());
        let mut worker = Worker {
            target: settings.target.clone(),
            conn: None,
            backoff: BACKOFF_MIN,
            shared: shared.clone(),
        };
        let worker = thread::Builder::new()
            .name("sluice-syslog".into())
            .spawn(move || worker.run(rx))
            // As std::thread::spawn does: failing to create a thread is not recoverable here.
            .expect("spawning the syslog thread");
        SyslogSink {
            tx: Some(tx),
            header: Header::new(&settings),
            target: settings.target,
            shared,
            worker: Some(worker),
        }
    }

    /// Queues one record with its chain hash.
    pub fn send(&self, record: &Record, hash: &[u8; 32]) {
        let Some(tx) = &self.tx else { return };
        let frame = match self.target {
            SyslogTarget::Udp { .. } | SyslogTarget::Unix(_) => self
                .header
                .format(record, hash, Some(DATAGRAM_MAX))
                .into_bytes(),
            SyslogTarget::Tcp { .. } => {
                // RFC 6587 octet counting: "LEN SP MSG".
                let msg = self.header.format(record, hash, None);
                let mut frame = format!("{} ", msg.len()).into_bytes();
                frame.extend_from_slice(msg.as_bytes());
                frame
            }
        };
        match tx.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                count_lost(&self.shared.dropped, 1, &self.target, "dropped: queue full")
            }
            Err(TrySendError::Disconnected(_)) => count_lost(
                &self.shared.dropped,
                1,
                &self.target,
                "dropped: syslog thread gone",
            ),
        }
    }

    pub fn stats(&self) -> SyslogStats {
        SyslogStats {
            sent: self.shared.sent.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting records and waits (at most 2 s) for the queued ones to be sent.
    pub fn shutdown(mut self) -> SyslogStats {
        self.close();
        self.stats()
    }

    fn close(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        let deadline = Instant::now() + FLUSH_WAIT;
        let _ = self.shared.deadline.set(deadline);
        // The worker drains what is queued, then sees the channel closed and returns.
        drop(tx);
        let Some(worker) = self.worker.take() else {
            return;
        };
        // A little past the worker's own deadline, so that it can count what it gave up.
        while !worker.is_finished() && Instant::now() < deadline + Duration::from_millis(500) {
            thread::sleep(Duration::from_millis(5));
        }
        if worker.is_finished() {
            let _ = worker.join();
        } else {
            // Stuck in a blocking write (bounded by IO_TIMEOUT): let it finish on its own.
            tracing::error!(target = %self.target, "syslog: gave up waiting for the queue to flush");
        }
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        self.close();
    }
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Unix(UnixDatagram),
}

impl Conn {
    fn open(target: &SyslogTarget) -> io::Result<Conn> {
        match target {
            SyslogTarget::Udp { host, port } => {
                let mut last = None;
                for addr in (host.as_str(), *port).to_socket_addrs()? {
                    let local = if addr.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    match UdpSocket::bind(local).and_then(|s| s.connect(addr).map(|()| s)) {
                        Ok(s) => return Ok(Conn::Udp(s)),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| io::Error::other("no address for the host")))
            }
            SyslogTarget::Tcp { host, port } => {
                let mut last = None;
                for addr in (host.as_str(), *port).to_socket_addrs()? {
                    match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
                        Ok(s) => {
                            s.set_write_timeout(Some(IO_TIMEOUT))?;
                            s.set_nodelay(true)?;
                            return Ok(Conn::Tcp(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| io::Error::other("no address for the host")))
            }
            SyslogTarget::Unix(path) => {
                let s = UnixDatagram::unbound()?;
                s.connect(path)?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(Conn::Unix(s))
            }
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let sent = match self {
            Conn::Udp(s) => s.send(frame)?,
            Conn::Unix(s) => s.send(frame)?,
            Conn::Tcp(s) => {
                // A write to a connection the receiver has closed still succeeds once and the
                // message is lost: look for the FIN first (receivers never send anything).
                if tcp_peer_closed(s) {
                    return Err(io::ErrorKind::ConnectionReset.into());
                }
                s.write_all(frame)?;
                return Ok(());
            }
        };
        if sent != frame.len() {
            return Err(io::Error::other("datagram cut short"));
        }
        Ok(())
    }
}

fn tcp_peer_closed(s: &TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let r = s.peek(&mut [0u8; 1]);
    if s.set_nonblocking(false).is_err() {
        return true;
    }
    match r {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    }
}

struct Worker {
    target: SyslogTarget,
    conn: Option<Conn>,
    backoff: Duration,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(&mut self, rx: mpsc::Receiver<Vec<u8>>) {
        match Conn::open(&self.target) {
            Ok(c) => self.conn = Some(c),
            Err(e) => {
                tracing::warn!(target = %self.target, error = %e, "syslog: cannot connect yet")
            }
        }
        while let Ok(frame) = rx.recv() {
            if self.shared.past_deadline() {
                let left = 1 + rx.try_iter().count() as u64;
                count_lost(
                    &self.shared.failed,
                    left,
                    &self.target,
                    "not sent before shutdown",
                );
                return;
            }
            if self.deliver(&frame) {
                self.shared.sent.fetch_add(1, Ordering::Relaxed);
            } else {
                count_lost(&self.shared.failed, 1, &self.target, "lost: send failed");
            }
        }
    }

    /// Sends `frame`, reconnecting (with backoff) if needed; a frame whose send fails is tried
    /// once more on a new connection.
    fn deliver(&mut self, frame: &[u8]) -> bool {
        for _ in 0..2 {
            if self.conn.is_none() && !self.reconnect() {
                return false;
            }
            let Some(conn) = &mut self.conn else {
                return false;
            };
            match conn.send(frame) {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(target = %self.target, error = %e, "syslog: send failed; reconnecting");
                    self.conn = None;
                }
            }
        }
        false
    }

    /// Connects, retrying with exponential backoff; false only once shutdown's deadline passed.
    fn reconnect(&mut self) -> bool {
        loop {
            match Conn::open(&self.target) {
                Ok(c) => {
                    self.conn = Some(c);
                    self.backoff = BACKOFF_MIN;
                    return true;
                }
                Err(e) => {
                    tracing::warn!(
                        target = %self.target,
                        error = %e,
                        retry_in = ?self.backoff,
                        "syslog: cannot connect"
                    );
                    if !self.sleep(self.backoff) {
                        return false;
                    }
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Sleeps `d` unless shutdown's deadline passes first (then false).
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            if self.shared.past_deadline() {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            thread::sleep((until - now).min(Duration::from_millis(20)));
        }
    }
}
