//! What `sluice exec` takes away from the agent before it runs, in this order:
//!
//! 1. (the caller already joined the target's cgroup: that needs the privileges dropped below)
//! 2. **capability bounding set**: emptied when the agent runs as another user; with
//!    `--allow-root`, everything but [`ROOT_KEEPS`] is dropped. This comes before the user
//!    switch, as dropping needs `CAP_SETPCAP`, which the switch takes away. Inheritable and
//!    ambient sets are cleared, so nothing comes back at `execve`.
//! 3. **user**: supplementary groups (`initgroups`), gid, uid (real, effective and saved), then
//!    verified: the ids read back, the groups read back, and `setresuid(0)` must fail.
//!    `HOME`, `USER`, `LOGNAME` and `SHELL` come from the password database.
//! 4. **`no_new_privs`**: setuid binaries and file capabilities give nothing at `execve`.
//! 5. **Landlock** (see [`super::landlock`]).
//! 6. **seccomp** (see [`super::seccomp`]).
//! 7. **descriptors**: every descriptor from 3 up is marked close-on-exec (`close_range`): a
//!    socket made outside the cgroup and inherited is not governed by the cgroup's hooks.
//! 8. **environment**: see [`super::env`]; then `execve`.
//!
//! The process is single-threaded throughout (checked): seccomp and Landlock apply to the
//! calling thread, and a set*id on one thread of many is a classic leak.
//!
//! Root is refused as the agent's user unless `--allow-root`: root owns the host's files, and
//! only what this sandbox sets up (capabilities, seccomp, Landlock hiding sluice's paths and the
//! kernel interfaces) stands between it and them. A non-root caller cannot change the bounding set (no
//! `CAP_SETPCAP`); `no_new_privs` then keeps the agent from gaining what is in it.

use std::{
    collections::BTreeSet,
    ffi::{CString, OsString},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User};
use tracing::{info, warn};

use super::{
    env::{self, EnvArg, LoginVars},
    landlock, seccomp,
    settings::LandlockRules,
};

/// What a root agent keeps with `--allow-root`: owning and changing files, switching users,
/// low ports. Dropped: everything that reaches the kernel, other processes or the network stack
/// (SYS_ADMIN, SYS_PTRACE, SYS_MODULE, SYS_RAWIO, SYS_BOOT, SYS_TIME, SYS_RESOURCE, SYS_NICE,
/// SYS_CHROOT, SYS_PACCT, SYS_TTY_CONFIG, NET_ADMIN, NET_RAW, NET_BROADCAST, BPF, PERFMON,
/// MAC_ADMIN, MAC_OVERRIDE, AUDIT_CONTROL, AUDIT_READ, AUDIT_WRITE, SETPCAP, SETFCAP, MKNOD (a
/// device node of the disk reads everything), KILL, DAC_READ_SEARCH (open_by_handle_at),
/// LINUX_IMMUTABLE, IPC_LOCK, IPC_OWNER, LEASE, SYSLOG, WAKE_ALARM, BLOCK_SUSPEND,
/// CHECKPOINT_RESTORE, and any capability newer than these).
pub const ROOT_KEEPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_NET_BIND_SERVICE,
];

/// How the agent is to be confined, as asked (policy and command line).
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub target: String,
    /// `--user`, else the target's `run_as`.
    pub user: Option<String>,
    pub allow_root: bool,
    pub landlock: Option<LandlockRules>,
    /// sluice's own paths, hidden from the agent when the target grants nothing itself (what
    /// the serving gateway published in its target state).
    pub hidden: Vec<PathBuf>,
    pub env_args: Vec<EnvArg>,
    /// Variables the policy's secrets were read from (empty without a policy at hand).
    pub secret_env: BTreeSet<String>,
}

/// Who the agent will be.
#[derive(Clone, Debug)]
pub struct Identity {
    pub uid: Uid,
    pub gid: Gid,
    /// Set when switching to another user.
    pub switch_to: Option<User>,
}

impl Spec {
    /// Resolves the user, refuses root, and builds the environment: every check that can fail
    /// before anything is started.
    pub fn check(&self) -> anyhow::Result<(Identity, Vec<(OsString, OsString)>)> {
        let identity = match &self.user {
            Some(name) => {
                let user = User::from_name(name)
                    .with_context(|| format!("looking up user `{name}`"))?
                    .with_context(|| format!("user `{name}` does not exist on this host"))?;
                // An unprivileged caller naming itself: nothing to switch (and no right to).
                let same = user.uid == Uid::current() && !Uid::current().is_root();
                Identity {
                    uid: user.uid,
                    gid: user.gid,
                    switch_to: (!same).then_some(user),
                }
            }
            None => Identity {
                uid: Uid::current(),
                gid: Gid::current(),
                switch_to: None,
            },
        };
        if identity.uid.is_root() && !self.allow_root {
            bail!(
                "refusing to run the agent as root (target `{}`): a root agent can leave the \
                 intercepted cgroup, read sluice's credentials and state, and detach \
                 interception. Give the target `run_as: USER` in the policy or pass \
                 `--user USER` (e.g. `useradd --system --no-create-home sluice-agent`); \
                 `--allow-root` runs it as root anyway, contained only as far as this sandbox \
                 (capabilities, seccomp, Landlock) reaches",
                self.target
            );
        }
        let login = match &identity.switch_to {
            Some(u) => LoginVars {
                user: Some(u.name.clone()),
                home: Some(u.dir.clone().into()),
                shell: Some(u.shell.clone().into()),
            },
            None => LoginVars::default(),
        };
        let env = env::agent_env(
            std::env::vars_os(),
            &self.env_args,
            &self.secret_env,
            &login,
        )?;
        Ok((identity, env))
    }

    /// Joins `cgroup_dir`, drops everything (see the module header) and replaces this process
    /// with `command`. Returns only on failure.
    pub fn enter_and_exec(&self, cgroup_dir: &Path, command: &[String]) -> anyhow::Error {
        match self.enter(cgroup_dir) {
            Ok(env) => {
                let err = std::process::Command::new(&command[0])
                    .args(&command[1..])
                    .env_clear()
                    .envs(env)
                    .exec();
                anyhow::anyhow!("cannot run `{}`: {err}", command[0])
            }
            Err(e) => e,
        }
    }

    fn enter(&self, cgroup_dir: &Path) -> anyhow::Result<Vec<(OsString, OsString)>> {
        let (identity, env) = self.check()?;
        if status_field("Threads").as_deref() != Some("1") {
            bail!("sluice exec must be single-threaded to drop privileges");
        }
        // Everything that allocates, reads files or opens paths happens here, with privileges.
        let filters = seccomp::compile()?;
        let ruleset = landlock::prepare(self.landlock.as_ref(), &self.hidden)?;
        let groups = match &identity.switch_to {
            Some(u) => Some(
                nix::unistd::getgrouplist(&CString::new(u.name.as_str())?, u.gid)
                    .context("reading the user's groups")?,
            ),
            None => None,
        };

        crate::ebpf::cgroup::move_pid(cgroup_dir, std::process::id())?;
        let bounding = drop_capabilities(identity.uid.is_root())?;
        if let (Some(user), Some(groups)) = (&identity.switch_to, groups) {
            switch_user(user, groups)?;
        }
        verify_capabilities(identity.uid.is_root(), bounding)?;
        nix::sys::prctl::set_no_new_privs().context("setting no_new_privs")?;
        ruleset.enforce(&self.target)?;
        filters.install()?;
        mark_descriptors_cloexec()?;
        if identity.uid.is_root() {
            warn!(
                event = "exec_allow_root",
                target = %self.target,
                "running the agent as root (--allow-root): it keeps uid 0 and is contained only \
                 as far as this sandbox reaches: the capabilities that reach the kernel, other \
                 processes and the network stack are dropped, seccomp and no_new_privs apply, \
                 Landlock hides sluice's files and keeps it from writing /proc and /sys (no \
                 cgroup escape, no sysctl); root can still change the host's other files, \
                 which processes outside later run (cron, units)"
            );
        }
        info!(
            event = "exec_sandbox",
            target = %self.target,
            uid = identity.uid.as_raw(),
            gid = identity.gid.as_raw(),
            seccomp_denied = seccomp::DENIED.len(),
            landlock = if self.landlock.is_some() { "grants" } else { "all but sluice's paths" },
            hidden_paths = self.hidden.len(),
            "agent sandboxed"
        );
        Ok(env)
    }
}

/// The bounding set the agent ends with: `None` when this process cannot change it.
type Bounding = Option<CapsHashSet>;

fn drop_capabilities(root_agent: bool) -> anyhow::Result<Bounding> {
    let bounding = if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)
        .unwrap_or(false)
    {
        let keep: CapsHashSet = if root_agent {
            ROOT_KEEPS.iter().copied().collect()
        } else {
            CapsHashSet::new()
        };
        for cap in caps::all().difference(&keep) {
            if caps::has_cap(None, CapSet::Bounding, *cap).unwrap_or(false) {
                caps::drop(None, CapSet::Bounding, *cap)
                    .map_err(|e| anyhow::anyhow!("dropping {cap} from the bounding set: {e}"))?;
            }
        }
        if root_agent {
            // Effective and permitted too, so the window before execve has no more than after.
            let kept: CapsHashSet = caps::read(None, CapSet::Permitted)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .intersection(&keep)
                .copied()
                .collect();
            caps::set(None, CapSet::Effective, &kept).map_err(|e| anyhow::anyhow!("{e}"))?;
            caps::set(None, CapSet::Permitted, &kept).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Some(keep)
    } else {
        None
    };
    // At execve, root's new permitted set is inheritable | bounding: both must be clean.
    caps::clear(None, CapSet::Inheritable).map_err(|e| anyhow::anyhow!("{e}"))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(bounding)
}

fn switch_user(user: &User, groups: Vec<Gid>) -> anyhow::Result<()> {
    use nix::unistd::{getgroups, getresgid, getresuid, setgroups, setresgid, setresuid};
    let who = &user.name;
    setgroups(&groups).with_context(|| format!("setting the groups of `{who}`"))?;
    setresgid(user.gid, user.gid, user.gid)
        .with_context(|| format!("switching to gid of `{who}`"))?;
    setresuid(user.uid, user.uid, user.uid).with_context(|| format!("switching to `{who}`"))?;
    let (r, g) = (getresuid()?, getresgid()?);
    if [r.real, r.effective, r.saved] != [user.uid; 3]
        || [g.real, g.effective, g.saved] != [user.gid; 3]
    {
        bail!("switching to `{who}` did not take: uids {r:?}, gids {g:?}");
    }
    let have: BTreeSet<u32> = getgroups()?.iter().map(|g| g.as_raw()).collect();
    let want: BTreeSet<u32> = groups.iter().map(|g| g.as_raw()).collect();
    if have != want {
        bail!("switching to `{who}`: groups are {have:?}, expected {want:?}");
    }
    if !user.uid.is_root()
        && setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok()
    {
        bail!("switching to `{who}`: root could be regained");
    }
    Ok(())
}

/// Reads the sets back from the kernel (all bits, also those newer than the `caps` crate).
fn verify_capabilities(root_agent: bool, bounding: Bounding) -> anyhow::Result<()> {
    let mask = |field: &str| -> anyhow::Result<u64> {
        let text = status_field(field).with_context(|| format!("reading {field}"))?;
        u64::from_str_radix(&text, 16).with_context(|| format!("parsing {field} `{text}`"))
    };
    if let Some(keep) = bounding {
        let want: u64 = keep.iter().map(|c| c.bitmask()).fold(0, |a, b| a | b);
        for field in ["CapBnd", "CapEff", "CapPrm"] {
            let have = mask(field)?;
            if have & !want != 0 {
                bail!(
                    "{field} is {have:#x} after dropping capabilities, expected within {want:#x}"
                );
            }
        }
    }
    for field in ["CapInh", "CapAmb"] {
        if mask(field)? != 0 {
            bail!("{field} is not empty after clearing it");
        }
    }
    if !root_agent {
        for field in ["CapEff", "CapPrm"] {
            if mask(field)? != 0 {
                bail!("{field} is not empty after switching users");
            }
        }
    }
    Ok(())
}

/// Marks every descriptor from 3 up close-on-exec (they stay usable for sluice's own error
/// messages until `execve`).
#[allow(unsafe_code)]
fn mark_descriptors_cloexec() -> anyhow::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors; no memory
    // is involved.
    let rc = unsafe { libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    if rc != 0 {
        bail!(
            "close_range: {} (needs Linux >= 5.11): refusing to pass inherited descriptors to \
             the agent",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// A field of `/proc/self/status` (`Threads`, `CapBnd`, ...).
fn status_field(name: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name).then(|| v.trim().to_string())
    })
}

/// Paths the hidden `--landlock-read/--landlock-write` flags carry from an own-gateway parent.
pub fn landlock_from_flags(read: &[PathBuf], write: &[PathBuf]) -> Option<LandlockRules> {
    (!read.is_empty() || !write.is_empty()).then(|| LandlockRules {
        read: read.to_vec(),
        write: write.to_vec(),
    })
}
