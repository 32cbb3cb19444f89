//! The agent's seccomp filter: system calls that reach other processes, the kernel's
//! configuration or a way around the cgroup, refused with `EPERM`.
//!
//! Why `EPERM` and not a kill: every call listed here is one the kernel already refuses with
//! `EPERM` to an unprivileged process in some configuration (ptrace of a non-dumpable process,
//! `bpf` without `CAP_BPF`, `mount` without `CAP_SYS_ADMIN`, io_uring with
//! `kernel.io_uring_disabled=2`), so programs handle it: debuggers print an error, sandboxing
//! tools and runtimes that probe (`unshare`, io_uring, user namespaces) fall back. A kill would
//! turn a refusal into a crash that looks like a bug, which an agent retries; the call does not
//! happen either way. `clone3` alone gets `ENOSYS` (below).
//!
//! Three filters are stacked (the kernel runs all; the strictest answer wins):
//! 1. the denylist, `EPERM`; any other architecture's calls (i386 through `int 0x80`) kill the
//!    process, as numbers from another table would slip past a list of x86-64 numbers;
//! 2. `clone3` gets `ENOSYS`: its flags live in a struct in memory, which seccomp cannot read,
//!    so namespace flags could not be filtered. glibc and others then fall back to `clone`,
//!    whose flags are a register and are filtered by (1);
//! 3. (x86-64) calls through the x32 ABI (`nr | 0x40000000`) get `ENOSYS`, as on kernels built
//!    without x32: their numbers would otherwise not match the list.
//!
//! `io_uring_setup`/`_enter`/`_register` are denied: operations submitted through a ring are not
//! system calls, so seccomp never sees them, and io_uring has been the kernel's most exploited
//! subsystem (which is why Android, ChromeOS and Docker's default profile disable it). libuv
//! (Node.js) and the other runtimes that use it fall back to threads when setup fails.

use std::collections::BTreeMap;

use anyhow::Context;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// `open_tree_attr` (Linux 6.15; the same number on every architecture), not yet in `libc`.
const SYS_OPEN_TREE_ATTR: i64 = 467;

/// Every denied call, with why.
pub const DENIED: &[(&str, i64, &str)] = &[
    // Other processes: read or write their memory, steal their descriptors (a socket made
    // outside the cgroup is not governed by its hooks), compare or advise on them.
    (
        "ptrace",
        libc::SYS_ptrace,
        "reads and rewrites other processes of the same user",
    ),
    (
        "process_vm_readv",
        libc::SYS_process_vm_readv,
        "reads another process's memory",
    ),
    (
        "process_vm_writev",
        libc::SYS_process_vm_writev,
        "writes another process's memory",
    ),
    (
        "pidfd_getfd",
        libc::SYS_pidfd_getfd,
        "takes a descriptor (an ungoverned socket) from another process",
    ),
    (
        "kcmp",
        libc::SYS_kcmp,
        "probes another process's descriptors and memory",
    ),
    (
        "process_madvise",
        libc::SYS_process_madvise,
        "acts on another process's memory",
    ),
    // The kernel's own configuration and code.
    (
        "bpf",
        libc::SYS_bpf,
        "opens pinned sluice links to detach them; loads programs",
    ),
    (
        "perf_event_open",
        libc::SYS_perf_event_open,
        "observes other processes and the kernel",
    ),
    (
        "kexec_load",
        libc::SYS_kexec_load,
        "replaces the running kernel",
    ),
    (
        "kexec_file_load",
        libc::SYS_kexec_file_load,
        "replaces the running kernel",
    ),
    ("init_module", libc::SYS_init_module, "loads kernel code"),
    ("finit_module", libc::SYS_finit_module, "loads kernel code"),
    (
        "delete_module",
        libc::SYS_delete_module,
        "unloads kernel code",
    ),
    (
        "swapon",
        libc::SYS_swapon,
        "changes swap (memory of other processes on disk)",
    ),
    ("swapoff", libc::SYS_swapoff, "changes swap"),
    ("reboot", libc::SYS_reboot, "stops the host"),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl, "raw I/O port access"),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm, "raw I/O port access"),
    // The filesystem view: mounts could hide or replace what Landlock and the policy name.
    ("mount", libc::SYS_mount, "changes the filesystem view"),
    ("umount2", libc::SYS_umount2, "changes the filesystem view"),
    ("fsopen", libc::SYS_fsopen, "new mount API"),
    ("fsmount", libc::SYS_fsmount, "new mount API"),
    ("fsconfig", libc::SYS_fsconfig, "new mount API"),
    ("fspick", libc::SYS_fspick, "new mount API"),
    ("move_mount", libc::SYS_move_mount, "new mount API"),
    ("open_tree", libc::SYS_open_tree, "new mount API"),
    ("open_tree_attr", SYS_OPEN_TREE_ATTR, "new mount API"),
    (
        "mount_setattr",
        libc::SYS_mount_setattr,
        "changes mount flags",
    ),
    (
        "pivot_root",
        libc::SYS_pivot_root,
        "changes the root filesystem",
    ),
    // Namespaces: a new user namespace grants every capability inside it (and with it a new
    // network namespace, whose sockets no hook of the agent's cgroup expects); entering another
    // process's namespaces leaves the agent's.
    ("setns", libc::SYS_setns, "enters other namespaces"),
    (
        "unshare",
        libc::SYS_unshare,
        "creates namespaces (user namespaces grant capabilities)",
    ),
    // Files by handle bypass path checks (Landlock); userfaultfd stalls the kernel at will.
    (
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        "opens files by handle, past path checks",
    ),
    (
        "userfaultfd",
        libc::SYS_userfaultfd,
        "pauses kernel code mid-copy (exploit primitive)",
    ),
    // Kernel keyrings hold other processes' secrets (session keyrings, cached credentials).
    ("keyctl", libc::SYS_keyctl, "kernel keyrings"),
    ("add_key", libc::SYS_add_key, "kernel keyrings"),
    ("request_key", libc::SYS_request_key, "kernel keyrings"),
    // See the module header.
    (
        "io_uring_setup",
        libc::SYS_io_uring_setup,
        "operations in a ring bypass seccomp",
    ),
    (
        "io_uring_enter",
        libc::SYS_io_uring_enter,
        "operations in a ring bypass seccomp",
    ),
    (
        "io_uring_register",
        libc::SYS_io_uring_register,
        "operations in a ring bypass seccomp",
    ),
];

/// `clone` flags that create namespaces (`CLONE_NEWTIME` is only valid for `unshare`/`clone3`;
/// in `clone` that bit belongs to the exit signal).
pub const CLONE_NAMESPACE_FLAGS: &[(&str, u64)] = &[
    ("CLONE_NEWNS", libc::CLONE_NEWNS as u64),
    ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP as u64),
    ("CLONE_NEWUTS", libc::CLONE_NEWUTS as u64),
    ("CLONE_NEWIPC", libc::CLONE_NEWIPC as u64),
    ("CLONE_NEWUSER", libc::CLONE_NEWUSER as u64),
    ("CLONE_NEWPID", libc::CLONE_NEWPID as u64),
    ("CLONE_NEWNET", libc::CLONE_NEWNET as u64),
];

/// The compiled filters, in the order they are installed.
pub struct Filters(Vec<BpfProgram>);

/// Compiles the filters (before any privilege is dropped; installing them is then two calls).
pub fn compile() -> anyhow::Result<Filters> {
    let arch: TargetArch = std::env::consts::ARCH
        .try_into()
        .context("seccomp: this architecture is not supported")?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&(_, nr, _)| (nr, Vec::new())).collect();
    // One rule per flag: rules are alternatives, so any namespace flag set matches.
    let clone_rules = CLONE_NAMESPACE_FLAGS
        .iter()
        .map(|&(_, flag)| {
            SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )?])
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?;
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    let mut filters = vec![deny.try_into()?, clone3.try_into()?];
    #[cfg(target_arch = "x86_64")]
    filters.push(x32_guard());
    Ok(Filters(filters))
}

/// `ENOSYS` for every x32 call. seccompiler matches exact numbers only; a range needs these six
/// instructions, written out.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> BpfProgram {
    use seccompiler::sock_filter;
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let op = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        op(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        op(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW), // other arches: filter (1) kills
        op(LD_W_ABS, 0, 0, 0),                    // seccomp_data.nr
        op(JGE_K, 0, 1, X32_SYSCALL_BIT),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

impl Filters {
    /// Installs every filter on the calling thread (the process is single-threaded here, and
    /// `execve` keeps them). Needs `no_new_privs` or `CAP_SYS_ADMIN`; sets `no_new_privs`.
    pub fn install(self) -> anyhow::Result<()> {
        for f in &self.0 {
            seccompiler::apply_filter(f).context("installing the seccomp filter")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filters in a child process (fork keeps the test runner unfiltered): denied calls fail
    /// with EPERM, `clone3` with ENOSYS, ordinary calls and plain `clone` work.
    #[test]
    #[allow(unsafe_code)] // fork, raw syscalls and _exit in the child
    fn denied_calls_fail_with_eperm_and_clone3_with_enosys() {
        let filters = compile().unwrap();
        // SAFETY: the child only makes raw system calls and exits with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            let code = (|| {
                if filters.install().is_err() {
                    return 10;
                }
                // SAFETY: raw system calls with harmless arguments; each must fail.
                unsafe {
                    if libc::unshare(libc::CLONE_NEWUSER) != -1 || errno() != libc::EPERM {
                        return 11;
                    }
                    if libc::syscall(libc::SYS_ptrace, libc::PTRACE_ATTACH, 1, 0, 0) != -1
                        || errno() != libc::EPERM
                    {
                        return 12;
                    }
                    let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong;
                    if libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) != -1
                        || errno() != libc::EPERM
                    {
                        return 13;
                    }
                    if libc::syscall(libc::SYS_clone3, 0, 0) != -1 || errno() != libc::ENOSYS {
                        return 14;
                    }
                    if libc::syscall(libc::SYS_getpid | 0x4000_0000) != -1
                        || errno() != libc::ENOSYS
                    {
                        return 15;
                    }
                    if libc::getpid() <= 0 {
                        return 16;
                    }
                    // Plain process creation still works.
                    let child = libc::fork();
                    if child == 0 {
                        libc::_exit(0);
                    }
                    let mut status = 0;
                    if child < 0 || libc::waitpid(child, &mut status, 0) != child {
                        return 17;
                    }
                }
                0
            })();
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "child died: {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "see the return codes above");
    }

    #[test]
    fn every_denied_call_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (name, nr, why) in DENIED {
            assert!(seen.insert(*nr), "{name} twice");
            assert!(!why.is_empty());
        }
    }
}
