//! The reviewers' HTTP API and web page. Every API call carries a bearer token: an OIDC token
//! verified offline against the issuer's keys, or (single-user setups, when the policy says so)
//! a static token.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::{
    Broker, DecideError,
    model::{ApiError, Decision, DecisionRequest, State as RequestState},
    notify::{parse_slack_interaction, verify_slack_request},
    settings::{IdentitySettings, Reviewer, SlackSettings},
};
use crate::services::identity::{IdentityError, OidcSettings, OidcVerifier};

/// Request bodies are small JSON documents (or a Slack form).
const MAX_BODY: usize = 64 * 1024;
const PAGE: &str = include_str!("web/index.html");

/// Turns bearer tokens into reviewers.
pub struct Authenticator {
    oidc: Option<Arc<OidcVerifier>>,
    /// SHA-256 of each static token: compared as digests so the comparison leaks nothing useful.
    static_tokens: Vec<([u8; 32], Reviewer)>,
}

impl Authenticator {
    pub fn new(settings: &IdentitySettings) -> Result<Authenticator, IdentityError> {
        let oidc = match &settings.oidc {
            None => None,
            Some(o) => {
                let mut s = OidcSettings::new(o.issuer.clone(), o.audience.clone());
                s.groups_claim = o.groups_claim.clone();
                s.leeway = o.leeway;
                Some(Arc::new(OidcVerifier::new(s)?))
            }
        };
        Ok(Authenticator {
            oidc,
            static_tokens: settings
                .static_tokens
                .iter()
                .map(|(t, r)| (Sha256::digest(t.expose().as_bytes()).into(), r.clone()))
                .collect(),
        })
    }

    /// The OIDC verifier, shared with protocols that accept agent tokens.
    pub fn oidc(&self) -> Option<Arc<OidcVerifier>> {
        self.oidc.clone()
    }

    pub async fn authenticate(&self, token: &str) -> Result<Reviewer, String> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((_, r)) = self.static_tokens.iter().find(|(d, _)| *d == digest) {
            return Ok(r.clone());
        }
        match &self.oidc {
            Some(v) => v
                .verify(token)
                .await
                .map(|id| Reviewer {
                    subject: id.subject,
                    groups: id.groups,
                })
                .map_err(|e| e.to_string()),
            None => Err("unknown token".into()),
        }
    }
}

pub struct ApiState {
    pub broker: Arc<Broker>,
    pub auth: Arc<Authenticator>,
    /// Slack interactivity (signing secret and user map), when configured.
    pub slack: Option<SlackSettings>,
}

struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(ApiError { error: self.1 })).into_response()
    }
}

impl From<DecideError> for Failure {
    fn from(e: DecideError) -> Self {
        let status = match e {
            DecideError::NotFound(_) => StatusCode::NOT_FOUND,
            DecideError::NotPending(_) => StatusCode::CONFLICT,
            DecideError::Forbidden(_) => StatusCode::FORBIDDEN,
            DecideError::BadRequest(_) => StatusCode::BAD_REQUEST,
        };
        Failure(status, e.to_string())
    }
}

async fn reviewer(state: &ApiState, headers: &HeaderMap) -> Result<Reviewer, Failure> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Failure(
                StatusCode::UNAUTHORIZED,
                "missing `Authorization: Bearer <token>`".into(),
            )
        })?;
    state.auth.authenticate(token).await.map_err(|e| {
        warn!(event = "api_auth_refused", error = %e, "reviewer token refused");
        Failure(StatusCode::UNAUTHORIZED, format!("token refused: {e}"))
    })
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/approvals/{id}", get(page))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/approvals", get(list))
        .route("/api/v1/approvals/{id}", get(show))
        .route("/api/v1/approvals/{id}/approve", post(approve))
        .route("/api/v1/approvals/{id}/deny", post(deny))
        .route("/api/v1/grants", get(grants))
        .route("/api/v1/grants/{id}", axum::routing::delete(revoke))
        .route("/slack/interactions", post(slack_interaction))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Serves the API on TCP until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener
        .local_addr()
        .map(|a: SocketAddr| a.to_string())
        .unwrap_or_default();
    info!(event = "approvals_api", listen = %addr, "approval API and web page listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves the same API on the gateway's unix socket (see [`super::socket`]).
pub async fn serve_unix(
    listener: tokio::net::UnixListener,
    path: String,
    state: Arc<ApiState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    info!(event = "approvals_socket", socket = %path, "approval API listening on a unix socket");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn page() -> Response {
    (
        [
            // The page's script and style are inline; nothing else may load or frame it.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(PAGE),
    )
        .into_response()
}

async fn whoami(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, Failure> {
    let r = reviewer(&state, &headers).await?;
    Ok(Json(
        serde_json::json!({ "subject": r.subject, "groups": r.groups }),
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, Failure> {
    reviewer(&state, &headers).await?;
    let filter = match q.state.as_deref() {
        None | Some("") | Some("all") => None,
        Some(s) => Some(
            serde_json::from_value::<RequestState>(serde_json::Value::String(s.into())).map_err(
                |_| {
                    Failure(
                        StatusCode::BAD_REQUEST,
                        format!("unknown state `{s}`: use pending, approved, denied, expired, abandoned, cancelled or all"),
                    )
                },
            )?,
        ),
    };
    Ok(Json(state.broker.list(filter)).into_response())
}

async fn show(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    reviewer(&state, &headers).await?;
    match state.broker.get(&id) {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(DecideError::NotFound(id).into()),
    }
}

fn decision_body(body: &Bytes) -> Result<DecisionRequest, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionRequest::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
}

async fn approve(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    vote(&state, &headers, &id, &body, Decision::Approve).await
}

async fn deny(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    vote(&state, &headers, &id, &body, Decision::Deny).await
}

/// A reviewer's vote; the broker checks the body against the decision (a denial needs a
/// reason, only an approval can grant).
async fn vote(
    state: &ApiState,
    headers: &HeaderMap,
    id: &str,
    body: &Bytes,
    decision: Decision,
) -> Result<Response, Failure> {
    let r = reviewer(state, headers).await?;
    let req = decision_body(body)?;
    let view = state
        .broker
        .decide(id, &r, decision, req.reason, req.grant)?;
    Ok(Json(view).into_response())
}

async fn grants(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    reviewer(&state, &headers).await?;
    Ok(Json(state.broker.grants()).into_response())
}

async fn revoke(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let r = reviewer(&state, &headers).await?;
    Ok(Json(state.broker.revoke(&id, &r)?).into_response())
}

/// Slack's interactive buttons. Authenticated by Slack's request signature (not a bearer
/// token); the Slack user must be mapped to a reviewer in the policy.
async fn slack_interaction(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let Some(slack) = &state.slack else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            "Slack is not configured".into(),
        ));
    };
    let Some(secret) = &slack.signing_secret else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            "Slack interactivity is not configured (no signing_secret)".into(),
        ));
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    verify_slack_request(
        secret.expose().as_bytes(),
        &header("x-slack-request-timestamp"),
        &header("x-slack-signature"),
        &body,
        std::time::SystemTime::now(),
    )
    .map_err(|e| {
        warn!(event = "slack_signature_refused", error = %e, "Slack request refused");
        Failure(
            StatusCode::UNAUTHORIZED,
            format!("bad Slack signature: {e}"),
        )
    })?;
    let action = parse_slack_interaction(&body)
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, e.to_string()))?;
    let Some(reviewer) = slack.users.get(&action.slack_user) else {
        warn!(event = "slack_user_unknown", user = %action.slack_user, "Slack user is not a configured reviewer");
        return Ok(slack_reply(format!(
            "Your Slack user ({}) is not a sluice reviewer.",
            action.slack_user
        )));
    };
    let reason = match action.decision {
        Decision::Approve => "approved in Slack".to_string(),
        Decision::Deny => format!("denied in Slack by {}", reviewer.subject),
    };
    let text = match state.broker.decide(
        &action.request_id,
        reviewer,
        action.decision,
        Some(reason),
        None,
    ) {
        Ok(v) => format!("Request {} is now {}.", v.id, v.state.as_str()),
        Err(e) => format!("Could not record your decision: {e}"),
    };
    Ok(slack_reply(text))
}

/// An ephemeral answer to the clicking user (Slack shows the body of a 200 reply).
fn slack_reply(text: String) -> Response {
    Json(serde_json::json!({ "response_type": "ephemeral", "text": text })).into_response()
}
