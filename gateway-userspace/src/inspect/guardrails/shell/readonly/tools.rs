//! Tools with subcommands: git, kubectl, helm, docker, package managers, HTTP clients, openssl,
//! and the configuration checks of common servers.

use super::{
    Check::Custom, Ctx, Entry, Found, Opts, Verdict, find_option, nth, operands, subcommand,
};
use crate::inspect::guardrails::shell::{walk::shown, words::Arg};

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
    Entry {
        names: &[
            "dpkg",
            "dpkg-query",
            "apt",
            "apt-cache",
            "apt-mark",
            "rpm",
            "yum",
            "dnf",
            "apk",
            "pip",
            "pip3",
            "snap",
            "flatpak",
        ],
        check: Custom(packages),
    },
    Entry {
        names: &["curl"],
        check: Custom(curl),
    },
    Entry {
        names: &["wget"],
        check: Custom(wget),
    },
    Entry {
        names: &["openssl"],
        check: Custom(openssl),
    },
    Entry {
        names: &["ssh-keygen"],
        check: Custom(ssh_keygen),
    },
    Entry {
        names: &["crontab"],
        check: Custom(crontab),
    },
    Entry {
        names: &[
            "nginx",
            "apachectl",
            "apache2ctl",
            "haproxy",
            "sshd",
            "visudo",
            "ufw",
            "firewall-cmd",
            "fail2ban-client",
            "certbot",
            "sudo",
        ],
        check: Custom(servers),
    },
    Entry {
        names: &["redis-cli"],
        check: Custom(redis_cli),
    },
];

fn unknown_word(program: &str, a: &str) -> Verdict {
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

const KUBE_GLOBAL: &[&str] = &[
    "context",
    "cluster",
    "user",
    "kubeconfig",
    "namespace",
    "server",
    "token",
    "as",
    "as-group",
    "as-uid",
    "request-timeout",
    "certificate-authority",
    "client-certificate",
    "client-key",
    "cache-dir",
    "tls-server-name",
    "profile",
    "profile-output",
    "username",
    "password",
    "log-file",
    "v",
];

fn kubectl(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let (sub, dynamic) = subcommand(args, "nsv", KUBE_GLOBAL);
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
    let (sub, dynamic) = subcommand(
        args,
        "n",
        &[
            "kube-context",
            "namespace",
            "kubeconfig",
            "kube-apiserver",
            "kube-token",
            "registry-config",
            "repository-cache",
            "repository-config",
        ],
    );
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

fn packages(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let flag = |set: &[&str]| {
        args.iter()
            .any(|a| a.exact().is_some_and(|t| set.contains(&t)))
    };
    let ops = operands(args, "", &[]);
    let first = nth(&ops, 0);
    let read = match ctx.program {
        "dpkg" => {
            flag(&[
                "-l",
                "-L",
                "-s",
                "-S",
                "-p",
                "-c",
                "-I",
                "-W",
                "-V",
                "--list",
                "--listfiles",
                "--status",
                "--search",
                "--print-avail",
                "--contents",
                "--info",
                "--show",
                "--get-selections",
                "--print-architecture",
                "--print-foreign-architectures",
                "--audit",
                "--verify",
                "--compare-versions",
                "--version",
            ]) && !flag(&[
                "-i",
                "--install",
                "-r",
                "--remove",
                "-P",
                "--purge",
                "--configure",
                "--unpack",
                "--set-selections",
                "--clear-selections",
            ])
        }
        "dpkg-query" => true,
        "apt" => matches!(
            first,
            Some(
                "list"
                    | "show"
                    | "search"
                    | "policy"
                    | "depends"
                    | "rdepends"
                    | "madison"
                    | "showsrc"
            )
        ),
        "apt-cache" => !matches!(first, Some("gencaches")) && first.is_some(),
        "apt-mark" => matches!(
            first,
            Some(
                "showmanual" | "showauto" | "showhold" | "showinstall" | "showremove" | "showpurge"
            )
        ),
        "rpm" => {
            args.iter().any(|a| {
                a.exact().is_some_and(|t| {
                    (t.starts_with('-') && !t.starts_with("--") && t.contains('q'))
                        || t == "--query"
                        || t == "-V"
                        || t == "--verify"
                })
            }) && !args.iter().any(|a| {
                a.exact().is_some_and(|t| {
                    matches!(
                        t,
                        "-i" | "-U"
                            | "-F"
                            | "-e"
                            | "--install"
                            | "--upgrade"
                            | "--freshen"
                            | "--erase"
                            | "--import"
                            | "--setperms"
                            | "--setugids"
                            | "--restore"
                            | "--rebuilddb"
                            | "--initdb"
                    )
                })
            })
        }
        "yum" | "dnf" => {
            matches!(
                first,
                Some(
                    "list"
                        | "info"
                        | "search"
                        | "repolist"
                        | "provides"
                        | "whatprovides"
                        | "check-update"
                        | "deplist"
                        | "repoquery"
                        | "repoinfo"
                )
            ) || (first == Some("history") && matches!(nth(&ops, 1), None | Some("list" | "info")))
        }
        "apk" => matches!(
            first,
            Some("info" | "list" | "search" | "policy" | "version" | "stats" | "dot")
        ),
        "pip" | "pip3" => {
            matches!(first, Some("list" | "show" | "freeze" | "check" | "help"))
                || flag(&["--version", "-V"])
        }
        "snap" => matches!(
            first,
            Some("list" | "info" | "version" | "services" | "changes" | "find")
        ),
        "flatpak" => matches!(
            first,
            Some("list" | "info" | "search" | "remotes" | "history")
        ),
        _ => false,
    };
    if read {
        Verdict::Read
    } else {
        Verdict::Write(format!(
            "{} in this form installs, removes or changes packages",
            ctx.program
        ))
    }
}

/// curl: a plain transfer to standard output. Writing files, sending data, other methods and
/// config files (which may say any of that) are not reads.
fn curl(_: &Ctx, args: &[Arg]) -> Verdict {
    // `-o /dev/null` (and `-o -`) stores nothing: the common "just the status code" form.
    let mut kept: Vec<Arg> = Vec::new();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if matches!(a.exact(), Some("-o" | "--output")) {
            let target = args.get(i + 1);
            if !target.is_some_and(|t| matches!(t.exact(), Some("/dev/null" | "-"))) {
                let shown_target = target.map_or(String::new(), |t| shown(&t.text));
                return Verdict::Write(format!("curl -o {shown_target} writes a file"));
            }
            i += 2;
            continue;
        }
        kept.push(a.clone());
        i += 1;
    }
    let args = kept.as_slice();
    let writes = Opts {
        short: "oODcKTdFe",
        long: &[
            "output",
            "remote-name",
            "remote-name-all",
            "dump-header",
            "cookie-jar",
            "trace",
            "trace-ascii",
            "libcurl",
            "stderr",
            "config",
            "etag-save",
            "hsts",
            "alt-svc",
            "upload-file",
            "data",
            "data-ascii",
            "data-binary",
            "data-raw",
            "data-urlencode",
            "form",
            "form-string",
            "json",
            "output-dir",
            "create-dirs",
            "ftp-create-dirs",
            "mail-from",
            "mail-rcpt",
            "quote",
            "post301",
            "post302",
            "post303",
        ],
        short_arg: "ubHArxXEwmYyz",
        long_arg: &[
            "user",
            "cookie",
            "header",
            "user-agent",
            "range",
            "proxy",
            "request",
            "cert",
            "write-out",
            "max-time",
            "connect-timeout",
            "resolve",
            "retry",
            "url",
        ],
        why: "",
    };
    match find_option(args, &writes) {
        Found::Option(o) => return Verdict::Write(format!("curl {o} writes a file or sends data")),
        Found::Unknown(a) => return unknown_word("curl", &a),
        Found::None => {}
    }
    // `-X`/`--request` other than GET and HEAD changes the resource.
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let method = match a.exact() {
            Some("-X" | "--request") => args.get(i + 1).map(|m| m.text.to_ascii_uppercase()),
            Some(t) if t.starts_with("-X") && t.len() > 2 => Some(t[2..].to_ascii_uppercase()),
            Some(t) if t.starts_with("--request=") => {
                Some(t["--request=".len()..].to_ascii_uppercase())
            }
            _ => None,
        };
        if let Some(m) = method
            && m != "GET"
            && m != "HEAD"
        {
            return Verdict::Write(format!(
                "curl -X {m} sends a request that may change the resource"
            ));
        }
        i += 1;
    }
    Verdict::Read
}

/// wget saves what it fetches unless told to write it to standard output (`-O -`) or only
/// check (`--spider`).
fn wget(_: &Ctx, args: &[Arg]) -> Verdict {
    let mut stdout = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.exact() {
            Some("--spider") => stdout = true,
            Some("-O" | "--output-document") => {
                stdout = args.get(i + 1).and_then(|f| f.exact()) == Some("-")
            }
            Some("-qO-" | "-O-" | "--output-document=-") => stdout = true,
            Some(t)
                if t.starts_with("--post")
                    || t.starts_with("--body")
                    || t == "--method"
                    || t.starts_with("--method=")
                    || t.starts_with("-e")
                    || t == "--execute"
                    || t.starts_with("-o")
                    || t.starts_with("-a")
                    || t == "--output-file"
                    || t == "--append-output"
                    || t.starts_with("--config")
                    || t == "-i"
                    || t == "--input-file" =>
            {
                return Verdict::Write(format!(
                    "wget {t} writes a file, sends data or reads commands"
                ));
            }
            Some(t) if t.starts_with("-O") && t.len() > 2 => stdout = &t[2..] == "-",
            Some(t) if t.starts_with('-') && !t.starts_with("--") && t.ends_with("O-") => {
                stdout = true
            }
            None if a.may_be_option() => return unknown_word("wget", &a.text),
            _ => {}
        }
        i += 1;
    }
    if stdout {
        Verdict::Read
    } else {
        Verdict::Write("wget saves what it downloads to a file".into())
    }
}

fn openssl(_: &Ctx, args: &[Arg]) -> Verdict {
    const READ: &[&str] = &[
        "x509",
        "req",
        "s_client",
        "verify",
        "version",
        "crl",
        "pkey",
        "rsa",
        "ec",
        "dgst",
        "asn1parse",
        "ciphers",
        "list",
        "rand",
        "sess_id",
        "pkcs12",
        "pkcs7",
        "enc",
        "base64",
        "errstr",
        "speed",
        "prime",
        "storeutl",
        "ocsp",
        "crl2pkcs7",
        "nseq",
        "pkeyparam",
        "dhparam",
        "ecparam",
        "sha256",
        "sha1",
        "md5",
        "sha512",
    ];
    let Some(cmd) = args.first() else {
        return Verdict::Unknown("openssl without a command is interactive".into());
    };
    let Some(cmd) = cmd.exact() else {
        return unknown_word("openssl", &cmd.text);
    };
    if !READ.contains(&cmd) {
        return Verdict::Write(format!("openssl {cmd} is not known to be read-only"));
    }
    for a in &args[1..] {
        match a.exact() {
            Some(
                t @ ("-out" | "-keyout" | "-writerand" | "-sess_out" | "-msgfile" | "-keylogfile"
                | "-CAcreateserial" | "-CAserial" | "-signkey" | "-set_serial"),
            ) => {
                return Verdict::Write(format!("openssl {cmd} {t} writes a file or signs"));
            }
            Some(t @ ("-engine" | "-provider" | "-provider-path")) => {
                return Verdict::Unknown(format!("openssl {t} loads code"));
            }
            Some(_) => {}
            None if a.may_be_option() => return unknown_word("openssl", &a.text),
            None => {}
        }
    }
    Verdict::Read
}

fn ssh_keygen(_: &Ctx, args: &[Arg]) -> Verdict {
    let short = |letters: &str| {
        args.iter().any(|a| {
            a.exact()
                .is_some_and(|t| t.starts_with('-') && t[1..].chars().any(|c| letters.contains(c)))
        })
    };
    if short("lFyB") && !short("RHpcN") {
        Verdict::Read
    } else {
        Verdict::Write("ssh-keygen in this form creates or changes keys or known_hosts".into())
    }
}

fn crontab(_: &Ctx, args: &[Arg]) -> Verdict {
    let mut lists = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.exact() {
            Some("-l") => lists = true,
            Some("-u") => i += 1,
            _ => {
                return Verdict::Write(
                    "crontab in this form replaces, edits or removes a crontab".into(),
                );
            }
        }
        i += 1;
    }
    if lists {
        Verdict::Read
    } else {
        Verdict::Write("crontab replaces the crontab with its input".into())
    }
}

/// Servers' configuration checks and status reports.
fn servers(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let words: Vec<&str> = args.iter().filter_map(|a| a.exact()).collect();
    if words.len() != args.len() {
        return Verdict::Unknown(format!(
            "{} with arguments only known at run time",
            ctx.program
        ));
    }
    let only = |allowed: &[&str]| {
        !words.is_empty()
            && words
                .iter()
                .all(|w| allowed.contains(w) || !w.starts_with('-') && allowed.contains(&"FILE"))
    };
    let read = match ctx.program {
        "nginx" => {
            only(&["-t", "-T", "-v", "-V", "-q", "-c", "-p", "FILE"])
                && words
                    .iter()
                    .any(|w| matches!(*w, "-t" | "-T" | "-v" | "-V"))
        }
        "apachectl" | "apache2ctl" => matches!(
            words.as_slice(),
            ["-t"]
                | ["-S"]
                | ["-M"]
                | ["-v"]
                | ["-V"]
                | ["configtest"]
                | ["-t", "-D", "DUMP_VHOSTS"]
                | ["-D", "DUMP_MODULES"]
                | ["status"]
        ),
        "haproxy" => words.contains(&"-c") && only(&["-c", "-f", "-q", "-V", "FILE"]),
        "sshd" => {
            only(&["-T", "-t", "-f", "-C", "FILE"])
                && words.iter().any(|w| matches!(*w, "-T" | "-t"))
        }
        "visudo" => {
            only(&[
                "-c", "--check", "-q", "--quiet", "-s", "--strict", "-f", "--file", "FILE",
            ]) && words.iter().any(|w| matches!(*w, "-c" | "--check"))
        }
        "ufw" => matches!(
            words.first(),
            Some(&("status" | "show" | "version" | "--version"))
        ),
        "firewall-cmd" => {
            !words.is_empty()
                && words.iter().all(|w| {
                    w.starts_with("--list-")
                        || w.starts_with("--get-")
                        || w.starts_with("--query-")
                        || w.starts_with("--info-")
                        || matches!(*w, "--state" | "--permanent" | "--version")
                        || w.starts_with("--zone=")
                })
        }
        "fail2ban-client" => matches!(
            words.first(),
            Some(&("status" | "ping" | "version" | "get" | "-V" | "--version"))
        ),
        "certbot" => matches!(words.first(), Some(&("certificates" | "--version"))),
        // `sudo -l`, `sudo -i` (with a command, sudo is a wrapper and never gets here);
        // `sudo -e` edits files.
        "sudo" => !words.iter().any(|w| matches!(*w, "-e" | "--edit")),
        _ => false,
    };
    if read {
        Verdict::Read
    } else {
        Verdict::Write(format!(
            "{} in this form changes the service or its configuration",
            ctx.program
        ))
    }
}

/// redis-cli with one of the read-only commands; no command starts its REPL.
fn redis_cli(_: &Ctx, args: &[Arg]) -> Verdict {
    const READ: &[&str] = &[
        "ping",
        "info",
        "get",
        "mget",
        "exists",
        "ttl",
        "pttl",
        "type",
        "strlen",
        "llen",
        "lrange",
        "lindex",
        "hget",
        "hmget",
        "hgetall",
        "hkeys",
        "hvals",
        "hlen",
        "hexists",
        "smembers",
        "scard",
        "sismember",
        "zrange",
        "zcard",
        "zscore",
        "zrank",
        "dbsize",
        "scan",
        "sscan",
        "hscan",
        "zscan",
        "keys",
        "time",
        "lastsave",
        "role",
        "memory",
        "latency",
        "slowlog",
        "client",
        "config",
        "xlen",
        "xrange",
        "xinfo",
        "pubsub",
        "object",
        "--version",
    ];
    let ops = operands(
        args,
        "hpansuc",
        &["user", "pass", "tls", "cacert", "cert", "key"],
    );
    let Some(cmd) = nth(&ops, 0) else {
        return Verdict::Unknown(
            "redis-cli without a command reads commands from its input".into(),
        );
    };
    let lower = cmd.to_ascii_lowercase();
    let sub = nth(&ops, 1).map(str::to_ascii_lowercase);
    let read = READ.contains(&lower.as_str())
        && match lower.as_str() {
            "config" => sub.as_deref() == Some("get"),
            "client" => matches!(sub.as_deref(), Some("list" | "info" | "getname" | "id")),
            "slowlog" => matches!(sub.as_deref(), Some("get" | "len")),
            "memory" => matches!(sub.as_deref(), Some("usage" | "stats" | "doctor")),
            "latency" => matches!(sub.as_deref(), Some("latest" | "history" | "doctor")),
            _ => true,
        };
    if read {
        Verdict::Read
    } else {
        Verdict::Write(format!("redis-cli {cmd} is not a read-only Redis command"))
    }
}
