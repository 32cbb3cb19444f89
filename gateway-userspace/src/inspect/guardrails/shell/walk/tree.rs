//! The walk through the AST: lists, pipelines, compound commands, simple commands with their
//! assignments and redirections, down to the argv each one runs (see `Walker::invoke`).

use super::*;

impl Walker {
    pub(super) fn compound_list(&mut self, list: &ast::CompoundList, stdin: &Input) -> Input {
        let mut out = Input::Opaque("nothing".into());
        for ast::CompoundListItem(and_or, separator) in &list.0 {
            let and_or_list = |w: &mut Self| {
                let mut out = w.pipeline(&and_or.first, stdin);
                for next in &and_or.additional {
                    let (ast::AndOr::And(p) | ast::AndOr::Or(p)) = next;
                    out = w.pipeline(p, stdin);
                }
                out
            };
            out = if matches!(separator, ast::SeparatorOperator::Async) {
                self.concurrent(and_or_list)
            } else {
                and_or_list(self)
            };
        }
        out
    }

    /// Runs `f` as a background job or a pipeline part: a child shell, running concurrently.
    fn concurrent<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.concurrent += 1;
        let out = self.child(f);
        self.concurrent -= 1;
        out
    }

    fn pipeline(&mut self, pipeline: &ast::Pipeline, stdin: &Input) -> Input {
        let mut input = stdin.clone();
        let parts = pipeline.seq.len();
        for command in &pipeline.seq {
            // Each part of a pipeline runs in a child shell of its own.
            let out = if parts > 1 {
                self.concurrent(|w| w.command(command, &input))
            } else {
                self.command(command, &input)
            };
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
            // may do: check it now (what it would run counts for this line too), and remember
            // it, so that a call runs the body rather than a program of the same name.
            Command::Function(f) => {
                let name = self.words(&f.fname).into_iter().next().unwrap_or_default();
                let body_text = f.body.to_string();
                match name.exact() {
                    Some(n) => self.state.define_function(n, &body_text),
                    None => self
                        .state
                        .names_changed("a function whose name is only known at run time"),
                }
                self.calls.push(name.text.clone());
                self.child(|w| {
                    let ast::FunctionBody(body, redirects) = &f.body;
                    let mut stdin = Input::Terminal;
                    for r in redirects.iter().flat_map(|r| &r.0) {
                        w.redirect(r, &mut stdin);
                    }
                    w.compound(body, &stdin);
                });
                self.calls.pop();
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
            CompoundCommand::Subshell(s) => self.child(|w| w.compound_list(&s.list, stdin)),
            CompoundCommand::ForClause(f) => {
                let mut last = Arg::default();
                for w in f.values.iter().flatten() {
                    if let Some(a) = self.words(w).pop() {
                        last = a;
                    }
                }
                // `for PATH in /tmp; do ls; done` assigns like `PATH=/tmp`.
                last.literal = false;
                names::assign(self, &f.variable_name, &last, names::Exported::No);
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
        let mut prefix_assignments = Vec::new();
        let mut suffix_assignments = Vec::new();
        let prefix = c.prefix.iter().flat_map(|p| &p.0);
        let suffix = c.suffix.iter().flat_map(|s| &s.0);
        for item in prefix {
            self.item(item, &mut argv, &mut stdin, &mut prefix_assignments, true);
        }
        if let Some(name) = &c.word_or_name {
            argv.extend(self.words(name));
        }
        for item in suffix {
            self.item(item, &mut argv, &mut stdin, &mut suffix_assignments, false);
        }
        if argv.is_empty() {
            // Assignments alone set shell variables.
            for (name, value) in &prefix_assignments {
                names::assign(self, name, value, names::Exported::No);
            }
            return Input::Opaque("an assignment".into());
        }
        for (name, value) in &prefix_assignments {
            names::assign(self, name, value, names::Exported::ForCommand);
        }
        // `export X=...`, `declare -x X=...`: the builtin sets (and maybe exports) X.
        let exported = names::declares_exported(&argv);
        for (name, value) in &suffix_assignments {
            names::assign(self, name, value, exported);
        }
        let out = self.invoke(argv, &stdin);
        self.path_prefix = None;
        out
    }

    fn item(
        &mut self,
        item: &CommandPrefixOrSuffixItem,
        argv: &mut Vec<Arg>,
        stdin: &mut Input,
        assignments: &mut Vec<(String, Arg)>,
        prefix: bool,
    ) {
        match item {
            CommandPrefixOrSuffixItem::IoRedirect(r) => self.redirect(r, stdin),
            CommandPrefixOrSuffixItem::Word(w) => argv.extend(self.words(w)),
            CommandPrefixOrSuffixItem::AssignmentWord(a, w) => {
                if let Some(value) = self.assignment(a) {
                    assignments.push(value);
                }
                // `export X=...`, `declare X=...`: the word is an argument of the builtin.
                if !prefix {
                    argv.extend(self.words(w));
                }
            }
            CommandPrefixOrSuffixItem::ProcessSubstitution(kind, sub) => {
                argv.push(self.process_substitution(kind, sub));
            }
        }
    }

    /// Walks an assignment's value; returns the variable's name and value (an array's value
    /// is unknown).
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
                Some((name, Arg::default()))
            }
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
                        self.redirect_write(&arg);
                    }
                }
            }
            IoRedirect::OutputAndError(w, _) => {
                for arg in self.words(w) {
                    self.redirect_write(&arg);
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

    /// A redirect that writes `target`: the rules on the path, a `write` run unless it is a
    /// harmless device, and the file remembered as written by this input.
    fn redirect_write(&mut self, target: &Arg) {
        paths::output_path(self, target, "a redirect");
        if paths::harmless_output(target) {
            return;
        }
        let places = paths::places(self, target);
        if let Some(p) = places.iter().find(|p| editing::editing_file(&p.text())) {
            self.changes_editing(format!(
                "a redirect writes {}, which line editors read their key bindings from",
                p.text()
            ));
        }
        self.wrote(&places, Written::Unseen);
        self.run(
            None,
            ShellKind::Write,
            format!("a redirect writes to {}", shown(&target.text)),
        );
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
}
