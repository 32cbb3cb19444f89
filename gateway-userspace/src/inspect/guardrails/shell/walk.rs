//! The AST walk: every simple command, wherever it sits, becomes an argv that is unwrapped
//! (`sudo`, `env`, `timeout`, ...) and handed to the rules with what feeds its standard input.

use std::io::Cursor;

use brush_parser::{
    Parser,
    ast::{
        self, Command, CommandPrefixOrSuffixItem, CompoundCommand, IoFileRedirectKind,
        IoFileRedirectTarget, IoRedirect, ProcessSubstitutionKind,
    },
};

use super::{
    MAX_DEPTH, RuleId, ShellAnalysis, ShellFinding, ShellRule, ShellRuleId, rules,
    words::{self, Arg, Braces, Fed},
};

/// Compound commands nested deeper than this are not walked (`unparseable`): the parser
/// accepted them, but nobody types 64 levels of `( ( ( ...`.
const MAX_NESTING: usize = 64;

/// What feeds a command's standard input, as far as the line shows it.
#[derive(Clone, Debug)]
pub(super) enum Input {
    /// The session's terminal: whatever is typed later, not part of this line.
    Terminal,
    /// Text known in full: `echo`/`printf` of literals, a literal here-document or here-string.
    Text(String),
    /// The output of something sluice cannot see; names it (`the file x`, `grep`).
    Opaque(String),
    /// A download (`curl`, `wget`, ...), possibly through filters; names the downloader.
    Download(String),
}

impl Input {
    /// How a reason names it.
    pub fn describe(&self) -> String {
        match self {
            Input::Terminal => "the terminal".into(),
            Input::Text(_) => "literal text".into(),
            Input::Opaque(what) => what.clone(),
            Input::Download(what) => format!("a download by {what}"),
        }
    }
}

#[derive(Default)]
pub(super) struct Walker {
    commands: Vec<String>,
    findings: Vec<ShellFinding>,
    /// Strings handed back to a shell, substitutions and wrappers entered so far, on this path.
    depth: usize,
    /// Compound commands entered, on this path.
    nesting: usize,
    /// Downloaders invoked so far: a substitution that raised it runs a download.
    downloads: usize,
    /// The text being walked (source locations in the AST index its characters).
    source: String,
    /// See [`ShellAnalysis::reads_session_input`].
    pub reads_session_input: bool,
}

impl Walker {
    pub fn into_analysis(self) -> ShellAnalysis {
        ShellAnalysis {
            commands: self.commands,
            findings: self.findings,
            parse_error: None,
            incomplete: false,
            reads_session_input: self.reads_session_input,
        }
    }

    /// Records a finding once (the same rule and reason twice says nothing new).
    pub fn find(&mut self, rule: impl Into<ShellRule>, reason: String) {
        let f = ShellFinding {
            rule: rule.into(),
            reason,
        };
        if !self.findings.contains(&f) {
            self.findings.push(f);
        }
    }

    /// Walks a parsed `source`.
    pub fn walk(&mut self, source: &str, program: &ast::Program, stdin: &Input) -> Input {
        let outer = std::mem::replace(&mut self.source, source.to_owned());
        let out = self.program(program, stdin);
        self.source = outer;
        out
    }

    fn program(&mut self, program: &ast::Program, stdin: &Input) -> Input {
        let mut out = Input::Opaque("nothing".into());
        for list in &program.complete_commands {
            out = self.compound_list(list, stdin);
        }
        out
    }

    /// Parses and walks `text` as a shell program one level deeper (`sh -c`, `eval`, `$(...)`).
    /// Returns whether it ran a download. `what` names the text for reasons.
    pub fn nested(&mut self, text: &str, what: &str, stdin: &Input) -> bool {
        let before = self.downloads;
        if !self.enter() {
            return true;
        }
        let mut parser = Parser::new(Cursor::new(text.as_bytes()), &words::options());
        match parser.parse_program() {
            Ok(p) => {
                self.walk(text, &p, stdin);
            }
            Err(e) => self.find(
                RuleId::Unparseable,
                format!("{what} could not be parsed, so it cannot be checked: {e}"),
            ),
        }
        self.depth -= 1;
        self.downloads > before
    }

    /// One more level of strings-in-strings; false (with an `unparseable` finding) past
    /// [`MAX_DEPTH`].
    pub fn enter(&mut self) -> bool {
        if self.depth >= MAX_DEPTH {
            self.find(
                RuleId::Unparseable,
                format!(
                    "commands nested more than {MAX_DEPTH} levels deep (sh -c, eval, $(...), wrappers) are not checked"
                ),
            );
            return false;
        }
        self.depth += 1;
        true
    }

    /// Runs `f` one level deeper, or records why not.
    pub fn deeper<T>(&mut self, f: impl FnOnce(&mut Self) -> T) {
        if self.enter() {
            f(self);
            self.depth -= 1;
        }
    }

    fn compound_list(&mut self, list: &ast::CompoundList, stdin: &Input) -> Input {
        let mut out = Input::Opaque("nothing".into());
        for ast::CompoundListItem(and_or, _) in &list.0 {
            out = self.pipeline(&and_or.first, stdin);
            for next in &and_or.additional {
                let (ast::AndOr::And(p) | ast::AndOr::Or(p)) = next;
                out = self.pipeline(p, stdin);
            }
        }
        out
    }

    fn pipeline(&mut self, pipeline: &ast::Pipeline, stdin: &Input) -> Input {
        let mut input = stdin.clone();
        for command in &pipeline.seq {
            let out = self.command(command, &input);
            // Filters pass a download on: `curl x | base64 -d | sh` still runs downloaded code.
            input = match (&input, out) {
                (Input::Download(d), Input::Opaque(_)) => Input::Download(d.clone()),
                (_, out) => out,
            };
        }
        input
    }

    fn command(&mut self, command: &Command, stdin: &Input) -> Input {
        match command {
            Command::Simple(c) => self.simple(c, stdin),
            Command::Compound(c, redirects) => {
                let mut stdin = stdin.clone();
                for r in redirects.iter().flat_map(|r| &r.0) {
                    self.redirect(r, &mut stdin);
                }
                self.compound(c, &stdin)
            }
            // The body runs whenever the function is called, which this line or a later one
            // may do: check it now, once.
            Command::Function(f) => {
                let ast::FunctionBody(body, redirects) = &f.body;
                let mut stdin = Input::Terminal;
                for r in redirects.iter().flat_map(|r| &r.0) {
                    self.redirect(r, &mut stdin);
                }
                self.compound(body, &stdin);
                Input::Opaque("a function definition".into())
            }
            Command::ExtendedTest(test, redirects) => {
                let mut stdin = stdin.clone();
                for r in redirects.iter().flat_map(|r| &r.0) {
                    self.redirect(r, &mut stdin);
                }
                self.test_expr(&test.expr);
                Input::Opaque("[[ ]]".into())
            }
        }
    }

    fn test_expr(&mut self, expr: &ast::ExtendedTestExpr) {
        match expr {
            ast::ExtendedTestExpr::And(a, b) | ast::ExtendedTestExpr::Or(a, b) => {
                self.test_expr(a);
                self.test_expr(b);
            }
            ast::ExtendedTestExpr::Not(a) | ast::ExtendedTestExpr::Parenthesized(a) => {
                self.test_expr(a);
            }
            ast::ExtendedTestExpr::UnaryTest(_, w) => {
                self.words(w);
            }
            ast::ExtendedTestExpr::BinaryTest(_, a, b) => {
                self.words(a);
                self.words(b);
            }
        }
    }

    fn compound(&mut self, c: &CompoundCommand, stdin: &Input) -> Input {
        if self.nesting >= MAX_NESTING {
            self.find(
                RuleId::Unparseable,
                format!("compound commands nested more than {MAX_NESTING} deep are not checked"),
            );
            return Input::Opaque("a compound command".into());
        }
        self.nesting += 1;
        let out = match c {
            CompoundCommand::BraceGroup(g) => self.compound_list(&g.list, stdin),
            CompoundCommand::Subshell(s) => self.compound_list(&s.list, stdin),
            CompoundCommand::ForClause(f) => {
                for w in f.values.iter().flatten() {
                    self.words(w);
                }
                self.compound_list(&f.body.list, stdin)
            }
            CompoundCommand::ArithmeticForClause(f) => {
                for e in [&f.initializer, &f.condition, &f.updater]
                    .into_iter()
                    .flatten()
                {
                    self.arithmetic(&e.value);
                }
                self.compound_list(&f.body.list, stdin)
            }
            CompoundCommand::Arithmetic(a) => {
                // brush reads `( (cmd) )` as `((cmd))`; bash needs `((` adjacent for arithmetic
                // and runs nested subshells otherwise.
                let start = a.loc.start.index;
                let opening: String = self.source.chars().skip(start).take(2).collect();
                if opening == "((" {
                    self.arithmetic(&a.expr.value);
                } else {
                    // The expression is the body of the two subshells.
                    self.nested(&a.expr.value, "a subshell", stdin);
                }
                Input::Opaque("(( ))".into())
            }
            CompoundCommand::CaseClause(c) => {
                self.words(&c.value);
                let mut out = Input::Opaque("case".into());
                for item in &c.cases {
                    for p in &item.patterns {
                        self.words(p);
                    }
                    if let Some(body) = &item.cmd {
                        out = self.compound_list(body, stdin);
                    }
                }
                out
            }
            CompoundCommand::IfClause(i) => {
                self.compound_list(&i.condition, stdin);
                let mut out = self.compound_list(&i.then, stdin);
                for e in i.elses.iter().flatten() {
                    if let Some(cond) = &e.condition {
                        self.compound_list(cond, stdin);
                    }
                    out = self.compound_list(&e.body, stdin);
                }
                out
            }
            CompoundCommand::WhileClause(w) | CompoundCommand::UntilClause(w) => {
                self.compound_list(&w.0, stdin);
                self.compound_list(&w.1.list, stdin)
            }
            CompoundCommand::Coprocess(c) => {
                if let Some(name) = &c.name {
                    self.words(name);
                }
                self.command(&c.body, &Input::Opaque("a coprocess".into()))
            }
        };
        self.nesting -= 1;
        match (stdin, out) {
            (Input::Download(d), Input::Opaque(_)) => Input::Download(d.clone()),
            (_, out) => out,
        }
    }

    /// `$(( ... ))`, `(( ... ))`: the expression is a word that may hold substitutions.
    fn arithmetic(&mut self, expr: &str) {
        self.raw_word(expr, false);
    }

    fn simple(&mut self, c: &ast::SimpleCommand, stdin: &Input) -> Input {
        let mut stdin = stdin.clone();
        let mut argv: Vec<Arg> = Vec::new();
        let mut assignments_only = true;
        let prefix = c.prefix.iter().flat_map(|p| &p.0);
        let suffix = c.suffix.iter().flat_map(|s| &s.0);
        for item in prefix {
            self.item(item, &mut argv, &mut stdin, true);
        }
        if let Some(name) = &c.word_or_name {
            assignments_only = false;
            argv.extend(self.words(name));
        }
        for item in suffix {
            self.item(item, &mut argv, &mut stdin, false);
        }
        if assignments_only && argv.is_empty() {
            return Input::Opaque("an assignment".into());
        }
        self.invoke(argv, &stdin)
    }

    fn item(
        &mut self,
        item: &CommandPrefixOrSuffixItem,
        argv: &mut Vec<Arg>,
        stdin: &mut Input,
        prefix: bool,
    ) {
        match item {
            CommandPrefixOrSuffixItem::IoRedirect(r) => self.redirect(r, stdin),
            CommandPrefixOrSuffixItem::Word(w) => argv.extend(self.words(w)),
            CommandPrefixOrSuffixItem::AssignmentWord(a, w) => {
                let value = self.assignment(a);
                // `export X=...`, `declare X=...`: the word is an argument of the builtin.
                if !prefix {
                    argv.extend(self.words(w));
                }
                if let Some(special) = value {
                    self.special_variable(&special);
                }
            }
            CommandPrefixOrSuffixItem::ProcessSubstitution(kind, sub) => {
                argv.push(self.process_substitution(kind, sub));
            }
        }
    }

    /// Walks an assignment's value; returns `(name, value)` for the variables whose value the
    /// shell itself runs later.
    fn assignment(&mut self, a: &ast::Assignment) -> Option<(String, Arg)> {
        let name = match &a.name {
            ast::AssignmentName::VariableName(n) => n.clone(),
            ast::AssignmentName::ArrayElementName(n, index) => {
                self.arithmetic(index);
                n.clone()
            }
        };
        match &a.value {
            ast::AssignmentValue::Scalar(w) => {
                let arg = self.words(w).into_iter().next().unwrap_or_default();
                Some((name, arg))
            }
            ast::AssignmentValue::Array(items) => {
                for (k, v) in items {
                    if let Some(k) = k {
                        self.words(k);
                    }
                    self.words(v);
                }
                None
            }
        }
    }

    /// `PROMPT_COMMAND='...'` runs at every prompt of an interactive shell (this session):
    /// its value is a command line like any other.
    fn special_variable(&mut self, (name, value): &(String, Arg)) {
        if name == "PROMPT_COMMAND" {
            rules::shell_string(self, value, "PROMPT_COMMAND", &Input::Terminal);
        }
    }

    fn process_substitution(
        &mut self,
        kind: &ProcessSubstitutionKind,
        sub: &ast::SubshellCommand,
    ) -> Arg {
        let before = self.downloads;
        let stdin = match kind {
            ProcessSubstitutionKind::Read => Input::Terminal,
            ProcessSubstitutionKind::Write => Input::Opaque("the output of a command".into()),
        };
        self.deeper(|w| w.compound_list(&sub.list, &stdin));
        Arg {
            text: match kind {
                ProcessSubstitutionKind::Read => "<(...)".into(),
                ProcessSubstitutionKind::Write => ">(...)".into(),
            },
            download: self.downloads > before,
            ..Arg::default()
        }
    }

    fn redirect(&mut self, r: &IoRedirect, stdin: &mut Input) {
        match r {
            IoRedirect::File(fd, kind, target) => {
                let arg = match target {
                    IoFileRedirectTarget::Filename(w) | IoFileRedirectTarget::Duplicate(w) => {
                        self.words(w).into_iter().next().unwrap_or_default()
                    }
                    IoFileRedirectTarget::Fd(_) => return,
                    IoFileRedirectTarget::ProcessSubstitution(k, sub) => {
                        self.process_substitution(k, sub)
                    }
                };
                let reads_stdin = matches!(fd, None | Some(0));
                match kind {
                    IoFileRedirectKind::Read if reads_stdin => {
                        *stdin = if arg.download {
                            Input::Download(arg.text.clone())
                        } else {
                            Input::Opaque(format!("the file {}", arg.text))
                        };
                    }
                    IoFileRedirectKind::Read | IoFileRedirectKind::DuplicateInput => {}
                    IoFileRedirectKind::Write
                    | IoFileRedirectKind::Append
                    | IoFileRedirectKind::Clobber
                    | IoFileRedirectKind::ReadAndWrite
                    | IoFileRedirectKind::DuplicateOutput => {
                        // `>&2` is an fd; `>&file` (a word target) writes the file.
                        if matches!(target, IoFileRedirectTarget::Duplicate(_))
                            && arg.text.chars().all(|c| c.is_ascii_digit() || c == '-')
                        {
                            return;
                        }
                        rules::output_path(self, &arg, "a redirect");
                    }
                }
            }
            IoRedirect::OutputAndError(w, _) => {
                for arg in self.words(w) {
                    rules::output_path(self, &arg, "a redirect");
                }
            }
            IoRedirect::HereDocument(fd, doc) => {
                let text = if doc.requires_expansion {
                    match words::parse_heredoc(&doc.doc.value) {
                        Ok((text, substitutions)) => {
                            for s in &substitutions {
                                self.nested(s, "a command substitution", &Input::Terminal);
                            }
                            text
                        }
                        Err(e) => {
                            self.find(
                                RuleId::Unparseable,
                                format!("a here-document could not be parsed: {e}"),
                            );
                            None
                        }
                    }
                } else {
                    Some(doc.doc.value.clone())
                };
                if matches!(fd, None | Some(0)) {
                    *stdin = match text {
                        Some(t) => Input::Text(t),
                        None => Input::Opaque("a here-document with expansions".into()),
                    };
                }
            }
            IoRedirect::HereString(fd, w) => {
                let arg = self.words(w).into_iter().next().unwrap_or_default();
                if matches!(fd, None | Some(0)) {
                    *stdin = match arg.exact() {
                        Some(t) => Input::Text(format!("{t}\n")),
                        None if arg.download => Input::Download(arg.text.clone()),
                        None => Input::Opaque(format!("the here-string {}", arg.text)),
                    };
                }
            }
        }
    }

    /// A word of the command line, brace-expanded, with its substitutions analysed.
    pub fn words(&mut self, w: &ast::Word) -> Vec<Arg> {
        match words::brace_expand(&w.value) {
            Braces::Words(expanded) => expanded
                .iter()
                .filter_map(|raw| self.raw_word(raw, true))
                .collect(),
            Braces::None => self.raw_word(&w.value, true).into_iter().collect(),
            Braces::TooMany => {
                let mut arg = self.raw_word(&w.value, true).unwrap_or_default();
                arg.literal = false;
                arg.splits = true;
                vec![arg]
            }
        }
    }

    fn raw_word(&mut self, raw: &str, report: bool) -> Option<Arg> {
        match words::parse_word(raw) {
            Ok(words::Parsed {
                mut arg,
                substitutions,
            }) => {
                for s in &substitutions {
                    if self.nested(s, "a command substitution", &Input::Terminal) {
                        arg.download = true;
                    }
                }
                Some(arg)
            }
            Err(e) => {
                if report {
                    self.find(
                        RuleId::Unparseable,
                        format!("the word {raw} could not be parsed: {e}"),
                    );
                } else {
                    self.find(
                        RuleId::Unparseable,
                        format!("the arithmetic expression {raw} could not be parsed: {e}"),
                    );
                }
                None
            }
        }
    }

    /// Runs one argv: records the program, unwraps wrappers, applies the rules. Returns what it
    /// writes to standard output.
    pub fn invoke(&mut self, mut argv: Vec<Arg>, stdin: &Input) -> Input {
        loop {
            let Some(first) = argv.first() else {
                return Input::Opaque("nothing".into());
            };
            let Some(name) = first.exact() else {
                if first.download {
                    self.find(
                        ShellRuleId::PipeToShell,
                        format!("downloaded text is run as a command: {}", first.text),
                    );
                }
                self.find(
                    ShellRuleId::DynamicCommand,
                    format!(
                        "the command name {} is only known at run time",
                        shown(&first.text)
                    ),
                );
                return Input::Opaque(format!("the command {}", first.text));
            };
            let program = basename(name).to_owned();
            self.commands.push(program.clone());
            match unwrap(&program, &argv[1..]) {
                Unwrap::No => break,
                Unwrap::Stop => return Input::Opaque(program),
                Unwrap::Run { skip, xargs } => {
                    let mut rest = argv.split_off(1 + skip);
                    if let Some(replace) = xargs {
                        rest = xargs_argv(rest, replace);
                    }
                    argv = rest;
                }
            }
        }
        let program = basename(&argv[0].text).to_owned();
        rules::run(self, &program, &argv[1..], stdin)
    }

    pub fn downloaded(&mut self) {
        self.downloads += 1;
    }
}

/// How a reason shows a word: long ones are cut, so one reason stays one line.
pub(super) fn shown(s: &str) -> String {
    const MAX: usize = 80;
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= MAX {
        one_line
    } else {
        format!("{}...", one_line.chars().take(MAX).collect::<String>())
    }
}

/// `/usr/bin/rm`, `./rm` and `rm` are the same program for the rules (and for `commands:`).
pub(super) fn basename(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

enum Unwrap {
    /// Not a wrapper: the rules look at it.
    No,
    /// A wrapper that runs nothing here (`sudo -l`, `command -v x`, `ionice -p PID`).
    Stop,
    /// The wrapped command starts after `skip` arguments. `xargs`: feed it run-time arguments,
    /// replacing this string (`-I`) or appended.
    Run {
        skip: usize,
        xargs: Option<Option<String>>,
    },
}

/// What a GNU/BSD-style option scan saw.
#[derive(Default)]
pub(super) struct Scan {
    /// Index of the first operand (past `--`), or `args.len()`.
    pub operand: usize,
    /// Short option letters seen, in order.
    pub short: String,
    /// Long option names seen (without `--` and `=value`).
    pub long: Vec<String>,
    /// Values of options that take one, by option (`-u root` → `("u", "root")`).
    pub values: Vec<(String, Arg)>,
}

impl Scan {
    pub fn has(&self, short: char, long: &str) -> bool {
        self.short.contains(short) || self.long.iter().any(|l| l == long)
    }

    pub fn value(&self, short: &str, long: &str) -> Option<&Arg> {
        self.values
            .iter()
            .find(|(k, _)| k == short || k == long)
            .map(|(_, v)| v)
    }
}

/// Scans options that precede the operands: short clusters (`-abc`, `-ofile`, `-o file`),
/// `--long`, `--long=value`, `--long value`; stops at `--` or the first word that is not an
/// option, which includes a word only known at run time.
pub(super) fn scan_options(args: &[Arg], short_arg: &str, long_arg: &[&str]) -> Scan {
    let mut s = Scan::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if !a.is_option() {
            break;
        }
        let t = a.text.as_str();
        if t == "--" {
            i += 1;
            break;
        }
        if let Some(long) = t.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(Arg::lit(v))),
                None => (long, None),
            };
            s.long.push(name.to_owned());
            if long_arg.contains(&name) {
                let value = value.or_else(|| {
                    i += 1;
                    args.get(i).cloned()
                });
                s.values.push((name.to_owned(), value.unwrap_or_default()));
            }
            i += 1;
            continue;
        }
        let cluster = &t[1..];
        for (pos, c) in cluster.char_indices() {
            s.short.push(c);
            if short_arg.contains(c) {
                let attached = &cluster[pos + c.len_utf8()..];
                let value = if attached.is_empty() {
                    i += 1;
                    args.get(i).cloned().unwrap_or_default()
                } else {
                    Arg::lit(attached)
                };
                s.values.push((c.to_string(), value));
                break;
            }
        }
        i += 1;
    }
    s.operand = i.min(args.len());
    s
}

/// Skips `NAME=VALUE` words (`env`, `sudo`): they set the environment, the command follows.
fn skip_assignments(args: &[Arg], from: usize) -> usize {
    let mut i = from;
    while let Some(a) = args.get(i) {
        let is_assignment = a.prefix.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if !is_assignment {
            break;
        }
        i += 1;
    }
    i
}

fn unwrap(program: &str, args: &[Arg]) -> Unwrap {
    let run = |skip: usize| {
        if skip < args.len() {
            Unwrap::Run { skip, xargs: None }
        } else {
            Unwrap::Stop
        }
    };
    match program {
        "sudo" => {
            let s = scan_options(
                args,
                "ugCDprtTURh",
                &[
                    "user",
                    "group",
                    "close-from",
                    "chdir",
                    "prompt",
                    "role",
                    "type",
                    "command-timeout",
                    "other-user",
                    "chroot",
                    "host",
                ],
            );
            // `-e` edits files (see the sudoedit rule); `-l`, `-v`, `-k`/`-K` alone run nothing.
            if s.has('e', "edit") || s.has('l', "list") || s.has('V', "version") {
                return Unwrap::No;
            }
            run(skip_assignments(args, s.operand))
        }
        "doas" => run(scan_options(args, "uC", &[]).operand),
        "pkexec" => run(scan_options(args, "", &["user"]).operand),
        "env" => {
            let s = scan_options(
                args,
                "uCS",
                &["unset", "chdir", "split-string", "block-signal"],
            );
            if s.has('S', "split-string") {
                return Unwrap::No; // the rules parse its string
            }
            run(skip_assignments(args, s.operand))
        }
        "nice" => run(scan_options(args, "n", &["adjustment"]).operand),
        "ionice" => {
            let s = scan_options(args, "cnpPu", &["class", "classdata", "pid", "pgid", "uid"]);
            if s.has('p', "pid") || s.has('P', "pgid") || s.has('u', "uid") {
                return Unwrap::Stop;
            }
            run(s.operand)
        }
        "nohup" | "setsid" | "builtin" | "unbuffer" => run(scan_options(args, "", &[]).operand),
        "time" => run(scan_options(args, "fo", &["format", "output"]).operand),
        "timeout" => run(scan_options(args, "sk", &["signal", "kill-after"]).operand + 1),
        "stdbuf" => run(scan_options(args, "ioe", &["input", "output", "error"]).operand),
        "taskset" => {
            let s = scan_options(args, "", &[]);
            if s.has('p', "pid") {
                return Unwrap::Stop;
            }
            run(s.operand + 1)
        }
        // No command after the new root: it starts a login shell there, nothing to check.
        "chroot" => run(scan_options(args, "", &["userspec", "groups"]).operand + 1),
        "exec" => run(scan_options(args, "a", &[]).operand),
        "command" => {
            let s = scan_options(args, "", &[]);
            if s.has('v', "") || s.has('V', "") {
                return Unwrap::Stop; // looks the name up, runs nothing
            }
            run(s.operand)
        }
        "busybox" | "toybox" => match args.first() {
            Some(a) if a.is_option() => Unwrap::Stop,
            _ => run(0),
        },
        "xargs" => {
            let s = scan_options(
                args,
                "adELnPsI",
                &[
                    "arg-file",
                    "delimiter",
                    "max-args",
                    "max-procs",
                    "max-chars",
                    "process-slot-var",
                ],
            );
            let replace = s
                .value("I", "")
                .map(|v| v.text.clone())
                .or_else(|| s.short.contains('i').then(|| "{}".to_owned()))
                .or_else(|| s.long.iter().any(|l| l == "replace").then(|| "{}".into()));
            Unwrap::Run {
                skip: s.operand,
                xargs: Some(replace),
            }
        }
        _ => Unwrap::No,
    }
}

/// The command `xargs` runs: `echo` by default, fed words from standard input, either appended
/// (where they may be options too) or in place of the `-I` string.
fn xargs_argv(mut rest: Vec<Arg>, replace: Option<String>) -> Vec<Arg> {
    if rest.is_empty() {
        rest.push(Arg::lit("echo"));
    }
    match replace {
        Some(r) if !r.is_empty() => {
            for a in rest.iter_mut().skip(1) {
                if a.text.contains(&r) {
                    let mut fed = Arg::fed(Fed::Xargs);
                    fed.prefix = a.text.split(&r).next().unwrap_or_default().to_owned();
                    fed.splits = false;
                    *a = fed;
                }
            }
        }
        _ => rest.push(Arg::fed(Fed::Xargs)),
    }
    rest
}
