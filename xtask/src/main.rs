//! Project automation: `cargo xtask <command>`.
//!
//! - `setup`: installs everything (idempotent, Debian 12, root): scripts/setup.sh.
//! - `test`: setup, build every binary, run the whole test suite.
//! - `demo`: setup, build, run scripts/demo.sh.
//! - `bench`: run benchmarks, write CSVs, PNG plots and MACHINE.md (see bench.rs).

mod bench;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install toolchain parts, packages and mounts (idempotent).
    Setup,
    /// Setup, build, and run every test (unit and integration).
    Test {
        /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Setup, build, and run the demo.
    Demo,
    /// Setup, release build, run benchmarks; CSVs, PNG plots and MACHINE.md go to --out.
    Bench {
        /// Results directory [default: docs/benchmarks in this repository].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Benchmarks to run, always in this order [default: all].
        #[arg(value_enum, value_name = "WHAT")]
        what: Vec<bench::Bench>,
    },
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("[xtask] {cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("spawning {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn setup() -> anyhow::Result<()> {
    run(Command::new("bash").arg("scripts/setup.sh"))
}

/// Builds every binary: integration tests run `target/debug/sluice` and `sluice-probe`, which
/// `cargo test` alone does not rebuild for another package's tests.
fn build() -> anyhow::Result<()> {
    run(cargo().args(["build", "--workspace", "--bins"]))
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Setup => setup(),
        Cmd::Test { args } => {
            setup()?;
            build()?;
            run(cargo()
                .args(["test", "--workspace", "--no-fail-fast", "--"])
                .args(args))
        }
        Cmd::Demo => {
            setup()?;
            build()?;
            run(Command::new("bash").arg("scripts/demo.sh"))
        }
        Cmd::Bench { out, what } => {
            let out = match out {
                // Relative to where the command was typed, as for any other CLI path.
                Some(dir) => std::path::absolute(dir)?,
                None => root().join("docs/benchmarks"),
            };
            bench::bench(&out, &what)
        }
    }
}
