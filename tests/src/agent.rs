//! The unprivileged account agents and impostors run as, and copies of built binaries it can
//! execute.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{bin_path, lock_file, remove_stale, require_root};

/// The unprivileged account tests run agents and impostors as (also made by
/// `scripts/setup.sh`, with the same command).
pub const AGENT_USER: &str = "sluice-agent";

/// Creates [`AGENT_USER`] if it is missing and returns its uid and gid. Idempotent across the
/// threads and processes of concurrent test runs: an exclusive `flock` serialises them, and
/// `useradd`'s "already exists" (another harness was faster) counts as success.
pub fn ensure_agent_user() -> (u32, u32) {
    static IDS: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *IDS.get_or_init(|| {
        require_root();
        let _lock = lock_file("agent-user", true);
        let id = |flag: &str| {
            Command::new("id")
                .args([flag, AGENT_USER])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<u32>()
                        .ok()
                })
        };
        if id("-u").is_none() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let out = Command::new("useradd")
                    .args([
                        "--system",
                        "--no-create-home",
                        "--shell",
                        "/usr/sbin/nologin",
                        AGENT_USER,
                    ])
                    .output()
                    .expect("useradd");
                // 9: the name exists (created meanwhile outside this lock).
                if out.status.success() || out.status.code() == Some(9) {
                    break;
                }
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    err.contains("lock") && Instant::now() < deadline,
                    "useradd {AGENT_USER} failed: {err}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        (
            id("-u").expect("the agent user exists"),
            id("-g").expect("the agent user has a group"),
        )
    })
}

/// `cmd` run as [`AGENT_USER`] (setpriv: real and effective ids, no supplementary groups).
pub fn as_agent_user(program: &Path) -> Command {
    let (uid, gid) = ensure_agent_user();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        "--clear-groups",
        "--",
    ])
    .arg(program);
    cmd
}

/// [`AGENT_USER`] as (uid, gid, name), created on first use.
pub fn agent_user() -> (u32, u32, String) {
    let (uid, gid) = ensure_agent_user();
    (uid, gid, AGENT_USER.to_string())
}

/// A copy of a built binary that [`agent_user`] can run: the build directory may sit below a
/// directory only root can enter (a CI checkout in /root).
pub fn agent_bin(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("sluice-agent-bin-{}", std::process::id()));
    let path = dir.join(name);
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap();
    if !dir.exists() {
        // Copies of earlier test processes that are gone.
        remove_stale("sluice-agent-bin-");
    }
    if !path.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::copy(bin_path(name), &tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}
