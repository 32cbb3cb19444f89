//! Protocol sessions. Each `serve(io, &ConnCtx, ...)` runs one redirected connection to its end.

pub mod postgres;
pub mod ssh;
pub mod tcp;

use self::postgres::codec::CodecError;

/// Which side of a proxied connection caused an error, so logs and answers blame the right one.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot reach upstream {addr}: {source}")]
    UpstreamConnect {
        addr: String,
        source: std::io::Error,
    },
    #[error("upstream {addr} did not answer within {secs}s")]
    UpstreamTimeout { addr: String, secs: u64 },
    #[error("upstream refused the login ({code}): {message}")]
    UpstreamRefused { code: String, message: String },
    #[error("upstream protocol error: {0}")]
    UpstreamProtocol(CodecError),
    #[error("client protocol error: {0}")]
    ClientProtocol(CodecError),
    #[error("client startup refused: {0}")]
    ClientRefused(String),
    #[error("relaying: {0}")]
    Io(#[from] std::io::Error),
    #[error("client SSH session: {0}")]
    ClientSsh(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl ProxyError {
    pub fn side(&self) -> &'static str {
        match self {
            ProxyError::UpstreamConnect { .. }
            | ProxyError::UpstreamTimeout { .. }
            | ProxyError::UpstreamRefused { .. }
            | ProxyError::UpstreamProtocol(_) => "upstream",
            ProxyError::ClientProtocol(_)
            | ProxyError::ClientRefused(_)
            | ProxyError::ClientSsh(_) => "client",
            ProxyError::Io(_) => "transport",
            ProxyError::Internal(_) => "internal",
        }
    }
}
