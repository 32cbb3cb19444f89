//! What a program writes to standard output, as far as the rules care: literal text the next
//! program of a pipeline reads (`echo 'DROP TABLE t' | psql`), or a download passed on.

use super::{
    rules::DOWNLOADERS,
    walk::{Input, Walker},
    words::{Arg, ansi_c_unescape},
};

/// What a program writes to standard output, as far as the rules care: literal text, the
/// download or input it passes on, or something opaque.
pub(super) fn output(w: &mut Walker, program: &str, args: &[Arg], stdin: &Input) -> Input {
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

pub(super) fn echo_text(args: &[Arg]) -> Option<String> {
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
pub(super) fn printf_text(args: &[Arg]) -> Option<String> {
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
