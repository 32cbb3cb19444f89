//! One agent connection to a PostgreSQL resource.
//!
//! Refusing a statement must keep the protocol exact without sending a byte of it upstream:
//! - a refused simple `Query` is replaced by an empty query; the upstream answers
//!   EmptyQueryResponse + ReadyForQuery, and the EmptyQueryResponse is swapped for sluice's
//!   ErrorResponse. Ordering behind earlier pipelined queries and the transaction status stay
//!   the upstream's own.
//! - a refused `Parse` drops every message up to the next `Sync` (as PostgreSQL does after an
//!   error); the `Sync` is forwarded and the ErrorResponse is injected just before its
//!   ReadyForQuery.
//!
//! Each forwarded `Query`/`Sync` pushes an [`Expect`] that the upstream-to-agent direction pops
//! at the matching ReadyForQuery.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Instant,
};

use bytes::BytesMut;
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter},
    net::TcpStream,
};
use tracing::{info, warn};

use super::{
    auth,
    capture::Capture,
    codec::{self, CodecError, Message},
    hold::{self, HeldBatch, HeldStatement, HoldSpec, PreviewInput, PreviewLogin, SessionIdentity},
    pinned,
};
use crate::{
    config::{AgentAuth, Credentials},
    conn::ConnCtx,
    inspect::{
        Verdict,
        masking::{ColumnContext, ColumnPlan, MaskingEngine, Report},
        policy::{Subject, decide_sql},
    },
    proto::{ProxyError, command, tcp::Transfer},
    services::{
        Services,
        audit::{
            record::{IdentityRecord, ResultRecord},
            session::{Decided, SessionAudit},
        },
        cancel::CancelTarget,
    },
};

/// Startup parameters an agent may pass through. Others are refused: `options` can set any
/// setting at login (`-c role=...`), and `replication` opens the replication protocol, both of
/// which would bypass statement checks.
const ALLOWED_STARTUP_PARAMS: &[&str] = &[
    "user",
    "database",
    "application_name",
    "client_encoding",
    "datestyle",
    "timezone",
    "extra_float_digits",
    "intervalstyle",
    "search_path",
];

/// SQLSTATE for statements refused by policy: insufficient_privilege.
pub const SQLSTATE_REFUSED: &str = "42501";
const SQLSTATE_PROTOCOL: &str = "08P01";

enum Expect {
    /// Relay the upstream's answer unchanged.
    Pass,
    /// Answer the EmptyQueryResponse of a substituted query with this error instead.
    ReplaceEmpty(Message),
    /// Put this error before the ReadyForQuery.
    InjectBeforeReady(Message),
}

/// A forwarded `Query` or `Sync` awaiting its ReadyForQuery.
struct Pending {
    expect: Expect,
    /// The audited commands it answers.
    commands: Vec<u64>,
    sent: Instant,
}

#[derive(Default)]
struct Shared {
    expect: VecDeque<Pending>,
}

/// A byte stream to either side: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub(super) type BoxIo = Box<dyn Io>;

pub async fn serve(
    mut tcp: TcpStream,
    ctx: &ConnCtx,
    services: &Services,
) -> Result<Transfer, ProxyError> {
    let _ = tcp.set_nodelay(true);
    let resource = ctx.resource.clone();
    // The first packet may ask for TLS; after that the stream may no longer be plain TCP.
    let mut pending = match read_startup_or_refuse(&mut tcp).await? {
        Some(p) => Some(p),
        None => return Ok(Transfer::default()),
    };
    let mut client: BoxIo = match (&pending, &resource.tls.agent) {
        (Some((codec::SSL_REQUEST, _)), Some(config)) => {
            tcp.write_all(b"S").await?;
            pending = None;
            let tls = tokio_rustls::TlsAcceptor::from(config.clone())
                .accept(tcp)
                .await
                .map_err(|e| {
                    ProxyError::ClientRefused(format!("TLS handshake with the agent failed: {e}"))
                })?;
            Box::new(tls)
        }
        _ => Box::new(tcp),
    };
    let params = loop {
        let (code, body) = match pending.take() {
            Some(p) => p,
            None => match read_startup_or_refuse(&mut client).await? {
                Some(p) => p,
                None => return Ok(Transfer::default()),
            },
        };
        match code {
            // Without a configured certificate sluice answers 'N' and every client continues in
            // plaintext: the link is local (redirected on this host).
            codec::SSL_REQUEST | codec::GSSENC_REQUEST => client.write_all(b"N").await?,
            codec::CANCEL_REQUEST => {
                forward_cancel(&body, ctx, services).await;
                return Ok(Transfer::default());
            }
            codec::PROTOCOL_3_0 => match codec::startup_params(&body) {
                Ok(p) => break p,
                Err(e) => {
                    refuse(
                        &mut client,
                        SQLSTATE_PROTOCOL,
                        &format!("sluice: invalid startup packet: {e}"),
                    )
                    .await;
                    return Err(ProxyError::ClientProtocol(e));
                }
            },
            other => {
                let msg = format!(
                    "unsupported frontend protocol {}.{}",
                    other >> 16,
                    other & 0xffff
                );
                refuse(&mut client, SQLSTATE_PROTOCOL, &msg).await;
                return Err(ProxyError::ClientRefused(msg));
            }
        }
    };

    if let Some((k, _)) = params
        .iter()
        .find(|(k, _)| !ALLOWED_STARTUP_PARAMS.contains(&k.to_ascii_lowercase().as_str()))
    {
        let msg = format!(
            "sluice: startup parameter `{k}` is not allowed (it could change the session's role or protocol)"
        );
        refuse(&mut client, SQLSTATE_REFUSED, &msg).await;
        return Err(ProxyError::ClientRefused(msg));
    }
    if let Some(msg) = pinned::encoding_refusal(&params) {
        let msg = format!("{msg} (set PGCLIENTENCODING=UTF8 or client_encoding=UTF8)");
        refuse(&mut client, "22023", &msg).await;
        return Err(ProxyError::ClientRefused(msg));
    }
    let agent_user = params
        .iter()
        .find(|(k, _)| k == "user")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();

    let subject = match ctx.resource.agent_auth {
        AgentAuth::None => Ok(None),
        AgentAuth::Oidc => agent_token(&mut client, ctx, services).await.map(Some),
    };
    let audit = SessionAudit::start(
        services.audit.clone(),
        ctx,
        "postgres",
        IdentityRecord {
            user: agent_user.clone(),
            subject: subject.as_ref().ok().cloned().flatten(),
        },
        match resource.credentials {
            Credentials::Inject { .. } => "inject",
            Credentials::Passthrough => "passthrough",
        },
    );
    let result = match subject {
        Ok(subject) => {
            established(client, ctx, services, &params, &agent_user, subject, &audit).await
        }
        Err(e) => Err(e),
    };
    let (up, down) = result
        .as_ref()
        .map(|t| (t.to_upstream, t.to_client))
        .unwrap_or_default();
    audit.end(up, down, result.as_ref().err().map(|e| e.to_string()));
    result
}

/// The session after the agent's startup: upstream login, then the relay.
async fn established(
    mut client: BoxIo,
    ctx: &ConnCtx,
    services: &Services,
    params: &[(String, String)],
    agent_user: &str,
    subject: Option<String>,
    audit: &SessionAudit,
) -> Result<Transfer, ProxyError> {
    let resource = ctx.resource.clone();
    let (mut upstream, upstream_addr) = match connect(ctx).await {
        Ok(u) => u,
        Err(e) => {
            let msg = format!("sluice: cannot reach resource `{}`: {e}", resource.name);
            refuse(&mut client, "08001", &msg).await;
            return Err(e);
        }
    };

    let mut preview_login = None;
    let login = match &resource.credentials {
        Credentials::Inject {
            user,
            password,
            database,
            ..
        } => {
            let user = user.clone().unwrap_or_else(|| agent_user.to_string());
            let mut up_params: Vec<(String, String)> = params
                .iter()
                .filter(|(k, _)| k != "user" && k != "database")
                .cloned()
                .collect();
            up_params.push(("user".into(), user.clone()));
            up_params = pinned::upstream_params(&up_params, false);
            let db = database
                .clone()
                .or_else(|| {
                    params
                        .iter()
                        .find(|(k, _)| k == "database")
                        .map(|(_, v)| v.clone())
                })
                .unwrap_or_else(|| user.clone());
            up_params.push(("database".into(), db));
            preview_login = Some(PreviewLogin {
                params: up_params.clone(),
                user: user.clone(),
                password: password.clone(),
            });
            auth::login(&mut upstream, &up_params, &user, password.as_ref()).await
        }
        Credentials::Passthrough => {
            let up_params = pinned::upstream_params(params, false);
            auth::relay_login(
                &mut client,
                &mut upstream,
                &up_params,
                resource.limits.client,
            )
            .await
        }
    };
    let start = match login {
        Ok(s) => s,
        Err(e) => {
            // The upstream's words are safe to show (they never contain the secret), and say
            // which side to fix.
            if let ProxyError::UpstreamRefused { code, message } = &e
                && matches!(resource.credentials, Credentials::Inject { .. })
            {
                let msg = format!(
                    "sluice: the database refused the gateway's login for resource `{}`: {message}",
                    resource.name
                );
                refuse(&mut client, code, &msg).await;
            }
            return Err(e);
        }
    };

    // The login's own reports must show the pinned values (a role or database default cannot
    // override startup parameters, but a server that does not honour them is refused here).
    if let Some(why) = start
        .messages
        .iter()
        .filter(|m| m.tag == b'S')
        .filter_map(|m| pinned::parameter_status(m.body()))
        .find_map(|(name, value)| pinned::reported_violation(name, value, false))
    {
        refuse(&mut client, SQLSTATE_REFUSED, &why).await;
        return Err(ProxyError::UpstreamRefused {
            code: SQLSTATE_REFUSED.into(),
            message: why,
        });
    }
    let identity = SessionIdentity {
        subject,
        login: preview_login,
        cancel: Arc::new(tokio::sync::Notify::new()),
        audit_session: audit.id.clone(),
    };
    // The agent gets a key minted by sluice; the upstream's stays here.
    let key = services.cancel.register(CancelTarget {
        upstream: upstream_addr,
        pid: start.backend_pid,
        secret: start.backend_secret,
        held: identity.cancel.clone(),
    });
    let result = async {
        let mut hello = BytesMut::new();
        if matches!(resource.credentials, Credentials::Inject { .. }) {
            hello.extend_from_slice(&codec::authentication_ok().raw);
        }
        for m in &start.messages {
            hello.extend_from_slice(&m.raw);
        }
        hello.extend_from_slice(&codec::backend_key_data(key.0, key.1).raw);
        hello.extend_from_slice(&codec::ready_for_query(start.tx_status).raw);
        client.write_all(&hello).await?;
        info!(event = "session_start", conn_id = ctx.id, resource = %resource.name, agent_user = %agent_user,
              credentials = if matches!(resource.credentials, Credentials::Inject { .. }) { "inject" } else { "passthrough" },
              "postgres session established");
        relay(client, upstream, ctx, services, &identity, audit).await
    }
    .await;
    services.cancel.unregister(key);
    result
}

/// Asks the agent for its OIDC token (as a cleartext password: the link is local) and verifies
/// it offline; the token's subject is the requester of approvals.
async fn agent_token(
    client: &mut BoxIo,
    ctx: &ConnCtx,
    services: &Services,
) -> Result<String, ProxyError> {
    client
        .write_all(&Message::new(b'R', &3i32.to_be_bytes()).raw)
        .await?;
    client.flush().await?;
    let msg = codec::read_message(client, MAX_TOKEN_MESSAGE, "client")
        .await
        .map_err(ProxyError::ClientProtocol)?
        .ok_or_else(|| ProxyError::ClientRefused("the agent left during authentication".into()))?;
    let token = (msg.tag == b'p')
        .then(|| codec::query_text(msg.body()).ok())
        .flatten()
        .unwrap_or_default();
    let verified = match &services.agent_tokens {
        Some(v) => v.verify(token).await.map_err(|e| e.to_string()),
        None => Err("no OIDC issuer is configured".into()),
    };
    match verified {
        Ok(id) => {
            info!(event = "agent_authenticated", conn_id = ctx.id, subject = %id.subject, "agent token verified");
            Ok(id.subject)
        }
        Err(e) => {
            let msg = format!("sluice: the agent's token was refused: {e}");
            warn!(event = "agent_auth_refused", conn_id = ctx.id, error = %e, "agent token refused");
            refuse(client, "28P01", &msg).await;
            Err(ProxyError::ClientRefused(msg))
        }
    }
}

/// A token is a few KiB at most.
const MAX_TOKEN_MESSAGE: usize = 64 * 1024;

async fn read_startup_or_refuse<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
) -> Result<Option<(i32, BytesMut)>, ProxyError> {
    match codec::read_startup(io).await {
        Ok(p) => Ok(p),
        Err(e) => {
            refuse(
                io,
                SQLSTATE_PROTOCOL,
                &format!("sluice: invalid startup packet: {e}"),
            )
            .await;
            Err(ProxyError::ClientProtocol(e))
        }
    }
}

/// Connects upstream, with verified TLS when the resource asks for it.
pub(super) async fn connect(ctx: &ConnCtx) -> Result<(BoxIo, String), ProxyError> {
    let mut tcp = super::super::tcp::connect_upstream(ctx).await?;
    let addr = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let Some(tls) = &ctx.resource.tls.upstream else {
        return Ok((Box::new(tcp), addr));
    };
    let mut req = BytesMut::new();
    postgres_protocol::message::frontend::ssl_request(&mut req);
    tcp.write_all(&req).await?;
    let mut answer = [0u8; 1];
    tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut answer).await?;
    if answer[0] != b'S' {
        return Err(ProxyError::UpstreamRefused {
            code: "08001".into(),
            message: "the database does not offer TLS, and the resource requires it".into(),
        });
    }
    let host = match &tls.server_name {
        Some(n) => n.clone(),
        None => {
            let target = ctx
                .resource
                .upstream
                .clone()
                .unwrap_or_else(|| ctx.orig_dst.to_string());
            let host = target.rsplit_once(':').map(|(h, _)| h).unwrap_or(&target);
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        }
    };
    let name = rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| {
        ProxyError::UpstreamRefused {
            code: "08001".into(),
            message: format!("bad TLS server name `{host}`: {e}"),
        }
    })?;
    let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| ProxyError::UpstreamRefused {
            code: "08001".into(),
            message: format!("TLS verification of the database failed: {e}"),
        })?;
    Ok((Box::new(stream), addr))
}

/// Sends an ErrorResponse during startup (no ReadyForQuery: the connection ends).
async fn refuse<S: AsyncWrite + Unpin>(client: &mut S, code: &str, message: &str) {
    let _ = client
        .write_all(&codec::error_response(code, message, None, None).raw)
        .await;
    let _ = client.flush().await;
}

async fn forward_cancel(body: &[u8], ctx: &ConnCtx, services: &Services) {
    if body.len() < 8 {
        warn!(
            event = "cancel_malformed",
            conn_id = ctx.id,
            "malformed CancelRequest"
        );
        return;
    }
    let key = (
        i32::from_be_bytes([body[0], body[1], body[2], body[3]]),
        i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
    );
    let Some(target) = services.cancel.lookup(key) else {
        // As PostgreSQL does: no answer either way, so keys cannot be probed.
        warn!(
            event = "cancel_unknown",
            conn_id = ctx.id,
            "CancelRequest for an unknown session"
        );
        return;
    };
    // A statement held for approval is cancelled here (the database is idle meanwhile).
    target.held.notify_waiters();
    let mut buf = BytesMut::new();
    postgres_protocol::message::frontend::cancel_request(target.pid, target.secret, &mut buf);
    match TcpStream::connect(&target.upstream).await {
        Ok(mut s) => {
            let _ = s.write_all(&buf).await;
            info!(event = "cancel_forwarded", conn_id = ctx.id, upstream = %target.upstream, "cancel forwarded");
        }
        Err(e) => {
            warn!(event = "cancel_failed", conn_id = ctx.id, error = %e, "cannot reach upstream to cancel")
        }
    }
}

/// The refusal answered to the agent for a statement the policy denies (held statements are
/// answered by [`hold::hold`]).
fn denial(rule: &str, reason: &str) -> Message {
    codec::error_response(
        SQLSTATE_REFUSED,
        &format!("sluice: statement blocked by rule \"{rule}\""),
        Some(reason),
        Some(
            "The gateway's policy does not allow this statement; nothing was sent to the database.",
        ),
    )
}

/// Decides on a statement and records it; the statement may be forwarded only once this
/// returned (its record is durable). If it cannot be recorded it is refused. Returns the
/// verdict and the statement's number in the audit session (0 with auditing disabled).
async fn decide_recorded(
    sql: &str,
    ctx: &ConnCtx,
    services: &Services,
    audit: &SessionAudit,
    protocol: &'static str,
) -> (Verdict, u64) {
    let started = Instant::now();
    let analysis = services.analyzer.analyze(sql);
    let decision = decide_sql(
        &services.policy(),
        &Subject {
            target: &ctx.target,
            resource: &ctx.resource.name,
        },
        &analysis,
    );
    command::report(
        ctx,
        services,
        protocol,
        sql,
        &decision,
        started.elapsed().as_micros() as u64,
    );
    command::record(ctx, services, audit, protocol, sql, &decision).await
}

async fn relay(
    client: BoxIo,
    upstream: BoxIo,
    ctx: &ConnCtx,
    services: &Services,
    identity: &SessionIdentity,
    audit: &SessionAudit,
) -> Result<Transfer, ProxyError> {
    let (cr, cw) = tokio::io::split(client);
    let (ur, uw) = tokio::io::split(upstream);
    let shared = Arc::new(Mutex::new(Shared::default()));
    let limits = ctx.resource.limits;
    let mut cw = BufWriter::new(cw);
    let (mut up_bytes, mut down_bytes) = (0u64, 0u64);
    let result = {
        let to_upstream = agent_to_upstream(
            BufReader::new(cr),
            BufWriter::new(uw),
            ctx,
            services,
            identity,
            audit,
            &shared,
            limits.client,
            &mut up_bytes,
        );
        let to_client = upstream_to_agent(
            BufReader::new(ur),
            &mut cw,
            ctx,
            services,
            audit,
            &shared,
            limits.upstream,
            &mut down_bytes,
        );
        // Either side ending ends the session; the other direction is dropped with it.
        tokio::select! {
            r = to_upstream => r,
            r = to_client => r,
        }
    };
    if let Err(ProxyError::ClientProtocol(e)) = &result {
        let text = format!("sluice: malformed or oversized message from the client: {e}");
        let _ = cw
            .write_all(&codec::error_response(SQLSTATE_PROTOCOL, &text, None, None).raw)
            .await;
        let _ = cw.flush().await;
    }
    result.map(|()| Transfer {
        to_upstream: up_bytes,
        to_client: down_bytes,
    })
}

fn push(shared: &Mutex<Shared>, expect: Expect, commands: Vec<u64>) {
    shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .expect
        .push_back(Pending {
            expect,
            commands,
            sent: Instant::now(),
        });
}

/// Bounds the prepared statements a session may have held at once.
const MAX_HELD_STATEMENTS: usize = 10_000;

#[allow(clippy::too_many_arguments)]
async fn agent_to_upstream<R, W>(
    mut cr: BufReader<R>,
    mut uw: BufWriter<W>,
    ctx: &ConnCtx,
    services: &Services,
    identity: &SessionIdentity,
    audit: &SessionAudit,
    shared: &Mutex<Shared>,
    max: usize,
    sent: &mut u64,
) -> Result<(), ProxyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Audited statements since the last Sync: the result recorded at its ReadyForQuery
    // answers them.
    let mut batch_commands: Vec<u64> = Vec::new();
    // Prepared statements' texts: executing one again is a command of its own, recorded with
    // its text (its first execution is covered by the record of its Parse).
    let mut prepared: HashMap<String, Prepared> = HashMap::new();
    // Set after a refused Parse: the refusal to deliver at the next Sync.
    let mut skipping: Option<Message> = None;
    // Prepared statements (by name) and portals the policy holds; a batch using one is held.
    let mut held_statements: HashMap<String, Arc<HeldStatement>> = HashMap::new();
    let mut held_portals: HashMap<String, Arc<HeldStatement>> = HashMap::new();
    let mut batch: Option<HeldBatch> = None;
    loop {
        let msg = match codec::read_message(&mut cr, max, "client").await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                warn!(event = "protocol_error", conn_id = ctx.id, side = "client", error = %e, "closing");
                // The upstream session ends cleanly; the agent gets its ErrorResponse from relay().
                let _ = uw.write_all(&Message::new(b'X', b"").raw).await;
                let _ = uw.flush().await;
                return Err(ProxyError::ClientProtocol(e));
            }
        };
        if batch.is_some() && matches!(msg.tag, b'Q' | b'F') {
            // Mixing protocols inside a held batch has no exact answer; nothing of it was sent.
            let _ = uw.write_all(&Message::new(b'X', b"").raw).await;
            let _ = uw.flush().await;
            return Err(ProxyError::ClientProtocol(CodecError::Malformed(
                "simple query inside an extended-protocol batch held for approval",
            )));
        }
        let forward: Option<Message> = match msg.tag {
            b'Q' => {
                let sql = codec::query_text(msg.body()).map_err(ProxyError::ClientProtocol)?;
                let (verdict, n) = decide_recorded(sql, ctx, services, audit, "simple").await;
                let commands = if n > 0 { vec![n] } else { Vec::new() };
                let verdict = match verdict {
                    Verdict::Hold { rule, reason } => {
                        // Earlier pipelined statements go out before this one waits.
                        uw.flush().await?;
                        let spec = HoldSpec {
                            rule,
                            reason,
                            command: sql.to_string(),
                            parameters: Vec::new(),
                            payload: &msg.raw,
                            preview: PreviewInput::Simple(sql),
                        };
                        hold::hold(&mut cr, spec, ctx, services, identity).await
                    }
                    Verdict::Allow => Ok(()),
                    Verdict::Deny { rule, reason } => Err(denial(&rule, &reason)),
                };
                match verdict {
                    Ok(()) => {
                        push(shared, Expect::Pass, commands);
                        Some(msg)
                    }
                    Err(err) => {
                        push(shared, Expect::ReplaceEmpty(err), commands);
                        Some(codec::empty_query())
                    }
                }
            }
            b'P' if skipping.is_none() => {
                let (name, sql) =
                    codec::parse_message(msg.body()).map_err(ProxyError::ClientProtocol)?;
                let (verdict, n) = decide_recorded(sql, ctx, services, audit, "extended").await;
                if n > 0 {
                    batch_commands.push(n);
                }
                if matches!(verdict, Verdict::Deny { .. }) {
                    prepared.remove(name);
                } else if prepared.len() < MAX_HELD_STATEMENTS || prepared.contains_key(name) {
                    prepared.insert(
                        name.to_string(),
                        Prepared {
                            sql: sql.into(),
                            parsed_as: n,
                            executed: false,
                        },
                    );
                }
                match verdict {
                    Verdict::Allow => {
                        held_statements.remove(name);
                        Some(msg)
                    }
                    // Preparing runs nothing: the statement is held when a batch executes it.
                    Verdict::Hold { rule, reason } => {
                        if held_statements.len() >= MAX_HELD_STATEMENTS {
                            skipping = Some(codec::error_response(
                                SQLSTATE_REFUSED,
                                "sluice: too many prepared statements awaiting approval in this session",
                                None,
                                Some("Close prepared statements you no longer need."),
                            ));
                            batch = None;
                            None
                        } else {
                            let param_types = codec::parse_param_types(msg.body())
                                .map_err(ProxyError::ClientProtocol)?;
                            let held = Arc::new(HeldStatement {
                                sql: sql.to_string(),
                                rule,
                                reason,
                                param_types,
                            });
                            if let Some(b) = &mut batch {
                                b.add_statement(held.clone());
                            }
                            held_statements.insert(name.to_string(), held);
                            Some(msg)
                        }
                    }
                    Verdict::Deny { rule, reason } => {
                        skipping = Some(denial(&rule, &reason));
                        // A held batch in progress is refused with it.
                        batch = None;
                        None
                    }
                }
            }
            b'B' if skipping.is_none() => {
                let bind = codec::bind_message(msg.body()).map_err(ProxyError::ClientProtocol)?;
                if let Some(refusal) = record_execution(
                    &mut prepared,
                    bind.statement,
                    held_statements.contains_key(bind.statement),
                    ctx,
                    services,
                    audit,
                    &mut batch_commands,
                )
                .await
                {
                    skipping = Some(refusal);
                    batch = None;
                    continue;
                }
                match held_statements.get(bind.statement) {
                    Some(h) => {
                        held_portals.insert(bind.portal.to_string(), h.clone());
                        let b = batch.get_or_insert_with(|| HeldBatch::new(h.clone()));
                        b.add_statement(h.clone());
                        b.add_bind(&bind);
                    }
                    None => {
                        held_portals.remove(bind.portal);
                    }
                }
                Some(msg)
            }
            b'E' if skipping.is_none() && batch.is_none() => {
                let portal =
                    codec::execute_portal(msg.body()).map_err(ProxyError::ClientProtocol)?;
                if let Some(h) = held_portals.get(portal) {
                    batch = Some(HeldBatch::new(h.clone()));
                }
                Some(msg)
            }
            b'C' if skipping.is_none() => {
                let (kind, name) =
                    codec::close_target(msg.body()).map_err(ProxyError::ClientProtocol)?;
                match kind {
                    b'S' => {
                        prepared.remove(name);
                        held_statements.remove(name)
                    }
                    _ => held_portals.remove(name),
                };
                Some(msg)
            }
            b'S' | b'H' if batch.is_some() => {
                let mut b = batch.take().expect("checked");
                b.bytes.extend_from_slice(&msg.raw);
                uw.flush().await?;
                let outcome = hold_batch(&mut cr, &b, ctx, services, identity).await;
                let is_sync = msg.tag == b'S';
                match outcome {
                    Ok(()) => {
                        if is_sync {
                            push(shared, Expect::Pass, std::mem::take(&mut batch_commands));
                        }
                        *sent += b.bytes.len() as u64;
                        uw.write_all(&b.bytes).await?;
                        None
                    }
                    Err(err) if is_sync => {
                        push(
                            shared,
                            Expect::InjectBeforeReady(err),
                            std::mem::take(&mut batch_commands),
                        );
                        Some(msg)
                    }
                    // Refused at a Flush: the rest up to Sync is dropped, the error comes there.
                    Err(err) => {
                        skipping = Some(err);
                        None
                    }
                }
            }
            b'S' => {
                let commands = std::mem::take(&mut batch_commands);
                match skipping.take() {
                    Some(err) => push(shared, Expect::InjectBeforeReady(err), commands),
                    None => push(shared, Expect::Pass, commands),
                }
                Some(msg)
            }
            // The fast-path function call names a function by OID, which statement checks cannot
            // see: refuse it like a refused query (it is answered with ReadyForQuery too).
            b'F' => {
                let err = codec::error_response(
                    SQLSTATE_REFUSED,
                    "sluice: the fast-path function call protocol is not allowed",
                    None,
                    Some("Call the function from a SQL statement instead."),
                );
                push(shared, Expect::ReplaceEmpty(err), Vec::new());
                Some(codec::empty_query())
            }
            b'X' => {
                uw.write_all(&msg.raw).await?;
                uw.flush().await?;
                break;
            }
            // After a refused Parse, the rest of the batch is discarded like PostgreSQL would.
            _ if skipping.is_some() => None,
            _ => Some(msg),
        };
        if let Some(m) = forward {
            match &mut batch {
                // Held: kept (bounded) until the batch's Sync decides.
                Some(b) => {
                    if b.bytes.len() + m.raw.len() > max {
                        return Err(ProxyError::ClientProtocol(CodecError::TooLarge {
                            side: "client",
                            len: b.bytes.len() + m.raw.len(),
                            max,
                        }));
                    }
                    b.bytes.extend_from_slice(&m.raw);
                }
                None => {
                    *sent += m.raw.len() as u64;
                    uw.write_all(&m.raw).await?;
                }
            }
        }
        // Flush when the agent has nothing more buffered: batches stay batched.
        if cr.buffer().is_empty() {
            uw.flush().await?;
        }
    }
    Ok(())
}

/// A statement the agent prepared, as the audit log knows it.
struct Prepared {
    sql: Arc<str>,
    /// The audit number of its Parse (0: not recorded).
    parsed_as: u64,
    executed: bool,
}

/// Records a prepared statement executed again (`Bind` of a statement whose first execution
/// was already covered by its Parse's record), durably, before the Bind is forwarded. Returns
/// the refusal when it cannot be recorded.
async fn record_execution(
    prepared: &mut HashMap<String, Prepared>,
    statement: &str,
    held: bool,
    ctx: &ConnCtx,
    services: &Services,
    audit: &SessionAudit,
    batch_commands: &mut Vec<u64>,
) -> Option<Message> {
    let p = prepared.get_mut(statement)?;
    if !std::mem::replace(&mut p.executed, true) {
        // The first execution answers the Parse's record (also when it comes in a later batch).
        if p.parsed_as > 0 && !batch_commands.contains(&p.parsed_as) {
            batch_commands.push(p.parsed_as);
        }
        return None;
    }
    let sql = p.sql.clone();
    let recorded = audit
        .command(
            "execute",
            &sql,
            || command::masked_text(services, &sql),
            Decided {
                action: if held { "hold" } else { "allow" },
                rule: "",
                reason: "prepared statement executed again",
            },
        )
        .await;
    match recorded {
        Ok(n) => {
            if n > 0 {
                batch_commands.push(n);
            }
            None
        }
        Err(e) => {
            tracing::error!(event = "audit_refused", conn_id = ctx.id, error = %e,
                            "execution refused: it could not be recorded");
            Some(denial("audit", &e.to_string()))
        }
    }
}

/// The statement text as the audit log may keep it.
/// Holds an extended-protocol batch: the command reviewers see is its held statements' text
/// with the first execution's parameters; the payload is every byte of the batch.
async fn hold_batch<R: AsyncRead + Unpin>(
    cr: &mut BufReader<R>,
    b: &HeldBatch,
    ctx: &ConnCtx,
    services: &Services,
    identity: &SessionIdentity,
) -> Result<(), Message> {
    let first = &b.statements[0];
    let command = b
        .statements
        .iter()
        .map(|s| s.sql.as_str())
        .collect::<Vec<_>>()
        .join(";\n");
    let mut reason = first.reason.clone();
    if b.executions > 1 {
        reason.push_str(&format!(
            " ({} executions in one batch; parameters of the first shown)",
            b.executions
        ));
    }
    let spec = HoldSpec {
        rule: first.rule.clone(),
        reason,
        command,
        parameters: b.shown.clone(),
        payload: &b.bytes,
        preview: PreviewInput::Extended {
            sql: &first.sql,
            param_types: &first.param_types,
            bind: b.first_bind.as_ref(),
        },
    };
    hold::hold(cr, spec, ctx, services, identity).await
}

#[allow(clippy::too_many_arguments)]
async fn upstream_to_agent<R, W>(
    mut ur: BufReader<R>,
    cw: &mut BufWriter<W>,
    ctx: &ConnCtx,
    services: &Services,
    audit: &SessionAudit,
    shared: &Mutex<Shared>,
    max: usize,
    sent: &mut u64,
) -> Result<(), ProxyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut capture = services
        .audit
        .enabled()
        .then(|| Capture::new(audit.capture()));
    let mut engine = services.masker();
    let mut columns = ResultColumns::new(&[], &engine);
    let mut copy_out = false;
    loop {
        let msg = match codec::read_message(&mut ur, max, "upstream").await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                warn!(event = "protocol_error", conn_id = ctx.id, side = "upstream", error = %e, "closing");
                let text = format!("sluice: the database sent a message sluice cannot relay: {e}");
                let _ = cw
                    .write_all(&codec::error_response(SQLSTATE_PROTOCOL, &text, None, None).raw)
                    .await;
                let _ = cw.flush().await;
                return Err(ProxyError::UpstreamProtocol(e));
            }
        };
        let out: Message = match msg.tag {
            b'T' => {
                // A new result set: the policy's masking settings in force now apply to it.
                engine = services.masker();
                let desc =
                    codec::row_description(msg.body()).map_err(ProxyError::UpstreamProtocol)?;
                columns = ResultColumns::new(&desc, &engine);
                msg
            }
            b'D' => masked(mask_row(msg, &columns, &engine), ctx, cw).await?,
            b'H' => {
                copy_out = true;
                engine = services.masker();
                msg
            }
            b'd' if copy_out => masked(mask_copy_data(msg, &engine), ctx, cw).await?,
            b'c' => {
                copy_out = false;
                msg
            }
            b'E' | b'N' => masked(mask_notice(msg, &engine), ctx, cw).await?,
            // A pinned setting changed under sluice (a function it could not see into): what it
            // decided next would no longer be what the server runs. Fail closed.
            b'S' => match pinned::parameter_status(msg.body())
                .and_then(|(n, v)| pinned::reported_violation(n, v, false))
            {
                Some(why) => {
                    warn!(event = "pinned_setting_changed", conn_id = ctx.id, reason = %why, "closing");
                    let _ = cw
                        .write_all(&codec::error_response(SQLSTATE_REFUSED, &why, None, None).raw)
                        .await;
                    let _ = cw.flush().await;
                    return Err(ProxyError::UpstreamProtocol(CodecError::Malformed(
                        "a pinned setting changed",
                    )));
                }
                None => msg,
            },
            b'I' => {
                let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                match s.expect.front_mut() {
                    Some(Pending {
                        expect: expect @ Expect::ReplaceEmpty(_),
                        ..
                    }) => {
                        // Keep the entry for its ReadyForQuery, now as a plain pass.
                        match std::mem::replace(expect, Expect::Pass) {
                            Expect::ReplaceEmpty(err) => err,
                            _ => unreachable!("matched above"),
                        }
                    }
                    _ => msg,
                }
            }
            b'Z' => {
                let pending = shared
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .expect
                    .pop_front();
                if let Some(Pending {
                    expect: Expect::InjectBeforeReady(err),
                    ..
                }) = &pending
                {
                    *sent += err.raw.len() as u64;
                    cw.write_all(&err.raw).await?;
                    if let Some(c) = &mut capture {
                        c.observe(err);
                    }
                }
                if let Some(c) = &mut capture {
                    let sets = c.take();
                    if let Some(p) = pending
                        && (!p.commands.is_empty() || !sets.is_empty())
                    {
                        audit.result(&ResultRecord {
                            commands: p.commands,
                            elapsed_us: p.sent.elapsed().as_micros() as u64,
                            sets,
                        });
                    }
                }
                msg
            }
            _ => msg,
        };
        if let Some(c) = &mut capture
            && out.tag != b'Z'
        {
            c.observe(&out);
        }
        *sent += out.raw.len() as u64;
        cw.write_all(&out.raw).await?;
        if ur.buffer().is_empty() {
            cw.flush().await?;
        }
    }
    Ok(())
}

/// Text types whose binary wire format is their text: their cells are masked whichever format
/// the client asked for (a binary-format request must not be a way around masking).
const TEXT_LIKE_OIDS: &[u32] = &[
    25,   /* text */
    1043, /* varchar */
    1042, /* bpchar */
    19,   /* name */
    114,  /* json */
    142,  /* xml */
];

/// A result set's columns with their masking plans.
struct ResultColumns {
    plans: Vec<(ColumnPlan, bool)>,
    /// Some column needs work even when the row prefilter finds nothing (column rules).
    any_column_work: bool,
}

impl ResultColumns {
    fn new(columns: &[codec::Column], engine: &MaskingEngine) -> Self {
        let plans: Vec<(ColumnPlan, bool)> = columns
            .iter()
            .map(|c| {
                let maskable = c.format == 0 || TEXT_LIKE_OIDS.contains(&c.type_oid);
                (
                    engine.plan_column(&ColumnContext { name: &c.name }),
                    maskable,
                )
            })
            .collect();
        let any_column_work = plans.iter().any(|(p, m)| *m && p.needs_cell_work());
        ResultColumns {
            plans,
            any_column_work,
        }
    }
}

/// Masks the cells of a DataRow; the row is forwarded as received when nothing matched.
fn mask_row(
    msg: Message,
    cols: &ResultColumns,
    engine: &MaskingEngine,
) -> Result<Message, MaskFailure> {
    if !cols.any_column_work && !engine.could_contain(msg.body())? {
        return Ok(msg);
    }
    let fields = codec::data_row_fields(msg.body())?;
    let body = msg.body();
    let mut changed = false;
    let mut report = Report::default();
    let mut values: Vec<Option<std::borrow::Cow<[u8]>>> = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        let Some(range) = f else {
            values.push(None);
            continue;
        };
        let value = &body[range.clone()];
        // A row wider than its description (should not happen) is still content-checked.
        let (plan, maskable) = cols
            .plans
            .get(i)
            .copied()
            .unwrap_or_else(|| (engine.plan_column(&ColumnContext { name: "" }), true));
        let masked = if maskable {
            engine.mask_cell_planned(&plan, value, &mut report)?
        } else {
            None
        };
        match masked {
            Some(m) => {
                changed = true;
                values.push(Some(m.into()));
            }
            None => values.push(Some(value.into())),
        }
    }
    if !changed {
        return Ok(msg);
    }
    let refs: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
    Ok(codec::build_data_row(&refs))
}

/// The masked message, or (fail closed) an error to the agent and the end of the session.
async fn masked<W: AsyncWrite + Unpin>(
    result: Result<Message, MaskFailure>,
    ctx: &ConnCtx,
    cw: &mut BufWriter<W>,
) -> Result<Message, ProxyError> {
    match result {
        Ok(m) => Ok(m),
        Err(e) => {
            tracing::error!(event = "masking_failed", conn_id = ctx.id, error = %e, "response withheld; closing");
            let text =
                "sluice: the response could not be checked for sensitive data and was withheld";
            let _ = cw
                .write_all(&codec::error_response("XX000", text, None, None).raw)
                .await;
            let _ = cw.flush().await;
            Err(ProxyError::ClientRefused(format!("masking failed: {e}")))
        }
    }
}

/// Masks a COPY data row (text format: one line per message).
fn mask_copy_data(msg: Message, engine: &MaskingEngine) -> Result<Message, MaskFailure> {
    match engine.mask(msg.body())? {
        None => Ok(msg),
        Some(masked) => Ok(Message::new(msg.tag, &masked)),
    }
}

/// Masks the human-readable fields of an ErrorResponse/NoticeResponse: a unique-violation
/// DETAIL quotes the offending value (`Key (email)=(ada@example.com) already exists`).
fn mask_notice(msg: Message, engine: &MaskingEngine) -> Result<Message, MaskFailure> {
    if !engine.could_contain(msg.body())? {
        return Ok(msg);
    }
    let mut fields = codec::notice_fields(msg.body());
    let mut changed = false;
    for (t, v) in fields.iter_mut() {
        if matches!(*t, b'M' | b'D' | b'H' | b'W' | b'q')
            && let Some(m) = engine.mask(v.as_bytes())?
        {
            *v = String::from_utf8_lossy(&m).into_owned();
            changed = true;
        }
    }
    Ok(if changed {
        codec::build_notice(msg.tag, &fields)
    } else {
        msg
    })
}

/// Masking could not be done; the response is withheld and the session ends (fail closed).
#[derive(Debug, thiserror::Error)]
enum MaskFailure {
    #[error("{0}")]
    Codec(#[from] CodecError),
    #[error("{0}")]
    Mask(#[from] crate::inspect::masking::MaskError),
}
