//! A connection to the database on the gateway's side: plain TCP, or TLS when the resource
//! asks for it. Sessions, previews and catalog lookups each open theirs here.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::{config::Secret, conn::ConnCtx, proto::ProxyError};

/// A byte stream to either side: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub(super) type BoxIo = Box<dyn Io>;

/// The gateway's own login to the database (`credentials: inject`), for the connections
/// sluice opens for itself: previews of held statements and catalog lookups.
#[derive(Clone)]
pub struct PreviewLogin {
    pub params: Vec<(String, String)>,
    pub user: String,
    pub password: Option<Secret>,
}

impl PreviewLogin {
    /// A connection of sluice's own, logged in; the error is for logs and reviewers.
    pub(super) async fn open(&self, ctx: &ConnCtx) -> Result<BoxIo, String> {
        let (mut up, _) = connect(ctx).await.map_err(|e| e.to_string())?;
        super::auth::login(&mut up, &self.params, &self.user, self.password.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        Ok(up)
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
