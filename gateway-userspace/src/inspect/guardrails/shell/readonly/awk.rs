//! awk: a read-only program is one without `system()`, pipes (`print | "cmd"`,
//! `"cmd" | getline`), output redirection (`print > FILE`) or gawk's extensions (`@load`,
//! `@include`). The program is tokenised as awk reads it (strings, regular expressions,
//! comments), so `/error|warn/` is a pattern and `a > b` outside `print` a comparison.

use super::super::{walk::shown, words::Arg};

/// What an awk command line is.
#[derive(Debug, PartialEq, Eq)]
pub(in super::super) enum Awk {
    /// Only reads its input and prints.
    Reads,
    /// Writes files (`--profile`, `--dump-variables`, ...).
    Writes(String),
    /// Runs commands, writes files from the program, loads code, or its program cannot be
    /// read (a file, a word only known at run time): opaque code.
    Code(String),
}

/// Judges `awk ARGS` (also gawk, mawk, nawk, busybox awk).
pub(in super::super) fn awk(program: &str, args: &[Arg]) -> Awk {
    let mut texts: Vec<String> = Vec::new();
    let mut sandbox = false;
    let mut i = 0;
    let value = |i: &mut usize, attached: &str| -> Option<Arg> {
        if attached.is_empty() {
            *i += 1;
            args.get(*i).cloned()
        } else {
            Some(Arg::lit(attached))
        }
    };
    while let Some(a) = args.get(i) {
        let Some(t) = a.exact() else {
            if texts.is_empty() || a.may_be_option() {
                return Awk::Code(format!(
                    "{program} is given {}, only known at run time",
                    shown(&a.text)
                ));
            }
            break;
        };
        if t == "--" {
            i += 1;
            break;
        }
        if !a.is_option() {
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            let (name, attached) = long.split_once('=').unwrap_or((long, ""));
            match name {
                "file" | "exec" | "include" | "load" => {
                    return Awk::Code(format!("{program} --{name} runs code from a file"));
                }
                "source" => {
                    match value(&mut i, attached).and_then(|v| v.exact().map(str::to_owned)) {
                        Some(s) => texts.push(s),
                        None => return Awk::Code(format!("{program} --source of unknown text")),
                    }
                }
                "field-separator" | "assign" if attached.is_empty() => i += 1,
                "sandbox" => sandbox = true,
                "profile" | "pretty-print" | "dump-variables" => {
                    return Awk::Writes(format!("{program} --{name} writes a file"));
                }
                "debug" => return Awk::Code(format!("{program} --debug starts a debugger")),
                _ => {}
            }
            i += 1;
            continue;
        }
        let cluster = &t[1..];
        for (pos, c) in cluster.char_indices() {
            let attached = &cluster[pos + c.len_utf8()..];
            match c {
                'f' | 'E' | 'i' | 'l' => {
                    return Awk::Code(format!("{program} -{c} runs code from a file"));
                }
                'e' => {
                    match value(&mut i, attached).and_then(|v| v.exact().map(str::to_owned)) {
                        Some(s) => texts.push(s),
                        None => return Awk::Code(format!("{program} -e of unknown text")),
                    }
                    break;
                }
                'F' | 'v' => {
                    if attached.is_empty() {
                        i += 1;
                    }
                    break;
                }
                'W' => {
                    let w = value(&mut i, attached);
                    match w.as_ref().and_then(|w| w.exact()) {
                        Some("sandbox") => sandbox = true,
                        Some("version" | "v") => {}
                        _ => {
                            return Awk::Code(format!(
                                "{program} -W with an option sluice does not know"
                            ));
                        }
                    }
                    break;
                }
                'S' => sandbox = true,
                'o' | 'p' | 'd' => {
                    return Awk::Writes(format!("{program} -{c} writes a file"));
                }
                'D' => return Awk::Code(format!("{program} -D starts a debugger")),
                _ => {}
            }
        }
        i += 1;
    }
    if texts.is_empty() {
        match args.get(i) {
            Some(a) => match a.exact() {
                Some(t) => texts.push(t.to_owned()),
                None => {
                    return Awk::Code(format!(
                        "{program} runs the program {}, only known at run time",
                        shown(&a.text)
                    ));
                }
            },
            None => return Awk::Reads, // usage message
        }
    }
    if sandbox {
        return Awk::Reads;
    }
    for text in &texts {
        if let Some(why) = side_effect(text) {
            return Awk::Code(format!("the {program} program {why}"));
        }
    }
    Awk::Reads
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Regex,
    Number,
    Punct(&'static str),
    Newline,
}

/// Punctuation awk knows, longest first.
const PUNCT: &[&str] = &[
    ">>", "|&", "||", "&&", "==", "!=", "<=", ">=", "++", "--", "+=", "-=", "*=", "/=", "%=", "^=",
    "**", "!~", ">", "<", "|", "!", "~", "(", ")", "{", "}", "[", "]", ";", ",", "+", "-", "*",
    "/", "%", "^", "=", "?", ":", "$", "@",
];

/// Why an awk program does more than read and print, if it does.
pub(in super::super) fn side_effect(program: &str) -> Option<String> {
    let toks = match tokenize(program) {
        Ok(t) => t,
        Err(why) => return Some(format!("cannot be read ({why})")),
    };
    // Inside `print`/`printf`, at the parenthesis depth it started at, `>` and `>>` redirect
    // output to a file and `|` to a command.
    let mut print_depth: Option<usize> = None;
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Word(w) if w == "system" => return Some("runs commands with system()".into()),
            Tok::Word(w) if w == "print" || w == "printf" => print_depth = Some(depth),
            Tok::Punct("@") => {
                return Some("uses a gawk directive (@load, @include, @namespace)".into());
            }
            Tok::Punct("|" | "|&") => {
                return Some(if print_depth.is_some() {
                    "pipes output into a command".into()
                } else {
                    "reads the output of a command (cmd | getline)".into()
                });
            }
            Tok::Punct(">" | ">>") if print_depth == Some(depth) => {
                let standard = matches!(
                    toks.get(i + 1),
                    Some(Tok::Str(s)) if s == "/dev/stdout" || s == "/dev/stderr"
                );
                if !standard {
                    return Some("redirects output to a file".into());
                }
            }
            Tok::Punct("(" | "[") => depth += 1,
            Tok::Punct(")" | "]") => depth = depth.saturating_sub(1),
            Tok::Punct(";" | "{" | "}") | Tok::Newline => print_depth = None,
            _ => {}
        }
    }
    None
}

fn tokenize(text: &str) -> Result<Vec<Tok>, &'static str> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\r' => i += 1,
            '\\' if chars.get(i + 1) == Some(&'\n') => i += 2,
            '\n' => {
                toks.push(Tok::Newline);
                i += 1;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None | Some('\n') => return Err("an unterminated string"),
                        Some('"') => break,
                        Some('\\') => {
                            if let Some(&n) = chars.get(i + 1) {
                                s.push(n);
                            }
                            i += 2;
                        }
                        Some(&c) => {
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                i += 1;
                toks.push(Tok::Str(s));
            }
            '/' if regex_allowed(toks.last()) => {
                i += 1;
                let mut bracket = false;
                loop {
                    match chars.get(i) {
                        None | Some('\n') => return Err("an unterminated regular expression"),
                        Some('\\') => i += 2,
                        Some('[') if !bracket => {
                            bracket = true;
                            i += 1;
                            // `[]...]` and `[^]...]`: the first `]` is a member.
                            if chars.get(i) == Some(&'^') {
                                i += 1;
                            }
                            if chars.get(i) == Some(&']') {
                                i += 1;
                            }
                        }
                        Some(']') if bracket => {
                            bracket = false;
                            i += 1;
                        }
                        Some('/') if !bracket => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                toks.push(Tok::Regex);
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                toks.push(Tok::Number);
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                toks.push(Tok::Word(chars[start..i].iter().collect()));
            }
            _ => {
                let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
                let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) else {
                    return Err("a character awk does not know");
                };
                toks.push(Tok::Punct(p));
                i += p.chars().count();
            }
        }
    }
    Ok(toks)
}

/// A `/` starts a regular expression where an operand is expected: at the start, after an
/// operator or opening punctuation, after `print`/`printf`/`return`. After an operand (a name,
/// a number, a string, `)`, `]`, `$`...) it divides.
fn regex_allowed(prev: Option<&Tok>) -> bool {
    match prev {
        None | Some(Tok::Newline) => true,
        Some(Tok::Word(w)) => matches!(w.as_str(), "print" | "printf" | "return"),
        Some(Tok::Str(_) | Tok::Regex | Tok::Number) => false,
        Some(Tok::Punct(p)) => !matches!(*p, ")" | "]" | "$" | "++" | "--"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(args: &[&str]) -> Awk {
        let args: Vec<Arg> = args.iter().map(|a| Arg::lit(a)).collect();
        awk("awk", &args)
    }

    #[test]
    fn read_only_programs() {
        for p in [
            "{print $1}",
            "/error|warn/ {n++} END {print n}",
            "$3 > 100 {print $1, $3}",
            "{ if ($2 >= 5 && $3 != \"x|y\") print ($1 > $2) }",
            "BEGIN{FS=\":\"} {print $1 > \"/dev/stderr\"}",
            "{ a[$1] += $2 } END { for (k in a) printf \"%s %d\\n\", k, a[k] }",
            "NR % 2 == 0",
            "{ x = $1 / 2; y = x / 3; print x, y }",
            "{ while ((getline line < \"/etc/hosts\") > 0) print line }",
            "/[/|]/",
            "# comment with | and system(\n{print}",
            "length > 72",
        ] {
            assert_eq!(side_effect(p), None, "{p}");
        }
        assert_eq!(
            judge(&["-F:", "-v", "x=1", "{print $1}", "/etc/passwd"]),
            Awk::Reads
        );
        assert_eq!(judge(&["--sandbox", "{system(\"x\")}"]), Awk::Reads);
    }

    #[test]
    fn programs_with_side_effects() {
        for p in [
            "BEGIN{system(\"rm -rf ~\")}",
            "{system($0)}",
            "{ print | \"sh\" }",
            "{ print $0 | \"sh\" }",
            "{ \"date\" | getline d; print d }",
            "{ print > \"/tmp/out\" }",
            "{ print $1 >> \"/etc/passwd\" }",
            "{ printf(\"%s\\n\", $1) > \"f\" }",
            "{ print $1, $2 > $3 }",
            "@load \"filefuncs\"",
            "BEGIN { cmd |& getline }",
            "{ print \"x",
            "/unterminated",
            "{ x = 1 } \n { print > \"f\" }",
        ] {
            assert!(side_effect(p).is_some(), "{p}");
        }
        assert!(matches!(judge(&["-f", "prog.awk", "x"]), Awk::Code(_)));
        assert!(matches!(
            judge(&["-e", "BEGIN{system(\"id\")}"]),
            Awk::Code(_)
        ));
        assert!(matches!(judge(&["--profile", "{print}"]), Awk::Writes(_)));
        let dynamic = Arg {
            text: "$PROG".into(),
            ..Arg::default()
        };
        assert!(matches!(awk("awk", &[dynamic]), Awk::Code(_)));
    }
}
