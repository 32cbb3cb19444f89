//! One agent connection to a PostgreSQL resource: startup and login, then the relay. The agent
//! → database direction (deciding statements) is [`super::frontend`]; this file keeps the
//! database → agent direction (masking, the answers the frontend expects, see
//! [`super::pipeline`]).

use std::sync::{Arc, Mutex};

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
    frontend::Frontend,
    hold::{PreviewLogin, SessionIdentity},
    masking_plan::PlanTracker,
    pinned,
    pipeline::{self, Expect, Pending, Shared},
    response::{self, Handled, MaskFailure, ResponseMasker},
};
use crate::{
    config::{AgentAuth, Credentials},
    conn::ConnCtx,
    gate::{self, Gate},
    proto::{ProxyError, tcp::Transfer},
    services::{
        Services,
        audit::{record::ResultRecord, session::SessionAudit},
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

pub use super::codec::SQLSTATE_REFUSED;
const SQLSTATE_PROTOCOL: &str = "08P01";

pub use super::upstream::Io;
use super::upstream::{BoxIo, connect};

/// Serves one agent connection to its end. `tcp` is the agent's stream (the server's accepted
/// `TcpStream`, with `TCP_NODELAY` set by the caller; a `tokio::io::duplex` end in tests).
pub async fn serve<S: Io + 'static>(
    mut tcp: S,
    ctx: &ConnCtx,
    services: &Arc<Services>,
    pg: &super::State,
) -> Result<Transfer, ProxyError> {
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
                    return Err(ProxyError::client_protocol(e));
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
        AgentAuth::Oidc => agent_token(&mut client, ctx, services).await,
    };
    let gate = Gate::open(
        ctx,
        services,
        "postgres",
        &agent_user,
        subject.as_ref().ok().cloned().flatten(),
    );
    let result = match subject {
        Ok(_) => established(client, &gate, pg, &params, &agent_user).await,
        Err(e) => Err(e),
    };
    let (up, down) = result
        .as_ref()
        .map(|t| (t.to_upstream, t.to_client))
        .unwrap_or_default();
    gate.close(up, down, result.as_ref().err().map(|e| e.to_string()));
    result
}

/// The session after the agent's startup: upstream login, then the relay.
async fn established(
    mut client: BoxIo,
    gate: &Gate,
    pg: &super::State,
    params: &[(String, String)],
    agent_user: &str,
) -> Result<Transfer, ProxyError> {
    let (ctx, services) = (&gate.ctx, &*gate.services);
    let resource = ctx.resource.clone();
    // Bounded per resource before a connection is opened; refused as PostgreSQL refuses.
    let Some(_slot) = pg
        .sessions
        .try_acquire(&resource.name, resource.postgres().max_sessions)
    else {
        let msg = format!(
            "sluice: resource `{}` has its {} sessions already (postgres.max_sessions)",
            resource.name,
            resource.postgres().max_sessions
        );
        warn!(event = "session_cap", conn_id = ctx.id, resource = %resource.name, "session refused");
        refuse(&mut client, "53300", &msg).await;
        return Err(ProxyError::ClientRefused(msg));
    };
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
            up_params = pinned::upstream_params(&up_params, resource.postgres());
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
            let up_params = pinned::upstream_params(params, resource.postgres());
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
        Ok(s) => {
            ctx.handshake.done();
            s
        }
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

    let read_only = resource.postgres().read_only == super::settings::ReadOnly::Transaction;
    // The login's own reports must show the pinned values (a role or database default cannot
    // override startup parameters, but a server that does not honour them is refused here).
    if let Some(why) = start
        .messages
        .iter()
        .filter(|m| m.tag == b'S')
        .filter_map(|m| pinned::parameter_status(m.body()))
        .find_map(|(name, value)| pinned::reported_violation(name, value, read_only))
    {
        refuse(&mut client, SQLSTATE_REFUSED, &why).await;
        return Err(ProxyError::UpstreamRefused {
            code: SQLSTATE_REFUSED.into(),
            message: why,
        });
    }
    let identity = SessionIdentity {
        login: preview_login,
        cancel: Arc::new(tokio::sync::Notify::new()),
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
        relay(client, upstream, gate, pg, &identity).await
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
) -> Result<Option<String>, ProxyError> {
    client
        .write_all(&Message::new(b'R', &3i32.to_be_bytes()).raw)
        .await?;
    client.flush().await?;
    let msg = codec::read_message(client, MAX_TOKEN_MESSAGE, "client")
        .await
        .map_err(ProxyError::client_protocol)?
        .ok_or_else(|| ProxyError::ClientRefused("the agent left during authentication".into()))?;
    let token = (msg.tag == b'p')
        .then(|| codec::query_text(msg.body()).ok())
        .flatten()
        .unwrap_or_default();
    match gate::verify_agent(ctx, services, Some(token)).await {
        Ok(subject) => Ok(subject),
        Err(e) => {
            let msg = format!("sluice: the agent's token was refused: {e}");
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
            Err(ProxyError::client_protocol(e))
        }
    }
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

async fn relay(
    client: BoxIo,
    upstream: BoxIo,
    gate: &Gate,
    pg: &super::State,
    identity: &SessionIdentity,
) -> Result<Transfer, ProxyError> {
    let (ctx, services, audit) = (&gate.ctx, &*gate.services, &gate.audit);
    let (cr, cw) = tokio::io::split(client);
    let (ur, uw) = tokio::io::split(upstream);
    let shared = Arc::new(Mutex::new(Shared::new()));
    // Which statement and portal each result belongs to (response masking plans by it).
    let catalog = response::catalog_for(ctx, pg, identity.login.as_ref());
    let prepared = shared.clone();
    let plans =
        PlanTracker::with_statement_hook(response::statement_hook(services, pg, catalog.clone()))
            .with_prepared(Box::new(move |name| {
                let candidates = Shared::lock(&prepared).prepared.candidates(name);
                match candidates.as_slice() {
                    [one] => Some(one.sql.clone()),
                    _ => None,
                }
            }));
    let limits = ctx.resource.limits;
    let mut cw = BufWriter::new(cw);
    let mut down_bytes = 0u64;
    let mut frontend = Frontend::new(
        gate,
        pg,
        identity,
        &shared,
        &plans,
        BufWriter::new(uw),
        limits.client,
    );
    let result = {
        let to_upstream = frontend.run(BufReader::new(cr));
        let masker = ResponseMasker::new(ctx, services, pg, &plans, catalog);
        let to_client = upstream_to_agent(
            BufReader::new(ur),
            &mut cw,
            ctx,
            services,
            audit,
            &shared,
            masker,
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
    let up_bytes = frontend.sent;
    result.map(|()| Transfer {
        to_upstream: up_bytes,
        to_client: down_bytes,
    })
}

#[allow(clippy::too_many_arguments)]
async fn upstream_to_agent<R, W>(
    mut ur: BufReader<R>,
    cw: &mut BufWriter<W>,
    ctx: &ConnCtx,
    services: &Services,
    audit: &SessionAudit,
    shared: &Mutex<Shared>,
    mut masker: ResponseMasker<'_>,
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
    let mut routing = pipeline::Routing::default();
    let read_only = ctx.resource.postgres().read_only == super::settings::ReadOnly::Transaction;
    let release = Shared::lock(shared).release.clone();
    loop {
        // sluice may deliver a kept answer it has measured without waiting for the database
        // (pipeline::release_now); otherwise the next message from it.
        let released = tokio::select! {
            biased;
            _ = release.notified() => pipeline::release_now(shared, &mut routing),
            r = tokio::io::AsyncBufReadExt::fill_buf(&mut ur) => {
                r.map_err(|e| ProxyError::upstream_protocol(CodecError::from(e)))?;
                None
            }
        };
        let (msgs, ready) = match released {
            Some(msgs) => (msgs, true),
            None => {
                let msg = match codec::read_message(&mut ur, max, "upstream").await {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => {
                        warn!(event = "protocol_error", conn_id = ctx.id, side = "upstream", error = %e, "closing");
                        let text =
                            format!("sluice: the database sent a message sluice cannot relay: {e}");
                        let _ = cw
                            .write_all(
                                &codec::error_response(SQLSTATE_PROTOCOL, &text, None, None).raw,
                            )
                            .await;
                        let _ = cw.flush().await;
                        return Err(ProxyError::upstream_protocol(e));
                    }
                };
                // Masking sees every message the server sends, in order (sluice's own queries
                // included, which it passes as they are): rows, COPY data, errors, notices,
                // settings and notifications.
                let msg = match masker.handle(msg).await {
                    Ok(Handled::Forward(m)) => m,
                    Ok(Handled::Swallow) => continue,
                    Ok(Handled::Refuse(err)) => err,
                    Err(e) => return Err(masking_failed(e, ctx, cw).await),
                };
                // What the server confirmed (prepared statements); an answer sluice did not ask for
                // means it no longer knows what a statement name runs: fail closed.
                if let Err(e) = pipeline::observe(shared, &msg) {
                    warn!(event = "protocol_desync", conn_id = ctx.id, error = %e, "closing");
                    let text = format!("sluice: {e}; the session is closed");
                    let _ = cw
                        .write_all(&codec::error_response(SQLSTATE_PROTOCOL, &text, None, None).raw)
                        .await;
                    let _ = cw.flush().await;
                    return Err(ProxyError::upstream_protocol(CodecError::Malformed(
                        "an unexpected confirmation",
                    )));
                }
                let ready = msg.tag == b'Z';
                // sluice's own queries and kept answers are not relayed as they come (pipeline.rs).
                (pipeline::route(shared, &mut routing, msg), ready)
            }
        };
        for msg in msgs {
            let out: Message = match msg.tag {
                // A pinned setting changed under sluice (a function it could not see into): what it
                // decided next would no longer be what the server runs. Fail closed.
                b'S' => match pinned::parameter_status(msg.body())
                    .and_then(|(n, v)| pinned::reported_violation(n, v, read_only))
                {
                    Some(why) => {
                        warn!(event = "pinned_setting_changed", conn_id = ctx.id, reason = %why, "closing");
                        let _ = cw
                            .write_all(
                                &codec::error_response(SQLSTATE_REFUSED, &why, None, None).raw,
                            )
                            .await;
                        let _ = cw.flush().await;
                        return Err(ProxyError::upstream_protocol(CodecError::Malformed(
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
        }
        if ready {
            pipeline::ready(shared);
        }
        if ur.buffer().is_empty() {
            cw.flush().await?;
        }
    }
    Ok(())
}

/// Masking failed: an error to the agent and the end of the session (fail closed).
async fn masking_failed<W: AsyncWrite + Unpin>(
    e: MaskFailure,
    ctx: &ConnCtx,
    cw: &mut BufWriter<W>,
) -> ProxyError {
    tracing::error!(event = "masking_failed", conn_id = ctx.id, error = %e, "response withheld; closing");
    let text = "sluice: the response could not be checked for sensitive data and was withheld";
    let _ = cw
        .write_all(&codec::error_response("XX000", text, None, None).raw)
        .await;
    let _ = cw.flush().await;
    ProxyError::ClientRefused(format!("masking failed: {e}"))
}
