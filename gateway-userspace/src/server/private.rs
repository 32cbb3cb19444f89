//! The gateway's own directories: `state_dir` (leases, the approval store and socket) and
//! `data_dir` (the audit log, its key and witness, the SSH host key) are made private before
//! anything is written into them (see [`crate::files::ensure_private_dir`]).

use std::{
    ffi::{OsStr, OsString},
    path::Path,
};

use anyhow::Context;

use crate::config::{Config, StoreSettings};

/// File names sluice itself makes in its directories (both may be one directory): an open
/// directory holding only these is sluice's own and is tightened; anything else means it is
/// shared, and it is refused.
fn own_names(config: &Config) -> Vec<OsString> {
    let mut names: Vec<OsString> = ["targets", crate::proto::ssh::settings::HOST_KEY_FILE]
        .into_iter()
        .map(OsString::from)
        .collect();
    let mut add = |path: &Path, suffixes: &[&str]| {
        if let Some(name) = path.file_name() {
            for s in suffixes {
                let mut n = name.to_owned();
                n.push(s);
                names.push(n);
            }
        }
    };
    let sqlite = ["", "-wal", "-shm", "-journal"];
    if let StoreSettings::Sqlite(p) = &config.audit.store {
        add(p, &sqlite);
    }
    add(&config.audit.key, &[""]);
    add(&config.audit.witness, &["", ".tmp"]);
    if let Some(a) = &config.approvals {
        add(&a.store_path(&config.state_dir), &sqlite);
        add(&a.socket_path(&config.state_dir), &["", ".lock"]);
    }
    names
}

/// Makes `state_dir` and `data_dir` private (0700, owned by the gateway's user).
pub fn prepare_dirs(config: &Config) -> anyhow::Result<()> {
    let names = own_names(config);
    let is_own = |n: &OsStr| names.iter().any(|o| o == n);
    for (what, dir) in [
        ("state_dir", &config.state_dir),
        ("data_dir", &config.data_dir),
    ] {
        crate::files::ensure_private_dir(dir, is_own)
            .with_context(|| format!("preparing {what} {}", dir.display()))?;
    }
    Ok(())
}
