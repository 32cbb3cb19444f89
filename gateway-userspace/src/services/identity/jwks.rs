//! The issuer's keys: discovery and JWKS fetching, the cache and its refresh (single-flight,
//! rate-limited, stale-tolerant), and picking the key a token names.

use std::{collections::HashSet, net::IpAddr, sync::Arc, time::Instant};

use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk},
};
use serde_json::Value;
use tracing::{debug, info, warn};

use super::{IdentityError, MAX_RESPONSE, OidcVerifier, STALE_LIMIT, accepted_alg, shorten};

#[derive(Default)]
pub(super) struct RefreshState {
    pub(super) last_attempt: Option<Instant>,
    /// Returned to callers during the rate-limit window when there are no keys at all.
    pub(super) last_error: Option<IdentityError>,
    pub(super) generation: u64,
}

pub(super) struct KeySet {
    pub(super) jwks_uri: String,
    pub(super) keys: Vec<VerifyKey>,
    pub(super) fetched_at: Instant,
    /// Lets a caller that saw a miss tell whether someone refreshed meanwhile.
    pub(super) generation: u64,
}

pub(super) struct VerifyKey {
    pub(super) kid: Option<String>,
    /// The JWK's `alg`, when it names one: the token's must then match.
    pub(super) alg: Option<Algorithm>,
    pub(super) curve: Option<EllipticCurve>,
    pub(super) family: AlgorithmFamily,
    pub(super) key: DecodingKey,
}

pub(super) enum Reason {
    /// The cache is missing or older than the max age.
    Stale,
    /// A token's `kid` was not in the key set of this generation.
    UnknownKid { seen: u64 },
}

impl OidcVerifier {
    pub(super) fn cached(&self) -> Option<Arc<KeySet>> {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The key set to use now, refreshing it when `reason` calls for it.
    pub(super) async fn keys(&self, reason: Reason) -> Result<Arc<KeySet>, IdentityError> {
        if let Reason::Stale = reason
            && let Some(c) = self.cached()
            && c.fetched_at.elapsed() < self.max_age
        {
            return Ok(c);
        }
        let mut state = self.refresh.lock().await;
        let cached = self.cached();
        // Someone else refreshed while we waited for the lock.
        if let Some(c) = &cached {
            let done = match reason {
                Reason::Stale => c.fetched_at.elapsed() < self.max_age,
                Reason::UnknownKid { seen } => c.generation != seen,
            };
            if done {
                return Ok(c.clone());
            }
        }
        if let Some(t) = state.last_attempt
            && t.elapsed() < self.min_refetch
        {
            return match (cached, &state.last_error) {
                (Some(c), _) if c.fetched_at.elapsed() < STALE_LIMIT => Ok(c),
                (_, Some(e)) => Err(e.clone()),
                (_, None) => Err(IdentityError::Discovery {
                    what: "key set",
                    reason: "keys are too old and a refresh was just attempted".to_string(),
                }),
            };
        }
        state.last_attempt = Some(Instant::now());
        // An unknown kid needs only a new JWKS; a stale cache also re-reads discovery, in
        // case the JWKS moved.
        let known_uri = match (&reason, &cached) {
            (Reason::UnknownKid { .. }, Some(c)) => Some(c.jwks_uri.clone()),
            _ => None,
        };
        match self.fetch(known_uri).await {
            Ok((jwks_uri, keys)) => {
                state.generation += 1;
                state.last_error = None;
                info!(
                    event = "oidc_keys_fetched",
                    issuer = %self.settings.issuer,
                    keys = keys.len(),
                    "fetched the identity provider's signing keys"
                );
                let set = Arc::new(KeySet {
                    jwks_uri,
                    keys,
                    fetched_at: Instant::now(),
                    generation: state.generation,
                });
                *self.cache.write().unwrap_or_else(|p| p.into_inner()) = Some(set.clone());
                Ok(set)
            }
            Err(e) => {
                state.last_error = Some(e.clone());
                match cached {
                    Some(c) if c.fetched_at.elapsed() < STALE_LIMIT => {
                        warn!(event = "oidc_keys_refresh_failed", error = %e, "keeping the cached signing keys");
                        Ok(c)
                    }
                    _ => Err(e),
                }
            }
        }
    }

    /// Discovery (unless the JWKS URL is already known), then the JWKS.
    async fn fetch(
        &self,
        known_jwks_uri: Option<String>,
    ) -> Result<(String, Vec<VerifyKey>), IdentityError> {
        let jwks_uri = match known_jwks_uri {
            Some(uri) => uri,
            None => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.settings.issuer.trim_end_matches('/')
                );
                let doc = self.get_json(url).await?;
                let what = "discovery document";
                let issuer = doc.get("issuer").and_then(Value::as_str);
                // OIDC Discovery §4.3: a mismatch means the document is not this issuer's.
                if issuer != Some(self.settings.issuer.as_str()) {
                    return Err(IdentityError::Discovery {
                        what,
                        reason: format!(
                            "it names issuer {:?}, not {:?}",
                            issuer.map(shorten),
                            self.settings.issuer
                        ),
                    });
                }
                let uri = doc.get("jwks_uri").and_then(Value::as_str).ok_or_else(|| {
                    IdentityError::Discovery {
                        what,
                        reason: "it has no jwks_uri".to_string(),
                    }
                })?;
                let ok = split_url(uri)
                    .is_some_and(|(https, host)| https || (self.loopback && is_loopback(host)));
                if !ok {
                    return Err(IdentityError::Discovery {
                        what,
                        reason: format!("its jwks_uri {:?} is not an https URL", shorten(uri)),
                    });
                }
                uri.to_string()
            }
        };
        let jwks = self.get_json(jwks_uri.clone()).await?;
        let keys = parse_jwks(&jwks).map_err(|reason| IdentityError::Discovery {
            what: "JWKS",
            reason,
        })?;
        Ok((jwks_uri, keys))
    }

    /// GET with the size limit and timeout, on the blocking pool (ureq is synchronous).
    async fn get_json(&self, url: String) -> Result<Value, IdentityError> {
        let agent = self.agent.clone();
        let u = url.clone();
        let fetch_err = move |reason: String| IdentityError::Fetch {
            url: u.clone(),
            reason,
        };
        let fe = fetch_err.clone();
        let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, IdentityError> {
            let mut resp = agent
                .get(&url)
                .header("accept", "application/json")
                .header("user-agent", "sluice")
                .call()
                .map_err(|e| fe(e.to_string()))?;
            resp.body_mut()
                .with_config()
                .limit(MAX_RESPONSE)
                .read_to_vec()
                .map_err(|e| fe(e.to_string()))
        })
        .await
        .map_err(|e| fetch_err(format!("fetch task failed: {e}")))??;
        serde_json::from_slice(&body).map_err(|e| fetch_err(format!("not JSON: {e}")))
    }
}

/// With a `kid`, the key of that id; without one, the only key that fits the algorithm.
pub(super) fn find_key<'a>(
    keys: &'a [VerifyKey],
    kid: Option<&str>,
    alg: Algorithm,
) -> Option<&'a VerifyKey> {
    match kid {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
        None => {
            let mut fits = keys
                .iter()
                .filter(|k| k.family == alg.family() && k.alg.is_none_or(|a| a == alg));
            let first = fits.next();
            // Several candidates: guessing would be trying keys until one fits; refuse.
            if fits.next().is_some() { None } else { first }
        }
    }
}

/// Signature keys of a JWKS. Keys we cannot use (encryption keys, `oct`, unknown types) are
/// skipped rather than failing the whole set: issuers publish all sorts.
pub(super) fn parse_jwks(jwks: &Value) -> Result<Vec<VerifyKey>, String> {
    let entries = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("it has no keys array")?;
    let mut keys = Vec::new();
    for entry in entries {
        if entry.get("use").is_some_and(|u| u != "sig") {
            continue;
        }
        if let Some(ops) = entry.get("key_ops").and_then(Value::as_array)
            && !ops.iter().any(|o| o == "verify")
        {
            continue;
        }
        let jwk: Jwk = match serde_json::from_value(entry.clone()) {
            Ok(jwk) => jwk,
            Err(e) => {
                debug!(error = %e, "skipping a JWK of a type or algorithm we do not support");
                continue;
            }
        };
        let (family, curve) = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => (AlgorithmFamily::Rsa, None),
            AlgorithmParameters::EllipticCurve(p) => (AlgorithmFamily::Ec, Some(p.curve.clone())),
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                (AlgorithmFamily::Ed, Some(p.curve.clone()))
            }
            // Symmetric keys would let HS* tokens in; other OKP curves are not signatures.
            _ => continue,
        };
        // A key bound to an algorithm we refuse (HS*, encryption algorithms) is not usable.
        let alg = match entry.get("alg").and_then(Value::as_str) {
            Some(a) => match accepted_alg(a) {
                Ok(a) => Some(a),
                Err(_) => continue,
            },
            None => None,
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            debug!(kid = ?jwk.common.key_id, "skipping a JWK with unusable parameters");
            continue;
        };
        keys.push(VerifyKey {
            kid: jwk.common.key_id.clone(),
            alg,
            curve,
            family,
            key,
        });
    }
    let mut seen = HashSet::new();
    keys.retain(|k| k.kid.is_none() || seen.insert(k.kid.clone()));
    if keys.is_empty() {
        return Err("it has no usable signature keys".to_string());
    }
    Ok(keys)
}

/// `(is_https, host)` of an http(s) URL; `None` for anything else or with userinfo.
pub(super) fn split_url(url: &str) -> Option<(bool, &str)> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return None;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return None;
    }
    Some((https, host))
}

pub(super) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
