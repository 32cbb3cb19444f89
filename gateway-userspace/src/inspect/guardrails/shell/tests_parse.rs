//! The walk itself: what is a command and what is data, commands listed in order, incomplete and
//! unparseable input, and the bounds on nesting, length and fan-out.

use super::{
    tests::{check, rules},
    *,
};

#[test]
fn quoted_and_data_words_are_never_commands() {
    check(&[
        ("echo \"rm -rf /\"", &[]),
        ("echo 'rm -rf /'", &[]),
        ("echo rm -rf /", &[]),
        ("printf '%s\\n' 'rm -rf /'", &[]),
        ("grep -r 'rm -rf /' .", &[]),
        ("git commit -m 'rm -rf / and DROP TABLE'", &[]),
        ("echo '$(rm -rf /)'", &[]),
        ("echo \\$\\(rm -rf /\\)", &[]),
        ("cat <<'EOF'\n$(rm -rf /)\nEOF", &[]),
        ("# rm -rf /", &[]),
        ("ls # ; rm -rf /", &[]),
        ("echo 'shutdown now' | mail root", &[]),
    ]);
    // ...but an unquoted here-document body does run its substitutions.
    check(&[("cat <<EOF\n$(rm -rf /)\nEOF", &["rm-rf"])]);
}

#[test]
fn commands_are_listed_in_order_with_wrappers() {
    let a =
        analyze_shell("ls -la | grep x && sudo -u app /usr/bin/env FOO=1 ./run.sh; echo $(date)");
    assert_eq!(
        a.commands,
        ["ls", "grep", "sudo", "env", "run.sh", "date", "echo"]
    );
    assert!(a.is_clean(), "{a:?}");
    let a = analyze_shell("sh -c 'cat /etc/hosts | wc -l'");
    assert_eq!(a.commands, ["sh", "cat", "wc"]);
    let a = analyze_shell("find . -name x -exec grep -l y {} +");
    assert_eq!(a.commands, ["find", "grep"]);
}

#[test]
fn incomplete_input_waits_for_more_lines() {
    for line in [
        "echo 'abc",
        "echo \"abc",
        "echo $'abc",
        "cat <<EOF\nx",
        "cat <<EOF",
        "ls |",
        "ls &&",
        "ls ||",
        "if true; then",
        "if true; then ls; else",
        "for x in a b; do",
        "while true; do ls",
        "case x in",
        "{ ls",
        "(ls",
        "echo $(ls",
        "echo `ls",
        "echo ${x",
        "echo \\",
        "echo \\\n",
        "f() {",
        "x=(a b",
    ] {
        let a = analyze_shell(line);
        assert!(a.incomplete, "{line:?}: {a:?}");
        assert!(a.findings.is_empty() && a.parse_error.is_none() && a.commands.is_empty());
    }
}

#[test]
fn unparseable_input_is_reported() {
    for line in [
        "ls )",
        "fi",
        "done",
        "ls; fi",
        "echo a; done",
        "then ls",
        "| ls",
        "&& ls",
        ";;",
        "echo >",
        "}",
    ] {
        let a = analyze_shell(line);
        assert!(!a.incomplete, "{line:?}: {a:?}");
        assert!(a.parse_error.is_some(), "{line:?}: {a:?}");
        assert_eq!(rules(line), ["unparseable"], "{line:?}");
    }
    // Nested text that does not parse is a finding, not a parse error of the line.
    let a = analyze_shell("sh -c 'echo \"abc'");
    assert_eq!(a.parse_error, None);
    assert_eq!(rules("sh -c 'echo \"abc'"), ["unparseable"]);
    assert_eq!(rules("eval 'ls )'"), ["unparseable"]);
    // Empty and comment-only lines are complete and clean.
    for line in ["", "   ", "# just a comment", "\n"] {
        let a = analyze_shell(line);
        assert!(a.is_clean() && a.commands.is_empty(), "{line:?}: {a:?}");
    }
}

#[test]
fn nesting_is_bounded() {
    // `sh -c` inside `sh -c` ... past MAX_DEPTH: unparseable, not a stack overflow.
    let mut line = "rm -rf /".to_owned();
    for _ in 0..12 {
        line = format!("sh -c {}", shell_quote(&line));
    }
    assert!(rules(&line).contains(&"unparseable"), "{line}");
    // Deeply nested command substitutions.
    let deep = format!("echo {}x{}", "$(echo ".repeat(200), ")".repeat(200));
    assert!(rules(&deep).contains(&"unparseable"));
    let deep = format!("{}ls{}", "( ".repeat(100), " )".repeat(100));
    let a = analyze_shell(&deep);
    assert!(
        a.has(RuleId::Unparseable) || a.parse_error.is_some(),
        "{a:?}"
    );
    // Within the bound, the innermost command is still seen.
    let mut line = "rm -rf /".to_owned();
    for _ in 0..3 {
        line = format!("sh -c {}", shell_quote(&line));
    }
    assert_eq!(rules(&line), ["rm-rf"]);
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn long_lines_are_analysed_and_huge_ones_refused() {
    // A 4 KiB line of ordinary commands.
    let line = (0..500)
        .map(|i| format!("echo {i}"))
        .collect::<Vec<_>>()
        .join("; ");
    assert!(line.len() > 3000);
    let a = analyze_shell(&line);
    assert!(
        a.is_clean() && a.commands.len() == 500,
        "{:?}",
        a.parse_error
    );
    let line = format!("{}; rm -rf /", "ls -la /tmp ".repeat(400));
    assert!(line.len() > 4096);
    assert_eq!(rules(&line), ["rm-rf"]);
    let huge = "x".repeat(MAX_SHELL_LEN + 1);
    let a = analyze_shell(&huge);
    assert!(a.parse_error.is_some() && a.has(RuleId::Unparseable));
    // A long brace expansion is not expanded into memory.
    assert_eq!(rules("echo {1..99999999}"), [] as [&str; 0]);
    assert_eq!(rules("rm -rf /x{1..99999999}"), ["rm-rf"]);
}

/// Lines short enough to be analysed on the caller's stack, shaped for the deepest recursion in
/// the parser and the walk, fit in the 2 MiB of a test (or tokio worker) thread.
#[test]
fn worst_short_lines_fit_a_small_stack() {
    let fit = |open: &str, inner: &str, close: &str| {
        let n = (CALLER_STACK_LEN - inner.len()) / (open.len() + close.len());
        let line = format!("{}{inner}{}", open.repeat(n), close.repeat(n));
        assert!(line.len() <= CALLER_STACK_LEN);
        line
    };
    for line in [
        fit("if true; then ", "rm -rf /", "; fi"),
        fit("$(", "rm -rf /", ")"),
        fit("\"$(", "rm -rf /", ")\""),
        fit("( ", "rm -rf /", " )"),
        fit("{ ", "rm -rf /;", " }"),
        fit("sh -c ", "x", ""),
        fit("`", "x", "`"),
        fit("${x:-", "$(rm -rf /)", "}"),
        fit("while true; do ", "rm -rf /", "; done"),
        fit("case x in *) ", "rm -rf /", ";; esac"),
    ] {
        let a = analyze_shell(&line);
        assert!(
            !a.is_clean() || a.incomplete || a.commands.is_empty() || a.findings.is_empty(),
            "{line}"
        );
    }
}

#[test]
fn shells_reading_the_sessions_input_are_reported() {
    for line in [
        "bash",
        "/bin/sh -s",
        "sudo bash -l",
        "env LANG=C bash -i",
        "rbash",
    ] {
        assert!(analyze_shell(line).reads_session_input, "{line}");
    }
    for line in [
        "bash -c ls",
        "bash -lc ls",
        "bash script.sh",
        "echo ls | bash",
        "python3",
        "ls",
        "cat <<EOF | sh\nls\nEOF",
    ] {
        assert!(!analyze_shell(line).reads_session_input, "{line}");
    }
}

/// Found by fuzzing: brush's brace parser is exponential in nested or unclosed braces. Past a
/// small depth the word stays unexpanded (and unknown); the rules still see the program.
#[test]
fn deeply_nested_braces_are_bounded() {
    for word in [
        format!("-r{}f", "{".repeat(40)),
        format!("{}a{}", "{".repeat(40), "}".repeat(40)),
        "{a,".repeat(40),
        "{".repeat(300),
    ] {
        let line = format!("cd / && rm {word} srv");
        let start = std::time::Instant::now();
        let a = analyze_shell(&line);
        // Generous for a debug build on a loaded machine; the exponential case took minutes.
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{line}"
        );
        assert_eq!(a.commands, ["cd", "rm"], "{line}");
        assert_eq!(a.kind(), ShellKind::Write, "{line}");
        // An unknown word that may be `-rf`, with `srv` in `/`: still the finding.
        if word.starts_with("-r") {
            assert!(a.has(ShellRuleId::RmRf), "{line}: {a:?}");
        }
    }
    // Shallow braces still expand.
    check(&[("rm -rf /{etc,{usr,var}}", &["rm-rf", "write-etc"])]);
}

/// Functions that call each other many times are walked at each call: bounded in all.
#[test]
fn function_call_fan_out_is_bounded() {
    let mut line = "f0() { ls; }".to_owned();
    for i in 1..9 {
        let calls = format!("f{} ", i - 1).repeat(10).replace(' ', "; ");
        line.push_str(&format!("; f{i}() {{ {calls} }}"));
    }
    line.push_str("; f8");
    let start = std::time::Instant::now();
    let a = analyze_shell(&line);
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert!(a.has(RuleId::Unparseable), "{:?}", a.findings);
}

/// Found by fuzzing: an option word that is a glob (`--i*nste`) has no exact text.
#[test]
fn glob_option_words_are_unknown_options() {
    let a = analyze_shell("apt l --i*nste | grep -c x");
    assert!(a.findings.is_empty(), "{a:?}");
    assert_eq!(analyze_shell("sort --o* x").kind(), ShellKind::Unknown);
}

/// Found by fuzzing: brush-parser panics on integers too long for 64 bits in brace sequences
/// and tilde prefixes; such words are not handed to it.
#[test]
fn overlong_numbers_do_not_reach_the_parsers_unwraps() {
    for line in [
        "rmog/{{{{1111111111111111111111111111111..2}",
        "echo {1..99999999999999999999}",
        "ls ~+99999999999999999999999",
        "ls ~-99999999999999999999999/x",
        "cat <<EOF\n~99999999999999999999999\nEOF",
        "echo ${x:-~99999999999999999999999}",
    ] {
        let a =
            super::analyze_shell_unguarded(line, ShellOrigin::default(), &ShellState::default());
        assert!(
            a.parse_error.is_none() || a.has(RuleId::Unparseable),
            "{line}: {a:?}"
        );
    }
    // Ordinary long numbers are fine.
    assert!(
        analyze_shell("sleep 100000000000000000000000")
            .findings
            .is_empty()
    );
}

/// Found by fuzzing: brush's parser is exponential in nested unclosed parentheses and `case`
/// patterns; such lines are refused before parsing, in bounded time.
#[test]
fn deeply_nested_parentheses_and_case_are_refused_quickly() {
    for line in [
        format!("(( {}o", "(".repeat(30)),
        format!("{}x", "( ".repeat(30)),
        format!("{}x", "case a in b) ".repeat(30)),
        "(( ((((((((((((o((((((((((((op".to_owned(),
    ] {
        let start = std::time::Instant::now();
        let a = analyze_shell(&line);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{line}"
        );
        assert!(
            a.parse_error.is_some() && a.has(RuleId::Unparseable),
            "{line}: {a:?}"
        );
    }
    // Found by fuzzing too: a redirect's descriptor number too large for 32 bits.
    let a = super::analyze_shell_unguarded(
        "ln -s x <99999999999999999999999999999999999999<<<o",
        ShellOrigin::default(),
        &ShellState::default(),
    );
    assert!(a.parse_error.is_some(), "{a:?}");
    assert!(analyze_shell("ls 2>/dev/null 9>&1").is_clean());
    // Ordinary nesting still parses.
    assert!(analyze_shell("( (cd /tmp && ls) ; (echo $(( (1+2) * (3+4) ))) )").is_clean());
    assert!(analyze_shell("case $x in a) case $y in b) ls;; esac;; esac").is_clean());
}

/// Found by fuzzing: brush's tokenizer never returns (and grows without bound) on a
/// here-document operator followed by a control character. Such lines are refused first.
#[test]
fn here_document_operators_followed_by_control_characters_are_refused() {
    for line in [
        "cat <<\r;; ls ",
        "a<<-\r;d ",
        "a<<\u{c};;d ",
        "a<< \r|d ",
        "slockse --s\u{fffd}a<<\r;;\u{7}\u{fffd}d ",
    ] {
        let (tx, rx) = std::sync::mpsc::channel();
        let text = line.to_owned();
        std::thread::spawn(move || {
            let _ = tx.send(analyze_shell(&text));
        });
        let a = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{line:?} does not return"));
        assert!(a.parse_error.is_some(), "{line:?}: {a:?}");
    }
    assert!(analyze_shell("cat <<EOF\nx\nEOF").is_clean());
    assert!(analyze_shell("cat <<-'EOF'\n\tx\n\tEOF").is_clean());
    assert!(analyze_shell("tr a b <<< x").is_clean());
}
