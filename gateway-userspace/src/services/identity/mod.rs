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

mod jwks;
#[cfg(test)]
mod tests;

use std::{
    sync::{Arc, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind, jwk::EllipticCurve};
use serde::Deserialize;
use serde_json::{Map, Value};

use jwks::{KeySet, Reason, RefreshState, VerifyKey, find_key, is_loopback, split_url};

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

fn malformed_claim(claim: &str) -> IdentityError {
    IdentityError::Malformed(format!(
        "its {claim:?} claim has the wrong type or is empty"
    ))
}

/// Untrusted strings (a header's kid, typ, alg) are cut short before they reach a message.
fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}
