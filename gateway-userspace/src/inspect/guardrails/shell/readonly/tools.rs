//! Tools with subcommands: git, kubectl, helm, docker and other container runtimes.

use super::{
    Check::Custom, Ctx, Entry, Found, Opts, Verdict, find_option, nth, operands, subcommand,
};
use crate::inspect::guardrails::shell::{
    cluster::{HELM_LONG_VALUE, HELM_SHORT_VALUE, KUBECTL_LONG_VALUE, KUBECTL_SHORT_VALUE},
    walk::shown,
    words::Arg,
};

pub(super) const ENTRIES: &[Entry] = &[
    Entry {
        names: &["git"],
        check: Custom(git),
    },
    Entry {
        names: &["kubectl", "oc", "kubecolor"],
        check: Custom(kubectl),
    },
    Entry {
        names: &["helm"],
        check: Custom(helm),
    },
    Entry {
        names: &["docker", "podman", "nerdctl", "crictl"],
        check: Custom(containers),
    },
];

pub(super) fn unknown_word(program: &str, a: &str) -> Verdict {
    Verdict::Unknown(format!(
        "{program} is given {}, only known at run time",
        shown(a)
    ))
}

/// git: the read-only subcommands, in their listing forms. Global `-c` (configuration such as
/// `core.pager` or `alias.x=!cmd` runs commands), `--exec-path` and `--config-env` are not.
fn git(_: &Ctx, args: &[Arg]) -> Verdict {
    for a in args {
        match a.exact() {
            Some(t)
                if t == "-c" || t.starts_with("--exec-path") || t.starts_with("--config-env") =>
            {
                return Verdict::Unknown(format!(
                    "git {t} sets configuration that can run commands"
                ));
            }
            Some(_) => {}
            None if a.may_be_option() => return unknown_word("git", &a.text),
            None => {}
        }
        if !a.is_option() {
            break;
        }
    }
    let (sub, dynamic) = subcommand(
        args,
        "C",
        &[
            "git-dir",
            "work-tree",
            "namespace",
            "super-prefix",
            "list-cmds",
        ],
    );
    if let Some(d) = dynamic {
        return unknown_word("git", &d);
    }
    let Some(cmd) = nth(&sub, 0) else {
        return Verdict::Read; // usage
    };
    let rest = &sub[1..];
    let rest_args: Vec<Arg> = rest.iter().map(|a| (*a).clone()).collect();
    // Options of read-only subcommands that write a file or run a program.
    let risky = Opts {
        short: "O",
        long: &[
            "output",
            "ext-diff",
            "textconv",
            "open-files-in-pager",
            "exec",
            "upload-pack",
        ],
        short_arg: "",
        long_arg: &[],
        why: "",
    };
    match find_option(&rest_args, &risky) {
        Found::Option(o) => {
            return Verdict::Unknown(format!("git {cmd} {o} writes a file or runs a program"));
        }
        Found::Unknown(a) => return unknown_word("git", &a),
        Found::None => {}
    }
    let ops: Vec<&Arg> = operands(&rest_args, "", &[]).into_iter().collect();
    let flags: Vec<&str> = rest
        .iter()
        .filter_map(|a| a.exact())
        .filter(|t| t.starts_with('-'))
        .collect();
    let any_flag = |set: &[&str]| {
        flags.iter().any(|f| {
            set.iter()
                .any(|s| f == s || f.starts_with(&format!("{s}=")))
        })
    };
    let read = match cmd {
        "log" | "show" | "status" | "diff" | "blame" | "annotate" | "rev-parse" | "rev-list"
        | "ls-files" | "ls-tree" | "ls-remote" | "cat-file" | "describe" | "shortlog" | "grep"
        | "whatchanged" | "version" | "count-objects" | "for-each-ref" | "merge-base"
        | "name-rev" | "show-ref" | "show-branch" | "var" | "check-ignore" | "check-attr"
        | "cherry" | "range-diff" | "diff-tree" | "diff-files" | "diff-index" | "help"
        | "verify-commit" | "verify-tag" => true,
        "branch" => {
            !any_flag(&[
                "-d",
                "-D",
                "--delete",
                "-m",
                "-M",
                "--move",
                "-c",
                "-C",
                "--copy",
                "-u",
                "--set-upstream-to",
                "--unset-upstream",
                "--edit-description",
                "-f",
                "--force",
            ]) && (ops.is_empty()
                || any_flag(&[
                    "-l",
                    "--list",
                    "--contains",
                    "--no-contains",
                    "--merged",
                    "--no-merged",
                    "--points-at",
                ]))
        }
        "tag" => {
            !any_flag(&[
                "-d", "--delete", "-a", "-s", "-u", "-f", "--force", "-m", "-F",
            ]) && (ops.is_empty()
                || any_flag(&[
                    "-l",
                    "--list",
                    "--contains",
                    "--no-contains",
                    "--points-at",
                    "--merged",
                    "--no-merged",
                    "-n",
                ]))
        }
        "remote" => ops.is_empty() || matches!(nth(&ops, 0), Some("show" | "get-url")),
        "stash" => matches!(nth(&ops, 0), Some("list" | "show")),
        "worktree" => nth(&ops, 0) == Some("list"),
        "reflog" => ops.is_empty() || nth(&ops, 0) == Some("show"),
        "config" => {
            any_flag(&[
                "-l",
                "--list",
                "--get",
                "--get-all",
                "--get-regexp",
                "--get-urlmatch",
                "--get-color",
                "--get-colorbool",
                "--show-origin",
                "--show-scope",
            ]) && !any_flag(&[
                "--add",
                "--unset",
                "--unset-all",
                "--replace-all",
                "--rename-section",
                "--remove-section",
                "-e",
                "--edit",
            ]) || matches!(nth(&ops, 0), Some("list" | "get"))
        }
        "submodule" => matches!(nth(&ops, 0), None | Some("status" | "summary")),
        "fsck" => !any_flag(&["--lost-found"]),
        _ => false,
    };
    if read {
        Verdict::Read
    } else {
        Verdict::Write(format!(
            "git {cmd} in this form changes the repository or runs commands"
        ))
    }
}

fn kubectl(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let (sub, dynamic) = subcommand(args, KUBECTL_SHORT_VALUE, KUBECTL_LONG_VALUE);
    if let Some(d) = dynamic {
        return unknown_word(ctx.program, &d);
    }
    let Some(cmd) = nth(&sub, 0) else {
        return Verdict::Read;
    };
    let rest: Vec<Arg> = sub[1..].iter().map(|a| (*a).clone()).collect();
    let ops = operands(
        &rest,
        "nlocfLp",
        &[
            "namespace",
            "selector",
            "output",
            "container",
            "filename",
            "label-columns",
            "field-selector",
            "sort-by",
            "template",
            "since",
            "since-time",
            "tail",
            "raw",
        ],
    );
    let first = nth(&ops, 0);
    let read = match cmd {
        "get" | "describe" | "logs" | "top" | "explain" | "version" | "api-resources"
        | "api-versions" | "events" | "wait" => true,
        "cluster-info" => !rest.iter().any(|a| {
            a.exact()
                .is_some_and(|t| t.starts_with("--output-directory"))
        }),
        "config" => matches!(
            first,
            Some("view" | "get-contexts" | "current-context" | "get-clusters" | "get-users")
        ),
        "auth" => matches!(first, Some("can-i" | "whoami")),
        "rollout" => matches!(first, Some("status" | "history")),
        "certificate" | "plugin" => first == Some("list"),
        _ => false,
    };
    if read {
        Verdict::Read
    } else {
        Verdict::Write(format!(
            "{} {cmd} changes the cluster or runs commands in it",
            ctx.program
        ))
    }
}

fn helm(_: &Ctx, args: &[Arg]) -> Verdict {
    let (sub, dynamic) = subcommand(args, HELM_SHORT_VALUE, HELM_LONG_VALUE);
    if let Some(d) = dynamic {
        return unknown_word("helm", &d);
    }
    let first = nth(&sub, 1);
    let read = match nth(&sub, 0) {
        None => true,
        Some(
            "list" | "ls" | "status" | "history" | "version" | "env" | "template" | "lint"
            | "search" | "show" | "inspect",
        ) => true,
        Some("get") => true,
        Some("repo") => first == Some("list"),
        Some("plugin") => first == Some("list"),
        _ => false,
    };
    if read {
        Verdict::Read
    } else {
        Verdict::Write("helm in this form changes releases or repositories".into())
    }
}

fn containers(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let (sub, dynamic) = subcommand(
        args,
        "Hc",
        &[
            "host",
            "context",
            "config",
            "log-level",
            "tlscacert",
            "tlscert",
            "tlskey",
            "runtime-endpoint",
            "image-endpoint",
            "timeout",
            "url",
            "connection",
            "root",
            "runroot",
            "storage-driver",
        ],
    );
    if let Some(d) = dynamic {
        return unknown_word(ctx.program, &d);
    }
    let Some(cmd) = nth(&sub, 0) else {
        return Verdict::Read;
    };
    let next = nth(&sub, 1);
    const TOP: &[&str] = &[
        "ps",
        "logs",
        "inspect",
        "images",
        "stats",
        "top",
        "port",
        "version",
        "info",
        "events",
        "diff",
        "history",
        "pods",
        "inspectp",
        "inspecti",
        "imagefsinfo",
        "stats",
    ];
    let read = TOP.contains(&cmd)
        || match cmd {
            "container" => matches!(
                next,
                Some("ls" | "list" | "ps" | "inspect" | "logs" | "top" | "stats" | "port" | "diff")
            ),
            "image" => matches!(next, Some("ls" | "list" | "inspect" | "history")),
            "network" | "volume" | "context" | "node" | "service" | "secret" | "config"
            | "plugin" => {
                matches!(next, Some("ls" | "list" | "inspect" | "show" | "ps"))
            }
            "system" => matches!(next, Some("df" | "info" | "events")),
            "compose" => sub
                .iter()
                .skip(1)
                .filter_map(|a| a.exact())
                .find(|t| !t.starts_with('-'))
                .is_some_and(|c| {
                    matches!(
                        c,
                        "ps" | "logs"
                            | "config"
                            | "top"
                            | "images"
                            | "ls"
                            | "version"
                            | "port"
                            | "events"
                    )
                }),
            _ => false,
        };
    if read {
        Verdict::Read
    } else {
        Verdict::Write(format!(
            "{} {cmd} changes containers, images or their state",
            ctx.program
        ))
    }
}
