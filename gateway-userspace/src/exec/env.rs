//! The agent's environment: a short allow-list, what the caller names with `--env`, and never a
//! variable a policy secret was read from.
//!
//! Environment variables are where credentials usually live (`PGPASSWORD`, `AWS_SECRET_ACCESS_KEY`,
//! the `env:` secrets of the policy). In own-gateway mode the gateway read its secret from this
//! very environment; the agent gets none of it unless the caller passes a variable by name.

use std::{
    collections::BTreeSet,
    ffi::{OsStr, OsString},
};

use anyhow::bail;

/// Passed through when the caller has them: what programs need to find things and to print.
const ALLOWED: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "TZ",
];
/// `LC_ALL`, `LC_CTYPE`, ...: locale settings, also passed through.
const ALLOWED_PREFIX: &str = "LC_";
/// When the caller has no `PATH` (cron, systemd): what a login shell would get.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// One `--env` argument: a variable passed from the caller's environment, or set to a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvArg {
    Pass(String),
    Set(String, String),
}

impl EnvArg {
    pub fn parse(arg: &str) -> anyhow::Result<EnvArg> {
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg, None),
        };
        if name.is_empty() || name.contains('\0') || value.is_some_and(|v| v.contains('\0')) {
            bail!("--env `{arg}`: give NAME or NAME=VALUE");
        }
        Ok(match value {
            Some(v) => EnvArg::Set(name.into(), v.into()),
            None => EnvArg::Pass(name.into()),
        })
    }

    pub fn name(&self) -> &str {
        match self {
            EnvArg::Pass(n) | EnvArg::Set(n, _) => n,
        }
    }
}

/// What the user switch sets (from the password database), overriding the caller's values.
#[derive(Clone, Debug, Default)]
pub struct LoginVars {
    pub user: Option<String>,
    pub home: Option<OsString>,
    pub shell: Option<OsString>,
}

/// The agent's environment, built from `caller` (the process environment).
///
/// Refuses an `--env` naming a variable a policy secret was read from: the point of holding a
/// credential in the gateway is that the agent never sees it.
pub fn agent_env(
    caller: impl IntoIterator<Item = (OsString, OsString)>,
    args: &[EnvArg],
    secret_names: &BTreeSet<String>,
    login: &LoginVars,
) -> anyhow::Result<Vec<(OsString, OsString)>> {
    for a in args {
        if secret_names.contains(a.name()) {
            bail!(
                "--env {}: the policy reads a credential from the variable `{}`; sluice holds \
                 credentials so that the agent never sees them, and will not pass it",
                a.name(),
                a.name()
            );
        }
    }
    let passed: BTreeSet<&str> = args
        .iter()
        .filter_map(|a| match a {
            EnvArg::Pass(n) => Some(n.as_str()),
            EnvArg::Set(..) => None,
        })
        .collect();
    let mut env: Vec<(OsString, OsString)> = caller
        .into_iter()
        .filter(|(k, _)| {
            let Some(k) = k.to_str() else { return false };
            !secret_names.contains(k)
                && (ALLOWED.contains(&k) || k.starts_with(ALLOWED_PREFIX) || passed.contains(k))
        })
        .collect();
    let mut set = |k: &str, v: &OsStr| {
        env.retain(|(n, _)| n != k);
        env.push((k.into(), v.into()));
    };
    if let Some(user) = &login.user {
        set("USER", OsStr::new(user));
        set("LOGNAME", OsStr::new(user));
    }
    if let Some(home) = &login.home {
        set("HOME", home);
    }
    if let Some(shell) = &login.shell {
        set("SHELL", shell);
    }
    for a in args {
        if let EnvArg::Set(k, v) = a {
            set(k, OsStr::new(v));
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    env.sort();
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn only_the_allow_list_and_named_variables_pass() {
        let caller = vars(&[
            ("PATH", "/bin"),
            ("HOME", "/root"),
            ("LC_ALL", "C.UTF-8"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("ORDERS_DB_PASSWORD", "hunter2"),
            ("KEEP", "kept"),
            ("SSH_AUTH_SOCK", "/tmp/agent"),
        ]);
        let secrets = BTreeSet::from(["ORDERS_DB_PASSWORD".to_string()]);
        let args = [
            EnvArg::parse("KEEP").unwrap(),
            EnvArg::parse("ADDED=a=b").unwrap(),
            EnvArg::parse("UNSET_IN_CALLER").unwrap(),
        ];
        let login = LoginVars {
            user: Some("agent".into()),
            home: Some("/home/agent".into()),
            shell: None,
        };
        let env = agent_env(caller, &args, &secrets, &login).unwrap();
        assert_eq!(
            env,
            vars(&[
                ("ADDED", "a=b"),
                ("HOME", "/home/agent"),
                ("KEEP", "kept"),
                ("LC_ALL", "C.UTF-8"),
                ("LOGNAME", "agent"),
                ("PATH", "/bin"),
                ("USER", "agent"),
            ])
        );
    }

    #[test]
    fn a_secret_variable_is_never_passed() {
        let secrets = BTreeSet::from(["DB_PW".to_string(), "LANG".to_string()]);
        for arg in ["DB_PW", "DB_PW=other"] {
            let err = agent_env(
                vars(&[("DB_PW", "hunter2")]),
                &[EnvArg::parse(arg).unwrap()],
                &secrets,
                &LoginVars::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("reads a credential from the variable `DB_PW`"),
                "{err}"
            );
        }
        // Even a variable of the allow-list, when a secret was read from it.
        let env = agent_env(
            vars(&[("LANG", "hunter2")]),
            &[],
            &secrets,
            &LoginVars::default(),
        )
        .unwrap();
        assert_eq!(env, vars(&[("PATH", DEFAULT_PATH)]));
    }

    #[test]
    fn malformed_env_arguments_are_refused() {
        for bad in ["", "=x", "A\0B"] {
            assert!(EnvArg::parse(bad).is_err(), "{bad:?}");
        }
    }
}
