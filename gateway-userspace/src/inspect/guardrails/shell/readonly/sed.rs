//! sed: a read-only script is one without `w`/`W` (write a file), `e` (run a command), the
//! `s///w` and `s///e` flags, and not run with `-i` (edit in place). The script is parsed
//! command by command as GNU sed reads it; anything it does not recognise is not a read.

use super::super::{walk::shown, words::Arg};

/// What a sed command line is.
#[derive(Debug, PartialEq, Eq)]
pub(in super::super) enum Sed {
    Reads,
    Writes(String),
    /// Runs commands (`e`): opaque code.
    Runs(String),
    Unknown(String),
}

/// Judges `sed ARGS`.
pub(in super::super) fn sed(args: &[Arg]) -> Sed {
    let mut scripts: Vec<String> = Vec::new();
    let mut sandbox = false;
    let mut i = 0;
    let mut operands_start = None;
    while let Some(a) = args.get(i) {
        let Some(t) = a.exact() else {
            if a.may_be_option() || (scripts.is_empty() && operands_start.is_none()) {
                return Sed::Unknown(format!(
                    "sed is given {}, only known at run time",
                    shown(&a.text)
                ));
            }
            i += 1;
            continue;
        };
        if t == "--" {
            operands_start.get_or_insert(i + 1);
            break;
        }
        if !a.is_option() {
            operands_start.get_or_insert(i);
            i += 1;
            continue;
        }
        if let Some(long) = t.strip_prefix("--") {
            let (name, attached) = long.split_once('=').unwrap_or((long, ""));
            let takes = |n: &str| n.len() >= 3 && name.len() >= 3 && n.starts_with(name);
            if takes("in-place") {
                return Sed::Writes("sed --in-place edits files".into());
            } else if takes("expression") {
                match value(args, &mut i, attached) {
                    Some(s) => scripts.push(s),
                    None => return Sed::Unknown("sed --expression of unknown text".into()),
                }
            } else if takes("file") {
                return Sed::Unknown("sed reads its script from a file sluice cannot see".into());
            } else if takes("line-length") && attached.is_empty() {
                i += 1;
            } else if takes("sandbox") {
                sandbox = true;
            }
            i += 1;
            continue;
        }
        let cluster = &t[1..];
        for (pos, c) in cluster.char_indices() {
            let attached = &cluster[pos + c.len_utf8()..];
            match c {
                'i' => return Sed::Writes("sed -i edits files in place".into()),
                'e' => {
                    match value(args, &mut i, attached) {
                        Some(s) => scripts.push(s),
                        None => return Sed::Unknown("sed -e of unknown text".into()),
                    }
                    break;
                }
                'f' => {
                    return Sed::Unknown(
                        "sed reads its script from a file sluice cannot see".into(),
                    );
                }
                'l' => {
                    if attached.is_empty() {
                        i += 1;
                    }
                    break;
                }
                'n' | 'r' | 'E' | 's' | 'u' | 'z' => {}
                _ => return Sed::Unknown(format!("sed -{c} is not known to be read-only")),
            }
        }
        i += 1;
    }
    if scripts.is_empty() {
        let Some(first) = operands_start.and_then(|s| args.get(s)) else {
            return Sed::Reads; // usage message
        };
        match first.exact() {
            Some(s) => scripts.push(s.to_owned()),
            None => return Sed::Unknown("a sed script only known at run time".into()),
        }
    }
    if sandbox {
        return Sed::Reads;
    }
    for s in &scripts {
        match script(s) {
            Sed::Reads => {}
            other => return other,
        }
    }
    Sed::Reads
}

fn value(args: &[Arg], i: &mut usize, attached: &str) -> Option<String> {
    if attached.is_empty() {
        *i += 1;
        args.get(*i).and_then(|a| a.exact()).map(str::to_owned)
    } else {
        Some(attached.to_owned())
    }
}

/// One sed script.
pub(in super::super) fn script(text: &str) -> Sed {
    let c: Vec<char> = text.chars().collect();
    let mut i = 0;
    let unknown = |why: &str| Sed::Unknown(format!("sed script {}: {why}", shown(text)));
    loop {
        while i < c.len() && (c[i].is_whitespace() || c[i] == ';') {
            i += 1;
        }
        if i >= c.len() {
            return Sed::Reads;
        }
        // Addresses: `N`, `$`, `first~step`, `/re/`, `\cREc`, `addr,+N`, `addr,~N`.
        for n in 0..2 {
            if n == 1 {
                if c.get(i) != Some(&',') {
                    break;
                }
                i += 1;
                while c.get(i).is_some_and(|x| *x == ' ') {
                    i += 1;
                }
            }
            match c.get(i) {
                Some(d) if d.is_ascii_digit() || *d == '+' || *d == '~' => {
                    i += 1;
                    while c.get(i).is_some_and(|x| x.is_ascii_digit() || *x == '~') {
                        i += 1;
                    }
                }
                Some('$') => i += 1,
                Some('/') => match delimited(&c, i + 1, '/') {
                    Some(end) => i = end + 1,
                    None => return unknown("an unterminated address"),
                },
                Some('\\') => match c.get(i + 1) {
                    Some(&d) if d != '\n' => match delimited(&c, i + 2, d) {
                        Some(end) => i = end + 1,
                        None => return unknown("an unterminated address"),
                    },
                    _ => return unknown("a bad address"),
                },
                _ => {}
            }
            while c.get(i).is_some_and(|x| *x == 'I' || *x == 'M') {
                i += 1;
            }
        }
        while c
            .get(i)
            .is_some_and(|x| *x == ' ' || *x == '\t' || *x == '!')
        {
            i += 1;
        }
        let Some(&cmd) = c.get(i) else {
            return unknown("an address without a command");
        };
        i += 1;
        match cmd {
            '{' => continue,
            '}' | '=' | 'd' | 'D' | 'g' | 'G' | 'h' | 'H' | 'n' | 'N' | 'p' | 'P' | 'x' | 'z'
            | 'F' => {}
            'l' | 'q' | 'Q' | 'L' => {
                while c.get(i).is_some_and(|x| x.is_ascii_digit() || *x == ' ') {
                    i += 1;
                }
            }
            '#' | ':' | 'b' | 't' | 'T' | 'r' | 'R' | 'v' => {
                // A comment, label or file name: up to the end of the line (labels and `b`
                // targets also end at `;`).
                while c
                    .get(i)
                    .is_some_and(|x| *x != '\n' && !(*x == ';' && "btTv".contains(cmd)))
                {
                    i += 1;
                }
            }
            'a' | 'i' | 'c' => {
                // Text up to the end of the line; a line ending in `\` continues.
                while let Some(&x) = c.get(i) {
                    if x == '\\' {
                        i += 2;
                        continue;
                    }
                    if x == '\n' {
                        break;
                    }
                    i += 1;
                }
            }
            'w' | 'W' => {
                let file: String = c[i..].iter().take_while(|x| **x != '\n').collect();
                return harmless_file(file.trim()).unwrap_or_else(|| {
                    Sed::Writes(format!(
                        "the sed command {cmd} writes the file {}",
                        shown(file.trim())
                    ))
                });
            }
            'e' => return Sed::Runs("the sed command e runs a command".into()),
            's' | 'y' => {
                let Some(&d) = c.get(i) else {
                    return unknown("s without a delimiter");
                };
                if d == '\n' || d == '\\' {
                    return unknown("a bad delimiter");
                }
                let Some(pat_end) = delimited(&c, i + 1, d) else {
                    return unknown("an unterminated s/// or y///");
                };
                let Some(rep_end) = replacement(&c, pat_end + 1, d) else {
                    return unknown("an unterminated s/// or y///");
                };
                i = rep_end + 1;
                if cmd == 's' {
                    while let Some(&f) = c.get(i) {
                        match f {
                            'g' | 'p' | 'i' | 'I' | 'm' | 'M' => i += 1,
                            f if f.is_ascii_digit() => i += 1,
                            'e' => {
                                return Sed::Runs(
                                    "the s///e flag runs the result as a command".into(),
                                );
                            }
                            'w' => {
                                let file: String =
                                    c[i + 1..].iter().take_while(|x| **x != '\n').collect();
                                return harmless_file(file.trim()).unwrap_or_else(|| {
                                    Sed::Writes(format!(
                                        "the s///w flag writes the file {}",
                                        shown(file.trim())
                                    ))
                                });
                            }
                            _ => break,
                        }
                    }
                }
            }
            other => return unknown(&format!("the command {other} is not known")),
        }
        // After a command: blanks, then `;`, a newline, `}` or the end.
        while c.get(i).is_some_and(|x| *x == ' ' || *x == '\t') {
            i += 1;
        }
        match c.get(i) {
            None | Some(';' | '\n' | '}' | '#') => {}
            Some(_) => return unknown("text after a command"),
        }
    }
}

/// `w /dev/stdout` writes where `p` would.
fn harmless_file(file: &str) -> Option<Sed> {
    matches!(file, "/dev/stdout" | "/dev/stderr").then_some(Sed::Reads)
}

/// The index of the delimiter that ends a regular expression starting at `start` (escapes and
/// bracket expressions skipped).
fn delimited(c: &[char], start: usize, d: char) -> Option<usize> {
    let mut i = start;
    let mut bracket = false;
    while let Some(&x) = c.get(i) {
        match x {
            '\\' => i += 2,
            '[' if !bracket => {
                bracket = true;
                i += 1;
                if c.get(i) == Some(&'^') {
                    i += 1;
                }
                if c.get(i) == Some(&']') {
                    i += 1;
                }
            }
            ']' if bracket => {
                bracket = false;
                i += 1;
            }
            x if x == d && !bracket => return Some(i),
            '\n' if !bracket => return None,
            _ => i += 1,
        }
    }
    None
}

/// The delimiter that ends a replacement (no bracket expressions there).
fn replacement(c: &[char], start: usize, d: char) -> Option<usize> {
    let mut i = start;
    while let Some(&x) = c.get(i) {
        match x {
            '\\' => i += 2,
            x if x == d => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(args: &[&str]) -> Sed {
        let args: Vec<Arg> = args.iter().map(|a| Arg::lit(a)).collect();
        sed(&args)
    }

    #[test]
    fn read_only_scripts() {
        for s in [
            "s/a/b/",
            "s/a/b/g",
            "s|/usr|/opt|2p",
            "1,10p",
            "/start/,/end/d",
            "$!N; s/\\n/ /",
            "s/[/]/x/",
            "y/abc/xyz/",
            "/^#/d;/^$/d",
            "1~2p",
            "0,/re/s//X/",
            "\\%foo%p",
            "s/x/y/w /dev/stdout",
            "/x/{p;q}",
            "a hello",
            "2i\\\ninserted",
            ":a;N;$!ba;s/\\n/,/g",
            "-n",
        ] {
            if s == "-n" {
                continue;
            }
            assert_eq!(script(s), Sed::Reads, "{s}");
        }
        assert_eq!(judge(&["-n", "1p", "/etc/hosts"]), Sed::Reads);
        assert_eq!(judge(&["-n", "-e", "1p", "-e", "$p", "f"]), Sed::Reads);
        assert_eq!(judge(&["-E", "s/(a|b)/x/", "f"]), Sed::Reads);
    }

    #[test]
    fn writing_and_running_scripts() {
        assert!(matches!(script("w /tmp/x"), Sed::Writes(_)));
        assert!(matches!(script("1p;w out"), Sed::Writes(_)));
        assert!(matches!(script("s/a/b/w /etc/x"), Sed::Writes(_)));
        assert!(matches!(script("s/a/b/gw out"), Sed::Writes(_)));
        assert!(matches!(script("/x/W out"), Sed::Writes(_)));
        assert!(matches!(script("e rm -rf ~"), Sed::Runs(_)));
        assert!(matches!(script("1e id"), Sed::Runs(_)));
        assert!(matches!(script("s/.*/rm -rf ~/e"), Sed::Runs(_)));
        assert!(matches!(script("s/[/]/x/e"), Sed::Runs(_)));
        assert!(matches!(script("s/a/b"), Sed::Unknown(_)));
        assert!(matches!(script("k"), Sed::Unknown(_)));
        assert!(matches!(judge(&["-i", "s/a/b/", "f"]), Sed::Writes(_)));
        assert!(matches!(judge(&["-n", "-i.bak", "p", "f"]), Sed::Writes(_)));
        assert!(matches!(
            judge(&["--in-place=.bak", "p", "f"]),
            Sed::Writes(_)
        ));
        assert!(matches!(judge(&["--in-pl", "p", "f"]), Sed::Writes(_)));
        assert!(matches!(judge(&["-f", "x.sed", "f"]), Sed::Unknown(_)));
        assert!(matches!(
            judge(&["-n", "-e", "p", "-e", "w x", "f"]),
            Sed::Writes(_)
        ));
        assert_eq!(judge(&["--sandbox", "e id"]), Sed::Reads);
    }
}
