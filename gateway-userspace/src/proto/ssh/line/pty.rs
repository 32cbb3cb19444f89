//! Pty mode: the model of the remote readline buffer, key by key (control keys, escape and CSI
//! sequences, quoted insert, bracketed paste, UTF-8 text).

use super::*;

impl LineTracker {
    // ---- pty mode ----

    pub(super) fn step_pty(&mut self, input: &[u8]) -> Step {
        if self.paste {
            return self.step_paste(input);
        }
        match input[0] {
            0x1b => self.step_escape(input),
            0x16 => self.step_quoted(input),
            b @ 0x20..=0x7e => {
                self.insert(char::from(b));
                self.forward(&[b]);
                Step::Used(1)
            }
            0x80.. => self.step_text(input),
            b => {
                self.control(b);
                Step::Used(1)
            }
        }
    }

    /// A control key (C0 or DEL).
    fn control(&mut self, b: u8) {
        match b {
            0x01 => self.cursor = 0,
            0x02 => self.left(),
            CTRL_C => {
                self.forward(&[b]);
                self.interrupted();
                return;
            }
            0x04 => return self.ctrl_d(),
            0x05 => self.cursor = self.line.len(),
            0x06 => self.right(),
            // abort (nothing is pending: sequences are parsed here), clear-screen
            0x07 | 0x0c => {}
            0x08 | 0x7f => {
                self.edited_away();
                if self.cursor > 0 {
                    self.left();
                    self.delete_at_cursor();
                }
            }
            0x09 => self.mark("Tab (completion)"),
            0x0a | 0x0d => return self.enter(b),
            0x0b => self.line.truncate(self.cursor),
            0x0e | 0x10 => self.mark("Ctrl-N/Ctrl-P (history)"),
            0x0f => {
                return self.dropped(
                    "Ctrl-O (operate-and-get-next would run the line unchecked)",
                    1,
                );
            }
            0x11 | 0x13 => self.mark("Ctrl-Q/Ctrl-S (flow control, or quoted insert/search)"),
            0x12 => self.mark("Ctrl-R (history search)"),
            0x14 => self.mark("Ctrl-T (transpose)"),
            0x15 => {
                self.edited_away();
                self.line.replace_range(..self.cursor, "");
                self.cursor = 0;
            }
            0x17 => {
                self.edited_away();
                self.rubout_word();
            }
            0x18 => {
                return self.dropped(
                    "Ctrl-X (prefix of edit-and-execute-command and other commands sluice cannot follow)",
                    1,
                );
            }
            0x19 => self.mark("Ctrl-Y (yank)"),
            0x1a | 0x1c => self.mark("Ctrl-Z/Ctrl-\\ (the terminal discards input not read yet)"),
            _ => self.mark("a control key sluice does not model"),
        }
        self.forward(&[b]);
    }

    fn ctrl_d(&mut self) {
        if !self.line.is_empty() {
            // delete-char; without an editor the terminal would send the partial line instead.
            self.edited_away();
            self.delete_at_cursor();
        } else if !self.held.is_empty() {
            // End of input at PS2: bash runs what it has (a heredoc delimited by end of file).
            return self.dropped(
                "Ctrl-D at a continuation prompt (the shell would run the incomplete command)",
                1,
            );
        } else {
            self.released();
        }
        self.forward(&[0x04]);
    }

    fn enter(&mut self, b: u8) {
        if self.line.is_empty()
            && self.held.is_empty()
            && self.uncertain.is_none()
            && self.lost.is_none()
        {
            // An empty line runs nothing.
            self.forward(&[b]);
            self.released();
            return;
        }
        let continued = !self.held.is_empty();
        let text = mem::take(&mut self.held) + &mem::take(&mut self.line);
        self.cursor = 0;
        let uncertain = self.lost.clone().or_else(|| self.uncertain.take());
        self.out.push(Action::Submit {
            line: text.clone(),
            terminator: vec![b],
            uncertain: uncertain.clone(),
        });
        self.pending = Some(Pending {
            text,
            continued,
            raw: Vec::new(),
            terminator: vec![b],
            uncertain,
        });
    }

    fn step_escape(&mut self, input: &[u8]) -> Step {
        let Some(&next) = input.get(1) else {
            return Step::NeedMore;
        };
        match next {
            b'[' => self.step_csi(input),
            b'O' => match input.get(2) {
                None => Step::NeedMore,
                Some(&f @ 0x40..=0x7e) => {
                    self.ss3(f, &input[..3]);
                    self.forward(&input[..3]);
                    Step::Used(3)
                }
                Some(_) => {
                    self.mark("an Alt/Meta key");
                    self.forward(&input[..2]);
                    Step::Used(2)
                }
            },
            // The terminal acts on a signal key at once; a second Escape starts a new key.
            CTRL_C | 0x1a | 0x1c | 0x1b => {
                self.mark("a lone Escape");
                self.forward(&input[..1]);
                Step::Used(1)
            }
            b if dangerous_meta(b) => {
                self.dropped(
                    "Escape + Ctrl-E, Ctrl-J, Ctrl-M, Ctrl-O, Ctrl-X or # (shell-expand-line, vi mode, insert-comment: they run the line or change how keys are read)",
                    2,
                );
                Step::Used(2)
            }
            _ => {
                self.mark("an Alt/Meta key");
                self.forward(&input[..2]);
                Step::Used(2)
            }
        }
    }

    /// `ESC [` parameters, intermediates, final byte.
    fn step_csi(&mut self, input: &[u8]) -> Step {
        let mut i = 2;
        while i < input.len().min(MAX_SEQUENCE) {
            match input[i] {
                0x20..=0x3f => i += 1,
                0x40..=0x7e => {
                    let seq = &input[..=i];
                    self.csi(seq);
                    self.forward(seq);
                    return Step::Used(i + 1);
                }
                // Malformed: readline gives up on the sequence and reads this byte as a key.
                _ => break,
            }
        }
        if i == input.len() && i < MAX_SEQUENCE {
            return Step::NeedMore;
        }
        self.unknown(&input[..i]);
        self.forward(&input[..i]);
        Step::Used(i)
    }

    fn csi(&mut self, seq: &[u8]) {
        match &seq[2..] {
            b"D" => self.left(),
            b"C" => self.right(),
            b"H" => self.cursor = 0,
            b"F" => self.cursor = self.line.len(),
            b"A" | b"B" => self.mark("Up/Down (history)"),
            b"200~" if self.editor == Editor::Reading => self.paste = true,
            b"200~" => self.mark("a bracketed paste the remote line editor has not enabled"),
            _ => self.unknown(seq),
        }
    }

    fn ss3(&mut self, f: u8, seq: &[u8]) {
        match f {
            b'D' => self.left(),
            b'C' => self.right(),
            b'H' => self.cursor = 0,
            b'F' => self.cursor = self.line.len(),
            b'A' | b'B' => self.mark("Up/Down (history)"),
            _ => self.unknown(seq),
        }
    }

    /// Ctrl-V: readline inserts the next key literally.
    fn step_quoted(&mut self, input: &[u8]) -> Step {
        let Some(&next) = input.get(1) else {
            return Step::NeedMore;
        };
        let len = match next {
            0x20..=0x7e => 1,
            // The terminal acts on a signal key before readline could quote it.
            CTRL_C | 0x1a | 0x1c => {
                self.dropped("Ctrl-V before a signal key", 1);
                return Step::Used(1);
            }
            0x80.. => match utf8_char(&input[1..]) {
                Utf8::Char(_, n) => n,
                Utf8::Incomplete => return Step::NeedMore,
                Utf8::Invalid => 0,
            },
            _ => 0,
        };
        if len == 0 {
            self.dropped(
                "Ctrl-V (quoted insert) before a control key or an invalid byte",
                2,
            );
            return Step::Used(2);
        }
        self.mark("Ctrl-V (quoted insert)");
        let text = String::from_utf8_lossy(&input[1..1 + len]).into_owned();
        text.chars().for_each(|c| self.insert(c));
        self.forward(&input[..1 + len]);
        Step::Used(1 + len)
    }

    /// A byte >= 0x80 outside a paste.
    fn step_text(&mut self, input: &[u8]) -> Step {
        match utf8_char(input) {
            Utf8::Incomplete => Step::NeedMore,
            Utf8::Invalid => {
                if dangerous_meta(input[0]) {
                    self.dropped(
                        "a byte a non-UTF-8 line editor reads as a Meta key that runs the line or changes how keys are read",
                        1,
                    );
                } else {
                    self.mark("input that is not UTF-8");
                    self.insert(char::REPLACEMENT_CHARACTER);
                    self.forward(&input[..1]);
                }
                Step::Used(1)
            }
            Utf8::Char(c, n) => {
                let bytes = &input[..n];
                if !self.utf8 {
                    if bytes.iter().any(|&b| dangerous_meta(b)) {
                        self.dropped(
                            "a character a non-UTF-8 line editor reads as a Meta key that runs the line or changes how keys are read",
                            n,
                        );
                        return Step::Used(n);
                    }
                    self.mark("non-ASCII input (its meaning depends on the remote locale)");
                }
                self.insert(c);
                self.forward(bytes);
                Step::Used(n)
            }
        }
    }

    /// Inside a trusted bracketed paste readline inserts every byte literally until `ESC[201~`.
    fn step_paste(&mut self, input: &[u8]) -> Step {
        let b = input[0];
        match b {
            0x1b if input.starts_with(PASTE_END) => {
                self.paste = false;
                self.forward(PASTE_END);
                return Step::Used(PASTE_END.len());
            }
            0x1b if PASTE_END.starts_with(input) => return Step::NeedMore,
            // The terminal still acts on these; an interrupt ends the paste and the line.
            CTRL_C => {
                self.paste = false;
                self.control(CTRL_C);
                return Step::Used(1);
            }
            0x11 | 0x13 | 0x1a | 0x1c => {
                self.mark("flow-control or signal keys in a paste (the terminal acts on them)")
            }
            // readline turns a pasted CR into a newline.
            b'\r' => self.insert('\n'),
            0x00..=0x7f => self.insert(char::from(b)),
            0x80.. => {
                return match utf8_char(input) {
                    Utf8::Incomplete => Step::NeedMore,
                    Utf8::Invalid => {
                        self.mark("input that is not UTF-8");
                        self.insert(char::REPLACEMENT_CHARACTER);
                        self.forward(&input[..1]);
                        Step::Used(1)
                    }
                    Utf8::Char(c, n) => {
                        self.insert(c);
                        self.forward(&input[..n]);
                        Step::Used(n)
                    }
                };
            }
        }
        self.forward(&[b]);
        Step::Used(1)
    }

    // ---- the line model ----

    fn insert(&mut self, c: char) {
        if self.held.len() + self.line.len() + c.len_utf8() > self.max_line {
            if self.uncertain.is_none() {
                self.uncertain = Some(format!(
                    "overflow: the line is longer than {} bytes",
                    self.max_line
                ));
            }
            return;
        }
        self.line.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    fn left(&mut self) {
        if let Some(c) = self.line[..self.cursor].chars().next_back() {
            self.cursor -= c.len_utf8();
        }
    }

    fn right(&mut self) {
        if let Some(c) = self.line[self.cursor..].chars().next() {
            self.cursor += c.len_utf8();
        }
    }

    fn delete_at_cursor(&mut self) {
        if self.cursor < self.line.len() {
            self.line.remove(self.cursor);
        }
    }

    /// readline's unix-word-rubout: whitespace (space, tab) delimits words.
    fn rubout_word(&mut self) {
        let before = self.line[..self.cursor].trim_end_matches([' ', '\t']);
        let start = before.rfind([' ', '\t']).map_or(0, |i| i + 1);
        self.line.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    fn unknown(&mut self, seq: &[u8]) {
        if self.uncertain.is_none() {
            let shown = String::from_utf8_lossy(seq).replace('\x1b', "ESC");
            self.uncertain = Some(format!("an unknown key sequence ({shown})"));
        }
    }
}

/// Escape + this key (or this byte read as Meta by a non-UTF-8 readline) runs the line or
/// changes how keys are read: shell-expand-line (M-C-e, runs command substitutions), vi mode
/// (M-C-j, M-C-m), insert-comment (M-#, accepts the line), and M-C-o, M-C-x for good measure.
fn dangerous_meta(b: u8) -> bool {
    matches!(b & 0x7f, 0x05 | 0x0a | 0x0d | 0x0f | 0x18 | b'#')
}

enum Utf8 {
    Char(char, usize),
    Incomplete,
    Invalid,
}

/// The UTF-8 character at the start of `input` (whose first byte is >= 0x80).
fn utf8_char(input: &[u8]) -> Utf8 {
    let need = match input[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return Utf8::Invalid,
    };
    match std::str::from_utf8(&input[..input.len().min(need)]) {
        Ok(s) => s
            .chars()
            .next()
            .map_or(Utf8::Invalid, |c| Utf8::Char(c, need)),
        Err(e) if e.error_len().is_none() => Utf8::Incomplete,
        Err(_) => Utf8::Invalid,
    }
}
