//! `rules:`, `guardrails:` and `alerts:`: what matches a command, and what happens then.

use std::collections::HashSet;

use super::{
    Action, ApprovalPolicy,
    diag::Report,
    raw::{RawAlerts, RawGuardrails, RawRule},
    valid_name,
};

/// A policy rule: every matcher present must match.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub resources: Vec<String>,
    pub targets: Vec<String>,
    /// Guardrail findings (rule ids such as `drop`, `delete-without-where`).
    pub guardrails: Vec<String>,
    /// Statement kinds (`select`, `insert`, `update`, ...).
    pub statements: Vec<String>,
    /// Programs of a shell command line (`ls`, `cat`, `psql`; basenames, wrappers included).
    pub commands: Vec<String>,
    /// Kinds of shell commands (`read`, `write`, `unknown`): what is not on the read-only list.
    pub shell: Vec<String>,
    pub action: Action,
    /// Who approves what this rule holds (else `approvals.default`).
    pub approval: Option<ApprovalPolicy>,
}

#[derive(Clone, Debug)]
pub struct GuardrailSettings {
    /// For input that does not parse: deny or hold, never allow.
    pub unparseable: Action,
    /// For SQL statement kinds no rule names (built-in: deny).
    pub default: Action,
    /// For shell runs no rule names that are known to be read-only: `guardrails.default` when
    /// the policy sets it, else allow. Any other run is held at least (see `decide_shell`).
    pub shell_default: Action,
}

impl Default for GuardrailSettings {
    fn default() -> Self {
        GuardrailSettings {
            unparseable: Action::Deny,
            // A statement kind no rule names is something nobody decided to allow.
            default: Action::Deny,
            shell_default: Action::Allow,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Alerts {
    /// POSTed a JSON document for every refused command and every `alert` rule match.
    pub webhook: Option<String>,
}

/// The rules; `resource_names` and `target_names` are what they may refer to.
pub(super) fn validate(
    raw: &[RawRule],
    resource_names: &HashSet<String>,
    target_names: &HashSet<String>,
    report: &mut Report,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut rule_names = HashSet::new();
    for r in raw {
        if !valid_name(&r.name.value) {
            report.error(
                &r.name,
                format!("rule name `{}` is not valid", r.name.value),
                Some("use 1-64 letters, digits, '-', '_' or '.'"),
            );
        } else if !rule_names.insert(r.name.value.clone()) {
            report.error(
                &r.name,
                format!("rule `{}` is defined twice", r.name.value),
                None,
            );
        }
        for res in &r.resources {
            if !resource_names.contains(&res.value) {
                report.error(
                    res,
                    format!("rule refers to unknown resource `{}`", res.value),
                    None,
                );
            }
        }
        for t in &r.targets {
            if !target_names.contains(&t.value) {
                report.error(
                    t,
                    format!("rule refers to unknown target `{}`", t.value),
                    None,
                );
            }
        }
        for g in &r.guardrails {
            if g.value == "pinned-setting" {
                report.error(
                        g,
                        "`pinned-setting` cannot be loosened: the guardrails read SQL as the pinned settings say",
                        Some("remove it from `guardrails:`; changes of pinned settings are always refused"),
                    );
            } else if !crate::inspect::guardrails::is_rule_id(&g.value) {
                let hint = format!(
                    "one of: {}",
                    crate::inspect::guardrails::all_rule_ids()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                report.error(g, format!("unknown guardrail `{}`", g.value), Some(&hint));
            }
        }
        for c in &r.commands {
            // Matched against basenames, so a path or a blank could never match.
            if c.value.is_empty() || c.value.contains('/') || c.value.contains(char::is_whitespace)
            {
                report.error(
                    c,
                    format!("`{}` is not a program name", c.value),
                    Some("give the program's name alone, e.g. `ls` (not `/bin/ls`)"),
                );
            }
        }
        for k in &r.statements {
            if !crate::inspect::guardrails::STATEMENT_KINDS.contains(&k.value.as_str()) {
                let hint = format!(
                    "one of: {}",
                    crate::inspect::guardrails::STATEMENT_KINDS.join(", ")
                );
                report.error(
                    k,
                    format!("unknown statement kind `{}`", k.value),
                    Some(&hint),
                );
            }
        }
        for k in &r.shell {
            if !crate::inspect::guardrails::shell::SHELL_KINDS.contains(&k.value.as_str()) {
                let hint = format!(
                    "one of: {}",
                    crate::inspect::guardrails::shell::SHELL_KINDS.join(", ")
                );
                report.error(
                    k,
                    format!("unknown shell command kind `{}`", k.value),
                    Some(&hint),
                );
            }
        }
        if r.guardrails.is_empty()
            && r.statements.is_empty()
            && r.commands.is_empty()
            && r.shell.is_empty()
        {
            report.error(
                    &r.name,
                    format!("rule `{}` matches no command", r.name.value),
                    Some(
                        "give `guardrails:` (findings), `statements:` (SQL kinds), `commands:` (shell programs) and/or `shell:` (read, write, unknown)",
                    ),
                );
        }
        rules.push(Rule {
            name: r.name.value.clone(),
            resources: r.resources.iter().map(|x| x.value.clone()).collect(),
            targets: r.targets.iter().map(|x| x.value.clone()).collect(),
            guardrails: r.guardrails.iter().map(|x| x.value.clone()).collect(),
            statements: r.statements.iter().map(|x| x.value.clone()).collect(),
            commands: r.commands.iter().map(|x| x.value.clone()).collect(),
            shell: r.shell.iter().map(|x| x.value.clone()).collect(),
            action: r.action.value,
            approval: r.approval.as_ref().map(|a| {
                if r.action.value != Action::Hold {
                    report.error(
                        &r.action,
                        "`approval` only applies to rules with `action: hold`",
                        None,
                    );
                }
                a.validate(report)
            }),
        });
    }
    rules
}

pub(super) fn guardrails(raw: Option<&RawGuardrails>, report: &mut Report) -> GuardrailSettings {
    let mut guardrails = GuardrailSettings::default();
    if let Some(g) = raw {
        if let Some(u) = &g.unparseable {
            if matches!(u.value, Action::Allow | Action::Alert) {
                report.error(
                    u,
                    "unparseable statements cannot be allowed",
                    Some("use deny or hold"),
                );
            } else {
                guardrails.unparseable = u.value;
            }
        }
        if let Some(d) = &g.default {
            guardrails.default = d.value;
            guardrails.shell_default = d.value;
        }
    }
    guardrails
}

pub(super) fn alerts(raw: Option<&RawAlerts>, report: &mut Report) -> Alerts {
    Alerts {
        webhook: raw.and_then(|a| a.webhook.as_ref()).and_then(|w| {
            if w.value.starts_with("http://") || w.value.starts_with("https://") {
                Some(w.value.clone())
            } else {
                report.error(
                    w,
                    "the alert webhook must be an http:// or https:// URL",
                    None,
                );
                None
            }
        }),
    }
}
