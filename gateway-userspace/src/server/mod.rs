//! Listeners, the accept loop and the gateway's lifecycle.
//!
//! [`Gateway::start`] binds the listeners, claims and attaches every target, and returns a
//! gateway that [`Gateway::serve`] runs until the shutdown future completes. Stopping never
//! releases an agent: the pinned programs stay attached (connects to resources are refused until
//! a gateway returns), except for a managed cgroup that is empty and can be removed.

pub mod events;
pub mod listen;
mod private;
pub mod quota;
pub mod reload;
pub mod state;

use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use state::{TargetLease, TargetState};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
};
use tracing::{error, info, warn};

use crate::{
    config::{ApprovalSettings, Config, Protocol, Resource, TargetCgroup},
    conn::{ClientAddr, ConnCtx, Handshake, OrigDstAddr, ProcessInfo, record_destination},
    ebpf::{AttachPlan, Interceptor, ListenAddrs, cgroup},
    inspect::masking::MaskingEngine,
    proto,
    services::{
        Services,
        approvals::{
            Broker, BrokerEvent,
            api::{self, ApiState, Authenticator},
            model::Decision,
            notify::{Notification, Notifier, NotifyConfig, NotifyEvent, request_link},
            socket::ApiSocket,
        },
        audit::{
            self, AuditLog, SyslogForward,
            record::{self, ApprovalDecision, ApprovalRecord},
            syslog::SyslogSink,
        },
    },
};

/// How long open connections may finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How often the gateway checks that its programs are still attached and re-reads the inodes
/// of the allowed unix sockets.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

pub struct Gateway {
    config: Arc<Config>,
    listeners: Vec<TcpListener>,
    listen: ListenAddrs,
    interceptors: Vec<Interceptor>,
    leases: Vec<TargetLease>,
    resources: Vec<Arc<Resource>>,
    services: Arc<Services>,
    protocols: Arc<Protocols>,
    approvals: Option<ApprovalService>,
}

/// What each protocol's sessions share (caches, caps, the SSH host key), handed to its
/// `serve`, so that `Services` holds nothing protocol-specific.
#[derive(Default)]
struct Protocols {
    postgres: proto::postgres::State,
    ssh: proto::ssh::State,
}

/// The approval broker and its HTTP API and unix socket (bound at start so a conflict fails
/// the start).
struct ApprovalService {
    state: Arc<ApiState>,
    listener: tokio::net::TcpListener,
    socket: ApiSocket,
}

impl ApprovalService {
    async fn start(
        settings: &ApprovalSettings,
        config: &Config,
        audit: Arc<AuditLog>,
        masker: &MaskingEngine,
        target_dirs: &[PathBuf],
        inherited: &listen::Inherited,
    ) -> anyhow::Result<ApprovalService> {
        let store = settings.store_path(&config.state_dir);
        let notifier = Notifier::start(NotifyConfig {
            webhook: settings
                .notify
                .webhook
                .as_ref()
                .map(|(url, secret)| (url.clone(), secret.expose().to_string())),
            slack_webhook: settings
                .notify
                .slack
                .as_ref()
                .and_then(|s| s.webhook_url.as_ref())
                .map(|u| u.expose().to_string()),
        });
        let listener = inherited
            .bind(settings.listen)
            .with_context(|| format!("binding the approval API {}", settings.listen))?;
        let base = match &settings.public_url {
            Some(u) => u.clone(),
            None => format!("http://{}", listener.local_addr()?),
        };
        let socket = ApiSocket::bind(
            &settings.socket_path(&config.state_dir),
            target_dirs.to_vec(),
        )?;
        let broker = Broker::start(settings, &store, masker)
            .with_context(|| format!("opening the approval store {}", store.display()))?
            .with_events(move |event| {
                audit_approval(&audit, &event);
                let (event, view) = match event {
                    BrokerEvent::Requested(v) => (NotifyEvent::Requested, v),
                    BrokerEvent::Escalated { view, groups } => {
                        (NotifyEvent::Escalated { groups }, view)
                    }
                    BrokerEvent::Decided(v) => (NotifyEvent::Decided, v),
                };
                notifier.send(Notification {
                    event,
                    link: request_link(&base, &view.id),
                    view,
                });
            });
        let auth =
            Authenticator::new(&config.identity).context("setting up reviewer authentication")?;
        Ok(ApprovalService {
            state: Arc::new(ApiState {
                broker: Arc::new(broker),
                auth: Arc::new(auth),
                slack: settings.notify.slack.clone(),
            }),
            listener,
            socket,
        })
    }
}

impl Gateway {
    /// Binds, claims and attaches. Nothing is intercepted before every step succeeded for every
    /// target; on error whatever was attached is detached again.
    pub async fn start(config: Config) -> anyhow::Result<Gateway> {
        let config = Arc::new(config);
        let inherited = listen::Inherited::from_env();
        let v4 = inherited
            .bind(config.listen)
            .with_context(|| format!("binding the listener {}", config.listen))?;
        let port = v4.local_addr()?.port();
        let mut listeners = vec![v4];
        let mut listen = ListenAddrs {
            v4: SocketAddr::new(config.listen.ip(), port),
            v6: None,
        };
        if let Some(v6) = config.listen_v6 {
            let addr = SocketAddr::new(v6.ip(), port);
            match inherited.bind(addr) {
                Ok(l) => {
                    listeners.push(l);
                    listen.v6 = Some(addr);
                }
                // IPv6 connects to resources are then refused, not let through.
                Err(e) => {
                    warn!(%addr, error = %e, "no IPv6 listener: IPv6 connects to resources will fail")
                }
            }
        }

        // Before anything is written there: leases, stores, keys, the approval socket.
        private::prepare_dirs(&config)?;
        let mount = cgroup::cgroup2_mount()?;
        let own = cgroup::cgroup_of("self", &mount)?;
        // Every target is claimed before the audit store and the approval API are opened: a
        // target already served is the clearer reason to refuse the start. On an error below,
        // the leases taken so far are released as they drop.
        let mut leases = Vec::new();
        let mut dirs = Vec::new();
        for target in &config.targets {
            let dir = match &target.cgroup {
                TargetCgroup::Path(p) => cgroup::resolve(&mount, p)?,
                TargetCgroup::Managed => {
                    let dir = cgroup::managed_dir(&mount, &target.name);
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating cgroup {}", dir.display()))?;
                    cgroup::resolve(
                        &mount,
                        dir.strip_prefix(&mount)?.to_str().unwrap_or_default(),
                    )?
                }
            };
            // The gateway's own upstream connects must never be redirected to itself.
            if own.starts_with(&dir) {
                bail!(
                    "sluice runs inside target `{}` ({}); run the gateway outside the cgroups it intercepts",
                    target.name,
                    dir.display()
                );
            }
            leases.push(TargetLease::acquire(
                &config.state_dir,
                &TargetState {
                    target: target.name.clone(),
                    pid: std::process::id(),
                    cgroup_dir: dir.clone(),
                    listen: listen.v4.to_string(),
                    protected: protected_paths(&config),
                },
            )?);
            dirs.push(dir);
        }

        let forward = config
            .audit
            .syslog
            .clone()
            .map(|s| Box::new(SyslogForward(SyslogSink::start(s))) as Box<dyn audit::Forward>);
        let audit = Arc::new(AuditLog::open(&config.audit, forward).with_context(|| {
            format!(
                "opening the audit log ({}); a gateway that cannot audit does not start",
                config.audit.store.describe()
            )
        })?);
        let masker = Arc::new(MaskingEngine::new(config.masking.clone())?);
        let approvals = match &config.approvals {
            Some(settings) => Some(
                ApprovalService::start(
                    settings,
                    &config,
                    audit.clone(),
                    &masker,
                    &dirs,
                    &inherited,
                )
                .await?,
            ),
            None => None,
        };
        let mut gateway = Gateway {
            config: config.clone(),
            listeners,
            listen,
            interceptors: Vec::new(),
            leases,
            resources: config.resources.iter().cloned().map(Arc::new).collect(),
            services: Arc::new(Services::new(
                config.clone(),
                masker,
                approvals.as_ref().map(|a| a.state.broker.clone()),
                approvals.as_ref().and_then(|a| a.state.auth.oidc()),
                audit,
            )),
            protocols: Arc::default(),
            approvals,
        };
        if config.resources.iter().any(|r| r.ssh().is_some()) {
            gateway
                .protocols
                .ssh
                .server_config(&config.data_dir)
                .context("loading the gateway's SSH host key")?;
        }
        let own_addrs: Vec<SocketAddr> = gateway
            .approvals
            .as_ref()
            .and_then(|a| a.listener.local_addr().ok())
            .into_iter()
            .collect();
        for (target, dir) in config.targets.iter().zip(&dirs) {
            let plan = AttachPlan {
                target,
                cgroup_dir: dir,
                listen,
                config: &config,
                own_addrs: &own_addrs,
            };
            match Interceptor::attach(&plan) {
                Ok(i) => gateway.interceptors.push(i),
                Err(e) => {
                    gateway.abort();
                    return Err(e.context(format!("attaching target `{}`", target.name)));
                }
            }
        }
        Ok(gateway)
    }

    /// The IPv4 listener address (useful with port 0).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.v4
    }

    /// Undo a partial start. What was attached stays attached (pinned): a failed start must not
    /// release agents a previous gateway contained.
    fn abort(&mut self) {
        self.interceptors.clear();
        self.leases.clear();
    }

    /// Serves redirected connections until `shutdown` completes, then detaches.
    pub async fn serve(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let reloader = tokio::spawn(reload::watch(
            self.config.source.clone(),
            self.services.clone(),
        ));
        // Both API servers (TCP and the unix socket) stop on the same signal.
        let (api_stop, stopped) = tokio::sync::watch::channel(false);
        let stop_signal = move || {
            let mut rx = stopped.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let api = self.approvals.take().map(|a| {
            let (tcp_stop, unix_stop) = (stop_signal(), stop_signal());
            let state = a.state.clone();
            let tcp = tokio::spawn(async move {
                if let Err(e) = api::serve(a.listener, a.state, tcp_stop).await {
                    error!(error = %e, "approval API stopped");
                }
            });
            let mut socket = a.socket;
            let unix = tokio::spawn(async move {
                let path = socket.path().display().to_string();
                let served = match socket.take_listener() {
                    Ok(l) => api::serve_unix(l, path, state, unix_stop).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = served {
                    error!(error = %e, "approval API socket stopped");
                }
                // The socket file goes with it.
                drop(socket);
            });
            async move {
                let _ = tokio::join!(tcp, unix);
            }
        });
        for i in &mut self.interceptors {
            if let Some(ring) = i.take_events() {
                tokio::spawn(events::report(
                    i.target.name.clone(),
                    ring,
                    self.services.clone(),
                ));
            }
        }
        info!(event = "ready", listen = %self.listen.v4,
              listen_v6 = %self.listen.v6.map(|a| a.to_string()).unwrap_or_else(|| "none".into()),
              targets = ?self.config.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
              resources = self.resources.len(), "sluice gateway ready");
        if !self.config.targets.is_empty() {
            // Said at every start: what this gateway cannot contain (see `containment`).
            warn!(
                event = "containment",
                level = "standard",
                "no task-level containment (BPF LSM): a root agent not started by `sluice exec` can leave its cgroup; start agents with `sluice exec` as non-root users"
            );
        }

        let quotas = quota::Quotas::new(&self.config);
        let next_id = AtomicU64::new(1);
        let mut conns = JoinSet::new();
        let listeners = std::mem::take(&mut self.listeners);
        let mut health = tokio::time::interval(HEALTH_INTERVAL);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                // Reap finished connection tasks so the set does not grow.
                Some(_) = conns.join_next(), if !conns.is_empty() => continue,
                _ = health.tick() => {
                    self.check_interception();
                    continue;
                }
                r = accept_any(&listeners) => r,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // The record is consumed first, whatever happens to the connection next: a record
            // left behind could be claimed by another connection from the same address.
            let Some(ctx) = self.context_for(
                stream.peer_addr().unwrap_or(peer),
                next_id.fetch_add(1, Ordering::Relaxed),
            ) else {
                continue;
            };
            let permit = match quotas.admit(&ctx.target, ctx.process.pid) {
                Ok(p) => p,
                Err(exceeded) => {
                    warn!(event = "connection_limit", conn_id = ctx.id, cgroup_target = %ctx.target,
                          pid = ctx.process.pid, client = %ctx.client, limit = %exceeded,
                          "too many connections; closing");
                    continue;
                }
            };
            let services = self.services.clone();
            let protocols = self.protocols.clone();
            let handshake_timeout = self.config.handshake_timeout;
            conns.spawn(async move {
                let handshake = ctx.handshake.clone();
                let conn_id = ctx.id;
                tokio::select! {
                    _ = handle(stream, ctx, services, protocols) => {}
                    _ = handshake.deadline(handshake_timeout) => {
                        warn!(event = "handshake_timeout", conn_id,
                              timeout_ms = handshake_timeout.as_millis() as u64,
                              "the agent did not complete its login in time; closing");
                    }
                }
                drop(permit);
            });
        }

        info!(
            event = "shutdown",
            open_connections = conns.len(),
            "stopping"
        );
        reloader.abort();
        drop(listeners);
        // Held commands end now with an error to their agents, not at the grace deadline.
        if let Some(broker) = &self.services.approvals {
            broker.shutdown();
        }
        let _ = api_stop.send(true);
        if let Some(api) = api {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, api).await;
        }
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                remaining = conns.len(),
                "closing connections still open after the grace period"
            );
            conns.shutdown().await;
        }
        // Everything the sessions recorded is committed and a final checkpoint signed.
        self.services.audit.close().await;
        release(std::mem::take(&mut self.interceptors));
        self.leases.clear();
        Ok(())
    }

    /// Re-attaches programs someone detached.
    fn check_interception(&mut self) {
        for i in &mut self.interceptors {
            match i.ensure_attached() {
                Ok(missing) if missing.is_empty() => {}
                Ok(missing) => {
                    error!(event = "interception_restored", cgroup_target = %i.target.name,
                           programs = ?missing,
                           "programs had been detached from the target's cgroup; re-attached");
                    if let Some(url) = &self.services.policy().alerts.webhook {
                        self.services.alerts.send(
                            url,
                            crate::services::alerts::Alert {
                                kind: "sluice.containment",
                                time: crate::util::now_rfc3339(),
                                action: "alert".into(),
                                rule: "interception_restored".into(),
                                reason: format!("detached programs re-attached: {missing:?}"),
                                resource: String::new(),
                                target: i.target.name.clone(),
                                conn_id: 0,
                                pid: 0,
                                uid: 0,
                                exe: None,
                                command: String::new(),
                            },
                        );
                    }
                }
                Err(e) => {
                    error!(event = "interception_check_failed", cgroup_target = %i.target.name,
                                 error = %format!("{e:#}"), "cannot check the target's programs")
                }
            }
        }
    }

    /// Identifies an accepted connection from the kernel's record; `None` (and the connection
    /// is dropped) when it was not redirected by sluice.
    fn context_for(&self, peer: SocketAddr, id: u64) -> Option<ConnCtx> {
        let client = ClientAddr(peer);
        let Some((interceptor, rec)) = self
            .interceptors
            .iter()
            .find_map(|i| i.take_record(&client).map(|r| (i, r)))
        else {
            warn!(event = "unredirected_connection", %client,
                  "connection to the listener without a redirect record; closing");
            return None;
        };
        let Some(resource) = self.resources.get(rec.resource_id as usize).cloned() else {
            error!(event = "unknown_resource", %client, resource_id = rec.resource_id, "closing");
            return None;
        };
        let orig_dst = OrigDstAddr(record_destination(
            rec.family,
            &rec.orig_addr,
            rec.orig_port,
        ));
        let process = ProcessInfo::from_record(&rec);
        let ctx = ConnCtx {
            id,
            target: interceptor.target.name.clone(),
            client,
            orig_dst,
            process,
            resource,
            handshake: Handshake::default(),
        };
        info!(event = "connection", conn_id = ctx.id, cgroup_target = %ctx.target,
              resource = %ctx.resource.name, protocol = %ctx.resource.protocol,
              client = %ctx.client, orig_dst = %ctx.orig_dst,
              pid = ctx.process.pid, tid = ctx.process.tid, uid = ctx.process.uid, gid = ctx.process.gid,
              cgroup_id = ctx.process.cgroup_id, comm = %ctx.process.comm,
              exe = %ctx.process.exe.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
              cmdline = %ctx.process.cmdline.join(" "),
              "redirected connection");
        Some(ctx)
    }
}

async fn accept_any(listeners: &[TcpListener]) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listeners {
        [one] => one.accept().await,
        [a, b, ..] => tokio::select! {
            r = a.accept() => r,
            r = b.accept() => r,
        },
        [] => std::future::pending().await,
    }
}

async fn handle(
    stream: TcpStream,
    ctx: ConnCtx,
    services: Arc<Services>,
    protocols: Arc<Protocols>,
) {
    let started = Instant::now();
    // Protocol sessions take any byte stream (tests hand them an in-memory one).
    let _ = stream.set_nodelay(true);
    let result = match ctx.resource.protocol.kind() {
        Protocol::Tcp => {
            // Opaque TCP has no login to wait for.
            ctx.handshake.done();
            proto::tcp::serve(stream, &ctx).await
        }
        Protocol::Postgres => {
            proto::postgres::serve(stream, &ctx, &services, &protocols.postgres).await
        }
        Protocol::Ssh => proto::ssh::serve(stream, &ctx, &services, &protocols.ssh).await,
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(t) => info!(
            event = "connection_closed",
            conn_id = ctx.id,
            bytes_to_upstream = t.to_upstream,
            bytes_to_client = t.to_client,
            elapsed_ms,
            "closed"
        ),
        Err(e) => warn!(event = "connection_failed", conn_id = ctx.id, side = e.side(), error = %e,
                        elapsed_ms, "connection ended with an error"),
    }
}

/// Records an approval request's life in the audit log, in the session it came from.
fn audit_approval(audit: &AuditLog, event: &BrokerEvent) {
    let (name, view, groups) = match event {
        BrokerEvent::Requested(v) => ("requested", v, v.groups.clone()),
        BrokerEvent::Escalated { view, groups } => ("escalated", view, groups.clone()),
        BrokerEvent::Decided(v) => ("decided", v, Vec::new()),
    };
    let body = ApprovalRecord {
        event: name.into(),
        id: view.id.clone(),
        state: view.state.as_str().into(),
        resource: view.resource.clone(),
        rule: view.rule.clone(),
        sha256: view.sha256.clone(),
        decisions: view
            .votes
            .iter()
            .map(|v| ApprovalDecision {
                reviewer: v.reviewer.clone(),
                approve: v.decision == Decision::Approve,
                reason: v.reason.clone(),
            })
            .collect(),
        groups,
        reason: view.decision_reason.clone(),
    };
    audit.record(
        record::kind::APPROVAL,
        view.requester.session.as_deref(),
        &body,
    );
}

/// What a stopping gateway leaves behind. Interception stays pinned (agents stay refused until a
/// gateway returns), except for a managed cgroup with nobody in it: removing the cgroup is atomic
/// with its emptiness (rmdir fails while a process is in it), so no agent is ever released.
fn release(interceptors: Vec<Interceptor>) {
    for i in interceptors {
        let managed = i.target.cgroup == TargetCgroup::Managed;
        if managed && std::fs::remove_dir(&i.cgroup_dir).is_ok() {
            if let Err(e) = i.detach() {
                error!(error = %e, "detaching from a removed cgroup");
            }
            continue;
        }
        let procs = std::fs::read_to_string(i.cgroup_dir.join("cgroup.procs"))
            .map(|p| p.lines().count())
            .unwrap_or(0);
        info!(event = "interception_kept", cgroup_target = %i.target.name, processes = procs,
              "interception stays in place: the target's connects are refused until a gateway \
               serves it again (`sluice cleanup --detach` removes it)");
    }
}

/// Files and directories of sluice's that no agent may open: state, data, the policy, the
/// stores with their SQLite side files, secrets. `sluice exec` hides them from its agents
/// (Landlock); published in the target's state for it.
fn protected_paths(config: &Config) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = crate::exec::settings::protected_paths(
        &config.source,
        &config.state_dir,
        &config.data_dir,
        &config.audit,
        config.approvals.as_ref(),
        &config.secrets.files,
    )
    .into_iter()
    .map(|(_, p)| p)
    .collect();
    let sqlite: Vec<PathBuf> = paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .flat_map(|db| {
            ["-wal", "-shm", "-journal"].map(|suffix| {
                let mut p = db.clone().into_os_string();
                p.push(suffix);
                PathBuf::from(p)
            })
        })
        .collect();
    paths.extend(sqlite);
    paths.sort();
    paths.dedup();
    paths
}
