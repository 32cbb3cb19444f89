//! `sluice approvals ...`: the reviewers' command line, a client of the approval HTTP API.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sluice::services::approvals::model::{
    ApiError, ApprovalView, DecisionRequest, GrantRequest, GrantScope, GrantView,
};

#[derive(Args)]
pub struct ApprovalsArgs {
    /// Base URL of the approval API (default: $SLUICE_URL, else the policy's
    /// `approvals.listen`, else http://127.0.0.1:7070).
    #[arg(long, global = true)]
    url: Option<String>,
    /// Policy file to read the API address from.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Bearer token (default: $SLUICE_TOKEN).
    #[arg(long, global = true, conflicts_with = "token_file")]
    token: Option<String>,
    /// Read the bearer token from this file.
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
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(args: &ApprovalsArgs) -> anyhow::Result<Client> {
        let base = match (&args.url, std::env::var("SLUICE_URL").ok(), &args.config) {
            (Some(u), _, _) => u.clone(),
            (None, Some(u), _) => u,
            (None, None, Some(c)) => {
                let config = sluice::config::Config::load(c)?;
                let a = config
                    .approvals
                    .context("the policy has no `approvals:` section")?;
                format!("http://{}", a.listen)
            }
            (None, None, None) => "http://127.0.0.1:7070".into(),
        };
        let token = match (&args.token, &args.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .with_context(|| format!("reading {}", f.display()))?
                .trim()
                .to_string(),
            (None, None) => std::env::var("SLUICE_TOKEN")
                .context("no token: pass --token, --token-file or set SLUICE_TOKEN")?,
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            // API errors carry a JSON reason worth showing.
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
        })
    }

    fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&DecisionRequest>,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("authorization", &auth).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("authorization", &auth)
                .call(),
            (_, Some(b)) => self
                .agent
                .post(&url)
                .header("authorization", &auth)
                .send_json(b),
            (_, None) => self
                .agent
                .post(&url)
                .header("authorization", &auth)
                .send_empty(),
        };
        let mut resp = result.with_context(|| format!("calling {url}"))?;
        let status = resp.status();
        let text = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading the answer of {url}"))?;
        if !status.is_success() {
            let reason = serde_json::from_str::<ApiError>(&text)
                .map(|e| e.error)
                .unwrap_or(text);
            bail!(
                "{} {}: {reason}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
        }
        serde_json::from_str(&text).with_context(|| format!("unexpected answer from {url}"))
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
