//! COPY out: per field, the whole-masked ones get their placeholder (text, CSV and binary
//! framing kept), rules apply to plainly read columns, and the detectors to the rest.

use super::*;

/// COPY out of one statement.
pub(super) struct CopyPlan {
    pub(super) format: lineage::CopyFormat,
    /// Per field: the placeholder kind when masked whole.
    whole: Vec<Option<DetectorKind>>,
    /// Per field: the rules of a plainly read column (`dob`, `as: ssn`), applied per cell.
    planned: Vec<Option<ColumnPlan>>,
    binary_header_seen: bool,
}

impl ResponseMasker<'_> {
    pub(super) async fn copy_plan(
        &mut self,
        sql: Option<Arc<str>>,
        index: usize,
        msg: &Message,
    ) -> CopyPlan {
        let body = msg.body();
        let overall = body.first().copied().unwrap_or(0);
        let ncols = body
            .get(1..3)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .unwrap_or(0);
        let engine = self.engine.clone();
        let lineage = sql.as_ref().map(|s| self.lineage(s));
        let statement = lineage
            .as_ref()
            .and_then(|l| l.statements.as_ref())
            .and_then(|s| s.get(index))
            .cloned();
        let mut format = lineage::CopyFormat::default();
        let mut whole = vec![None; ncols];
        let Some(st) = statement else {
            // A COPY sluice cannot analyse: every field is masked whole when the database holds
            // sensitive data.
            self.catalog.survey(&engine).await;
            if self.catalog.view(&engine).has_sensitive() {
                whole = vec![Some(DetectorKind::Column); ncols];
            }
            if overall == 1 {
                format.kind = lineage::CopyKind::Binary;
            }
            return CopyPlan {
                format,
                whole,
                planned: vec![None; ncols],
                binary_header_seen: false,
            };
        };
        self.catalog.ensure(&engine, &[], &st.relations, &[]).await;
        let view = self.catalog.view(&engine);
        let rels: Vec<RelName> = st.relations.iter().cloned().collect();
        let mut planned: Vec<Option<ColumnPlan>> = vec![None; ncols];
        // A plain read of `rel.column`: whole if even plain reads are, else its rules.
        let plain = |rel: &RelName, column: &str| -> (Option<DetectorKind>, Option<ColumnPlan>) {
            let l = view.column(rel, column);
            let whole = view
                .plain_read_whole(rel, column)
                .or_else(|| (l.unknown && view.has_sensitive()).then_some(DetectorKind::Column));
            let plan = engine.plan_column(&ColumnContext {
                name: column,
                source: Some(SourceColumn {
                    schema: rel.schema.as_deref().unwrap_or(""),
                    table: &rel.name,
                    column,
                }),
                type_name: None,
            });
            (whole, plan.needs_cell_work().then_some(plan))
        };
        if let Output::Copy {
            table,
            slots,
            format: f,
        } = &st.output
        {
            format = f.clone();
            // The output as plain columns where it is (a table, or `*` over one relation).
            let mut fields: Vec<Result<(RelName, String), Derivation>> = Vec::new();
            match table {
                Some((rel, listed)) => {
                    let names = if listed.is_empty() {
                        view.columns_of(rel)
                    } else {
                        listed.clone()
                    };
                    fields.extend(names.into_iter().map(|n| Ok((rel.clone(), n))));
                }
                None => {
                    let ones = slots.iter().filter(|s| matches!(s, Slot::One(_))).count();
                    for slot in slots {
                        match slot {
                            Slot::Star(d) if d.direct && d.sources.len() == 1 => {
                                let Some(lineage::Source::WholeRow(rel)) = d.sources.first() else {
                                    fields.push(Err(d.clone()));
                                    continue;
                                };
                                let names = view.columns_of(rel);
                                if names.is_empty() || slots.len() - ones > 1 {
                                    fields.push(Err(d.clone()));
                                } else {
                                    fields.extend(names.into_iter().map(|n| Ok((rel.clone(), n))));
                                }
                            }
                            Slot::One(d) if d.direct && d.sources.len() == 1 => {
                                match d.sources.first() {
                                    Some(lineage::Source::Column { rel, column }) => {
                                        fields.push(Ok((rel.clone(), column.clone())))
                                    }
                                    _ => fields.push(Err(d.clone())),
                                }
                            }
                            Slot::One(d) | Slot::Star(d) => fields.push(Err(d.clone())),
                        }
                    }
                }
            }
            if fields.len() == ncols {
                for (i, f) in fields.iter().enumerate() {
                    match f {
                        Ok((rel, column)) => (whole[i], planned[i]) = plain(rel, column),
                        Err(d) => whole[i] = d.resolve(&view, None, &rels).whole_kind(),
                    }
                }
            } else {
                // Positions unknown: everything the statement outputs, whole.
                let all = Derivation::union(fields.into_iter().map(|f| match f {
                    Ok((rel, column)) => Derivation::column(rel, column),
                    Err(d) => d,
                }));
                let k = all.resolve(&view, None, &rels).whole_kind();
                whole = vec![k; ncols];
            }
        }
        CopyPlan {
            format,
            whole,
            planned,
            binary_header_seen: false,
        }
    }

    pub(super) fn mask_copy(&mut self, msg: Message) -> Result<Message, MaskFailure> {
        let engine = self.engine.clone();
        let Some(plan) = &mut self.copy else {
            return Ok(msg);
        };
        let body = msg.body();
        let rewritten: Option<Vec<u8>> = match plan.format.kind {
            lineage::CopyKind::Binary => copy_binary(&engine, plan, body)?,
            _ => {
                let fields = copy_text_whole(&engine, plan, body);
                let line = fields.as_deref().unwrap_or(body);
                match engine.mask(line)? {
                    Some(m) => Some(m),
                    None => fields,
                }
            }
        };
        Ok(match rewritten {
            Some(b) => Message::new(msg.tag, &b),
            None => msg,
        })
    }
}

/// Text or CSV COPY row with the whole-masked fields replaced; `None` when none is.
fn copy_text_whole(engine: &MaskingEngine, plan: &CopyPlan, line: &[u8]) -> Option<Vec<u8>> {
    if plan.whole.iter().all(Option::is_none) && plan.planned.iter().all(Option::is_none) {
        return None;
    }
    let delim = plan.format.delimiter;
    let csv = plan.format.kind == lineage::CopyKind::Csv;
    let quote = plan.format.quote;
    let (body, eol) = match line.strip_suffix(b"\n") {
        Some(b) => (b, &b"\n"[..]),
        None => (line, &b""[..]),
    };
    // Field boundaries: a delimiter outside quotes (CSV) or not escaped by a backslash (text).
    let mut fields: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if csv {
            if b == quote {
                in_quotes = !in_quotes;
            } else if b == delim && !in_quotes {
                fields.push((start, i));
                start = i + 1;
            }
        } else if b == b'\\' {
            i += 1;
        } else if b == delim {
            fields.push((start, i));
            start = i + 1;
        }
        i += 1;
    }
    fields.push((start, body.len()));
    let mut out = Vec::with_capacity(line.len());
    let mut changed = false;
    for (k, (s, e)) in fields.iter().enumerate() {
        if k > 0 {
            out.push(delim);
        }
        let f = &body[*s..*e];
        let is_null = if csv { f.is_empty() } else { f == b"\\N" };
        let planned = plan.planned.get(k).and_then(Option::as_ref);
        match (plan.whole.get(k).copied().flatten(), planned) {
            (Some(kind), _) if !is_null => {
                let mut p = Vec::new();
                engine.placeholder(kind, f, &mut p);
                out.extend(p);
                changed = true;
            }
            (None, Some(cp)) if !is_null => {
                match engine.mask_cell_planned(cp, f, &mut Report::default()) {
                    Ok(Some(m)) => {
                        out.extend(m);
                        changed = true;
                    }
                    _ => out.extend_from_slice(f),
                }
            }
            _ => out.extend_from_slice(f),
        }
    }
    out.extend_from_slice(eol);
    changed.then_some(out)
}

const PGCOPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Binary COPY data: tuples of (len, bytes) fields, after an 11-byte signature, flags and an
/// extension area in the first message; whole-masked fields get the placeholder and every text
/// field goes through the detectors, each with its length rewritten.
fn copy_binary(
    engine: &MaskingEngine,
    plan: &mut CopyPlan,
    body: &[u8],
) -> Result<Option<Vec<u8>>, MaskFailure> {
    let mut at = 0;
    let mut out = Vec::with_capacity(body.len());
    if !plan.binary_header_seen {
        if !body.starts_with(PGCOPY_SIGNATURE) || body.len() < 19 {
            return Err(codec::CodecError::Malformed("binary COPY header").into());
        }
        let ext = u32::from_be_bytes(body[15..19].try_into().expect("4")) as usize;
        at = 19 + ext;
        if at > body.len() {
            return Err(codec::CodecError::Malformed("binary COPY header").into());
        }
        out.extend_from_slice(&body[..at]);
        plan.binary_header_seen = true;
    }
    let mut changed = false;
    while at < body.len() {
        let count = i16::from_be_bytes(
            body.get(at..at + 2)
                .ok_or(codec::CodecError::Malformed("binary COPY tuple"))?
                .try_into()
                .expect("2"),
        );
        out.extend_from_slice(&body[at..at + 2]);
        at += 2;
        if count < 0 {
            // The trailer.
            out.extend_from_slice(&body[at..]);
            break;
        }
        for k in 0..count as usize {
            let len = i32::from_be_bytes(
                body.get(at..at + 4)
                    .ok_or(codec::CodecError::Malformed("binary COPY field"))?
                    .try_into()
                    .expect("4"),
            );
            at += 4;
            if len < 0 {
                out.extend_from_slice(&len.to_be_bytes());
                continue;
            }
            let end = at
                .checked_add(len as usize)
                .filter(|e| *e <= body.len())
                .ok_or(codec::CodecError::Malformed("binary COPY field"))?;
            let f = &body[at..end];
            let planned = plan.planned.get(k).and_then(Option::as_ref);
            let new: Option<Vec<u8>> = match (plan.whole.get(k).copied().flatten(), planned) {
                (Some(kind), _) => {
                    let mut p = Vec::new();
                    engine.placeholder(kind, f, &mut p);
                    Some(p)
                }
                // A rule on a binary field sluice cannot read as text masks it whole.
                (None, Some(cp)) => match cp.whole_kind() {
                    Some(kind) => {
                        let mut p = Vec::new();
                        engine.placeholder(kind, f, &mut p);
                        Some(p)
                    }
                    None => engine.mask(f)?,
                },
                (None, None) => engine.mask(f)?,
            };
            match new {
                Some(v) => {
                    changed = true;
                    out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    out.extend(v);
                }
                None => {
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(f);
                }
            }
            at = end;
        }
    }
    Ok(changed.then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_and_csv_fields_are_replaced_in_place() {
        let e = MaskingEngine::with_defaults().unwrap();
        let mut plan = CopyPlan {
            format: lineage::CopyFormat::default(),
            whole: vec![None, Some(DetectorKind::Card), None],
            planned: vec![None; 3],
            binary_header_seen: false,
        };
        assert_eq!(
            copy_text_whole(&e, &plan, b"1\t1111 1111 1111 1114\tx\\ty\n").unwrap(),
            b"1\t[CARD]\tx\\ty\n"
        );
        assert_eq!(copy_text_whole(&e, &plan, b"1\t\\N\tx\n"), None);
        plan.format.kind = lineage::CopyKind::Csv;
        plan.format.delimiter = b',';
        assert_eq!(
            copy_text_whole(&e, &plan, b"1,\"a,b\",\"x\"\n").unwrap(),
            b"1,[CARD],\"x\"\n"
        );
    }

    #[test]
    fn binary_copy_keeps_its_framing() {
        let e = MaskingEngine::with_defaults().unwrap();
        let mut plan = CopyPlan {
            format: lineage::CopyFormat {
                kind: lineage::CopyKind::Binary,
                ..Default::default()
            },
            whole: vec![Some(DetectorKind::Email), None],
            planned: vec![None; 2],
            binary_header_seen: false,
        };
        let mut m = PGCOPY_SIGNATURE.to_vec();
        m.extend(0u32.to_be_bytes());
        m.extend(0u32.to_be_bytes());
        m.extend(2i16.to_be_bytes());
        for f in [&b"moc.elpmaxe@ada"[..], b"call 415-555-0132"] {
            m.extend((f.len() as i32).to_be_bytes());
            m.extend_from_slice(f);
        }
        let out = copy_binary(&e, &mut plan, &m).unwrap().unwrap();
        let mut expect = PGCOPY_SIGNATURE.to_vec();
        expect.extend(0u32.to_be_bytes());
        expect.extend(0u32.to_be_bytes());
        expect.extend(2i16.to_be_bytes());
        for f in [&b"[EMAIL]"[..], b"call [PHONE]"] {
            expect.extend((f.len() as i32).to_be_bytes());
            expect.extend_from_slice(f);
        }
        assert_eq!(out, expect);
    }
}
