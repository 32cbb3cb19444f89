//! The read-only list: the programs known to only read, with the argument forms in which they
//! only read. Everything else a command line runs is `write` (known to change something) or
//! `unknown` (not known to be read-only), and the policy's rule for those applies.
//!
//! The list is curated for troubleshooting (files and logs, processes, network, services,
//! storage, packages, git, containers and clusters). An entry says how the program's arguments
//! are judged: [`Check::Always`] (nothing it accepts writes), [`Check::Unless`] (reads unless
//! given one of the options that write or run code) or a function that reads its subcommand
//! and options. Options are matched as GNU tools read them: anywhere before `--`, long options
//! by any unambiguous prefix, short ones inside clusters. A word only known at run time where
//! an option may be is not known to be harmless.
//!
//! Interpreters, shells and REPLs are not on the list: what they run is judged by the rules
//! (`opaque-code`, `interactive-program`, nested command lines).

mod awk;
mod builtins;
mod clients;
mod host;
mod network;
mod sed;
mod services;
mod system;
mod text;
mod tools;

pub(super) use self::{
    awk::{Awk, awk},
    sed::{Sed, sed},
    text::pager as pager_on_terminal,
};

#[cfg(test)]
mod tests;

use super::{
    ShellKind,
    interp::{Program, SHELLS, is_interpreter, shell_program},
    walk::{Input, Walker, shown},
    words::Arg,
};

/// How a program's arguments are judged.
pub(super) enum Check {
    /// Nothing it accepts writes or runs other code.
    Always,
    /// Reads unless given one of these options.
    Unless(Opts),
    /// Reads its subcommand and options itself.
    Custom(fn(&Ctx, &[Arg]) -> Verdict),
}

/// Options that make a program write (or run code), and the ones that take a value (so that
/// the value is not read as options).
pub(super) struct Opts {
    pub short: &'static str,
    pub long: &'static [&'static str],
    pub short_arg: &'static str,
    pub long_arg: &'static [&'static str],
    /// What those options do, for the reason.
    pub why: &'static str,
}

/// What a program does with the arguments it was given.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Read,
    Write(String),
    Unknown(String),
}

/// What the checks may need besides the arguments.
pub(super) struct Ctx<'a> {
    pub program: &'a str,
    /// The channel has a terminal (pagers are interactive there).
    pub terminal: bool,
    pub stdin: &'a Input,
}

/// One entry of the list: program names and how their arguments are judged.
pub(super) struct Entry {
    pub names: &'static [&'static str],
    pub check: Check,
}

/// The whole list (see the module documentation).
pub(super) fn entries() -> impl Iterator<Item = &'static Entry> {
    text::ENTRIES
        .iter()
        .chain(system::ENTRIES)
        .chain(host::ENTRIES)
        .chain(network::ENTRIES)
        .chain(builtins::ENTRIES)
        .chain(tools::ENTRIES)
        .chain(clients::ENTRIES)
        .chain(services::ENTRIES)
        .chain(super::sql_client::ENTRIES)
}

fn lookup(program: &str) -> Option<&'static Entry> {
    entries().find(|e| e.names.contains(&program))
}

/// How many programs and argument forms the list knows (the forms: one per program for
/// `Always`, one per option or subcommand checker otherwise), for documentation and reports.
#[cfg(test)]
pub(super) fn size() -> (usize, usize) {
    let programs = entries().map(|e| e.names.len()).sum();
    let forms = entries()
        .map(|e| {
            e.names.len()
                * match &e.check {
                    Check::Always | Check::Custom(_) => 1,
                    Check::Unless(o) => 1 + o.short.len() + o.long.len(),
                }
        })
        .sum();
    (programs, forms)
}

/// The kind of one program's run, with the reason when it is not a read. Interpreters and
/// shells get their findings from the rules; here they are only not reads.
pub(super) fn classify(
    w: &mut Walker,
    program: &str,
    args: &[Arg],
    stdin: &Input,
) -> (ShellKind, String) {
    if SHELLS.contains(&program) {
        // The code it runs is walked (and judged) where it can be seen.
        return match shell_program(args) {
            Program::Inline(code) if code.exact().is_some() => (ShellKind::Read, String::new()),
            Program::Stdin if matches!(stdin, Input::Terminal | Input::Text(_)) => {
                (ShellKind::Read, String::new())
            }
            _ => (
                ShellKind::Unknown,
                format!("{program} runs code sluice cannot see"),
            ),
        };
    }
    if is_interpreter(program) {
        return if only_version(args) {
            (ShellKind::Read, String::new())
        } else {
            (
                ShellKind::Unknown,
                format!("{program} runs a program sluice cannot judge"),
            )
        };
    }
    let Some(entry) = lookup(program) else {
        return match KNOWN_WRITERS.iter().find(|(p, _)| *p == program) {
            Some((_, does)) => (ShellKind::Write, format!("{program} {does}")),
            None if program.starts_with("mkfs") => {
                (ShellKind::Write, format!("{program} makes a filesystem"))
            }
            None => (
                ShellKind::Unknown,
                format!("{program} is not on the read-only list"),
            ),
        };
    };
    let ctx = Ctx {
        program,
        terminal: w.origin.terminal,
        stdin,
    };
    let verdict = match &entry.check {
        Check::Always => Verdict::Read,
        Check::Unless(opts) => unless(program, args, opts),
        Check::Custom(f) => f(&ctx, args),
    };
    match verdict {
        Verdict::Read => (ShellKind::Read, String::new()),
        Verdict::Write(why) => (ShellKind::Write, why),
        Verdict::Unknown(why) => (ShellKind::Unknown, why),
    }
}

/// Programs known to change things, so a reviewer reads what they do rather than "not on the
/// list". Anything else not on the list is `unknown`.
const KNOWN_WRITERS: &[(&str, &str)] = &[
    ("rm", "removes files"),
    ("rmdir", "removes directories"),
    ("unlink", "removes a file"),
    ("mv", "moves or renames files"),
    ("cp", "copies files"),
    ("install", "copies files"),
    ("ln", "makes links"),
    ("mkdir", "makes directories"),
    ("touch", "creates files or changes their times"),
    ("chmod", "changes permissions"),
    ("chown", "changes owners"),
    ("chgrp", "changes groups"),
    ("chattr", "changes file attributes"),
    ("setfacl", "changes access lists"),
    ("truncate", "truncates files"),
    ("shred", "overwrites files"),
    ("dd", "copies data to a file or device"),
    ("rsync", "copies files"),
    ("scp", "copies files"),
    ("split", "writes files"),
    ("csplit", "writes files"),
    ("patch", "changes files"),
    ("pkill", "signals processes"),
    ("killall", "signals processes"),
    ("killall5", "signals every process"),
    ("renice", "changes process priorities"),
    ("shutdown", "stops the host"),
    ("reboot", "restarts the host"),
    ("halt", "stops the host"),
    ("poweroff", "stops the host"),
    ("kexec", "loads or runs another kernel"),
    ("useradd", "changes accounts"),
    ("userdel", "changes accounts"),
    ("usermod", "changes accounts"),
    ("passwd", "changes passwords"),
    ("apt-get", "installs or removes packages"),
    ("updatedb", "writes the locate database"),
    ("logrotate", "rotates and removes logs"),
    ("wall", "writes to every terminal"),
];

/// `--version`, `-V`, `--help`: nothing runs.
pub(super) fn only_version(args: &[Arg]) -> bool {
    !args.is_empty()
        && args
            .iter()
            .all(|a| matches!(a.exact(), Some("--version" | "-V" | "--help" | "-h" | "-v")))
}

/// [`Check::Unless`]: the first writing option found, or an argument only known at run time
/// where an option may be.
fn unless(program: &str, args: &[Arg], opts: &Opts) -> Verdict {
    match find_option(args, opts) {
        Found::None => Verdict::Read,
        Found::Option(o) => Verdict::Write(format!("{program} {o} {}", opts.why)),
        Found::Unknown(a) => Verdict::Unknown(format!(
            "{program} is given {}, only known at run time, which may be an option that {}",
            shown(&a),
            opts.why
        )),
    }
}

pub(super) enum Found {
    None,
    /// The option as written.
    Option(String),
    /// A word only known at run time in option position.
    Unknown(String),
}

/// Looks for any of `opts` among the options (GNU style: options anywhere before `--`).
pub(super) fn find_option(args: &[Arg], opts: &Opts) -> Found {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let Some(t) = a.exact() else {
            if a.may_be_option() {
                return Found::Unknown(a.text.clone());
            }
            i += 1;
            continue;
        };
        if t == "--" {
            return Found::None;
        }
        if let Some(long) = t.strip_prefix("--") {
            let (name, has_value) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            if long_matches(name, opts.long) {
                return Found::Option(t.to_owned());
            }
            if !has_value && long_matches_exact_or_prefix(name, opts.long_arg) {
                i += 1;
            }
        } else if t.len() > 1 && t.starts_with('-') {
            for (pos, c) in t[1..].char_indices() {
                if opts.short.contains(c) {
                    return Found::Option(format!("-{c}"));
                }
                if opts.short_arg.contains(c) {
                    if t[1 + pos + c.len_utf8()..].is_empty() {
                        i += 1;
                    }
                    break;
                }
            }
        }
        i += 1;
    }
    Found::None
}

/// `name` (as given after `--`) is one of `longs`, or an abbreviation GNU getopt would expand
/// to one of them. An abbreviation of several names is ambiguous for getopt (an error), but
/// counted as found.
fn long_matches(name: &str, longs: &[&str]) -> bool {
    !name.is_empty()
        && longs
            .iter()
            .any(|l| *l == name || (name.len() >= 2 && l.starts_with(name)))
}

fn long_matches_exact_or_prefix(name: &str, longs: &[&str]) -> bool {
    longs
        .iter()
        .any(|l| *l == name || (name.len() >= 3 && l.starts_with(name)))
}

/// The operands (words that are not options) before `--` and all words after it, given the
/// options that take a value.
pub(super) fn operands<'a>(args: &'a [Arg], short_arg: &str, long_arg: &[&str]) -> Vec<&'a Arg> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut after = false;
    while let Some(a) = args.get(i) {
        let t = a.exact();
        if after || !a.is_option() {
            if !after && t == Some("--") {
                after = true;
            } else {
                out.push(a);
            }
            i += 1;
            continue;
        }
        // An option word may be a glob (`--i*`): its text as written.
        let t = a.text.as_str();
        if let Some(long) = t.strip_prefix("--") {
            if !long.contains('=') && long_matches_exact_or_prefix(long, long_arg) {
                i += 1;
            }
        } else {
            for (pos, c) in t[1..].char_indices() {
                if short_arg.contains(c) {
                    if t[1 + pos + c.len_utf8()..].is_empty() {
                        i += 1;
                    }
                    break;
                }
            }
        }
        i += 1;
    }
    out
}

/// A subcommand program: skips the global options (those in `global_arg` take a value) and
/// returns the subcommand words that follow (up to `depth`), as written.
pub(super) fn subcommand<'a>(
    args: &'a [Arg],
    global_short_arg: &str,
    global_long_arg: &[&str],
) -> (Vec<&'a Arg>, Option<String>) {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let Some(t) = a.exact() else {
            return (Vec::new(), Some(a.text.clone()));
        };
        if !a.is_option() {
            break;
        }
        if t == "--" {
            i += 1;
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            if !long.contains('=') && global_long_arg.contains(&long) {
                i += 1;
            }
        } else {
            for (pos, c) in t[1..].char_indices() {
                if global_short_arg.contains(c) {
                    if t[1 + pos + c.len_utf8()..].is_empty() {
                        i += 1;
                    }
                    break;
                }
            }
        }
        i += 1;
    }
    (args[i.min(args.len())..].iter().collect(), None)
}

/// The literal text of the `n`th of `words`.
pub(super) fn nth<'a>(words: &[&'a Arg], n: usize) -> Option<&'a str> {
    words.get(n).and_then(|a| a.exact())
}

/// The subcommand (first operand) and the ones after it, for tools whose options may come
/// anywhere.
pub(super) fn verbs<'a>(
    args: &'a [Arg],
    short_arg: &str,
    long_arg: &[&str],
) -> Result<Vec<&'a Arg>, Verdict> {
    if let Some(a) = args
        .iter()
        .find(|a| a.exact().is_none() && a.may_be_option())
    {
        return Err(Verdict::Unknown(format!(
            "an argument only known at run time ({}) may change what it does",
            shown(&a.text)
        )));
    }
    Ok(operands(args, short_arg, long_arg))
}
