//! `sluice approvals ...`: the reviewers' command line, a client of the approval API (on the
//! gateway's unix socket by default; see [`transport`] for how it checks who answers).

mod transport;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sluice::services::approvals::model::{
    ApiError, ApprovalView, DecisionRequest, GrantRequest, GrantScope, GrantView,
};

#[derive(Args)]
pub struct ApprovalsArgs {
    /// The gateway's approval socket (default: $SLUICE_SOCKET, else the policy's
    /// `approvals.socket` with -c, else /run/sluice/approvals.sock). Checked before any token
    /// is sent: served by root or you, by the gateway holding its lease, outside every
    /// intercepted cgroup.
    #[arg(long, global = true, conflicts_with = "url")]
    socket: Option<PathBuf>,
    /// URL of the approval API instead of the socket (default: $SLUICE_URL): https for a
    /// remote gateway; a loopback http URL gets the same checks as the socket.
    #[arg(long, global = true)]
    url: Option<String>,
    /// Policy file: the gateway's socket, and the cgroups it intercepts.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Bearer token (default: $SLUICE_TOKEN).
    #[arg(long, global = true, conflicts_with = "token_file")]
    token: Option<String>,
    /// Read the bearer token from this file (refused if group or others can read it).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: ApprovalsCommand,
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// List requests (pending by default).
    List {
        /// pending, approved, denied, expired, abandoned, cancelled or all.
        #[arg(long, default_value = "pending")]
        state: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one request as JSON.
    Show { id: String },
    /// Approve a request.
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        /// Also allow the same requester this for a while (e.g. 1h) without a new request.
        #[arg(long)]
        grant: Option<String>,
        /// What the grant covers: statements of the same shape, or anything the rule holds.
        #[arg(long, value_enum, default_value_t = Scope::Fingerprint, requires = "grant")]
        scope: Scope,
    },
    /// Deny a request; the reason is shown to the agent.
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// List live just-in-time grants.
    Grants {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a grant.
    Revoke { id: String },
    /// Who the token signs in as.
    Whoami,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Scope {
    Fingerprint,
    Rule,
}

struct Client {
    transport: transport::Transport,
    token: String,
}

impl Client {
    fn new(args: &ApprovalsArgs) -> anyhow::Result<Client> {
        let token = match (&args.token, &args.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => sluice::files::read_secret_text(f)
                .context("--token-file")?
                .trim()
                .to_string(),
            (None, None) => std::env::var("SLUICE_TOKEN")
                .context("no token: pass --token, --token-file or set SLUICE_TOKEN")?,
        };
        let (endpoint, expected) = transport::resolve(
            args.socket.as_deref(),
            args.url.as_deref(),
            args.config.as_deref(),
        )?;
        Ok(Client {
            transport: transport::Transport::new(endpoint, expected)?,
            token,
        })
    }

    fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&DecisionRequest>,
    ) -> anyhow::Result<T> {
        let target = self.transport.describe(path);
        let body = body.map(serde_json::to_vec).transpose()?;
        let answer = self
            .transport
            .call(method, path, &self.token, body)
            .with_context(|| format!("calling {target}"))?;
        if !(200..300).contains(&answer.status) {
            let reason = serde_json::from_str::<ApiError>(&answer.body)
                .map(|e| e.error)
                .unwrap_or(answer.body);
            bail!("{} {}: {reason}", answer.status, answer.reason);
        }
        serde_json::from_str(&answer.body)
            .with_context(|| format!("unexpected answer from {target}"))
    }
}

fn print_table(views: &[ApprovalView]) {
    println!(
        "{:<16}  {:<9}  {:<20}  {:<16}  {:<20}  {:<24}  COMMAND",
        "ID", "STATE", "CREATED", "RESOURCE", "RULE", "REQUESTER"
    );
    for v in views {
        let requester = v
            .requester
            .subject
            .clone()
            .unwrap_or_else(|| format!("{}/uid:{}", v.requester.target, v.requester.uid));
        let command: String = v.command.split_whitespace().collect::<Vec<_>>().join(" ");
        let command = if command.chars().count() > 60 {
            format!("{}…", command.chars().take(59).collect::<String>())
        } else {
            command
        };
        println!(
            "{:<16}  {:<9}  {:<20}  {:<16}  {:<20}  {:<24}  {command}",
            v.id,
            v.state.as_str(),
            v.created_at,
            v.resource,
            v.rule,
            requester
        );
    }
}

pub fn run(args: ApprovalsArgs) -> anyhow::Result<i32> {
    let client = Client::new(&args)?;
    match &args.command {
        ApprovalsCommand::List { state, json } => {
            let views: Vec<ApprovalView> =
                client.call("GET", &format!("/api/v1/approvals?state={state}"), None)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                print_table(&views);
            }
        }
        ApprovalsCommand::Show { id } => {
            let v: ApprovalView = client.call("GET", &format!("/api/v1/approvals/{id}"), None)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        ApprovalsCommand::Approve {
            id,
            reason,
            grant,
            scope,
        } => {
            let body = DecisionRequest {
                reason: reason.clone(),
                grant: grant.as_ref().map(|d| GrantRequest {
                    duration: d.clone(),
                    scope: match scope {
                        Scope::Fingerprint => GrantScope::Fingerprint,
                        Scope::Rule => GrantScope::Rule,
                    },
                }),
            };
            let v: ApprovalView = client.call(
                "POST",
                &format!("/api/v1/approvals/{id}/approve"),
                Some(&body),
            )?;
            let approvals = v
                .votes
                .iter()
                .filter(|x| x.decision == sluice::services::approvals::model::Decision::Approve)
                .count();
            println!(
                "{}: {} ({approvals} of {} approvals){}",
                v.id,
                v.state.as_str(),
                v.required,
                v.grant.map(|g| format!(", grant {g}")).unwrap_or_default()
            );
        }
        ApprovalsCommand::Deny { id, reason } => {
            let body = DecisionRequest {
                reason: Some(reason.clone()),
                grant: None,
            };
            let v: ApprovalView =
                client.call("POST", &format!("/api/v1/approvals/{id}/deny"), Some(&body))?;
            println!("{}: {}", v.id, v.state.as_str());
        }
        ApprovalsCommand::Grants { json } => {
            let grants: Vec<GrantView> = client.call("GET", "/api/v1/grants", None)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&grants)?);
            } else {
                println!(
                    "{:<16}  {:<24}  {:<16}  {:<11}  {:<20}  {:<8}  PATTERN",
                    "ID", "IDENTITY", "RESOURCE", "SCOPE", "EXPIRES", "USES"
                );
                for g in grants {
                    let scope = match g.scope {
                        GrantScope::Fingerprint => "fingerprint",
                        GrantScope::Rule => "rule",
                    };
                    let state = if g.revoked_by.is_some() {
                        " (revoked)"
                    } else {
                        ""
                    };
                    println!(
                        "{:<16}  {:<24}  {:<16}  {:<11}  {:<20}  {:<8}  {}{state}",
                        g.id, g.identity, g.resource, scope, g.expires_at, g.uses, g.pattern
                    );
                }
            }
        }
        ApprovalsCommand::Revoke { id } => {
            let g: GrantView = client.call("DELETE", &format!("/api/v1/grants/{id}"), None)?;
            println!("{}: revoked", g.id);
        }
        ApprovalsCommand::Whoami => {
            let v: serde_json::Value = client.call("GET", "/api/v1/whoami", None)?;
            println!("{}", serde_json::to_string(&v)?);
        }
    }
    Ok(0)
}
