//! TEMPORARY STUB, replaced by the real verifier at merge.
use std::time::{Duration, SystemTime};
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSettings {
    pub issuer: String,
    pub audience: String,
    pub groups_claim: String,
    pub leeway: Duration,
}
impl OidcSettings {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> OidcSettings {
        OidcSettings {
            issuer: issuer.into(),
            audience: audience.into(),
            groups_claim: "groups".into(),
            leeway: Duration::from_secs(30),
        }
    }
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub issuer: String,
    pub expires_at: SystemTime,
}
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("stub")]
    Stub,
}
pub struct OidcVerifier;
impl OidcVerifier {
    pub fn new(_s: OidcSettings) -> Result<Self, IdentityError> {
        Ok(OidcVerifier)
    }
    pub async fn verify(&self, _t: &str) -> Result<Identity, IdentityError> {
        Err(IdentityError::Stub)
    }
}
