//! Words as the shell will see them after quote removal, as far as that can be known without
//! running anything: `'r''m'` and `\rm` are the literal `rm`, `"$x"` is one unknown word, `$x` is
//! any number of unknown words. Expansions are never guessed: a word with one is not literal.

use brush_parser::{
    ParserOptions,
    word::{
        self, BraceExpressionMember, BraceExpressionOrText, Parameter, ParameterExpr, WordPiece,
        WordPieceWithSource,
    },
};

/// At most this many words come out of one brace expansion (`{a,b}{c,d}` is 4); past it the word
/// is kept unexpanded and unknown, so a crafted `{1..99999999}` cannot eat memory.
const MAX_BRACE_WORDS: usize = 256;

/// One argument word after quote removal.
#[derive(Clone, Debug, Default)]
pub(super) struct Arg {
    /// Quote-removed text; expansions stay as written (`$HOME`, `$(cmd)`).
    pub text: String,
    /// No parameter, command, arithmetic or process substitution: `text` is exactly what the
    /// program receives (up to pathname expansion, see `glob`, and `~`, see `home`).
    pub literal: bool,
    /// An unquoted expansion: field splitting and globbing may make it any number of words,
    /// including options.
    pub splits: bool,
    /// Unquoted glob characters in literal text: pathname expansion applies.
    pub glob: bool,
    /// Starts with an unquoted `~`, which the shell expands to a home directory.
    pub home: bool,
    /// Quote-removed literal text before the first expansion: what is known of the word.
    pub prefix: String,
    /// A command or process substitution inside runs a download (`$(curl ...)`, `<(wget ...)`).
    pub download: bool,
    /// Not from the command line: a path that `find` or `xargs` feeds at run time.
    pub fed: Option<Fed>,
}

/// Where a run-time argument comes from.
#[derive(Clone, Debug)]
pub(super) enum Fed {
    /// `find ROOTS ... -exec CMD {}`: a path under one of the roots.
    Find(Vec<Arg>),
    /// `... | xargs CMD`: any words read from standard input, options included.
    Xargs,
}

impl Arg {
    /// A literal word, as a wrapper or a test would write it.
    pub fn lit(text: &str) -> Arg {
        Arg {
            text: text.to_owned(),
            literal: true,
            prefix: text.to_owned(),
            ..Arg::default()
        }
    }

    /// An argument supplied at run time by `find` or `xargs`.
    pub fn fed(fed: Fed) -> Arg {
        let (text, splits) = match &fed {
            Fed::Find(_) => ("{}", false),
            Fed::Xargs => ("<xargs input>", true),
        };
        Arg {
            text: text.to_owned(),
            splits,
            fed: Some(fed),
            ..Arg::default()
        }
    }

    /// The literal text, if the word is literal and not a glob.
    pub fn exact(&self) -> Option<&str> {
        (self.literal && !self.glob).then_some(self.text.as_str())
    }

    /// Whether this word can reach the program as (part of) an option: a literal starting with
    /// `-`, or an expansion that is not behind a literal non-`-` prefix. `find` paths start
    /// with their root, never with `-`.
    pub fn may_be_option(&self) -> bool {
        match &self.fed {
            Some(Fed::Find(_)) => false,
            _ if self.literal => self.text.starts_with('-'),
            _ => self.prefix.is_empty() || self.prefix.starts_with('-'),
        }
    }

    /// A literal option word (`-x`, `--long`), not `-` alone.
    pub fn is_option(&self) -> bool {
        self.literal && self.text.len() > 1 && self.text.starts_with('-')
    }
}

/// What a word parsed into, with what its substitutions contain left to the caller, which
/// analyses them like any other command line (see `walk`).
pub(super) struct Parsed {
    pub arg: Arg,
    /// `$(...)` and backquoted bodies, in order; backquote escapes already undone.
    pub substitutions: Vec<String>,
}

/// Parser options for every word: bash, extglob on (as brush's interactive default).
pub(super) fn options() -> ParserOptions {
    ParserOptions::default()
}

/// Brace expansion of a raw word (`{a,b}`, `{1..3}`).
pub(super) enum Braces {
    None,
    Words(Vec<String>),
    /// More than [`MAX_BRACE_WORDS`]: the word stands for many unknown words.
    TooMany,
}

/// Brace expansion (`{a,b}`, `{1..3}`) of a raw word, before anything else as bash does it.
pub(super) fn brace_expand(raw: &str) -> Braces {
    // Cheap exit: most words have no brace at all.
    if !raw.contains('{') {
        return Braces::None;
    }
    // brush's brace parser backtracks exponentially on deeply nested or unclosed braces
    // (`{{{{{{{{{{{{{{{{x` took seconds, found by fuzzing): past a small depth the word is
    // left unexpanded and unknown, like one with too many expansions.
    if too_deep(raw) || long_number(raw, false) {
        return Braces::TooMany;
    }
    let Some(pieces) = word::parse_brace_expansions(raw, &options()).ok().flatten() else {
        return Braces::None;
    };
    if !pieces
        .iter()
        .any(|p| matches!(p, BraceExpressionOrText::Expr(_)))
    {
        return Braces::None;
    }
    let mut out = vec![String::new()];
    if expand_seq(&pieces, &mut out) {
        Braces::Words(out)
    } else {
        Braces::TooMany
    }
}

/// Braces nested (or left open) deeper than this, or more of them than [`MAX_BRACES`], are not
/// expanded. Quotes are not skipped: a word with that many braces in quotes is rare enough to
/// be left unknown.
const MAX_BRACE_DEPTH: usize = 4;
const MAX_BRACES: usize = 256;

fn too_deep(raw: &str) -> bool {
    let (mut depth, mut max, mut count) = (0usize, 0usize, 0usize);
    for c in raw.chars() {
        match c {
            '{' => {
                depth += 1;
                count += 1;
                max = max.max(depth);
            }
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max > MAX_BRACE_DEPTH || count > MAX_BRACES
}

/// Appends every expansion of `pieces` to each string of `acc`; false when too many.
fn expand_seq(pieces: &[BraceExpressionOrText], acc: &mut Vec<String>) -> bool {
    for piece in pieces {
        let alternatives: Vec<String> = match piece {
            BraceExpressionOrText::Text(t) => vec![t.clone()],
            BraceExpressionOrText::Expr(members) => {
                let mut alts = Vec::new();
                for m in members {
                    match m {
                        BraceExpressionMember::Child(children) => {
                            let mut sub = vec![String::new()];
                            if !expand_seq(children, &mut sub) {
                                return false;
                            }
                            alts.extend(sub);
                        }
                        BraceExpressionMember::NumberSequence {
                            start,
                            end,
                            increment,
                        } => {
                            let step = increment.unsigned_abs().max(1);
                            let count = start.abs_diff(*end) / step + 1;
                            if count > MAX_BRACE_WORDS as u64 {
                                return false;
                            }
                            let mut n = *start;
                            for _ in 0..count {
                                alts.push(n.to_string());
                                n = if start <= end {
                                    n.saturating_add_unsigned(step)
                                } else {
                                    n.saturating_sub_unsigned(step)
                                };
                            }
                        }
                        BraceExpressionMember::CharSequence {
                            start,
                            end,
                            increment,
                        } => {
                            let (lo, hi) = ((*start).min(*end), (*start).max(*end));
                            let step = usize::try_from(increment.unsigned_abs().max(1))
                                .unwrap_or(usize::MAX);
                            alts.extend((lo..=hi).step_by(step).map(String::from));
                        }
                    }
                    if alts.len() > MAX_BRACE_WORDS {
                        return false;
                    }
                }
                alts
            }
        };
        if acc.len().saturating_mul(alternatives.len()) > MAX_BRACE_WORDS {
            return false;
        }
        *acc = acc
            .iter()
            .flat_map(|prefix| alternatives.iter().map(move |a| format!("{prefix}{a}")))
            .collect();
    }
    true
}

/// brush-parser unwraps the integers it reads in brace sequences (`{1..N}`) and tilde prefixes
/// (`~+N`, `~-N`): one too long for 64 bits panics inside it (found by fuzzing). Such words are
/// not handed to it. `tilde_only`: only a run of digits after `~`, `~+` or `~-` counts.
fn long_number(raw: &str, tilde_only: bool) -> bool {
    const MAX_DIGITS: usize = 18;
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = if tilde_only {
            if b[i] != b'~' {
                i += 1;
                continue;
            }
            i + 1 + usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')))
        } else {
            i
        };
        let digits = b[start.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits > MAX_DIGITS {
            return true;
        }
        i = start + digits.max(1);
    }
    false
}

/// Parses one raw word (as the tokenizer cut it, quotes included) into an [`Arg`].
pub(super) fn parse_word(raw: &str) -> Result<Parsed, String> {
    if long_number(raw, true) {
        return Err("a directory-stack number too long to read".into());
    }
    let pieces = word::parse(raw, &options()).map_err(|e| format!("{e}"))?;
    let mut b = Builder {
        arg: Arg {
            literal: true,
            ..Arg::default()
        },
        substitutions: Vec::new(),
        nested: Vec::new(),
        expanded: false,
    };
    b.pieces(raw, &pieces, false);
    b.scan_nested()?;
    if b.arg.literal {
        b.arg.prefix = b.arg.text.clone();
    }
    Ok(Parsed {
        arg: b.arg,
        substitutions: b.substitutions,
    })
}

/// Parses a here-document body that undergoes expansion (unquoted delimiter): its literal text
/// if it has no expansion, and the substitutions it runs either way.
pub(super) fn parse_heredoc(body: &str) -> Result<(Option<String>, Vec<String>), String> {
    if long_number(body, true) {
        return Err("a directory-stack number too long to read".into());
    }
    let pieces = word::parse_heredoc(body, &options()).map_err(|e| format!("{e}"))?;
    let mut b = Builder {
        arg: Arg {
            literal: true,
            ..Arg::default()
        },
        substitutions: Vec::new(),
        nested: Vec::new(),
        expanded: false,
    };
    b.pieces(body, &pieces, true);
    b.scan_nested()?;
    Ok((b.arg.literal.then_some(b.arg.text), b.substitutions))
}

struct Builder {
    arg: Arg,
    substitutions: Vec<String>,
    /// Raw text of words nested in expansions, still to be scanned for substitutions.
    nested: Vec<String>,
    /// Whether an expansion was met (the prefix stops growing there).
    expanded: bool,
}

impl Builder {
    /// Text inside `${x:-...}` and `$((...))` is itself a word that can hold substitutions:
    /// scans each (and what they nest in turn) for the substitutions it runs.
    fn scan_nested(&mut self) -> Result<(), String> {
        while let Some(inner) = self.nested.pop() {
            if long_number(&inner, true) {
                return Err("a directory-stack number too long to read".into());
            }
            let pieces = word::parse(&inner, &options()).map_err(|e| format!("{e}"))?;
            let mut sub = Builder {
                arg: Arg::default(),
                substitutions: Vec::new(),
                nested: Vec::new(),
                expanded: true,
            };
            sub.pieces(&inner, &pieces, true);
            self.substitutions.append(&mut sub.substitutions);
            self.nested.append(&mut sub.nested);
        }
        Ok(())
    }

    fn push_literal(&mut self, s: &str) {
        self.arg.text.push_str(s);
        if !self.expanded {
            self.arg.prefix.push_str(s);
        }
    }

    fn expansion(&mut self, source: &str, quoted: bool) {
        self.arg.text.push_str(source);
        self.arg.literal = false;
        self.expanded = true;
        if !quoted {
            self.arg.splits = true;
        }
    }

    fn pieces(&mut self, raw: &str, pieces: &[WordPieceWithSource], quoted: bool) {
        for (i, p) in pieces.iter().enumerate() {
            let source = raw.get(p.start_index..p.end_index).unwrap_or_default();
            match &p.piece {
                WordPiece::Text(t) => {
                    // `[` starts a pattern only with a `]` after it (`[` alone is the test
                    // command).
                    let bracket = t.find('[').is_some_and(|i| t[i + 1..].contains(']'));
                    if !quoted && (t.contains(['*', '?']) || bracket) {
                        self.arg.glob = true;
                    }
                    // An extglob such as `!(x)` or `@(a|b)` is kept as text by the parser.
                    if !quoted && t.contains('(') {
                        self.arg.glob = true;
                    }
                    self.push_literal(t);
                }
                WordPiece::SingleQuotedText(t) => self.push_literal(t),
                WordPiece::AnsiCQuotedText(t) => match ansi_c_unescape(t) {
                    Some(s) => self.push_literal(&s),
                    None => self.expansion(source, true),
                },
                WordPiece::DoubleQuotedSequence(inner)
                | WordPiece::GettextDoubleQuotedSequence(inner) => {
                    // Indices of inner pieces are relative to the whole word.
                    self.pieces(raw, inner, true);
                }
                WordPiece::TildeExpansion(_) => {
                    if i == 0 && !quoted {
                        self.arg.home = true;
                    }
                    self.push_literal(source);
                }
                WordPiece::EscapeSequence(e) => {
                    let escaped = e.strip_prefix('\\').unwrap_or(e);
                    if escaped != "\n" {
                        self.push_literal(escaped);
                    }
                }
                WordPiece::ParameterExpansion(expr) => {
                    self.nested.extend(parameter_words(expr));
                    self.expansion(source, quoted);
                }
                WordPiece::CommandSubstitution(body) => {
                    self.substitutions.push(body.clone());
                    self.expansion(source, quoted);
                }
                WordPiece::BackquotedCommandSubstitution(body) => {
                    self.substitutions.push(unescape_backquoted(body));
                    self.expansion(source, quoted);
                }
                WordPiece::ArithmeticExpression(expr) => {
                    // `$(( a[$(cmd)] ))` runs `cmd`: scan the expression like a word.
                    self.nested.push(expr.value.clone());
                    self.expansion(source, quoted);
                }
            }
        }
    }
}

/// The words nested in a parameter expansion (defaults, patterns, replacements, subscripts,
/// offsets): any of them may hold a command substitution that runs.
fn parameter_words(expr: &ParameterExpr) -> Vec<String> {
    let mut out = Vec::new();
    let mut param = |p: &Parameter| {
        if let Parameter::NamedWithIndex { index, .. } = p {
            out.push(index.clone());
        }
    };
    let strings: Vec<Option<&String>> = match expr {
        ParameterExpr::Parameter { parameter, .. }
        | ParameterExpr::ParameterLength { parameter, .. }
        | ParameterExpr::Transform { parameter, .. } => {
            param(parameter);
            vec![]
        }
        ParameterExpr::UseDefaultValues {
            parameter,
            default_value: s,
            ..
        }
        | ParameterExpr::AssignDefaultValues {
            parameter,
            default_value: s,
            ..
        }
        | ParameterExpr::IndicateErrorIfNullOrUnset {
            parameter,
            error_message: s,
            ..
        }
        | ParameterExpr::UseAlternativeValue {
            parameter,
            alternative_value: s,
            ..
        }
        | ParameterExpr::RemoveSmallestSuffixPattern {
            parameter,
            pattern: s,
            ..
        }
        | ParameterExpr::RemoveLargestSuffixPattern {
            parameter,
            pattern: s,
            ..
        }
        | ParameterExpr::RemoveSmallestPrefixPattern {
            parameter,
            pattern: s,
            ..
        }
        | ParameterExpr::RemoveLargestPrefixPattern {
            parameter,
            pattern: s,
            ..
        }
        | ParameterExpr::UppercaseFirstChar {
            parameter,
            pattern: s,
            ..
        }
        | ParameterExpr::UppercasePattern {
            parameter,
            pattern: s,
            ..
        }
        | ParameterExpr::LowercaseFirstChar {
            parameter,
            pattern: s,
            ..
        }
        | ParameterExpr::LowercasePattern {
            parameter,
            pattern: s,
            ..
        } => {
            param(parameter);
            vec![s.as_ref()]
        }
        ParameterExpr::Substring {
            parameter,
            offset,
            length,
            ..
        } => {
            param(parameter);
            out.push(offset.value.clone());
            if let Some(l) = length {
                out.push(l.value.clone());
            }
            vec![]
        }
        ParameterExpr::ReplaceSubstring {
            parameter,
            pattern,
            replacement,
            ..
        } => {
            param(parameter);
            vec![Some(pattern), replacement.as_ref()]
        }
        ParameterExpr::VariableNames { .. } | ParameterExpr::MemberKeys { .. } => vec![],
    };
    out.extend(strings.into_iter().flatten().cloned());
    out
}

/// Inside backquotes a backslash escapes only `$`, `` ` `` and `\`; brush undoes `` \` `` but
/// keeps the other two as written, and bash would run `` `\$CMD` `` as `$CMD`.
fn unescape_backquoted(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next @ ('$' | '\\')) = chars.peek()
        {
            out.push(next);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

/// Decodes the body of `$'...'` (also `echo -e` and `printf` escapes). `None` for anything
/// not understood, which makes the word unknown rather than wrongly known.
pub(super) fn ansi_c_unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        let simple = match e {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'e' | 'E' => Some('\x1b'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' | '\'' | '"' | '?' => Some(e),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            continue;
        }
        let (radix, max) = match e {
            'x' => (16, 2),
            'u' => (16, 4),
            'U' => (16, 8),
            '0'..='7' => (8, 3),
            _ => return None,
        };
        let mut digits = String::new();
        if radix == 8 {
            digits.push(e);
        }
        while digits.len() < max
            && let Some(&d) = chars.peek()
            && d.is_digit(radix)
        {
            digits.push(d);
            chars.next();
        }
        let code = u32::from_str_radix(&digits, radix).ok()?;
        out.push(char::from_u32(code)?);
    }
    Some(out)
}
