//! The gateway's SSH client to the real host: pinned host key, the credential sluice holds.

use std::sync::Arc;

use russh::{
    client,
    keys::{PrivateKeyWithHashAlg, PublicKey},
};
use tracing::{info, warn};

use super::settings::{SshSettings, parse_private_key};
use crate::{config::Credentials, conn::ConnCtx, proto::tcp::connect_upstream};

/// Checks the upstream's host key against the resource's pinned keys or known_hosts file.
pub struct HostKeyCheck {
    settings: SshSettings,
    host: String,
    port: u16,
    /// Why the key was refused, for the agent's error message.
    pub refused: Option<String>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = offered else {
            self.refused = Some("the upstream offered a host certificate; pin its host key".into());
            return Ok(false);
        };
        if self.settings.host_keys.iter().any(|k| same_key(k, key)) {
            return Ok(true);
        }
        if let Some(path) = &self.settings.known_hosts {
            match russh::keys::check_known_hosts_path(&self.host, self.port, key, path) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) => {
                    self.refused = Some(format!("known_hosts {}: {e}", path.display()));
                    return Ok(false);
                }
            }
        }
        self.refused = Some(format!(
            "the upstream's host key ({}) is not one the policy trusts",
            key.fingerprint(Default::default())
        ));
        Ok(false)
    }
}

fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

pub type Upstream = client::Handle<HostKeyCheck>;

/// Connects and logs in upstream as `user` (the policy's, else the agent's). The error is the
/// sentence the agent is shown.
pub async fn connect(ctx: &ConnCtx, agent_user: &str) -> Result<Upstream, String> {
    let resource = &ctx.resource;
    let Some(settings) = resource.ssh().cloned() else {
        return Err("the resource has no ssh settings".into());
    };
    let Credentials::Inject {
        user,
        password,
        key,
        ..
    } = &resource.credentials
    else {
        return Err("the resource has no credential for the upstream".into());
    };
    let stream = connect_upstream(ctx).await.map_err(|e| e.to_string())?;
    let peer = stream
        .peer_addr()
        .map_err(|e| format!("upstream socket: {e}"))?;
    let config = Arc::new(client::Config {
        // The agent's side keeps the session alive; the upstream must not time out under it.
        inactivity_timeout: None,
        keepalive_interval: Some(std::time::Duration::from_secs(30)),
        nodelay: true,
        ..Default::default()
    });
    let check = HostKeyCheck {
        settings,
        host: peer.ip().to_string(),
        port: peer.port(),
        refused: None,
    };
    let mut handle = match client::connect_stream(config, stream, check).await {
        Ok(h) => h,
        Err(russh::Error::UnknownKey) => {
            warn!(event = "ssh_host_key_refused", conn_id = ctx.id, upstream = %peer, "upstream host key not trusted");
            return Err(format!(
                "the upstream host key of {peer} is not trusted by the policy (ssh.host_keys / ssh.known_hosts)"
            ));
        }
        Err(e) => return Err(format!("SSH handshake with {peer} failed: {e}")),
    };
    let user = user.clone().unwrap_or_else(|| agent_user.to_string());
    let result = if let Some(key) = key {
        let key = parse_private_key(key.expose())?;
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| e.to_string())?
            .flatten();
        handle
            .authenticate_publickey(&user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
    } else if let Some(password) = password {
        handle.authenticate_password(&user, password.expose()).await
    } else {
        return Err("the resource has no key or password for the upstream".into());
    };
    match result {
        Ok(r) if r.success() => {
            info!(event = "ssh_upstream_login", conn_id = ctx.id, upstream = %peer, user = %user, "logged in upstream");
            Ok(handle)
        }
        Ok(_) => Err(format!(
            "the upstream {peer} refused sluice's credential for user `{user}`"
        )),
        Err(e) => Err(format!("logging in to {peer}: {e}")),
    }
}
