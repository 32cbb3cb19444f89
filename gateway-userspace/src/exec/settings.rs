//! The sandbox fields of a policy target: `run_as` and `landlock`.
//!
//! ```yaml
//! targets:
//!   - name: agents
//!     egress: deny
//!     run_as: sluice-agent          # `sluice exec` switches to this user (must exist, not uid 0)
//!     landlock:                     # optional: the agent sees only these paths
//!       read: [/usr, /etc, /proc, /srv/tools]    # read and execute
//!       write: [/srv/agent-work, /dev/null]      # read, write, create, remove
//! ```
//!
//! A Landlock grant must never reach sluice's own files: the state and data directories, the
//! policy file, the audit and approvals stores and keys, and every file a credential is read from
//! (`file:` secrets, TLS keys). A grant that contains one of them, or lies inside one, refuses the
//! policy, with the grant's position.

use std::{
    collections::BTreeSet,
    path::{Component, Path, PathBuf},
};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::{
    config::diag::Report,
    services::{
        approvals::settings::ApprovalSettings,
        audit::settings::{AuditSettings, StoreSettings},
    },
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLandlock {
    #[serde(default)]
    read: Vec<Spanned<String>>,
    #[serde(default)]
    write: Vec<Spanned<String>>,
}

/// How `sluice exec` confines a target's agent, beyond what it always does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetSandbox {
    /// The user the agent runs as (a name that existed when the policy was loaded).
    pub run_as: Option<String>,
    pub landlock: Option<LandlockRules>,
}

/// Filesystem grants; everything else is invisible to the agent (EACCES).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LandlockRules {
    /// Read files, list directories and execute, beneath each path.
    pub read: Vec<PathBuf>,
    /// Everything `read` grants, plus write, create, remove, rename and truncate.
    pub write: Vec<PathBuf>,
}

/// Files sluice holds that no agent may reach (what each is, and where).
pub(crate) type Protected = Vec<(&'static str, PathBuf)>;

/// Validates one target's `run_as` and `landlock` (the grants' overlap with sluice's own files
/// is checked by [`check_grants`] once every path is known).
pub(crate) fn validate(
    run_as: Option<&Spanned<String>>,
    landlock: Option<&Spanned<RawLandlock>>,
    report: &mut Report,
) -> TargetSandbox {
    let run_as = run_as.and_then(|u| validate_user(u, report));
    if let Some(raw) = landlock
        && raw.value.read.is_empty()
        && raw.value.write.is_empty()
    {
        report.error(
            raw,
            "`landlock` grants nothing: the agent could not even load its own program",
            Some("list what it needs, e.g. `read: [/usr, /etc]` and `write: [/srv/agent-work]`"),
        );
    }
    let landlock = landlock.map(|l| LandlockRules {
        read: grants(&l.value.read, report),
        write: grants(&l.value.write, report),
    });
    TargetSandbox { run_as, landlock }
}

fn validate_user(u: &Spanned<String>, report: &mut Report) -> Option<String> {
    match nix::unistd::User::from_name(&u.value) {
        Ok(Some(user)) if user.uid.is_root() => {
            report.error(
                u,
                format!("`run_as: {}` names uid 0", u.value),
                Some(
                    "name an unprivileged user; to run an agent as root on purpose, leave \
                     `run_as` out and pass `sluice exec --allow-root`",
                ),
            );
            None
        }
        Ok(Some(_)) => Some(u.value.clone()),
        Ok(None) => {
            report.error(
                u,
                format!("`run_as`: user `{}` does not exist on this host", u.value),
                Some("create it, e.g. `useradd --system --no-create-home sluice-agent`"),
            );
            None
        }
        Err(e) => {
            report.error(
                u,
                format!("`run_as`: cannot look up user `{}`: {e}", u.value),
                None,
            );
            None
        }
    }
}

fn grants(raw: &[Spanned<String>], report: &mut Report) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in raw {
        let path = Path::new(&p.value);
        if !path.is_absolute() {
            report.error(
                p,
                format!("landlock path `{}` is not absolute", p.value),
                Some("write the full path, e.g. /srv/agent-work"),
            );
            continue;
        }
        // Landlock grants an opened directory or file: it must exist when the agent starts,
        // and comparing canonical paths sees through symlinks to sluice's own files.
        match path.canonicalize() {
            Ok(c) => out.push(c),
            Err(e) => report.error(
                p,
                format!("landlock path `{}` cannot be granted: {e}", p.value),
                Some("create it first, or remove it from the list"),
            ),
        }
    }
    out
}

/// What the policy itself names that an agent must never read or write.
pub(crate) fn protected_paths(
    source: &Path,
    state_dir: &Path,
    data_dir: &Path,
    audit: &AuditSettings,
    approvals: Option<&ApprovalSettings>,
    secret_files: &BTreeSet<PathBuf>,
) -> Protected {
    let mut out: Protected = vec![
        ("the policy file", source.into()),
        ("`state_dir`", state_dir.into()),
        ("`data_dir`", data_dir.into()),
        ("the audit key", audit.key.clone()),
        ("the audit witness", audit.witness.clone()),
    ];
    if let StoreSettings::Sqlite(p) = &audit.store {
        out.push(("the audit store", p.clone()));
    }
    if let Some(p) = approvals.and_then(|a| a.store.as_ref()) {
        out.push(("the approvals store", p.clone()));
    }
    out.extend(
        secret_files
            .iter()
            .map(|f| ("a credential file", f.clone())),
    );
    out.into_iter()
        .map(|(what, p)| (what, resolve(&p)))
        .collect()
}

/// Refuses every grant that contains a protected path or lies inside one.
pub(crate) fn check_grants(
    raw: Option<&Spanned<RawLandlock>>,
    protected: &Protected,
    report: &mut Report,
) {
    let Some(raw) = raw else { return };
    for p in raw.value.read.iter().chain(&raw.value.write) {
        let Ok(grant) = Path::new(&p.value).canonicalize() else {
            continue; // already reported by `validate`
        };
        for (what, path) in protected {
            if path.starts_with(&grant) || grant.starts_with(path) {
                report.error(
                    p,
                    format!(
                        "landlock path `{}` would let the agent reach {what} ({})",
                        p.value,
                        path.display()
                    ),
                    Some(
                        "grant narrower paths: sluice's state, data, policy and credential \
                         files must stay outside every grant",
                    ),
                );
            }
        }
    }
}

/// An absolute path with symlinks resolved as far as it exists, and `.`/`..` removed from the
/// rest (a state directory is often created only when the gateway starts).
fn resolve(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for part in rest.iter().rev() {
                match part {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(n) => out.push(n),
                    _ => {}
                }
            }
            return out;
        }
        match existing.parent() {
            Some(parent) => {
                rest.extend(existing.components().next_back());
                existing = parent;
            }
            None => return abs,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/nonexistent/policy.yaml"))
    }

    fn messages(text: &str) -> Vec<(u64, String)> {
        parse(text)
            .unwrap_err()
            .diagnostics
            .into_iter()
            .map(|d| (d.line, d.message))
            .collect()
    }

    #[test]
    fn run_as_must_name_an_unprivileged_user_that_exists() {
        let m = messages(
            "targets:\n  - name: a\n    egress: deny\n    run_as: root\n  - name: b\n    egress: deny\n    run_as: no-such-user-sluice\n",
        );
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0].0, 4);
        assert!(m[0].1.contains("uid 0"), "{m:?}");
        assert_eq!(m[1].0, 7);
        assert!(m[1].1.contains("does not exist"), "{m:?}");
        // `nobody` exists on every Debian host.
        let c = parse("targets:\n  - { name: a, egress: deny, run_as: nobody }\n").unwrap();
        assert_eq!(c.targets[0].sandbox.run_as.as_deref(), Some("nobody"));
    }

    #[test]
    fn grants_must_not_reach_sluice_files() {
        let dir = std::env::temp_dir().join(format!("sluice-landlock-{}", std::process::id()));
        let (state, public, creds) = (dir.join("state"), dir.join("public"), dir.join("creds"));
        for d in [&state.join("sub"), &public, &creds] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(creds.join("pw"), "secret\n").unwrap();
        // Secret files must be readable by their owner only (files.rs).
        std::fs::set_permissions(
            creds.join("pw"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let base = format!(
            "state_dir: {state}\ndata_dir: {data}\n\
             resources:\n  - name: db\n    protocol: postgres\n    match: [{{ address: 10.0.0.5, port: 5432 }}]\n    credentials: {{ mode: inject, user: app, password: {{ file: {pw} }} }}\n\
             targets:\n  - name: a\n    egress: deny\n",
            state = state.display(),
            data = dir.join("data").display(),
            pw = creds.join("pw").display(),
        );
        let ok = parse(&format!(
            "{base}    landlock: {{ read: [/usr, {p}], write: [{p}/] }}\n",
            p = public.display()
        ))
        .unwrap();
        let rules = ok.targets[0].sandbox.landlock.as_ref().unwrap();
        assert_eq!(rules.read, [Path::new("/usr"), &public]);

        let m = messages(&format!(
            "{base}    landlock:\n      read: [{dir}, relative/path, {dir}/missing]\n      write: [{state}/sub, {creds}, /]\n",
            dir = dir.display(),
            state = state.display(),
            creds = creds.display(),
        ));
        let has = |line: u64, text: &str| m.iter().any(|(l, s)| *l == line && s.contains(text));
        // The parent of everything: state, data (not created yet: compared as written) and the
        // credential file; a relative path; a path that does not exist.
        assert!(has(12, "reach `state_dir`"), "{m:?}");
        assert!(has(12, "reach `data_dir`"), "{m:?}");
        assert!(has(12, "reach a credential file"), "{m:?}");
        assert!(has(12, "not absolute"), "{m:?}");
        assert!(has(12, "cannot be granted"), "{m:?}");
        // Inside the state dir, the credential file's directory, and the root (which holds
        // the policy file too).
        assert!(has(13, "reach `state_dir`"), "{m:?}");
        assert!(has(13, "reach a credential file"), "{m:?}");
        assert!(has(13, "reach the policy file"), "{m:?}");
        assert!(!has(13, "cannot be granted"), "{m:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_empty_landlock_block_is_refused() {
        let m = messages("targets:\n  - name: a\n    egress: deny\n    landlock: {}\n");
        assert!(m.iter().any(|(_, s)| s.contains("grants nothing")), "{m:?}");
    }

    #[test]
    fn resolve_keeps_what_does_not_exist_yet() {
        let p = super::resolve(Path::new("/tmp/../tmp/sluice-no-such/./a/../b"));
        assert_eq!(
            p,
            Path::new("/tmp")
                .canonicalize()
                .unwrap()
                .join("sluice-no-such/b")
        );
    }
}
