//! OIDC token verification against a real provider (oidc-provider on Node.js, see
//! `tests/oidc/provider.mjs`): discovery, JWKS, real RS256 `at+jwt` access tokens.
//! Needs no root, only `cargo xtask setup` (node and the npm packages).

use std::time::Duration;

use sluice::services::identity::{IdentityError, OidcSettings, OidcVerifier};
use sluice_tests::oidc::OidcProvider;

fn provider() -> OidcProvider {
    OidcProvider::start(&[("alice", &["dba"]), ("carol", &["dba", "sre"])])
        .expect("starting the OIDC provider")
}

fn verifier(p: &OidcProvider) -> OidcVerifier {
    OidcVerifier::new(OidcSettings::new(&p.issuer, "sluice")).expect("verifier")
}

/// The `kid` of a compact JWT's header (for checking rotation really happened).
fn kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn real_token_verifies_with_subject_and_groups() {
    let p = provider();
    let v = verifier(&p);
    let id = v.verify(&p.token("carol").unwrap()).await.unwrap();
    assert_eq!(id.subject, "carol");
    assert_eq!(id.groups, ["dba", "sre"]);
    assert_eq!(id.issuer, p.issuer);
    let left = id
        .expires_at
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        left > Duration::from_secs(500) && left <= Duration::from_secs(600),
        "{left:?}"
    );

    let id = v.verify(&p.token("alice").unwrap()).await.unwrap();
    assert_eq!(
        (id.subject.as_str(), id.groups),
        ("alice", vec!["dba".to_string()])
    );
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let p = provider();
    let token = p.token_with("alice", "another-service", 600).unwrap();
    let err = verifier(&p).verify(&token).await.unwrap_err();
    assert!(
        matches!(err, IdentityError::WrongAudience { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn expired_token_is_refused() {
    let p = provider();
    let mut settings = OidcSettings::new(&p.issuer, "sluice");
    // No leeway, so a 1 s token is expired after 3 s.
    settings.leeway = Duration::ZERO;
    let v = OidcVerifier::new(settings).unwrap();
    let token = p.token_with("alice", "sluice", 1).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let err = v.verify(&token).await.unwrap_err();
    assert!(matches!(err, IdentityError::Expired { .. }), "{err:?}");
}

#[tokio::test]
async fn altered_signature_is_refused() {
    let p = provider();
    let v = verifier(&p);
    let token = p.token("alice").unwrap();
    v.verify(&token)
        .await
        .expect("the unaltered token verifies");
    // One character in the middle of the signature (the last one may carry padding bits).
    let mut bytes = token.into_bytes();
    let i = bytes.len() - 30;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let err = v
        .verify(&String::from_utf8(bytes).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::BadSignature { .. }), "{err:?}");
}

#[tokio::test]
async fn rotated_keys_are_refetched() {
    let p = provider();
    // No refetch rate limit, so the rotation right after the first fetch is seen at once.
    let v = verifier(&p).with_refresh_timing(Duration::ZERO, Duration::from_secs(600));
    let before = p.token("alice").unwrap();
    v.verify(&before).await.unwrap();

    let kids = p.rotate_keys().unwrap();
    let after = p.token("alice").unwrap();
    assert_ne!(
        kid(&before),
        kid(&after),
        "rotation must change the signing key"
    );
    assert_eq!(kid(&after), kids[0]);
    assert_eq!(v.verify(&after).await.unwrap().subject, "alice");
    // The previous key is still published during the rollover.
    assert_eq!(v.verify(&before).await.unwrap().subject, "alice");
}
