//! Child cgroups: one fresh cgroup per test, never the root, removed with what is left in it.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{require_root, unique};

/// The cgroup v2 mount of this host.
pub fn cgroup2_mount() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let found: Vec<&str> = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1])
        })
        .collect();
    let pick = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find(|p| found.contains(p))
        .or(found.first().copied())
        .expect("cgroup v2 must be mounted (tests attach eBPF to a child cgroup)");
    PathBuf::from(pick)
}

/// A fresh child cgroup, removed (after killing what is left in it) on drop.
pub struct TestCgroup {
    pub dir: PathBuf,
    /// Path relative to the cgroup v2 mount, as written in a policy.
    pub relative: String,
}

impl TestCgroup {
    pub fn new() -> TestCgroup {
        require_root();
        let relative = unique("sluice-test-");
        let dir = cgroup2_mount().join(&relative);
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("creating cgroup {}: {e}", dir.display()));
        TestCgroup { dir, relative }
    }
}

impl Default for TestCgroup {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        remove_cgroup(&self.dir);
    }
}

/// Kills every process in a cgroup and removes it.
pub fn remove_cgroup(dir: &Path) {
    for _ in 0..50 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill with a pid read from the cgroup; at worst the process is gone.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// For the clients in `src/bin`: a leading `--cgroup DIR` in `args` moves this process into
/// that cgroup (before it does anything else) and is removed from `args`.
pub fn join_cgroup_arg(args: &mut Vec<String>) {
    if args.first().map(String::as_str) == Some("--cgroup") {
        let dir = args.get(1).expect("--cgroup DIR").clone();
        std::fs::write(
            format!("{dir}/cgroup.procs"),
            std::process::id().to_string(),
        )
        .expect("joining the cgroup");
        args.drain(..2);
    }
}
