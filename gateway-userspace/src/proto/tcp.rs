//! Opaque TCP: bytes are relayed unchanged in both directions. Used for `protocol: tcp`
//! resources, whose content sluice does not decode (only who connected where is known).

use std::time::Duration;

use tokio::net::TcpStream;

use super::ProxyError;
use crate::conn::ConnCtx;

pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes relayed in each direction.
#[derive(Clone, Copy, Debug, Default)]
pub struct Transfer {
    pub to_upstream: u64,
    pub to_client: u64,
}

/// Connects to the resource's upstream (by default the agent's original destination).
pub async fn connect_upstream(ctx: &ConnCtx) -> Result<TcpStream, ProxyError> {
    let addr = ctx
        .resource
        .upstream
        .clone()
        .unwrap_or_else(|| ctx.orig_dst.to_string());
    match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(source)) => Err(ProxyError::UpstreamConnect { addr, source }),
        Err(_) => Err(ProxyError::UpstreamTimeout {
            addr,
            secs: UPSTREAM_CONNECT_TIMEOUT.as_secs(),
        }),
    }
}

pub async fn serve(mut client: TcpStream, ctx: &ConnCtx) -> Result<Transfer, ProxyError> {
    let _ = client.set_nodelay(true);
    let mut upstream = connect_upstream(ctx).await?;
    let (to_upstream, to_client) =
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(Transfer {
        to_upstream,
        to_client,
    })
}
