//! Wrappers: programs that run another program given on their command line (`sudo`, `env`,
//! `timeout`, `xargs`, `strace`, the dynamic loader, ...). The walk unwraps them, so the rules
//! and the read-only list see the program that really runs; each wrapper is also a run of its
//! own, with its own kind (`nohup` writes `nohup.out`, `strace -o` a file).

use super::{
    ShellKind,
    words::{Arg, Fed},
};

/// What a wrapper does.
pub(super) enum Unwrap {
    /// Not a wrapper: the rules look at it.
    No,
    /// A wrapper that runs nothing here (`sudo -l`, `command -v x`, `ionice -p PID`).
    Stop(Own),
    /// The wrapped command starts after `skip` arguments. `xargs`: feed it run-time arguments,
    /// replacing this string (`-I`) or appended.
    Run {
        skip: usize,
        xargs: Option<Option<String>>,
        own: Own,
    },
}

/// A wrapper's own effect, besides running the wrapped command.
pub(super) struct Own {
    pub kind: ShellKind,
    pub reason: String,
}

impl Own {
    fn read() -> Own {
        Own {
            kind: ShellKind::Read,
            reason: String::new(),
        }
    }

    fn not_read(kind: ShellKind, reason: impl Into<String>) -> Own {
        Own {
            kind,
            reason: reason.into(),
        }
    }
}

/// What a GNU/BSD-style option scan saw.
#[derive(Default)]
pub(super) struct Scan {
    /// Index of the first operand (past `--`), or `args.len()`.
    pub operand: usize,
    /// Short option letters seen, in order.
    pub short: String,
    /// Long option names seen (without `--` and `=value`).
    pub long: Vec<String>,
    /// Values of options that take one, by option (`-u root` → `("u", "root")`).
    pub values: Vec<(String, Arg)>,
}

impl Scan {
    pub fn has(&self, short: char, long: &str) -> bool {
        self.short.contains(short) || self.long.iter().any(|l| l == long)
    }

    pub fn value(&self, short: &str, long: &str) -> Option<&Arg> {
        self.values
            .iter()
            .find(|(k, _)| k == short || k == long)
            .map(|(_, v)| v)
    }
}

/// Scans options that precede the operands: short clusters (`-abc`, `-ofile`, `-o file`),
/// `--long`, `--long=value`, `--long value`; stops at `--` or the first word that is not an
/// option, which includes a word only known at run time.
pub(super) fn scan_options(args: &[Arg], short_arg: &str, long_arg: &[&str]) -> Scan {
    let mut s = Scan::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if !a.is_option() {
            break;
        }
        let t = a.text.as_str();
        if t == "--" {
            i += 1;
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(Arg::lit(v))),
                None => (long, None),
            };
            s.long.push(name.to_owned());
            if long_arg.contains(&name) {
                let value = value.or_else(|| {
                    i += 1;
                    args.get(i).cloned()
                });
                s.values.push((name.to_owned(), value.unwrap_or_default()));
            }
            i += 1;
            continue;
        }
        let cluster = &t[1..];
        for (pos, c) in cluster.char_indices() {
            s.short.push(c);
            if short_arg.contains(c) {
                let attached = &cluster[pos + c.len_utf8()..];
                let value = if attached.is_empty() {
                    i += 1;
                    args.get(i).cloned().unwrap_or_default()
                } else {
                    Arg::lit(attached)
                };
                s.values.push((c.to_string(), value));
                break;
            }
        }
        i += 1;
    }
    s.operand = i.min(args.len());
    s
}

/// Skips `NAME=VALUE` words (`env`, `sudo`): they set the environment, the command follows.
pub(super) fn skip_assignments(args: &[Arg], from: usize) -> usize {
    let mut i = from;
    while args.get(i).is_some_and(|a| assignment(a).is_some()) {
        i += 1;
    }
    i
}

/// `NAME=VALUE` as a wrapper reads it: the name, and the value as an argument.
pub(super) fn assignment(a: &Arg) -> Option<(String, Arg)> {
    let (name, _) = a.prefix.split_once('=')?;
    if name.is_empty()
        || name.starts_with(|c: char| c.is_ascii_digit())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    let value = Arg {
        text: a.text[name.len() + 1..].to_owned(),
        prefix: a.prefix[name.len() + 1..].to_owned(),
        home: false,
        ..a.clone()
    };
    Some((name.to_owned(), value))
}

/// The dynamic loader run as a program: `ld-linux-x86-64.so.2 /bin/rm ...` runs `/bin/rm`.
pub(super) fn is_dynamic_loader(program: &str) -> bool {
    (program.starts_with("ld-") || program.starts_with("ld.so") || program.starts_with("ld64.so"))
        && program.contains(".so")
}

pub(super) fn unwrap(program: &str, args: &[Arg]) -> Unwrap {
    let run = |skip: usize, own: Own| {
        if skip < args.len() {
            Unwrap::Run {
                skip,
                xargs: None,
                own,
            }
        } else {
            Unwrap::Stop(own)
        }
    };
    let read = Own::read;
    if is_dynamic_loader(program) {
        let s = scan_options(
            args,
            "",
            &[
                "library-path",
                "inhibit-rpath",
                "audit",
                "preload",
                "argv0",
                "glibc-hwcaps-prefix",
                "glibc-hwcaps-mask",
            ],
        );
        return run(
            s.operand,
            Own::not_read(
                ShellKind::Unknown,
                "runs a program through the dynamic loader (which can also load other code)",
            ),
        );
    }
    match program {
        "sudo" => {
            let s = scan_options(
                args,
                "ugCDprtTURh",
                &[
                    "user",
                    "group",
                    "close-from",
                    "chdir",
                    "prompt",
                    "role",
                    "type",
                    "command-timeout",
                    "other-user",
                    "chroot",
                    "host",
                ],
            );
            // `-e` edits files (see the sudoedit rule); `-l`, `-v`, `-k`/`-K` alone run nothing;
            // `-i`/`-s` alone start a shell on the session's input (the rules see to it).
            let shell = (s.has('i', "login") || s.has('s', "shell"))
                && skip_assignments(args, s.operand) >= args.len();
            if s.has('e', "edit") || s.has('l', "list") || s.has('V', "version") || shell {
                return Unwrap::No;
            }
            run(skip_assignments(args, s.operand), read())
        }
        "doas" => run(scan_options(args, "uC", &[]).operand, read()),
        "pkexec" => run(scan_options(args, "", &["user"]).operand, read()),
        "env" => {
            let s = scan_options(
                args,
                "uCS",
                &["unset", "chdir", "split-string", "block-signal"],
            );
            if s.has('S', "split-string") {
                return Unwrap::No; // the rules parse its string
            }
            run(skip_assignments(args, s.operand), read())
        }
        "nice" => run(scan_options(args, "n", &["adjustment"]).operand, read()),
        "ionice" => {
            let s = scan_options(args, "cnpPu", &["class", "classdata", "pid", "pgid", "uid"]);
            if s.has('p', "pid") || s.has('P', "pgid") || s.has('u', "uid") {
                return Unwrap::Stop(Own::not_read(
                    ShellKind::Write,
                    "changes the I/O priority of running processes",
                ));
            }
            run(s.operand, read())
        }
        "setsid" | "builtin" | "unbuffer" | "catchsegv" => {
            run(scan_options(args, "", &[]).operand, read())
        }
        "nohup" => run(
            scan_options(args, "", &[]).operand,
            Own::not_read(ShellKind::Write, "nohup may create nohup.out"),
        ),
        "time" => {
            let s = scan_options(args, "fo", &["format", "output"]);
            let own = if s.value("o", "output").is_some() {
                Own::not_read(ShellKind::Write, "time -o writes a file")
            } else {
                read()
            };
            run(s.operand, own)
        }
        "timeout" => run(
            scan_options(args, "sk", &["signal", "kill-after"]).operand + 1,
            read(),
        ),
        "stdbuf" => run(
            scan_options(args, "ioe", &["input", "output", "error"]).operand,
            read(),
        ),
        "taskset" => {
            let s = scan_options(args, "", &[]);
            if s.has('p', "pid") {
                return Unwrap::Stop(Own::not_read(
                    ShellKind::Write,
                    "changes the CPU affinity of a running process",
                ));
            }
            run(s.operand + 1, read())
        }
        "chrt" => {
            let s = scan_options(args, "T", &[]);
            if s.has('p', "pid") {
                return Unwrap::Stop(Own::not_read(
                    ShellKind::Write,
                    "changes the scheduling of a running process",
                ));
            }
            run(s.operand + 1, read())
        }
        "numactl" => run(
            scan_options(
                args,
                "CNmpPil",
                &[
                    "cpunodebind",
                    "physcpubind",
                    "membind",
                    "preferred",
                    "interleave",
                    "localalloc",
                ],
            )
            .operand,
            read(),
        ),
        // No command after the new root: it starts a login shell there, nothing to check.
        "chroot" => run(
            scan_options(args, "", &["userspec", "groups", "skip-chdir"]).operand + 1,
            read(),
        ),
        "unshare" => run(
            scan_options(
                args,
                "SGRw",
                &[
                    "setuid",
                    "setgid",
                    "root",
                    "wd",
                    "propagation",
                    "setgroups",
                    "map-user",
                    "map-group",
                    "map-users",
                    "map-groups",
                    "monotonic",
                    "boottime",
                ],
            )
            .operand,
            Own::not_read(ShellKind::Unknown, "unshare creates namespaces"),
        ),
        "nsenter" => run(
            scan_options(
                args,
                "tSGrwe",
                &["target", "setuid", "setgid", "root", "wd", "env"],
            )
            .operand,
            Own::not_read(
                ShellKind::Unknown,
                "nsenter enters another process's namespaces",
            ),
        ),
        "strace" | "ltrace" => {
            let s = scan_options(
                args,
                "abeEIopPsSuXUn",
                &[
                    "output",
                    "attach",
                    "expr",
                    "env",
                    "user",
                    "string-limit",
                    "summary-sort-by",
                    "trace",
                    "signal",
                    "status",
                    "inject",
                    "fault",
                    "trace-path",
                ],
            );
            let own = if s.value("o", "output").is_some() {
                Own::not_read(ShellKind::Write, format!("{program} -o writes a file"))
            } else if s.has('p', "attach") {
                Own::not_read(
                    ShellKind::Unknown,
                    format!("{program} attaches to a running process"),
                )
            } else if s.long.iter().any(|l| l == "inject" || l == "fault")
                || s.values.iter().any(|(k, v)| {
                    k == "e"
                        && v.exact()
                            .is_none_or(|e| e.starts_with("inject") || e.starts_with("fault"))
                })
            {
                // `-e inject=...` changes what the traced program's system calls do.
                Own::not_read(
                    ShellKind::Unknown,
                    format!("{program} -e inject/fault changes system calls"),
                )
            } else {
                read()
            };
            run(s.operand, own)
        }
        "exec" => run(scan_options(args, "a", &[]).operand, read()),
        "command" => {
            let s = scan_options(args, "", &[]);
            if s.has('v', "") || s.has('V', "") {
                return Unwrap::Stop(read()); // looks the name up, runs nothing
            }
            run(s.operand, read())
        }
        "busybox" | "toybox" => match args.first() {
            Some(a) if a.is_option() => Unwrap::Stop(Own::not_read(
                ShellKind::Unknown,
                format!("{program} with options (--install writes links)"),
            )),
            _ => run(0, read()),
        },
        "xargs" => {
            let s = scan_options(
                args,
                "adELnPsI",
                &[
                    "arg-file",
                    "delimiter",
                    "max-args",
                    "max-procs",
                    "max-chars",
                    "process-slot-var",
                ],
            );
            let replace = s
                .value("I", "")
                .map(|v| v.text.clone())
                .or_else(|| s.short.contains('i').then(|| "{}".to_owned()))
                .or_else(|| s.long.iter().any(|l| l == "replace").then(|| "{}".into()));
            Unwrap::Run {
                skip: s.operand,
                xargs: Some(replace),
                own: read(),
            }
        }
        _ => Unwrap::No,
    }
}

/// The command `xargs` runs: `echo` by default, fed words from standard input, either appended
/// (where they may be options too) or in place of the `-I` string.
pub(super) fn xargs_argv(mut rest: Vec<Arg>, replace: Option<String>) -> Vec<Arg> {
    if rest.is_empty() {
        rest.push(Arg::lit("echo"));
    }
    match replace {
        Some(r) if !r.is_empty() => {
            for a in rest.iter_mut().skip(1) {
                if a.text.contains(&r) {
                    let mut fed = Arg::fed(Fed::Xargs);
                    fed.prefix = a.text.split(&r).next().unwrap_or_default().to_owned();
                    fed.splits = false;
                    *a = fed;
                }
            }
        }
        _ => rest.push(Arg::fed(Fed::Xargs)),
    }
    rest
}
