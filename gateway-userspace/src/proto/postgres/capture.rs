//! What the agent saw, for the audit log: the messages relayed to it (after masking and after
//! sluice's own refusals were put in), folded into result sets, within the capture limits.

use super::codec::{self, Message};
use crate::{
    config::CaptureLimits,
    services::audit::record::{PgMessage, ResultColumn, ResultSet},
};

pub struct Capture {
    limits: CaptureLimits,
    sets: Vec<ResultSet>,
    current: ResultSet,
    /// Column formats of the current result (binary cells are kept as hex).
    formats: Vec<i16>,
    bytes: usize,
}

impl Capture {
    pub fn new(limits: CaptureLimits) -> Capture {
        Capture {
            limits,
            sets: Vec::new(),
            current: ResultSet::default(),
            formats: Vec::new(),
            bytes: 0,
        }
    }

    /// Folds in one message sent to the agent.
    pub fn observe(&mut self, msg: &Message) {
        match msg.tag {
            b'T' => {
                self.finish_if_started();
                let cols = codec::row_description(msg.body()).unwrap_or_default();
                self.formats = cols.iter().map(|c| c.format).collect();
                self.current.columns = cols
                    .into_iter()
                    .map(|c| ResultColumn {
                        name: c.name,
                        type_oid: c.type_oid,
                    })
                    .collect();
            }
            b'D' => {
                self.current.row_count += 1;
                if self.current.rows.len() >= self.limits.rows || self.bytes >= self.limits.bytes {
                    self.current.truncated = true;
                    return;
                }
                let body = msg.body();
                let Ok(fields) = codec::data_row_fields(body) else {
                    return;
                };
                let row: Vec<Option<String>> = fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        f.as_ref().map(|r| {
                            cell_text(&body[r.clone()], self.formats.get(i).copied() == Some(1))
                        })
                    })
                    .collect();
                self.bytes += row.iter().flatten().map(String::len).sum::<usize>();
                self.current.rows.push(row);
            }
            b'C' => {
                self.current.tag = Some(codec::query_text(msg.body()).unwrap_or("").to_string());
                self.finish();
            }
            b'E' => {
                self.current.error = Some(pg_message(msg.body()));
                self.finish();
            }
            b'N' => self.current.notices.push(pg_message(msg.body())),
            // An Execute that stopped at its row limit: the portal's rows so far.
            b's' => self.finish(),
            _ => {}
        }
    }

    fn finish_if_started(&mut self) {
        let c = &self.current;
        if !c.columns.is_empty() || c.row_count > 0 || !c.notices.is_empty() {
            self.finish();
        }
    }

    fn finish(&mut self) {
        self.sets.push(std::mem::take(&mut self.current));
        self.formats.clear();
    }

    /// The result sets since the last call (at ReadyForQuery).
    pub fn take(&mut self) -> Vec<ResultSet> {
        self.finish_if_started();
        self.bytes = 0;
        std::mem::take(&mut self.sets)
    }
}

fn cell_text(value: &[u8], binary: bool) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if !binary || !text.contains('\0') => text.to_string(),
        _ => format!("\\x{}", crate::util::hex(value)),
    }
}

fn pg_message(body: &[u8]) -> PgMessage {
    let mut m = PgMessage::default();
    for (tag, value) in codec::notice_fields(body) {
        match tag {
            b'V' => m.severity = value,
            // The localized severity, when the non-localized one is absent (before 9.6).
            b'S' if m.severity.is_empty() => m.severity = value,
            b'C' => m.code = value,
            b'M' => m.message = value,
            b'D' => m.detail = Some(value),
            b'H' => m.hint = Some(value),
            _ => {}
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rows: usize, bytes: usize) -> CaptureLimits {
        CaptureLimits {
            rows,
            bytes,
            terminal_bytes: 0,
        }
    }

    fn row(cells: &[Option<&str>]) -> Message {
        let refs: Vec<Option<&[u8]>> = cells.iter().map(|c| c.map(str::as_bytes)).collect();
        codec::build_data_row(&refs)
    }

    fn complete(tag: &str) -> Message {
        let mut body = tag.as_bytes().to_vec();
        body.push(0);
        Message::new(b'C', &body)
    }

    #[test]
    fn rows_beyond_the_limit_are_counted_not_kept() {
        let mut c = Capture::new(limits(2, 1 << 20));
        for i in 0..5 {
            c.observe(&row(&[Some(&i.to_string()), None]));
        }
        c.observe(&complete("SELECT 5"));
        let sets = c.take();
        assert_eq!(sets.len(), 1);
        let s = &sets[0];
        assert_eq!((s.rows.len(), s.row_count, s.truncated), (2, 5, true));
        assert_eq!(s.rows[1], vec![Some("1".to_string()), None]);
        assert_eq!(s.tag.as_deref(), Some("SELECT 5"));
    }

    #[test]
    fn errors_and_statements_without_rows_each_make_a_set() {
        let mut c = Capture::new(limits(10, 1 << 20));
        c.observe(&complete("INSERT 0 1"));
        c.observe(&codec::error_response("42501", "nope", Some("why"), None));
        let sets = c.take();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].tag.as_deref(), Some("INSERT 0 1"));
        let e = sets[1].error.as_ref().unwrap();
        assert_eq!(
            (e.code.as_str(), e.message.as_str(), e.detail.as_deref()),
            ("42501", "nope", Some("why"))
        );
        assert!(c.take().is_empty());
    }

    #[test]
    fn the_byte_limit_stops_capture_too() {
        let mut c = Capture::new(limits(100, 10));
        let long = "x".repeat(8);
        for _ in 0..3 {
            c.observe(&row(&[Some(&long)]));
        }
        let sets = c.take();
        assert_eq!((sets[0].rows.len(), sets[0].row_count), (2, 3));
        assert!(sets[0].truncated);
    }
}
