//! The `ssh:` block of an SSH resource, and the gateway's own host key.
//!
//! The upstream host key is always checked: a resource names the keys it trusts (`host_keys`)
//! or a `known_hosts` file. There is no "accept anything" mode: the gateway holds the real
//! credential, and handing it to whoever answers on port 22 would defeat the point.

use std::{
    fs,
    path::{Path, PathBuf},
};

use russh::keys::{PrivateKey, PublicKey, ssh_key::LineEnding};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::{action::Action, diag::Report};

/// File name of the gateway's host key (agents' side) under `data_dir`.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interactive {
    /// Shells are allowed; each line is decided at Enter.
    #[default]
    Allow,
    /// Only exec requests (`ssh host 'cmd'`): a shell cannot be inspected as exactly.
    Deny,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forwarding {
    #[default]
    Deny,
    /// `ssh -L` (direct-tcpip) through the upstream host; bytes are relayed, not inspected.
    Allow,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshSettings {
    /// Upstream host keys trusted for this resource.
    pub host_keys: Vec<PublicKey>,
    /// Or an OpenSSH known_hosts file (checked for the upstream's host and port).
    pub known_hosts: Option<PathBuf>,
    pub interactive: Interactive,
    /// scp, sftp and rsync: allow, alert, hold or deny.
    pub file_transfer: Action,
    pub port_forwarding: Forwarding,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSsh {
    #[serde(default)]
    host_keys: Vec<Spanned<String>>,
    #[serde(default)]
    known_hosts: Option<Spanned<String>>,
    #[serde(default)]
    interactive: Option<Interactive>,
    #[serde(default)]
    file_transfer: Option<Action>,
    #[serde(default)]
    port_forwarding: Option<Forwarding>,
}

/// What the SSH settings are checked against in the rest of the resource.
pub(crate) struct ResourceShape<'a> {
    /// Where errors about the resource as a whole point.
    pub name: &'a Spanned<String>,
    /// `credentials: { mode: inject }` with a key or a password.
    pub injects_credential: bool,
    pub has_tls: bool,
}

impl RawSsh {
    pub(crate) fn validate(
        raw: Option<&RawSsh>,
        resource: &ResourceShape<'_>,
        report: &mut Report,
    ) -> SshSettings {
        let at = resource.name;
        if !resource.injects_credential {
            report.error(
                at,
                format!(
                    "ssh resource `{}` needs `credentials: {{ mode: inject, user: ..., key: ... }}`",
                    at.value
                ),
                Some(
                    "the agent's own SSH signature cannot be replayed upstream: sluice logs in with a key or password it holds",
                ),
            );
        }
        if resource.has_tls {
            report.error(at, "`tls` does not apply to ssh resources", None);
        }
        let mut s = SshSettings {
            host_keys: Vec::new(),
            known_hosts: None,
            interactive: Interactive::default(),
            file_transfer: Action::Deny,
            port_forwarding: Forwarding::default(),
        };
        let Some(raw) = raw else {
            report.error(
                at,
                "an ssh resource needs `ssh: { host_keys: [...] }` or `ssh: { known_hosts: FILE }`",
                Some("the upstream's host key is always checked; `ssh-keyscan HOST` prints it"),
            );
            return s;
        };
        for k in &raw.host_keys {
            match PublicKey::from_openssh(k.value.trim()) {
                Ok(key) => s.host_keys.push(key),
                Err(e) => report.error(
                    k,
                    format!("not an OpenSSH public key: {e}"),
                    Some("e.g. \"ssh-ed25519 AAAAC3Nza...\" (a line of ssh-keyscan output without the host)"),
                ),
            }
        }
        if let Some(k) = &raw.known_hosts {
            match fs::metadata(&k.value) {
                Ok(_) => s.known_hosts = Some(PathBuf::from(&k.value)),
                Err(e) => report.error(k, format!("cannot read `{}`: {e}", k.value), None),
            }
        }
        if raw.host_keys.is_empty() && raw.known_hosts.is_none() {
            report.error(
                at,
                "an ssh resource needs `ssh.host_keys` or `ssh.known_hosts`",
                Some("the upstream's host key is always checked; `ssh-keyscan HOST` prints it"),
            );
        }
        s.interactive = raw.interactive.unwrap_or_default();
        s.file_transfer = raw.file_transfer.unwrap_or(Action::Deny);
        s.port_forwarding = raw.port_forwarding.unwrap_or_default();
        s
    }
}

/// Parses an OpenSSH private key (the injected upstream credential).
pub fn parse_private_key(text: &str) -> Result<PrivateKey, String> {
    let key = PrivateKey::from_openssh(text.trim()).map_err(|e| {
        format!(
            "not an unencrypted OpenSSH private key ({e}); `ssh-keygen -t ed25519 -N ''` writes one"
        )
    })?;
    if key.is_encrypted() {
        return Err("the key is passphrase-protected; sluice needs it unencrypted (protect the file instead)".into());
    }
    Ok(key)
}

/// Loads the gateway's host key, creating it (0600) on first use.
pub fn load_or_create_host_key(data_dir: &Path) -> anyhow::Result<PrivateKey> {
    let path = data_dir.join(HOST_KEY_FILE);
    let parse = |text: String| {
        PrivateKey::from_openssh(text.trim())
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))
    };
    crate::files::tighten_private_file(&path)
        .map_err(|e| anyhow::anyhow!("checking {}: {e}", path.display()))?;
    if let Ok(text) = fs::read_to_string(&path) {
        return parse(text);
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let key = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
        &seed,
    ));
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding the host key: {e}"))?;
    match crate::files::create_private(&path, pem.as_bytes()) {
        Ok(()) => Ok(key),
        // Two processes starting at once: the first writer wins and both use its key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            parse(fs::read_to_string(&path)?)
        }
        Err(e) => Err(anyhow::anyhow!("creating {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_host_key_is_created_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("sluice-hk-{}", std::process::id()));
        let a = load_or_create_host_key(&dir).unwrap();
        let b = load_or_create_host_key(&dir).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let mode = fs::metadata(dir.join(HOST_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn encrypted_or_garbage_keys_are_refused_with_a_hint() {
        let err = parse_private_key("not a key").unwrap_err();
        assert!(err.contains("ssh-keygen"), "{err}");
    }
}
