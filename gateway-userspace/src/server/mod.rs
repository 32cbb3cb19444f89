//! Listeners, the accept loop and the gateway's lifecycle.
//!
//! [`Gateway::start`] binds the listeners, claims and attaches every target, and returns a
//! gateway that [`Gateway::serve`] runs until the shutdown future completes; then it detaches
//! the programs and releases the targets.

mod private;
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
    net::{TcpListener, TcpSocket, TcpStream},
    sync::Semaphore,
    task::JoinSet,
};
use tracing::{error, info, warn};

use crate::{
    config::{ApprovalSettings, Config, Protocol, Resource, TargetCgroup},
    conn::{ClientAddr, ConnCtx, OrigDstAddr, ProcessInfo, comm_to_string, record_destination},
    ebpf::{Interceptor, ListenAddrs, cgroup},
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

pub struct Gateway {
    config: Arc<Config>,
    listeners: Vec<TcpListener>,
    listen: ListenAddrs,
    interceptors: Vec<Interceptor>,
    leases: Vec<TargetLease>,
    managed_cgroups: Vec<PathBuf>,
    resources: Vec<Arc<Resource>>,
    services: Arc<Services>,
    approvals: Option<ApprovalService>,
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
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
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
        let v4 = bind(config.listen)
            .with_context(|| format!("binding the listener {}", config.listen))?;
        let port = v4.local_addr()?.port();
        let mut listeners = vec![v4];
        let mut listen = ListenAddrs {
            v4: SocketAddr::new(config.listen.ip(), port),
            v6: None,
        };
        if let Some(v6) = config.listen_v6 {
            let addr = SocketAddr::new(v6.ip(), port);
            match bind(addr) {
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
        let mut managed_cgroups = Vec::new();
        let mut dirs = Vec::new();
        for target in &config.targets {
            let dir = match &target.cgroup {
                TargetCgroup::Path(p) => cgroup::resolve(&mount, p)?,
                TargetCgroup::Managed => {
                    let dir = cgroup::managed_dir(&mount, &target.name);
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating cgroup {}", dir.display()))?;
                    managed_cgroups.push(dir.clone());
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
                ApprovalService::start(settings, &config, audit.clone(), &masker, &dirs).await?,
            ),
            None => None,
        };
        let mut gateway = Gateway {
            config: config.clone(),
            listeners,
            listen,
            interceptors: Vec::new(),
            leases,
            managed_cgroups,
            resources: config.resources.iter().cloned().map(Arc::new).collect(),
            services: Arc::new(Services::new(
                config.clone(),
                masker,
                approvals.as_ref().map(|a| a.state.broker.clone()),
                approvals.as_ref().and_then(|a| a.state.auth.oidc()),
                audit,
            )),
            approvals,
        };
        if config.resources.iter().any(|r| r.protocol == Protocol::Ssh) {
            gateway
                .services
                .ssh_server_config()
                .context("loading the gateway's SSH host key")?;
        }
        for (target, dir) in config.targets.iter().zip(&dirs) {
            match Interceptor::attach(target, dir, listen, &config) {
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

    /// Undo a partial start.
    fn abort(&mut self) {
        for i in self.interceptors.drain(..) {
            if let Err(e) = i.detach() {
                error!(error = %e, "detaching after a failed start");
            }
        }
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
            if let Some(events) = i.take_events() {
                tokio::spawn(report_egress_denials(i.target.name.clone(), events));
            }
        }
        info!(event = "ready", listen = %self.listen.v4,
              listen_v6 = %self.listen.v6.map(|a| a.to_string()).unwrap_or_else(|| "none".into()),
              targets = ?self.config.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
              resources = self.resources.len(), "sluice gateway ready");

        let limit = Arc::new(Semaphore::new(self.config.max_connections));
        let next_id = AtomicU64::new(1);
        let mut conns = JoinSet::new();
        let listeners = std::mem::take(&mut self.listeners);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                // Reap finished connection tasks so the set does not grow.
                Some(_) = conns.join_next(), if !conns.is_empty() => continue,
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
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                warn!(event = "connection_limit", client = %peer, limit = self.config.max_connections,
                      "too many connections; closing");
                continue;
            };
            let Some(ctx) = self.context_for(
                stream.peer_addr().unwrap_or(peer),
                next_id.fetch_add(1, Ordering::Relaxed),
            ) else {
                continue;
            };
            let services = self.services.clone();
            conns.spawn(async move {
                handle(stream, ctx, services).await;
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
        let interceptors = std::mem::take(&mut self.interceptors);
        for i in interceptors {
            if let Err(e) = i.detach() {
                error!(error = %e, "detaching");
            }
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
        self.leases.clear();
        for dir in &self.managed_cgroups {
            match cgroup::remove_if_empty(dir) {
                Ok(true) => {}
                Ok(false) => {
                    warn!(cgroup = %dir.display(), "managed cgroup still has processes; left in place")
                }
                Err(e) => warn!(cgroup = %dir.display(), error = %e, "removing managed cgroup"),
            }
        }
        Ok(())
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

/// Agents open connections in bursts (connection pools, parallel tools); a short accept queue
/// drops SYNs and costs the client a 1 s retransmit, so listen as deep as the kernel allows.
const LISTEN_BACKLOG: u32 = 4096;

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
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

async fn handle(stream: TcpStream, ctx: ConnCtx, services: Arc<Services>) {
    let started = Instant::now();
    let result = match ctx.resource.protocol {
        Protocol::Tcp => proto::tcp::serve(stream, &ctx).await,
        Protocol::Postgres => proto::postgres::serve(stream, &ctx, &services).await,
        Protocol::Ssh => proto::ssh::serve(stream, &ctx, &services).await,
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

/// Logs every connect refused by `egress: deny`, with the process that tried it.
async fn report_egress_denials(target: String, events: aya::maps::RingBuf<aya::maps::MapData>) {
    let mut fd = match crate::ebpf::watch_readable(events) {
        Ok(fd) => fd,
        Err(e) => {
            error!(error = %e, "cannot watch the egress event ring buffer");
            return;
        }
    };
    loop {
        let Ok(mut guard) = fd.readable_mut().await else {
            return;
        };
        let rb = guard.get_inner_mut();
        while let Some(item) = rb.next() {
            if item.len() < std::mem::size_of::<gateway_common::DenyEvent>() {
                continue;
            }
            // The item is the bytes of a kernel-side `DenyEvent`, decoded field by field.
            let ev = decode_deny_event(&item);
            let dst = record_destination(ev.family, &ev.dst_addr, ev.dst_port);
            let exe = std::fs::read_link(format!("/proc/{}/exe", ev.pid))
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            warn!(event = "egress_denied", cgroup_target = %target, dst = %dst, pid = ev.pid,
                  tid = ev.tid, uid = ev.uid, gid = ev.gid, cgroup_id = ev.cgroup_id,
                  comm = %comm_to_string(&ev.comm), exe = %exe,
                  "egress refused: destination is not a listed resource");
        }
        guard.clear_ready();
    }
}

fn decode_deny_event(bytes: &[u8]) -> gateway_common::DenyEvent {
    let u16_at = |o: usize| u16::from_ne_bytes([bytes[o], bytes[o + 1]]);
    let u32_at = |o: usize| u32::from_ne_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_ne_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    gateway_common::DenyEvent {
        kind: u32_at(0),
        family: u16_at(4),
        dst_port: u16_at(6),
        dst_addr: bytes[8..24].try_into().expect("16 bytes"),
        pid: u32_at(24),
        tid: u32_at(28),
        uid: u32_at(32),
        gid: u32_at(36),
        cgroup_id: u64_at(40),
        comm: bytes[48..64].try_into().expect("16 bytes"),
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

#[cfg(test)]
mod tests {
    use gateway_common::{AF_INET, DenyEvent, EVENT_EGRESS_DENIED};

    use super::*;

    #[test]
    fn deny_events_decode_from_their_kernel_layout() {
        let ev = DenyEvent {
            kind: EVENT_EGRESS_DENIED,
            family: AF_INET,
            dst_port: 443,
            dst_addr: [1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            pid: 42,
            tid: 43,
            uid: 1000,
            gid: 1001,
            cgroup_id: 0x1122_3344_5566_7788,
            comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
        };
        // The same bytes the kernel writes: the struct's in-memory representation.
        let bytes: Vec<u8> = {
            let mut v = Vec::new();
            v.extend(ev.kind.to_ne_bytes());
            v.extend(ev.family.to_ne_bytes());
            v.extend(ev.dst_port.to_ne_bytes());
            v.extend(ev.dst_addr);
            for x in [ev.pid, ev.tid, ev.uid, ev.gid] {
                v.extend(x.to_ne_bytes());
            }
            v.extend(ev.cgroup_id.to_ne_bytes());
            v.extend(ev.comm);
            v
        };
        assert_eq!(bytes.len(), std::mem::size_of::<DenyEvent>());
        assert_eq!(decode_deny_event(&bytes), ev);
    }
}
