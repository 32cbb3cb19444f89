//! What every SSH session of the gateway shares, owned by the server and handed to [`super::serve`].

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

/// The SSH server side (the gateway's host key), made on first use.
#[derive(Default)]
pub struct State {
    server: Mutex<Option<Arc<russh::server::Config>>>,
}

impl State {
    /// The SSH server configuration with the gateway's host key
    /// (`<data_dir>/ssh_host_ed25519_key`, created on first use).
    pub fn server_config(&self, data_dir: &Path) -> anyhow::Result<Arc<russh::server::Config>> {
        let mut slot = self.server.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let key = super::settings::load_or_create_host_key(data_dir)?;
        let config = super::server_config(key);
        *slot = Some(config.clone());
        Ok(config)
    }
}
