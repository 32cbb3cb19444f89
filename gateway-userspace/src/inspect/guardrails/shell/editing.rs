//! What sluice's model of an interactive line cannot follow: history expansion in the line
//! itself, and commands that change how later lines are read (terminal special characters, key
//! bindings, vi mode, shell options that change parsing, another shell's line editor).

use super::{
    interp::{Program, SHELLS, shell_program},
    walk::{Walker, shown},
    words::Arg,
};

/// `shopt` options that change neither parsing nor line editing.
const HARMLESS_SHOPT: &[&str] = &[
    "checkwinsize",
    "histappend",
    "cmdhist",
    "lithist",
    "checkjobs",
    "globstar",
    "nullglob",
    "dotglob",
    "nocaseglob",
    "nocasematch",
    "failglob",
    "autocd",
    "cdable_vars",
    "cdspell",
    "dirspell",
];

/// `set -o` options that change neither parsing nor line editing.
const HARMLESS_SET: &[&str] = &[
    "errexit",
    "nounset",
    "xtrace",
    "verbose",
    "pipefail",
    "noclobber",
    "errtrace",
    "functrace",
    "notify",
    "monitor",
    "ignoreeof",
    "noglob",
    "hashall",
    "braceexpand",
    "allexport",
    "onecmd",
    "physical",
    "nolog",
];

/// `stty` words that only report: everything else changes the terminal.
const STTY_REPORTS: &[&str] = &["-a", "--all", "-g", "--save", "size", "speed"];

/// `bind` options that only list or query.
const BIND_QUERIES: &str = "pPvVlsSqu";

/// Interactive bash expands `!` (history) before it parses the line: `cat !-1:2` or `^a^b` run
/// words of earlier lines, which this analysis of the line's text never sees.
pub(super) fn history_expansion(w: &mut Walker, text: &str) {
    if let Some(why) = history_expansion_in(text) {
        w.uncertain(why);
    }
}

fn history_expansion_in(text: &str) -> Option<String> {
    let line = text.trim_start_matches([' ', '\t']);
    if line.starts_with('^') {
        return Some("a line starting with ^ (history substitution)".into());
    }
    let chars: Vec<char> = text.chars().collect();
    let (mut single, mut double) = (false, false);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if !single => {
                i += 2;
                continue;
            }
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '!' if !single && expands(&chars, i, double) => {
                let word: String = chars[i..]
                    .iter()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                return Some(format!(
                    "history expansion ({}), which runs words of earlier lines",
                    shown(&word)
                ));
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Bash's rules for a `!` that does not start a history expansion (bashhist.c): before a blank,
/// `=`, `(` or the end; `!"` in double quotes; `$!`, `${!name}` and `[!...]`.
fn expands(chars: &[char], i: usize, double: bool) -> bool {
    let next = chars.get(i + 1).copied();
    let prev = i.checked_sub(1).map(|p| chars[p]);
    match next {
        None | Some(' ' | '\t' | '\n' | '\r' | '=' | '(') => return false,
        Some('"') if double => return false,
        _ => {}
    }
    let later = |c: char| chars[i + 1..].contains(&c);
    match prev {
        Some('$') => false,
        Some('[') if later(']') => false,
        Some('{') if i >= 2 && chars[i - 2] == '$' && later('}') => false,
        _ => true,
    }
}

/// Why running `program args` changes how later lines are read, if it does.
pub(super) fn changes_line_editing(program: &str, args: &[Arg], terminal: bool) -> Option<String> {
    let words = || {
        let w: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
        shown(format!("{program} {}", w.join(" ")).trim_end())
    };
    let changes = match program {
        "stty" => {
            // `-F DEVICE`/`--file` names the terminal; reports on another one change nothing.
            let mut rest: Vec<&Arg> = Vec::new();
            let mut i = 0;
            while let Some(a) = args.get(i) {
                match a.exact() {
                    Some("-F" | "--file") => i += 1,
                    Some(t) if t.starts_with("--file=") || (t.starts_with("-F") && t.len() > 2) => {
                    }
                    _ => rest.push(a),
                }
                i += 1;
            }
            rest.iter()
                .any(|a| !a.exact().is_some_and(|t| STTY_REPORTS.contains(&t)))
        }
        "bind" => args.iter().any(|a| match a.exact() {
            Some(t) if t.starts_with('-') && t.len() > 1 => {
                !t[1..].chars().all(|c| BIND_QUERIES.contains(c))
            }
            _ => true,
        }),
        "set" => set_changes_reading(args),
        "shopt" => shopt_changes_reading(args),
        // Another shell on the terminal edits lines its own way (zsh's ZLE, dash without any
        // editor); bash with other options may start in vi mode or read another inputrc.
        p if SHELLS.contains(&p) && terminal => {
            matches!(shell_program(args), Program::Stdin)
                && (!matches!(p, "bash" | "rbash")
                    || args.iter().any(|a| {
                        !a.exact().is_some_and(|t| {
                            matches!(t, "-l" | "--login" | "-i" | "-s" | "--norc" | "--noprofile")
                        })
                    }))
        }
        _ => false,
    };
    changes.then(|| {
        format!(
            "`{}` changes how the terminal or shell reads later lines",
            words()
        )
    })
}

/// `set -o vi`, `set +o emacs`, `set -k`, `set -o posix`...: any option but the harmless ones.
fn set_changes_reading(args: &[Arg]) -> bool {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let Some(t) = a.exact() else {
            return true;
        };
        if t == "--" || !(t.starts_with('-') || t.starts_with('+')) || t.len() < 2 {
            return false; // positional parameters follow
        }
        for c in t[1..].chars() {
            if c == 'o' {
                i += 1;
                match args.get(i).map(|a| a.exact()) {
                    None => {} // `set -o` lists the options
                    Some(Some(name)) if HARMLESS_SET.contains(&name) => {}
                    Some(_) => return true,
                }
            } else if !"euxvbCEThmfBaPn".contains(c) {
                // -k (assignments anywhere), -H (history), -t, -p, ... change how lines are
                // read or run.
                return true;
            }
        }
        i += 1;
    }
    false
}

/// `shopt -s/-u NAME...` (or `-o NAME`) of anything but the harmless options.
fn shopt_changes_reading(args: &[Arg]) -> bool {
    let mut setting = false;
    let mut set_o = false;
    for a in args {
        let Some(t) = a.exact() else {
            return true;
        };
        if let Some(flags) = t.strip_prefix('-') {
            setting |= flags.contains(['s', 'u']);
            set_o |= flags.contains('o');
            continue;
        }
        if setting {
            let harmless = if set_o {
                HARMLESS_SET.contains(&t)
            } else {
                HARMLESS_SHOPT.contains(&t)
            };
            if !harmless {
                return true;
            }
        }
    }
    false
}

/// Variables whose value changes how later lines are read: `INPUTRC` (key bindings of line
/// editors started later), `histchars` (the history expansion characters).
pub(super) fn editing_variable(name: &str) -> bool {
    matches!(name, "INPUTRC" | "histchars")
}

/// A file line editors read their key bindings from.
pub(super) fn editing_file(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    base == ".inputrc" || base == "inputrc"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_expansion_is_found_where_bash_would_expand() {
        for line in [
            "!!",
            "cat !-1:2",
            "sort !$",
            "echo \"!rm\"",
            "ls !#",
            "^a^b",
            "  ^rm^ls",
            "echo x!y",
        ] {
            assert!(history_expansion_in(line).is_some(), "{line}");
        }
        for line in [
            "ls",
            "[ ! -f x ]",
            "if ! grep x y; then :; fi",
            "echo 'a!b'",
            "echo a\\!b",
            "echo $!",
            "echo ${!prefix*}",
            "ls [!a]*",
            "test a != b",
            "echo \"hi!\"",
            "echo !(x)",
            "a^b",
        ] {
            assert_eq!(history_expansion_in(line), None, "{line}");
        }
    }

    fn args(words: &[&str]) -> Vec<Arg> {
        words.iter().map(|w| Arg::lit(w)).collect()
    }

    #[test]
    fn line_editing_changes_are_found() {
        let changes = |p: &str, a: &[&str]| changes_line_editing(p, &args(a), true).is_some();
        assert!(changes("stty", &["erase", "#"]));
        assert!(changes("stty", &["-icanon"]));
        assert!(changes("stty", &["-F", "/dev/pts/1", "raw"]));
        assert!(!changes("stty", &["-a"]));
        assert!(!changes("stty", &["size"]));
        assert!(!changes("stty", &[]));
        assert!(changes("bind", &["\"\\C-b\": backward-delete-char"]));
        assert!(changes("bind", &["-x", "\"\\C-t\": rm -rf ~"]));
        assert!(changes("bind", &["-f", "/tmp/x"]));
        assert!(!changes("bind", &["-p"]));
        assert!(changes("set", &["-o", "vi"]));
        assert!(changes("set", &["+o", "emacs"]));
        assert!(changes("set", &["-k"]));
        assert!(changes("set", &["-o", "posix"]));
        assert!(!changes("set", &["-euo", "pipefail"]));
        assert!(!changes("set", &["-x"]));
        assert!(!changes("set", &["--", "a", "b"]));
        assert!(!changes("set", &[]));
        assert!(changes("shopt", &["-u", "interactive_comments"]));
        assert!(changes("shopt", &["-s", "extglob"]));
        assert!(changes("shopt", &["-s", "xpg_echo"]));
        assert!(!changes("shopt", &["-s", "histappend"]));
        assert!(!changes("shopt", &["extglob"]));
        assert!(!changes("shopt", &[]));
        assert!(changes("zsh", &[]));
        assert!(changes("sh", &[]));
        assert!(changes("bash", &["-o", "vi"]));
        assert!(changes("bash", &["--noediting"]));
        assert!(changes("bash", &["--rcfile", "/tmp/rc"]));
        assert!(!changes("bash", &[]));
        assert!(!changes("bash", &["-l"]));
        assert!(!changes("bash", &["-c", "ls"]));
        assert!(!changes("zsh", &["-c", "ls"]));
        assert!(changes_line_editing("zsh", &[], false).is_none());
    }
}
