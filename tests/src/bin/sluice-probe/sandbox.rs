//! `self`, `try ATTACK` and `victim`: what a hostile agent inside `sluice exec`'s sandbox tries,
//! and a process outside for it to attack. Each prints one JSON line.

use std::net::{SocketAddr, TcpStream};

use serde_json::json;

use super::{TIMEOUT, fail, flag, merge, print, usage};

/// A field of `/proc/self/status`.
fn status_field(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn fd_targets() -> serde_json::Map<String, serde_json::Value> {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .map(|e| {
                    let target = std::fs::read_link(e.path())
                        .map(|t| t.display().to_string())
                        .unwrap_or_default();
                    (e.file_name().to_string_lossy().into_owned(), json!(target))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Who this process is, as the kernel sees it: ids, capability sets, no_new_privs, seccomp,
/// cgroup, descriptors (with what they point to), environment, namespaces.
pub fn self_report() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let ids = |name| -> Vec<u64> {
        status_field(&status, name)
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    let env: serde_json::Map<String, serde_json::Value> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), json!(v.to_string_lossy())))
        .collect();
    print(json!({
        "pid": std::process::id(),
        "ppid": std::os::unix::process::parent_id(),
        "uid": ids("Uid"), "gid": ids("Gid"), "groups": ids("Groups"),
        "cap_inh": status_field(&status, "CapInh"), "cap_prm": status_field(&status, "CapPrm"),
        "cap_eff": status_field(&status, "CapEff"), "cap_bnd": status_field(&status, "CapBnd"),
        "cap_amb": status_field(&status, "CapAmb"),
        "no_new_privs": status_field(&status, "NoNewPrivs"),
        "seccomp": status_field(&status, "Seccomp"),
        "seccomp_filters": status_field(&status, "Seccomp_filters"),
        "cgroup": cgroup_v2(),
        "user_ns": ns("user"),
        "fds": fd_targets(),
        "env": env,
    }));
}

/// This process's cgroup v2 path (the `0::` line of /proc/self/cgroup).
fn cgroup_v2() -> String {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_default()
        .to_string()
}

fn ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .map(|t| t.display().to_string())
        .unwrap_or_default()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A call's return value with its errno, read at once (anything after may change errno).
fn called(rc: i64) -> (i64, i32) {
    (rc, errno())
}

/// The answer to one attempt: `rc` from the call (-1 with `errno` on failure) plus details.
fn report_attempt((rc, errno): (i64, i32), extra: serde_json::Value) {
    let failed = rc < 0;
    let errno = if failed { errno } else { 0 };
    print(merge(
        json!({"ok": !failed, "rc": rc, "errno": errno, "error": if failed { std::io::Error::from_raw_os_error(errno).to_string() } else { String::new() }}),
        extra,
    ));
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage())
}

fn cstring(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap_or_else(|_| usage())
}

/// `try ATTACK ARGS`: one thing a hostile agent would try, reported as JSON.
pub fn attempt(args: &[String]) {
    let what = args.first().map(String::as_str).unwrap_or("");
    // SAFETY (whole match): raw system calls on values parsed from the command line; buffers
    // outlive the calls; a forked child only calls _exit.
    unsafe {
        match what {
            // ptrace attach (then detach): reading and rewriting another process.
            "ptrace" => {
                let pid: i32 = arg(args, 1);
                let rc = called(libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0));
                if rc.0 == 0 {
                    let mut st = 0;
                    libc::waitpid(pid, &mut st, libc::__WALL);
                    libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
                }
                report_attempt(rc, json!({}))
            }
            "vm-read" => {
                let (pid, addr, len): (i32, usize, usize) =
                    (arg(args, 1), arg(args, 2), arg(args, 3));
                let mut buf = vec![0u8; len.min(1 << 20)];
                let local = libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                };
                let remote = libc::iovec {
                    iov_base: addr as *mut _,
                    iov_len: buf.len(),
                };
                let rc = called(libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) as i64);
                let n = rc.0.max(0) as usize;
                report_attempt(rc, json!({"text": String::from_utf8_lossy(&buf[..n])}))
            }
            "pidfd-getfd" => {
                let (pid, fd): (i32, i32) = (arg(args, 1), arg(args, 2));
                let pidfd = called(libc::syscall(libc::SYS_pidfd_open, pid, 0));
                if pidfd.0 < 0 {
                    return report_attempt(pidfd, json!({"step": "pidfd_open"}));
                }
                let rc = called(libc::syscall(libc::SYS_pidfd_getfd, pidfd.0, fd, 0));
                let target = std::fs::read_link(format!("/proc/self/fd/{}", rc.0))
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                report_attempt(
                    rc,
                    json!({"step": "pidfd_getfd", "target": if rc.0 >= 0 { target } else { String::new() }}),
                )
            }
            // BPF_OBJ_GET on a pinned link, then (with --detach) BPF_LINK_DETACH: what a root
            // agent did to sluice's interception.
            "bpf-obj-get" => {
                let path = cstring(args.get(1).map(String::as_str).unwrap_or_else(|| usage()));
                let mut attr = [0u64; 16];
                attr[0] = path.as_ptr() as u64; // pathname; bpf_fd and file_flags stay 0
                const BPF_OBJ_GET: i64 = 7;
                const BPF_LINK_DETACH: i64 = 34;
                let size = std::mem::size_of_val(&attr);
                let (fd, err) = called(libc::syscall(
                    libc::SYS_bpf,
                    BPF_OBJ_GET,
                    attr.as_ptr(),
                    size,
                ));
                let mut detached = None;
                if fd >= 0 && flag(args, "--detach") {
                    let mut attr = [0u64; 16];
                    attr[0] = fd as u64; // link_fd
                    detached = Some(
                        libc::syscall(libc::SYS_bpf, BPF_LINK_DETACH, attr.as_ptr(), size) == 0,
                    );
                }
                print(
                    json!({"ok": fd >= 0, "rc": fd, "errno": if fd < 0 { err } else { 0 }, "detached": detached}),
                )
            }
            "unshare" => {
                let flags = ns_flags(args.get(1).map(String::as_str).unwrap_or(""));
                let before = ns("user");
                let rc = called(libc::unshare(flags) as i64);
                report_attempt(
                    rc,
                    json!({"user_ns_before": before, "user_ns_after": ns("user")}),
                )
            }
            // clone(2) with namespace flags; the child exits at once.
            "clone" => {
                let flags = ns_flags(args.get(1).map(String::as_str).unwrap_or("")) | libc::SIGCHLD;
                let rc = called(libc::syscall(
                    libc::SYS_clone,
                    flags as libc::c_ulong,
                    0,
                    0,
                    0,
                    0,
                ));
                if rc.0 == 0 {
                    libc::_exit(0);
                }
                if rc.0 > 0 {
                    libc::waitpid(rc.0 as i32, std::ptr::null_mut(), 0);
                }
                report_attempt(rc, json!({}))
            }
            // clone3(2) without flags: only whether the call exists.
            "clone3" => {
                let mut cl_args = [0u64; 11];
                cl_args[4] = libc::SIGCHLD as u64; // exit_signal
                let rc = called(libc::syscall(
                    libc::SYS_clone3,
                    cl_args.as_mut_ptr(),
                    std::mem::size_of_val(&cl_args),
                ));
                if rc.0 == 0 {
                    libc::_exit(0);
                }
                if rc.0 > 0 {
                    libc::waitpid(rc.0 as i32, std::ptr::null_mut(), 0);
                }
                report_attempt(rc, json!({}))
            }
            "spawn" => {
                let status = std::process::Command::new(&args[1])
                    .args(&args[2..])
                    .status();
                match status {
                    Ok(s) => print(json!({"ok": s.success(), "code": s.code()})),
                    Err(e) => fail(&e),
                }
            }
            // `setns PATH` (a /proc/PID/ns file) or `setns pid:PID KINDS` (through a pidfd, which
            // needs no access to the other process's /proc files).
            "setns" => {
                let target = args.get(1).unwrap_or_else(|| usage());
                let rc = match target.strip_prefix("pid:") {
                    Some(pid) => {
                        let pid: i32 = pid.parse().unwrap_or_else(|_| usage());
                        let pidfd = called(libc::syscall(libc::SYS_pidfd_open, pid, 0));
                        if pidfd.0 < 0 {
                            return report_attempt(pidfd, json!({"step": "pidfd_open"}));
                        }
                        let kinds = ns_flags(args.get(2).map(String::as_str).unwrap_or(""));
                        called(libc::setns(pidfd.0 as i32, kinds) as i64)
                    }
                    None => {
                        let file = std::fs::File::open(target).unwrap_or_else(|e| fail(&e));
                        called(libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), 0) as i64)
                    }
                };
                report_attempt(rc, json!({"step": "setns", "user_ns_after": ns("user")}))
            }
            "mount" => {
                let dir = cstring(args.get(1).map(String::as_str).unwrap_or_else(|| usage()));
                let (src, fstype) = (cstring("sluice-probe"), cstring("tmpfs"));
                let rc = called(libc::mount(
                    src.as_ptr(),
                    dir.as_ptr(),
                    fstype.as_ptr(),
                    0,
                    std::ptr::null(),
                ) as i64);
                report_attempt(rc, json!({}))
            }
            "kill" => {
                let (pid, sig): (i32, i32) = (arg(args, 1), arg(args, 2));
                report_attempt(called(libc::kill(pid, sig) as i64), json!({}))
            }
            "setuid" => {
                let uid: u32 = arg(args, 1);
                let rc = called(libc::setuid(uid) as i64);
                report_attempt(rc, json!({"uid_after": libc::getuid()}))
            }
            "write-fd" => {
                let fd: i32 = arg(args, 1);
                let text = format!("{}\n", args.get(2).map(String::as_str).unwrap_or_default());
                let rc = called(libc::write(fd, text.as_ptr().cast(), text.len()) as i64);
                report_attempt(rc, json!({}))
            }
            "read" => match std::fs::read(args.get(1).unwrap_or_else(|| usage())) {
                Ok(bytes) => print(
                    json!({"ok": true, "text": String::from_utf8_lossy(&bytes[..bytes.len().min(65536)])}),
                ),
                Err(e) => fail(&e),
            },
            "write" => {
                let text = args.get(2).cloned().unwrap_or_default();
                match std::fs::write(args.get(1).unwrap_or_else(|| usage()), text) {
                    Ok(()) => print(json!({"ok": true})),
                    Err(e) => fail(&e),
                }
            }
            // Move this process into another cgroup (leaving an intercepted one).
            "join-cgroup" => {
                let dir = args.get(1).unwrap_or_else(|| usage());
                let r = std::fs::write(
                    format!("{dir}/cgroup.procs"),
                    std::process::id().to_string(),
                );
                match r {
                    Ok(()) => print(json!({"ok": true, "cgroup": cgroup_v2()})),
                    Err(e) => print(
                        json!({"ok": false, "errno": e.raw_os_error(), "error": e.to_string(), "cgroup": cgroup_v2()}),
                    ),
                }
            }
            _ => usage(),
        }
    }
}

/// `user,net,mount,...` as CLONE_NEW* flags.
fn ns_flags(list: &str) -> libc::c_int {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "user" => libc::CLONE_NEWUSER,
            "net" => libc::CLONE_NEWNET,
            "mount" => libc::CLONE_NEWNS,
            "pid" => libc::CLONE_NEWPID,
            "uts" => libc::CLONE_NEWUTS,
            "ipc" => libc::CLONE_NEWIPC,
            "cgroup" => libc::CLONE_NEWCGROUP,
            _ => usage(),
        })
        .fold(0, |a, b| a | b)
}

/// A process to attack: holds SECRET in memory (and, with `--connect`, a TCP connection made
/// where it runs), prints where they are, and waits until stdin closes.
pub fn victim(args: &[String]) {
    let secret = args.first().cloned().unwrap_or_else(|| usage());
    let conn = args
        .iter()
        .position(|a| a == "--connect")
        .and_then(|i| args.get(i + 1))
        .map(|a| {
            let addr: SocketAddr = a.parse().unwrap_or_else(|_| usage());
            TcpStream::connect_timeout(&addr, TIMEOUT).unwrap_or_else(|e| fail(&e))
        });
    print(json!({
        "pid": std::process::id(),
        "addr": secret.as_ptr() as usize,
        "len": secret.len(),
        "fd": conn.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
    }));
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    // Keep both alive until here.
    drop((std::hint::black_box(secret), conn));
}
