//! What a hostile agent tries in order to leave containment, one system call at a time; each
//! prints `{"ok": bool, "errno": N, ...}` so a test can check the kernel's answer.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

use serde_json::json;

use crate::{TIMEOUT, print};

fn outcome<T>(r: std::io::Result<T>) -> serde_json::Value {
    match r {
        Ok(_) => json!({"ok": true, "pid": std::process::id()}),
        Err(e) => {
            json!({"ok": false, "pid": std::process::id(), "errno": e.raw_os_error(), "error": e.to_string()})
        }
    }
}

/// Drops root to `user` (uid or name) after joining the cgroup, as an unprivileged agent runs.
pub fn become_user(user: &str) {
    let (uid, gid) = match user.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) => {
            let out = std::process::Command::new("id")
                .args(["-u", user])
                .output()
                .expect("id -u");
            let uid: u32 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("no user {user}"));
            let out = std::process::Command::new("id")
                .args(["-g", user])
                .output()
                .expect("id -g");
            (
                uid,
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .expect("gid"),
            )
        }
    };
    // SAFETY: plain credential system calls; a failure is checked.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
        assert_eq!(libc::setgid(gid), 0, "setgid");
        assert_eq!(libc::setuid(uid), 0, "setuid");
    }
}

/// Sends one UDP datagram to `addr` (unconnected: the `sendmsg` path), then a connected one.
pub fn udp_send(addr: SocketAddr, text: &str) {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("addr");
    let s = match UdpSocket::bind(bind) {
        Ok(s) => s,
        Err(e) => return print(outcome::<()>(Err(e))),
    };
    let sent = s.send_to(text.as_bytes(), addr);
    let connected = s.connect(addr).and_then(|()| s.send(text.as_bytes()));
    let mut v = outcome(sent);
    v["connected"] = outcome(connected);
    print(v);
}

/// Receives datagrams on `addr` and reports each.
pub fn udp_serve(addr: SocketAddr) {
    let s = UdpSocket::bind(addr).unwrap_or_else(|e| crate::fail(&e));
    print(json!({"listening": s.local_addr().expect("bound").to_string()}));
    let mut buf = [0u8; 2048];
    loop {
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            print(
                json!({"datagram": String::from_utf8_lossy(&buf[..n]), "from": from.to_string()}),
            );
        }
    }
}

/// `socket(domain, type, protocol)`.
pub fn socket(domain: i32, kind: i32, protocol: i32) {
    // SAFETY: socket() with integer arguments; the fd is closed right away.
    let fd = unsafe { libc::socket(domain, kind, protocol) };
    if fd >= 0 {
        // SAFETY: closing the fd just made.
        unsafe { libc::close(fd) };
        print(outcome(Ok(())));
    } else {
        print(outcome::<()>(Err(std::io::Error::last_os_error())));
    }
}

/// Binds `addr` (TCP) and, with `listen`, waits up to `wait` for a connection.
pub fn bind_listen(addr: Option<SocketAddr>, listen: bool, wait: Duration) {
    let domain = match addr {
        Some(a) if a.is_ipv6() => socket2::Domain::IPV6,
        _ => socket2::Domain::IPV4,
    };
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, None)
        .unwrap_or_else(|e| crate::fail(&e));
    if let Some(a) = addr
        && let Err(e) = sock.bind(&a.into())
    {
        return print(outcome::<()>(Err(e)));
    }
    if !listen {
        return print(outcome(Ok(())));
    }
    if let Err(e) = sock.listen(16) {
        return print(outcome::<()>(Err(e)));
    }
    let local = sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.to_string());
    print(json!({"listening": local}));
    let l: std::net::TcpListener = sock.into();
    l.set_nonblocking(true).ok();
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        if let Ok((_, peer)) = l.accept() {
            return print(json!({"ok": true, "accepted": peer.to_string()}));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    print(json!({"ok": true, "accepted": null}));
}

/// Connects from a chosen local address (to claim another connection's record).
pub fn connect_from(local: SocketAddr, addr: SocketAddr, send: &str) {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .unwrap_or_else(|e| crate::fail(&e));
    sock.set_reuse_address(true).ok();
    if let Err(e) = sock.bind(&local.into()) {
        return print(outcome::<()>(Err(e)));
    }
    if let Err(e) = sock.connect_timeout(&addr.into(), TIMEOUT) {
        return print(outcome::<()>(Err(e)));
    }
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(TIMEOUT)).ok();
    let _ = s.write_all(format!("{send}\n").as_bytes());
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    print(json!({"ok": true, "reply": String::from_utf8_lossy(&reply)}));
}

/// Opens `path` for writing and writes `data` (a sysctl, a cgroup's `cgroup.procs`).
pub fn write_file(path: &str, data: &str) {
    let r = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(data.as_bytes()));
    print(outcome(r));
}

/// Opens `path` and reads up to `n` bytes (a block device, a secret).
pub fn read_file(path: &str, n: usize) {
    let r = std::fs::File::open(path).and_then(|mut f| {
        let mut buf = vec![0u8; n];
        f.read(&mut buf).map(|got| buf.truncate(got)).map(|()| buf)
    });
    let mut v = outcome(
        r.as_ref()
            .map(|_| ())
            .map_err(|e| std::io::Error::from(e.kind())),
    );
    if let Err(e) = &r {
        v["errno"] = json!(e.raw_os_error());
    }
    if let Ok(bytes) = r {
        v["bytes"] = json!(bytes.len());
        v["text"] = json!(String::from_utf8_lossy(&bytes));
    }
    print(v);
}

/// `mknod` of a block device node (the disk, under another name).
pub fn mknod(path: &str, major: u32, minor: u32) {
    let c = std::ffi::CString::new(path).expect("path");
    // SAFETY: mknod with a valid C string.
    let rc = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFBLK | 0o600,
            libc::makedev(major, minor),
        )
    };
    if rc == 0 {
        print(outcome(Ok(())));
    } else {
        print(outcome::<()>(Err(std::io::Error::last_os_error())));
    }
}

/// What an agent with the privilege does to a pinned link: open the pin (`BPF_OBJ_GET`) and
/// detach it (`BPF_LINK_DETACH`).
pub fn bpf_detach(pin: &str) {
    #[repr(C)]
    #[derive(Default)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        _pad: u32,
    }
    #[repr(C)]
    #[derive(Default)]
    struct LinkDetach {
        link_fd: u32,
        _pad: [u32; 15],
    }
    let c = std::ffi::CString::new(pin).expect("path");
    let mut get = ObjGet {
        pathname: c.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: BPF_OBJ_GET (7) with a valid attr for its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            7,
            &mut get as *mut ObjGet,
            std::mem::size_of::<ObjGet>(),
        )
    };
    if fd < 0 {
        return print(outcome::<()>(Err(std::io::Error::last_os_error())));
    }
    let mut detach = LinkDetach {
        link_fd: fd as u32,
        ..Default::default()
    };
    // SAFETY: BPF_LINK_DETACH (34) with a valid attr for its size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            34,
            &mut detach as *mut LinkDetach,
            std::mem::size_of::<LinkDetach>(),
        )
    };
    let r = if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    };
    // SAFETY: closing the fd BPF_OBJ_GET returned.
    unsafe { libc::close(fd as i32) };
    print(outcome(r));
}

/// Connects and stays silent (a login that never happens); reports how long until the peer
/// closed, or that it did not within `wait`.
pub fn silent(addr: SocketAddr, wait: Duration) {
    let started = std::time::Instant::now();
    let mut s = match TcpStream::connect_timeout(&addr, TIMEOUT) {
        Ok(s) => s,
        Err(e) => return print(outcome::<()>(Err(e))),
    };
    s.set_read_timeout(Some(wait)).ok();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            // The server's banner (SSH) is not the end.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    print(
        json!({"ok": true, "closed_by_peer": closed, "elapsed_ms": started.elapsed().as_millis() as u64}),
    );
}

/// The cost of sending a datagram: `count` unconnected `sendto` calls of 32 bytes; per-call
/// median and p99 in ns (a clock read per call, the same inside and outside).
pub fn bench_udp(addr: SocketAddr, count: usize) {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("addr");
    let s = UdpSocket::bind(bind).unwrap_or_else(|e| crate::fail(&e));
    let payload = [0x5au8; 32];
    let mut samples = Vec::with_capacity(count);
    let started = std::time::Instant::now();
    for _ in 0..count {
        let t = std::time::Instant::now();
        s.send_to(&payload, addr)
            .unwrap_or_else(|e| crate::fail(&e));
        samples.push(t.elapsed().as_nanos() as u64);
    }
    let total = started.elapsed();
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    print(
        json!({"ok": true, "count": count, "median_ns": pct(0.5), "p99_ns": pct(0.99),
                 "per_s": count as f64 / total.as_secs_f64()}),
    );
}

/// Connects to a unix stream socket (`@name` for an abstract one), sends a line, reads the reply.
pub fn unix_connect(path: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};
    let addr = match path.strip_prefix('@') {
        Some(name) => UnixAddr::from_abstract_name(name.as_bytes()),
        None => UnixAddr::from_pathname(path),
    };
    let r = addr
        .and_then(|a| UnixStream::connect_addr(&a))
        .and_then(|mut s| {
            s.set_read_timeout(Some(TIMEOUT))?;
            s.write_all(b"hello\n")?;
            let mut reply = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(s), &mut reply)?;
            Ok(reply)
        });
    match r {
        Ok(reply) => print(json!({"ok": true, "reply": reply.trim_end()})),
        Err(e) => print(outcome::<()>(Err(e))),
    }
}

/// A unix stream echo server at `path` (`@name`: abstract), world-connectable; reports each
/// accepted connection.
pub fn unix_serve(path: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::{
        fs::PermissionsExt,
        net::{SocketAddr as UnixAddr, UnixListener},
    };
    let addr = match path.strip_prefix('@') {
        Some(name) => UnixAddr::from_abstract_name(name.as_bytes()),
        None => UnixAddr::from_pathname(path),
    }
    .unwrap_or_else(|e| crate::fail(&e));
    let l = UnixListener::bind_addr(&addr).unwrap_or_else(|e| crate::fail(&e));
    if !path.starts_with('@') {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777));
    }
    print(json!({"listening": path}));
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        print(json!({"accepted": path}));
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(&s), &mut line);
        let _ = s.write_all(line.as_bytes());
    }
}
