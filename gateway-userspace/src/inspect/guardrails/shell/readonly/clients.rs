//! Package managers, HTTP clients, openssl and ssh-keygen.

use super::{
    Check::Custom, Ctx, Entry, Found, Opts, Verdict, find_option, nth, operands,
    tools::unknown_word,
};
use crate::inspect::guardrails::shell::{walk::shown, words::Arg};

pub(super) const ENTRIES: &[Entry] = &[
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
];

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
