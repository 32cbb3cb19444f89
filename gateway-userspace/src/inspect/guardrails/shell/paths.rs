//! Paths: lexical normalisation, which directories matter, and the files programs write
//! (`write-etc`, `dd-device`).

use super::{
    ShellRuleId as R,
    state::Place,
    walk::{Walker, shown},
    words::Arg,
    wrappers::scan_options,
};

/// Top-level directories whose recursive removal breaks the host or loses its data (`/lib*`
/// matches `/lib32`, `/lib64`, ...). Direct children of `/usr` count too.
pub(super) const SYSTEM_DIRS: &[&str] = &[
    "bin", "boot", "dev", "etc", "home", "lib", "opt", "proc", "root", "sbin", "srv", "sys", "usr",
    "var",
];

/// Device nodes that are not storage: writing them loses nothing.
pub(super) const HARMLESS_DEVICES: &[&str] = &[
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
pub(super) const HARMLESS_DEVICE_DIRS: &[&str] = &[
    "/dev/fd/",
    "/dev/pts/",
    "/dev/tcp/",
    "/dev/udp/",
    "/dev/shm/",
    "/dev/mqueue/",
];

/// The literal directories of a glob before its first component with a glob character
/// (`/usr/l*/x` → `/usr/`); empty for a relative glob whose first component is one.
pub(super) fn glob_parent(pattern: &str) -> &str {
    let first_glob = pattern.find(['*', '?', '[']).unwrap_or(pattern.len());
    match pattern[..first_glob].rfind('/') {
        Some(slash) => &pattern[..=slash],
        None => "",
    }
}

pub(super) fn is_system_dir(normalized: &str) -> bool {
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
pub(super) fn is_cwd_or_up(path: &str) -> bool {
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
pub(super) fn normalize(path: &str) -> Option<String> {
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

// ---------------------------------------------------------------------------------------------
// write-etc, dd-device: files a program writes

/// Files that `program` writes (or removes), as given on its command line.
pub(super) fn write_targets(program: &str, args: &[Arg]) -> Vec<Arg> {
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
pub(super) fn in_place(
    args: &[Arg],
    next: &str,
    attached: &str,
    flag: char,
    long: &str,
) -> Vec<Arg> {
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
pub(super) fn path_of(a: &Arg) -> Option<String> {
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
pub(super) fn inside(path: &str, dir: &str) -> bool {
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    let d: Vec<&str> = dir.trim_matches('/').split('/').collect();
    p.len() >= d.len() && p.iter().zip(&d).all(|(pat, name)| glob_match(pat, name))
}

/// Where a word, as a path, may lead: one place per working directory (see
/// [`ShellState::resolve`](super::ShellState)); unknown for a word only known at run time.
pub(super) fn places(w: &Walker, a: &Arg) -> Vec<Place> {
    if a.literal {
        w.state.resolve(&a.text, a.home)
    } else {
        vec![Place::Unknown]
    }
}

/// The word as the rules read paths, re-rooted where the working directory, `/proc/self/...`
/// and links of this input lead (`cd / && rm -rf srv` removes `/srv`). The word itself is not
/// in the list.
pub(super) fn resolved_args(w: &Walker, a: &Arg) -> Vec<Arg> {
    if !a.literal {
        return Vec::new();
    }
    let mut out: Vec<Arg> = Vec::new();
    for p in w.state.resolve(&a.text, a.home) {
        let arg = match p {
            Place::Abs(path) => Arg {
                home: false,
                ..with_text(a, path)
            },
            Place::Home(_) => Arg {
                home: true,
                ..with_text(a, p.text())
            },
            Place::Unknown => continue,
        };
        if arg.text != a.text && !out.iter().any(|o| o.text == arg.text) {
            out.push(arg);
        }
    }
    out
}

fn with_text(a: &Arg, text: String) -> Arg {
    Arg {
        prefix: text.clone(),
        text,
        ..a.clone()
    }
}

/// Absolute paths a written word may name: its lexical form and the resolved ones.
fn abs_paths(w: &Walker, a: &Arg) -> Vec<String> {
    let mut out: Vec<String> = path_of(a).into_iter().collect();
    let resolved = if a.literal {
        w.state.resolve(&a.text, a.home)
    } else if !a.home
        && let Some(i) = a.prefix.rfind('/')
    {
        // `$DIR/x`: somewhere under the literal part, resolved.
        w.state
            .resolve(&a.prefix[..=i], false)
            .into_iter()
            .map(|p| match p {
                Place::Abs(d) if d != "/" => Place::Abs(format!("{d}/")),
                p => p,
            })
            .collect()
    } else {
        Vec::new()
    };
    for p in resolved {
        if let Place::Abs(p) = p
            && !out.contains(&p)
        {
            out.push(p);
        }
    }
    out
}

/// A redirect target that stores nothing: `/dev/null`, the standard streams, the own terminal.
pub(super) fn harmless_output(a: &Arg) -> bool {
    path_of(a).is_some_and(|p| {
        matches!(
            p.as_str(),
            "/dev/null"
                | "/dev/zero"
                | "/dev/full"
                | "/dev/stdout"
                | "/dev/stderr"
                | "/dev/tty"
                | "/dev/fd/1"
                | "/dev/fd/2"
        )
    })
}

/// Checks a file a program or redirect writes: `/etc`, block devices, the sysrq trigger.
pub(super) fn output_path(w: &mut Walker, a: &Arg, via: &str) {
    for path in abs_paths(w, a) {
        output_abs(w, a, &path, via);
    }
}

fn output_abs(w: &mut Walker, a: &Arg, path: &str, via: &str) {
    let path = path.to_owned();
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
pub(super) fn glob_match(pattern: &str, name: &str) -> bool {
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
pub(super) fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
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
