//! `sluice exec`: runs a command inside a target's intercepted cgroup, sandboxed.
//!
//! With a gateway already serving the target, this process joins its cgroup, drops what an agent
//! must not have ([`sandbox`]: user, capabilities, `no_new_privs`, Landlock, seccomp, inherited
//! descriptors, environment) and replaces itself with the command. Otherwise, given a policy,
//! this process becomes the gateway: it attaches, starts the command through a second
//! `sluice exec` that joins the cgroup and sandboxes itself (so the gateway keeps its privileges
//! and stays outside the cgroup), and stops when the command ends.
//!
//! The agent's user: `--user` when given, else the target's `run_as`, else the caller's own,
//! which must not be root unless `--allow-root`. `--user` wins so that an operator can run one
//! agent as another unprivileged user without editing the policy; it cannot name root without
//! `--allow-root` either.

pub mod env;
mod landlock;
pub mod sandbox;
mod seccomp;
pub mod settings;

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::ExitStatus,
};

use anyhow::{Context, bail};
use tracing::info;

use self::{env::EnvArg, sandbox::Spec};
use crate::{
    config::{Config, DEFAULT_STATE_DIR},
    server::{Gateway, state},
};

pub struct ExecRequest {
    pub config: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub name: Option<String>,
    pub command: Vec<String>,
    /// `--user`: run the agent as this user (overrides the target's `run_as`).
    pub user: Option<String>,
    /// `--allow-root`: run the agent as root when no user is named.
    pub allow_root: bool,
    /// `--env NAME` / `--env NAME=VALUE`, as given.
    pub env: Vec<String>,
    /// Landlock grants handed from an own-gateway parent to the joining child (hidden flags).
    pub landlock_read: Vec<PathBuf>,
    pub landlock_write: Vec<PathBuf>,
    /// The global logging flags, for the joining child of an own-gateway run.
    pub log_args: Vec<OsString>,
}

/// How `exec` will run, decided before anything is started.
enum Plan {
    Join { cgroup_dir: PathBuf },
    StartGateway { config: Box<Config> },
}

fn plan(req: &ExecRequest) -> anyhow::Result<(Plan, Spec)> {
    let config = req.config.as_deref().map(Config::load).transpose()?;
    let state_dir = req
        .state_dir
        .clone()
        .or_else(|| config.as_ref().map(|c| c.state_dir.clone()))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    let target = match (&req.name, &config) {
        (Some(n), _) => n.clone(),
        (None, Some(c)) if c.targets.len() == 1 => c.targets[0].name.clone(),
        (None, Some(c)) => bail!(
            "the policy {} has {} targets; choose one with --name",
            c.source.display(),
            c.targets.len()
        ),
        (None, None) => "agents".to_string(),
    };
    let policy_target = match &config {
        Some(c) => Some(c.target(&target).with_context(|| {
            format!(
                "the policy {} has no target named `{target}`",
                c.source.display()
            )
        })?),
        None => None,
    };
    let mut spec = spec(req, &target, config.as_ref(), policy_target)?;
    if let Some(running) = state::running_target(&state_dir, &target)? {
        spec.hidden = running.protected;
        return Ok((
            Plan::Join {
                cgroup_dir: running.cgroup_dir,
            },
            spec,
        ));
    }
    match config {
        Some(config) => Ok((
            Plan::StartGateway {
                config: Box::new(config),
            },
            spec,
        )),
        None => bail!(
            "no sluice gateway is serving target `{target}` (state in {}); start one with \
             `sluice run --config FILE`, or pass --config FILE to run one for this command",
            state_dir.display()
        ),
    }
}

fn spec(
    req: &ExecRequest,
    target: &str,
    config: Option<&Config>,
    policy_target: Option<&crate::config::Target>,
) -> anyhow::Result<Spec> {
    let sandbox = policy_target.map(|t| &t.sandbox);
    let run_as = sandbox.and_then(|s| s.run_as.clone());
    if let (Some(flag), Some(policy)) = (&req.user, &run_as)
        && flag != policy
    {
        info!(event = "exec_user", user = %flag, run_as = %policy,
              "--user overrides the target's run_as");
    }
    let flags = sandbox::landlock_from_flags(&req.landlock_read, &req.landlock_write);
    let landlock = match (sandbox.and_then(|s| s.landlock.clone()), flags) {
        (Some(_), Some(_)) => {
            bail!("--landlock-read/--landlock-write cannot be combined with a policy's `landlock`")
        }
        (policy, flags) => policy.or(flags),
    };
    Ok(Spec {
        target: target.to_string(),
        user: req.user.clone().or(run_as),
        allow_root: req.allow_root,
        landlock,
        hidden: Vec::new(),
        env_args: req
            .env
            .iter()
            .map(|a| EnvArg::parse(a))
            .collect::<anyhow::Result<_>>()?,
        secret_env: config.map(|c| c.secrets.env.clone()).unwrap_or_default(),
    })
}

/// Runs `exec`; returns the exit code for the process.
pub fn run(req: ExecRequest) -> anyhow::Result<i32> {
    if req.command.is_empty() {
        bail!("nothing to run: give a command after --");
    }
    let (plan, spec) = plan(&req)?;
    match plan {
        // Only returns on failure.
        Plan::Join { cgroup_dir } => Err(spec.enter_and_exec(&cgroup_dir, &req.command)),
        Plan::StartGateway { config } => {
            // Refuse (root, a secret `--env`) before anything is attached.
            let (identity, env) = spec.check()?;
            // The agent's user cannot read this process's memory or environment (where an
            // `env:` secret came from), nor take its descriptors: for a root agent too, whose
            // CAP_SYS_PTRACE is gone.
            nix::sys::prctl::set_dumpable(false).context("making the gateway non-dumpable")?;
            let child = JoiningChild {
                log_args: &req.log_args,
                spec: &spec,
                user: identity.switch_to.as_ref().map(|u| u.name.as_str()),
                env,
                command: &req.command,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(run_with_own_gateway(*config, child))
        }
    }
}

/// The second `sluice exec` of an own-gateway run: it joins the cgroup and sandboxes itself.
struct JoiningChild<'a> {
    log_args: &'a [OsString],
    spec: &'a Spec,
    user: Option<&'a str>,
    /// The agent's environment, already cleaned: the child starts with nothing else (but
    /// `RUST_LOG`, for its own log), so it never holds a secret variable.
    env: Vec<(OsString, OsString)>,
    command: &'a [String],
}

async fn run_with_own_gateway(config: Config, child: JoiningChild<'_>) -> anyhow::Result<i32> {
    let state_dir = config.state_dir.clone();
    let gateway = Gateway::start(config).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(gateway.serve(async {
        let _ = stop_rx.await;
    }));

    let status = spawn_joined(&state_dir, child).await;
    let _ = stop_tx.send(());
    serving.await.context("gateway task")??;
    let status = status?;
    info!(event = "exec_finished", status = %status, "command finished; gateway stopped");
    Ok(exit_code(status))
}

async fn spawn_joined(state_dir: &Path, child: JoiningChild<'_>) -> anyhow::Result<ExitStatus> {
    let me = std::env::current_exe().context("locating the sluice binary")?;
    let spec = child.spec;
    let mut cmd = tokio::process::Command::new(me);
    cmd.args(child.log_args)
        .arg("exec")
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--name")
        .arg(&spec.target);
    if let Some(user) = child.user {
        cmd.args(["--user", user]);
    }
    if spec.allow_root {
        cmd.arg("--allow-root");
    }
    // By name only: values travel in the environment, never in a command line others can read.
    for a in &spec.env_args {
        cmd.args(["--env", a.name()]);
    }
    if let Some(l) = &spec.landlock {
        for p in &l.read {
            cmd.arg("--landlock-read").arg(p);
        }
        for p in &l.write {
            cmd.arg("--landlock-write").arg(p);
        }
    }
    cmd.arg("--")
        .args(child.command)
        .env_clear()
        .envs(child.env);
    if let Some(log) = std::env::var_os("RUST_LOG")
        && !spec.secret_env.contains("RUST_LOG")
    {
        cmd.env("RUST_LOG", log);
    }
    let mut child = cmd.spawn().context("starting the command")?;
    // Signals (Ctrl-C) reach the command through the terminal's process group; wait for it.
    Ok(child.wait().await?)
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
