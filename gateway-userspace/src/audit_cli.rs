//! `sluice audit ...`: verify the chain, list and replay sessions, export for SIEMs.
//!
//! Reads the store the policy names (`audit:`; without `--config`, the defaults under
//! /var/lib/sluice). Opens it read-only: these commands can run next to a live gateway.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use ed25519_dalek::VerifyingKey;
use sluice::{
    config::{AuditSettings, Config},
    services::audit::{
        self,
        chain::{self, Store},
        replay::{self, ReplayFormat, SessionFilter},
        settings::DEFAULT_DATA_DIR,
    },
};

#[derive(Args)]
pub struct AuditArgs {
    /// Policy file naming the store (default: the built-in defaults under /var/lib/sluice).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every chain link and signed checkpoint; exit 1 at the first broken one.
    Verify {
        /// Only this node's chain (default: every node in the store).
        #[arg(long)]
        node: Option<String>,
        /// A checkpoint kept elsewhere (default: the policy's `audit.witness`).
        #[arg(long)]
        witness: Option<PathBuf>,
        /// Check a JSONL export instead of the store.
        #[arg(long)]
        jsonl: Option<PathBuf>,
    },
    /// List sessions, oldest first.
    Sessions {
        /// RFC 3339 time, or a duration back from now (`2h`).
        #[arg(long)]
        since: Option<String>,
        /// Token subject, user (database or SSH), executable, comm or `uid:N`.
        #[arg(long)]
        identity: Option<String>,
        #[arg(long)]
        resource: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Print a session: commands, decisions and what the agent saw.
    Replay {
        session: String,
        #[arg(long, value_enum, default_value_t = Format::Transcript)]
        format: Format,
        /// With `--format asciicast`: the channel to replay (default: the first with a pty,
        /// else the first).
        #[arg(long)]
        channel: Option<u32>,
    },
    /// Write records as JSON lines (self-describing, with their chain hashes).
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Keep running and print new records as they are committed.
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        node: Option<String>,
        /// Start after this sequence number (with `--node`).
        #[arg(long, default_value_t = 0)]
        after_seq: u64,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Time, verdict and rule per command, then its result or output.
    Transcript,
    /// Exactly what psql printed on standard output (PostgreSQL sessions).
    Psql,
    /// One terminal channel (SSH) as an asciicast v2 recording, for `asciinema play`.
    Asciicast,
    /// The session's records as JSON lines.
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Jsonl,
}

pub fn run(args: AuditArgs) -> anyhow::Result<i32> {
    let settings = match &args.config {
        Some(path) => Config::load(path)?.audit,
        None => AuditSettings::defaults(Path::new(DEFAULT_DATA_DIR)),
    };
    match args.command {
        AuditCommand::Verify {
            node,
            witness,
            jsonl,
        } => match jsonl {
            Some(path) => verify_jsonl(&path),
            None => verify(&settings, node, witness),
        },
        AuditCommand::Sessions {
            since,
            identity,
            resource,
            limit,
            json,
        } => {
            let mut store = open(&settings)?;
            let filter = SessionFilter {
                since: since.map(|s| since_time(&s)).transpose()?,
                identity,
                resource,
                limit,
            };
            let list = replay::sessions(store.as_mut(), &filter)?;
            let mut out = std::io::stdout().lock();
            if json {
                for s in &list {
                    writeln!(out, "{}", serde_json::to_string(s)?)?;
                }
            } else {
                writeln!(
                    out,
                    "{:<16}  {:<24}  {:<8}  {:<16}  {:>8}  {:<8}  WHO",
                    "SESSION", "STARTED", "PROTOCOL", "RESOURCE", "COMMANDS", "ENDED"
                )?;
                for s in &list {
                    writeln!(
                        out,
                        "{:<16}  {:<24}  {:<8}  {:<16}  {:>8}  {:<8}  {}",
                        s.session,
                        s.started,
                        s.start.protocol,
                        s.start.resource,
                        s.end
                            .as_ref()
                            .map(|e| e.commands.to_string())
                            .unwrap_or("-".into()),
                        if s.ended.is_some() { "yes" } else { "open" },
                        s.who()
                    )?;
                }
            }
            Ok(0)
        }
        AuditCommand::Replay {
            session,
            format,
            channel,
        } => {
            if channel.is_some() && format != Format::Asciicast {
                bail!("--channel is for --format asciicast");
            }
            let mut store = open(&settings)?;
            let records = store.session(&session)?;
            if records.is_empty() {
                bail!(
                    "no session `{session}` in the audit log ({})",
                    settings.store.describe()
                );
            }
            let mut out = std::io::stdout().lock();
            let format = match format {
                Format::Jsonl => {
                    for r in &records {
                        writeln!(out, "{}", replay::export_line(r))?;
                    }
                    return Ok(0);
                }
                Format::Transcript => ReplayFormat::Transcript,
                Format::Psql => ReplayFormat::Psql,
                Format::Asciicast => ReplayFormat::Asciicast { channel },
            };
            let text = replay::replay(&records, format).map_err(anyhow::Error::msg)?;
            out.write_all(text.as_bytes())?;
            Ok(0)
        }
        AuditCommand::Export {
            format: ExportFormat::Jsonl,
            follow,
            node,
            after_seq,
        } => export(&settings, follow, node, after_seq),
    }
}

fn open(settings: &AuditSettings) -> anyhow::Result<Box<dyn Store>> {
    audit::open_store(&settings.store, true)
        .with_context(|| format!("opening the audit store ({})", settings.store.describe()))
}

fn since_time(text: &str) -> anyhow::Result<String> {
    if humantime::parse_rfc3339_weak(text).is_ok() {
        return Ok(text.to_string());
    }
    let back = humantime::parse_duration(text)
        .with_context(|| format!("`--since {text}`: expected an RFC 3339 time or a duration"))?;
    let at = std::time::SystemTime::now() - back;
    Ok(sluice::util::rfc3339(at))
}

/// The key each node's checkpoints must verify with: this gateway's own key file for its
/// node, else the key the node registered in the store.
fn node_key(
    settings: &AuditSettings,
    store: &mut dyn Store,
    node: &str,
) -> anyhow::Result<(VerifyingKey, &'static str)> {
    if node == settings.node
        && let Ok(Some(key)) = chain::read_key(&settings.key)
    {
        return Ok((key.verifying_key(), "key file"));
    }
    let Some(raw) = store.node_key(node)? else {
        bail!("node `{node}` has no registered checkpoint key");
    };
    let raw: [u8; 32] = raw
        .try_into()
        .map_err(|_| anyhow::anyhow!("node `{node}`: registered key is malformed"))?;
    Ok((VerifyingKey::from_bytes(&raw)?, "registered in the store"))
}

fn verify(
    settings: &AuditSettings,
    node: Option<String>,
    witness: Option<PathBuf>,
) -> anyhow::Result<i32> {
    let mut store = open(settings)?;
    let witness_path = witness.unwrap_or_else(|| settings.witness.clone());
    let witness = chain::read_witness(&witness_path)?;
    let nodes = match node {
        Some(n) => vec![n],
        None => store.nodes()?,
    };
    if nodes.is_empty() {
        println!("the audit log is empty ({})", settings.store.describe());
    }
    let mut broken = false;
    for node in nodes {
        let (key, source) = node_key(settings, store.as_mut(), &node)?;
        let w = witness.as_ref().filter(|w| w.node == node);
        match chain::verify(store.as_mut(), &node, &key, w) {
            Ok(v) => println!(
                "node {node}: OK: {} records, {} signed checkpoints{}, head {} (key: {source})",
                v.records,
                v.checkpoints,
                if w.is_some() {
                    " incl. the witness"
                } else {
                    ""
                },
                sluice::util::hex(&v.head)
            ),
            Err(chain::VerifyFailure::Broken(b)) => {
                broken = true;
                println!("node {node}: BROKEN: {b}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(if broken { 1 } else { 0 })
}

fn verify_jsonl(path: &Path) -> anyhow::Result<i32> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut store = replay::MemoryStore::from_jsonl(&text).map_err(anyhow::Error::msg)?;
    match replay::verify_export(&mut store) {
        Ok(nodes) => {
            for (node, n) in nodes {
                println!(
                    "node {node}: OK: {n} records linked from record {}",
                    store.first_seq(&node).unwrap_or(0)
                );
            }
            Ok(0)
        }
        Err(e) => {
            println!("BROKEN: {e}");
            Ok(1)
        }
    }
}

/// Poll interval of `export --follow`.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

fn export(
    settings: &AuditSettings,
    follow: bool,
    node: Option<String>,
    after_seq: u64,
) -> anyhow::Result<i32> {
    let mut store = open(settings)?;
    let mut positions: std::collections::BTreeMap<String, u64> = match &node {
        Some(n) => [(n.clone(), after_seq)].into(),
        None => store.nodes()?.into_iter().map(|n| (n, 0)).collect(),
    };
    let mut out = std::io::stdout().lock();
    loop {
        for (node, after) in positions.iter_mut() {
            loop {
                let page = store.records(node, *after, chain::PAGE)?;
                let Some(last) = page.last() else { break };
                *after = last.record.seq;
                for r in &page {
                    if writeln!(out, "{}", replay::export_line(r)).is_err() {
                        // The reader went away (`| head`).
                        return Ok(0);
                    }
                }
            }
        }
        out.flush()?;
        if !follow {
            return Ok(0);
        }
        std::thread::sleep(FOLLOW_POLL);
        if node.is_none() {
            for n in store.nodes()? {
                positions.entry(n).or_insert(0);
            }
        }
    }
}
