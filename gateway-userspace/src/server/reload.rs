//! Policy hot reload: on SIGHUP, and when the policy file changes (polled, so editors that
//! replace the file and config-map volumes that swap symlinks are both seen).
//!
//! Rules, guardrail settings and alerts take effect for the next command of every session.
//! Listeners, targets and resources are wired into the kernel and the accept loop at start;
//! a changed file that touches them is still applied for its rules, with a warning that those
//! parts need a restart.

use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::{config::Config, services::Services};

const POLL: Duration = Duration::from_secs(1);

/// What identifies a version of the file without reading it every second.
fn fingerprint(path: &PathBuf) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn wiring(c: &Config) -> String {
    format!(
        "{:?}{:?}{:?}{:?}",
        c.listen, c.listen_v6, c.targets, c.resources
    )
}

pub async fn watch(path: PathBuf, services: Arc<Services>) {
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot watch SIGHUP; policy reload only on file change");
            return;
        }
    };
    let mut seen = fingerprint(&path);
    let mut tick = tokio::time::interval(POLL);
    loop {
        let trigger = tokio::select! {
            _ = hup.recv() => "SIGHUP",
            _ = tick.tick() => {
                let now = fingerprint(&path);
                if now == seen { continue; }
                seen = now;
                "file change"
            }
        };
        match Config::load(&path) {
            Ok(new) => {
                let old = services.policy();
                if wiring(&old) != wiring(&new) {
                    warn!(event = "policy_restart_needed", file = %path.display(),
                          "listeners, targets or resources changed: they apply after a restart");
                }
                let rules = new.rules.len();
                match services.replace_policy(Arc::new(new)) {
                    Ok(()) => {
                        info!(event = "policy_reloaded", trigger, file = %path.display(), rules, "policy reloaded")
                    }
                    Err(e) => {
                        error!(event = "policy_rejected", trigger, file = %path.display(), errors = %e,
                                     "new masking settings rejected; the previous policy stays in force")
                    }
                }
            }
            Err(e) => {
                error!(event = "policy_rejected", trigger, file = %path.display(), errors = %e,
                       "new policy rejected; the previous policy stays in force");
            }
        }
    }
}
