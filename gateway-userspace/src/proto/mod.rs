//! Protocol sessions. Each `serve(io, &ConnCtx)` runs one redirected connection to its end.

pub mod tcp;

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
    #[error("relaying: {0}")]
    Io(#[from] std::io::Error),
}

impl ProxyError {
    pub fn side(&self) -> &'static str {
        match self {
            ProxyError::UpstreamConnect { .. } | ProxyError::UpstreamTimeout { .. } => "upstream",
            ProxyError::Io(_) => "transport",
        }
    }
}
