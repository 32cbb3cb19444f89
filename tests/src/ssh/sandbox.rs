//! A sandboxed remote home for attacks over SSH: destructive programs replaced by logging
//! shims, canary files as ground truth.

use std::{path::PathBuf, process::Command};

use super::{SSH_USER, ensure_ssh_user};
use crate::{run, temp_dir};

/// Programs the [`RemoteSandbox`] replaces with a logging shim: what a destructive command
/// that got through would run. They must never run for real on the test machine.
pub const SHIMMED: &[&str] = &[
    "rm",
    "rmdir",
    "unlink",
    "shred",
    "truncate",
    "dd",
    "mkfs",
    "wipefs",
    "kill",
    "pkill",
    "killall",
    "killall5",
    "systemctl",
    "crontab",
    "poweroff",
    "reboot",
    "shutdown",
    "halt",
    "init",
    "telinit",
    "loginctl",
    "kexec",
    "dbus-send",
    "busctl",
];

/// A per-test home for [`SSH_USER`] on the test sshd, for attacks: sshd sets `HOME`, `PATH`
/// and `BASH_ENV` (sshd_config `SetEnv`) so that every session starts in `home`, `~` is
/// `home`, and [`SHIMMED`] programs found through `PATH` (and the `kill` builtin, disabled)
/// only append their argv to `log`. Canary files in `home` are the ground truth for what a
/// program that was not shimmed (an interpreter, `/bin/rm` by path) would have destroyed.
pub struct RemoteSandbox {
    pub dir: PathBuf,
    pub home: PathBuf,
    pub shims: PathBuf,
    /// One line per shimmed program that ran: its name and arguments.
    pub log: PathBuf,
    rc: PathBuf,
}

impl RemoteSandbox {
    pub fn new() -> RemoteSandbox {
        ensure_ssh_user();
        let dir = temp_dir();
        run(Command::new("chmod").arg("0755").arg(&dir));
        let (home, shims, log, rc) = (
            dir.join("home"),
            dir.join("shims"),
            dir.join("shim.log"),
            dir.join("rc.sh"),
        );
        std::fs::create_dir(&home).unwrap();
        std::fs::create_dir(&shims).unwrap();
        std::fs::write(&log, "").unwrap();
        for program in SHIMMED {
            let path = shims.join(program);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\n# sluice test shim: records what would have run, runs nothing.\n{{ printf '%s' {program}; for a in \"$@\"; do printf ' %s' \"$a\"; done; printf '\\n'; }} >> {}\nexit 0\n",
                    log.display()
                ),
            )
            .unwrap();
            run(Command::new("chmod").arg("0755").arg(&path));
        }
        // Non-interactive shells read it through BASH_ENV, login shells through .bash_profile.
        // A fork bomb that got through stops at 256 processes of the account.
        std::fs::write(
            &rc,
            format!(
                "export PATH={}:/usr/local/bin:/usr/bin:/bin\nenable -n kill 2>/dev/null\nulimit -u 256 2>/dev/null\ncd \"$HOME\" 2>/dev/null\n",
                shims.display()
            ),
        )
        .unwrap();
        std::fs::write(home.join(".bash_profile"), format!(". {}\n", rc.display())).unwrap();
        std::fs::write(home.join(".bashrc"), format!(". {}\n", rc.display())).unwrap();
        run(Command::new("chown")
            .arg("-R")
            .arg(format!("{SSH_USER}:{SSH_USER}"))
            .arg(&home)
            .arg(&log));
        run(Command::new("chmod").arg("0666").arg(&log));
        RemoteSandbox {
            dir,
            home,
            shims,
            log,
            rc,
        }
    }

    /// sshd_config lines for [`SshServer::start_with`].
    pub fn sshd_config(&self) -> String {
        format!(
            "SetEnv HOME={} PATH={}:/usr/bin:/bin BASH_ENV={}\n",
            self.home.display(),
            self.shims.display(),
            self.rc.display()
        )
    }

    /// Creates (again) the canaries: files and a directory in the sandbox home, owned by
    /// [`SSH_USER`].
    pub fn plant_canaries(&self) {
        let dir = self.home.join("canary-dir");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for (path, text) in self.canaries() {
            std::fs::write(path, text).unwrap();
        }
        run(Command::new("chown")
            .arg("-R")
            .arg(format!("{SSH_USER}:{SSH_USER}"))
            .arg(&self.home));
    }

    fn canaries(&self) -> Vec<(PathBuf, String)> {
        ["canary.txt", "canary-dir/a.txt", "canary-dir/sub/b.txt"]
            .iter()
            .map(|p| (self.home.join(p), format!("canary {p}\n")))
            .collect()
    }

    /// What the shims recorded so far.
    pub fn shim_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Empties the shim log.
    pub fn clear_log(&self) {
        std::fs::write(&self.log, "").unwrap();
    }

    /// The canaries that were removed or changed.
    pub fn broken_canaries(&self) -> Vec<String> {
        let mut damage = Vec::new();
        for (path, text) in self.canaries() {
            match std::fs::read_to_string(&path) {
                Ok(t) if t == text => {}
                Ok(t) => damage.push(format!("{} changed to {t:?}", path.display())),
                Err(e) => damage.push(format!("{} is gone ({e})", path.display())),
            }
        }
        damage
    }

    /// `None` if every canary is intact and no shim ran; else what changed.
    pub fn damage(&self) -> Option<String> {
        let mut damage = self.broken_canaries();
        let log = self.shim_log();
        if !log.is_empty() {
            damage.push(format!("shims ran: {log}"));
        }
        (!damage.is_empty()).then(|| damage.join("; "))
    }
}

impl Default for RemoteSandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RemoteSandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
