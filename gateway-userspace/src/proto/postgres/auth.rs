//! Logging in upstream: with sluice's own credential (SCRAM-SHA-256, MD5, cleartext), or by
//! relaying the agent's authentication unchanged.

use bytes::BytesMut;
use postgres_protocol::{
    authentication::{md5_hash, sasl},
    message::frontend,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::codec::{self, CodecError, MAX_STARTUP, Message};
use crate::{config::Secret, proto::ProxyError};

const AUTH_OK: i32 = 0;
const AUTH_CLEARTEXT: i32 = 3;
const AUTH_MD5: i32 = 5;
const AUTH_SASL: i32 = 10;
const AUTH_SASL_CONTINUE: i32 = 11;
const AUTH_SASL_FINAL: i32 = 12;

/// What the upstream said after a successful login, up to its first ReadyForQuery.
#[derive(Debug, Default)]
pub struct SessionStart {
    /// ParameterStatus and NoticeResponse messages, in order, to replay to the agent.
    pub messages: Vec<Message>,
    pub backend_pid: i32,
    pub backend_secret: i32,
    pub tx_status: u8,
}

async fn read_upstream<R: AsyncRead + Unpin>(r: &mut R) -> Result<Message, ProxyError> {
    codec::read_message(r, MAX_STARTUP * 10, "upstream")
        .await
        .map_err(ProxyError::upstream_protocol)?
        .ok_or(ProxyError::upstream_protocol(CodecError::Malformed(
            "connection closed during login",
        )))
}

fn auth_code(m: &Message) -> Result<i32, ProxyError> {
    let b = m.body();
    if b.len() < 4 {
        return Err(ProxyError::upstream_protocol(CodecError::Malformed(
            "authentication request",
        )));
    }
    Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The upstream's ErrorResponse during login, as (SQLSTATE, message).
fn refusal(m: &Message) -> ProxyError {
    let fields = codec::notice_fields(m.body());
    ProxyError::UpstreamRefused {
        code: codec::notice_field(&fields, b'C'),
        message: codec::notice_field(&fields, b'M'),
    }
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, buf: &BytesMut) -> Result<(), ProxyError> {
    w.write_all(buf)
        .await
        .map_err(|e| ProxyError::upstream_protocol(CodecError::from(e)))?;
    w.flush()
        .await
        .map_err(|e| ProxyError::upstream_protocol(CodecError::from(e)))
}

async fn send_startup<W: AsyncWrite + Unpin>(
    w: &mut W,
    params: &[(String, String)],
) -> Result<(), ProxyError> {
    let mut buf = BytesMut::new();
    frontend::startup_message(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &mut buf,
    )
    .map_err(|e| ProxyError::upstream_protocol(CodecError::from(e)))?;
    send(w, &buf).await
}

/// The SCRAM exchange a SASL continue/final message belongs to.
fn in_progress(
    scram: &mut Option<sasl::ScramSha256>,
) -> Result<&mut sasl::ScramSha256, ProxyError> {
    scram
        .as_mut()
        .ok_or(ProxyError::upstream_protocol(CodecError::Malformed(
            "SASL message out of order",
        )))
}

/// Sends the startup message and logs in with the resource's credential.
pub async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    upstream: &mut S,
    params: &[(String, String)],
    user: &str,
    password: Option<&Secret>,
) -> Result<SessionStart, ProxyError> {
    send_startup(upstream, params).await?;
    let mut buf = BytesMut::new();
    let need_password = || {
        password.ok_or_else(|| ProxyError::UpstreamRefused {
            code: "28P01".into(),
            message: "the upstream asks for a password and the resource has none configured".into(),
        })
    };
    let mut scram: Option<sasl::ScramSha256> = None;
    loop {
        let m = read_upstream(upstream).await?;
        match m.tag {
            b'E' => return Err(refusal(&m)),
            b'R' => {}
            _ => {
                return Err(ProxyError::upstream_protocol(CodecError::Malformed(
                    "login reply",
                )));
            }
        }
        buf.clear();
        match auth_code(&m)? {
            AUTH_OK => return read_until_ready(upstream).await,
            AUTH_CLEARTEXT => {
                frontend::password_message(need_password()?.expose().as_bytes(), &mut buf)
                    .map_err(|e| ProxyError::upstream_protocol(CodecError::from(e)))?;
            }
            AUTH_MD5 => {
                let b = m.body();
                let salt: [u8; 4] = b.get(4..8).and_then(|s| s.try_into().ok()).ok_or(
                    ProxyError::upstream_protocol(CodecError::Malformed("MD5 salt")),
                )?;
                let hash = md5_hash(user.as_bytes(), need_password()?.expose().as_bytes(), salt);
                frontend::password_message(hash.as_bytes(), &mut buf)
                    .map_err(|e| ProxyError::upstream_protocol(CodecError::from(e)))?;
            }
            AUTH_SASL => {
                let mechanisms = &m.body()[4..];
                let offered = mechanisms
                    .split(|b| *b == 0)
                    .any(|mech| mech == b"SCRAM-SHA-256");
                if !offered {
                    return Err(ProxyError::UpstreamRefused {
                        code: "28000".into(),
                        message:
                            "the upstream offers no SASL mechanism sluice supports (SCRAM-SHA-256)"
                                .into(),
                    });
                }
                // No channel binding: the upstream link is plain TCP here, so SCRAM-PLUS is not offered.
                let s = sasl::ScramSha256::new(
                    need_password()?.expose().as_bytes(),
                    sasl::ChannelBinding::unsupported(),
                );
                frontend::sasl_initial_response("SCRAM-SHA-256", s.message(), &mut buf)
                    .map_err(|e| ProxyError::upstream_protocol(CodecError::from(e)))?;
                scram = Some(s);
            }
            AUTH_SASL_CONTINUE => {
                let s = in_progress(&mut scram)?;
                s.update(&m.body()[4..])
                    .map_err(|e| ProxyError::upstream_protocol(CodecError::from(e)))?;
                frontend::sasl_response(s.message(), &mut buf)
                    .map_err(|e| ProxyError::upstream_protocol(CodecError::from(e)))?;
            }
            AUTH_SASL_FINAL => {
                let s = in_progress(&mut scram)?;
                // Verifies the server's signature: an impostor upstream is refused here.
                s.finish(&m.body()[4..])
                    .map_err(|e| ProxyError::UpstreamRefused {
                        code: "28000".into(),
                        message: format!("the upstream failed SCRAM server verification: {e}"),
                    })?;
                continue;
            }
            other => {
                return Err(ProxyError::UpstreamRefused {
                    code: "28000".into(),
                    message: format!(
                        "the upstream asks for an authentication method sluice does not support ({other})"
                    ),
                });
            }
        }
        send(upstream, &buf).await?;
    }
}

/// After AuthenticationOk: parameter statuses, the backend key, then ReadyForQuery.
pub async fn read_until_ready<R: AsyncRead + Unpin>(
    upstream: &mut R,
) -> Result<SessionStart, ProxyError> {
    let mut start = SessionStart::default();
    loop {
        let m = read_upstream(upstream).await?;
        match m.tag {
            b'K' => {
                let b = m.body();
                if b.len() < 8 {
                    return Err(ProxyError::upstream_protocol(CodecError::Malformed(
                        "BackendKeyData",
                    )));
                }
                start.backend_pid = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                start.backend_secret = i32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            }
            b'Z' => {
                start.tx_status = m.body().first().copied().unwrap_or(b'I');
                return Ok(start);
            }
            b'E' => return Err(refusal(&m)),
            _ => start.messages.push(m),
        }
    }
}

/// Passthrough: relays the agent's startup and authentication exchange unchanged until the
/// upstream accepts or refuses it.
pub async fn relay_login<C, S>(
    client: &mut C,
    upstream: &mut S,
    params: &[(String, String)],
    max_client: usize,
) -> Result<SessionStart, ProxyError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    send_startup(upstream, params).await?;
    loop {
        let m = read_upstream(upstream).await?;
        if m.tag == b'E' {
            client.write_all(&m.raw).await?;
            return Err(refusal(&m));
        }
        if m.tag != b'R' {
            return Err(ProxyError::upstream_protocol(CodecError::Malformed(
                "login reply",
            )));
        }
        let code = auth_code(&m)?;
        client.write_all(&m.raw).await?;
        client.flush().await?;
        match code {
            AUTH_OK => return read_until_ready(upstream).await,
            AUTH_SASL_FINAL => continue,
            _ => {
                let reply = codec::read_message(client, max_client.min(MAX_STARTUP * 10), "client")
                    .await
                    .map_err(ProxyError::client_protocol)?
                    .ok_or(ProxyError::client_protocol(CodecError::Malformed(
                        "connection closed during login",
                    )))?;
                if reply.tag != b'p' {
                    return Err(ProxyError::client_protocol(CodecError::Malformed(
                        "authentication response",
                    )));
                }
                upstream.write_all(&reply.raw).await?;
                upstream.flush().await?;
            }
        }
    }
}
