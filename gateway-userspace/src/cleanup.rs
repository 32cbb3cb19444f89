//! `sluice cleanup`: what a target's interception looks like when no gateway serves it, and the
//! one explicit way to remove it (`--detach`).

use std::path::PathBuf;

use anyhow::bail;

use crate::{
    config::{Config, TargetCgroup},
    ebpf::{self, cgroup},
    server::state,
};

pub struct CleanupRequest {
    pub detach: bool,
    pub force: bool,
}

fn cgroup_dir(t: &crate::config::Target) -> anyhow::Result<PathBuf> {
    let mount = cgroup::cgroup2_mount()?;
    Ok(match &t.cgroup {
        TargetCgroup::Managed => cgroup::managed_dir(&mount, &t.name),
        TargetCgroup::Path(p) => mount.join(p),
    })
}

fn processes_in(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|p| p.lines().count())
        .unwrap_or(0)
}

/// Reports (and with `detach`, removes) each target's interception; returns the exit code.
pub fn run(config: &Config, req: &CleanupRequest) -> anyhow::Result<i32> {
    let mut code = 0;
    for t in &config.targets {
        let dir = cgroup_dir(t)?;
        let procs = processes_in(&dir);
        let pinned = ebpf::has_pins(&t.name);
        if let Some(running) = state::running_target(&config.state_dir, &t.name)? {
            println!(
                "{}: served by the running gateway (pid {}); stop it before detaching",
                t.name, running.pid
            );
            if req.detach {
                code = 1;
            }
            continue;
        }
        if !req.detach {
            println!(
                "{}: {} ({} process(es) in {}); `sluice cleanup --detach` removes interception",
                t.name,
                if pinned {
                    "interception pinned, connects are refused until a gateway serves it"
                } else {
                    "not intercepted"
                },
                procs,
                dir.display()
            );
            continue;
        }
        if procs > 0 && !req.force {
            println!(
                "{}: {procs} process(es) are still in {}; detaching would release them \
                 ungoverned. Stop them first, or pass --force",
                t.name,
                dir.display()
            );
            code = 1;
            continue;
        }
        let n = ebpf::remove_stale_pins(&t.name)?;
        println!("{}: detached {n} pinned link(s)", t.name);
        if t.cgroup == TargetCgroup::Managed && dir.exists() && procs == 0 {
            let _ = std::fs::remove_dir(&dir);
        }
    }
    if req.force && !req.detach {
        bail!("--force only means something with --detach");
    }
    Ok(code)
}
