//! The bpffs pins of a target: where they live, and removing them (the only way interception
//! ends; see the module doc of `ebpf`).

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use aya::programs::links::PinnedLink;
use gateway_common::{ClientKey, ConnRecord};

use super::PIN_ROOT;

/// Pin directory of a target.
pub fn pin_dir(target: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(target)
}

/// The shared record maps live in a directory named after their layout: a gateway whose records
/// differ never reuses another's maps.
pub(super) fn maps_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join(format!(
        "maps-{}-{}",
        std::mem::size_of::<ConnRecord>(),
        std::mem::size_of::<ClientKey>()
    ))
}

pub(super) fn ensure_bpffs() -> anyhow::Result<()> {
    let mounts = fs::read_to_string("/proc/self/mounts")?;
    let mounted = mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 2 && f[1] == "/sys/fs/bpf" && f[2] == "bpf"
    });
    if !mounted {
        bail!(
            "bpffs is not mounted at /sys/fs/bpf; sluice pins its links there so interception \
             fails closed if the gateway dies. Run `mount -t bpf bpf /sys/fs/bpf` (cargo xtask setup does)"
        );
    }
    Ok(())
}

/// Creates a root-only directory (and tightens an existing one): pins give whoever can open
/// them the programs and maps.
pub(super) fn private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))
}

pub(super) fn remove_other_map_dirs(pin_dir: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(pin_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && path != keep {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Removes a target's pins: links (detaching them), shared maps, the directory.
pub(super) fn remove_pins(dir: &Path) -> anyhow::Result<usize> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut n = 0;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            fs::remove_dir_all(&path)?;
        } else if let Ok(link) = PinnedLink::from_pin(&path) {
            drop(link.unpin()?);
            n += 1;
        } else {
            fs::remove_file(&path)?;
        }
    }
    let _ = fs::remove_dir(dir);
    Ok(n)
}

/// Whether a target has pinned interception (a gateway running or gone).
pub fn has_pins(target: &str) -> bool {
    fs::read_dir(pin_dir(target))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
}

/// Detaches what a gateway left pinned (`sluice cleanup --detach`); returns the number of links.
pub fn remove_stale_pins(target: &str) -> anyhow::Result<usize> {
    remove_pins(&pin_dir(target))
}
