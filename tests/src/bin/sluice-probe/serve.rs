//! The servers: `serve` (echo or a one-line HTTP responder, threads or tokio), `relay` (a
//! transparent relay for comparisons with NAT redirection) and `impostor` (a squatter of the
//! approval API).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener},
    time::Duration,
};

use serde_json::json;

use crate::{TIMEOUT, fail, print, usage};

/// A listener with a deep backlog; prints its address.
pub(crate) fn listen(addr: SocketAddr) -> TcpListener {
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
pub(crate) fn listen_async(addr: SocketAddr) -> tokio::net::TcpListener {
    let l = listen(addr);
    l.set_nonblocking(true).unwrap_or_else(|e| fail(&e));
    tokio::net::TcpListener::from_std(l).unwrap_or_else(|e| fail(&e))
}

/// Echo server (or a one-line HTTP responder); reports every accepted peer.
pub(crate) fn serve(addr: SocketAddr, http: bool) {
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
pub(crate) fn serve_async(addr: SocketAddr, lines: Option<usize>) {
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

pub(crate) async fn echo(mut s: tokio::net::TcpStream, lines: Option<usize>) {
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
pub(crate) fn relay(addr: SocketAddr) {
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

pub(crate) async fn relay_one(mut client: tokio::net::TcpStream) -> std::io::Result<()> {
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

/// See the module comment: a squatter of the approval API that records what it is sent.
pub(crate) fn impostor(args: &[String]) {
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
