//! cgroup v2 discovery and management.

use std::{
    fs,
    io::{self, BufRead},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};

/// Finds the cgroup v2 hierarchy: `/sys/fs/cgroup` on pure v2 hosts (and most Kubernetes nodes),
/// `/sys/fs/cgroup/unified` on hybrid hosts.
pub fn cgroup2_mount() -> anyhow::Result<PathBuf> {
    let mounts = fs::File::open("/proc/self/mounts").context("reading /proc/self/mounts")?;
    let mut found = Vec::new();
    for line in io::BufReader::new(mounts).lines() {
        let line = line?;
        let mut fields = line.split_whitespace();
        let (_dev, dir, fstype) = (fields.next(), fields.next(), fields.next());
        if fstype == Some("cgroup2")
            && let Some(dir) = dir
        {
            found.push(PathBuf::from(dir));
        }
    }
    // Prefer the canonical locations when several are mounted.
    for preferred in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        if let Some(p) = found.iter().find(|p| p.as_os_str() == preferred) {
            return Ok(p.clone());
        }
    }
    found.into_iter().next().context(
        "no cgroup v2 hierarchy is mounted (looked for cgroup2 in /proc/self/mounts); \
         sluice intercepts connects with cgroup v2 eBPF programs",
    )
}

/// Resolves a target's cgroup directory below the mount and refuses the root cgroup: attaching
/// there would intercept every process on the host, sluice included.
pub fn resolve(mount: &Path, relative: &str) -> anyhow::Result<PathBuf> {
    let dir = mount.join(relative.trim_matches('/'));
    let canon = dir
        .canonicalize()
        .with_context(|| format!("cgroup {} does not exist", dir.display()))?;
    if canon == mount.canonicalize()? {
        bail!(
            "refusing to intercept the root cgroup {}: it holds every process on the host, \
             sluice included; name the agent's own cgroup instead",
            canon.display()
        );
    }
    if !canon.starts_with(mount) {
        bail!(
            "cgroup {} is outside the cgroup v2 mount {}",
            canon.display(),
            mount.display()
        );
    }
    if !canon.join("cgroup.procs").exists() {
        bail!("{} is not a cgroup v2 directory", canon.display());
    }
    Ok(canon)
}

/// The cgroup v2 directory of a process.
pub fn cgroup_of(pid: &str, mount: &Path) -> anyhow::Result<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .context("process has no cgroup v2 membership")?;
    Ok(mount.join(rel.trim_start_matches('/')))
}

/// Moves a process into a cgroup.
pub fn move_pid(cgroup_dir: &Path, pid: u32) -> anyhow::Result<()> {
    fs::write(cgroup_dir.join("cgroup.procs"), pid.to_string())
        .with_context(|| format!("moving pid {pid} into {}", cgroup_dir.display()))
}

/// The managed cgroup directory of a target without an explicit `cgroup:`.
pub fn managed_dir(mount: &Path, target: &str) -> PathBuf {
    mount.join("sluice").join(target)
}

/// Removes a managed cgroup when no process is left in it.
pub fn remove_if_empty(dir: &Path) -> io::Result<bool> {
    let procs = fs::read_to_string(dir.join("cgroup.procs"))?;
    if !procs.trim().is_empty() {
        return Ok(false);
    }
    fs::remove_dir(dir)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_the_root_cgroup() {
        let mount = cgroup2_mount().expect("this host must have cgroup v2 (see README)");
        let err = resolve(&mount, "/").unwrap_err().to_string();
        assert!(
            err.contains("refusing to intercept the root cgroup"),
            "{err}"
        );
        let err = resolve(&mount, "no-such-cgroup-sluice")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn finds_our_own_cgroup() {
        let mount = cgroup2_mount().unwrap();
        let mine = cgroup_of("self", &mount).unwrap();
        assert!(mine.starts_with(&mount));
    }
}
