//! The `audit:` section of the policy file.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::{
    diag::Report,
    secret::{RawSecret, Secret, resolve_secret},
};

/// Where persistent data lives unless the policy says otherwise (`state_dir` is runtime state,
/// usually on tmpfs; the audit log must survive a reboot).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/sluice";
pub const DEFAULT_CAPTURE_ROWS: usize = 1_000;
pub const DEFAULT_CAPTURE_BYTES: usize = 256 * 1024;
pub const DEFAULT_CAPTURE_TERMINAL_BYTES: usize = 16 * 1024 * 1024;
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1_000;
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct AuditSettings {
    /// `false` only with `audit: { enabled: false }`: the gateway then logs a warning at start.
    pub enabled: bool,
    pub store: StoreSettings,
    /// This gateway's chain in a shared store (default: the host name).
    pub node: String,
    /// Ed25519 key signing checkpoints (created on first start, mode 0600).
    pub key: PathBuf,
    /// The newest checkpoint, kept outside the store.
    pub witness: PathBuf,
    pub capture: CaptureLimits,
    pub checkpoint_every: u64,
    pub checkpoint_interval: Duration,
    /// Every durable record (and signed checkpoint) also goes to a syslog receiver.
    pub syslog: Option<super::syslog::SyslogSettings>,
    /// How long a record nobody waits for waits for one somebody waits for, to share its
    /// commit (not a policy setting; tests lengthen it to observe the grouping itself).
    pub lazy_window: Duration,
}

#[derive(Clone, Debug)]
pub enum StoreSettings {
    Sqlite(PathBuf),
    Postgres {
        /// libpq-style connection string or URL, without the password.
        connection: String,
        password: Option<Secret>,
    },
}

impl StoreSettings {
    pub fn describe(&self) -> String {
        match self {
            StoreSettings::Sqlite(p) => format!("sqlite {}", p.display()),
            StoreSettings::Postgres { connection, .. } => format!("postgres {connection}"),
        }
    }
}

/// How much of each response is kept in the log (the agent always gets all of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureLimits {
    pub rows: usize,
    /// Bytes of cell text per command, and of output per exec channel.
    pub bytes: usize,
    /// Bytes of output per interactive shell channel (a terminal session runs many commands).
    pub terminal_bytes: usize,
}

impl AuditSettings {
    /// The defaults for a policy without an `audit:` section.
    pub fn defaults(data_dir: &std::path::Path) -> AuditSettings {
        AuditSettings {
            enabled: true,
            store: StoreSettings::Sqlite(data_dir.join("audit.db")),
            node: default_node(),
            key: data_dir.join("audit.key"),
            witness: data_dir.join("audit.witness"),
            capture: CaptureLimits {
                rows: DEFAULT_CAPTURE_ROWS,
                bytes: DEFAULT_CAPTURE_BYTES,
                terminal_bytes: DEFAULT_CAPTURE_TERMINAL_BYTES,
            },
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            syslog: None,
            lazy_window: super::LAZY_WINDOW,
        }
    }
}

fn default_node() -> String {
    super::syslog::machine_hostname()
        .unwrap_or("sluice")
        .to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    #[serde(default)]
    enabled: Option<bool>,
    /// SQLite file.
    #[serde(default)]
    store: Option<String>,
    #[serde(default)]
    postgres: Option<RawPostgres>,
    #[serde(default)]
    node: Option<Spanned<String>>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    witness: Option<String>,
    #[serde(default)]
    capture: Option<RawCapture>,
    #[serde(default)]
    checkpoint: Option<RawCheckpoint>,
    #[serde(default)]
    syslog: Option<super::syslog::SyslogSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostgres {
    connection: Spanned<String>,
    #[serde(default)]
    password: Option<Spanned<RawSecret>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapture {
    #[serde(default)]
    rows: Option<usize>,
    #[serde(default)]
    bytes: Option<Spanned<usize>>,
    #[serde(default)]
    terminal_bytes: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckpoint {
    #[serde(default)]
    every: Option<Spanned<u64>>,
    #[serde(default)]
    interval: Option<Spanned<String>>,
}

/// Capture above this per command would let one result set balloon the log.
const MAX_CAPTURE_BYTES: usize = 16 * 1024 * 1024;
/// The same for one shell channel, which runs many commands.
const MAX_TERMINAL_BYTES: usize = 1024 * 1024 * 1024;

impl RawAudit {
    pub(crate) fn validate(
        &self,
        data_dir: &std::path::Path,
        report: &mut Report,
    ) -> AuditSettings {
        let mut s = AuditSettings::defaults(data_dir);
        s.enabled = self.enabled.unwrap_or(true);
        s.syslog = self.syslog.clone();
        if let Some(p) = &self.store {
            s.store = StoreSettings::Sqlite(PathBuf::from(p));
        }
        if let Some(pg) = &self.postgres {
            if self.store.is_some() {
                report.error(
                    &pg.connection,
                    "`audit.store` (SQLite) and `audit.postgres` are exclusive",
                    Some("keep one of them"),
                );
            }
            if let Err(e) = pg.connection.value.parse::<postgres::Config>() {
                report.error(
                    &pg.connection,
                    format!("invalid PostgreSQL connection string: {e}"),
                    Some("e.g. `host=db.internal user=sluice dbname=audit`"),
                );
            }
            s.store = StoreSettings::Postgres {
                connection: pg.connection.value.clone(),
                password: pg.password.as_ref().and_then(|p| resolve_secret(p, report)),
            };
        }
        if let Some(n) = &self.node {
            let ok = !n.value.is_empty()
                && n.value.len() <= 128
                && n.value.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                report.error(
                    n,
                    "`audit.node` must be 1 to 128 printable characters without spaces",
                    None,
                );
            }
            s.node = n.value.clone();
        }
        if let Some(k) = &self.key {
            s.key = PathBuf::from(k);
        }
        if let Some(w) = &self.witness {
            s.witness = PathBuf::from(w);
        }
        if let Some(c) = &self.capture {
            if let Some(rows) = c.rows {
                s.capture.rows = rows;
            }
            if let Some(bytes) = &c.bytes {
                if bytes.value > MAX_CAPTURE_BYTES {
                    report.error(
                        bytes,
                        format!("`capture.bytes` is at most {MAX_CAPTURE_BYTES}"),
                        None,
                    );
                }
                s.capture.bytes = bytes.value;
            }
            if let Some(bytes) = &c.terminal_bytes {
                if bytes.value > MAX_TERMINAL_BYTES {
                    report.error(
                        bytes,
                        format!("`capture.terminal_bytes` is at most {MAX_TERMINAL_BYTES}"),
                        None,
                    );
                }
                s.capture.terminal_bytes = bytes.value;
            }
        }
        if let Some(c) = &self.checkpoint {
            if let Some(every) = &c.every {
                if every.value == 0 {
                    report.error(every, "`checkpoint.every` must be at least 1", None);
                }
                s.checkpoint_every = every.value.max(1);
            }
            if let Some(i) = &c.interval {
                match humantime::parse_duration(i.value.trim()) {
                    Ok(d) if d >= Duration::from_millis(100) => s.checkpoint_interval = d,
                    _ => report.error(
                        i,
                        "`checkpoint.interval` must be a duration of at least 100ms",
                        Some("e.g. 10s"),
                    ),
                }
            }
        }
        s
    }
}
