//! The rules, one program at a time, on argv after unwrapping. Each function names what it found
//! in its reason; none looks at the raw command text.

use super::{
    ShellKind, ShellRuleId as R,
    cluster::kube,
    editing::changes_line_editing,
    effects,
    interp::{
        SHELLS, eval, interpreter, is_interpreter, joined_string, key_driven, shell, shell_string,
        source, su,
    },
    names::{self, Trust},
    paths::{
        glob_parent, is_cwd_or_up, is_system_dir, normalize, output_path, path_of, resolved_args,
        write_targets,
    },
    readonly::{self, Awk, Sed, awk, sed},
    shutdown::shutdown,
    sql_client::client,
    stdout::output,
    walk::{Input, Walker, shown},
    words::{Arg, Fed},
    wrappers::scan_options,
};

/// Programs that fetch remote content; what they print is downloaded text.
pub(super) const DOWNLOADERS: &[&str] = &[
    "curl",
    "wget",
    "fetch",
    "nc",
    "ncat",
    "netcat",
    "socat",
    "http",
    "https",
    "xh",
    "lwp-request",
    "GET",
    "ftp",
    "tftp",
    "aria2c",
];

/// Applies every rule that concerns `program`, follows what it changes in the shell's state,
/// and records its run with its kind on the read-only list. Returns what it writes to
/// standard output.
pub(super) fn run(
    w: &mut Walker,
    program: &str,
    args: &[Arg],
    stdin: &Input,
    trust: &Trust,
) -> Input {
    if SHELLS.contains(&program) {
        shell(w, program, args, stdin);
    } else if is_interpreter(program) {
        interpreter(w, program, args, stdin);
    }
    key_driven(w, program, args);
    if program.starts_with("mkfs") {
        mkfs(w, program, args);
    }
    for target in write_targets(program, args) {
        output_path(w, &target, program);
    }
    match program {
        "rm" => rm(w, args),
        "find" => find(w, args),
        "shred" | "blkdiscard" | "wipefs" | "fdisk" | "cfdisk" | "sfdisk" | "parted" | "gdisk"
        | "sgdisk" | "mke2fs" | "mkswap" | "mkdosfs" | "mkntfs" => mkfs(w, program, args),
        "shutdown" | "reboot" | "halt" | "poweroff" | "init" | "telinit" | "systemctl" | "kill"
        | "killall5" | "pkill" | "killall" | "loginctl" | "kexec" | "dbus-send" | "busctl"
        | "gdbus" | "qdbus" => shutdown(w, program, args),
        "kubectl" | "oc" | "kubecolor" | "helm" => kube(w, program, args),
        "microk8s" | "k3s" => match args.split_first() {
            Some((first, rest)) if first.exact().is_some_and(|t| t == "kubectl") => {
                kube(w, "kubectl", rest);
            }
            _ => {}
        },
        "psql" | "mysql" | "mariadb" => client(w, program, args, stdin),
        "awk" | "gawk" | "mawk" | "nawk" => match awk(program, args) {
            Awk::Code(why) => {
                if let Input::Download(by) = stdin {
                    w.find(R::PipeToShell, format!("{why}, on what {by} downloaded"));
                }
                w.find(R::OpaqueCode, why);
            }
            Awk::Reads | Awk::Writes(_) => {}
        },
        "sed" => {
            if let Sed::Runs(why) = sed(args) {
                w.find(R::OpaqueCode, why);
            }
        }
        "less" | "more" | "most" | "pg" | "zless" | "zmore" if w.origin.terminal => {
            let ctx = readonly::Ctx {
                program,
                terminal: true,
                stdin,
            };
            if let readonly::Verdict::Unknown(why) = readonly::pager_on_terminal(&ctx, args) {
                w.find(R::InteractiveProgram, why);
            }
        }
        "sudo" | "doas" => shell(w, "sh", &[], stdin), // `sudo -i`: a shell on the input
        "script" => script(w, args, stdin),
        // `fc` (but `fc -l`) runs commands from the history, not this line's text.
        "fc" if !args.iter().any(|a| {
            a.exact()
                .is_some_and(|t| t.starts_with('-') && t.contains('l'))
        }) =>
        {
            w.uncertain("fc runs commands from the history, which sluice does not see here".into());
        }
        "eval" => eval(w, args, stdin),
        "source" | "." => source(w, program, args),
        "alias" => {
            for a in args.iter().filter(|a| !a.is_option()) {
                if let Some((name, _)) = a.prefix.split_once('=') {
                    let body = Arg {
                        text: a.text[name.len() + 1..].to_owned(),
                        prefix: a.prefix[name.len() + 1..].to_owned(),
                        ..a.clone()
                    };
                    // Checked now (its runs count for this line) and remembered for its uses.
                    match body.exact() {
                        Some(text) => w.state.define_alias(name, text),
                        None => w
                            .state
                            .names_changed("an alias whose body is only known at run time"),
                    }
                    shell_string(w, &body, &format!("the alias {name}"), &Input::Terminal);
                }
            }
        }
        // `trap ACTION SIGNAL...`: the action is a command line run later, in this shell.
        "trap" => {
            let operands: Vec<&Arg> = args.iter().filter(|a| !a.is_option()).collect();
            if let [action, _, ..] = operands.as_slice()
                && action.exact() != Some("-")
            {
                shell_string(w, action, "a trap action", &Input::Terminal);
            }
        }
        "su" | "runuser" => su(w, program, args, stdin),
        "flock" => {
            let s = scan_options(args, "wE", &["timeout", "conflict-exit-code"]);
            let rest = args.get(s.operand + 1..).unwrap_or_default();
            match rest.split_first() {
                Some((c, tail)) if matches!(c.exact(), Some("-c" | "--command")) => {
                    if let Some(cmd) = tail.first() {
                        shell_string(w, cmd, "flock -c", stdin);
                    }
                }
                Some(_) => {
                    w.deeper(|w| w.invoke(rest.to_vec(), stdin));
                }
                None => {}
            }
        }
        "watch" => {
            let s = scan_options(args, "nq", &["interval", "differences"]);
            let rest = &args[s.operand..];
            if s.has('x', "exec") {
                w.deeper(|w| w.invoke(rest.to_vec(), &Input::Terminal));
            } else {
                joined_string(w, rest, "watch", &Input::Terminal);
            }
        }
        "ssh" => {
            let s = scan_options(args, "bcDEeFIiJLlmOopQRSWwB", &[]);
            // The destination, then the remote command line (joined with spaces, like ssh).
            if let Some(rest) = args.get(s.operand + 1..)
                && !rest.is_empty()
            {
                joined_string(w, rest, "the remote command of ssh", &Input::Terminal);
            }
        }
        "env" => {
            let s = scan_options(args, "uCS", &["unset", "chdir", "split-string"]);
            if let Some(split) = s.value("S", "split-string") {
                let mut all = vec![split.clone()];
                all.extend_from_slice(&args[s.operand..]);
                joined_string(w, &all, "env -S", stdin);
            }
        }
        _ => {}
    }
    effects::apply(w, program, args);
    if let Some(why) = changes_line_editing(program, args, w.origin.terminal) {
        // Held: once it runs, the session stops following the terminal.
        w.run(Some(program), ShellKind::Unknown, why.clone());
        w.changes_editing(why);
    }
    let (kind, reason) = readonly::classify(w, program, args, stdin);
    names::record(w, program, kind, reason, trust);
    output(w, program, args, stdin)
}

/// `script [-c CMD] [FILE]`: runs CMD (or a shell on the terminal) and records it to FILE.
fn script(w: &mut Walker, args: &[Arg], stdin: &Input) {
    let s = scan_options(
        args,
        "cEIOBTo",
        &[
            "command",
            "echo",
            "log-in",
            "log-out",
            "log-io",
            "log-timing",
            "output-limit",
        ],
    );
    match s.value("c", "command") {
        Some(cmd) => shell_string(w, cmd, "script -c", stdin),
        None => shell(w, "sh", &[], stdin),
    }
}

// ---------------------------------------------------------------------------------------------
// rm-rf

/// Why removing `path` recursively is a disaster, if it is.
pub(super) fn dangerous_root(a: &Arg) -> Option<String> {
    if a.home {
        // `~`, `~/`, `~user`, `~/..`: a whole home directory (or more); `~/*`: all of it.
        let rest = a.text.split_once('/').map_or("", |(_, r)| r);
        let whole = rest.trim_end_matches('/').is_empty()
            || is_cwd_or_up(rest)
            || (a.glob && matches!(rest.trim_end_matches('/'), "*" | ".*" | "*.*"));
        return whole.then(|| format!("{} (a home directory)", a.text));
    }
    if a.glob {
        let parent = glob_parent(&a.text);
        let whole_dir = if parent.is_empty() {
            // A relative glob: only one that matches everything in the working directory.
            let first = a.text.split('/').next().unwrap_or_default();
            matches!(first, "*" | ".*" | "*.*")
        } else {
            let p = normalize(parent);
            p.as_deref().is_some_and(is_system_dir) || is_cwd_or_up(parent)
        };
        return whole_dir.then(|| format!("{} (a glob over a system directory)", a.text));
    }
    let t = a.text.as_str();
    if t.starts_with('/') {
        let p = normalize(t)?;
        return is_system_dir(&p).then(|| {
            if p == "/" {
                format!("{t} (the root directory)")
            } else {
                format!("{t} (a system directory)")
            }
        });
    }
    is_cwd_or_up(t).then(|| format!("{t} (the working directory or a parent of it)"))
}

pub(super) fn rm(w: &mut Walker, args: &[Arg]) {
    let mut recursive: Option<&str> = None;
    let mut no_preserve_root = false;
    let mut maybe_options: Vec<usize> = Vec::new();
    let mut operands: Vec<usize> = Vec::new();
    let mut options_end = false;
    for (i, a) in args.iter().enumerate() {
        if !options_end && a.exact() == Some("--") {
            options_end = true;
            continue;
        }
        // GNU rm takes options anywhere before `--`; none of them takes an argument.
        if !options_end && a.is_option() {
            if let Some(long) = a.text.strip_prefix("--") {
                let long = long.split('=').next().unwrap_or_default();
                if "recursive".starts_with(long) && !long.is_empty() {
                    recursive = Some(&a.text);
                }
                if long.len() > 3 && "no-preserve-root".starts_with(long) {
                    no_preserve_root = true;
                }
            } else if a.text.contains(['r', 'R']) {
                recursive = Some(&a.text);
            }
            continue;
        }
        if !options_end && !a.literal && a.may_be_option() {
            maybe_options.push(i);
        }
        operands.push(i);
    }
    let root_note = if no_preserve_root {
        ", with --no-preserve-root"
    } else {
        ""
    };
    let literal_danger = operands
        .iter()
        .filter(|&&i| args[i].literal)
        .find_map(|&i| danger_here(w, &args[i]));
    let unknown: Vec<usize> = operands
        .iter()
        .copied()
        .filter(|&i| !args[i].literal && fed_danger(&args[i]).is_some())
        .collect();
    if let Some(flag) = recursive {
        if let Some(why) = literal_danger {
            w.find(R::RmRf, format!("rm {flag} on {why}{root_note}"));
        } else if let Some(&i) = unknown.first() {
            w.find(
                R::RmRf,
                format!(
                    "rm {flag} on {}{root_note}",
                    fed_danger(&args[i]).unwrap_or_default()
                ),
            );
        }
        return;
    }
    // Not recursive as written, but an expansion may supply `-r`: dangerous when something
    // else can supply the path (another unknown word, a dangerous literal, or the same word
    // splitting into several).
    for &i in &maybe_options {
        let a = &args[i];
        let path_too = a.splits || literal_danger.is_some() || unknown.iter().any(|&j| j != i);
        if path_too {
            w.find(
                R::RmRf,
                format!(
                    "rm with {}, which may expand to -r and a dangerous path",
                    shown(&a.text)
                ),
            );
            return;
        }
    }
}

/// For an operand only known at run time: why it may be dangerous (`None` when it cannot be,
/// like a `find` path under a harmless literal root).
pub(super) fn fed_danger(a: &Arg) -> Option<String> {
    match &a.fed {
        Some(Fed::Find(roots)) => roots.iter().find_map(|r| {
            if !r.literal {
                Some(format!(
                    "paths found under {}, only known at run time",
                    shown(&r.text)
                ))
            } else {
                dangerous_root(r).map(|why| format!("paths found under {why}"))
            }
        }),
        Some(Fed::Xargs) => Some("arguments read by xargs at run time".into()),
        None => Some(format!("{}, only known at run time", shown(&a.text))),
    }
}

/// [`dangerous_root`] of a path as written, or of where it leads from the working directory,
/// `/proc/self/...` or links this input made (`cd / && rm -rf srv`).
fn danger_here(w: &Walker, a: &Arg) -> Option<String> {
    dangerous_root(a).or_else(|| {
        resolved_args(w, a).iter().find_map(|r| {
            dangerous_root(r).map(|why| format!("{why}, which {} names here", shown(&a.text)))
        })
    })
}

pub(super) fn find(w: &mut Walker, args: &[Arg]) {
    let mut i = 0;
    // Leading options: -H -L -P, -D debugopts, -Olevel.
    while let Some(t) = args.get(i).and_then(|a| a.exact()) {
        match t {
            "-H" | "-L" | "-P" => i += 1,
            "-D" => i += 2,
            t if t.starts_with("-O") => i += 1,
            _ => break,
        }
    }
    let mut roots: Vec<Arg> = Vec::new();
    while let Some(a) = args.get(i) {
        let expression = a.literal
            && ((a.text.len() > 1 && a.text.starts_with('-'))
                || matches!(a.text.as_str(), "(" | ")" | "!" | ","));
        if expression {
            break;
        }
        roots.push(a.clone());
        roots.extend(resolved_args(w, a));
        i += 1;
    }
    if roots.is_empty() {
        roots.push(Arg::lit("."));
    }
    while let Some(a) = args.get(i) {
        match a.exact().unwrap_or_default() {
            "-exec" | "-execdir" | "-ok" | "-okdir" => {
                let start = i + 1;
                let mut end = start;
                while let Some(b) = args.get(end) {
                    let t = b.exact();
                    if t == Some(";") || (t == Some("+") && end > start) {
                        break;
                    }
                    end += 1;
                }
                let argv: Vec<Arg> = args[start..end.min(args.len())]
                    .iter()
                    .map(|b| {
                        if b.literal && b.text.contains("{}") {
                            Arg::fed(Fed::Find(roots.clone()))
                        } else {
                            b.clone()
                        }
                    })
                    .collect();
                w.deeper(|w| w.invoke(argv, &Input::Terminal));
                i = end + 1;
            }
            "-delete" => {
                let danger = roots.iter().find_map(|r| {
                    if r.literal {
                        dangerous_root(r)
                    } else {
                        Some(format!("{}, only known at run time", shown(&r.text)))
                    }
                });
                if let Some(why) = danger {
                    w.find(R::RmRf, format!("find -delete under {why}"));
                }
                i += 1;
            }
            "-fprint" | "-fprint0" | "-fls" | "-fprintf" => {
                if let Some(file) = args.get(i + 1) {
                    output_path(w, file, "find");
                }
                i += if a.text == "-fprintf" { 3 } else { 2 };
            }
            // Tests that take a value: skip it, so `-name -delete` is a name.
            "-name" | "-iname" | "-path" | "-ipath" | "-wholename" | "-iwholename" | "-regex"
            | "-iregex" | "-lname" | "-ilname" | "-type" | "-xtype" | "-user" | "-group"
            | "-uid" | "-gid" | "-perm" | "-size" | "-mtime" | "-mmin" | "-atime" | "-amin"
            | "-ctime" | "-cmin" | "-newer" | "-anewer" | "-cnewer" | "-maxdepth" | "-mindepth"
            | "-links" | "-inum" | "-samefile" | "-used" | "-fstype" | "-context" | "-printf"
            | "-regextype" | "-files0-from" => i += 2,
            _ => i += 1,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// mkfs

pub(super) fn mkfs(w: &mut Walker, program: &str, args: &[Arg]) {
    let only_info = !args.is_empty()
        && args.iter().all(|a| {
            matches!(
                a.exact(),
                Some("-V" | "--version" | "-h" | "--help" | "-l" | "--list")
            )
        });
    if only_info {
        return;
    }
    let joined = || {
        shown(
            &args
                .iter()
                .map(|a| a.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        )
    };
    let s = scan_options(args, "", &[]);
    let writes = match program {
        "wipefs" => {
            (s.has('a', "all") || s.has('o', "offset") || args.iter().any(|a| !a.literal))
                && !s.has('n', "no-act")
        }
        "fdisk" | "gdisk" => !s.has('l', "list") && !s.has('x', "list-details"),
        "sfdisk" => {
            let read_only = ['l', 'd', 'J', 's', 'g', 'V', 'F']
                .iter()
                .any(|&c| s.short.contains(c))
                || s.long.iter().any(|l| {
                    matches!(
                        l.as_str(),
                        "list"
                            | "dump"
                            | "json"
                            | "show-size"
                            | "show-geometry"
                            | "verify"
                            | "list-free"
                            | "list-types"
                    )
                });
            !read_only
        }
        "sgdisk" => {
            let s = scan_options(args, "ib", &["info", "backup"]);
            !s.short.chars().all(|c| "pivOLb?".contains(c))
                || !s.long.iter().all(|l| {
                    matches!(
                        l.as_str(),
                        "print" | "info" | "verify" | "print-mbr" | "list-types" | "backup"
                    )
                })
        }
        "parted" => {
            let s = scan_options(args, "a", &["align"]);
            if s.has('l', "list") {
                false
            } else {
                // DEVICE then a script of commands; none is the interactive editor.
                match args.get(s.operand + 1).map(|a| a.exact()) {
                    None => true,
                    Some(Some("print" | "p" | "help" | "version")) => false,
                    Some(_) => true,
                }
            }
        }
        "shred" => {
            let on_device = args
                .iter()
                .filter(|a| !a.is_option())
                .any(|a| path_of(a).is_some_and(|p| p.starts_with("/dev/")));
            if on_device {
                w.find(R::Mkfs, format!("shred overwrites a device ({})", joined()));
            }
            return;
        }
        _ => true,
    };
    if writes {
        w.find(
            R::Mkfs,
            format!(
                "{program} writes filesystems or partition tables ({program} {})",
                joined()
            ),
        );
    }
}
