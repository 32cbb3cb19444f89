//! Maps what the analysers found to what the policy says.
//!
//! Every finding and every statement is evaluated, and the most severe action wins
//! (deny > hold > alert > allow). A guardrail finding that no rule mentions is denied: the
//! guardrails are on by default, and a policy loosens them explicitly, rule by rule.

use serde::Serialize;

use crate::{
    config::{Action, Config, Rule},
    inspect::{Verdict, guardrails::Analysis},
};

/// Who is asking, for rule scoping.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub target: &'a str,
    pub resource: &'a str,
}

/// The outcome for one command, as `sluice policy test` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub action: Action,
    pub rule: String,
    pub reason: String,
}

impl Decision {
    /// The verdict a protocol session enforces (`alert` is an allow that also alerts).
    pub fn verdict(&self) -> Verdict {
        match self.action {
            Action::Allow | Action::Alert => Verdict::Allow,
            Action::Hold => Verdict::Hold {
                rule: self.rule.clone(),
                reason: self.reason.clone(),
            },
            Action::Deny => Verdict::Deny {
                rule: self.rule.clone(),
                reason: self.reason.clone(),
            },
        }
    }

    pub fn alerts(&self) -> bool {
        matches!(self.action, Action::Alert | Action::Deny | Action::Hold)
    }
}

fn in_scope(rule: &Rule, subject: &Subject) -> bool {
    (rule.resources.is_empty() || rule.resources.iter().any(|r| r == subject.resource))
        && (rule.targets.is_empty() || rule.targets.iter().any(|t| t == subject.target))
}

pub fn decide_sql(config: &Config, subject: &Subject, analysis: &Analysis) -> Decision {
    let mut candidates: Vec<Decision> = Vec::new();
    if let Some(err) = &analysis.parse_error {
        candidates.push(Decision {
            action: config.guardrails.unparseable,
            rule: "unparseable".into(),
            reason: format!("the statement could not be parsed, so it cannot be checked: {err}"),
        });
    }
    for finding in &analysis.findings {
        let id = finding.rule.to_string();
        if id == "unparseable" {
            continue; // decided above, by `guardrails.unparseable`
        }
        let user = config
            .rules
            .iter()
            .find(|r| in_scope(r, subject) && r.guardrails.contains(&id));
        candidates.push(match user {
            Some(r) => Decision {
                action: r.action,
                rule: r.name.clone(),
                reason: finding.reason.clone(),
            },
            None => Decision {
                action: Action::Deny,
                rule: id,
                reason: finding.reason.clone(),
            },
        });
    }
    for kind in &analysis.statements {
        let kind = kind.to_string();
        let user = config
            .rules
            .iter()
            .find(|r| in_scope(r, subject) && r.statements.contains(&kind));
        candidates.push(match user {
            Some(r) => Decision {
                action: r.action,
                rule: r.name.clone(),
                reason: format!("{kind} statement"),
            },
            None => Decision {
                action: config.guardrails.default,
                rule: "default".into(),
                reason: format!("{kind} statement (no rule matched)"),
            },
        });
    }
    // The first of the most severe keeps the explanation closest to the statement's order.
    candidates
        .into_iter()
        .rev()
        .max_by_key(|d| d.action)
        .unwrap_or(Decision {
            action: Action::Allow,
            rule: "default".into(),
            reason: "empty statement".into(),
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::inspect::guardrails::analyze;

    fn config(rules: &str) -> Config {
        let text = format!(
            "targets:\n  - {{ name: agents, egress: deny }}\nresources:\n  - {{ name: db, protocol: postgres, match: [{{ address: 10.0.0.5, port: 5432 }}] }}\n{rules}"
        );
        Config::parse(&text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}"))
    }

    const SUBJECT: Subject = Subject {
        target: "agents",
        resource: "db",
    };

    #[test]
    fn guardrail_findings_are_denied_by_default() {
        let d = decide_sql(
            &config(""),
            &SUBJECT,
            &analyze("SELECT 1; DROP TABLE customers"),
        );
        assert_eq!(d.action, Action::Deny);
        assert_eq!(d.rule, "drop");
        assert!(d.reason.contains("customers"), "{d:?}");
        assert_eq!(
            decide_sql(&config(""), &SUBJECT, &analyze("select 1")).action,
            Action::Allow
        );
    }

    #[test]
    fn unparseable_input_follows_its_setting_never_allow() {
        let d = decide_sql(&config(""), &SUBJECT, &analyze("SELEKT * FROM x"));
        assert_eq!((d.action, d.rule.as_str()), (Action::Deny, "unparseable"));
        let held = config("guardrails:\n  unparseable: hold\n");
        assert_eq!(
            decide_sql(&held, &SUBJECT, &analyze("SELEKT 1")).action,
            Action::Hold
        );
        let err =
            Config::parse("guardrails:\n  unparseable: allow\n", Path::new("t.yaml")).unwrap_err();
        assert!(err.to_string().contains("cannot be allowed"), "{err}");
    }

    #[test]
    fn the_most_severe_matching_rule_wins() {
        let c = config(
            "rules:\n  - { name: reads, statements: [select], action: allow }\n  - { name: writes, statements: [insert, update, delete], action: hold }\n",
        );
        let d = decide_sql(&c, &SUBJECT, &analyze("SELECT 1; INSERT INTO t VALUES (1)"));
        assert_eq!((d.action, d.rule.as_str()), (Action::Hold, "writes"));
        // A rule may loosen a guardrail explicitly, and only in its scope.
        let c = config(
            "rules:\n  - { name: drops-ok, resources: [db], guardrails: [drop], action: alert }\n",
        );
        assert_eq!(
            decide_sql(&c, &SUBJECT, &analyze("DROP TABLE t")).action,
            Action::Alert
        );
        let other = Subject {
            target: "agents",
            resource: "elsewhere",
        };
        assert_eq!(
            decide_sql(&c, &other, &analyze("DROP TABLE t")).action,
            Action::Deny
        );
    }

    #[test]
    fn rules_are_validated_against_known_ids() {
        let err = Config::parse(
            "rules:\n  - { name: r, guardrails: [dorp], statements: [selekt], resources: [nope], action: deny }\n",
            Path::new("t.yaml"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unknown guardrail `dorp`"), "{text}");
        assert!(text.contains("unknown statement kind `selekt`"), "{text}");
        assert!(text.contains("unknown resource `nope`"), "{text}");
    }
}
