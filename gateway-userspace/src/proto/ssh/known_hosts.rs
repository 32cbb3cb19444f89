//! `sluice ssh known-hosts`: the lines that make agents trust the gateway's host key. Reads the
//! whole policy, so it lives outside `settings` (which `config` imports).

use russh::keys::PublicKey;

use crate::config::Config;

/// known_hosts lines that make agents trust the gateway for every address an SSH resource
/// matches (the agent keeps connecting to the real address; the gateway answers for it).
pub fn known_hosts_lines(config: &Config, key: &PublicKey) -> Vec<String> {
    let key = key.to_openssh().unwrap_or_default();
    let mut lines = Vec::new();
    for r in &config.resources {
        if r.ssh().is_none() {
            continue;
        }
        for m in &r.matches {
            let host = if m.net.prefix_len() == m.net.max_prefix_len() {
                m.net.addr().to_string()
            } else {
                // known_hosts patterns cannot express a CIDR prefix.
                lines.push(format!(
                    "# {}: {} is a prefix: add a line with this key for each of its hosts",
                    r.name, m.net
                ));
                continue;
            };
            let pattern = if m.port == 22 {
                host
            } else {
                format!("[{host}]:{}", m.port)
            };
            lines.push(format!("{pattern} {key} sluice:{}", r.name));
        }
    }
    lines
}
