//! Landlock for the agent: the target's filesystem grants (optional), and scoping (always, where
//! the kernel has it).
//!
//! - **Filesystem** (`targets[].landlock`): every access right of Landlock ABI 1-9 the running
//!   kernel knows is handled, so whatever is not granted fails with `EACCES`: read, execute and
//!   list under `read`; also write, create, remove, rename/link (`refer`, ABI 2), truncate (ABI 3),
//!   device ioctls (ABI 5) and connecting to named unix sockets (ABI 9) under `write`. Descriptors
//!   opened before (the terminal) keep working. A target that asks for it on a kernel without
//!   Landlock is refused (fail closed); on an older ABI the rights it lacks are not enforced, and
//!   the log says which ABI was used.
//! - **Without grants, sluice's own paths are hidden** (always): the agent may read, write and
//!   execute everything except sluice's state, data, policy, stores and credential files (read
//!   nothing there, not even as root) and the kernel's interfaces under `/proc` and `/sys` (read
//!   only: no `cgroup.procs` escape, no sysctl, no `uid_map`). Landlock only grants, so "all but
//!   these" is built as the complement: every directory entry along the way to a hidden path is
//!   granted except the one leading to it. Entries created later directly in those ancestor
//!   directories (`/var/lib`, `/run`, `/etc` for the usual paths) are not writable by the agent.
//! - **Scoping** (ABI 6, Linux 6.12): the agent cannot signal processes outside its sandbox (the
//!   gateway, same-user processes) nor connect to their abstract unix sockets. Best effort: on
//!   older kernels it is skipped, and logged.
//!
//! The ruleset is built, and the granted paths opened, before privileges are dropped; it is
//! enforced after `no_new_privs` and the user switch.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use landlock::{
    ABI, Access, AccessFs, LandlockStatus, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};
use tracing::{info, warn};

use super::settings::LandlockRules;

/// The newest file-system rights requested (best effort: the kernel enforces what it knows).
const FS_ABI: ABI = ABI::V9;
/// Signal and abstract unix socket scoping.
const SCOPE_ABI: ABI = ABI::V6;

/// A ruleset with its paths opened, ready to be enforced.
pub struct Prepared {
    ruleset: RulesetCreated,
    /// Whether the target asked for filesystem rules (then enforcement is required).
    filesystem: bool,
}

/// Kernel interfaces: readable, never writable (cgroup moves, sysctls, `/proc/self/uid_map`...).
const READ_ONLY: [&str; 2] = ["/proc", "/sys"];
/// Entries listed per directory when building the complement; a directory with more is not
/// worth the time, and the agent then simply gets none of its entries (fail closed).
const MAX_ENTRIES: usize = 100_000;

/// `rules`: the target's own grants. Without them, everything but `hidden` (sluice's paths)
/// and writes to the kernel interfaces.
pub fn prepare(rules: Option<&LandlockRules>, hidden: &[PathBuf]) -> anyhow::Result<Prepared> {
    let mut created = Ruleset::default()
        .scope(Scope::from_all(SCOPE_ABI))?
        .handle_access(AccessFs::from_all(FS_ABI))?
        .create()?;
    match rules {
        Some(r) => {
            created = created
                .add_rules(path_beneath_rules(&r.read, AccessFs::from_read(FS_ABI)))
                .context("landlock: opening a `read` path")?
                .add_rules(path_beneath_rules(&r.write, AccessFs::from_all(FS_ABI)))
                .context("landlock: opening a `write` path")?;
        }
        None => {
            let read_only: Vec<PathBuf> = READ_ONLY.iter().map(PathBuf::from).collect();
            let (full, read) = complement(Path::new("/"), hidden, &read_only);
            created = created
                .add_rules(path_beneath_rules(&read, AccessFs::from_read(FS_ABI)))
                .context("landlock: opening a read-only path")?
                .add_rules(path_beneath_rules(&full, AccessFs::from_all(FS_ABI)))
                .context("landlock: opening a path")?;
        }
    }
    Ok(Prepared {
        ruleset: created,
        filesystem: rules.is_some(),
    })
}

/// The paths to grant so that everything under `root` is reachable except `hidden` (nothing)
/// and `read_only` (read): (full grants, read-only grants).
pub fn complement(
    root: &Path,
    hidden: &[PathBuf],
    read_only: &[PathBuf],
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut full = Vec::new();
    let mut read = Vec::new();
    let special: Vec<&PathBuf> = hidden.iter().chain(read_only).collect();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.take(MAX_ENTRIES).flatten() {
            let path = entry.path();
            if hidden.contains(&path) {
                continue;
            }
            if read_only.contains(&path) {
                read.push(path);
                continue;
            }
            // A real directory on the way to a hidden or read-only path: its other entries are
            // granted one by one (a symlink is not a way there: Landlock judges the resolved
            // path).
            let on_the_way = special.iter().any(|h| h.starts_with(&path) && **h != path);
            if on_the_way && entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else {
                full.push(path);
            }
        }
    }
    (full, read)
}

impl Prepared {
    /// Enforces the ruleset on this process (and everything it runs).
    pub fn enforce(self, target: &str) -> anyhow::Result<()> {
        let status = self.ruleset.restrict_self().context("landlock")?;
        let abi = match status.landlock {
            LandlockStatus::Available { effective_abi, .. } => Some(effective_abi as i32),
            _ => None,
        };
        match (self.filesystem, status.ruleset) {
            (true, RulesetStatus::NotEnforced) => bail!(
                "target `{target}` asks for Landlock filesystem rules, but this kernel does not \
                 enforce Landlock ({:?}); refusing to run the agent unconfined. Enable it (boot \
                 with `lsm=...,landlock`, Linux >= 5.13) or remove `landlock` from the target",
                status.landlock
            ),
            (true, RulesetStatus::PartiallyEnforced) => warn!(
                event = "exec_landlock",
                abi,
                "Landlock filesystem rules enforced as far as this kernel's ABI goes (rights of \
                 newer ABIs and scoping may be missing)"
            ),
            (true, RulesetStatus::FullyEnforced) => {
                info!(
                    event = "exec_landlock",
                    abi, "Landlock filesystem rules enforced"
                )
            }
            (false, RulesetStatus::NotEnforced) => warn!(
                event = "exec_landlock",
                "Landlock unavailable on this kernel: sluice's files are protected by their \
                 permissions only, and the agent may signal processes of its user outside the \
                 sandbox"
            ),
            (false, _) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_complement_reaches_everything_but_the_hidden_paths() {
        let root = std::env::temp_dir().join(format!("sluice-landlock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in [
            "etc/sluice",
            "var/lib/sluice",
            "var/lib/other",
            "var/log",
            "proc/sys",
            "srv",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("etc/hosts"), "").unwrap();
        std::fs::write(root.join("etc/sluice/policy.yaml"), "").unwrap();
        std::fs::write(root.join("etc/sluice/README"), "").unwrap();
        let hidden = vec![
            root.join("etc/sluice/policy.yaml"),
            root.join("var/lib/sluice"),
        ];
        let read_only = vec![root.join("proc")];
        let (mut full, read) = complement(&root, &hidden, &read_only);
        full.sort();
        let rel: Vec<String> = full
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            [
                "etc/hosts",
                "etc/sluice/README",
                "srv",
                "var/lib/other",
                "var/log"
            ]
        );
        assert_eq!(read, [root.join("proc")]);
        let _ = std::fs::remove_dir_all(&root);
    }
}
