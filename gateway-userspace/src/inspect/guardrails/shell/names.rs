//! Names: which program a command name really runs (a system program, a file reached by a path,
//! a copy this input made, a name whose lookup `PATH` or `hash -p` changed), and what setting
//! a variable does (`PATH=`, `LD_PRELOAD=`, `PS1='$(...)'`).

use super::{
    ShellKind, ShellRuleId, editing,
    interp::shell_string,
    state::{Place, Written},
    walk::{Input, Walker, basename, shown},
    words::{self, Arg},
};

/// Directories whose programs are the system's: only root writes there.
const PROGRAM_DIRS: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/snap/bin",
];

/// Variables a program may be given in its environment without changing what it runs or
/// writes: locale, time zone, terminal size and colours, and the PostgreSQL connection.
const SAFE_ENV: &[&str] = &[
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "COLUMNS",
    "LINES",
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "SYSTEMD_COLORS",
    "SYSTEMD_URLIFY",
    "TIME_STYLE",
    "QUOTING_STYLE",
    "BLOCK_SIZE",
    "BLOCKSIZE",
    "DF_BLOCK_SIZE",
    "DU_BLOCK_SIZE",
    "LS_BLOCK_SIZE",
    "LS_COLORS",
    "GREP_COLOR",
    "GREP_COLORS",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGCONNECT_TIMEOUT",
    "PGAPPNAME",
    "PGSSLMODE",
    "PGTZ",
    "DEBIAN_FRONTEND",
];

/// Pager variables: safe set to nothing or `cat` (so common: `SYSTEMD_PAGER= journalctl`).
const PAGER_ENV: &[&str] = &[
    "PAGER",
    "SYSTEMD_PAGER",
    "GIT_PAGER",
    "MANPAGER",
    "PSQL_PAGER",
];

/// Variables the shell itself acts on: what runs (`PATH`, `BASH_ENV`, prompts), where `~` and
/// `cd` go, where history is written, how lines are read.
const SHELL_SPECIAL: &[&str] = &[
    "PATH",
    "BASH_ENV",
    "ENV",
    "HISTFILE",
    "HOME",
    "CDPATH",
    "INPUTRC",
    "histchars",
    "SHELLOPTS",
    "BASHOPTS",
    "BASH_CMDS",
    "BASH_ALIASES",
    "BASH_COMPAT",
    "BASH_XTRACEFD",
    "EXECIGNORE",
    "SHELL",
];

/// Prefixes of variables programs read settings, plugins or code from (`LD_PRELOAD`,
/// `LESSOPEN`, `GIT_SSH_COMMAND`, `PYTHONSTARTUP`, ...): setting one, even as a shell
/// variable that may already be exported, changes what later programs run.
const RISKY_PREFIXES: &[&str] = &[
    "LD_",
    "GIT_",
    "PYTHON",
    "PERL",
    "RUBY",
    "NODE_",
    "JAVA",
    "_JAVA",
    "JDK_",
    "LESS",
    "KUBE",
    "DOCKER_",
    "SSH_",
    "SUDO_",
    "PSQL",
    "PG",
    "SYSTEMD_",
    "XDG_",
    "OPENSSL",
    "CURL",
    "WGET",
    "TAR_",
    "GZIP",
    "XZ_",
    "ZSTD",
    "AWK",
    "BASH",
    "GLIBC_",
    "GCONV_",
    "MAN",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "BROWSER",
    "TERMINFO",
    "NLSPATH",
    "LOCPATH",
    "HOSTALIASES",
    "RES_",
    "LOCALDOMAIN",
    "MALLOC_",
    "SSLKEYLOGFILE",
    "GNUPGHOME",
    "GPG",
    "DBUS_",
    "MAIL",
    "PROMPT_COMMAND",
    "PS",
];

/// How an assignment reaches programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Exported {
    /// A shell variable (`X=1`, `declare X=1`); it reaches programs only if already exported.
    No,
    /// `export X=1`, `declare -x X=1`: every later program of the shell gets it.
    Yes,
    /// `X=1 cmd`, `env X=1 cmd`: the command's environment.
    ForCommand,
}

/// Whether a declaration builtin's assignments are exported (`export`, `declare -x`).
pub(super) fn declares_exported(argv: &[Arg]) -> Exported {
    let program = argv.first().and_then(|a| a.exact()).map(basename);
    let x_flag = argv[1..].iter().any(|a| {
        a.exact()
            .is_some_and(|t| t.starts_with('-') && !t.starts_with("--") && t.contains('x'))
    });
    match program {
        Some("export") => Exported::Yes,
        Some("declare" | "typeset" | "local" | "readonly") if x_flag => Exported::Yes,
        _ => Exported::No,
    }
}

/// Whether a variable set this way changes what programs run or write; why, if so.
pub(super) fn env_risk(name: &str, value: &Arg, exported: Exported) -> Option<String> {
    let safe_value = value.exact().is_some_and(|v| v.is_empty() || v == "cat");
    let safe = SAFE_ENV.contains(&name)
        || name.starts_with("LC_")
        || (PAGER_ENV.contains(&name) && safe_value)
        || (name == "LESSSECURE" && value.exact() == Some("1"));
    if safe {
        return None;
    }
    let special = SHELL_SPECIAL.contains(&name)
        || RISKY_PREFIXES.iter().any(|p| name.starts_with(p))
        || name.ends_with("PAGER")
        || name.ends_with("EDITOR");
    match exported {
        Exported::Yes | Exported::ForCommand => Some(format!(
            "sets {name} in the environment of what runs, which can change what it runs or writes"
        )),
        Exported::No if special => Some(format!(
            "sets {name}, which changes what the shell or later programs run"
        )),
        Exported::No => None,
    }
}

/// An assignment (`X=1`, `X=1 cmd`, `export X=1`, `env X=1 cmd`, `for X in ...`): its effect on
/// the shell's state, its run if it can change what runs, and the code it holds (prompts).
pub(super) fn assign(w: &mut Walker, name: &str, value: &Arg, exported: Exported) {
    if editing::editing_variable(name) {
        w.changes_editing(format!("setting {name} changes how later lines are read"));
    }
    match name {
        "PATH" => {
            let appends = value.text.starts_with("$PATH:") || value.text.starts_with("${PATH}:");
            if !appends {
                let why = format!("PATH is set to {}", shown(&value.text));
                if exported == Exported::ForCommand {
                    w.path_prefix = Some(why);
                } else {
                    w.state.names_changed(&why);
                }
            }
        }
        "BASH_CMDS" | "BASH_ALIASES" if exported != Exported::ForCommand => {
            w.state
                .names_changed(&format!("{name} changes what command names run"));
        }
        "HOME" if exported != Exported::ForCommand => w.state.home_changed = true,
        "CDPATH" if exported != Exported::ForCommand => w.state.cdpath = true,
        // The shell expands prompts (and runs their command substitutions) at every prompt.
        "PS0" | "PS1" | "PS2" | "PS3" | "PS4" => prompt(w, name, value),
        "PROMPT_COMMAND" => shell_string(w, value, "PROMPT_COMMAND", &Input::Terminal),
        _ => {}
    }
    let prompt_without_code = name.starts_with("PS") && name.len() == 3;
    if let Some(why) = env_risk(name, value, exported)
        && !(prompt_without_code && exported == Exported::No)
        && name != "PROMPT_COMMAND"
    {
        w.run(None, ShellKind::Unknown, why);
    }
}

/// A prompt string: its command substitutions run at every prompt.
fn prompt(w: &mut Walker, name: &str, value: &Arg) {
    let Some(text) = value.exact() else {
        w.find(
            ShellRuleId::DynamicCommand,
            format!(
                "{name} is set to {}, only known at run time",
                shown(&value.text)
            ),
        );
        return;
    };
    match words::parse_heredoc(text) {
        Ok((_, substitutions)) => {
            for s in &substitutions {
                w.nested(
                    s,
                    &format!("a command substitution in {name}"),
                    &Input::Terminal,
                );
            }
        }
        Err(e) => w.find(
            super::RuleId::Unparseable,
            format!("{name} could not be parsed: {e}"),
        ),
    }
}

/// Whether a program name may be trusted to be the system's program of that name.
pub(super) enum Trust {
    Trusted,
    /// Reached by a path outside the system's program directories, or through a changed
    /// `PATH`: whatever it is, it is not known to be read-only.
    Untrusted(String),
    /// A file this input wrote, with content sluice did not see.
    Written(String),
    /// A file this input downloaded.
    Downloaded(String),
}

/// The program a command name runs (for the rules: its base name, or the program it is a copy
/// of) and whether that name can be trusted.
pub(super) fn program(w: &Walker, name: &str, home: bool) -> (String, Trust) {
    let st = &w.state;
    let (path, hashed) = match st.hashed.get(name) {
        Some(p) if !name.contains('/') => (p.clone(), true),
        _ => (name.to_owned(), false),
    };
    if !path.contains('/') {
        let trust = match (&st.names_untrusted, &w.path_prefix) {
            (Some(why), _) | (None, Some(why)) => Trust::Untrusted(format!(
                "runs {} found through a changed lookup ({why})",
                shown(name)
            )),
            (None, None) => Trust::Trusted,
        };
        return (path, trust);
    }
    let places = st.resolve(&path, home && !hashed);
    let via = if hashed {
        format!("{name} (hash -p {path})")
    } else {
        path.clone()
    };
    match st.written(&places) {
        Some(Written::Copy(of)) => {
            return (
                of.clone(),
                Trust::Untrusted(format!(
                    "runs {}, a copy of {of} this input made",
                    shown(&via)
                )),
            );
        }
        Some(Written::Unseen) => {
            return (
                basename(&path).to_owned(),
                Trust::Written(format!("runs {}, a file this input wrote", shown(&via))),
            );
        }
        Some(Written::Downloaded(by)) => {
            return (
                basename(&path).to_owned(),
                Trust::Downloaded(format!(
                    "runs {}, a file this input downloaded with {by}",
                    shown(&via)
                )),
            );
        }
        None => {}
    }
    // The program the path leads to (through links this input made): its base name.
    let program = match places.as_slice() {
        [Place::Abs(p)] => basename(p).to_owned(),
        _ => basename(&path).to_owned(),
    };
    let in_program_dir = |p: &Place| match p {
        Place::Abs(p) => PROGRAM_DIRS.iter().any(|d| {
            p.strip_prefix(d)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|rest| !rest.contains('/'))
        }),
        _ => false,
    };
    let trust = if let Some(why) = &st.names_untrusted {
        Trust::Untrusted(format!("runs {} ({why})", shown(&via)))
    } else if !places.is_empty() && places.iter().all(in_program_dir) {
        Trust::Trusted
    } else {
        Trust::Untrusted(format!(
            "runs {} by a path outside the system's program directories",
            shown(&via)
        ))
    };
    (program, trust)
}

/// Whether a written file lands in the system's program directories (then a bare name may run it).
pub(super) fn in_program_dirs(places: &[Place]) -> bool {
    places.iter().any(|p| match p {
        Place::Abs(p) => PROGRAM_DIRS.iter().any(|d| p.starts_with(&format!("{d}/"))),
        _ => false,
    })
}

/// Records a program's run: its kind on the read-only list, unless its name is not to be
/// trusted (then unknown), or it is a file this input wrote (opaque code) or downloaded.
pub(super) fn record(
    w: &mut Walker,
    program: &str,
    kind: ShellKind,
    reason: String,
    trust: &Trust,
) {
    let (kind, reason) = match trust {
        Trust::Trusted => (kind, reason),
        Trust::Untrusted(why) => (ShellKind::Unknown, why.clone()),
        Trust::Written(why) => {
            w.find(ShellRuleId::OpaqueCode, why.clone());
            (ShellKind::Unknown, why.clone())
        }
        Trust::Downloaded(why) => {
            w.find(ShellRuleId::PipeToShell, why.clone());
            (ShellKind::Unknown, why.clone())
        }
    };
    w.run(Some(program), kind, reason);
}
