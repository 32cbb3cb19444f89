//! In-process session tests without root or eBPF: a gateway's [`Services`] on a temporary
//! audit log, a policy from YAML text, a hand-built [`ConnCtx`] (a static original destination
//! and process instead of the kernel's record), the approval broker when the policy enables
//! approvals, and the audit records read back from the SQLite file.
//!
//! Protocol sessions are served over `tokio::io::duplex` (the agent's side) against scripted
//! upstreams on loopback port 0 ([`postgres`], [`ssh`]).

pub mod postgres;
pub mod ssh;

use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::sync::mpsc;

use crate::{
    config::Config,
    conn::{ClientAddr, ConnCtx, Handshake, OrigDstAddr, ProcessInfo},
    inspect::masking::MaskingEngine,
    services::{
        Services,
        approvals::{Broker, BrokerEvent, model::ApprovalView},
        audit::{AuditLog, record::CommandRecord},
    },
};

/// How long any single step of a test may wait: a broken session fails the test instead of
/// hanging it.
pub const STEP: Duration = Duration::from_secs(10);

/// `fut`, or a panic naming `what` after [`STEP`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The target every test connection comes from.
pub const TARGET: &str = "agents";
/// The agent process's uid (approval requests are filed as `agents/uid:1000`).
pub const AGENT_UID: u32 = 1000;

/// One gateway's services, in a temporary directory that lives as long as the kit.
pub struct Kit {
    pub services: Arc<Services>,
    pub config: Arc<Config>,
    /// Each protocol's shared state, as the server holds it.
    pub pg: Arc<crate::proto::postgres::State>,
    pub ssh: Arc<crate::proto::ssh::State>,
    /// Approval requests as the broker opens and decides them.
    events: mpsc::UnboundedReceiver<BrokerEvent>,
    dir: tempfile::TempDir,
}

impl Kit {
    /// Parses `policy` (without `data_dir`/`state_dir`, which the kit sets to its temporary
    /// directory) and starts the services: the audit log (SQLite), the masking engine, and the
    /// approval broker when the policy has an `approvals:` section.
    pub fn new(policy: &str) -> Kit {
        let dir = tempfile::tempdir().expect("temporary directory");
        let text = format!(
            "data_dir: {d}\nstate_dir: {d}\n{policy}",
            d = dir.path().display()
        );
        let config = Arc::new(
            Config::parse(&text, Path::new("test-policy.yaml")).unwrap_or_else(|e| panic!("{e}")),
        );
        let audit = Arc::new(AuditLog::open(&config.audit, None).expect("audit log"));
        let masker = Arc::new(MaskingEngine::new(config.masking.clone()).expect("masking engine"));
        let (tx, events) = mpsc::unbounded_channel();
        let broker = config.approvals.as_ref().map(|settings| {
            let store = settings.store_path(&config.state_dir);
            Arc::new(
                Broker::start(settings, &store, &masker)
                    .expect("approval store")
                    .with_events(move |e| {
                        let _ = tx.send(e);
                    }),
            )
        });
        let services = Arc::new(Services::new(config.clone(), masker, broker, None, audit));
        Kit {
            services,
            config,
            pg: Default::default(),
            ssh: Default::default(),
            events,
            dir,
        }
    }

    /// A connection from the agent (pid of this process, uid [`AGENT_UID`]) to `resource`, as
    /// if the kernel had redirected a connect to `orig_dst`.
    pub fn ctx(&self, resource: &str, orig_dst: SocketAddr) -> ConnCtx {
        let resource = self
            .config
            .resources
            .iter()
            .find(|r| r.name == resource)
            .unwrap_or_else(|| panic!("no resource `{resource}` in the test policy"))
            .clone();
        ConnCtx {
            id: 1,
            target: TARGET.into(),
            client: ClientAddr("127.0.0.1:40000".parse().expect("address")),
            orig_dst: OrigDstAddr(orig_dst),
            process: ProcessInfo {
                pid: std::process::id(),
                tid: std::process::id(),
                uid: AGENT_UID,
                gid: AGENT_UID,
                cgroup_id: 1,
                comm: "agent".into(),
                exe: None,
                cmdline: vec!["agent".into()],
            },
            resource: Arc::new(resource),
            handshake: Handshake::default(),
        }
    }

    pub fn broker(&self) -> &Arc<Broker> {
        self.services
            .approvals
            .as_ref()
            .expect("the test policy has an `approvals:` section")
    }

    /// The next approval request opened (skipping escalations and decisions).
    pub async fn next_request(&mut self) -> ApprovalView {
        loop {
            match within("an approval request", self.events.recv()).await {
                Some(BrokerEvent::Requested(v)) => return v,
                Some(_) => continue,
                None => panic!("the broker is gone"),
            }
        }
    }

    fn audit_db(&self) -> PathBuf {
        self.dir.path().join("audit.db")
    }

    /// Every record committed so far, in order: (kind, session, body as JSON). Commands are
    /// committed before they are forwarded; results and session ends are committed lazily
    /// (call [`Kit::close_audit`] first to see them all).
    pub fn audit_records(&self) -> Vec<(String, Option<String>, serde_json::Value)> {
        let db = rusqlite::Connection::open_with_flags(
            self.audit_db(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the audit store");
        let mut q = db
            .prepare("SELECT kind, session, body FROM audit ORDER BY seq")
            .expect("query the audit store");
        q.query_map([], |r| {
            let body: String = r.get(2)?;
            Ok((
                r.get(0)?,
                r.get(1)?,
                serde_json::from_str(&body).expect("audit bodies are JSON"),
            ))
        })
        .expect("query the audit store")
        .collect::<Result<_, _>>()
        .expect("read the audit store")
    }

    /// The commands recorded so far.
    pub fn audit_commands(&self) -> Vec<CommandRecord> {
        self.audit_records()
            .into_iter()
            .filter(|(kind, _, _)| kind == "command")
            .map(|(_, _, body)| serde_json::from_value(body).expect("a command record"))
            .collect()
    }

    /// Commits what is queued and stops the audit writer: afterwards every command is refused
    /// (rule `audit`), as when the store is unavailable.
    pub async fn close_audit(&self) {
        within("the audit log to close", self.services.audit.close()).await;
    }
}
