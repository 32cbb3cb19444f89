//! The one door through which every protocol reaches policy, approvals, audit and identity.
//!
//! A protocol keeps its framing, its state machine and how it answers a refusal in its own
//! shape; everything else about a command happens here, once:
//!
//! - [`verify_agent`]: the agent's OIDC token, for resources with `agent_auth: oidc`;
//! - [`Gate::open`] / [`Gate::close`]: the session's audit records (start, end);
//! - [`Gate::admit`]: a decided command is reported (log, alert) and recorded durably before
//!   anything is forwarded; a command that cannot be recorded is refused (fail closed);
//! - [`Gate::hold`] (in `hold.rs`): a held command waits for reviewers (grant lookup, request,
//!   wait, cancel, timeout) and is released only for the exact bytes they approved;
//! - [`Gate::masker`]: the masking engine in force for a response.

mod hold;
mod report;

pub use hold::{HoldSpec, Refusal, RefusedBy};
pub use report::{masked_by, masked_text};

use std::sync::Arc;

use tracing::{error, info, warn};

use crate::{
    config::{AgentAuth, Credentials},
    conn::ConnCtx,
    inspect::{
        Dialect, Verdict,
        masking::MaskingEngine,
        policy::{Decision, Subject},
    },
    services::{
        Services,
        audit::{
            Unavailable,
            record::{IdentityRecord, ResultRecord},
            session::{Decided, SessionAudit},
        },
    },
};

/// A command as the policy and the approval flow see it.
#[derive(Clone, Copy, Debug)]
pub enum Command<'a> {
    /// A SQL text (a query, a prepared statement, a re-execution).
    Sql { text: &'a str, dialect: Dialect },
    /// A shell command line (an exec request, a line typed in a terminal).
    Shell { line: &'a str },
    /// Something a session does that is not a command text: a port forward, a subsystem, a
    /// fast-path call. `kind` names it in the audit log and in grants.
    Session { kind: &'static str, text: &'a str },
}

impl Command<'_> {
    pub fn text(&self) -> &str {
        match self {
            Command::Sql { text, .. } => text,
            Command::Shell { line } => line,
            Command::Session { text, .. } => text,
        }
    }

    /// What a just-in-time grant covers: a SQL statement's shape (literals blanked), or the
    /// exact text of anything else (a shell line has no literal-insensitive shape).
    pub fn fingerprint(&self) -> String {
        use crate::{services::approvals::fingerprint::sql_fingerprint, util::sha256_hex};
        match self {
            Command::Sql { text, dialect } => sql_fingerprint(text, *dialect),
            Command::Shell { line } => format!("ssh:{}", sha256_hex(line.as_bytes())),
            Command::Session { kind, text } => format!("{kind}:{}", sha256_hex(text.as_bytes())),
        }
    }
}

/// Verifies the agent's token when the resource asks for one (`agent_auth: oidc`): `Ok(None)`
/// when it does not, `Ok(Some(subject))` when the token is valid, `Err` with the reason (for
/// the agent, in the protocol's own refusal) otherwise.
pub async fn verify_agent(
    ctx: &ConnCtx,
    services: &Services,
    token: Option<&str>,
) -> Result<Option<String>, String> {
    if ctx.resource.agent_auth == AgentAuth::None {
        return Ok(None);
    }
    let verified = match (&services.agent_tokens, token) {
        (None, _) => Err("no OIDC issuer is configured".to_string()),
        (Some(_), None) => Err("no token was presented".to_string()),
        (Some(v), Some(t)) => v.verify(t).await.map_err(|e| e.to_string()),
    };
    match verified {
        Ok(id) => {
            info!(event = "agent_authenticated", conn_id = ctx.id, subject = %id.subject, "agent token verified");
            Ok(Some(id.subject))
        }
        Err(e) => {
            warn!(event = "agent_auth_refused", conn_id = ctx.id, error = %e, "agent token refused");
            Err(e)
        }
    }
}

/// One agent session's door. Shared by the session's tasks (`Arc<Gate>` for SSH channels).
pub struct Gate {
    pub ctx: ConnCtx,
    pub services: Arc<Services>,
    /// The agent's OIDC subject, when it presented a token.
    pub subject: Option<String>,
    /// Shared with the session's recorders (SSH channels' streams).
    pub audit: Arc<SessionAudit>,
}

impl Gate {
    /// Starts the session's audit record (`protocol` names it; `user` is who the agent said it
    /// is to the protocol).
    pub fn open(
        ctx: &ConnCtx,
        services: &Arc<Services>,
        protocol: &str,
        user: &str,
        subject: Option<String>,
    ) -> Gate {
        let audit = SessionAudit::start(
            services.audit.clone(),
            ctx,
            protocol,
            IdentityRecord {
                user: user.to_string(),
                subject: subject.clone(),
            },
            match ctx.resource.credentials {
                Credentials::Inject { .. } => "inject",
                Credentials::Passthrough => "passthrough",
            },
        );
        Gate {
            ctx: ctx.clone(),
            services: services.clone(),
            subject,
            audit: Arc::new(audit),
        }
    }

    /// The session's end record: bytes each way and the error that ended it, if any.
    pub fn close(&self, to_upstream: u64, to_client: u64, error: Option<String>) {
        self.audit.end(to_upstream, to_client, error);
    }

    /// Who the policy's rules are matched against.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            target: &self.ctx.target,
            resource: &self.ctx.resource.name,
        }
    }

    /// The masking engine in force now (responses take it at each result set).
    pub fn masker(&self) -> Arc<MaskingEngine> {
        self.services.masker()
    }

    /// A decided command: reported (log, alert) and recorded durably. Returns the verdict to
    /// enforce (a command that cannot be recorded is refused with rule `audit`) and its number
    /// in the audit session. `label` names the command's form in the log (`simple`, `exec`,
    /// `ssh-forward`...); `decide_us` is how long deciding took.
    pub async fn admit(
        &self,
        label: &str,
        command: &Command<'_>,
        decision: &Decision,
        decide_us: u64,
    ) -> (Verdict, u64) {
        report::report(
            &self.ctx,
            &self.services,
            label,
            command.text(),
            decision,
            decide_us,
        );
        let action = decision.action.to_string();
        let decided = Decided {
            action: &action,
            rule: &decision.rule,
            reason: &decision.reason,
        };
        match self.record(label, command, decided).await {
            Ok(n) => (decision.verdict(), n),
            Err(e) => (
                Verdict::Deny {
                    rule: "audit".into(),
                    reason: e.to_string(),
                },
                0,
            ),
        }
    }

    /// Records a command durably without reporting it (a prepared statement executed again is
    /// logged where it was decided). `Err`: it could not be recorded, so it must not run.
    pub async fn record(
        &self,
        label: &str,
        command: &Command<'_>,
        decided: Decided<'_>,
    ) -> Result<u64, Unavailable> {
        let text = command.text();
        let recorded = self
            .audit
            .command(label, text, || masked_text(&self.services, text), decided)
            .await;
        if let Err(e) = &recorded {
            error!(event = "audit_refused", conn_id = self.ctx.id, error = %e,
                   "command refused: it could not be recorded");
        }
        recorded
    }

    /// What a batch of commands returned, for the audit log.
    pub fn result(&self, result: &ResultRecord) {
        self.audit.result(result);
    }
}
