//! Identity: offline validation of OIDC tokens (reviewers' and agents').
//!
//! The issuer's discovery document and JWKS are fetched once and cached; every token is then
//! verified locally (signature, `iss`, `aud`, `exp`/`nbf`/`iat`, `typ`). Both ID tokens and JWT
//! access tokens (RFC 9068, `typ: at+jwt`) are accepted: sluice is the audience either way.
//!
//! Key rotation: a token signed with a `kid` the cache does not know triggers one JWKS refetch
//! (single-flight, at most once per [`MIN_REFETCH_INTERVAL`]), then one retry. The cache is also
//! refreshed after [`MAX_KEY_AGE`]; if the issuer is unreachable then, the old keys keep working
//! for up to [`STALE_LIMIT`] so a short IdP outage does not lock every reviewer out.
//!
//! Only asymmetric algorithms are accepted: `none` and HS* are refused before any key lookup
//! (with HS*, the issuer's *public* key would become the HMAC secret: the algorithm-confusion
//! attack), and symmetric (`oct`) keys in a JWKS are ignored.

use std::{
    collections::HashSet,
    net::IpAddr,
    sync::{Arc, RwLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, Validation,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk},
};
use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::{debug, info, warn};

/// A JWKS refetch for an unknown `kid` happens at most this often: a client sending random
/// `kid`s must not turn the gateway into a load generator against the identity provider.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Keys are refreshed after this age even when every `kid` is known (revoked keys disappear).
pub const MAX_KEY_AGE: Duration = Duration::from_secs(600);
/// When a refresh fails, cached keys stay usable until they are this old.
pub const STALE_LIMIT: Duration = Duration::from_secs(3600);
/// Discovery documents and JWKS are small; anything larger is refused.
const MAX_RESPONSE: u64 = 1 << 20;
/// Whole-request timeout for each discovery/JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Tokens larger than this are refused before decoding (they arrive from clients).
const MAX_TOKEN: usize = 64 * 1024;

/// Where tokens come from and what they must say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSettings {
    /// The issuer URL, compared exactly with the discovery document's and each token's `iss`.
    pub issuer: String,
    /// This gateway's audience: each token's `aud` must contain it.
    pub audience: String,
    /// The claim holding the user's groups (an array of strings, or a single string).
    pub groups_claim: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (whole seconds are used).
    pub leeway: Duration,
}

impl OidcSettings {
    /// Settings with the defaults: groups in `groups`, 30 s leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> OidcSettings {
        OidcSettings {
            issuer: issuer.into(),
            audience: audience.into(),
            groups_claim: "groups".to_string(),
            leeway: Duration::from_secs(30),
        }
    }
}

/// Who a verified token says the caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    /// `preferred_username`, else `name`, else `email`, when present.
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub issuer: String,
    pub expires_at: SystemTime,
}

/// Why a token (or the verifier's setup) was refused. Messages never contain the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid OIDC settings: {0}")]
    Settings(String),
    #[error("the token is malformed: {0}")]
    Malformed(String),
    #[error(
        "the token is signed with algorithm {0:?}, which is not accepted (accepted: RS256/384/512, PS256/384/512, ES256/384, EdDSA)"
    )]
    UnsupportedAlgorithm(String),
    #[error("the token's type {0:?} is not accepted (expected JWT or at+jwt)")]
    WrongType(String),
    #[error("the token's signature does not verify: it was altered or not signed by {issuer}")]
    BadSignature { issuer: String },
    #[error("the token expired{}; obtain a new one", at.as_deref().map(|t| format!(" at {t}")).unwrap_or_default())]
    Expired { at: Option<String> },
    #[error("the token is not valid yet (nbf or iat in the future); check the clocks")]
    NotYetValid,
    #[error("the token is not meant for this gateway: its audience does not include {expected:?}")]
    WrongAudience { expected: String },
    #[error("the token was not issued by {expected}")]
    WrongIssuer { expected: String },
    #[error("the token lacks the required claim {0:?}")]
    MissingClaim(String),
    #[error(
        "the token is signed with key {kid:?}, which {issuer} does not publish (rotated out, or another issuer's key)"
    )]
    UnknownKey { kid: String, issuer: String },
    #[error("key {kid:?} of {issuer} cannot verify {alg} signatures")]
    KeyMismatch {
        kid: String,
        issuer: String,
        alg: String,
    },
    #[error("cannot fetch {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("the identity provider's {what} is unusable: {reason}")]
    Discovery { what: &'static str, reason: String },
}

/// Verifies tokens of one issuer for one audience. Share it in an `Arc`.
pub struct OidcVerifier {
    settings: OidcSettings,
    /// Loopback issuers may use plain http (tests, a local IdP); everything else is https-only,
    /// including the JWKS URL and any redirect.
    loopback: bool,
    agent: ureq::Agent,
    min_refetch: Duration,
    max_age: Duration,
    /// Readers take a snapshot and never wait on the network.
    cache: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching, so concurrent misses cause a single fetch.
    refresh: tokio::sync::Mutex<RefreshState>,
}

#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    /// Returned to callers during the rate-limit window when there are no keys at all.
    last_error: Option<IdentityError>,
    generation: u64,
}

struct KeySet {
    jwks_uri: String,
    keys: Vec<VerifyKey>,
    fetched_at: Instant,
    /// Lets a caller that saw a miss tell whether someone refreshed meanwhile.
    generation: u64,
}

struct VerifyKey {
    kid: Option<String>,
    /// The JWK's `alg`, when it names one: the token's must then match.
    alg: Option<Algorithm>,
    curve: Option<EllipticCurve>,
    family: AlgorithmFamily,
    key: DecodingKey,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<Vec<String>>,
    #[serde(default)]
    enc: Option<String>,
}

enum Reason {
    /// The cache is missing or older than the max age.
    Stale,
    /// A token's `kid` was not in the key set of this generation.
    UnknownKid { seen: u64 },
}

impl OidcVerifier {
    /// Checks the settings; no network access happens here.
    pub fn new(settings: OidcSettings) -> Result<Self, IdentityError> {
        let (https, host) = split_url(&settings.issuer).ok_or_else(|| {
            IdentityError::Settings(format!(
                "issuer {:?} is not an http(s) URL",
                settings.issuer
            ))
        })?;
        let loopback = is_loopback(host);
        if !https && !loopback {
            return Err(IdentityError::Settings(format!(
                "issuer {} must use https (plain http is allowed only on loopback)",
                settings.issuer
            )));
        }
        if settings.issuer.contains(['?', '#']) {
            return Err(IdentityError::Settings(
                "the issuer URL must not have a query or fragment".to_string(),
            ));
        }
        if settings.audience.is_empty() {
            return Err(IdentityError::Settings("the audience is empty".to_string()));
        }
        if settings.groups_claim.is_empty() {
            return Err(IdentityError::Settings(
                "the groups claim name is empty".to_string(),
            ));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(FETCH_TIMEOUT))
            .https_only(!loopback)
            .max_redirects(3)
            .build()
            .into();
        Ok(OidcVerifier {
            settings,
            loopback,
            agent,
            min_refetch: MIN_REFETCH_INTERVAL,
            max_age: MAX_KEY_AGE,
            cache: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        })
    }

    /// Overrides the refetch rate limit and the cache's max age (tests use short ones).
    pub fn with_refresh_timing(mut self, min_refetch: Duration, max_age: Duration) -> Self {
        self.min_refetch = min_refetch;
        self.max_age = max_age;
        self
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Verifies `token` and returns who it identifies.
    pub async fn verify(&self, token: &str) -> Result<Identity, IdentityError> {
        let token = token.trim();
        let header = parse_header(token)?;
        let alg = accepted_alg(&header.alg)?;
        if let Some(typ) = &header.typ
            && !["jwt", "application/jwt", "at+jwt", "application/at+jwt"]
                .contains(&typ.to_ascii_lowercase().as_str())
        {
            return Err(IdentityError::WrongType(shorten(typ)));
        }
        // RFC 7515 §4.1.11: extensions we do not understand must make the token invalid.
        if header.crit.is_some_and(|c| !c.is_empty()) {
            return Err(IdentityError::Malformed(
                "it uses critical header extensions (crit), which are not supported".to_string(),
            ));
        }

        let mut keys = self.keys(Reason::Stale).await?;
        let kid = header.kid.as_deref();
        let key = match find_key(&keys.keys, kid, alg) {
            Some(k) => k,
            None => {
                // Perhaps the issuer rotated its keys: refetch once, then give up.
                keys = self
                    .keys(Reason::UnknownKid {
                        seen: keys.generation,
                    })
                    .await?;
                find_key(&keys.keys, kid, alg).ok_or_else(|| IdentityError::UnknownKey {
                    kid: kid.map_or_else(|| "(none)".to_string(), shorten),
                    issuer: self.settings.issuer.clone(),
                })?
            }
        };
        self.check(token, alg, kid, key)
    }

    /// Signature and claims, against one key.
    fn check(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
        key: &VerifyKey,
    ) -> Result<Identity, IdentityError> {
        let s = &self.settings;
        let key_mismatch = || IdentityError::KeyMismatch {
            kid: kid.map_or_else(|| "(none)".to_string(), shorten),
            issuer: s.issuer.clone(),
            alg: format!("{alg:?}"),
        };
        if key.family != alg.family() || key.alg.is_some_and(|a| a != alg) {
            return Err(key_mismatch());
        }
        if let Some(curve) = &key.curve {
            let expected = match alg {
                Algorithm::ES256 => EllipticCurve::P256,
                Algorithm::ES384 => EllipticCurve::P384,
                _ => EllipticCurve::Ed25519,
            };
            if *curve != expected {
                return Err(key_mismatch());
            }
        }

        let mut v = Validation::new(alg);
        v.leeway = s.leeway.as_secs();
        v.set_audience(&[&s.audience]);
        v.set_issuer(&[&s.issuer]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_exp = true;
        v.validate_nbf = true;
        let claims = match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v) {
            Ok(data) => data.claims,
            Err(e) => return Err(self.classify(e.kind(), token, key_mismatch)),
        };

        // `iss` must be one exact string (jsonwebtoken also accepts an array containing it).
        if claims.get("iss").and_then(Value::as_str) != Some(s.issuer.as_str()) {
            return Err(IdentityError::WrongIssuer {
                expected: s.issuer.clone(),
            });
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        // jsonwebtoken does not look at `iat`; a token from the future means a broken clock
        // or a forged time.
        if let Some(iat) = claims.get("iat") {
            let iat = iat.as_f64().ok_or_else(|| malformed_claim("iat"))?;
            if iat > now + s.leeway.as_secs_f64() {
                return Err(IdentityError::NotYetValid);
            }
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .filter(|e| e.is_finite() && *e >= 0.0)
            .ok_or_else(|| malformed_claim("exp"))?;
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => return Err(malformed_claim("sub")),
        };
        let name = ["preferred_username", "name", "email"]
            .iter()
            .find_map(|c| claims.get(*c).and_then(Value::as_str))
            .map(str::to_string);
        let groups = match claims.get(&s.groups_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(g)) => vec![g.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|g| g.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| malformed_claim(&s.groups_claim))?,
            Some(_) => return Err(malformed_claim(&s.groups_claim)),
        };
        Ok(Identity {
            subject,
            name,
            groups,
            issuer: s.issuer.clone(),
            expires_at: UNIX_EPOCH + Duration::from_secs_f64(exp),
        })
    }

    fn classify(
        &self,
        kind: &ErrorKind,
        token: &str,
        key_mismatch: impl Fn() -> IdentityError,
    ) -> IdentityError {
        let s = &self.settings;
        match kind {
            ErrorKind::InvalidSignature => IdentityError::BadSignature {
                issuer: s.issuer.clone(),
            },
            ErrorKind::ExpiredSignature => {
                // The signature verified before the claims were looked at, so `exp` is the
                // issuer's and safe to show.
                let at =
                    jsonwebtoken::dangerous::insecure_decode_claims::<Map<String, Value>>(token)
                        .ok()
                        .and_then(|c| c.get("exp").and_then(Value::as_u64))
                        .map(|e| {
                            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(e))
                                .to_string()
                        });
                IdentityError::Expired { at }
            }
            ErrorKind::ImmatureSignature => IdentityError::NotYetValid,
            ErrorKind::InvalidAudience => IdentityError::WrongAudience {
                expected: s.audience.clone(),
            },
            ErrorKind::InvalidIssuer => IdentityError::WrongIssuer {
                expected: s.issuer.clone(),
            },
            ErrorKind::MissingRequiredClaim(c) => IdentityError::MissingClaim(c.clone()),
            ErrorKind::InvalidClaimFormat(c) => malformed_claim(c),
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidKeyFormat => key_mismatch(),
            ErrorKind::Base64(_) => IdentityError::Malformed("bad base64url".to_string()),
            ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                IdentityError::Malformed("its payload is not a JSON object".to_string())
            }
            other => IdentityError::Malformed(format!("{other:?}")),
        }
    }

    fn cached(&self) -> Option<Arc<KeySet>> {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The key set to use now, refreshing it when `reason` calls for it.
    async fn keys(&self, reason: Reason) -> Result<Arc<KeySet>, IdentityError> {
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

/// The first part of a compact JWS, decoded. Refuses JWE (5 parts) and non-JWS shapes.
fn parse_header(token: &str) -> Result<RawHeader, IdentityError> {
    if token.len() > MAX_TOKEN {
        return Err(IdentityError::Malformed(format!(
            "it is longer than {MAX_TOKEN} bytes"
        )));
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() == 5 {
        return Err(IdentityError::Malformed(
            "it is encrypted (JWE); only signed tokens are supported".to_string(),
        ));
    }
    if parts.len() != 3 {
        return Err(IdentityError::Malformed(
            "a JWT has three dot-separated parts".to_string(),
        ));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(parts[0])
        .map_err(|_| IdentityError::Malformed("its header is not base64url".to_string()))?;
    let header: RawHeader = serde_json::from_slice(&bytes)
        .map_err(|_| IdentityError::Malformed("its header is not a JWS header".to_string()))?;
    if header.enc.is_some() {
        return Err(IdentityError::Malformed(
            "it is encrypted (JWE); only signed tokens are supported".to_string(),
        ));
    }
    Ok(header)
}

/// The asymmetric algorithms we verify; everything else (`none`, HS*) is refused by name.
fn accepted_alg(alg: &str) -> Result<Algorithm, IdentityError> {
    Ok(match alg {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        other => return Err(IdentityError::UnsupportedAlgorithm(shorten(other))),
    })
}

/// With a `kid`, the key of that id; without one, the only key that fits the algorithm.
fn find_key<'a>(keys: &'a [VerifyKey], kid: Option<&str>, alg: Algorithm) -> Option<&'a VerifyKey> {
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
fn parse_jwks(jwks: &Value) -> Result<Vec<VerifyKey>, String> {
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

fn malformed_claim(claim: &str) -> IdentityError {
    IdentityError::Malformed(format!(
        "its {claim:?} claim has the wrong type or is empty"
    ))
}

/// Untrusted strings (a header's kid, typ, alg) are cut short before they reach a message.
fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

/// `(is_https, host)` of an http(s) URL; `None` for anything else or with userinfo.
fn split_url(url: &str) -> Option<(bool, &str)> {
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

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    };

    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    // Fixed throwaway keys (openssl genpkey), committed so tests need no key generation.
    const RSA1: &str = include_str!("identity/test-keys/rsa1.pem");
    const RSA2: &str = include_str!("identity/test-keys/rsa2.pem");
    const EC: &str = include_str!("identity/test-keys/ec.pem");
    const ED: &str = include_str!("identity/test-keys/ed.pem");

    struct TestKey {
        kid: &'static str,
        alg: Algorithm,
        enc: EncodingKey,
    }

    impl TestKey {
        fn new(kid: &'static str, alg: Algorithm, pem: &str) -> TestKey {
            let enc = match alg.family() {
                AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(pem.as_bytes()),
                AlgorithmFamily::Ec => EncodingKey::from_ec_pem(pem.as_bytes()),
                _ => EncodingKey::from_ed_pem(pem.as_bytes()),
            }
            .unwrap();
            TestKey { kid, alg, enc }
        }

        /// The public JWK, as an issuer publishes it.
        fn jwk(&self) -> Value {
            let mut jwk = Jwk::from_encoding_key(&self.enc, self.alg).unwrap();
            jwk.common.key_id = Some(self.kid.to_string());
            serde_json::to_value(jwk).unwrap()
        }

        fn sign(&self, claims: &Value) -> String {
            self.sign_typ(claims, Some("JWT"))
        }

        fn sign_typ(&self, claims: &Value, typ: Option<&str>) -> String {
            let mut h = Header::new(self.alg);
            h.kid = Some(self.kid.to_string());
            h.typ = typ.map(str::to_string);
            jsonwebtoken::encode(&h, claims, &self.enc).unwrap()
        }
    }

    fn rsa1() -> TestKey {
        TestKey::new("rsa-1", Algorithm::RS256, RSA1)
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// A discovery document and a JWKS served over real HTTP on loopback; the JWKS can change
    /// during a test (rotation) and its fetches are counted.
    struct Idp {
        issuer: String,
        jwks: Arc<Mutex<Value>>,
        jwks_fetches: Arc<AtomicUsize>,
    }

    impl Idp {
        async fn start(keys: &[&TestKey]) -> Idp {
            Self::start_with(keys, None).await
        }

        /// `discovery_issuer` overrides the issuer the discovery document claims.
        async fn start_with(keys: &[&TestKey], discovery_issuer: Option<&str>) -> Idp {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let issuer = format!("http://{}", listener.local_addr().unwrap());
            let jwks = Arc::new(Mutex::new(
                json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }),
            ));
            let jwks_fetches = Arc::new(AtomicUsize::new(0));
            let discovery = json!({
                "issuer": discovery_issuer.unwrap_or(&issuer),
                "jwks_uri": format!("{issuer}/jwks"),
            });
            let (j, n) = (jwks.clone(), jwks_fetches.clone());
            tokio::spawn(async move {
                loop {
                    let (mut s, _) = listener.accept().await.unwrap();
                    let (j, n, discovery) = (j.clone(), n.clone(), discovery.clone());
                    tokio::spawn(async move {
                        let mut req = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => req.extend_from_slice(&buf[..k]),
                            }
                        }
                        let line = String::from_utf8_lossy(&req);
                        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                        let (status, body) = match path.as_str() {
                            "/.well-known/openid-configuration" => {
                                ("200 OK", discovery.to_string())
                            }
                            "/jwks" => {
                                n.fetch_add(1, Ordering::SeqCst);
                                let body = j.lock().unwrap().to_string();
                                ("200 OK", body)
                            }
                            _ => ("404 Not Found", "{}".to_string()),
                        };
                        let resp = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = s.write_all(resp.as_bytes()).await;
                    });
                }
            });
            Idp {
                issuer,
                jwks,
                jwks_fetches,
            }
        }

        fn set_keys(&self, keys: &[&TestKey]) {
            *self.jwks.lock().unwrap() =
                json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() });
        }

        fn fetches(&self) -> usize {
            self.jwks_fetches.load(Ordering::SeqCst)
        }

        fn verifier(&self) -> OidcVerifier {
            OidcVerifier::new(OidcSettings::new(&self.issuer, "sluice")).unwrap()
        }

        fn claims(&self, sub: &str) -> Value {
            json!({
                "iss": self.issuer, "aud": "sluice", "sub": sub,
                "exp": now() + 600, "iat": now(), "preferred_username": format!("{sub}@example"),
                "groups": ["dba", "sre"],
            })
        }
    }

    /// Refusals must say why without echoing the token.
    async fn refused(v: &OidcVerifier, token: &str) -> IdentityError {
        let err = v.verify(token).await.expect_err("token must be refused");
        let msg = err.to_string();
        // (Tiny garbage inputs such as "" or "a.b" are trivially contained in any text.)
        assert!(
            token.len() < 12 || !msg.contains(token),
            "message leaks the token: {msg}"
        );
        if let Some(sig) = token.rsplit('.').next().filter(|s| s.len() > 20) {
            assert!(!msg.contains(sig), "message leaks the signature: {msg}");
        }
        err
    }

    #[tokio::test]
    async fn valid_token_gives_identity() {
        let key = rsa1();
        let idp = Idp::start(&[&key]).await;
        let v = idp.verifier();
        let exp = now() + 600;
        let mut claims = idp.claims("alice");
        claims["exp"] = json!(exp);
        let id = v.verify(&key.sign(&claims)).await.unwrap();
        assert_eq!(id.subject, "alice");
        assert_eq!(id.name.as_deref(), Some("alice@example"));
        assert_eq!(id.groups, ["dba", "sre"]);
        assert_eq!(id.issuer, idp.issuer);
        assert_eq!(id.expires_at, UNIX_EPOCH + Duration::from_secs(exp));
        // A second token is verified from the cache.
        v.verify(&key.sign(&idp.claims("bob"))).await.unwrap();
        assert_eq!(idp.fetches(), 1);
    }

    #[tokio::test]
    async fn ec_and_ed25519_and_pss_tokens_verify() {
        let ec = TestKey::new("ec-1", Algorithm::ES256, EC);
        let ed = TestKey::new("ed-1", Algorithm::EdDSA, ED);
        let ps = TestKey::new("ps-1", Algorithm::PS256, RSA2);
        let idp = Idp::start(&[&ec, &ed, &ps]).await;
        let v = idp.verifier();
        for key in [&ec, &ed, &ps] {
            let id = v.verify(&key.sign(&idp.claims("carol"))).await.unwrap();
            assert_eq!(id.subject, "carol", "{:?}", key.alg);
        }
    }

    #[tokio::test]
    async fn expired_token_is_refused_beyond_the_leeway() {
        let key = rsa1();
        let idp = Idp::start(&[&key]).await;
        let v = idp.verifier();
        let mut claims = idp.claims("alice");
        claims["exp"] = json!(now() - 120);
        let err = refused(&v, &key.sign(&claims)).await;
        assert!(
            matches!(err, IdentityError::Expired { at: Some(_) }),
            "{err:?}"
        );
        assert!(err.to_string().contains("expired at 20"), "{err}");
        // Within the 30 s leeway it still passes.
        claims["exp"] = json!(now() - 5);
        v.verify(&key.sign(&claims)).await.unwrap();
    }

    #[tokio::test]
    async fn time_claims_in_the_future_are_refused() {
        let key = rsa1();
        let idp = Idp::start(&[&key]).await;
        let v = idp.verifier();
        let mut claims = idp.claims("alice");
        claims["nbf"] = json!(now() + 300);
        assert_eq!(
            refused(&v, &key.sign(&claims)).await,
            IdentityError::NotYetValid
        );
        let mut claims = idp.claims("alice");
        claims["iat"] = json!(now() + 300);
        assert_eq!(
            refused(&v, &key.sign(&claims)).await,
            IdentityError::NotYetValid
        );
    }

    #[tokio::test]
    async fn audience_must_contain_ours() {
        let key = rsa1();
        let idp = Idp::start(&[&key]).await;
        let v = idp.verifier();
        let mut claims = idp.claims("alice");
        claims["aud"] = json!("someone-else");
        let err = refused(&v, &key.sign(&claims)).await;
        assert!(
            matches!(err, IdentityError::WrongAudience { .. }),
            "{err:?}"
        );
        claims["aud"] = json!(["someone-else", "sluice"]);
        v.verify(&key.sign(&claims)).await.unwrap();
        claims.as_object_mut().unwrap().remove("aud");
        assert_eq!(
            refused(&v, &key.sign(&claims)).await,
            IdentityError::MissingClaim("aud".to_string())
        );
    }

    #[tokio::test]
    async fn issuer_must_match_exactly() {
        let key = rsa1();
        let idp = Idp::start(&[&key]).await;
        let v = idp.verifier();
        for iss in [
            json!(format!("{}/", idp.issuer)),
            json!("https://evil.example"),
            json!([idp.issuer]),
        ] {
            let mut claims = idp.claims("alice");
            claims["iss"] = iss.clone();
            let err = refused(&v, &key.sign(&claims)).await;
            assert!(
                matches!(err, IdentityError::WrongIssuer { .. }),
                "{iss}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn altered_signature_is_refused() {
        let key = rsa1();
        let idp = Idp::start(&[&key]).await;
        let v = idp.verifier();
        let token = key.sign(&idp.claims("alice"));
        // Change one byte in the middle of the signature (an end byte may carry padding bits).
        let mut bytes = token.into_bytes();
        let i = bytes.len() - 40;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let err = refused(&v, &String::from_utf8(bytes).unwrap()).await;
        assert!(matches!(err, IdentityError::BadSignature { .. }), "{err:?}");
        // A token signed by a key the issuer does not have, under the issuer's kid.
        let forged = TestKey::new("rsa-1", Algorithm::RS256, RSA2);
        let err = refused(&v, &forged.sign(&idp.claims("alice"))).await;
        assert!(matches!(err, IdentityError::BadSignature { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn alg_none_and_hmac_are_refused() {
        let key = rsa1();
        let idp = Idp::start(&[&key]).await;
        let v = idp.verifier();
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let claims = idp.claims("alice");
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims)
        );
        assert_eq!(
            refused(&v, &none).await,
            IdentityError::UnsupportedAlgorithm("none".to_string())
        );
        // Algorithm confusion: HS256 keyed with the issuer's public key (as its JWK and as the
        // raw modulus), under the RSA key's kid.
        let jwk = key.jwk();
        for secret in [
            jwk.to_string().into_bytes(),
            URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap(),
        ] {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some("rsa-1".to_string());
            let t = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(&secret)).unwrap();
            assert_eq!(
                refused(&v, &t).await,
                IdentityError::UnsupportedAlgorithm("HS256".to_string())
            );
        }
    }

    #[tokio::test]
    async fn symmetric_keys_in_the_jwks_are_ignored() {
        let key = rsa1();
        let idp = Idp::start(&[&key]).await;
        let mut jwks = idp.jwks.lock().unwrap().clone();
        jwks["keys"]
            .as_array_mut()
            .unwrap()
            .push(json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}));
        *idp.jwks.lock().unwrap() = jwks;
        let keys = parse_jwks(&idp.jwks.lock().unwrap()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("rsa-1"));
    }

    #[tokio::test]
    async fn unknown_kid_refetches_the_jwks_after_rotation() {
        let (old, new) = (rsa1(), TestKey::new("rsa-2", Algorithm::RS256, RSA2));
        let idp = Idp::start(&[&old]).await;
        let v = idp
            .verifier()
            .with_refresh_timing(Duration::ZERO, MAX_KEY_AGE);
        v.verify(&old.sign(&idp.claims("alice"))).await.unwrap();
        assert_eq!(idp.fetches(), 1);

        idp.set_keys(&[&new]);
        // Many concurrent requests with the new kid: one refetch serves them all.
        let v = Arc::new(v);
        let token = new.sign(&idp.claims("alice"));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (v, t) = (v.clone(), token.clone());
                tokio::spawn(async move { v.verify(&t).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().subject, "alice");
        }
        assert_eq!(idp.fetches(), 2);

        // A kid nobody publishes: refetched once more, then refused as unknown.
        let mut stranger = TestKey::new("rsa-2", Algorithm::RS256, RSA2);
        stranger.kid = "nobody";
        let err = refused(&v, &stranger.sign(&idp.claims("alice"))).await;
        assert!(
            matches!(err, IdentityError::UnknownKey { ref kid, .. } if kid == "nobody"),
            "{err:?}"
        );
        assert_eq!(idp.fetches(), 3);
    }

    #[tokio::test]
    async fn unknown_kid_refetches_are_rate_limited() {
        let key = rsa1();
        let idp = Idp::start(&[&key]).await;
        let v = idp.verifier(); // default: at most one refetch per 10 s
        v.verify(&key.sign(&idp.claims("alice"))).await.unwrap();
        let mut stranger = TestKey::new("x", Algorithm::RS256, RSA2);
        for kid in ["k1", "k2", "k3"] {
            stranger.kid = kid;
            let err = refused(&v, &stranger.sign(&idp.claims("alice"))).await;
            assert!(matches!(err, IdentityError::UnknownKey { .. }), "{err:?}");
        }
        assert_eq!(
            idp.fetches(),
            1,
            "refetches within 10 s of the last fetch must not happen"
        );
    }

    #[tokio::test]
    async fn keys_are_refreshed_after_the_max_age() {
        let (old, new) = (rsa1(), TestKey::new("rsa-2", Algorithm::RS256, RSA2));
        let idp = Idp::start(&[&old]).await;
        let v = idp
            .verifier()
            .with_refresh_timing(Duration::ZERO, Duration::from_millis(200));
        v.verify(&old.sign(&idp.claims("alice"))).await.unwrap();
        // The old key is withdrawn (revoked): after the max age, its tokens stop working.
        idp.set_keys(&[&new]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let err = refused(&v, &old.sign(&idp.claims("alice"))).await;
        assert!(matches!(err, IdentityError::UnknownKey { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn typ_header_is_checked() {
        let key = rsa1();
        let idp = Idp::start(&[&key]).await;
        let v = idp.verifier();
        let claims = idp.claims("alice");
        for ok in [
            Some("JWT"),
            Some("at+jwt"),
            Some("application/AT+JWT"),
            None,
        ] {
            v.verify(&key.sign_typ(&claims, ok))
                .await
                .unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in ["dpop+jwt", "logout+jwt", "JOSE"] {
            let err = refused(&v, &key.sign_typ(&claims, Some(bad))).await;
            assert_eq!(err, IdentityError::WrongType(bad.to_string()));
        }
    }

    #[tokio::test]
    async fn groups_claim_string_array_or_missing() {
        let key = rsa1();
        let idp = Idp::start(&[&key]).await;
        let mut settings = OidcSettings::new(&idp.issuer, "sluice");
        settings.groups_claim = "roles".to_string();
        let v = OidcVerifier::new(settings).unwrap();
        let mut claims = idp.claims("alice");
        claims["roles"] = json!("dba");
        assert_eq!(v.verify(&key.sign(&claims)).await.unwrap().groups, ["dba"]);
        claims["roles"] = json!(["dba", "oncall"]);
        assert_eq!(
            v.verify(&key.sign(&claims)).await.unwrap().groups,
            ["dba", "oncall"]
        );
        claims.as_object_mut().unwrap().remove("roles");
        assert!(
            v.verify(&key.sign(&claims))
                .await
                .unwrap()
                .groups
                .is_empty()
        );
        claims["roles"] = json!(["dba", 7]);
        let err = refused(&v, &key.sign(&claims)).await;
        assert!(matches!(err, IdentityError::Malformed(_)), "{err:?}");
    }

    #[tokio::test]
    async fn required_claims_and_shapes() {
        let key = rsa1();
        let idp = Idp::start(&[&key]).await;
        let v = idp.verifier();
        let mut claims = idp.claims("alice");
        claims.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            refused(&v, &key.sign(&claims)).await,
            IdentityError::MissingClaim("exp".to_string())
        );
        for garbage in ["", "abc", "a.b", "a.b.c.d.e", "!!!.e30.x"] {
            let err = refused(&v, garbage).await;
            assert!(
                matches!(err, IdentityError::Malformed(_)),
                "{garbage}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn discovery_must_name_the_configured_issuer() {
        let key = rsa1();
        let idp = Idp::start_with(&[&key], Some("https://other.example")).await;
        let v = idp.verifier();
        let err = refused(&v, &key.sign(&idp.claims("alice"))).await;
        assert!(matches!(err, IdentityError::Discovery { .. }), "{err:?}");
        assert!(err.to_string().contains("other.example"), "{err}");
    }

    #[tokio::test]
    async fn unreachable_or_oversized_provider_is_a_fetch_error() {
        let key = rsa1();
        // Nothing listens on a port we just released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let v = OidcVerifier::new(OidcSettings::new(
            format!("http://127.0.0.1:{port}"),
            "sluice",
        ))
        .unwrap();
        let err = refused(&v, &key.sign(&json!({}))).await;
        assert!(matches!(err, IdentityError::Fetch { .. }), "{err:?}");

        let idp = Idp::start(&[&key]).await;
        *idp.jwks.lock().unwrap() = json!({ "keys": [], "pad": "x".repeat(2 << 20) });
        let err = refused(&idp.verifier(), &key.sign(&idp.claims("alice"))).await;
        assert!(matches!(err, IdentityError::Fetch { .. }), "{err:?}");
    }

    #[test]
    fn issuer_must_be_https_unless_loopback() {
        for ok in [
            "https://login.example.com/realms/x",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://localhost:3000/",
            "http://[::1]:9000",
        ] {
            OidcVerifier::new(OidcSettings::new(ok, "sluice"))
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "http://login.example.com",
            "http://127.0.0.1.evil.com",
            "http://localhost@evil.com",
            "ftp://127.0.0.1",
            "127.0.0.1",
            "https://",
        ] {
            let err = OidcVerifier::new(OidcSettings::new(bad, "sluice")).err();
            assert!(
                matches!(err, Some(IdentityError::Settings(_))),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn verifier_is_send_and_sync() {
        fn shareable<T: Send + Sync>() {}
        shareable::<OidcVerifier>();
    }
}
