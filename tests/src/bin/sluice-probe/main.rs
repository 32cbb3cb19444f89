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
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::{Duration, Instant},
};

use serde_json::json;

mod attacks;
// What a hostile agent tries inside `sluice exec`'s sandbox.
mod sandbox;

pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

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

/// Sends a line and reads its echo.
fn ping(s: &mut TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(TIMEOUT))?;
    s.write_all(b"ping\n")?;
    let mut reply = [0u8; 5];
    s.read_exact(&mut reply)?;
    if &reply != b"ping\n" {
        return Err(std::io::Error::other("unexpected echo"));
    }
    Ok(())
}

/// Reads until the peer closes (or the read timeout), for `--await-close`.
fn await_close(s: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 64];
    while s.read(&mut buf)? > 0 {}
    Ok(())
}

/// Median, p99, max and mean in µs of samples in ns (sorted in place).
fn percentiles(samples: &mut [u64]) -> serde_json::Value {
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1000.0;
    json!({"median_us": pct(0.5), "p99_us": pct(0.99), "max_us": pct(1.0), "mean_us": mean})
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

/// connect() latency: the syscall alone (handshake included), then close (with
/// `--await-close`, after a line echoed and the server's close, not timed).
fn bench_connect(addr: SocketAddr, count: usize, await_server: bool) {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap_or_else(|e| fail(&e));
        samples.push(t.elapsed().as_nanos() as u64);
        if await_server {
            ping(&mut s)
                .and_then(|()| await_close(&mut s))
                .unwrap_or_else(|e| fail(&e));
        }
    }
    print(merge(
        json!({"ok": true, "count": count}),
        percentiles(&mut samples),
    ));
}

/// Short connections per second: each one connects, writes a line, reads its echo and closes
/// (after the server's close with `--await-close`); COUNT in all, shared by `threads` clients
/// each running one connection at a time. Latency is per connection, connect to close.
fn bench_connrate(addr: SocketAddr, count: usize, threads: usize, await_server: bool) {
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let n = count / threads + usize::from(i < count % threads);
            std::thread::spawn(move || -> std::io::Result<Vec<u64>> {
                let mut samples = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = Instant::now();
                    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
                    s.set_nodelay(true)?;
                    ping(&mut s)?;
                    if await_server {
                        await_close(&mut s)?;
                    }
                    drop(s);
                    samples.push(t.elapsed().as_nanos() as u64);
                }
                Ok(samples)
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(count);
    for w in workers {
        match w.join().expect("client thread") {
            Ok(s) => samples.extend(s),
            Err(e) => fail(&e),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    print(merge(
        json!({"ok": true, "count": count, "threads": threads, "per_s": count as f64 / elapsed}),
        percentiles(&mut samples),
    ));
}

/// Opens N connections (with `--echo`, one line each and its echo, so a proxy's upstream is
/// established too), reports them open, and keeps them idle until stdin closes.
fn hold(addr: SocketAddr, n: usize, echo: bool) {
    let started = Instant::now();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let opened = (|| -> std::io::Result<TcpStream> {
            let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
            if echo {
                ping(&mut s)?;
            }
            Ok(s)
        })();
        match opened {
            Ok(s) => held.push(s),
            Err(e) => {
                print(
                    json!({"ok": false, "open": held.len(), "errno": e.raw_os_error(), "error": e.to_string()}),
                );
                std::process::exit(1)
            }
        }
    }
    print(
        json!({"ok": true, "open": held.len(), "elapsed_ms": started.elapsed().as_millis() as u64}),
    );
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
}

/// A listener with a deep backlog; prints its address.
fn listen(addr: SocketAddr) -> TcpListener {
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
    l
}

/// The same listener for a tokio runtime.
fn listen_async(addr: SocketAddr) -> tokio::net::TcpListener {
    let l = listen(addr);
    l.set_nonblocking(true).unwrap_or_else(|e| fail(&e));
    tokio::net::TcpListener::from_std(l).unwrap_or_else(|e| fail(&e))
}

/// Echo server (or a one-line HTTP responder); reports every accepted peer.
fn serve(addr: SocketAddr, http: bool) {
    let l = listen(addr);
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        let peer = s.peer_addr().map(|p| p.to_string()).unwrap_or_default();
        print(json!({"accepted": peer}));
        std::thread::spawn(move || {
            s.set_read_timeout(Some(Duration::from_secs(30))).ok();
            if http {
                // Read the headers and a Content-Length body, report them, answer 200.
                let mut reader = BufReader::new(s.try_clone().expect("clone"));
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0).min(1 << 20);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                print(
                    json!({"request": head.lines().next().unwrap_or(""), "body": String::from_utf8_lossy(&body)}),
                );
                let reply = format!("hello from {addr}; you are {peer}\n");
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
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

/// Echo server on one thread (tokio, current-thread): a task per connection instead of a
/// thread, so ten thousand idle connections are cheap. With `--lines N` it closes its side
/// after echoing N lines (0: right after accepting), so TIME_WAIT stays here and not with the
/// client. Accepted peers are not reported.
fn serve_async(addr: SocketAddr, lines: Option<usize>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let l = listen_async(addr);
        loop {
            match l.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(echo(s, lines));
                }
                // EMFILE and friends: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
}

async fn echo(mut s: tokio::net::TcpStream, lines: Option<usize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = s.set_nodelay(true);
    let mut left = lines;
    let mut buf = [0u8; 1024];
    while left != Some(0) {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if s.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if let Some(left) = &mut left {
            *left = left.saturating_sub(buf[..n].iter().filter(|&&b| b == b'\n').count());
        }
    }
}

/// A minimal transparent relay, the userspace half of an nftables/iptables REDIRECT setup:
/// accepts, reads the connection's original destination (`SO_ORIGINAL_DST`, kept by NAT),
/// connects there and copies both ways. Same runtime shape as sluice (multi-threaded, one
/// worker per core, a task per connection), so a comparison shows what each does per
/// connection; it logs nothing.
fn relay(addr: SocketAddr) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let l = listen_async(addr);
        loop {
            match l.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(async move {
                        if let Err(e) = relay_one(s).await {
                            eprintln!("relay: {e}");
                        }
                    });
                }
                Err(e) => {
                    eprintln!("relay: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
}

async fn relay_one(mut client: tokio::net::TcpStream) -> std::io::Result<()> {
    // getsockopt(SOL_IP, SO_ORIGINAL_DST): the destination before the REDIRECT rewrote it.
    let dst = socket2::SockRef::from(&client)
        .original_dst_v4()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("original destination is not IPv4"))?;
    // A connection straight to the relay (not redirected) would loop back to it.
    if dst == client.local_addr()? {
        return Err(std::io::Error::other("not a redirected connection"));
    }
    let mut upstream = tokio::net::TcpStream::connect(dst).await?;
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
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

/// A tokio-postgres client: `pg CONNINFO simple|extended|pipeline|cancel SQL...`.
fn pg(args: &[String]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let conninfo = args.first().expect("conninfo").clone();
    let mode = args.get(1).expect("mode").clone();
    let sqls: Vec<String> = args[2..].to_vec();
    // `pg CONNINFO hold-many N SQL`: N sessions; prints `connected` once all are open, waits
    // for a line on stdin, then sends SQL on every one at once and waits for all answers.
    if mode == "hold-many" {
        let n: usize = sqls[0].parse().expect("N");
        let sql = sqls[1].clone();
        let out = rt.block_on(hold_many(conninfo, n, sql));
        print(out);
        return;
    }
    let out = rt.block_on(async move {
        let (client, conn) = match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
            Ok(c) => c,
            Err(e) => return pg_error(&e),
        };
        tokio::spawn(conn);
        let mut results = Vec::new();
        match mode.as_str() {
            "simple" => {
                for sql in &sqls {
                    results.push(match client.simple_query(sql).await {
                        Ok(msgs) => json!({"ok": true, "rows": msgs.iter().filter_map(|m| match m {
                            tokio_postgres::SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect::<Vec<_>>()),
                            _ => None }).collect::<Vec<_>>()}),
                        Err(e) => pg_error(&e),
                    });
                }
            }
            "extended" => {
                for sql in &sqls {
                    results.push(extended(&client, sql).await);
                }
            }
            // One statement with text parameters: `params SQL P1 P2 ...`.
            "params" => {
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = sqls[1..]
                    .iter()
                    .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                results.push(match client.query(&sqls[0], &params).await {
                    Ok(rows) => json!({"ok": true, "rows": rows.iter().map(|r| (0..r.len()).map(|i| cell(r, i)).collect::<Vec<_>>()).collect::<Vec<_>>()}),
                    Err(e) => pg_error(&e),
                });
            }
            // All statements in flight at once: tokio-postgres pipelines them on one connection.
            "pipeline" => {
                let futs = sqls.iter().map(|sql| extended(&client, sql));
                results = futures_util::future::join_all(futs).await;
            }
            "cancel" => {
                let token = client.cancel_token();
                let started = std::time::Instant::now();
                let query = client.simple_query(&sqls[0]);
                let cancel = async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    token.cancel_query(tokio_postgres::NoTls).await
                };
                let (q, c) = tokio::join!(query, cancel);
                results.push(json!({"query": q.err().map(|e| pg_error(&e)), "cancel_ok": c.is_ok(),
                                    "elapsed_ms": started.elapsed().as_millis() as u64}));
            }
            _ => return json!({"ok": false, "error": "unknown mode"}),
        }
        json!({"ok": true, "results": results})
    });
    print(out);
}

async fn hold_many(conninfo: String, n: usize, sql: String) -> serde_json::Value {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                clients.push(client);
            }
            Err(e) => return pg_error(&e),
        }
    }
    println!("connected");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let started = std::time::Instant::now();
    let results =
        futures_util::future::join_all(clients.iter().map(|c| c.simple_query(&sql))).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let first_error = results.iter().find_map(|r| r.as_ref().err().map(pg_error));
    json!({"ok": true, "sessions": n, "succeeded": ok, "first_error": first_error, "elapsed_ms": started.elapsed().as_millis() as u64})
}

async fn extended(client: &tokio_postgres::Client, sql: &str) -> serde_json::Value {
    match client.query(sql, &[]).await {
        Ok(rows) => {
            json!({"ok": true, "rows": rows.iter().map(|r| (0..r.len()).map(|i| cell(r, i)).collect::<Vec<_>>()).collect::<Vec<_>>()})
        }
        Err(e) => pg_error(&e),
    }
}

/// A cell as text, for the column types the tests use.
fn cell(row: &tokio_postgres::Row, i: usize) -> serde_json::Value {
    use tokio_postgres::types::Type;
    let t = row.columns()[i].type_().clone();
    if t == Type::INT4 {
        json!(row.get::<_, Option<i32>>(i))
    } else if t == Type::INT8 {
        json!(row.get::<_, Option<i64>>(i))
    } else if t == Type::BOOL {
        json!(row.get::<_, Option<bool>>(i))
    } else {
        json!(row.try_get::<_, Option<String>>(i).unwrap_or(None))
    }
}

fn pg_error(e: &tokio_postgres::Error) -> serde_json::Value {
    let db = e.as_db_error();
    json!({"ok": false, "code": db.map(|d| d.code().code().to_string()), "message": db.map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()),
           "detail": db.and_then(|d| d.detail().map(str::to_string))})
}

/// See the module comment: a squatter of the approval API that records what it is sent.
fn impostor(args: &[String]) {
    use std::os::unix::{fs::PermissionsExt, net::UnixListener};
    let addr = args.first().unwrap_or_else(|| usage()).clone();
    let lease_path = args
        .iter()
        .position(|a| a == "--lease")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let _lease = lease_path.map(|p| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&p)
            .unwrap_or_else(|e| fail(&e));
        f.lock().unwrap_or_else(|e| fail(&e));
        f.set_len(0).ok();
        let socket = addr.strip_prefix("unix:").unwrap_or(&addr);
        write!(
            f,
            "{}",
            json!({"pid": std::process::id(), "socket": socket, "targets": []})
        )
        .unwrap_or_else(|e| fail(&e));
        f
    });
    // What one connection sent, until it closes or goes quiet.
    fn record(mut s: impl Read + Write) {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&got);
            if let Some(head_end) = text.find("\r\n\r\n") {
                let len = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .and_then(|v| v.trim().parse::<usize>().ok())
                    })
                    .unwrap_or(0);
                if got.len() >= head_end + 4 + len {
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n[]",
                    );
                    break;
                }
            }
        }
        print(json!({"received": String::from_utf8_lossy(&got)}));
    }
    match addr.strip_prefix("unix:") {
        Some(path) => {
            let _ = std::fs::remove_file(path);
            let l = UnixListener::bind(path).unwrap_or_else(|e| fail(&e));
            // Anyone may connect: the victim is another user.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).ok();
            print(json!({"listening": path}));
            for conn in l.incoming().flatten() {
                conn.set_read_timeout(Some(TIMEOUT)).ok();
                std::thread::spawn(move || record(conn));
            }
        }
        None => {
            let addr: SocketAddr = addr.parse().unwrap_or_else(|_| usage());
            let l = listen(addr);
            for conn in l.incoming().flatten() {
                conn.set_read_timeout(Some(TIMEOUT)).ok();
                std::thread::spawn(move || record(conn));
            }
        }
    }
}
