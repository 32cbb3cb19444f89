//! What DML and `CREATE TABLE AS` write, and COPY's format.

use super::*;

/// `INSERT INTO t (cols) <query>`: what each written column is computed from.
pub(super) fn insert_writes(
    rel: &RelName,
    columns: &[String],
    slots: &[(Option<String>, Slot)],
) -> Vec<Write> {
    let exact = slots.iter().all(|(_, s)| matches!(s, Slot::One(_)));
    if !columns.is_empty() && exact && slots.len() == columns.len() {
        return columns
            .iter()
            .zip(slots)
            .map(|(c, (_, s))| Write {
                rel: rel.clone(),
                column: Some(c.clone()),
                from: match s {
                    Slot::One(d) | Slot::Star(d) => d.clone().computed(),
                },
            })
            .collect();
    }
    let all = Derivation::union(slots.iter().map(|(_, s)| match s {
        Slot::One(d) | Slot::Star(d) => d.clone(),
    }));
    if columns.is_empty() {
        vec![Write {
            rel: rel.clone(),
            column: None,
            from: all,
        }]
    } else {
        columns
            .iter()
            .map(|c| Write {
                rel: rel.clone(),
                column: Some(c.clone()),
                from: all.clone(),
            })
            .collect()
    }
}

/// Columns of a new table, named by the query's output names (unnamed ones: every column).
pub(super) fn named_writes(rel: &RelName, slots: Vec<(Option<String>, Slot)>) -> Vec<Write> {
    slots
        .into_iter()
        .map(|(name, s)| {
            let (column, from) = match s {
                Slot::One(d) => (name, d),
                Slot::Star(d) => (None, d),
            };
            Write {
                rel: rel.clone(),
                column,
                from: from.computed(),
            }
        })
        .collect()
}

/// COPY's format options (both the modern and the pre-9.0 syntax).
pub(super) fn copy_format(s: &Statement) -> CopyFormat {
    let mut f = CopyFormat::default();
    let Statement::Copy {
        options,
        legacy_options,
        ..
    } = s
    else {
        return f;
    };
    let mut quote = None;
    let mut escape = None;
    let mut delimiter = None;
    for o in options {
        match o {
            CopyOption::Format(i) => {
                f.kind = match i.value.to_lowercase().as_str() {
                    "csv" => CopyKind::Csv,
                    "binary" => CopyKind::Binary,
                    _ => CopyKind::Text,
                }
            }
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            CopyOption::Quote(c) => quote = Some(*c),
            CopyOption::Escape(c) => escape = Some(*c),
            CopyOption::Header(h) => f.header = *h,
            _ => {}
        }
    }
    for o in legacy_options {
        match o {
            CopyLegacyOption::Binary => f.kind = CopyKind::Binary,
            CopyLegacyOption::Csv(csv) => {
                f.kind = CopyKind::Csv;
                for c in csv {
                    match c {
                        ast::CopyLegacyCsvOption::Header => f.header = true,
                        ast::CopyLegacyCsvOption::Quote(q) => quote = Some(*q),
                        ast::CopyLegacyCsvOption::Escape(e) => escape = Some(*e),
                        _ => {}
                    }
                }
            }
            CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            _ => {}
        }
    }
    let byte = |c: char| u8::try_from(u32::from(c)).unwrap_or(b'?');
    if f.kind == CopyKind::Csv {
        f.delimiter = b',';
    }
    if let Some(d) = delimiter {
        f.delimiter = byte(d);
    }
    if let Some(q) = quote {
        f.quote = byte(q);
    }
    f.escape = escape.map(byte).unwrap_or(f.quote);
    f
}
