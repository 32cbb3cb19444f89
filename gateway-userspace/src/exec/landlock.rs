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
//! - **Scoping** (ABI 6, Linux 6.12): the agent cannot signal processes outside its sandbox (the
//!   gateway, same-user processes) nor connect to their abstract unix sockets. Best effort: on
//!   older kernels it is skipped, and logged.
//!
//! The ruleset is built, and the granted paths opened, before privileges are dropped; it is
//! enforced after `no_new_privs` and the user switch.

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

pub fn prepare(rules: Option<&LandlockRules>) -> anyhow::Result<Prepared> {
    let mut ruleset = Ruleset::default().scope(Scope::from_all(SCOPE_ABI))?;
    if rules.is_some() {
        ruleset = ruleset.handle_access(AccessFs::from_all(FS_ABI))?;
    }
    let mut created = ruleset.create()?;
    if let Some(r) = rules {
        created = created
            .add_rules(path_beneath_rules(&r.read, AccessFs::from_read(FS_ABI)))
            .context("landlock: opening a `read` path")?
            .add_rules(path_beneath_rules(&r.write, AccessFs::from_all(FS_ABI)))
            .context("landlock: opening a `write` path")?;
    }
    Ok(Prepared {
        ruleset: created,
        filesystem: rules.is_some(),
    })
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
            (false, RulesetStatus::NotEnforced) => info!(
                event = "exec_landlock",
                "Landlock scoping unavailable on this kernel: the agent may signal processes of \
                 its user outside the sandbox"
            ),
            (false, _) => {}
        }
        Ok(())
    }
}
