use std::sync::{
    Mutex,
    atomic::{AtomicUsize, Ordering},
};

use jsonwebtoken::{AlgorithmFamily, EncodingKey, Header, jwk::Jwk};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::{jwks::parse_jwks, *};

// Fixed throwaway keys (openssl genpkey), committed so tests need no key generation.
const RSA1: &str = include_str!("test-keys/rsa1.pem");
const RSA2: &str = include_str!("test-keys/rsa2.pem");
const EC: &str = include_str!("test-keys/ec.pem");
const ED: &str = include_str!("test-keys/ed.pem");

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
                        "/.well-known/openid-configuration" => ("200 OK", discovery.to_string()),
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
        OidcVerifier::new(OidcSettings::new(ok, "sluice")).unwrap_or_else(|e| panic!("{ok}: {e}"));
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
