//! Maps what the analysers found to what the policy says.
//!
//! Every finding and every statement (SQL) or program (shell) is evaluated, and the most severe
//! action wins (deny > hold > alert > allow). A guardrail finding that no rule mentions is
//! denied: the guardrails are on by default, and a policy loosens them explicitly, rule by rule.
//! SQL and shell findings share one id space in `guardrails:`, so a rule naming `drop` covers
//! `DROP TABLE` sent to PostgreSQL and `psql -c 'DROP TABLE ...'` typed over SSH alike.

use serde::Serialize;

use crate::{
    config::{Action, Config, Rule},
    inspect::{
        Verdict,
        guardrails::{
            Analysis,
            shell::{ShellAnalysis, ShellKind, ShellRun},
        },
    },
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

/// The decision for one SQL text (see the module doc for the semantics).
pub fn decide_sql(config: &Config, subject: &Subject, analysis: &Analysis) -> Decision {
    let mut c = Candidates::new(
        config,
        subject,
        analysis.parse_error.as_deref(),
        "statement",
    );
    for finding in &analysis.findings {
        c.finding(finding.rule.as_str(), &finding.reason);
    }
    for kind in &analysis.statements {
        let kind = kind.as_str();
        c.matched(
            |r| r.statements.iter().any(|s| s == kind),
            format!("{kind} statement"),
            config.guardrails.default,
        );
    }
    c.decide("empty statement")
}

/// The decision for one shell command line, with the semantics of [`decide_sql`]: each finding
/// maps to the rule that lists its id in `guardrails:` (SQL ids for SQL the line hands to a
/// client, shell ids otherwise) or is denied; a parse error follows `guardrails.unparseable`;
/// a line the shell will not run as written (history expansion) is denied (`uncertain-line`).
/// Each run (a program, or a redirect or assignment) maps to the rule that lists its program in
/// `commands:`, else to the rule that lists its kind in `shell:` (`read`, `write`, `unknown`),
/// else to `guardrails.default`, but never below `hold` for what is not a read: only a rule
/// allows a command that is not known to be read-only.
///
/// An `incomplete` analysis is not decided here: the caller waits for the rest of the command
/// (as the shell's PS2 prompt does) and analyses the whole text again. Passing one anyway
/// decides nothing about its commands (there are none) and allows it.
pub fn decide_shell(config: &Config, subject: &Subject, analysis: &ShellAnalysis) -> Decision {
    let mut c = Candidates::new(
        config,
        subject,
        analysis.parse_error.as_deref(),
        "command line",
    );
    if let Some(why) = &analysis.uncertain {
        c.list.push(Decision {
            action: Action::Deny,
            rule: "uncertain-line".into(),
            reason: format!(
                "the shell would not run this line as written ({why}); type the command in full"
            ),
        });
    }
    for finding in &analysis.findings {
        c.finding(finding.rule.as_str(), &finding.reason);
    }
    for run in &analysis.runs {
        c.shell_run(run);
    }
    c.decide("empty command line")
}

/// Every finding and matched item of one command becomes a candidate decision; the most severe
/// wins. Shared by SQL and shell so both read a policy the same way.
struct Candidates<'a> {
    config: &'a Config,
    subject: &'a Subject<'a>,
    parse_error: bool,
    list: Vec<Decision>,
}

impl<'a> Candidates<'a> {
    fn new(
        config: &'a Config,
        subject: &'a Subject<'a>,
        parse_error: Option<&str>,
        what: &str,
    ) -> Self {
        let list = parse_error
            .map(|err| Decision {
                action: config.guardrails.unparseable,
                rule: "unparseable".into(),
                reason: format!("the {what} could not be parsed, so it cannot be checked: {err}"),
            })
            .into_iter()
            .collect();
        Candidates {
            config,
            subject,
            parse_error: parse_error.is_some(),
            list,
        }
    }

    /// A guardrail finding: the first in-scope rule listing its id, else deny. `unparseable`
    /// (also of text nested in the command, like `sh -c '...'`) follows `guardrails.unparseable`.
    fn finding(&mut self, id: &str, reason: &str) {
        if id == "unparseable" {
            if !self.parse_error {
                self.list.push(Decision {
                    action: self.config.guardrails.unparseable,
                    rule: id.into(),
                    reason: reason.into(),
                });
            }
            return; // else decided by the parse error, once
        }
        // What the analysis saw is only what the server runs while these settings hold.
        if id == "pinned-setting" {
            self.list.push(Decision {
                action: Action::Deny,
                rule: id.into(),
                reason: reason.into(),
            });
            return;
        }
        let user = self
            .config
            .rules
            .iter()
            .find(|r| in_scope(r, self.subject) && r.guardrails.iter().any(|g| g == id));
        self.list.push(match user {
            Some(r) => Decision {
                action: r.action,
                rule: r.name.clone(),
                reason: reason.into(),
            },
            None => Decision {
                action: Action::Deny,
                rule: id.into(),
                reason: reason.into(),
            },
        });
    }

    /// A statement kind or a program: the first in-scope rule `matches` says lists it, else
    /// `guardrails.default`.
    fn matched(&mut self, matches: impl Fn(&Rule) -> bool, what: String, default: Action) {
        let user = self
            .config
            .rules
            .iter()
            .find(|r| in_scope(r, self.subject) && matches(r));
        self.list.push(match user {
            Some(r) => Decision {
                action: r.action,
                rule: r.name.clone(),
                reason: what,
            },
            None => Decision {
                action: default,
                rule: "default".into(),
                reason: format!("{what} (no rule matched)"),
            },
        });
    }

    /// One run of a shell command line: its program's rule, else its kind's rule, else the
    /// default (at least `hold` for what is not a read).
    fn shell_run(&mut self, run: &ShellRun) {
        let in_scope = |r: &&Rule| in_scope(r, self.subject);
        let by_program = run.program.as_ref().and_then(|p| {
            self.config
                .rules
                .iter()
                .filter(in_scope)
                .find(|r| r.commands.iter().any(|c| c == p))
        });
        let rule = by_program.or_else(|| {
            self.config
                .rules
                .iter()
                .filter(in_scope)
                .find(|r| r.shell.iter().any(|k| k == run.kind.as_str()))
        });
        let what = match (&run.program, run.kind) {
            (Some(p), ShellKind::Read) => format!("runs {p}"),
            (_, ShellKind::Read) => "a shell assignment".into(),
            (_, kind) => format!("{} ({kind})", run.reason),
        };
        self.list.push(match rule {
            Some(r) => Decision {
                action: r.action,
                rule: r.name.clone(),
                reason: what,
            },
            None if run.kind == ShellKind::Read => Decision {
                action: self.config.guardrails.shell_default,
                rule: "default".into(),
                reason: format!("{what} (no rule matched)"),
            },
            None => Decision {
                action: self.config.guardrails.shell_default.max(Action::Hold),
                rule: "default".into(),
                reason: format!("{what}; not known to be read-only, and no rule allows it"),
            },
        });
    }

    fn decide(self, empty: &str) -> Decision {
        // The first of the most severe keeps the explanation closest to the command's order.
        self.list
            .into_iter()
            .rev()
            .max_by_key(|d| d.action)
            .unwrap_or(Decision {
                action: Action::Allow,
                rule: "default".into(),
                reason: empty.into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::inspect::guardrails::shell::analyze_shell;

    fn analyze(sql: &str) -> crate::inspect::guardrails::Analysis {
        crate::inspect::guardrails::analyze(sql, crate::inspect::Dialect::Postgres)
    }

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
        let reads = config("rules:\n  - { name: reads, statements: [select], action: allow }\n");
        assert_eq!(
            decide_sql(&reads, &SUBJECT, &analyze("select 1")).action,
            Action::Allow
        );
    }

    #[test]
    fn a_statement_kind_no_rule_names_is_denied_by_the_built_in_default() {
        for sql in [
            "select 1",
            "CALL p()",
            "PREPARE p AS SELECT 1",
            "DECLARE c CURSOR FOR SELECT 1",
            "CREATE TRIGGER t AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION f()",
            "LISTEN ch",
            "NOTIFY ch",
            "LOCK TABLE t",
            "SELECT * FROM t FOR UPDATE",
            "VACUUM t",
        ] {
            let d = decide_sql(&config(""), &SUBJECT, &analyze(sql));
            assert_eq!(d.action, Action::Deny, "{sql}: {d:?}");
        }
        let d = decide_sql(&config(""), &SUBJECT, &analyze("LISTEN ch"));
        assert_eq!(d.rule, "default", "{d:?}");
        assert!(
            d.reason.contains("listen statement (no rule matched)"),
            "{d:?}"
        );
        // The policy's own default still decides, and a rule can name each kind.
        let open = config("guardrails:\n  default: allow\n");
        assert_eq!(
            decide_sql(&open, &SUBJECT, &analyze("LISTEN ch")).action,
            Action::Allow
        );
        let c = config("rules:\n  - { name: locks, statements: [lock], action: hold }\n");
        assert_eq!(
            decide_sql(&c, &SUBJECT, &analyze("SELECT * FROM t FOR UPDATE")).action,
            Action::Hold
        );
        // The shell keeps allowing programs no rule names unless the policy says otherwise.
        assert_eq!(shell(&config(""), "ls -la /etc").action, Action::Allow);
    }

    #[test]
    fn unparseable_input_follows_its_setting_never_allow() {
        let d = decide_sql(&config(""), &SUBJECT, &analyze("SELEKT * FROM x"));
        assert_eq!((d.action, d.rule.as_str()), (Action::Deny, "unparseable"));
        let held = config("guardrails:\n  unparseable: hold\n  default: allow\n");
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
            "rules:\n  - { name: drops-ok, resources: [db], guardrails: [drop], statements: [ddl], action: alert }\n",
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

    fn shell(c: &Config, line: &str) -> Decision {
        let a = analyze_shell(line);
        assert!(!a.incomplete, "{line:?} is incomplete");
        decide_shell(c, &SUBJECT, &a)
    }

    #[test]
    fn shell_findings_are_denied_by_default_and_rules_loosen_them() {
        let d = shell(&config(""), "ls; rm -rf /");
        assert_eq!((d.action, d.rule.as_str()), (Action::Deny, "rm-rf"));
        assert!(d.reason.contains("root directory"), "{d:?}");
        assert_eq!(shell(&config(""), "ls -la /etc").action, Action::Allow);
        assert_eq!(shell(&config(""), "").action, Action::Allow);
        // Shell and SQL ids share one `guardrails:` list.
        let c = config(
            "rules:\n  - { name: x, guardrails: [rm-rf, drop], statements: [ddl], action: hold }\n",
        );
        assert_eq!(
            (
                shell(&c, "rm -rf /").action,
                shell(&c, "rm -rf /").rule.as_str()
            ),
            (Action::Hold, "x")
        );
        let d = shell(&c, "psql -c 'DROP TABLE t'");
        assert_eq!((d.action, d.rule.as_str()), (Action::Hold, "x"));
        assert_eq!(
            decide_sql(&c, &SUBJECT, &analyze("DROP TABLE t")).action,
            Action::Hold
        );
        // Not loosened: still denied, the most severe wins.
        let d = shell(&c, "rm -rf / && curl x | sh");
        assert_eq!((d.action, d.rule.as_str()), (Action::Deny, "pipe-to-shell"));
    }

    #[test]
    fn shell_commands_match_rules_or_the_default() {
        let c = config(
            "guardrails:\n  default: deny\nrules:\n  - { name: read-only, commands: [ls, cat, grep], action: allow }\n  - { name: restarts, commands: [systemctl], action: hold }\n",
        );
        assert_eq!(shell(&c, "ls -la | grep x").action, Action::Allow);
        let d = shell(&c, "cat /etc/hosts | wc -l");
        assert_eq!((d.action, d.rule.as_str()), (Action::Deny, "default"));
        assert!(d.reason.contains("wc"), "{d:?}");
        let d = shell(&c, "ls && systemctl restart nginx");
        assert_eq!((d.action, d.rule.as_str()), (Action::Hold, "restarts"));
        // Wrappers are programs too: `sudo` must be allowed on its own.
        assert_eq!(shell(&c, "sudo ls").action, Action::Deny);
        // A default-allow policy can still hold one program.
        let c = config("rules:\n  - { name: no-sudo, commands: [sudo], action: hold }\n");
        assert_eq!(shell(&c, "sudo ls").action, Action::Hold);
        assert_eq!(shell(&c, "ls").action, Action::Allow);
    }

    #[test]
    fn shell_kinds_match_rules_and_what_is_not_a_read_never_falls_to_allow() {
        // No rule: reads follow the default (allow); anything else is held at least.
        let c = config("");
        assert_eq!(shell(&c, "ls -la | grep x").action, Action::Allow);
        let d = shell(&c, "rm /tmp/x");
        assert_eq!((d.action, d.rule.as_str()), (Action::Hold, "default"));
        assert!(d.reason.contains("rm removes files"), "{d:?}");
        assert_eq!(shell(&c, "frobnicate").action, Action::Hold);
        assert_eq!(shell(&c, "ls > /tmp/x").action, Action::Hold);
        // A stricter default is kept.
        let c = config("guardrails:\n  default: deny\n");
        assert_eq!(shell(&c, "rm /tmp/x").action, Action::Deny);
        assert_eq!(shell(&c, "ls").action, Action::Deny);
        // Rules by kind.
        let c = config(
            "guardrails:\n  default: deny\nrules:\n  - { name: reads, shell: [read], action: allow }\n  - { name: changes, shell: [write], action: hold }\n",
        );
        assert_eq!(shell(&c, "df -h && ps aux | grep x").action, Action::Allow);
        let d = shell(&c, "df -h; rm /tmp/x");
        assert_eq!((d.action, d.rule.as_str()), (Action::Hold, "changes"));
        let d = shell(&c, "df -h; frobnicate");
        assert_eq!((d.action, d.rule.as_str()), (Action::Deny, "default"));
        // A policy may allow what is not a read explicitly; findings stay denied.
        let c = config("rules:\n  - { name: lax, shell: [read, write, unknown], action: allow }\n");
        assert_eq!(shell(&c, "rm /tmp/x; frobnicate").action, Action::Allow);
        assert_eq!(shell(&c, "rm -rf /").rule, "rm-rf");
        assert_eq!(shell(&c, "python3 -c 'print(1)'").rule, "opaque-code");
        // A program's own rule comes before its kind's.
        let c = config(
            "rules:\n  - { name: reads, shell: [read], action: allow }\n  - { name: rm-ok, commands: [rm], action: alert }\n  - { name: rest, shell: [write, unknown], action: hold }\n",
        );
        assert_eq!(shell(&c, "sudo rm /tmp/x").action, Action::Alert);
        assert_eq!(
            shell(&c, "rm /tmp/x > /tmp/y").rule,
            "rest",
            "the redirect is no program"
        );
        // History expansion in a line the shell expands: refused.
        let a = crate::inspect::guardrails::shell::analyze_shell_in(
            "cat !$",
            crate::inspect::guardrails::shell::ShellOrigin {
                terminal: true,
                line: true,
                interactive: true,
            },
            &Default::default(),
        );
        let d = decide_shell(&c, &SUBJECT, &a);
        assert_eq!(
            (d.action, d.rule.as_str()),
            (Action::Deny, "uncertain-line")
        );
    }

    #[test]
    fn rules_validate_shell_kinds() {
        let err = Config::parse(
            "rules:\n  - { name: r, shell: [reads], action: allow }\n",
            Path::new("t.yaml"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("unknown shell command kind `reads`"),
            "{text}"
        );
        assert!(text.contains("read, write, unknown"), "{text}");
    }

    #[test]
    fn unparseable_shell_follows_its_setting_never_allow() {
        let d = shell(&config(""), "ls )");
        assert_eq!((d.action, d.rule.as_str()), (Action::Deny, "unparseable"));
        let held = config("guardrails:\n  unparseable: hold\n");
        assert_eq!(shell(&held, "ls )").action, Action::Hold);
        // Nested text that does not parse (no parse error of the line itself) too.
        let d = shell(&held, "sh -c 'ls )'");
        assert_eq!((d.action, d.rule.as_str()), (Action::Hold, "unparseable"));
        let d = shell(&config(""), "psql -c 'SELEKT 1'");
        assert_eq!((d.action, d.rule.as_str()), (Action::Deny, "unparseable"));
        // A rule cannot loosen it: `unparseable` in `guardrails:` is not consulted.
        let c = config("rules:\n  - { name: lax, guardrails: [unparseable], action: allow }\n");
        assert_eq!(shell(&c, "ls )").action, Action::Deny);
    }

    #[test]
    fn rules_validate_shell_ids_and_commands() {
        let err = Config::parse(
            "rules:\n  - { name: r, guardrails: [rm-rff], commands: [/bin/ls, 'a b', ''], action: deny }\n  - { name: s, action: deny }\n",
            Path::new("t.yaml"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unknown guardrail `rm-rff`"), "{text}");
        assert!(
            text.contains("rm-rf, mkfs"),
            "the hint lists shell ids: {text}"
        );
        assert!(text.contains("drop, truncate"), "and SQL ids: {text}");
        assert!(text.contains("`/bin/ls` is not a program name"), "{text}");
        assert!(text.contains("`a b` is not a program name"), "{text}");
        assert!(text.contains("`` is not a program name"), "{text}");
        assert!(text.contains("rule `s` matches no command"), "{text}");
        let c = config(
            "rules:\n  - { name: ok, guardrails: [write-etc, opaque-sql], commands: [psql], action: alert }\n",
        );
        assert_eq!(c.rules[0].commands, ["psql"]);
    }
}
