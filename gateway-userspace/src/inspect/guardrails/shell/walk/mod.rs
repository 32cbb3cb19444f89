//! The AST walk: every simple command, wherever it sits, becomes an argv that is unwrapped
//! (`sudo`, `env`, `timeout`, ...) and handed to the rules with what feeds its standard input.

use std::{io::Cursor, mem};

use brush_parser::{
    Parser,
    ast::{
        self, Command, CommandPrefixOrSuffixItem, CompoundCommand, IoFileRedirectKind,
        IoFileRedirectTarget, IoRedirect, ProcessSubstitutionKind,
    },
};

use super::{
    MAX_DEPTH, RuleId, ShellAnalysis, ShellFinding, ShellKind, ShellOrigin, ShellRule, ShellRuleId,
    ShellRun, ShellState, editing, names, paths, rules,
    state::Written,
    words::{self, Arg, Braces},
    wrappers::{Unwrap, assignment, skip_assignments, unwrap, xargs_argv},
};

mod tree;

/// Compound commands nested deeper than this are not walked (`unparseable`): the parser
/// accepted them, but nobody types 64 levels of `( ( ( ...`.
const MAX_NESTING: usize = 64;

/// Nested command lines (substitutions, `sh -c`, function calls, alias expansions) one line
/// may make the walk enter, in all.
const MAX_ENTERED: usize = 4096;

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

pub(super) struct Walker {
    commands: Vec<String>,
    runs: Vec<ShellRun>,
    findings: Vec<ShellFinding>,
    pub origin: ShellOrigin,
    /// The shell's state at the point of the walk (see [`ShellState`]).
    pub state: ShellState,
    /// Why the line cannot be followed (history expansion): refused as `uncertain-line`.
    uncertain: Option<String>,
    /// See [`ShellAnalysis::line_editing`].
    pub line_editing: Option<String>,
    /// Functions being walked (their definition or a call), innermost last.
    calls: Vec<String>,
    /// Aliases being expanded: bash does not expand an alias inside its own expansion.
    expanding: Vec<String>,
    /// Pipelines and background jobs entered: what runs there runs concurrently.
    concurrent: usize,
    /// Why the command being invoked is not found through the system's `PATH` (a `PATH=`
    /// prefix assignment).
    pub path_prefix: Option<String>,
    /// Strings handed back to a shell, substitutions and wrappers entered so far, on this path.
    depth: usize,
    /// Levels entered so far, in all (see [`MAX_ENTERED`]).
    entered: usize,
    /// Compound commands entered, on this path.
    nesting: usize,
    /// Downloaders invoked so far: a substitution that raised it runs a download.
    downloads: usize,
    /// The text being walked (source locations in the AST index its characters).
    source: String,
    /// See [`ShellAnalysis::reads_session_input`].
    pub reads_session_input: bool,
    pub session_input_interactive: bool,
}

impl Walker {
    pub fn new(origin: ShellOrigin, state: ShellState) -> Walker {
        Walker {
            commands: Vec::new(),
            runs: Vec::new(),
            findings: Vec::new(),
            origin,
            state,
            uncertain: None,
            line_editing: None,
            calls: Vec::new(),
            expanding: Vec::new(),
            concurrent: 0,
            path_prefix: None,
            depth: 0,
            entered: 0,
            nesting: 0,
            downloads: 0,
            source: String::new(),
            reads_session_input: false,
            session_input_interactive: false,
        }
    }

    pub fn into_analysis(self) -> ShellAnalysis {
        ShellAnalysis {
            commands: self.commands,
            runs: self.runs,
            findings: self.findings,
            parse_error: None,
            incomplete: false,
            reads_session_input: self.reads_session_input,
            session_input_interactive: self.session_input_interactive,
            uncertain: self.uncertain,
            line_editing: self.line_editing,
            state: self.state,
        }
    }

    /// Records what one program (or the shell itself, `None`) does.
    pub fn run(&mut self, program: Option<&str>, kind: ShellKind, reason: String) {
        self.runs.push(ShellRun {
            program: program.map(str::to_owned),
            kind,
            reason: if kind == ShellKind::Read {
                String::new()
            } else {
                reason
            },
        });
    }

    /// The line is not what the shell will run (history expansion): see `uncertain-line`.
    pub fn uncertain(&mut self, why: String) {
        self.uncertain.get_or_insert(why);
    }

    /// The input writes a file at `places`: running it later runs what was written. One in the
    /// system's program directories may now answer to a bare command name.
    pub fn wrote(&mut self, places: &[super::state::Place], how: Written) {
        if names::in_program_dirs(places) {
            self.state
                .names_changed("a file in the system's program directories was written");
        }
        self.state.wrote(places, how);
    }

    /// The line changes how later lines are read.
    pub fn changes_editing(&mut self, why: String) {
        self.line_editing.get_or_insert(why);
    }

    /// Runs `f` in a child of the shell (a subshell, a pipeline part, `$(...)`, `sh -c`): its
    /// working directory, aliases and functions do not outlive it; the files it writes do.
    pub fn child<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = self.state.clone();
        let out = f(self);
        let inner = mem::replace(&mut self.state, saved);
        self.state.written = inner.written;
        self.state.symlinks = inner.symlinks;
        if self.state.names_untrusted.is_none() {
            self.state.names_untrusted = inner.names_untrusted;
        }
        out
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

    /// Parses and walks `text` as a shell program one level deeper, in a child shell (`sh -c`,
    /// `$(...)`, a definition checked before it runs). Returns whether it ran a download.
    /// `what` names the text for reasons.
    pub fn nested(&mut self, text: &str, what: &str, stdin: &Input) -> bool {
        self.child(|w| w.nested_here(text, what, stdin))
    }

    /// [`Walker::nested`] in this shell: `eval`, an alias's or a function's body.
    pub fn nested_here(&mut self, text: &str, what: &str, stdin: &Input) -> bool {
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
        // Function bodies and aliases are walked again at each call: a line of functions that
        // call each other many times would take exponential time without a budget.
        if self.entered >= MAX_ENTERED {
            self.find(
                RuleId::Unparseable,
                format!(
                    "more than {MAX_ENTERED} nested command lines, function calls and aliases to check"
                ),
            );
            return false;
        }
        self.entered += 1;
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

    /// Runs one argv: records the program, unwraps wrappers, applies the rules and the
    /// read-only list. Returns what it writes to standard output.
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
                let why = format!(
                    "the command name {} is only known at run time",
                    shown(&first.text)
                );
                self.find(ShellRuleId::DynamicCommand, why.clone());
                self.run(None, ShellKind::Unknown, why);
                return Input::Opaque(format!("the command {}", first.text));
            };
            let name = name.to_owned();
            if !name.contains('/') {
                self.expand_alias(&name, &argv[1..], stdin);
                // A function of this input or session runs instead of a program of that name
                // (if its definition ran): the body is checked, and the program too.
                if let Some(body) = self.state.functions.get(&name).cloned() {
                    self.call(&name, &body, stdin);
                }
            }
            let (program, trust) = names::program(self, &name, first.home);
            self.commands.push(program.clone());
            let (skip, xargs, own) = match unwrap(&program, &argv[1..]) {
                Unwrap::No => break rules::run(self, &program, &argv[1..], stdin, &trust),
                Unwrap::Stop(own) => {
                    names::record(self, &program, own.kind, own.reason, &trust);
                    return Input::Opaque(program);
                }
                Unwrap::Run { skip, xargs, own } => (skip, xargs, own),
            };
            names::record(self, &program, own.kind, own.reason, &trust);
            // `env X=1 cmd`, `sudo X=1 cmd`: the wrapped command's environment.
            if matches!(program.as_str(), "env" | "sudo") {
                for a in &argv[1..1 + skip] {
                    if let Some((n, v)) = assignment(a) {
                        names::assign(self, &n, &v, names::Exported::ForCommand);
                    }
                }
                let _ = skip_assignments;
            }
            let mut rest = argv.split_off(1 + skip);
            if let Some(replace) = xargs {
                rest = xargs_argv(rest, replace);
            }
            argv = rest;
        }
    }

    /// An alias of this input or session: an interactive shell expands it (a non-interactive
    /// one does not), so its expansion is checked as well as the plain command. bash does not
    /// expand an alias within its own expansion.
    fn expand_alias(&mut self, name: &str, args: &[Arg], stdin: &Input) {
        if self.expanding.iter().any(|e| e == name) {
            return;
        }
        let Some(body) = self.state.aliases.get(name).cloned() else {
            return;
        };
        let text = format!("{body} {}", requote(args));
        self.expanding.push(name.to_owned());
        self.nested_here(&text, &format!("the alias {name}"), stdin);
        self.expanding.pop();
    }

    /// Calls a function of this input or session. A function that calls itself concurrently
    /// (in a pipeline or the background) multiplies until the host gives out: a fork bomb.
    fn call(&mut self, name: &str, body: &str, stdin: &Input) {
        if self.calls.iter().any(|c| c == name) {
            if self.concurrent > 0 {
                self.find(
                    ShellRuleId::ForkBomb,
                    format!(
                        "the function {} starts copies of itself concurrently (a fork bomb)",
                        shown(name)
                    ),
                );
            }
            self.run(
                Some(name),
                ShellKind::Unknown,
                format!("the function {} calls itself", shown(name)),
            );
            return;
        }
        self.calls.push(name.to_owned());
        self.nested_here(body, &format!("the function {name}"), stdin);
        self.calls.pop();
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

/// Arguments written back as shell words (for an alias's expansion): literal words quoted,
/// words only known at run time as one unknown word.
fn requote(args: &[Arg]) -> String {
    let words: Vec<String> = args
        .iter()
        .map(|a| match a.exact() {
            Some(t) if a.home => t.to_owned(),
            Some(t)
                if !t.is_empty()
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-./:=,+@%".contains(c)) =>
            {
                t.to_owned()
            }
            Some(t) => format!("'{}'", t.replace('\'', "'\\''")),
            None if a.literal => a.text.clone(), // a glob
            None => "\"$_\"".into(),
        })
        .collect();
    words.join(" ")
}
