//! A tiny TCP/UDP client and server for the integration tests, printing JSON lines.
//!
//! `--cgroup DIR` moves the probe into a cgroup before it does anything, which is how the tests
//! put a client inside (or outside) an intercepted cgroup.
//!
//! `--user USER` (after `--cgroup`) then drops to that user, as an unprivileged agent runs.
//!
//! ```text
//! sluice-probe [--cgroup DIR] [--user USER] connect ADDR [--send TEXT]
//! sluice-probe [--cgroup DIR] udp ADDR
//! sluice-probe [--cgroup DIR] bench-connect ADDR COUNT [--await-close]
//! sluice-probe [--cgroup DIR] bench-connrate ADDR COUNT [--threads N] [--await-close]
//! sluice-probe [--cgroup DIR] hold ADDR N [--echo]
//! sluice-probe serve ADDR [--http]
//! sluice-probe serve ADDR --async [--lines N]
//! sluice-probe relay ADDR
//! sluice-probe ... udp-send ADDR TEXT | udp-serve ADDR
//! sluice-probe ... socket DOMAIN TYPE PROTOCOL
//! sluice-probe ... bind ADDR | listen ADDR|- SECONDS | connect-from LOCAL ADDR TEXT
//! sluice-probe ... write-file PATH DATA | read-file PATH BYTES | mknod PATH MAJOR MINOR
//! sluice-probe ... bpf-detach PIN | silent ADDR SECONDS | bench-udp ADDR COUNT
//! sluice-probe ... unix-connect PATH|@NAME | unix-serve PATH|@NAME
//! sluice-probe [--cgroup DIR] impostor ADDR|unix:PATH [--lease FILE]
//! sluice-probe self                       # who and what this process is (ids, caps, fds, env)
//! sluice-probe try ATTACK ARGS...         # one system call a hostile agent would make
//! sluice-probe victim SECRET [--connect ADDR]   # a process to attack; holds until stdin closes
//! ```
//!
//! `impostor` squats an API endpoint the way a hostile agent would: it listens on a TCP
//! address or a unix socket path (removing a stale socket file first), optionally takes the
//! approval socket's lease (`flock` + a JSON record naming itself), answers every request
//! `200 []` like the API, and prints everything each connection sent (`{"received": ...}`).
//!
//! `--await-close` (for `serve --async --lines 1`, which closes after echoing a line): each
//! connection sends a line (bench-connect: after the timed connect), reads its echo and waits
//! for the server's close before closing, so TIME_WAIT stays with the server and a benchmark of
//! tens of thousands of short connections does not run out of ephemeral ports.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

use serde_json::json;

// One system call a hostile agent would make (socket, bind, write-file, ...).
mod attacks;
// Latency and rate benchmarks, many idle connections.
mod bench;
// The tokio-postgres client.
mod pg;
// What a hostile agent tries inside `sluice exec`'s sandbox.
mod sandbox;
// Echo/HTTP servers, the NAT relay, the approval API impostor.
mod serve;

use bench::{bench_connect, bench_connrate, hold};
use pg::pg;
use serve::{impostor, relay, serve, serve_async};

pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    sluice_tests::join_cgroup_arg(&mut args);
    if args.first().map(String::as_str) == Some("--user") {
        let user = args.get(1).expect("--user USER").clone();
        attacks::become_user(&user);
        args.drain(..2);
    }
    let cmd = args.first().map(String::as_str).unwrap_or("");
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_else(|| usage());
    let num = |i: usize| arg(i).parse::<i64>().unwrap_or_else(|_| usage());
    match cmd {
        "socket" => return attacks::socket(num(1) as i32, num(2) as i32, num(3) as i32),
        "write-file" => return attacks::write_file(arg(1), arg(2)),
        "read-file" => return attacks::read_file(arg(1), num(2) as usize),
        "mknod" => return attacks::mknod(arg(1), num(2) as u32, num(3) as u32),
        "bpf-detach" => return attacks::bpf_detach(arg(1)),
        "unix-connect" => return attacks::unix_connect(arg(1)),
        "unix-serve" => return attacks::unix_serve(arg(1)),
        "listen" if arg(1) == "-" => {
            return attacks::bind_listen(None, true, Duration::from_secs(num(2) as u64));
        }
        _ => {}
    }
    match cmd {
        "run" => run(&args[1..]),
        "pg" => return pg(&args[1..]),
        "impostor" => return impostor(&args[1..]),
        "self" => return sandbox::self_report(),
        "try" => return sandbox::attempt(&args[1..]),
        "victim" => return sandbox::victim(&args[1..]),
        _ => {}
    }
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
        "bench-connect" => bench_connect(addr, count_arg(&args), flag(&args, "--await-close")),
        "bench-connrate" => bench_connrate(
            addr,
            count_arg(&args),
            option(&args, "--threads").unwrap_or(1).max(1),
            flag(&args, "--await-close"),
        ),
        "hold" => hold(addr, count_arg(&args), flag(&args, "--echo")),
        "serve" if flag(&args, "--async") => serve_async(addr, option(&args, "--lines")),
        "serve" => serve(addr, flag(&args, "--http")),
        "relay" => relay(addr),
        "raw" => raw(addr, args.get(2).map(String::as_str).unwrap_or("")),
        "udp-send" => attacks::udp_send(addr, arg(2)),
        "udp-serve" => attacks::udp_serve(addr),
        "silent" => attacks::silent(addr, Duration::from_secs(num(2) as u64)),
        "bench-udp" => attacks::bench_udp(addr, num(2) as usize),
        "bind" => attacks::bind_listen(Some(addr), false, Duration::ZERO),
        "listen" => attacks::bind_listen(Some(addr), true, Duration::from_secs(num(2) as u64)),
        "connect-from" => {
            attacks::connect_from(addr, arg(2).parse().unwrap_or_else(|_| usage()), arg(3))
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: sluice-probe [--cgroup DIR] connect|udp|bench-connect|bench-connrate|hold|serve|relay ADDR ..."
    );
    std::process::exit(2)
}

fn flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

/// `NAME VALUE`, parsed; a present but unparseable value is a usage error.
fn option(args: &[String], name: &str) -> Option<usize> {
    let i = args.iter().position(|a| a == name)?;
    Some(
        args.get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage()),
    )
}

/// The positional count after ADDR.
fn count_arg(args: &[String]) -> usize {
    args.get(2)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| usage())
}

/// `a` with the fields of `b` added (both objects).
fn merge(mut a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

pub(crate) fn print(v: serde_json::Value) {
    println!("{v}");
    let _ = std::io::stdout().flush();
}

pub(crate) fn fail(e: &std::io::Error) -> ! {
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

/// Replaces the probe with a real client (psql, pgbench, ssh...), already inside the cgroup.
fn run(argv: &[String]) -> ! {
    use std::os::unix::process::CommandExt;
    let argv: Vec<&String> = argv.iter().skip_while(|a| *a == "--").collect();
    let err = std::process::Command::new(argv[0]).args(&argv[1..]).exec();
    eprintln!("cannot run {}: {err}", argv[0]);
    std::process::exit(127)
}

/// Sends hex-encoded bytes, then prints (hex) everything received until the peer closes.
fn raw(addr: SocketAddr, hex: &str) {
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap_or_else(|e| fail(&e));
    s.set_read_timeout(Some(TIMEOUT)).ok();
    s.write_all(&bytes).unwrap_or_else(|e| fail(&e));
    // Half-close: the peer sees the end of our stream (as from a crashed client) instead of
    // waiting for the rest of a truncated message.
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    let closed = s.read_to_end(&mut got).is_ok();
    let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
    print(
        json!({"ok": true, "received": hex, "text": String::from_utf8_lossy(&got), "closed": closed}),
    );
}
