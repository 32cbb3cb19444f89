//! Replays a recorded statement the way `psql -X` (PostgreSQL 15's psql, default settings:
//! aligned format, border 1, ASCII lines, not quiet) showed it, so that a replay of an agent's
//! psql session can be compared byte for byte with what psql printed.
//!
//! The rules follow psql's `print_aligned_text` (src/fe_utils/print.c), `pg_wcsformat`
//! (src/fe_utils/mbprint.c) and `PrintQueryResult` (src/bin/psql/common.c), checked against
//! real psql 15 output. What a [`ResultSet`] cannot reproduce:
//! - an error's `LINE n:` cursor, `QUERY:` and `CONTEXT:` lines (the record keeps neither the
//!   error position nor the context);
//! - `COPY ... TO STDOUT`: psql prints the copied data and no tag; the record only has the tag;
//! - a zero-column statement that returned no rows (`SELECT WHERE false` prints `--` and
//!   `(0 rows)`) looks like a command without rows (`SELECT 0` of `SELECT ... INTO`) and is
//!   rendered as the latter;
//! - truncated results, which get a marker line instead of the rows that were not kept;
//! - other psql settings: expanded (`\x`), wrapped, unaligned, `\pset null`, numeric locale.

use super::record::{PgMessage, ResultSet};

mod width;

/// What psql prints on stdout for one statement: its rows as an aligned table (then, for
/// INSERT/UPDATE/DELETE ... RETURNING, the tag too), or the command tag alone; nothing for a
/// failed or empty statement (the error goes to stderr, see [`render_stderr`]).
pub fn render_stdout(set: &ResultSet) -> String {
    let mut out = String::new();
    if set.error.is_some() {
        return out;
    }
    if returns_rows(set) {
        render_table(set, &mut out);
        // psql 15 repeats the status of data-modifying statements after their RETURNING rows.
        if let Some(tag) = &set.tag
            && ["INSERT", "UPDATE", "DELETE"]
                .iter()
                .any(|verb| tag.starts_with(verb))
        {
            out.push_str(tag);
            out.push('\n');
        }
    } else if let Some(tag) = &set.tag {
        out.push_str(tag);
        out.push('\n');
    }
    out
}

/// What psql prints on stderr for one statement: its notices and warnings, then its error, each
/// as libpq formats them with the default verbosity (`SEVERITY:  message`, `DETAIL:  `,
/// `HINT:  `), without the `psql:FILE:LINE: ` prefix psql adds when it reads a script file.
pub fn render_stderr(set: &ResultSet) -> String {
    let mut out = String::new();
    for msg in set.notices.iter().chain(&set.error) {
        render_message(msg, &mut out);
    }
    out
}

/// Whether psql got a tuples result: a row description, or rows (`SELECT;` has rows but no
/// columns).
fn returns_rows(set: &ResultSet) -> bool {
    !set.columns.is_empty() || !set.rows.is_empty() || set.row_count > 0
}

fn render_message(msg: &PgMessage, out: &mut String) {
    if !msg.severity.is_empty() {
        out.push_str(&msg.severity);
        out.push_str(":  ");
    }
    out.push_str(&msg.message);
    out.push('\n');
    if let Some(detail) = &msg.detail {
        out.push_str("DETAIL:  ");
        out.push_str(detail);
        out.push('\n');
    }
    if let Some(hint) = &msg.hint {
        out.push_str("HINT:  ");
        out.push_str(hint);
        out.push('\n');
    }
}

/// psql right-aligns exactly these types (`column_type_alignment` in print.c): int2, int4, int8,
/// float4, float8, numeric, oid, xid, xid8, cid, money.
fn right_aligned(type_oid: u32) -> bool {
    matches!(
        type_oid,
        21 | 23 | 20 | 700 | 701 | 1700 | 26 | 28 | 5069 | 29 | 790
    )
}

/// One display line of a cell or header: its text as psql shows it and its width in columns.
struct Line {
    text: String,
    width: usize,
}

/// Splits a value into display lines the way `pg_wcsformat` does: a newline starts a line, a
/// tab advances to the next multiple of 8, a carriage return shows as `\r`, other control
/// characters as `\xNN` (ASCII) or `\uNNNN` (C1).
fn display_lines(value: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut text = String::new();
    let mut width = 0;
    for c in value.chars() {
        match c {
            '\n' => {
                lines.push(Line {
                    text: std::mem::take(&mut text),
                    width,
                });
                width = 0;
            }
            '\r' => {
                text.push_str("\\r");
                width += 2;
            }
            '\t' => loop {
                text.push(' ');
                width += 1;
                if width % 8 == 0 {
                    break;
                }
            },
            '\0'..='\x1f' | '\x7f' => {
                text.push_str(&format!("\\x{:02X}", c as u32));
                width += 4;
            }
            '\u{80}'..='\u{9f}' => {
                text.push_str(&format!("\\u{:04X}", c as u32));
                width += 6;
            }
            _ => {
                text.push(c);
                width += char_width(c);
            }
        }
    }
    lines.push(Line { text, width });
    lines
}

fn char_width(c: char) -> usize {
    let in_table = |table: &[(u32, u32)]| {
        table
            .binary_search_by(|&(lo, hi)| {
                if hi < c as u32 {
                    std::cmp::Ordering::Less
                } else if lo > c as u32 {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
    };
    if c.is_ascii() {
        1
    } else if in_table(width::ZERO) {
        0
    } else if in_table(width::WIDE) {
        2
    } else {
        1
    }
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// `print_aligned_text` with border 1 and no wrapping.
fn render_table(set: &ResultSet, out: &mut String) {
    let ncols = set.columns.len();
    let headers: Vec<Vec<Line>> = set.columns.iter().map(|c| display_lines(&c.name)).collect();
    // NULL shows as the empty string (psql's default `\pset null`).
    let rows: Vec<Vec<Vec<Line>>> = set
        .rows
        .iter()
        .map(|row| {
            (0..ncols)
                .map(|i| display_lines(row.get(i).and_then(Option::as_deref).unwrap_or("")))
                .collect()
        })
        .collect();
    let line_width = |cell: &Vec<Line>| cell.iter().map(|l| l.width).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncols)
        .map(|i| {
            rows.iter()
                .map(|r| line_width(&r[i]))
                .chain([line_width(&headers[i])])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let right: Vec<bool> = set
        .columns
        .iter()
        .map(|c| right_aligned(c.type_oid))
        .collect();

    // Headers, centered; a multi-line header marks its continued lines with `+`.
    let header_lines = headers.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..header_lines {
        for (i, header) in headers.iter().enumerate() {
            out.push(' ');
            let done = match header.get(k) {
                Some(line) => {
                    let spare = widths[i] - line.width;
                    pad(out, spare / 2);
                    out.push_str(&line.text);
                    pad(out, spare.div_ceil(2));
                    k + 1 == header.len()
                }
                None => {
                    pad(out, widths[i]);
                    true
                }
            };
            out.push(if done { ' ' } else { '+' });
            if i + 1 < ncols {
                out.push('|');
            }
        }
        out.push('\n');
    }

    // The rule under the headers; with no columns at all psql still draws its two ends.
    if ncols == 0 {
        out.push_str("--");
    } else {
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        out.push_str(&rule.join("+"));
    }
    out.push('\n');

    // Rows: one output line per line of the tallest cell; a cell continued on the next line
    // ends with `+` (after padding to the column's width, even in the last column).
    for row in &rows {
        if ncols == 0 {
            break;
        }
        let height = row.iter().map(Vec::len).max().unwrap_or(1);
        for k in 0..height {
            for (j, cell) in row.iter().enumerate() {
                let not_last = j + 1 < ncols;
                out.push(' ');
                let continued = k + 1 < cell.len();
                match cell.get(k) {
                    Some(line) => {
                        let spare = widths[j] - line.width;
                        if right[j] {
                            pad(out, spare);
                            out.push_str(&line.text);
                        } else {
                            out.push_str(&line.text);
                            if not_last || continued {
                                pad(out, spare);
                            }
                        }
                    }
                    None if not_last => pad(out, widths[j]),
                    None => {}
                }
                if continued {
                    out.push('+');
                } else if not_last {
                    out.push(' ');
                }
                if not_last {
                    out.push('|');
                }
            }
            out.push('\n');
        }
    }

    let total = if set.truncated {
        let omitted = set.row_count.saturating_sub(set.rows.len() as u64);
        // Not psql's: says plainly that the table above is incomplete.
        out.push_str(&format!(
            "[sluice: {omitted} more rows were sent but not recorded]\n"
        ));
        set.row_count
    } else {
        set.rows.len() as u64
    };
    out.push_str(&format!(
        "({total} {})\n\n",
        if total == 1 { "row" } else { "rows" }
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::audit::record::ResultColumn;

    const INT4: u32 = 23;
    const NUMERIC: u32 = 1700;
    const TEXT: u32 = 25;

    fn set(columns: &[(&str, u32)], rows: &[&[Option<&str>]], tag: &str) -> ResultSet {
        ResultSet {
            columns: columns
                .iter()
                .map(|(name, type_oid)| ResultColumn {
                    name: name.to_string(),
                    type_oid: *type_oid,
                })
                .collect(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|c| c.map(str::to_string)).collect())
                .collect(),
            row_count: rows.len() as u64,
            tag: Some(tag.to_string()),
            ..ResultSet::default()
        }
    }

    // Expected strings below are psql 15.18's stdout for the statement in each comment.

    /// `select 1 as a, 'hello world'::text as bb, null::int as c, 1.5::numeric`
    #[test]
    fn numbers_right_text_left_null_empty() {
        let s = set(
            &[("a", INT4), ("bb", TEXT), ("c", INT4), ("numeric", NUMERIC)],
            &[&[Some("1"), Some("hello world"), None, Some("1.5")]],
            "SELECT 1",
        );
        assert_eq!(
            render_stdout(&s),
            " a |     bb      | c | numeric \n\
             ---+-------------+---+---------\n \
             1 | hello world |   |     1.5\n\
             (1 row)\n\n"
        );
    }

    /// `select E'1\n22\n333'::text as l, 7 as "r<newline>r2", E'x\nyy' as last`
    #[test]
    fn multi_line_cells_and_headers() {
        let s = set(
            &[("l", TEXT), ("r\nr2", INT4), ("last", TEXT)],
            &[&[Some("1\n22\n333"), Some("7"), Some("x\nyy")]],
            "SELECT 1",
        );
        assert_eq!(
            render_stdout(&s),
            "  l  | r +| last \n     | r2 |      \n\
             -----+----+------\n \
             1  +|  7 | x   +\n \
             22 +|    | yy\n \
             333 |    | \n\
             (1 row)\n\n"
        );
    }

    /// `select E'a\n' as t, '' as e, null as n, E'\nb' as lead`
    #[test]
    fn empty_lines_and_empty_values() {
        let s = set(
            &[("t", TEXT), ("e", TEXT), ("n", TEXT), ("lead", TEXT)],
            &[&[Some("a\n"), Some(""), None, Some("\nb")]],
            "SELECT 1",
        );
        assert_eq!(
            render_stdout(&s),
            " t | e | n | lead \n\
             ---+---+---+------\n \
             a+|   |   |     +\n   \
             |   |   | b\n\
             (1 row)\n\n"
        );
    }

    /// `select '日本語' as cjk, 'a'||E'\u0301'||'b' as comb, E'a\tb' as tab, E'a\x01b' as ctl`
    #[test]
    fn display_width_and_control_characters() {
        let s = set(
            &[("cjk", TEXT), ("comb", TEXT), ("tab", TEXT), ("ctl", TEXT)],
            &[&[
                Some("日本語"),
                Some("a\u{301}b"),
                Some("a\tb"),
                Some("a\x01b"),
            ]],
            "SELECT 1",
        );
        assert_eq!(
            render_stdout(&s),
            "  cjk   | comb |    tab    |  ctl   \n\
             --------+------+-----------+--------\n \
             日本語 | a\u{301}b   | a       b | a\\x01b\n\
             (1 row)\n\n"
        );
    }

    /// `select;` and `select 1 where false`
    #[test]
    fn zero_columns_and_zero_rows() {
        let mut s = set(&[], &[&[]], "SELECT 1");
        assert_eq!(render_stdout(&s), "--\n(1 row)\n\n");
        s = set(&[("?column?", INT4)], &[], "SELECT 0");
        assert_eq!(render_stdout(&s), " ?column? \n----------\n(0 rows)\n\n");
    }

    /// `create table t(a int)`, `update t set a = 1` and
    /// `insert into t values (3, 'z') returning *`
    #[test]
    fn command_tags() {
        assert_eq!(
            render_stdout(&set(&[], &[], "CREATE TABLE")),
            "CREATE TABLE\n"
        );
        assert_eq!(render_stdout(&set(&[], &[], "UPDATE 3")), "UPDATE 3\n");
        let s = set(
            &[("a", INT4), ("b", TEXT)],
            &[&[Some("3"), Some("z")]],
            "INSERT 0 1",
        );
        assert_eq!(
            render_stdout(&s),
            " a | b \n---+---\n 3 | z\n(1 row)\n\nINSERT 0 1\n"
        );
        // An empty query string: no tag, nothing printed.
        assert_eq!(render_stdout(&ResultSet::default()), "");
    }

    #[test]
    fn truncated_results_say_so() {
        let mut s = set(&[("n", INT4)], &[&[Some("1")], &[Some("2")]], "SELECT 5");
        s.row_count = 5;
        s.truncated = true;
        assert_eq!(
            render_stdout(&s),
            " n \n---\n 1\n 2\n[sluice: 3 more rows were sent but not recorded]\n(5 rows)\n\n"
        );
    }

    /// `do $$begin raise notice 'n1' using detail = 'd1', hint = 'h1'; end$$` and
    /// `insert into u values (1)` twice.
    #[test]
    fn errors_and_notices_go_to_stderr() {
        let mut s = set(&[], &[], "DO");
        s.notices.push(PgMessage {
            severity: "NOTICE".into(),
            code: "00000".into(),
            message: "n1".into(),
            detail: Some("d1".into()),
            hint: Some("h1".into()),
        });
        assert_eq!(render_stderr(&s), "NOTICE:  n1\nDETAIL:  d1\nHINT:  h1\n");
        assert_eq!(render_stdout(&s), "DO\n");

        let failed = ResultSet {
            error: Some(PgMessage {
                severity: "ERROR".into(),
                code: "23505".into(),
                message: "duplicate key value violates unique constraint \"u_pkey\"".into(),
                detail: Some("Key (a)=(1) already exists.".into()),
                hint: None,
            }),
            ..ResultSet::default()
        };
        assert_eq!(render_stdout(&failed), "");
        assert_eq!(
            render_stderr(&failed),
            "ERROR:  duplicate key value violates unique constraint \"u_pkey\"\n\
             DETAIL:  Key (a)=(1) already exists.\n"
        );
    }
}
