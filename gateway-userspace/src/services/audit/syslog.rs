//! Audit records to syslog (RFC 5424), for SIEMs.
//!
//! One message per durable record:
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [sluice@32473 node="…" seq="…" session="…" hash="<hex>"] MSG
//! ```
//!
//! - PRI: the configured facility; severity `warning` when the body's top-level `action` is
//!   `deny`, `info` for everything else.
//! - TIMESTAMP: the record's time as stored. If it is not a valid RFC 5424 timestamp (at most six
//!   fraction digits, `T` and `Z` upper case), it is sent as `-` and the exact text goes into a
//!   `time` parameter, so that a receiver can always recompute the chain hash.
//! - MSGID: the record kind. PROCID: the gateway's pid.
//! - `session` is left out for records without one (the chain hashes "none" and "empty"
//!   differently, so an empty parameter would be ambiguous).
//! - MSG: the JSON body, byte for byte, without a BOM: JSON is UTF-8 by definition (RFC 8259)
//!   and a BOM only makes JSON consumers strip it.
//!
//! Transports: UDP (RFC 5426, one datagram per message), TCP (RFC 6587 octet counting) and a
//! local Unix datagram socket (`/dev/log`). Datagrams are capped at [`DATAGRAM_MAX`] octets
//! (rsyslog's default limit): a longer body is cut at a character boundary and a
//! `truncated` parameter gives its full length in octets. TCP messages are sent whole; the
//! receiver may still cut them at its own limit (rsyslog's `maxMessageSize`).
//!
//! [`SyslogSink`] never blocks the caller: records go through a bounded queue to one worker
//! thread, and are dropped (and counted) when the queue is full. Syslog is a copy for the SIEM;
//! the SQLite chain stays the record of truth.

use std::{
    fmt::{self, Write as _},
    io::{self, Write as _},
    net::{TcpStream, ToSocketAddrs, UdpSocket},
    os::unix::net::UnixDatagram,
    path::PathBuf,
    str::FromStr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, SyncSender, TrySendError},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use serde::Deserialize;

use super::chain::Record;

/// SD-ID of the record's structured data. 32473 is the private enterprise number IANA reserves
/// for documentation and examples (RFC 5612); sluice has no PEN of its own.
pub const SD_ID: &str = "sluice@32473";

/// Largest UDP or Unix datagram sent, in octets: rsyslog's default `maxMessageSize` (measured:
/// it cuts longer messages at 8096 octets, blindly, possibly inside a UTF-8 character). Cutting
/// here instead keeps the text valid and marks it. syslog-ng accepts 64 KiB by default.
pub const DATAGRAM_MAX: usize = 8096;

/// Records waiting for the worker before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 4096;

/// How long `shutdown`/`Drop` waits for the queue to drain.
const FLUSH_WAIT: Duration = Duration::from_secs(2);
/// One error line per this many lost records (the first one is always logged).
const LOG_EVERY: u64 = 1000;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

// RFC 5424 section 6 field limits.
const HOSTNAME_MAX: usize = 255;
const APP_NAME_MAX: usize = 48;
const PROCID_MAX: usize = 128;
const MSGID_MAX: usize = 32;

/// The `audit.syslog` settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSettings {
    /// `udp://HOST:PORT`, `tcp://HOST:PORT` or `unix:///PATH`.
    pub target: SyslogTarget,
    #[serde(default)]
    pub facility: Facility,
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// Defaults to the machine's hostname.
    #[serde(default)]
    pub hostname: Option<String>,
}

fn default_app_name() -> String {
    "sluice".into()
}

impl SyslogSettings {
    pub fn new(target: SyslogTarget) -> SyslogSettings {
        SyslogSettings {
            target,
            facility: Facility::default(),
            app_name: default_app_name(),
            hostname: None,
        }
    }
}

/// Where messages go.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SyslogTarget {
    /// Host is a name or an IP address (IPv6 without brackets); resolved at every (re)connect.
    Udp {
        host: String,
        port: u16,
    },
    Tcp {
        host: String,
        port: u16,
    },
    /// A Unix datagram socket, such as `/dev/log`.
    Unix(PathBuf),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid syslog target `{target}`: {reason} (expected udp://HOST:PORT, tcp://HOST:PORT or \
     unix:///PATH)"
)]
pub struct TargetError {
    pub target: String,
    pub reason: String,
}

impl FromStr for SyslogTarget {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<SyslogTarget, TargetError> {
        let err = |reason: String| TargetError {
            target: s.to_string(),
            reason,
        };
        let (scheme, rest) = s.split_once("://").ok_or_else(|| err("no scheme".into()))?;
        match scheme {
            "udp" | "tcp" => {
                let (host, port) = host_port(rest).map_err(err)?;
                Ok(if scheme == "udp" {
                    SyslogTarget::Udp { host, port }
                } else {
                    SyslogTarget::Tcp { host, port }
                })
            }
            "unix" => {
                if !rest.starts_with('/') {
                    return Err(err(format!(
                        "the socket path must be absolute (unix:///{rest})"
                    )));
                }
                Ok(SyslogTarget::Unix(rest.into()))
            }
            other => Err(err(format!("unknown scheme `{other}`"))),
        }
    }
}

/// `host:port` or `[v6]:port`.
fn host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(bracketed) = s.strip_prefix('[') {
        let (host, rest) = bracketed
            .split_once(']')
            .ok_or("unclosed `[` in the host")?;
        let port = rest.strip_prefix(':').ok_or("missing :PORT")?;
        (host, port)
    } else {
        let (host, port) = s.rsplit_once(':').ok_or("missing :PORT")?;
        if host.contains(':') {
            return Err("an IPv6 address goes in brackets: [::1]:514".into());
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    if host.contains(|c: char| c == '/' || c.is_whitespace()) {
        return Err(format!("invalid host `{host}`"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("invalid port `{port}` (1 to 65535)")),
        Ok(port) => Ok((host.to_string(), port)),
    }
}

impl TryFrom<String> for SyslogTarget {
    type Error = TargetError;

    fn try_from(s: String) -> Result<SyslogTarget, TargetError> {
        s.parse()
    }
}

impl fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let net = |f: &mut fmt::Formatter<'_>, scheme: &str, host: &str, port: u16| {
            if host.contains(':') {
                write!(f, "{scheme}://[{host}]:{port}")
            } else {
                write!(f, "{scheme}://{host}:{port}")
            }
        };
        match self {
            SyslogTarget::Udp { host, port } => net(f, "udp", host, *port),
            SyslogTarget::Tcp { host, port } => net(f, "tcp", host, *port),
            SyslogTarget::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// Facility codes of RFC 5424, section 6.2.1, by their usual names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Kern = 0,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Ntp,
    /// "log audit"
    Audit,
    /// "log alert"
    Alert,
    Clock,
    #[default]
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

/// Severities of RFC 5424, section 6.2.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Emergency = 0,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Informational,
    Debug,
}

/// `warning` for a denied command, `info` otherwise.
pub fn severity(record: &Record) -> Severity {
    #[derive(Deserialize)]
    struct Action {
        action: Option<String>,
    }
    // Only command bodies carry `action`: skip parsing (possibly large) result bodies.
    if !record.body.contains("\"action\"") {
        return Severity::Informational;
    }
    match serde_json::from_str::<Action>(&record.body) {
        Ok(Action {
            action: Some(action),
        }) if action == "deny" => Severity::Warning,
        _ => Severity::Informational,
    }
}

/// The message for `record`, whole (as sent over TCP, without its octet count).
pub fn format_rfc5424(settings: &SyslogSettings, record: &Record, hash: &[u8; 32]) -> String {
    Header::new(settings).format(record, hash, None)
}

/// What is the same in every message, sanitized once.
#[derive(Clone, Debug)]
struct Header {
    facility: Facility,
    hostname: String,
    app_name: String,
    procid: String,
}

impl Header {
    fn new(settings: &SyslogSettings) -> Header {
        let hostname = match &settings.hostname {
            Some(h) => h.as_str(),
            None => machine_hostname().unwrap_or("-"),
        };
        Header {
            facility: settings.facility,
            hostname: header_field(hostname, HOSTNAME_MAX),
            app_name: header_field(&settings.app_name, APP_NAME_MAX),
            procid: header_field(&std::process::id().to_string(), PROCID_MAX),
        }
    }

    /// With `limit`, the message is at most that many octets (the body is cut to fit).
    fn format(&self, record: &Record, hash: &[u8; 32], limit: Option<usize>) -> String {
        let pri = self.facility as u8 * 8 + severity(record) as u8;
        let (timestamp, exact_time) = if is_rfc5424_timestamp(&record.time) {
            (record.time.as_str(), None)
        } else {
            ("-", Some(record.time.as_str()))
        };
        let mut out = String::with_capacity(256 + record.body.len());
        let _ = write!(
            out,
            "<{pri}>1 {timestamp} {} {} {} {} [{SD_ID}",
            self.hostname,
            self.app_name,
            self.procid,
            header_field(&record.kind, MSGID_MAX),
        );
        sd_param(&mut out, "node", &record.node);
        sd_param(&mut out, "seq", &record.seq.to_string());
        if let Some(session) = &record.session {
            sd_param(&mut out, "session", session);
        }
        if let Some(time) = exact_time {
            sd_param(&mut out, "time", time);
        }
        sd_param(&mut out, "hash", &crate::util::hex(hash));
        let body = match limit {
            Some(limit) if out.len() + 2 + record.body.len() > limit => {
                sd_param(&mut out, "truncated", &record.body.len().to_string());
                floor_char_boundary(&record.body, limit.saturating_sub(out.len() + 2))
            }
            _ => &record.body,
        };
        out.push_str("] ");
        out.push_str(body);
        out
    }
}

/// A header field: printable US-ASCII only, at most `max` characters, `-` (NILVALUE) if empty.
fn header_field(s: &str, max: usize) -> String {
    let v: String = s.chars().filter(char::is_ascii_graphic).take(max).collect();
    if v.is_empty() { "-".into() } else { v }
}

/// ` name="value"`, with `"`, `\` and `]` escaped as RFC 5424 section 6.3.3 requires.
fn sd_param(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// The longest prefix of `s` of at most `max` octets that ends on a character boundary.
fn floor_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// RFC 5424's TIMESTAMP: `YYYY-MM-DDTHH:MM:SS[.1-6 digits](Z|+HH:MM|-HH:MM)`. Field ranges are
/// not checked; the shape is what receivers parse.
fn is_rfc5424_timestamp(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if b.len() < 20
        || !(digits(&b[0..4])
            && b[4] == b'-'
            && digits(&b[5..7])
            && b[7] == b'-'
            && digits(&b[8..10])
            && b[10] == b'T'
            && digits(&b[11..13])
            && b[13] == b':'
            && digits(&b[14..16])
            && b[16] == b':'
            && digits(&b[17..19]))
    {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return false;
        }
        rest = &frac[n..];
    }
    rest == b"Z"
        || (rest.len() == 6
            && (rest[0] == b'+' || rest[0] == b'-')
            && digits(&rest[1..3])
            && rest[3] == b':'
            && digits(&rest[4..6]))
}

/// The kernel's hostname, read once (no unsafe `gethostname` needed).
pub fn machine_hostname() -> Option<&'static str> {
    static HOSTNAME: OnceLock<Option<String>> = OnceLock::new();
    HOSTNAME
        .get_or_init(|| {
            ["/proc/sys/kernel/hostname", "/etc/hostname"]
                .iter()
                .find_map(|p| {
                    let h = std::fs::read_to_string(p).ok()?;
                    let h = h.trim();
                    (!h.is_empty()).then(|| h.to_string())
                })
        })
        .as_deref()
}

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

#[cfg(test)]
mod tests {
    use std::{
        io::Read,
        net::{TcpListener, UdpSocket},
        os::unix::net::UnixDatagram,
        sync::mpsc,
        thread,
        time::{Duration, Instant},
    };

    use super::*;

    fn record(seq: u64, kind: &str, session: Option<&str>, body: &str) -> Record {
        Record {
            seq,
            node: "gw-1".into(),
            time: "2026-05-01T12:34:56.789Z".into(),
            kind: kind.into(),
            session: session.map(str::to_string),
            body: body.into(),
        }
    }

    fn settings(target: &str) -> SyslogSettings {
        SyslogSettings {
            hostname: Some("host.example".into()),
            ..SyslogSettings::new(target.parse().unwrap())
        }
    }

    const HASH: [u8; 32] = [0xab; 32];

    #[test]
    fn whole_message() {
        let r = record(7, "command", Some("s-1"), r#"{"n":1,"action":"allow"}"#);
        let msg = format_rfc5424(&settings("udp://127.0.0.1:514"), &r, &HASH);
        let pid = std::process::id();
        assert_eq!(
            msg,
            format!(
                "<134>1 2026-05-01T12:34:56.789Z host.example sluice {pid} command \
                 [sluice@32473 node=\"gw-1\" seq=\"7\" session=\"s-1\" hash=\"{}\"] \
                 {{\"n\":1,\"action\":\"allow\"}}",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn pri_is_facility_and_severity() {
        let allow = record(1, "command", None, r#"{"action":"allow"}"#);
        let deny = record(1, "command", None, r#"{"n":3,"action":"deny","rule":"r"}"#);
        // "deny" elsewhere than the top-level action changes nothing.
        let nested = record(1, "result", None, r#"{"x":{"action":"deny"},"t":"action"}"#);
        let pri = |facility, r: &Record| {
            let s = SyslogSettings {
                facility,
                ..settings("udp://h:1")
            };
            let m = format_rfc5424(&s, r, &HASH);
            m[1..m.find('>').unwrap()].parse::<u8>().unwrap()
        };
        assert_eq!(pri(Facility::Local0, &allow), 16 * 8 + 6);
        assert_eq!(pri(Facility::Local0, &deny), 16 * 8 + 4);
        assert_eq!(pri(Facility::Local7, &deny), 23 * 8 + 4);
        assert_eq!(pri(Facility::Kern, &allow), 6);
        assert_eq!(pri(Facility::Auth, &nested), 4 * 8 + 6);
        assert_eq!(
            severity(&record(1, "command", None, "not json")),
            Severity::Informational
        );
    }

    #[test]
    fn sd_values_are_escaped() {
        let mut r = record(1, "session_start", Some(r#"a"b\c]d"#), "{}");
        r.node = "n]\"".into();
        let msg = format_rfc5424(&settings("udp://h:1"), &r, &HASH);
        assert!(msg.contains(r#"node="n\]\"""#), "{msg}");
        assert!(msg.contains(r#"session="a\"b\\c\]d""#), "{msg}");
    }

    #[test]
    fn session_omitted_when_none() {
        let msg = format_rfc5424(&settings("udp://h:1"), &record(1, "k", None, "{}"), &HASH);
        assert!(!msg.contains("session="), "{msg}");
        let msg = format_rfc5424(
            &settings("udp://h:1"),
            &record(1, "k", Some(""), "{}"),
            &HASH,
        );
        assert!(msg.contains(r#"session="""#), "{msg}");
    }

    #[test]
    fn header_fields_are_limited() {
        let s = SyslogSettings {
            app_name: "a".repeat(60),
            hostname: Some(format!("h é\t{}", "x".repeat(300))),
            ..settings("udp://h:1")
        };
        let msg = format_rfc5424(&s, &record(1, &"k".repeat(40), None, "{}"), &HASH);
        let fields: Vec<&str> = msg.splitn(7, ' ').collect();
        assert_eq!(fields[2].len(), 255);
        assert!(fields[2].starts_with("hxxx"));
        assert_eq!(fields[3], "a".repeat(48));
        assert_eq!(fields[5], "k".repeat(32));

        let s = SyslogSettings {
            app_name: " ".into(),
            ..settings("udp://h:1")
        };
        let msg = format_rfc5424(&s, &record(1, "", None, "{}"), &HASH);
        let fields: Vec<&str> = msg.splitn(7, ' ').collect();
        assert_eq!((fields[3], fields[5]), ("-", "-"));
    }

    #[test]
    fn odd_timestamps_go_to_a_parameter() {
        for ok in [
            "2026-05-01T12:34:56Z",
            "2026-05-01T12:34:56.123456+02:00",
            "2026-05-01T12:34:56-07:30",
        ] {
            assert!(is_rfc5424_timestamp(ok), "{ok}");
        }
        for bad in [
            "t",
            "",
            "2026-05-01 12:34:56Z",
            "2026-05-01t12:34:56z",
            "2026-05-01T12:34:56.1234567Z",
            "2026-05-01T12:34:56.Z",
            "2026-05-01T12:34:56",
            "2026-05-01T12:34:56+0200",
        ] {
            assert!(!is_rfc5424_timestamp(bad), "{bad}");
        }
        let mut r = record(1, "k", None, "{}");
        r.time = "2026-05-01 12:34:56".into();
        let msg = format_rfc5424(&settings("udp://h:1"), &r, &HASH);
        assert!(msg.starts_with("<134>1 - host.example "), "{msg}");
        assert!(
            msg.contains(r#" time="2026-05-01 12:34:56" hash="#),
            "{msg}"
        );
    }

    #[test]
    fn datagrams_are_cut_at_a_character_boundary() {
        let body = format!("{{\"t\":\"{}\"}}", "é".repeat(10_000));
        let r = record(1, "result", None, &body);
        let header = Header::new(&settings("udp://h:1"));
        let msg = header.format(&r, &HASH, Some(DATAGRAM_MAX));
        assert!(msg.len() <= DATAGRAM_MAX && msg.len() >= DATAGRAM_MAX - 1);
        assert!(msg.contains(&format!(" truncated=\"{}\"] {{\"t\":\"éé", body.len())));
        // Short bodies are untouched.
        let r = record(1, "result", None, "{}");
        assert_eq!(
            header.format(&r, &HASH, Some(DATAGRAM_MAX)),
            header.format(&r, &HASH, None)
        );
    }

    #[test]
    fn targets_parse() {
        let p = |s: &str| s.parse::<SyslogTarget>();
        assert_eq!(
            p("udp://logs.example:514"),
            Ok(SyslogTarget::Udp {
                host: "logs.example".into(),
                port: 514
            })
        );
        assert_eq!(
            p("tcp://[::1]:6514"),
            Ok(SyslogTarget::Tcp {
                host: "::1".into(),
                port: 6514
            })
        );
        assert_eq!(
            p("unix:///dev/log"),
            Ok(SyslogTarget::Unix("/dev/log".into()))
        );
        for s in [
            "udp://logs.example:514",
            "tcp://[::1]:6514",
            "unix:///dev/log",
        ] {
            assert_eq!(p(s).unwrap().to_string(), s);
        }
        for (s, reason) in [
            ("logs.example:514", "no scheme"),
            ("http://h:1", "unknown scheme `http`"),
            ("udp://h", "missing :PORT"),
            ("udp://:514", "missing host"),
            ("tcp://h:0", "invalid port `0` (1 to 65535)"),
            ("tcp://h:99999", "invalid port `99999` (1 to 65535)"),
            ("tcp://h:514/x", "invalid port `514/x` (1 to 65535)"),
            (
                "tcp://::1:514",
                "an IPv6 address goes in brackets: [::1]:514",
            ),
            ("tcp://[::1:514", "unclosed `[` in the host"),
            (
                "unix://dev/log",
                "the socket path must be absolute (unix:///dev/log)",
            ),
        ] {
            assert_eq!(p(s).unwrap_err().reason, reason, "{s}");
        }
        assert_eq!(
            p("udp://h").unwrap_err().to_string(),
            "invalid syslog target `udp://h`: missing :PORT (expected udp://HOST:PORT, \
             tcp://HOST:PORT or unix:///PATH)"
        );
    }

    #[test]
    fn settings_deserialize() {
        let s: SyslogSettings = serde_json::from_str(r#"{"target":"tcp://siem:601"}"#).unwrap();
        assert_eq!(s.facility, Facility::Local0);
        assert_eq!(s.app_name, "sluice");
        assert_eq!(s.hostname, None);
        let s: SyslogSettings = serde_json::from_str(
            r#"{"target":"unix:///dev/log","facility":"authpriv","app_name":"gw","hostname":"h"}"#,
        )
        .unwrap();
        assert_eq!(s.facility as u8, 10);
        assert_eq!(
            (s.app_name.as_str(), s.hostname.as_deref()),
            ("gw", Some("h"))
        );

        let err = |j: &str| {
            serde_json::from_str::<SyslogSettings>(j)
                .unwrap_err()
                .to_string()
        };
        assert!(err(r#"{"target":"udp://h"}"#).contains("missing :PORT"));
        assert!(err(r#"{"target":"udp://h:1","facility":"local8"}"#).contains("unknown variant"));
        assert!(err(r#"{"target":"udp://h:1","port":1}"#).contains("unknown field `port`"));
        assert!(err(r#"{"facility":"local1"}"#).contains("missing field `target`"));
    }

    #[test]
    fn sink_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SyslogSink>();
    }

    fn records(n: u64) -> Vec<(Record, [u8; 32])> {
        (1..=n)
            .map(|i| {
                let body = format!(r#"{{"n":{i},"text":"select \"x\" — ok"}}"#);
                (record(i, "command", Some("s"), &body), [i as u8; 32])
            })
            .collect()
    }

    /// The body and the `seq` of a message this module wrote.
    fn parse(msg: &str) -> (u64, &str) {
        let seq = msg.split(" seq=\"").nth(1).unwrap();
        let seq = seq[..seq.find('"').unwrap()].parse().unwrap();
        (seq, &msg[msg.find("] ").unwrap() + 2..])
    }

    #[test]
    fn udp_delivery() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let port = rx.local_addr().unwrap().port();
        let sink = SyslogSink::start(settings(&format!("udp://127.0.0.1:{port}")));
        let recs = records(5);
        for (r, h) in &recs {
            sink.send(r, h);
        }
        let mut buf = vec![0; 65536];
        for (r, h) in &recs {
            let n = rx.recv(&mut buf).unwrap();
            let msg = std::str::from_utf8(&buf[..n]).unwrap();
            assert_eq!(msg, format_rfc5424(&settings("udp://h:1"), r, h));
            assert_eq!(parse(msg), (r.seq, r.body.as_str()));
        }
        let stats = sink.shutdown();
        assert_eq!(
            stats,
            SyslogStats {
                sent: 5,
                dropped: 0,
                failed: 0
            }
        );
    }

    #[test]
    fn unix_delivery() {
        let dir = std::env::temp_dir().join(format!("sluice-syslog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let sink = SyslogSink::start(settings(&format!("unix://{}", path.display())));
        let big = record(
            1,
            "result",
            None,
            &format!("{{\"t\":\"{}\"}}", "x".repeat(20_000)),
        );
        sink.send(&big, &HASH);
        let mut buf = vec![0; 65536];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(n, DATAGRAM_MAX);
        assert!(
            std::str::from_utf8(&buf[..n])
                .unwrap()
                .contains(" truncated=\"20008\"]")
        );
        assert_eq!(sink.shutdown().sent, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Reads RFC 6587 octet-counted frames until EOF.
    fn read_frames(mut s: impl Read) -> Vec<String> {
        let mut data = Vec::new();
        s.read_to_end(&mut data).unwrap();
        let mut frames = Vec::new();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let sp = rest.iter().position(|&b| b == b' ').expect("octet count");
            let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
            let msg = &rest[sp + 1..sp + 1 + len];
            frames.push(String::from_utf8(msg.to_vec()).unwrap());
            rest = &rest[sp + 1 + len..];
        }
        frames
    }

    #[test]
    fn tcp_delivery_with_reconnect() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (closed_tx, closed_rx) = mpsc::channel();
        let server = thread::spawn(move || {
            // First connection: read exactly the first frame, then hang up on the sink.
            let (mut c, _) = listener.accept().unwrap();
            let mut first = Vec::new();
            let mut b = [0u8; 1];
            loop {
                c.read_exact(&mut b).unwrap();
                if b[0] == b' ' {
                    break;
                }
                first.push(b[0]);
            }
            let len: usize = String::from_utf8(first).unwrap().parse().unwrap();
            let mut msg = vec![0; len];
            c.read_exact(&mut msg).unwrap();
            drop(c);
            closed_tx.send(()).unwrap();
            // Second connection: everything else, until the sink shuts down.
            let (c, _) = listener.accept().unwrap();
            (String::from_utf8(msg).unwrap(), read_frames(c))
        });
        let sink = SyslogSink::start(settings(&format!("tcp://127.0.0.1:{port}")));
        let recs = records(50);
        sink.send(&recs[0].0, &recs[0].1);
        closed_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        thread::sleep(Duration::from_millis(50));
        for (r, h) in &recs[1..] {
            sink.send(r, h);
        }
        let stats = sink.shutdown();
        let (first, rest) = server.join().unwrap();
        assert_eq!(parse(&first), (1, recs[0].0.body.as_str()));
        assert_eq!(rest.len(), 49);
        for (msg, (r, h)) in rest.iter().zip(&recs[1..]) {
            assert_eq!(*msg, format_rfc5424(&settings("udp://h:1"), r, h));
        }
        assert_eq!(
            stats,
            SyslogStats {
                sent: 50,
                dropped: 0,
                failed: 0
            }
        );
    }

    #[test]
    fn full_queue_drops_and_shutdown_is_bounded() {
        // A port nobody listens on: the worker stays in its reconnect backoff.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sink = SyslogSink::start(settings(&format!("tcp://127.0.0.1:{port}")));
        let r = record(1, "command", None, "{}");
        let start = Instant::now();
        for _ in 0..QUEUE_CAPACITY + 100 {
            sink.send(&r, &HASH);
        }
        assert!(start.elapsed() < Duration::from_secs(1), "send blocked");
        let start = Instant::now();
        let stats = sink.shutdown();
        assert!(start.elapsed() < FLUSH_WAIT + Duration::from_secs(1));
        assert_eq!(stats.sent, 0);
        assert!(stats.dropped >= 99, "{stats:?}");
        assert_eq!(stats.dropped + stats.failed, QUEUE_CAPACITY as u64 + 100);
    }
}
