//! The `sluice` command line.

mod approvals_cli;
mod audit_cli;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use sluice::{
    config::Config,
    exec::{self, ExecRequest},
    server::Gateway,
};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Transparent, protocol-aware gateway for AI agents"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Append logs to this file instead of stderr (with `exec`, keeps the command's own
    /// stderr clean).
    #[arg(long, global = true)]
    log_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Worker threads [default: half the CPUs, at least 1].
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Run a command inside an intercepted cgroup (of the running gateway, or of one started
    /// for it), sandboxed: another user, no capabilities, no_new_privs, seccomp, no inherited
    /// descriptors, a clean environment, and Landlock when the target asks for it.
    Exec {
        /// Policy file; starts a gateway for the command when none serves the target.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Target to join (default: the policy's only target, or `agents`).
        #[arg(long)]
        name: Option<String>,
        /// Runtime state directory of the gateway (default: the policy's, or /run/sluice).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Run the command as this user (overrides the target's `run_as`).
        #[arg(long)]
        user: Option<String>,
        /// Run the command as root when no user is named (contained only as far as the
        /// kernel's LSM hooks reach; dangerous capabilities are still dropped).
        #[arg(long)]
        allow_root: bool,
        /// Pass NAME from this environment, or set NAME=VALUE (repeatable). By default the
        /// command gets only PATH, HOME, USER, LOGNAME, SHELL, TERM, LANG, LC_* and TZ.
        #[arg(long = "env", value_name = "NAME[=VALUE]")]
        env: Vec<String>,
        /// Landlock grants handed to the joining `sluice exec` of an own-gateway run.
        #[arg(long, hide = true)]
        landlock_read: Vec<PathBuf>,
        #[arg(long, hide = true)]
        landlock_write: Vec<PathBuf>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Show the interception a stopped gateway left in place; `--detach` removes it.
    Cleanup {
        #[arg(long, short)]
        config: PathBuf,
        /// Remove interception (refused while processes remain in the target's cgroup).
        #[arg(long)]
        detach: bool,
        /// With --detach: detach even though processes remain (they are then ungoverned).
        #[arg(long)]
        force: bool,
    },
    /// Mask PII, card data and secrets from stdin to stdout, streaming.
    Mask {
        /// Policy file; only its `masking:` section is read (default: built-in detectors).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print findings per detector to stderr as JSON.
        #[arg(long)]
        report: bool,
    },
    /// Review held commands: list, show, approve, deny; grants.
    Approvals(approvals_cli::ApprovalsArgs),
    /// The audit log: verify, sessions, replay, export.
    Audit(audit_cli::AuditArgs),
    /// Policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// SSH tools.
    Ssh {
        #[command(subcommand)]
        command: SshCommand,
    },
}

#[derive(Subcommand)]
enum SshCommand {
    /// Print known_hosts lines that make agents trust the gateway's host key for every
    /// address an SSH resource matches (creates the key on first use).
    KnownHosts {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy file, reporting every error with file:line:col.
    Check { file: PathBuf },
    /// Print the decision for a statement as JSON, without touching any database.
    Test {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        resource: String,
        /// Target the statement comes from (default: the policy's first target).
        #[arg(long)]
        target: Option<String>,
        /// A SQL statement (postgres resources).
        #[arg(long, required_unless_present = "shell", conflicts_with = "shell")]
        sql: Option<String>,
        /// A shell command line (ssh resources), decided as the gateway decides an exec
        /// request (`ssh host 'CMD'`).
        #[arg(long)]
        shell: Option<String>,
        /// With --shell: the request has a terminal (`ssh -t`): pagers and REPLs are
        /// interactive there.
        #[arg(long, requires = "shell")]
        pty: bool,
        /// With --shell: decide it as a line typed at an interactive shell prompt (`ssh host`
        /// with a terminal), as the first line of the session.
        #[arg(long, requires = "shell", conflicts_with = "pty")]
        line: bool,
    },
}

fn init_logging(format: LogFormat, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    use tracing_subscriber::{EnvFilter, fmt, fmt::writer::BoxMakeWriter, util::SubscriberInitExt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("cannot open log file {}: {e}", path.display()))?;
            BoxMakeWriter::new(std::sync::Mutex::new(f))
        }
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(file.is_none());
    match format {
        LogFormat::Text => builder.finish().init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_target(false)
            .finish()
            .init(),
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = init_logging(cli.log_format, cli.log_file.as_deref()) {
        eprintln!("sluice: {e:#}");
        std::process::exit(1);
    }
    // `exec` hands these to the second `sluice exec` of an own-gateway run.
    let mut log_args: Vec<std::ffi::OsString> = vec![
        "--log-format".into(),
        match cli.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
        .into(),
    ];
    if let Some(f) = &cli.log_file {
        log_args.extend(["--log-file".into(), f.into()]);
    }
    let code = match run(cli.command, log_args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

/// Each proxied connection holds two descriptors (agent and upstream). The usual soft limit of
/// 1,024 would refuse accepts at about 500 connections, far below `max_connections`; raise it
/// to the hard limit, as servers do, and say when even that is too low.
fn raise_open_file_limit(max_connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(
                event = "open_file_limit",
                from = soft,
                to = hard,
                "raised the open-file limit"
            ),
            Err(e) => tracing::warn!(event = "open_file_limit", error = %e,
                                     "cannot raise the open-file limit"),
        }
    }
    let needed = 2 * max_connections as u64 + 256;
    if hard < needed {
        tracing::warn!(
            event = "open_file_limit",
            limit = hard,
            needed,
            max_connections,
            "the open-file limit is below what max_connections needs; accepts will fail \
                        before it (raise LimitNOFILE or lower max_connections)"
        );
    }
}

fn run(command: Command, log_args: Vec<std::ffi::OsString>) -> anyhow::Result<i32> {
    match command {
        Command::Run { config, workers } => {
            // Agents, even root ones without CAP_SYS_PTRACE, can then neither read this
            // process's memory or environment nor take its descriptors.
            nix::sys::prctl::set_dumpable(false)?;
            let config = Config::load(&config)?;
            raise_open_file_limit(config.max_connections);
            // sluice shares its host with the agents and often the database it guards. A
            // session's work per message is small, and on a small host a worker per CPU mostly
            // adds cross-CPU wake-ups: on 2 CPUs, 1 worker relayed pgbench 25-35% faster than 2.
            let workers = workers.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
            });
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers.max(1))
                .enable_all()
                .build()?;
            rt.block_on(async {
                let shutdown = shutdown_signal();
                let gateway = Gateway::start(config).await?;
                gateway.serve(shutdown).await
            })?;
            Ok(0)
        }
        Command::Exec {
            config,
            name,
            state_dir,
            user,
            allow_root,
            env,
            landlock_read,
            landlock_write,
            command,
        } => exec::run(ExecRequest {
            config,
            state_dir,
            name,
            command,
            user,
            allow_root,
            env,
            landlock_read,
            landlock_write,
            log_args,
        }),
        Command::Cleanup {
            config,
            detach,
            force,
        } => sluice::cleanup::run(
            &Config::load(&config)?,
            &sluice::cleanup::CleanupRequest { detach, force },
        ),
        Command::Mask { config, report } => mask_stdin(config, report),
        Command::Approvals(args) => approvals_cli::run(args),
        Command::Ssh {
            command: SshCommand::KnownHosts { config },
        } => {
            let config = Config::load(&config)?;
            let key = sluice::proto::ssh::settings::load_or_create_host_key(&config.data_dir)?;
            let lines =
                sluice::proto::ssh::known_hosts::known_hosts_lines(&config, key.public_key());
            if lines.is_empty() {
                anyhow::bail!("the policy has no ssh resource");
            }
            for l in lines {
                println!("{l}");
            }
            Ok(0)
        }
        Command::Audit(args) => audit_cli::run(args),
        Command::Policy {
            command:
                PolicyCommand::Test {
                    config,
                    resource,
                    target,
                    sql,
                    shell,
                    pty,
                    line,
                },
        } => {
            let config = Config::load(&config)?;
            if !config.resources.iter().any(|r| r.name == resource) {
                anyhow::bail!("the policy has no resource named `{resource}`");
            }
            let target = target
                .or_else(|| config.targets.first().map(|t| t.name.clone()))
                .unwrap_or_default();
            let subject = sluice::inspect::policy::Subject {
                target: &target,
                resource: &resource,
            };
            let decision = match (sql, shell) {
                (Some(sql), _) => sluice::inspect::policy::decide_sql(
                    &config,
                    &subject,
                    &sluice::inspect::guardrails::analyze(&sql, sluice::inspect::Dialect::Postgres),
                ),
                // The gateway's own functions: the tester cannot disagree with it.
                (None, Some(shell)) if line => {
                    use sluice::proto::ssh::inspect::{LineSession, decide_line_text};
                    match decide_line_text(&config, &subject, &LineSession::shell(true), &shell) {
                        Some((decision, _)) => decision,
                        None => anyhow::bail!(
                            "the line is incomplete (an open quote, heredoc or block): the shell would wait for more"
                        ),
                    }
                }
                (None, Some(shell)) => {
                    let settings = config
                        .resources
                        .iter()
                        .find(|r| r.name == resource)
                        .and_then(|r| r.ssh());
                    sluice::proto::ssh::inspect::decide_exec_text(
                        &config, &subject, settings, &shell, pty,
                    )
                    .decision
                }
                (None, None) => unreachable!("clap requires --sql or --shell"),
            };
            println!("{}", serde_json::to_string(&decision)?);
            Ok(0)
        }
        Command::Policy {
            command: PolicyCommand::Check { file },
        } => match Config::load(&file) {
            Ok(c) => {
                println!(
                    "{}: ok ({} targets, {} resources)",
                    file.display(),
                    c.targets.len(),
                    c.resources.len()
                );
                // `egress: allow` governs only the listed resources: say so, it is easy to
                // mistake for containment.
                for t in c
                    .targets
                    .iter()
                    .filter(|t| t.egress == sluice::config::EgressMode::Allow)
                {
                    println!(
                        "note: target `{}` has `egress: allow`: monitoring mode. Its processes \
                         reach any unlisted destination (TCP and UDP) directly; only listed \
                         resources go through sluice, and a resource's port at an unlisted \
                         address raises an alert. Use `egress: deny` to contain agents.",
                        t.name
                    );
                }
                Ok(0)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(1)
            }
        },
    }
}

/// `sluice mask`: stdin through a [`StreamMasker`] to stdout.
fn mask_stdin(config: Option<PathBuf>, report: bool) -> anyhow::Result<i32> {
    use std::{
        io::{Read, Write},
        sync::Arc,
    };

    use sluice::inspect::masking::{MaskingConfig, MaskingEngine, StreamMasker};

    // Only the `masking:` key of a policy file; the other sections belong to `Config`.
    #[derive(serde::Deserialize)]
    struct PolicyMasking {
        #[serde(default)]
        masking: MaskingConfig,
    }
    let cfg = match config {
        Some(path) => {
            let text = std::fs::read_to_string(&path)?;
            serde_saphyr::from_str::<PolicyMasking>(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                .masking
        }
        None => MaskingConfig::default(),
    };
    let mut masker = StreamMasker::new(Arc::new(MaskingEngine::new(cfg)?));
    let (mut stdin, mut stdout) = (std::io::stdin().lock(), std::io::stdout().lock());
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(buf.len() + 4096);
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        masker.push(&buf[..n], &mut out)?;
        stdout.write_all(&out)?;
        out.clear();
    }
    let findings = masker.finish(&mut out)?;
    stdout.write_all(&out)?;
    stdout.flush()?;
    if report {
        eprintln!("{}", serde_json::to_string(&findings)?);
    }
    Ok(0)
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled: a signal right after start-up must still shut down cleanly.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
