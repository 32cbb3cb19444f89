//! Runtime state of a running gateway, so `sluice exec` can find the target it joins and two
//! gateways never serve the same target.
//!
//! `<state_dir>/targets/<name>.lock` is held (flock) for the life of the gateway;
//! `<name>.json` says which cgroup the target is and which process serves it.

use std::{
    fs::{self, File, TryLockError},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetState {
    pub target: String,
    pub pid: u32,
    pub cgroup_dir: PathBuf,
    pub listen: String,
    /// sluice's own files and directories (state, data, policy, secrets, stores): `sluice exec`
    /// hides them from the agents it starts.
    #[serde(default)]
    pub protected: Vec<PathBuf>,
}

/// Held while a gateway serves a target; removes the state file when dropped.
#[derive(Debug)]
pub struct TargetLease {
    _lock: File,
    state_path: PathBuf,
}

fn paths(state_dir: &Path, target: &str) -> (PathBuf, PathBuf) {
    let dir = state_dir.join("targets");
    (
        dir.join(format!("{target}.lock")),
        dir.join(format!("{target}.json")),
    )
}

fn open_lock(path: &Path) -> anyhow::Result<File> {
    crate::files::open_private_rw(path).with_context(|| format!("opening {}", path.display()))
}

impl TargetLease {
    /// Claims a target for this process, or explains who holds it.
    pub fn acquire(state_dir: &Path, state: &TargetState) -> anyhow::Result<TargetLease> {
        let (lock_path, state_path) = paths(state_dir, &state.target);
        // Only sluice's own locks and state files live here.
        let dir = lock_path.parent().expect("has parent");
        crate::files::ensure_private_dir(dir, |name| {
            let name = name.to_string_lossy();
            name.ends_with(".lock") || name.ends_with(".json") || name.ends_with(".json.tmp")
        })
        .with_context(|| format!("preparing {}", dir.display()))?;
        let lock = open_lock(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_state(state_dir, &state.target)
                    .map(|s| format!(" (pid {})", s.pid))
                    .unwrap_or_default();
                bail!(
                    "target `{}` is already served by another sluice gateway{holder}",
                    state.target
                );
            }
            Err(TryLockError::Error(e)) => return Err(e).context("locking the target"),
        }
        crate::files::write_private_atomic(&state_path, &serde_json::to_vec_pretty(state)?)?;
        Ok(TargetLease {
            _lock: lock,
            state_path,
        })
    }
}

impl Drop for TargetLease {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.state_path);
    }
}

fn read_state(state_dir: &Path, target: &str) -> Option<TargetState> {
    let (_, state_path) = paths(state_dir, target);
    serde_json::from_slice(&fs::read(state_path).ok()?).ok()
}

/// The state of a target if a live gateway holds it; `None` when nobody serves it (a state file
/// left by a crashed gateway does not count: its lock died with it).
pub fn running_target(state_dir: &Path, target: &str) -> anyhow::Result<Option<TargetState>> {
    let (lock_path, _) = paths(state_dir, target);
    if !lock_path.exists() {
        return Ok(None);
    }
    // Read-only: probing must neither create nor change anything (exec may run as another
    // user than the gateway); flock works on any open file.
    let lock =
        File::open(&lock_path).with_context(|| format!("opening {}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => Ok(read_state(state_dir, target)),
        Err(TryLockError::Error(e)) => Err(e).context("probing the target lock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_served_once_and_released_on_drop() {
        let dir = std::env::temp_dir().join(format!("sluice-state-test-{}", std::process::id()));
        let state = TargetState {
            target: "agents".into(),
            pid: std::process::id(),
            cgroup_dir: "/sys/fs/cgroup/sluice/agents".into(),
            listen: "127.0.0.1:15001".into(),
            protected: vec!["/var/lib/sluice".into()],
        };
        assert_eq!(running_target(&dir, "agents").unwrap(), None);
        let lease = TargetLease::acquire(&dir, &state).unwrap();
        assert_eq!(running_target(&dir, "agents").unwrap(), Some(state));
        let again = TargetState {
            pid: 1,
            ..read_state(&dir, "agents").unwrap()
        };
        let err = TargetLease::acquire(&dir, &again).unwrap_err().to_string();
        assert!(err.contains("already served"), "{err}");
        drop(lease);
        assert_eq!(running_target(&dir, "agents").unwrap(), None);
        let _ = fs::remove_dir_all(dir);
    }
}
