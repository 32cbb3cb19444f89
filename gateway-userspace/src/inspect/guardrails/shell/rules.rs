//! The rules, one program at a time, on argv after unwrapping. Each function names what it found
//! in its reason; none looks at the raw command text.

use super::{
    RuleId, ShellRule, ShellRuleId as R,
    walk::{Input, Walker, scan_options, shown},
    words::{Arg, Fed, ansi_c_unescape},
};
use crate::inspect::guardrails::analyze;

/// Shells whose `-c STRING`, script operand or standard input is shell code.
const SHELLS: &[&str] = &[
    "sh", "bash", "rbash", "dash", "zsh", "ksh", "ksh93", "mksh", "ash", "yash", "fish", "csh",
    "tcsh",
];

/// Programs that fetch remote content; what they print is downloaded text.
const DOWNLOADERS: &[&str] = &[
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

/// Top-level directories whose recursive removal breaks the host or loses its data (`/lib*`
/// matches `/lib32`, `/lib64`, ...). Direct children of `/usr` count too.
const SYSTEM_DIRS: &[&str] = &[
    "bin", "boot", "dev", "etc", "home", "lib", "opt", "proc", "root", "sbin", "srv", "sys", "usr",
    "var",
];

/// Device nodes that are not storage: writing them loses nothing.
const HARMLESS_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/stdin",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/tty",
    "/dev/console",
];

/// Device directories whose entries are not storage (bash's `/dev/tcp/host/port` is a socket).
const HARMLESS_DEVICE_DIRS: &[&str] = &[
    "/dev/fd/",
    "/dev/pts/",
    "/dev/tcp/",
    "/dev/udp/",
    "/dev/shm/",
    "/dev/mqueue/",
];

/// Applies every rule that concerns `program`; returns what it writes to standard output.
pub(super) fn run(w: &mut Walker, program: &str, args: &[Arg], stdin: &Input) -> Input {
    if SHELLS.contains(&program) {
        shell(w, program, args, stdin);
    } else if is_interpreter(program) {
        interpreter(w, program, args, stdin);
    }
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
        "shutdown" | "reboot" | "halt" | "poweroff" | "init" | "telinit" | "systemctl" | "kill" => {
            shutdown(w, program, args)
        }
        "kubectl" | "oc" | "kubecolor" | "helm" => kube(w, program, args),
        "microk8s" | "k3s" => match args.split_first() {
            Some((first, rest)) if first.exact().is_some_and(|t| t == "kubectl") => {
                kube(w, "kubectl", rest);
            }
            _ => {}
        },
        "psql" => psql(w, args, stdin),
        "mysql" | "mariadb" => mysql(w, program, args, stdin),
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
    output(w, program, args, stdin)
}

/// What a program writes to standard output, as far as the rules care: literal text, the
/// download or input it passes on, or something opaque.
fn output(w: &mut Walker, program: &str, args: &[Arg], stdin: &Input) -> Input {
    if DOWNLOADERS.contains(&program) {
        w.downloaded();
        return Input::Download(program.to_owned());
    }
    let opaque = || Input::Opaque(format!("the output of {program}"));
    match program {
        "echo" => echo_text(args).map_or_else(opaque, Input::Text),
        "printf" => printf_text(args).map_or_else(opaque, Input::Text),
        "cat" | "tee" => {
            let files = args
                .iter()
                .filter(|a| !a.is_option() && a.exact() != Some("-"))
                .count();
            if program == "tee" || files == 0 {
                stdin.clone()
            } else {
                opaque()
            }
        }
        _ => opaque(),
    }
}

fn echo_text(args: &[Arg]) -> Option<String> {
    let mut escapes = false;
    let mut newline = true;
    let mut i = 0;
    while let Some(flags) = args.get(i).and_then(|a| a.exact()) {
        let Some(letters) = flags.strip_prefix('-') else {
            break;
        };
        if letters.is_empty() || !letters.chars().all(|c| matches!(c, 'n' | 'e' | 'E')) {
            break;
        }
        for c in letters.chars() {
            match c {
                'n' => newline = false,
                'e' => escapes = true,
                _ => escapes = false,
            }
        }
        i += 1;
    }
    let words: Option<Vec<&str>> = args[i..].iter().map(|a| a.exact()).collect();
    let mut text = words?.join(" ");
    if escapes {
        text = ansi_c_unescape(&text)?;
    }
    if newline {
        text.push('\n');
    }
    Some(text)
}

/// `printf FORMAT ARGS...` of literals: `%s`/`%b`/`%d`-style directives take the next argument
/// as written; the format repeats while arguments remain, as printf does.
fn printf_text(args: &[Arg]) -> Option<String> {
    let words: Option<Vec<&str>> = args.iter().map(|a| a.exact()).collect();
    let words = words?;
    let (format, mut rest) = match words.split_first() {
        Some((f, r)) if *f == "--" => r.split_first()?,
        Some((f, _)) if f.starts_with('-') => return None, // `-v var`: not stdout
        Some(x) => x,
        None => return None,
    };
    let format = ansi_c_unescape(format)?;
    let mut out = String::new();
    loop {
        let mut chars = format.chars().peekable();
        let mut used = 0;
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                out.push('%');
                continue;
            }
            // Flags, width, precision, then the conversion letter.
            while chars
                .peek()
                .is_some_and(|c| !c.is_ascii_alphabetic() && *c != '%')
            {
                chars.next();
            }
            chars.next()?;
            if let Some((first, tail)) = rest.split_first() {
                out.push_str(first);
                rest = tail;
                used += 1;
            }
        }
        if rest.is_empty() || used == 0 {
            return Some(out);
        }
    }
}

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
fn joined_string(w: &mut Walker, args: &[Arg], what: &str, stdin: &Input) {
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

fn unknown_code(w: &mut Walker, arg: &Arg, what: &str) {
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
enum Program<'a> {
    Stdin,
    Inline(&'a Arg),
    File(&'a Arg),
    /// A module, a version query, ...: nothing this rule can judge.
    Other,
}

fn shell_program(args: &[Arg]) -> Program<'_> {
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

fn shell(w: &mut Walker, program: &str, args: &[Arg], stdin: &Input) {
    match shell_program(args) {
        Program::Inline(code) => shell_string(w, code, &format!("{program} -c"), stdin),
        Program::File(file) if file.download => {
            w.find(
                R::PipeToShell,
                format!("{program} runs a downloaded script ({})", shown(&file.text)),
            );
        }
        Program::File(file) => w.find(
            R::DynamicCommand,
            format!(
                "{program} runs the script {}, whose commands sluice cannot see",
                shown(&file.text)
            ),
        ),
        Program::Stdin => match stdin {
            Input::Terminal => w.reads_session_input = true,
            Input::Text(text) => {
                w.nested(text, &format!("the input of {program}"), &Input::Terminal);
            }
            Input::Download(by) => w.find(
                R::PipeToShell,
                format!("{program} runs code downloaded by {by}"),
            ),
            Input::Opaque(what) => w.find(
                R::DynamicCommand,
                format!("{program} runs commands read from {what}"),
            ),
        },
        Program::Other => {}
    }
}

fn is_interpreter(program: &str) -> bool {
    program.starts_with("python")
        || program.starts_with("lua")
        || matches!(
            program,
            "perl" | "ruby" | "node" | "nodejs" | "bun" | "php" | "tclsh" | "pwsh" | "Rscript"
        )
}

/// Other interpreters: only downloaded code is judged (`curl | python3`, `perl <(wget ...)`);
/// what a literal `python3 -c '...'` does is beyond these rules.
fn interpreter(w: &mut Walker, program: &str, args: &[Arg], stdin: &Input) {
    let (inline, next_arg, module): (&str, &str, &str) = match program {
        p if p.starts_with("python") => ("c", "WXQ", "m"),
        "perl" => ("eE", "", ""),
        "ruby" => ("e", "rICE", ""),
        "node" | "nodejs" | "bun" => ("ep", "r", ""),
        "php" => ("r", "cdf", ""),
        p if p.starts_with("lua") => ("e", "l", ""),
        _ => ("ec", "", ""),
    };
    let mut program_src = Program::Stdin;
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
            if matches!(long, "eval" | "print") {
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
    match program_src {
        Program::Inline(a) | Program::File(a) if a.download => w.find(
            R::PipeToShell,
            format!("{program} runs downloaded code ({})", shown(&a.text)),
        ),
        Program::Stdin => {
            if let Input::Download(by) = stdin {
                w.find(
                    R::PipeToShell,
                    format!("{program} runs code downloaded by {by}"),
                );
            }
        }
        _ => {}
    }
}

fn eval(w: &mut Walker, args: &[Arg], stdin: &Input) {
    let args = match args.first().and_then(|a| a.exact()) {
        Some("--") => &args[1..],
        _ => args,
    };
    if !args.is_empty() {
        joined_string(w, args, "eval", stdin);
    }
}

fn source(w: &mut Walker, program: &str, args: &[Arg]) {
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
            R::DynamicCommand,
            format!(
                "{program} {} runs commands from a file sluice cannot see",
                shown(&file.text)
            ),
        );
    }
}

fn su(w: &mut Walker, program: &str, args: &[Arg], stdin: &Input) {
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
}

// ---------------------------------------------------------------------------------------------
// rm-rf

/// Why removing `path` recursively is a disaster, if it is.
fn dangerous_root(a: &Arg) -> Option<String> {
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

/// The literal directories of a glob before its first component with a glob character
/// (`/usr/l*/x` → `/usr/`); empty for a relative glob whose first component is one.
fn glob_parent(pattern: &str) -> &str {
    let first_glob = pattern.find(['*', '?', '[']).unwrap_or(pattern.len());
    match pattern[..first_glob].rfind('/') {
        Some(slash) => &pattern[..=slash],
        None => "",
    }
}

fn is_system_dir(normalized: &str) -> bool {
    if normalized == "/" {
        return true;
    }
    let mut parts = normalized.trim_start_matches('/').split('/');
    let (Some(top), second, None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let top_listed = SYSTEM_DIRS.contains(&top) || top.starts_with("lib");
    match second {
        None => top_listed,
        Some(_) => top == "usr",
    }
}

/// `.`, `..`, `./`, `../..`, `a/..`: the working directory or one above it.
fn is_cwd_or_up(path: &str) -> bool {
    let mut depth: i64 = 0;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => depth -= 1,
            _ => depth += 1,
        }
    }
    !path.is_empty() && !path.starts_with('/') && depth <= 0
}

/// Lexical normalisation of an absolute path: repeated `/`, `.` and `..` resolved.
fn normalize(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

fn rm(w: &mut Walker, args: &[Arg]) {
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
        .find_map(|&i| dangerous_root(&args[i]));
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
fn fed_danger(a: &Arg) -> Option<String> {
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

fn find(w: &mut Walker, args: &[Arg]) {
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

fn mkfs(w: &mut Walker, program: &str, args: &[Arg]) {
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

// ---------------------------------------------------------------------------------------------
// shutdown

const STOP_TARGETS: &[&str] = &[
    "reboot",
    "poweroff",
    "halt",
    "kexec",
    "emergency",
    "rescue",
    "shutdown",
    "soft-reboot",
    "ctrl-alt-del",
    "suspend",
    "hibernate",
    "hybrid-sleep",
    "suspend-then-hibernate",
];

fn shutdown(w: &mut Walker, program: &str, args: &[Arg]) {
    let text = || {
        let words: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
        shown(format!("{program} {}", words.join(" ")).trim_end())
    };
    match program {
        "shutdown" | "reboot" | "halt" | "poweroff" => {
            let harmless = !args.is_empty()
                && args
                    .iter()
                    .all(|a| matches!(a.exact(), Some("-c" | "--help" | "--version")));
            if !harmless {
                w.find(R::Shutdown, format!("{} stops the host", text()));
            }
        }
        "init" | "telinit" => {
            let level = args.iter().find(|a| !a.is_option());
            if let Some(level) = level
                && !matches!(
                    level.exact(),
                    Some("q" | "Q" | "u" | "U" | "2" | "3" | "4" | "5")
                )
            {
                w.find(R::Shutdown, format!("{} changes the runlevel", text()));
            }
        }
        "systemctl" => {
            let s = scan_options(
                args,
                "tpsnoHM",
                &[
                    "type",
                    "property",
                    "signal",
                    "lines",
                    "output",
                    "host",
                    "machine",
                    "root",
                    "job-mode",
                    "kill-whom",
                    "kill-value",
                    "boot-loader-entry",
                    "boot-loader-menu",
                    "reboot-argument",
                    "when",
                    "what",
                    "state",
                    "message",
                    "image",
                    "timestamp",
                    "preset-mode",
                ],
            );
            let Some(verb) = args.get(s.operand) else {
                return;
            };
            let units = || args[s.operand + 1..].iter();
            let stops = match verb.exact() {
                None => true,
                Some(v) if STOP_TARGETS.contains(&v) => true,
                Some("isolate" | "start" | "restart" | "reload-or-restart" | "try-restart") => {
                    units().any(|u| {
                        u.exact().is_none_or(|u| {
                            STOP_TARGETS.contains(&u.strip_suffix(".target").unwrap_or(u))
                                && (u.ends_with(".target") || verb.exact() == Some("isolate"))
                        })
                    })
                }
                Some(_) => false,
            };
            if stops {
                w.find(
                    R::Shutdown,
                    format!("{} stops or restarts the host", text()),
                );
            }
        }
        "kill" => {
            // `kill [-s SIG | -n NUM | -SIG] [--] PID...`: once the signal is read, every word
            // is a PID, `-1` included (every process).
            let mut signal_zero = false;
            let mut i = 0;
            if let Some(first) = args.first().and_then(|a| a.exact()) {
                match first {
                    "-l" | "-L" | "--list" | "--table" => return,
                    "-s" | "-n" => {
                        signal_zero = args.get(1).and_then(|a| a.exact()) == Some("0");
                        i = 2;
                    }
                    "--" => i = 1,
                    f if f.starts_with('-') && f.len() > 1 => {
                        signal_zero = f == "-0";
                        i = 1;
                    }
                    _ => {}
                }
            }
            if args.get(i).and_then(|a| a.exact()) == Some("--") {
                i += 1;
            }
            let init = args[i.min(args.len())..]
                .iter()
                .find(|a| matches!(a.exact(), Some("1" | "-1")));
            if let Some(pid) = init
                && !signal_zero
            {
                let whom = if pid.text == "1" {
                    "init (PID 1), which stops the host"
                } else {
                    "every process (PID -1)"
                };
                w.find(R::Shutdown, format!("{} signals {whom}", text()));
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// kubectl-delete

fn kube(w: &mut Walker, program: &str, args: &[Arg]) {
    let (short_arg, long_arg, verbs): (&str, &[&str], &[&str]) = if program == "helm" {
        (
            "n",
            &[
                "kube-context",
                "namespace",
                "kubeconfig",
                "kube-apiserver",
                "kube-token",
                "kube-as-user",
                "kube-as-group",
                "kube-ca-file",
                "registry-config",
                "repository-cache",
                "repository-config",
                "burst-limit",
                "qps",
            ],
            &["uninstall", "delete", "del", "un"],
        )
    } else {
        (
            "nsv",
            &[
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
            ],
            &["delete"],
        )
    };
    let s = scan_options(args, short_arg, long_arg);
    let Some(verb) = args.get(s.operand) else {
        return;
    };
    let words = || {
        let w: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
        shown(&format!("{program} {}", w.join(" ")))
    };
    match verb.exact() {
        Some(v) if verbs.contains(&v) => {
            w.find(
                R::KubectlDelete,
                format!("{} deletes cluster objects", words()),
            );
        }
        None => w.find(
            R::KubectlDelete,
            format!(
                "{}: the subcommand {} is only known at run time",
                words(),
                shown(&verb.text)
            ),
        ),
        Some(_) => {}
    }
}

// ---------------------------------------------------------------------------------------------
// SQL through a client

/// Runs the SQL guardrails on SQL a client will send; findings keep their SQL ids.
fn sql(w: &mut Walker, client: &str, text: &str) {
    let analysis = analyze(text);
    for f in analysis.findings {
        let reason = if f.rule == RuleId::Unparseable {
            format!("{client} runs SQL that could not be parsed: {}", f.reason)
        } else {
            format!("{client} runs {}", f.reason)
        };
        w.find(ShellRule::Sql(f.rule), reason);
    }
}

fn sql_arg(w: &mut Walker, client: &str, a: &Arg) {
    match a.exact() {
        Some(text) => sql(w, client, text),
        None => w.find(
            R::OpaqueSql,
            format!(
                "{client} runs SQL only known at run time ({})",
                shown(&a.text)
            ),
        ),
    }
}

fn sql_stdin(w: &mut Walker, client: &str, stdin: &Input) {
    match stdin {
        Input::Terminal => {} // interactive: each statement is a later line
        Input::Text(text) => sql(w, client, text),
        other => w.find(
            R::OpaqueSql,
            format!("{client} runs SQL read from {}", other.describe()),
        ),
    }
}

fn psql(w: &mut Walker, args: &[Arg], stdin: &Input) {
    // psql permutes options and operands (`psql db -c ...`), so scan every word.
    let mut commands: Vec<Arg> = Vec::new();
    let mut reads_stdin = true;
    let mut i = 0;
    let value = |i: &mut usize, attached: &str| -> Arg {
        if attached.is_empty() {
            *i += 1;
            args.get(*i).cloned().unwrap_or_default()
        } else {
            Arg::lit(attached)
        }
    };
    while let Some(a) = args.get(i) {
        if !a.is_option() {
            if !a.literal && a.may_be_option() {
                // An expansion in option position may be `-c SQL` or `-f FILE`.
                w.find(
                    R::OpaqueSql,
                    format!("psql is given {}, only known at run time", shown(&a.text)),
                );
            }
            i += 1;
            continue;
        }
        let t = a.text.clone();
        if t == "--" {
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            let (name, attached) = long.split_once('=').unwrap_or((long, ""));
            match name {
                "command" => commands.push(value(&mut i, attached)),
                "file" => {
                    let f = value(&mut i, attached);
                    file_sql(w, &f, &mut reads_stdin, &mut commands);
                }
                "list" | "version" | "help" => reads_stdin = false,
                "dbname" | "host" | "port" | "username" | "set" | "variable" | "output"
                | "log-file" | "pset" | "field-separator" | "record-separator" | "table-attr"
                    if attached.is_empty() =>
                {
                    i += 1;
                }
                _ => {}
            }
            i += 1;
            continue;
        }
        let cluster = &t[1..];
        for (pos, c) in cluster.char_indices() {
            let attached = &cluster[pos + c.len_utf8()..];
            match c {
                'c' => {
                    commands.push(value(&mut i, attached));
                    break;
                }
                'f' => {
                    let f = value(&mut i, attached);
                    file_sql(w, &f, &mut reads_stdin, &mut commands);
                    break;
                }
                'l' | 'V' | '?' => reads_stdin = false,
                'd' | 'F' | 'h' | 'L' | 'o' | 'p' | 'P' | 'R' | 'T' | 'U' | 'v' => {
                    value(&mut i, attached);
                    break;
                }
                _ => {}
            }
        }
        i += 1;
    }
    if !commands.is_empty() {
        reads_stdin = false;
    }
    for c in &commands {
        if c.text.is_empty() && c.literal {
            continue; // placeholder for `-f -`
        }
        sql_arg(w, "psql", c);
    }
    if reads_stdin {
        sql_stdin(w, "psql", stdin);
    }
}

/// `psql -f FILE`: SQL sluice cannot see, except `-f -` (standard input).
fn file_sql(w: &mut Walker, file: &Arg, reads_stdin: &mut bool, commands: &mut Vec<Arg>) {
    if file.exact() == Some("-") {
        return;
    }
    *reads_stdin = false;
    // Keep `-c` from turning standard input back on: a placeholder that is skipped.
    commands.push(Arg::lit(""));
    w.find(
        R::OpaqueSql,
        format!(
            "psql runs SQL from the file {}, which sluice cannot see",
            shown(&file.text)
        ),
    );
}

/// `mysql -e SQL` and SQL on standard input, through the same (PostgreSQL) analyser: MySQL-only
/// syntax reads as unparseable, which fails closed.
fn mysql(w: &mut Walker, program: &str, args: &[Arg], stdin: &Input) {
    let mut executed = false;
    let mut reads_stdin = true;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if let Some(t) = a.exact() {
            if let Some(sql_text) = t.strip_prefix("--execute=") {
                sql(w, program, sql_text);
                executed = true;
            } else if t == "--execute" || t == "-e" {
                if let Some(v) = args.get(i + 1) {
                    sql_arg(w, program, v);
                }
                executed = true;
                i += 1;
            } else if let Some(sql_text) = t.strip_prefix("-e") {
                if !t.starts_with("--") {
                    sql(w, program, sql_text);
                    executed = true;
                }
            } else if matches!(t, "-V" | "--version" | "-?" | "--help") {
                reads_stdin = false;
            } else if matches!(t, "-u" | "-h" | "-P" | "-D" | "-S") {
                i += 1;
            }
        }
        i += 1;
    }
    if !executed && reads_stdin {
        sql_stdin(w, program, stdin);
    }
}

// ---------------------------------------------------------------------------------------------
// write-etc, dd-device: files a program writes

/// Files that `program` writes (or removes), as given on its command line.
fn write_targets(program: &str, args: &[Arg]) -> Vec<Arg> {
    let operands = |short_arg: &str, long_arg: &[&str]| -> Vec<Arg> {
        // Options may follow operands (GNU), so skip option words everywhere before `--`.
        let mut out = Vec::new();
        let mut after_dashdash = false;
        let mut i = 0;
        while let Some(a) = args.get(i) {
            if !after_dashdash && a.exact() == Some("--") {
                after_dashdash = true;
            } else if !after_dashdash && a.is_option() {
                let sub = scan_options(&args[i..], short_arg, long_arg);
                i += sub.operand.max(1);
                continue;
            } else {
                out.push(a.clone());
            }
            i += 1;
        }
        out
    };
    let fixed = |path: &str| vec![Arg::lit(path)];
    match program {
        "tee" => operands("", &["output-error"]),
        "cp" | "install" | "ln" | "rsync" => {
            let (short, long): (&str, &[&str]) = if program == "rsync" {
                (
                    "efTBM",
                    &[
                        "rsh",
                        "filter",
                        "exclude",
                        "include",
                        "exclude-from",
                        "include-from",
                        "files-from",
                        "backup-dir",
                        "suffix",
                        "chmod",
                        "chown",
                        "temp-dir",
                        "partial-dir",
                        "compare-dest",
                        "copy-dest",
                        "link-dest",
                        "log-file",
                        "password-file",
                        "port",
                    ],
                )
            } else {
                (
                    "tSmog",
                    &["target-directory", "suffix", "mode", "owner", "group"],
                )
            };
            let s = scan_options(args, short, long);
            if let Some(t) = s.value("t", "target-directory") {
                return vec![t.clone()];
            }
            let ops = operands(short, long);
            if program == "install" && s.has('d', "directory") {
                return ops;
            }
            // The destination is the last operand; rsync's `host:path` is another host.
            match ops.last() {
                Some(dest) if ops.len() >= 2 => {
                    if program == "rsync"
                        && dest.prefix.split('/').next().unwrap_or("").contains(':')
                    {
                        vec![]
                    } else {
                        vec![dest.clone()]
                    }
                }
                _ => vec![],
            }
        }
        "mv" => operands("tS", &["target-directory", "suffix"]),
        "rm" | "rmdir" | "unlink" | "chattr" | "setfacl" | "chmod" | "chown" | "chgrp" => {
            operands("", &["reference"])
        }
        "touch" => operands("rdt", &["reference", "date", "time"]),
        "mkdir" | "mknod" | "mkfifo" => operands("m", &["mode", "context"]),
        "shred" => operands("ns", &["iterations", "size", "random-source"]),
        "truncate" => operands("sr", &["size", "reference"]),
        "dd" => args
            .iter()
            .filter(|a| a.prefix.starts_with("of="))
            .map(|a| Arg {
                text: a.text["of=".len()..].to_owned(),
                prefix: a.prefix["of=".len()..].to_owned(),
                ..a.clone()
            })
            .collect(),
        "sed" => in_place(args, "efl", "", 'i', "in-place"),
        "perl" => in_place(args, "eE", "IMmlx0C", 'i', ""),
        "sudoedit" | "vi" | "vim" | "nvim" | "nano" | "pico" | "emacs" | "ed" | "joe" | "micro"
        | "mcedit" => {
            if args.iter().any(|a| a.exact() == Some("-R")) {
                vec![]
            } else {
                operands("", &[])
            }
        }
        "sudo"
            if args
                .iter()
                .any(|a| matches!(a.exact(), Some("-e" | "--edit"))) =>
        {
            args.iter().filter(|a| !a.is_option()).cloned().collect()
        }
        "visudo" => {
            if args
                .iter()
                .any(|a| matches!(a.exact(), Some("-c" | "--check")))
            {
                vec![]
            } else {
                fixed("/etc/sudoers")
            }
        }
        "vipw" | "useradd" | "userdel" | "usermod" | "newusers" | "chpasswd" | "chsh" | "chfn" => {
            fixed("/etc/passwd")
        }
        "passwd"
            if !args
                .iter()
                .any(|a| matches!(a.exact(), Some("-S" | "--status"))) =>
        {
            fixed("/etc/shadow")
        }
        "vigr" | "groupadd" | "groupdel" | "groupmod" | "gpasswd" => fixed("/etc/group"),
        _ => vec![],
    }
}

/// The files `sed -i` / `perl -i` edit in place: operands after the script (which is the first
/// operand unless `-e`/`-f` gave it).
fn in_place(args: &[Arg], next: &str, attached: &str, flag: char, long: &str) -> Vec<Arg> {
    let mut editing = false;
    let mut script_given = false;
    let mut operands = Vec::new();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a.is_option() && a.text != "--" {
            if let Some(l) = a.text.strip_prefix("--") {
                editing |= !long.is_empty() && l.starts_with(long);
                if matches!(l, "expression" | "file") {
                    script_given = true;
                    i += 1;
                }
                script_given |= l.starts_with("expression=") || l.starts_with("file=");
            } else {
                for (pos, c) in a.text[1..].char_indices() {
                    if c == flag {
                        editing = true;
                        break; // the rest of the cluster is the backup suffix
                    }
                    if next.contains(c) || attached.contains(c) {
                        script_given |= matches!(c, 'e' | 'E' | 'f');
                        if a.text[1 + pos + c.len_utf8()..].is_empty() && next.contains(c) {
                            i += 1;
                        }
                        break;
                    }
                }
            }
        } else if a.text != "--" {
            operands.push(a.clone());
        }
        i += 1;
    }
    if !editing {
        return vec![];
    }
    if !script_given && !operands.is_empty() {
        operands.remove(0);
    }
    operands
}

/// The absolute path a word names, lexically normalised: the whole word when literal, else its
/// literal prefix up to the last `/` (`/etc/$f` is somewhere in `/etc`). Globs keep their
/// pattern characters. `None` for relative or unknown paths: the working directory is unknown.
fn path_of(a: &Arg) -> Option<String> {
    if a.home {
        return None;
    }
    if a.literal {
        return normalize(&a.text);
    }
    let dir = &a.prefix[..a.prefix.rfind('/')? + 1];
    normalize(dir).map(|d| if d == "/" { d } else { format!("{d}/") })
}

/// Whether a path (or glob pattern) is `dir` or inside it; each pattern component is matched
/// against the directory's, so `/e*/passwd` is inside `/etc`.
fn inside(path: &str, dir: &str) -> bool {
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    let d: Vec<&str> = dir.trim_matches('/').split('/').collect();
    p.len() >= d.len() && p.iter().zip(&d).all(|(pat, name)| glob_match(pat, name))
}

/// Checks a file a program or redirect writes: `/etc`, block devices, the sysrq trigger.
pub(super) fn output_path(w: &mut Walker, a: &Arg, via: &str) {
    let Some(path) = path_of(a) else {
        return;
    };
    let shown_path = shown(&a.text);
    if inside(&path, "/etc") {
        w.find(R::WriteEtc, format!("{via} writes {shown_path} under /etc"));
    }
    // Removing, linking or re-moding a device node does not write the disk behind it.
    let metadata_only = matches!(
        via,
        "rm" | "rmdir"
            | "unlink"
            | "touch"
            | "mkdir"
            | "mknod"
            | "mkfifo"
            | "chmod"
            | "chown"
            | "chgrp"
            | "chattr"
            | "setfacl"
            | "mv"
            | "ln"
    );
    let device = !metadata_only
        && inside(&path, "/dev")
        && path != "/dev"
        && !HARMLESS_DEVICES.contains(&path.as_str())
        && !HARMLESS_DEVICE_DIRS.iter().any(|d| path.starts_with(d))
        && !path.starts_with("/dev/tty");
    if device {
        w.find(
            R::DdDevice,
            format!("{via} writes to the device {shown_path}"),
        );
    }
    if path == "/proc/sysrq-trigger" {
        w.find(
            R::Shutdown,
            format!("{via} writes {shown_path}, which can reboot or halt the host"),
        );
    }
}

/// Shell pattern matching for one path component: `*`, `?`, `[...]` (with `!`/`^` and ranges).
fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matcher with one backtrack point for `*` (linear in practice).
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some(pi);
                    mark = ni;
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class(&p, pi, n[ni])
                        && matched
                    {
                        pi = next;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some(s) => {
                pi = s + 1;
                mark += 1;
                ni = mark;
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the bracket expression at `p[start]`; returns (matched, index after).
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while let Some(&x) = p.get(i) {
        if x == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            matched |= (x..=p[i + 2]).contains(&c);
            i += 3;
        } else {
            matched |= x == c;
            i += 1;
        }
    }
    None
}
