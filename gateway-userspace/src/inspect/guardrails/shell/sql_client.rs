//! SQL that a command line hands to a database client (`psql -c`, here-documents, pipes): the
//! SQL guardrails run on it (findings keep their SQL ids), and the PostgreSQL analyser's
//! statement kinds say whether it only reads (then the client is on the read-only list).

use super::{
    RuleId, ShellRule, ShellRuleId as R,
    readonly::{Check, Ctx, Entry, Verdict},
    walk::{Input, Walker, shown},
    words::Arg,
};
use crate::inspect::guardrails::analyze;

/// `psql`, `mysql` and `mariadb` are read-only when every statement they run is a read.
pub(super) const ENTRIES: &[Entry] = &[Entry {
    names: &["psql", "mysql", "mariadb"],
    check: Check::Custom(read_check),
}];

/// What a client's command line says about the SQL it runs.
#[derive(Default)]
pub(super) struct ClientArgs {
    /// `-c SQL`, `-e SQL`.
    pub commands: Vec<Arg>,
    /// `-f FILE` (not `-f -`, which is standard input).
    pub files: Vec<Arg>,
    pub reads_stdin: bool,
    /// Files the client writes (`psql -o`, `-L`; `mysql --tee`).
    pub outputs: Vec<Arg>,
    /// A word only known at run time where an option may be (`-c SQL`, `-f FILE`...).
    pub dynamic: Option<Arg>,
}

pub(super) fn client_args(program: &str, args: &[Arg]) -> ClientArgs {
    if program == "psql" {
        psql_args(args)
    } else {
        mysql_args(args)
    }
}

fn psql_args(args: &[Arg]) -> ClientArgs {
    // psql permutes options and operands (`psql db -c ...`), so scan every word.
    let mut c = ClientArgs {
        reads_stdin: true,
        ..ClientArgs::default()
    };
    let mut listing = false;
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
            if !a.literal && a.may_be_option() && c.dynamic.is_none() {
                c.dynamic = Some(a.clone());
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
                "command" => c.commands.push(value(&mut i, attached)),
                "file" => file(&mut c, value(&mut i, attached)),
                "output" | "log-file" => c.outputs.push(value(&mut i, attached)),
                "list" | "version" | "help" => listing = true,
                "dbname" | "host" | "port" | "username" | "set" | "variable" | "pset"
                | "field-separator" | "record-separator" | "table-attr"
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
        for (pos, ch) in cluster.char_indices() {
            let attached = &cluster[pos + ch.len_utf8()..];
            match ch {
                'c' => {
                    c.commands.push(value(&mut i, attached));
                    break;
                }
                'f' => {
                    file(&mut c, value(&mut i, attached));
                    break;
                }
                'o' | 'L' => {
                    c.outputs.push(value(&mut i, attached));
                    break;
                }
                'l' | 'V' | '?' => listing = true,
                'd' | 'F' | 'h' | 'p' | 'P' | 'R' | 'T' | 'U' | 'v' => {
                    value(&mut i, attached);
                    break;
                }
                _ => {}
            }
        }
        i += 1;
    }
    if listing || !c.commands.is_empty() || !c.files.is_empty() {
        c.reads_stdin = false;
    }
    c
}

/// `psql -f FILE`: SQL sluice cannot see, except `-f -` (standard input).
fn file(c: &mut ClientArgs, f: Arg) {
    if f.exact() != Some("-") {
        c.files.push(f);
    }
}

fn mysql_args(args: &[Arg]) -> ClientArgs {
    let mut c = ClientArgs {
        reads_stdin: true,
        ..ClientArgs::default()
    };
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let Some(t) = a.exact() else {
            if a.may_be_option() && c.dynamic.is_none() {
                c.dynamic = Some(a.clone());
            }
            i += 1;
            continue;
        };
        if let Some(sql_text) = t.strip_prefix("--execute=") {
            c.commands.push(Arg::lit(sql_text));
        } else if t == "--execute" || t == "-e" {
            c.commands
                .push(args.get(i + 1).cloned().unwrap_or_default());
            i += 1;
        } else if t.starts_with("-e") && !t.starts_with("--") {
            c.commands.push(Arg::lit(&t[2..]));
        } else if t == "--tee" || t.starts_with("--tee=") {
            c.outputs
                .push(Arg::lit(t.strip_prefix("--tee=").unwrap_or("?")));
        } else if matches!(t, "-V" | "--version" | "-?" | "--help") {
            c.reads_stdin = false;
        } else if matches!(t, "-u" | "-h" | "-P" | "-D" | "-S") {
            i += 1;
        }
        i += 1;
    }
    if !c.commands.is_empty() {
        c.reads_stdin = false;
    }
    c
}

/// Runs the SQL guardrails on SQL a client will send; findings keep their SQL ids.
pub(super) fn sql(w: &mut Walker, client: &str, text: &str) {
    let analysis = analyze(text, crate::inspect::Dialect::Postgres);
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

/// SQL a client reads from its standard input.
fn sql_stdin(w: &mut Walker, client: &str, stdin: &Input) {
    match stdin {
        // A client at a terminal is a REPL: `\!` runs shell commands, and what is typed there
        // would be judged as shell lines, not SQL.
        Input::Terminal if w.origin.terminal => w.find(
            R::InteractiveProgram,
            format!("{client} reads statements from the terminal; run them with {client} -c"),
        ),
        Input::Terminal => w.find(
            R::OpaqueSql,
            format!(
                "{client} runs SQL from the session's input, which sluice does not read as SQL"
            ),
        ),
        Input::Text(text) => sql(w, client, text),
        other => w.find(
            R::OpaqueSql,
            format!("{client} runs SQL read from {}", other.describe()),
        ),
    }
}

/// The findings for `psql`/`mysql ARGS`.
pub(super) fn client(w: &mut Walker, program: &str, args: &[Arg], stdin: &Input) {
    let c = client_args(program, args);
    if let Some(d) = &c.dynamic {
        // An expansion in option position may be `-c SQL` or `-f FILE`.
        w.find(
            R::OpaqueSql,
            format!(
                "{program} is given {}, only known at run time",
                shown(&d.text)
            ),
        );
    }
    for f in &c.files {
        w.find(
            R::OpaqueSql,
            format!(
                "{program} runs SQL from the file {}, which sluice cannot see",
                shown(&f.text)
            ),
        );
    }
    for cmd in &c.commands {
        sql_arg(w, program, cmd);
    }
    if c.reads_stdin {
        sql_stdin(w, program, stdin);
    }
}

/// Whether SQL only reads, as the PostgreSQL analyser classifies it: it parses, no guardrail
/// fires, and no statement can change data, schema, privileges or server state.
fn sql_reads(text: &str) -> Result<(), String> {
    let a = analyze(text, crate::inspect::Dialect::Postgres);
    if let Some(e) = a.parse_error {
        return Err(format!("SQL that could not be parsed ({e})"));
    }
    if let Some(f) = a.findings.first() {
        return Err(f.reason.clone());
    }
    match a.statements.iter().find(|k| k.is_write()) {
        Some(k) => Err(format!("a {} statement", k.as_str())),
        None => Ok(()),
    }
}

fn read_check(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let p = ctx.program;
    let c = client_args(p, args);
    if let Some(d) = c.dynamic {
        return Verdict::Unknown(format!(
            "{p} is given {}, only known at run time",
            shown(&d.text)
        ));
    }
    if let Some(o) = c.outputs.first() {
        return Verdict::Write(format!("{p} writes its output to {}", shown(&o.text)));
    }
    if !c.files.is_empty() {
        return Verdict::Unknown(format!("{p} runs SQL from a file sluice cannot see"));
    }
    for cmd in &c.commands {
        let Some(text) = cmd.exact() else {
            return Verdict::Unknown(format!("{p} runs SQL only known at run time"));
        };
        if let Err(why) = sql_reads(text) {
            return Verdict::Write(format!("{p} runs {why}"));
        }
    }
    if c.reads_stdin {
        return match ctx.stdin {
            Input::Text(text) => match sql_reads(text) {
                Ok(()) => Verdict::Read,
                Err(why) => Verdict::Write(format!("{p} runs {why}")),
            },
            Input::Terminal => Verdict::Unknown(format!("{p} reads statements from its input")),
            other => Verdict::Unknown(format!("{p} runs SQL read from {}", other.describe())),
        };
    }
    Verdict::Read
}
