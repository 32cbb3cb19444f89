//! Files and text: viewers, filters, searches, archives and checksums.

use super::tools::unknown_word;
use super::{
    Check::{Always, Custom, Unless},
    Ctx, Entry, Found, Opts, Verdict,
    awk::{Awk, awk},
    find_option, operands,
    sed::{Sed, sed},
};
use crate::inspect::guardrails::shell::{walk::shown, words::Arg};

pub(super) const ENTRIES: &[Entry] = &[
    Entry {
        names: &[
            "cat",
            "tac",
            "head",
            "tail",
            "nl",
            "wc",
            "cut",
            "paste",
            "join",
            "comm",
            "column",
            "fold",
            "fmt",
            "pr",
            "expand",
            "unexpand",
            "rev",
            "tr",
            "look",
            "tsort",
            "numfmt",
            "od",
            "hexdump",
            "hd",
            "strings",
            "base64",
            "base32",
            "basenc",
            "md5sum",
            "sha1sum",
            "sha224sum",
            "sha256sum",
            "sha384sum",
            "sha512sum",
            "b2sum",
            "cksum",
            "sum",
            "cmp",
            "diff",
            "diff3",
            "grep",
            "egrep",
            "fgrep",
            "zgrep",
            "zegrep",
            "zfgrep",
            "zcat",
            "bzcat",
            "xzcat",
            "zstdcat",
            "lz4cat",
            "zipinfo",
            "ls",
            "dir",
            "vdir",
            "stat",
            "readlink",
            "realpath",
            "basename",
            "dirname",
            "namei",
            "lsattr",
            "getfacl",
            "du",
            "df",
            "jq",
            "locate",
            "plocate",
            "mlocate",
            "whereis",
            "which",
            "objdump",
            "readelf",
            "nm",
            "size",
        ],
        check: Always,
    },
    Entry {
        names: &["sort"],
        check: Unless(Opts {
            short: "o",
            long: &["output", "compress-program"],
            short_arg: "ktTS",
            long_arg: &[
                "key",
                "field-separator",
                "temporary-directory",
                "buffer-size",
                "parallel",
                "batch-size",
                "files0-from",
                "random-source",
                "sort",
            ],
            why: "writes a file or runs a compression program",
        }),
    },
    Entry {
        names: &["shuf"],
        check: Unless(Opts {
            short: "o",
            long: &["output"],
            short_arg: "ni",
            long_arg: &["head-count", "input-range", "random-source"],
            why: "writes a file",
        }),
    },
    Entry {
        names: &["sdiff"],
        check: Unless(Opts {
            short: "o",
            long: &["output"],
            short_arg: "w",
            long_arg: &["width", "diff-program"],
            why: "writes a file",
        }),
    },
    Entry {
        names: &["tree"],
        check: Unless(Opts {
            short: "o",
            long: &[],
            short_arg: "LPIHT",
            long_arg: &["filelimit", "timefmt", "charset"],
            why: "writes a file",
        }),
    },
    Entry {
        names: &["file"],
        check: Unless(Opts {
            short: "C",
            long: &["compile"],
            short_arg: "mfFeP",
            long_arg: &[
                "magic-file",
                "files-from",
                "separator",
                "exclude",
                "parameter",
            ],
            why: "compiles a magic file (writes it)",
        }),
    },
    Entry {
        names: &["iconv"],
        check: Unless(Opts {
            short: "o",
            long: &["output"],
            short_arg: "ft",
            long_arg: &["from-code", "to-code"],
            why: "writes a file",
        }),
    },
    Entry {
        names: &["yq"],
        check: Unless(Opts {
            short: "i",
            long: &["inplace"],
            short_arg: "",
            long_arg: &[],
            why: "edits files in place",
        }),
    },
    Entry {
        names: &["xmllint"],
        check: Unless(Opts {
            short: "",
            long: &["output"],
            short_arg: "",
            long_arg: &[],
            why: "writes a file",
        }),
    },
    Entry {
        names: &["man"],
        check: Unless(Opts {
            short: "PH",
            long: &["pager", "html"],
            short_arg: "",
            long_arg: &[],
            why: "runs a program of the caller's choice",
        }),
    },
    Entry {
        names: &["rg"],
        check: Unless(Opts {
            short: "",
            long: &["pre"],
            short_arg: "egtTAB",
            long_arg: &["regexp", "glob", "type", "type-not"],
            why: "runs a preprocessor program",
        }),
    },
    Entry {
        names: &["fd", "fdfind"],
        check: Custom(fd),
    },
    Entry {
        names: &["uniq"],
        check: Custom(uniq),
    },
    Entry {
        names: &["xxd"],
        check: Custom(xxd),
    },
    Entry {
        names: &["tee"],
        check: Custom(tee),
    },
    Entry {
        names: &["less", "more", "most", "pg", "zless", "zmore"],
        check: Custom(pager),
    },
    Entry {
        names: &["find"],
        check: Custom(find),
    },
    Entry {
        names: &["awk", "gawk", "mawk", "nawk"],
        check: Custom(awk_check),
    },
    Entry {
        names: &["sed"],
        check: Custom(sed_check),
    },
    Entry {
        names: &["tar"],
        check: Custom(tar),
    },
    Entry {
        names: &[
            "gzip", "gunzip", "xz", "unxz", "bzip2", "bunzip2", "zstd", "unzstd", "lz4", "unlz4",
            "pigz",
        ],
        check: Custom(compressor),
    },
    Entry {
        names: &["unzip"],
        check: Custom(unzip),
    },
];

/// Harmless targets for a writer: nothing is stored.
fn harmless(a: &Arg) -> bool {
    matches!(
        a.exact(),
        Some("/dev/null" | "/dev/stdout" | "/dev/stderr" | "-")
    )
}

fn fd(_: &Ctx, args: &[Arg]) -> Verdict {
    const OPTS: Opts = Opts {
        short: "xX",
        long: &["exec", "exec-batch"],
        short_arg: "edtEc",
        long_arg: &[
            "extension",
            "type",
            "exclude",
            "color",
            "max-depth",
            "changed-within",
        ],
        why: "runs commands",
    };
    match find_option(args, &OPTS) {
        Found::None => Verdict::Read,
        Found::Option(o) => Verdict::Unknown(format!("fd {o} runs commands on what it finds")),
        Found::Unknown(a) => unknown_word("fd", &a),
    }
}

/// `uniq [IN [OUT]]`: a second operand is a file it writes.
fn uniq(_: &Ctx, args: &[Arg]) -> Verdict {
    let ops = operands(
        args,
        "fsw",
        &[
            "skip-fields",
            "skip-chars",
            "check-chars",
            "group",
            "all-repeated",
        ],
    );
    match ops.get(1) {
        Some(out) if !harmless(out) => Verdict::Write(format!("uniq writes {}", shown(&out.text))),
        _ => Verdict::Read,
    }
}

/// `xxd [IN [OUT]]`: a second operand is a file it writes.
fn xxd(_: &Ctx, args: &[Arg]) -> Verdict {
    let ops = operands(args, "cglosn", &[]);
    match ops.get(1) {
        Some(out) if !harmless(out) => Verdict::Write(format!("xxd writes {}", shown(&out.text))),
        _ => Verdict::Read,
    }
}

fn tee(_: &Ctx, args: &[Arg]) -> Verdict {
    match operands(args, "", &["output-error"])
        .into_iter()
        .find(|a| !harmless(a))
    {
        Some(f) => Verdict::Write(format!("tee writes {}", shown(&f.text))),
        None => Verdict::Read,
    }
}

/// A pager on a terminal takes keys: `v` opens an editor on the file, `!` runs a command,
/// `s` saves, and a key needs no Enter for sluice to see. Reading a pipe (`cmd | less`), it
/// cannot edit anything; without a terminal it prints like `cat`.
pub(in super::super) fn pager(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let opts = Opts {
        short: "oOk",
        long: &["log-file", "LOG-FILE", "lesskey-file", "lesskey-src"],
        short_arg: "bhjpPtTxyz#",
        long_arg: &["tag", "tag-file", "pattern", "prompt"],
        why: "writes a log file or reads key bindings",
    };
    if let Found::Option(o) | Found::Unknown(o) = find_option(args, &opts) {
        return Verdict::Unknown(format!("{} {o} {}", ctx.program, opts.why));
    }
    // `+cmd` runs a pager command at start (`+!cmd` a shell command): only moves are known.
    if let Some(a) = args.iter().find(|a| {
        a.text.starts_with('+')
            && !a.exact().is_some_and(|t| {
                let c = &t[1..];
                c.chars().all(|x| x.is_ascii_digit())
                    || matches!(c, "G" | "F")
                    || c.starts_with('/')
            })
    }) {
        return Verdict::Unknown(format!(
            "{} {} runs a pager command at start",
            ctx.program,
            shown(&a.text)
        ));
    }
    let files = operands(args, opts.short_arg, opts.long_arg);
    if ctx.terminal && !files.is_empty() {
        return Verdict::Unknown(format!(
            "{} on a terminal can open an editor on {} (v) or run commands (!) with keys sluice does not see; use cat, head or tail",
            ctx.program,
            shown(&files[0].text)
        ));
    }
    Verdict::Read
}

/// `find` reads unless it deletes or writes files; the commands of `-exec` are judged as
/// commands of their own.
fn find(_: &Ctx, args: &[Arg]) -> Verdict {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.exact() {
            Some("-delete") => return Verdict::Write("find -delete removes files".into()),
            Some(o @ ("-fprint" | "-fprint0" | "-fprintf" | "-fls")) => {
                return Verdict::Write(format!("find {o} writes a file"));
            }
            Some(
                "-name" | "-iname" | "-path" | "-ipath" | "-wholename" | "-iwholename" | "-regex"
                | "-iregex" | "-lname" | "-ilname" | "-newer" | "-printf" | "-samefile"
                | "-files0-from" | "-context",
            ) => i += 1,
            None if a.may_be_option() && i > 0 => {
                return Verdict::Unknown(format!(
                    "find is given {}, only known at run time, which may be -delete or -exec",
                    shown(&a.text)
                ));
            }
            _ => {}
        }
        i += 1;
    }
    Verdict::Read
}

fn awk_check(ctx: &Ctx, args: &[Arg]) -> Verdict {
    match awk(ctx.program, args) {
        Awk::Reads => Verdict::Read,
        Awk::Writes(why) => Verdict::Write(why),
        Awk::Code(why) => Verdict::Unknown(why),
    }
}

fn sed_check(_: &Ctx, args: &[Arg]) -> Verdict {
    match sed(args) {
        Sed::Reads => Verdict::Read,
        Sed::Writes(why) => Verdict::Write(why),
        Sed::Runs(why) | Sed::Unknown(why) => Verdict::Unknown(why),
    }
}

/// `tar` reads when it lists (`-t`) or compares (`-d`), or creates an archive on standard
/// output; options that run programs (`--to-command`, `-I`, checkpoints) are code.
fn tar(_: &Ctx, args: &[Arg]) -> Verdict {
    let code = Opts {
        short: "IF",
        long: &[
            "to-command",
            "use-compress-program",
            "checkpoint-action",
            "info-script",
            "new-volume-script",
            "rsh-command",
            "remove-files",
        ],
        short_arg: "fCbHKLNTVX",
        long_arg: &[
            "file",
            "directory",
            "exclude",
            "files-from",
            "exclude-from",
            "format",
        ],
        why: "",
    };
    match find_option(args, &code) {
        Found::None => {}
        Found::Option(o) if o.starts_with("--remove") => {
            return Verdict::Write("tar --remove-files removes the files it archives".into());
        }
        Found::Option(o) => return Verdict::Unknown(format!("tar {o} runs another program")),
        Found::Unknown(a) => {
            return unknown_word("tar", &a);
        }
    }
    // The mode: the first word may be a bundle without `-` (`tar tzf x`).
    let mut mode = None;
    let mut file: Option<String> = None;
    for (i, a) in args.iter().enumerate() {
        let Some(t) = a.exact() else { continue };
        let bundle = if i == 0 && !t.starts_with('-') {
            Some(t)
        } else {
            t.strip_prefix('-').filter(|s| !s.starts_with('-'))
        };
        if let Some(b) = bundle {
            for (pos, c) in b.char_indices() {
                if "ctxurdA".contains(c) && mode.is_none() {
                    mode = Some(c);
                }
                if c == 'f' {
                    file = if pos + 1 < b.len() {
                        Some(b[pos + 1..].to_owned())
                    } else {
                        args.get(i + 1).map(|f| f.text.clone())
                    };
                    break;
                }
            }
        } else if let Some(long) = t.strip_prefix("--") {
            match long.split_once('=').map_or(long, |(n, _)| n) {
                "list" => mode = mode.or(Some('t')),
                "diff" | "compare" => mode = mode.or(Some('d')),
                "create" => mode = mode.or(Some('c')),
                "extract" | "get" => mode = mode.or(Some('x')),
                "append" | "update" | "delete" | "concatenate" | "catenate" => {
                    mode = mode.or(Some('u'))
                }
                "file" => {
                    file = long
                        .split_once('=')
                        .map(|(_, v)| v.to_owned())
                        .or_else(|| args.get(i + 1).map(|f| f.text.clone()))
                }
                _ => {}
            }
        }
    }
    match mode {
        Some('t' | 'd') => Verdict::Read,
        Some('c') if file.as_deref() == Some("-") => Verdict::Read,
        Some('c') => Verdict::Write("tar creates an archive file".into()),
        Some('x') => Verdict::Write("tar extracts files".into()),
        Some(_) => Verdict::Write("tar changes an archive".into()),
        None => Verdict::Unknown("tar without a mode sluice understands".into()),
    }
}

/// Compressors read when they write to standard output (`-c`), list (`-l`) or test (`-t`).
fn compressor(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let mut stdout = false;
    for a in args {
        let Some(t) = a.exact() else {
            if a.may_be_option() {
                return unknown_word(ctx.program, &a.text);
            }
            continue;
        };
        match t {
            "--stdout" | "--to-stdout" | "--list" | "--test" => stdout = true,
            "-o" | "--output" | "--rm" => {
                return Verdict::Write(format!("{} {t} writes or removes files", ctx.program));
            }
            t if t.starts_with("--") => {}
            t if t.starts_with('-') && t.len() > 1 => {
                stdout |= t[1..].contains(['c', 'l', 't']);
                if t[1..].contains('o') {
                    return Verdict::Write(format!("{} -o writes a file", ctx.program));
                }
            }
            _ => {}
        }
    }
    let has_file = args.iter().any(|a| !a.is_option());
    if stdout || !has_file {
        Verdict::Read // standard input to standard output, or only listing/testing
    } else {
        Verdict::Write(format!(
            "{} replaces files with their (de)compressed form",
            ctx.program
        ))
    }
}

fn unzip(_: &Ctx, args: &[Arg]) -> Verdict {
    let reads = args.iter().any(|a| {
        a.exact()
            .is_some_and(|t| t.starts_with('-') && t[1..].contains(['l', 't', 'v', 'Z', 'p', 'z']))
    });
    if reads {
        Verdict::Read
    } else {
        Verdict::Write("unzip extracts files".into())
    }
}
