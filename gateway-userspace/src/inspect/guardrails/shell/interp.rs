//! Programs that run code: shells (`sh -c`, a script, standard input), `eval`, `source`, `su -c`
//! and the other interpreters.

use super::{
    ShellRuleId as R,
    walk::{Input, Walker, shown},
    words::Arg,
};

/// Shells whose `-c STRING`, script operand or standard input is shell code.
pub(super) const SHELLS: &[&str] = &[
    "sh", "bash", "rbash", "dash", "zsh", "ksh", "ksh93", "mksh", "ash", "yash", "fish", "csh",
    "tcsh",
];

/// A string the shell runs as a command line (`sh -c`, `eval`, an alias or trap body): parsed
/// and walked when literal, else what it runs is unknown.
pub(super) fn shell_string(w: &mut Walker, arg: &Arg, what: &str, stdin: &Input) {
    match arg.exact() {
        Some(text) => {
            w.nested(text, what, stdin);
        }
        None => unknown_code(w, arg, what),
    }
}

/// Words joined with spaces into one command line (`eval a b`, `ssh host cmd args`).
pub(super) fn joined_string(w: &mut Walker, args: &[Arg], what: &str, stdin: &Input) {
    let texts: Option<Vec<&str>> = args.iter().map(|a| a.exact()).collect();
    match texts {
        Some(texts) => {
            w.nested(&texts.join(" "), what, stdin);
        }
        None => {
            let unknown = args.iter().find(|a| a.exact().is_none()).cloned();
            if let Some(a) = unknown {
                let mut all = a;
                all.download = args.iter().any(|a| a.download);
                unknown_code(w, &all, what);
            }
        }
    }
}

pub(super) fn unknown_code(w: &mut Walker, arg: &Arg, what: &str) {
    if arg.download {
        w.find(
            R::PipeToShell,
            format!("{what} runs downloaded code ({})", shown(&arg.text)),
        );
    }
    w.find(
        R::DynamicCommand,
        format!(
            "{what} runs {}, which is only known at run time",
            shown(&arg.text)
        ),
    );
}

/// Where an interpreter reads its program from.
pub(super) enum Program<'a> {
    Stdin,
    Inline(&'a Arg),
    File(&'a Arg),
    /// A module, a version query, ...: nothing this rule can judge.
    Other,
}

pub(super) fn shell_program(args: &[Arg]) -> Program<'_> {
    let mut inline = false;
    let mut stdin = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let Some(t) = a.exact() else {
            break;
        };
        if t == "--" || t == "-" {
            i += 1;
            break;
        }
        if t.len() > 1 && (t.starts_with('-') || t.starts_with('+')) {
            if t.starts_with("--") {
                if matches!(t, "--rcfile" | "--init-file") {
                    i += 1;
                }
            } else {
                for c in t[1..].chars() {
                    match c {
                        'c' => inline = true,
                        's' => stdin = true,
                        'o' | 'O' => i += 1,
                        _ => {}
                    }
                }
            }
            i += 1;
            continue;
        }
        break;
    }
    match args.get(i) {
        Some(a) if inline => Program::Inline(a),
        None if inline => Program::Other,
        Some(_) if stdin => Program::Stdin,
        Some(a) => Program::File(a),
        None => Program::Stdin,
    }
}

pub(super) fn shell(w: &mut Walker, program: &str, args: &[Arg], stdin: &Input) {
    match shell_program(args) {
        Program::Inline(code) => shell_string(w, code, &format!("{program} -c"), stdin),
        Program::File(file) if file.download => {
            w.find(
                R::PipeToShell,
                format!("{program} runs a downloaded script ({})", shown(&file.text)),
            );
        }
        Program::File(file) => w.find(
            R::OpaqueCode,
            format!(
                "{program} runs the script {}, whose commands sluice cannot see",
                shown(&file.text)
            ),
        ),
        Program::Stdin => match stdin {
            Input::Terminal => {
                w.reads_session_input = true;
                // `bash -i < script`: an interactive shell expands history in what it reads.
                if args.iter().any(|a| {
                    a.exact().is_some_and(|t| {
                        t.starts_with('-') && !t.starts_with("--") && t.contains('i')
                    })
                }) {
                    w.session_input_interactive = true;
                }
            }
            Input::Text(text) => {
                w.nested(text, &format!("the input of {program}"), &Input::Terminal);
            }
            Input::Download(by) => w.find(
                R::PipeToShell,
                format!("{program} runs code downloaded by {by}"),
            ),
            Input::Opaque(what) => w.find(
                R::OpaqueCode,
                format!("{program} runs commands read from {what}"),
            ),
        },
        Program::Other => {}
    }
}

/// Interpreters and REPLs: what they run is code sluice does not judge.
pub(super) fn is_interpreter(program: &str) -> bool {
    program.starts_with("python")
        || program.starts_with("lua")
        || program.starts_with("pypy")
        || matches!(
            program,
            "perl"
                | "ruby"
                | "node"
                | "nodejs"
                | "bun"
                | "deno"
                | "php"
                | "tclsh"
                | "wish"
                | "pwsh"
                | "powershell"
                | "Rscript"
                | "R"
                | "julia"
                | "irb"
                | "pry"
                | "ipython"
                | "ipython3"
                | "bpython"
                | "jshell"
                | "ghci"
                | "guile"
                | "racket"
                | "sbcl"
                | "clisp"
                | "scala"
                | "groovy"
                | "groovysh"
                | "erl"
                | "iex"
                | "elixir"
                | "ocaml"
                | "expect"
                | "gdb"
                | "lldb"
                | "dc"
                | "sqlite3"
                | "mongo"
                | "mongosh"
                | "osascript"
        )
}

/// Editors: they act on keys (no Enter needed) and write files; without a terminal they read
/// editing commands from their input.
pub(super) const EDITORS: &[&str] = &[
    "vi",
    "vim",
    "nvim",
    "view",
    "vimdiff",
    "ex",
    "ed",
    "red",
    "nano",
    "pico",
    "emacs",
    "emacsclient",
    "joe",
    "micro",
    "mcedit",
    "jed",
    "kak",
    "hx",
    "ne",
    "mg",
    "sudoedit",
];

/// Full-screen programs that act on single keys: file managers, terminal multiplexers.
const KEY_DRIVEN: &[&str] = &[
    "mc", "ranger", "nnn", "vifm", "lf", "tmux", "screen", "byobu",
];

/// Modules `python -m` may run that only read (and print).
const READ_ONLY_MODULES: &[&str] = &["json.tool", "platform", "sysconfig"];

/// Interpreters run code sluice cannot judge (`opaque-code`): inline code, a script, a program
/// on standard input. Downloaded code is `pipe-to-shell`. A REPL on a terminal is an
/// `interactive-program`.
pub(super) fn interpreter(w: &mut Walker, program: &str, args: &[Arg], stdin: &Input) {
    let (inline, next_arg, module): (&str, &str, &str) = match program {
        p if p.starts_with("python") || p.starts_with("pypy") => ("c", "WXQ", "m"),
        "perl" => ("eE", "", ""),
        "ruby" | "irb" | "pry" => ("e", "rICE", ""),
        "node" | "nodejs" | "bun" | "deno" => ("ep", "r", ""),
        "php" => ("r", "cdf", ""),
        p if p.starts_with("lua") => ("e", "l", ""),
        "sqlite3" => ("", "", ""),
        _ => ("ec", "", ""),
    };
    if crate::inspect::guardrails::shell::readonly::only_version(args) {
        return;
    }
    // Their operands are a database or a process, not a program: without a command (SQL,
    // `-batch`/`-ex`) they read commands from the input.
    let commands_given = match program {
        "sqlite3" => args.iter().filter(|a| !a.is_option()).nth(1).is_some(),
        "gdb" | "lldb" => args.iter().any(|a| {
            matches!(
                a.exact(),
                Some("-batch" | "--batch" | "-ex" | "-x" | "--eval-command" | "-o" | "-s")
            )
        }),
        _ => true,
    };
    if !commands_given {
        return stdin_code(w, program, stdin);
    }
    let mut program_src = Program::Stdin;
    let mut module_name: Option<&Arg> = None;
    let mut i = 0;
    'args: while let Some(a) = args.get(i) {
        let Some(t) = a.exact() else {
            program_src = Program::File(a);
            break;
        };
        if t == "-" {
            break;
        }
        if t == "--" {
            program_src = args.get(i + 1).map_or(Program::Stdin, Program::File);
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            if matches!(long, "eval" | "print" | "command") {
                program_src = args.get(i + 1).map_or(Program::Other, Program::Inline);
                break;
            }
            if long.starts_with("eval=") || long.starts_with("print=") {
                program_src = Program::Inline(a);
                break;
            }
            if matches!(long, "require" | "import" | "loader") {
                i += 1;
            }
            i += 1;
            continue;
        }
        if t.len() > 1 && t.starts_with('-') {
            for (pos, c) in t[1..].char_indices() {
                let attached = !t[1 + pos + c.len_utf8()..].is_empty();
                if inline.contains(c) {
                    program_src = if attached {
                        Program::Inline(a)
                    } else {
                        args.get(i + 1).map_or(Program::Other, Program::Inline)
                    };
                    break 'args;
                }
                if module.contains(c) || (program == "php" && c == 'f') {
                    program_src = if program == "php" {
                        args.get(i + 1).map_or(Program::Other, Program::File)
                    } else {
                        module_name = if attached { Some(a) } else { args.get(i + 1) };
                        Program::Other
                    };
                    break 'args;
                }
                if next_arg.contains(c) {
                    if !attached {
                        i += 1;
                    }
                    break;
                }
            }
            i += 1;
            continue;
        }
        program_src = Program::File(a);
        break;
    }
    let code = |w: &mut Walker, why: String| w.find(R::OpaqueCode, why);
    match program_src {
        Program::Inline(a) | Program::File(a) if a.download => w.find(
            R::PipeToShell,
            format!("{program} runs downloaded code ({})", shown(&a.text)),
        ),
        Program::Inline(a) => code(
            w,
            format!(
                "{program} runs inline code ({}) sluice cannot judge",
                shown(&a.text)
            ),
        ),
        Program::File(a) => code(
            w,
            format!(
                "{program} runs the program {}, which sluice cannot see",
                shown(&a.text)
            ),
        ),
        Program::Stdin => match stdin {
            Input::Download(by) => w.find(
                R::PipeToShell,
                format!("{program} runs code downloaded by {by}"),
            ),
            Input::Terminal if w.origin.terminal => w.find(
                R::InteractiveProgram,
                format!(
                    "{program} reads code from the terminal (a REPL), which sluice does not follow"
                ),
            ),
            Input::Terminal => code(
                w,
                format!("{program} runs code read from the session's input"),
            ),
            Input::Text(_) => code(w, format!("{program} runs code given as literal text")),
            Input::Opaque(what) => code(w, format!("{program} runs code read from {what}")),
        },
        Program::Other => {
            let known = module_name
                .and_then(|m| m.exact())
                .map(|m| m.strip_prefix("-m").unwrap_or(m))
                .is_some_and(|m| READ_ONLY_MODULES.contains(&m));
            if !known {
                code(
                    w,
                    format!("{program} runs a module or code sluice cannot judge"),
                );
            }
        }
    }
}

/// An interpreter reading its program from standard input.
fn stdin_code(w: &mut Walker, program: &str, stdin: &Input) {
    let why = match stdin {
        Input::Download(by) => {
            return w.find(
                R::PipeToShell,
                format!("{program} runs code downloaded by {by}"),
            );
        }
        Input::Terminal if w.origin.terminal => {
            return w.find(
                R::InteractiveProgram,
                format!(
                    "{program} reads code from the terminal (a REPL), which sluice does not follow"
                ),
            );
        }
        Input::Terminal => format!("{program} runs code read from the session's input"),
        Input::Text(_) => format!("{program} runs code given as literal text"),
        Input::Opaque(what) => format!("{program} runs code read from {what}"),
    };
    w.find(R::OpaqueCode, why);
}

/// Editors and key-driven programs: `interactive-program` on a terminal, `opaque-code`
/// (editing commands read from the input) without one.
pub(super) fn key_driven(w: &mut Walker, program: &str, args: &[Arg]) {
    let key_driven = KEY_DRIVEN.contains(&program)
        && (args.is_empty()
            || args.first().and_then(|a| a.exact()).is_some_and(|t| {
                matches!(
                    t,
                    "attach" | "a" | "new" | "new-session" | "-r" | "-x" | "-R" | "-S"
                )
            }));
    // `top` on a terminal takes single keys (`W` writes its configuration); `top -b` prints.
    let key_driven = key_driven
        || (program == "top"
            && !args.iter().any(|a| {
                a.exact().is_some_and(|t| {
                    t == "--batch"
                        || (t.starts_with('-') && !t.starts_with("--") && t.contains('b'))
                })
            }));
    if !EDITORS.contains(&program) && !key_driven {
        return;
    }
    if w.origin.terminal {
        w.find(
            R::InteractiveProgram,
            format!(
                "{program} acts on keys sluice does not see (it needs no Enter to change files)"
            ),
        );
    } else if EDITORS.contains(&program) {
        w.find(
            R::OpaqueCode,
            format!("{program} runs editing commands read from its input"),
        );
    }
}

/// `eval` runs its words, joined, in this shell (a `cd` there moves this shell).
pub(super) fn eval(w: &mut Walker, args: &[Arg], stdin: &Input) {
    let args = match args.first().and_then(|a| a.exact()) {
        Some("--") => &args[1..],
        _ => args,
    };
    if args.is_empty() {
        return;
    }
    let texts: Option<Vec<&str>> = args.iter().map(|a| a.exact()).collect();
    match texts {
        Some(texts) => {
            w.nested_here(&texts.join(" "), "eval", stdin);
        }
        None => joined_string(w, args, "eval", stdin),
    }
}

pub(super) fn source(w: &mut Walker, program: &str, args: &[Arg]) {
    let Some(file) = args.iter().find(|a| a.exact() != Some("--")) else {
        return;
    };
    if file.download {
        w.find(
            R::PipeToShell,
            format!("{program} runs downloaded code ({})", shown(&file.text)),
        );
    } else {
        w.find(
            R::OpaqueCode,
            format!(
                "{program} {} runs commands from a file sluice cannot see",
                shown(&file.text)
            ),
        );
    }
}

pub(super) fn su(w: &mut Walker, program: &str, args: &[Arg], stdin: &Input) {
    // su permutes its options (`su root -c cmd`); runuser -u USER runs argv.
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.exact() {
            Some("-c" | "--command") => {
                if let Some(cmd) = args.get(i + 1) {
                    shell_string(w, cmd, &format!("{program} -c"), stdin);
                }
                return;
            }
            Some(t) if t.starts_with("--command=") => {
                let cmd = Arg::lit(&t["--command=".len()..]);
                shell_string(w, &cmd, &format!("{program} -c"), stdin);
                return;
            }
            Some("-u" | "--user") if program == "runuser" => {
                let mut rest = args.get(i + 2..).unwrap_or_default();
                if rest.first().and_then(|a| a.exact()) == Some("--") {
                    rest = &rest[1..];
                }
                if !rest.is_empty() {
                    w.deeper(|w| w.invoke(rest.to_vec(), stdin));
                }
                return;
            }
            Some("-g" | "-G" | "-s" | "-w" | "--group" | "--supp-group" | "--shell") => i += 2,
            _ => i += 1,
        }
    }
    // No command: a shell reads the session's input.
    shell(w, program, &[], stdin);
}
