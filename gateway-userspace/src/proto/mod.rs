//! Protocol sessions. Each `serve(io, &ConnCtx, ...)` runs one redirected connection to its end.

pub mod postgres;
pub mod ssh;
pub mod tcp;

/// A protocol's own error (a malformed or oversized message), boxed so that [`ProxyError`]
/// names no protocol's types.
pub type ProtocolError = Box<dyn std::error::Error + Send + Sync>;

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
    UpstreamProtocol(ProtocolError),
    #[error("client protocol error: {0}")]
    ClientProtocol(ProtocolError),
    #[error("client startup refused: {0}")]
    ClientRefused(String),
    #[error("relaying: {0}")]
    Io(#[from] std::io::Error),
    /// The agent's session failed in its protocol's library (`protocol`: e.g. "SSH").
    #[error("client {protocol} session: {message}")]
    ClientSession {
        protocol: &'static str,
        message: String,
    },
    #[error("internal: {0}")]
    Internal(String),
}

impl ProxyError {
    /// The upstream broke its protocol.
    pub fn upstream_protocol(e: impl std::error::Error + Send + Sync + 'static) -> ProxyError {
        ProxyError::UpstreamProtocol(Box::new(e))
    }

    /// The agent broke its protocol.
    pub fn client_protocol(e: impl std::error::Error + Send + Sync + 'static) -> ProxyError {
        ProxyError::ClientProtocol(Box::new(e))
    }

    pub fn side(&self) -> &'static str {
        match self {
            ProxyError::UpstreamConnect { .. }
            | ProxyError::UpstreamTimeout { .. }
            | ProxyError::UpstreamRefused { .. }
            | ProxyError::UpstreamProtocol(_) => "upstream",
            ProxyError::ClientProtocol(_)
            | ProxyError::ClientRefused(_)
            | ProxyError::ClientSession { .. } => "client",
            ProxyError::Io(_) => "transport",
            ProxyError::Internal(_) => "internal",
        }
    }
}
