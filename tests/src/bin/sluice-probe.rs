//! A tiny TCP/UDP client and server for the integration tests, printing JSON lines.
//!
//! `--cgroup DIR` moves the probe into a cgroup before it does anything, which is how the tests
//! put a client inside (or outside) an intercepted cgroup.
//!
//! ```text
//! sluice-probe [--cgroup DIR] connect ADDR [--send TEXT]
//! sluice-probe [--cgroup DIR] udp ADDR
//! sluice-probe [--cgroup DIR] bench-connect ADDR COUNT
//! sluice-probe serve ADDR [--http]
//! ```

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::{Duration, Instant},
};

use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--cgroup") {
        let dir = args.get(1).expect("--cgroup DIR").clone();
        std::fs::write(
            format!("{dir}/cgroup.procs"),
            std::process::id().to_string(),
        )
        .expect("joining the cgroup");
        args.drain(..2);
    }
    let cmd = args.first().map(String::as_str).unwrap_or("");
    let addr: SocketAddr = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage());
    match cmd {
        "connect" => {
            let send = args
                .iter()
                .position(|a| a == "--send")
                .and_then(|i| args.get(i + 1))
                .cloned();
            connect(addr, send)
        }
        "udp" => udp(addr),
        "bench-connect" => {
            let count: usize = args
                .get(2)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| usage());
            bench_connect(addr, count)
        }
        "serve" => serve(addr, args.iter().any(|a| a == "--http")),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: sluice-probe [--cgroup DIR] connect|udp|bench-connect|serve ADDR ...");
    std::process::exit(2)
}

fn print(v: serde_json::Value) {
    println!("{v}");
    let _ = std::io::stdout().flush();
}

fn fail(e: &std::io::Error) -> ! {
    print(
        json!({"ok": false, "pid": std::process::id(), "errno": e.raw_os_error(), "error": e.to_string()}),
    );
    std::process::exit(1)
}

fn connect(addr: SocketAddr, send: Option<String>) {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap_or_else(|e| fail(&e));
    s.set_read_timeout(Some(TIMEOUT)).ok();
    let peer = s.peer_addr().unwrap_or_else(|e| fail(&e));
    let local = s.local_addr().unwrap_or_else(|e| fail(&e));
    let mut reply = None;
    if let Some(text) = send {
        s.write_all(format!("{text}\n").as_bytes())
            .unwrap_or_else(|e| fail(&e));
        let mut line = String::new();
        BufReader::new(&s)
            .read_line(&mut line)
            .unwrap_or_else(|e| fail(&e));
        reply = Some(line.trim_end().to_string());
    }
    print(
        json!({"ok": true, "pid": std::process::id(), "peer": peer.to_string(),
                 "local": local.to_string(), "reply": reply}),
    );
}

fn udp(addr: SocketAddr) {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("addr");
    let s = UdpSocket::bind(bind).unwrap_or_else(|e| fail(&e));
    s.connect(addr).unwrap_or_else(|e| fail(&e));
    s.send(b"ping").unwrap_or_else(|e| fail(&e));
    print(
        json!({"ok": true, "pid": std::process::id(), "peer": s.peer_addr().map(|p| p.to_string()).ok()}),
    );
}

/// connect() latency: the syscall alone (handshake included), then close.
fn bench_connect(addr: SocketAddr, count: usize) {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        let s = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap_or_else(|e| fail(&e));
        samples.push(t.elapsed().as_nanos() as u64);
        drop(s);
    }
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1000.0;
    print(
        json!({"ok": true, "count": count, "median_us": pct(0.5), "p99_us": pct(0.99), "mean_us": mean}),
    );
}

/// Echo server (or a one-line HTTP responder); reports every accepted peer.
fn serve(addr: SocketAddr, http: bool) {
    // std listens with a backlog of 128, which a tight connect loop overflows (SYNs dropped,
    // 1 s retransmits in the measurements).
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap_or_else(|e| fail(&e));
    sock.set_reuse_address(true).ok();
    sock.bind(&addr.into()).unwrap_or_else(|e| fail(&e));
    sock.listen(4096).unwrap_or_else(|e| fail(&e));
    let l: TcpListener = sock.into();
    print(json!({"listening": l.local_addr().expect("bound").to_string()}));
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        let peer = s.peer_addr().map(|p| p.to_string()).unwrap_or_default();
        print(json!({"accepted": peer}));
        std::thread::spawn(move || {
            s.set_read_timeout(Some(Duration::from_secs(30))).ok();
            if http {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let body = format!("hello from {addr}; you are {peer}\n");
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                return;
            }
            let mut reader = BufReader::new(s.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if s.write_all(line.as_bytes()).is_err() {
                    break;
                }
                line.clear();
            }
        });
    }
}
