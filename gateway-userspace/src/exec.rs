//! `sluice exec`: runs a command inside a target's intercepted cgroup.
//!
//! With a gateway already serving the target, the command joins its cgroup and replaces this
//! process. Otherwise, given a policy, this process becomes the gateway: it attaches, starts the
//! command (through a second `sluice exec` that joins the cgroup, so the gateway itself stays
//! outside it), and stops when the command ends.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::ExitStatus,
};

use anyhow::{Context, bail};
use tracing::info;

use crate::{
    config::{Config, DEFAULT_STATE_DIR},
    ebpf::cgroup,
    server::{Gateway, state},
};

pub struct ExecRequest {
    pub config: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub name: Option<String>,
    pub command: Vec<String>,
}

/// How `exec` will run, decided before anything is started.
enum Plan {
    Join { cgroup_dir: PathBuf },
    StartGateway { config: Box<Config>, target: String },
}

fn plan(req: &ExecRequest) -> anyhow::Result<Plan> {
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
    if let Some(running) = state::running_target(&state_dir, &target)? {
        return Ok(Plan::Join {
            cgroup_dir: running.cgroup_dir,
        });
    }
    match config {
        Some(config) => {
            if config.target(&target).is_none() {
                bail!(
                    "the policy {} has no target named `{target}`",
                    config.source.display()
                );
            }
            Ok(Plan::StartGateway {
                config: Box::new(config),
                target,
            })
        }
        None => bail!(
            "no sluice gateway is serving target `{target}` (state in {}); start one with \
             `sluice run --config FILE`, or pass --config FILE to run one for this command",
            state_dir.display()
        ),
    }
}

/// Runs `exec`; returns the exit code for the process.
pub fn run(req: ExecRequest) -> anyhow::Result<i32> {
    if req.command.is_empty() {
        bail!("nothing to run: give a command after --");
    }
    match plan(&req)? {
        Plan::Join { cgroup_dir } => {
            cgroup::move_pid(&cgroup_dir, std::process::id())?;
            // Only returns on failure.
            let err = std::process::Command::new(&req.command[0])
                .args(&req.command[1..])
                .exec();
            bail!("cannot run `{}`: {err}", req.command[0])
        }
        Plan::StartGateway { config, target } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(run_with_own_gateway(*config, &target, &req.command))
        }
    }
}

async fn run_with_own_gateway(
    config: Config,
    target: &str,
    command: &[String],
) -> anyhow::Result<i32> {
    let state_dir = config.state_dir.clone();
    let gateway = Gateway::start(config).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(gateway.serve(async {
        let _ = stop_rx.await;
    }));

    let status = spawn_joined(&state_dir, target, command).await;
    let _ = stop_tx.send(());
    serving.await.context("gateway task")??;
    let status = status?;
    info!(event = "exec_finished", status = %status, "command finished; gateway stopped");
    Ok(exit_code(status))
}

async fn spawn_joined(
    state_dir: &Path,
    target: &str,
    command: &[String],
) -> anyhow::Result<ExitStatus> {
    let me = std::env::current_exe().context("locating the sluice binary")?;
    let mut child = tokio::process::Command::new(me)
        .arg("exec")
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--name")
        .arg(target)
        .arg("--")
        .args(command)
        .spawn()
        .context("starting the command")?;
    // Signals (Ctrl-C) reach the command through the terminal's process group; wait for it.
    Ok(child.wait().await?)
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
