//! A real OpenID Connect provider for the identity tests: `tests/oidc/provider.mjs` (panva's
//! `oidc-provider` on Node.js) on a free loopback port.
//!
//! Tokens come from the provider's real token endpoint through a custom grant type, so they are
//! genuine JWT access tokens (`typ: at+jwt`, RS256, signed with a key from the provider's JWKS)
//! without a browser login. Requests go through `curl`, to keep HTTP crates out of this crate.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, bail};
use serde_json::Value;

const GRANT: &str = "urn:sluice:params:oauth:grant-type:test-token";
const CLIENT: &str = "sluice-tests:sluice-tests-secret";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running provider; killed on drop.
pub struct OidcProvider {
    pub issuer: String,
    child: Child,
}

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

impl OidcProvider {
    /// Starts a provider knowing `users` and their groups, e.g. `[("alice", &["dba"])]`.
    pub fn start(users: &[(&str, &[&str])]) -> anyhow::Result<OidcProvider> {
        let dir = oidc_dir();
        let node_ok = Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !node_ok {
            bail!("`node` is not installed: run `cargo xtask setup` (it installs nodejs and npm)");
        }
        if !dir.join("node_modules/oidc-provider").is_dir() {
            bail!(
                "{}/node_modules is missing: run `cargo xtask setup` (it runs `npm ci` there)",
                dir.display()
            );
        }
        let users: serde_json::Map<String, Value> = users
            .iter()
            .map(|(u, groups)| ((*u).to_string(), Value::from(groups.to_vec())))
            .collect();
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .arg(Value::Object(users).to_string())
            .arg("0")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning node provider.mjs")?;

        // stdout carries only the READY line; stderr is echoed so a failing test shows it.
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[oidc] {line}");
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("READY ") {
                    let _ = tx.send(issuer.trim().to_string());
                }
            }
        });
        // From here on, a failure must not leave node running.
        let mut provider = OidcProvider {
            issuer: String::new(),
            child,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(issuer) => provider.issuer = issuer,
            Err(_) => {
                let status = provider.child.try_wait().ok().flatten();
                bail!(
                    "the OIDC provider did not print READY within {START_TIMEOUT:?} (exit status: {status:?}; see [oidc] lines above)"
                );
            }
        }
        Ok(provider)
    }

    /// An access token for `user`, audience `sluice`, valid for 600 s.
    pub fn token(&self, user: &str) -> anyhow::Result<String> {
        self.token_with(user, "sluice", 600)
    }

    /// An access token for `user` with the given audience and lifetime.
    pub fn token_with(&self, user: &str, audience: &str, ttl_secs: u64) -> anyhow::Result<String> {
        let body = self.post(
            "/token",
            &[
                ("grant_type", GRANT),
                ("user", user),
                ("audience", audience),
                ("ttl", &ttl_secs.to_string()),
            ],
        )?;
        body["access_token"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("token endpoint answered without access_token: {body}"))
    }

    /// Rotates the signing keys: new tokens get a new `kid`, the previous keys stay published.
    /// Returns the published key ids, newest first.
    pub fn rotate_keys(&self) -> anyhow::Result<Vec<String>> {
        let body = self.post("/__test/rotate", &[])?;
        Ok(body["kids"]
            .as_array()
            .context("rotate answered without kids")?
            .iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect())
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Value> {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "-u", CLIENT, "-X", "POST"]);
        for (k, v) in form {
            cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        let out = cmd
            .arg(format!("{}{path}", self.issuer))
            .output()
            .context("running curl (is it installed? `cargo xtask setup` installs it)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "curl {path} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let body: Value = serde_json::from_str(&text)
            .with_context(|| format!("{path} answered non-JSON: {text}"))?;
        if let Some(err) = body.get("error") {
            bail!(
                "{path} refused: {err} {}",
                body.get("error_description").unwrap_or(&Value::Null)
            );
        }
        Ok(body)
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
