//! Shell builtins that change the shell rather than the host: signals, limits, options,
//! variables.

use super::tools::unknown_word;
use super::{Check::Custom, Ctx, Entry, Verdict, operands};
use crate::inspect::guardrails::shell::{
    editing::changes_line_editing,
    names::{Exported, env_risk},
    words::Arg,
};

pub(super) const ENTRIES: &[Entry] = &[
    Entry {
        names: &["kill"],
        check: Custom(kill),
    },
    Entry {
        names: &["fc"],
        check: Custom(fc),
    },
    Entry {
        names: &["ulimit", "umask"],
        check: Custom(limits),
    },
    Entry {
        names: &["set", "shopt", "bind", "stty"],
        check: Custom(shell_settings),
    },
    Entry {
        names: &["export", "declare", "typeset", "local", "readonly"],
        check: Custom(declaration),
    },
    Entry {
        names: &["read", "mapfile", "readarray", "printf", "getopts"],
        check: Custom(variable_target),
    },
];

/// `fc -l` lists the history; without `-l` it runs (or edits) history entries.
fn fc(_: &Ctx, args: &[Arg]) -> Verdict {
    let lists = args.iter().any(|a| {
        a.exact()
            .is_some_and(|t| t.starts_with('-') && t.contains('l'))
    });
    if lists {
        Verdict::Read
    } else {
        Verdict::Unknown("fc runs or edits commands from the history".into())
    }
}

/// `kill -l` lists signals and `kill -0` only checks that a process exists.
fn kill(_: &Ctx, args: &[Arg]) -> Verdict {
    match args.first().and_then(|a| a.exact()) {
        Some("-l" | "-L" | "--list" | "--table" | "-0") => Verdict::Read,
        Some("-s" | "-n") if args.get(1).and_then(|a| a.exact()) == Some("0") => Verdict::Read,
        _ if args.is_empty() => Verdict::Read,
        _ => Verdict::Write("kill signals processes".into()),
    }
}

fn limits(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let sets = match ctx.program {
        "umask" => !operands(args, "", &[]).is_empty(),
        _ => !operands(args, "", &[]).is_empty() && !args.iter().any(|a| a.exact() == Some("-a")),
    };
    if sets {
        Verdict::Unknown(format!(
            "{} with a value changes the limits of what runs later",
            ctx.program
        ))
    } else {
        Verdict::Read
    }
}

/// `set`, `shopt`, `bind`, `stty`: reports are reads; what changes how lines are read is
/// unknown (and the session stops following its terminal). `set -a` exports every later
/// assignment.
fn shell_settings(ctx: &Ctx, args: &[Arg]) -> Verdict {
    if let Some(why) = changes_line_editing(ctx.program, args, true) {
        return Verdict::Unknown(why);
    }
    if ctx.program == "set"
        && args.iter().any(|a| {
            a.exact()
                .is_some_and(|t| t.starts_with('-') && !t.starts_with("--") && t.contains('a'))
                || a.exact() == Some("allexport")
        })
    {
        return Verdict::Unknown(
            "set -a exports every later assignment to the programs that run".into(),
        );
    }
    Verdict::Read
}

/// `export NAME` (no value) exports a variable whose value sluice does not know; `-f` exports
/// functions; `-n` makes a name refer to another variable. Assignments are judged as such.
fn declaration(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let mut exported = ctx.program == "export";
    for a in args {
        let Some(t) = a.exact() else {
            return unknown_word(ctx.program, &a.text);
        };
        if let Some(flags) = t.strip_prefix('-') {
            if flags.contains('n') && ctx.program != "export" {
                return Verdict::Unknown(format!(
                    "{} -n makes a name refer to another variable",
                    ctx.program
                ));
            }
            if flags.contains('f') && (ctx.program == "export" || flags.contains('x')) {
                return Verdict::Unknown(format!(
                    "{} exports functions to the programs that run",
                    ctx.program
                ));
            }
            exported |= flags.contains('x');
            continue;
        }
        if t.contains('=') {
            continue; // an assignment, judged where it is made
        }
        if exported && let Some(why) = env_risk(t, &Arg::default(), Exported::Yes) {
            return Verdict::Unknown(why);
        }
    }
    Verdict::Read
}

/// Builtins that set a variable named by an argument (`read PATH`, `printf -v HOME ...`).
fn variable_target(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let names: Vec<&Arg> = match ctx.program {
        "printf" => {
            let mut v = Vec::new();
            let mut i = 0;
            while let Some(a) = args.get(i) {
                if a.exact() == Some("-v") {
                    v.extend(args.get(i + 1));
                    break;
                }
                if !a.is_option() {
                    break;
                }
                i += 1;
            }
            v
        }
        "getopts" => args.get(1).into_iter().collect(),
        "mapfile" | "readarray"
            if args
                .iter()
                .any(|a| a.exact().is_some_and(|t| t.starts_with("-C"))) =>
        {
            return Verdict::Unknown(format!("{} -C runs a callback", ctx.program));
        }
        _ => operands(args, "dnNptuCcOsi", &[]),
    };
    for n in names {
        let Some(name) = n.exact() else {
            return Verdict::Unknown(format!("{} sets a variable named at run time", ctx.program));
        };
        let name = name.split('[').next().unwrap_or(name);
        if let Some(why) = env_risk(name, &Arg::default(), Exported::No) {
            return Verdict::Unknown(why);
        }
    }
    Verdict::Read
}
