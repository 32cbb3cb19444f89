use super::*;

/// A pty tracker for a UTF-8 remote whose readline has not announced itself.
fn pty() -> LineTracker {
    LineTracker::new(Mode::Pty, 1024).utf8_input(true)
}

/// A pty tracker whose remote readline is reading with bracketed paste on (bash 5.1+).
fn reading() -> LineTracker {
    let mut t = pty();
    t.observe_output(b"\x1b[?2004huser@host:~$ ");
    t
}

fn forwarded(actions: &[Action]) -> Vec<u8> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Forward(b) => Some(b.as_slice()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .concat()
}

/// The submissions in `actions`: (line, terminator, uncertain).
fn submits(actions: &[Action]) -> Vec<(String, Vec<u8>, Option<String>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Submit {
                line,
                terminator,
                uncertain,
            } => Some((line.clone(), terminator.clone(), uncertain.clone())),
            _ => None,
        })
        .collect()
}

/// The one submission in `actions`, which must be the last action.
fn submit(actions: &[Action]) -> (String, Vec<u8>, Option<String>) {
    assert!(
        matches!(actions.last(), Some(Action::Submit { .. })),
        "{actions:?}"
    );
    let s = submits(actions);
    assert_eq!(s.len(), 1, "{actions:?}");
    s.into_iter().next().unwrap()
}

fn dropped(actions: &[Action]) -> Vec<(&'static str, usize)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Dropped { what, bytes } => Some((*what, *bytes)),
            _ => None,
        })
        .collect()
}

#[test]
fn editing_keys_change_the_modelled_line() {
    let cases: &[(&[u8], &str)] = &[
        (b"lsx\x7f -l\r", "ls -l"),
        (b"lx\x08s\r", "ls"),
        (b"rm -rf /\x15echo hi\r", "echo hi"),
        (b"abc def\x02\x02\x02\x15\r", "def"),
        (b"echo foo bar  \x17baz\r", "echo foo baz"),
        (b"  \x17x\r", "x"),
        (b"rm /tmp/x y\x02\x02\x17\r", "rm  y"),
        (b"cho hi\x01e\x05!\r", "echo hi!"),
        (b"ac\x02b\x06d\r", "abcd"),
        (b"ab\x1b[DX\x1bODY\r", "aYXb"),
        (b"ac\x1b[Db\x1b[C\x1bOCd\r", "abcd"),
        (b"world\x1b[Hhello \x1b[F!\r", "hello world!"),
        (b"b\x1bOHa\x1bOFc\r", "abc"),
        (b"echo hello world\x01\x06\x06\x06\x06\x0b\r", "echo"),
        (b"echox\x02\x04\r", "echo"),
        (
            b"caf\xc3\xa9\x7fe\x1b[D\x1b[D\x1b[D\xc3\xa9\r",
            "c\u{e9}afe",
        ),
        (b"ls\x07\x0c -a\n", "ls -a"),
    ];
    for (input, line) in cases {
        let mut t = pty();
        let actions = t.feed(input);
        let (got, terminator, uncertain) = submit(&actions);
        assert_eq!(got, *line, "{}", String::from_utf8_lossy(input));
        assert_eq!(uncertain, None, "{}", String::from_utf8_lossy(input));
        // Every key went upstream (the remote echoes and edits) except the Enter.
        assert_eq!(forwarded(&actions), input[..input.len() - 1]);
        assert_eq!(terminator, input[input.len() - 1..]);
    }
}

#[test]
fn the_enter_waits_for_the_decision() {
    let mut t = pty();
    let a = t.feed(b"ls\r");
    assert_eq!(
        a,
        vec![
            Action::Forward(b"ls".to_vec()),
            Action::Submit {
                line: "ls".into(),
                terminator: b"\r".to_vec(),
                uncertain: None
            }
        ]
    );
    assert!(t.awaiting());
    assert_eq!(t.allow(), vec![Action::Forward(b"\r".to_vec())]);
    assert!(!t.awaiting());
    // Enter on an empty line runs nothing: no decision needed.
    assert_eq!(t.feed(b"\r\n"), vec![Action::Forward(b"\r\n".to_vec())]);
}

#[test]
fn ctrl_c_discards_the_line() {
    let mut t = pty();
    let a = t.feed(b"rm -rf /\x03ls\r");
    assert_eq!(forwarded(&a), b"rm -rf /\x03ls");
    assert_eq!(submit(&a), ("ls".into(), b"\r".to_vec(), None));
}

#[test]
fn a_bracketed_paste_is_one_submission() {
    let mut t = reading();
    let a = t.feed(b"\x1b[200~echo a\necho b\r\techo c\x1b[201~\r");
    assert_eq!(
        submit(&a),
        ("echo a\necho b\n\techo c".into(), b"\r".to_vec(), None)
    );
    assert_eq!(forwarded(&a), b"\x1b[200~echo a\necho b\r\techo c\x1b[201~");

    // A pasted tab is text; readline's word rubout stops at it.
    let mut t = reading();
    let a = t.feed(b"\x1b[200~a b\tc\x1b[201~\x17\r");
    assert_eq!(submit(&a), ("a b\t".into(), b"\r".to_vec(), None));

    // Markers split across feeds; the paste is inserted at the cursor.
    let mut t = reading();
    let mut a = t.feed(b"X\x1b[D\x1b[20");
    a.extend(t.feed(b"0~ls\npwd\x1b[2"));
    a.extend(t.feed(b"01"));
    assert!(submits(&a).is_empty());
    a.extend(t.feed(b"~\r"));
    assert_eq!(submit(&a), ("ls\npwdX".into(), b"\r".to_vec(), None));

    // Ctrl-C inside a paste still interrupts (the terminal sends SIGINT): the paste ends there.
    let mut t = reading();
    let a = t.feed(b"\x1b[200~rm -rf /\x03ls\n");
    assert_eq!(forwarded(&a), b"\x1b[200~rm -rf /\x03ls");
    assert_eq!(submit(&a).0, "ls");
}

#[test]
fn a_paste_the_editor_did_not_enable_is_uncertain_and_its_newlines_submit() {
    let mut t = pty();
    let a = t.feed(b"\x1b[200~echo a\necho b\x1b[201~\r");
    let (line, terminator, uncertain) = submit(&a);
    assert_eq!(
        (line.as_str(), terminator.as_slice()),
        ("echo a", &b"\n"[..])
    );
    assert!(uncertain.unwrap().contains("bracketed paste"));
    assert_eq!(forwarded(&a), b"\x1b[200~echo a");

    // Bash turned bracketed paste off while a command runs: the same.
    let mut t = reading();
    t.observe_output(b"\r\n\x1b[?2004l\r");
    let a = t.feed(b"\x1b[200~echo a\necho b\x1b[201~\r");
    assert_eq!(submit(&a).0, "echo a");
    assert!(submit(&a).2.is_some());
}

#[test]
fn a_multi_line_paste_without_brackets_is_decided_line_by_line() {
    let mut t = pty();
    let a = t.feed(b"echo a\recho b\recho c\r");
    assert_eq!(forwarded(&a), b"echo a");
    assert_eq!(submit(&a).0, "echo a");
    // Input arriving meanwhile waits behind the decision.
    assert_eq!(t.feed(b"ls"), vec![]);
    let a = t.allow();
    assert_eq!(forwarded(&a), b"\recho b");
    assert_eq!(submit(&a).0, "echo b");
    // Refused: Ctrl-C clears the remote line; the rest is never forwarded.
    let a = t.refuse();
    assert_eq!(forwarded(&a), [CTRL_C]);
    assert_eq!(
        dropped(&a),
        vec![("input after a refused line", b"echo c\rls".len())]
    );
    assert!(!t.awaiting());
    assert_eq!(t.unprocessed(), 0);
    let a = t.feed(b"pwd\r");
    assert_eq!(submit(&a).0, "pwd");
}

#[test]
fn keys_sluice_cannot_follow_make_the_line_uncertain() {
    let cases: &[&[u8]] = &[
        b"ls\t\r",
        b"\x1b[A\r",
        b"\x1bOB\r",
        b"\x10\r",
        b"\x0e\r",
        b"\x12ssh\r",
        b"\x13x\r",
        b"ls \x19\r",
        b"ab\x14\r",
        b"ls\x1bb\r",
        b"ls\x1b\x7f\r",
        b"ls\x1b[2~\r",
        b"ls\x1b[1;5D\r",
        b"ls\x1b[3~\r",
        b"ls\x1a\r",
        b"ls\x1b\x1b[A\r",
        b"\x16x\r",
        b"ls\x1f\r",
        b"ls\x1b[201~\r",
    ];
    for input in cases {
        let mut t = pty();
        let a = t.feed(input);
        let shown = String::from_utf8_lossy(input);
        let (_, _, uncertain) = submit(&a);
        assert!(uncertain.is_some(), "{shown:?}");
        assert!(dropped(&a).is_empty(), "{shown:?}: {a:?}");
        assert_eq!(forwarded(&a), input[..input.len() - 1], "{shown:?}");
        // The next line starts certain again.
        t.allow();
        assert_eq!(submit(&t.feed(b"id\r")).2, None, "{shown:?}");
    }
    // A malformed sequence: readline reads the byte that broke it as a key of its own.
    let mut t = pty();
    let a = t.feed(b"ls\x1b[1\x0f\r");
    assert_eq!(forwarded(&a), b"ls\x1b[1");
    assert_eq!(dropped(&a).len(), 1);
    assert!(submit(&a).2.unwrap().contains("ESC[1"));
}

#[test]
fn keys_that_could_run_unseen_text_are_not_forwarded() {
    let cases: &[(&[u8], &[u8], &str)] = &[
        // (input, forwarded, line)
        (b"ls\x0f\r", b"ls", "ls"),
        (b"ls\x18\x05 -l\r", b"ls\x05 -l", "ls -l"),
        (b"echo $(id)\x1b\x05\r", b"echo $(id)", "echo $(id)"),
        (b"ls\x1b\n\r", b"ls", "ls"),
        (b"ls\x1b\r\r", b"ls", "ls"),
        (b"ls\x1b#\r", b"ls", "ls"),
        (b"ls\x1b\x85\r", b"ls", "ls"),
        (b"ls\x16\n\r", b"ls", "ls"),
        (b"ls\x16\x1b\r", b"ls", "ls"),
    ];
    for (input, sent, line) in cases {
        let mut t = pty();
        let a = t.feed(input);
        let shown = String::from_utf8_lossy(input);
        assert_eq!(forwarded(&a), *sent, "{shown:?}");
        assert_eq!(dropped(&a).len(), 1, "{shown:?}");
        assert_eq!(submit(&a).0, *line, "{shown:?}");
    }
    // Ctrl-V quotes a printable key: inserted, but uncertain.
    let mut t = pty();
    let a = t.feed(b"l\x16s\r");
    assert_eq!(forwarded(&a), b"l\x16s");
    assert_eq!(submit(&a).0, "ls");
    assert!(submit(&a).2.is_some());
    // Ctrl-V before Ctrl-C: the terminal interrupts anyway.
    let mut t = pty();
    let a = t.feed(b"rm\x16\x03ls\r");
    assert_eq!(forwarded(&a), b"rm\x03ls");
    assert_eq!(submit(&a), ("ls".into(), b"\r".to_vec(), None));
}

#[test]
fn ctrl_d_is_end_of_input_on_an_empty_line_but_never_at_a_continuation() {
    let mut t = pty();
    assert_eq!(t.feed(b"\x04"), vec![Action::Forward(vec![4])]);

    let mut t = pty();
    let a = t.feed(b"cat <<EOF | sh\r");
    assert_eq!(submit(&a).0, "cat <<EOF | sh");
    assert_eq!(t.continue_line(), vec![Action::Forward(b"\r".to_vec())]);
    let a = t.feed(b"rm -rf x\r");
    assert_eq!(submit(&a).0, "cat <<EOF | sh\nrm -rf x");
    t.continue_line();
    let a = t.feed(b"\x04");
    assert!(forwarded(&a).is_empty());
    assert_eq!(dropped(&a).len(), 1);
    // Ctrl-C abandons the continuation.
    t.feed(b"\x03");
    assert_eq!(submit(&t.feed(b"id\r")).0, "id");
}

#[test]
fn a_continued_pty_command_is_submitted_whole() {
    let mut t = pty();
    let a = t.feed(b"echo 'a\rb' |\rwc -c\r");
    assert_eq!(forwarded(&a), b"echo 'a");
    assert_eq!(submit(&a).0, "echo 'a");
    let a = t.continue_line();
    assert_eq!(forwarded(&a), b"\rb' |");
    assert_eq!(submit(&a).0, "echo 'a\nb' |");
    let a = t.continue_line();
    assert_eq!(submit(&a).0, "echo 'a\nb' |\nwc -c");
    // Refused: one Ctrl-C discards the whole command at the remote.
    assert_eq!(forwarded(&t.refuse()), [CTRL_C]);

    // Uncertainty of an earlier line carries over to the whole command.
    let mut t = pty();
    t.feed(b"echo 'a\t\r");
    t.continue_line();
    let a = t.feed(b"b'\r");
    assert_eq!(submit(&a).0, "echo 'a\nb'");
    assert!(submit(&a).2.is_some());
}

#[test]
fn utf8_split_across_feeds() {
    let mut t = pty();
    assert_eq!(
        t.feed(b"echo caf\xc3"),
        vec![Action::Forward(b"echo caf".to_vec())]
    );
    let a = t.feed(b"\xa9\r");
    assert_eq!(forwarded(&a), b"\xc3\xa9");
    assert_eq!(submit(&a), ("echo café".into(), b"\r".to_vec(), None));

    // A three-byte character in three feeds.
    let mut t = pty();
    t.feed(b"\xe2");
    t.feed(b"\x82");
    assert_eq!(submit(&t.feed(b"\xac\r")).0, "€");

    // Invalid bytes are shown as U+FFFD and make the line uncertain.
    let mut t = pty();
    let a = t.feed(b"a\xffb\r");
    assert_eq!(submit(&a).0, "a\u{fffd}b");
    assert!(submit(&a).2.is_some());
}

#[test]
fn non_ascii_for_an_editor_that_may_not_read_utf8() {
    let mut t = LineTracker::new(Mode::Pty, 1024);
    let a = t.feed("echo café\r".as_bytes());
    assert_eq!(submit(&a).0, "echo café");
    assert!(submit(&a).2.unwrap().contains("locale"));
    // U+0145 is C5 85; 0x85 would read as Meta-Ctrl-E (shell-expand-line): dropped.
    let mut t = LineTracker::new(Mode::Pty, 1024);
    let a = t.feed("echo \u{145}x\r".as_bytes());
    assert_eq!(forwarded(&a), b"echo x");
    assert_eq!(dropped(&a).len(), 1);
    // The same character for a UTF-8 editor is text.
    let a = pty().feed("echo \u{145}\r".as_bytes());
    assert_eq!(submit(&a), ("echo \u{145}".into(), b"\r".to_vec(), None));
}

#[test]
fn escape_sequences_split_across_feeds() {
    let mut t = pty();
    assert_eq!(t.feed(b"ab\x1b"), vec![Action::Forward(b"ab".to_vec())]);
    assert_eq!(t.feed(b"["), vec![]);
    assert_eq!(t.unprocessed(), 2);
    assert_eq!(t.feed(b"D"), vec![Action::Forward(b"\x1b[D".to_vec())]);
    assert_eq!(t.feed(b"X\x1bO"), vec![Action::Forward(b"X".to_vec())]);
    assert_eq!(t.feed(b"D"), vec![Action::Forward(b"\x1bOD".to_vec())]);
    // The dangerous Escape + Ctrl-E is recognised across feeds too: nothing of it was sent.
    assert_eq!(t.feed(b"\x1b"), vec![]);
    let a = t.feed(b"\x05Y\r");
    assert_eq!(forwarded(&a), b"Y");
    assert_eq!(submit(&a), ("aYXb".into(), b"\r".to_vec(), None));
}

#[test]
fn editing_while_no_editor_reads_is_uncertain() {
    let mut t = reading();
    submit(&t.feed(b"sleep 5\r"));
    t.allow();
    // Typed ahead while the command runs: the terminal's canonical mode edits it.
    let a = t.feed(b"rm -rf /tmp/x\x17\r");
    assert!(submit(&a).2.unwrap().contains("no line editor"));
    t.refuse();
    // Plain typing ahead is fine.
    assert_eq!(submit(&t.feed(b"pwd\r")).2, None);
    t.allow();
    // The next prompt announces readline again (here split across chunks).
    t.observe_output(b"/home/u\r\n\x1b[?20");
    t.observe_output(b"04hu@h:~$ ");
    assert_eq!(submit(&t.feed(b"lss\x7f\r")).2, None);
}

#[test]
fn lines_mode_holds_everything_until_the_newline() {
    let mut t = LineTracker::new(Mode::Lines, 1024);
    assert_eq!(t.feed(b"echo a"), vec![]);
    // No key is interpreted: the bytes are what the shell reads.
    let a = t.feed(b"b\x7f\x03 \x1b[D\r\nls");
    assert_eq!(
        a,
        vec![Action::Submit {
            line: "echo ab\x7f\x03 \x1b[D\r".into(),
            terminator: b"\n".to_vec(),
            uncertain: None
        }]
    );
    assert_eq!(
        t.allow(),
        vec![Action::Forward(b"echo ab\x7f\x03 \x1b[D\r\n".to_vec())]
    );
    // Blank lines need no decision.
    assert_eq!(t.feed(b" -l\n\n"), {
        let mut a = vec![Action::Submit {
            line: "ls -l".into(),
            terminator: b"\n".to_vec(),
            uncertain: None,
        }];
        a.truncate(1);
        a
    });
    assert_eq!(t.allow(), vec![Action::Forward(b"ls -l\n\n".to_vec())]);
    // A last line without a newline is submitted at the end of input.
    assert_eq!(t.feed(b"exit 3"), vec![]);
    let a = t.finish();
    assert_eq!(submit(&a), ("exit 3".into(), vec![], None));
    assert_eq!(t.allow(), vec![Action::Forward(b"exit 3".to_vec())]);
    assert_eq!(dropped(&t.feed(b"x")), vec![("input after its end", 1)]);
}

#[test]
fn a_continued_block_in_lines_mode_is_released_at_once() {
    let mut t = LineTracker::new(Mode::Lines, 1024);
    let a = t.feed(b"cat <<EOF\nhello\nEOF\nid\n");
    assert_eq!(submit(&a).0, "cat <<EOF");
    let a = t.continue_line();
    assert_eq!(a.len(), 1);
    assert_eq!(submit(&a).0, "cat <<EOF\nhello");
    let a = t.continue_line();
    assert_eq!(submit(&a).0, "cat <<EOF\nhello\nEOF");
    let a = t.allow();
    assert_eq!(forwarded(&a), b"cat <<EOF\nhello\nEOF\n");
    assert_eq!(submit(&a).0, "id");

    // Refused: none of the block was sent, and the rest of the input is dropped.
    let mut t = LineTracker::new(Mode::Lines, 1024);
    t.feed(b"for f in *; do\nrm $f\ndone\nls\n");
    t.continue_line();
    t.continue_line();
    let a = t.refuse();
    assert!(forwarded(&a).is_empty());
    assert_eq!(dropped(&a), vec![("input after a refused line", 3)]);

    // An incomplete command at end of input cannot continue.
    let mut t = LineTracker::new(Mode::Lines, 1024);
    t.feed(b"echo 'a\n");
    t.continue_line();
    let a = t.finish();
    assert_eq!(submit(&a), ("echo 'a\n".into(), vec![], None));
    let a = t.continue_line();
    assert!(forwarded(&a).is_empty());
    assert_eq!(dropped(&a).len(), 1);
}

#[test]
fn lines_that_are_not_what_they_seem_are_uncertain() {
    let mut t = LineTracker::new(Mode::Lines, 1024);
    let a = t.feed(b"r\0m -rf x\n");
    assert_eq!(submit(&a).0, "r\0m -rf x");
    assert!(submit(&a).2.unwrap().contains("NUL"));
    t.refuse();
    let a = t.feed(b"echo \xff\n");
    assert_eq!(submit(&a).0, "echo \u{fffd}");
    assert!(submit(&a).2.unwrap().contains("UTF-8"));
}

#[test]
fn an_overlong_line_is_uncertain_not_unbounded() {
    let mut t = LineTracker::new(Mode::Pty, 8);
    let a = t.feed(b"123456789\r");
    assert_eq!(forwarded(&a), b"123456789");
    let (line, _, uncertain) = submit(&a);
    assert_eq!(line, "12345678");
    assert!(uncertain.unwrap().starts_with("overflow"));

    let mut t = LineTracker::new(Mode::Lines, 8);
    let a = t.feed(b"123456789012\nid\n");
    assert_eq!(
        submit(&a),
        ("12345678".into(), vec![], {
            Some("overflow: the line is longer than 8 bytes".into())
        })
    );
    let a = t.allow();
    assert_eq!(forwarded(&a), b"12345678");
    let (line, terminator, uncertain) = submit(&a);
    assert_eq!((line.as_str(), terminator.as_slice()), ("9012", &b"\n"[..]));
    assert!(uncertain.unwrap().contains("continues"));
    t.allow();

    // Input fed while a line awaits its decision is bounded too.
    let mut t = LineTracker::new(Mode::Lines, 8);
    submit(&t.feed(b"a\n"));
    assert_eq!(
        dropped(&t.feed(&[b'x'; 20])),
        vec![(
            "input beyond the limit while a line awaited its decision",
            12
        )]
    );
    assert_eq!(t.unprocessed(), 8);
}

#[test]
fn finish_in_pty_mode_submits_nothing() {
    let mut t = pty();
    let a = t.feed(b"rm -rf /\x1b");
    assert_eq!(forwarded(&a), b"rm -rf /");
    let a = t.finish();
    assert_eq!(
        a,
        vec![Action::Dropped {
            what: "an incomplete key sequence at end of input",
            bytes: 1
        }]
    );
    // Finished while a line awaits: the decision still releases it.
    let mut t = pty();
    submit(&t.feed(b"ls\r"));
    assert_eq!(t.finish(), vec![]);
    assert_eq!(t.allow(), vec![Action::Forward(b"\r".to_vec())]);
}

#[test]
fn a_refused_line_typed_ahead_of_a_running_command_is_erased_not_interrupted() {
    let mut t = reading();
    let a = t.feed(b"sleep 1\rrm -rf /\r");
    assert_eq!(submit(&a).0, "sleep 1");
    // `sleep 1` runs: `rm -rf /` goes to the terminal's own buffer while the editor is away.
    let a = t.allow();
    assert_eq!(submit(&a).0, "rm -rf /");
    // Ctrl-C would interrupt `sleep 1`; the typed-ahead line is erased instead.
    assert_eq!(forwarded(&t.refuse()), ERASE_LINE);

    // Back at a prompt, a refused line is cleared with Ctrl-C (it resets readline too).
    t.observe_output(b"\x1b[?2004hpr> ");
    let a = t.feed(b"rm -rf /\r");
    assert_eq!(submit(&a).0, "rm -rf /");
    assert_eq!(forwarded(&t.refuse()), [CTRL_C]);

    // A continuation is pending at PS2 (nothing runs): Ctrl-C cancels all of it.
    let mut t = reading();
    let a = t.feed(b"echo 'a\r");
    assert_eq!(submit(&a).0, "echo 'a");
    t.continue_line();
    let a = t.feed(b"' ; rm -rf /\r");
    assert!(submit(&a).0.ends_with("rm -rf /"));
    assert_eq!(forwarded(&t.refuse()), [CTRL_C]);
}

#[test]
fn a_lost_terminal_forwards_nothing_and_submits_every_line_uncertain() {
    let mut t = reading();
    let a = t.feed(b"stty erase '#'\r");
    assert_eq!(forwarded(&a), b"stty erase '#'");
    // The line that changed the editing runs (its Enter is released), then the model is lost.
    let a = t.allow();
    assert_eq!(forwarded(&a), b"\r");
    t.lose("`stty erase #` changes how the terminal reads later lines".into());
    let a = t.feed(b"echo #####rm -rf ~\r");
    assert!(forwarded(&a).is_empty(), "{a:?}");
    let (line, _, uncertain) = submit(&a);
    assert_eq!(line, "echo #####rm -rf ~");
    assert!(uncertain.unwrap().contains("stty erase"));
    // Refusing sends nothing either (no Ctrl-C to a terminal sluice no longer follows).
    let a = t.refuse();
    assert!(forwarded(&a).is_empty(), "{a:?}");
    // Nor does an empty line, Ctrl-C, or a control key.
    let a = t.feed(b"\x03\x04\r");
    assert!(forwarded(&a).is_empty(), "{a:?}");
    // Lines mode (a script): every line is submitted uncertain, nothing forwarded.
    let mut t = LineTracker::new(Mode::Lines, 1024);
    t.lose("bind".into());
    let a = t.feed(b"ls\n");
    assert!(forwarded(&a).is_empty());
    assert_eq!(submit(&a).2.as_deref(), Some("bind"));
}
