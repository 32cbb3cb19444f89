//! The catalog connection's queries: relations, samples, and a minimal simple-query client.

use super::*;

/// Relations by OID or name, with their columns and (for views) definitions.
pub(super) async fn fetch_relations(
    io: &mut BoxIo,
    oids: &[u32],
    names: &[String],
) -> Result<(Vec<RelInfo>, Vec<Option<String>>), String> {
    let mut cond = Vec::new();
    if !oids.is_empty() {
        cond.push(format!("c.oid IN ({})", join_numbers(oids)));
    }
    if !names.is_empty() {
        let lits: Vec<String> = names.iter().map(|n| quote_literal(n)).collect();
        cond.push(format!("c.relname IN ({})", lits.join(", ")));
    }
    let sql = format!(
        "SELECT c.oid, n.nspname, c.relname, c.relkind, c.relpersistence, \
                a.attnum, a.attname, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod), \
                CASE WHEN c.relkind IN ('v', 'm') AND a.attnum = 1 THEN pg_catalog.pg_get_viewdef(c.oid) END \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ({}) ORDER BY c.oid, a.attnum LIMIT 20000",
        cond.join(" OR ")
    );
    let rows = simple_query(io, &sql, QUERY_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let mut rels: Vec<RelInfo> = Vec::new();
    let mut defs: Vec<Option<String>> = Vec::new();
    for r in rows {
        let Some(oid) = num(&r, 0) else { continue };
        if rels.last().is_none_or(|l| l.oid != oid) {
            rels.push(RelInfo {
                oid,
                schema: text(&r, 1).unwrap_or_default(),
                name: text(&r, 2).unwrap_or_default(),
                relkind: byte(&r, 3),
                columns: Vec::new(),
                sensitive: HashMap::new(),
                // A temporary table lives in its own session: sluice cannot sample it.
                unknown: byte(&r, 4) == b't',
                fetched: Instant::now(),
            });
            defs.push(None);
        }
        let rel = rels.last_mut().expect("pushed");
        if let (Some(attnum), Some(name)) = (text(&r, 5).and_then(|a| a.parse().ok()), text(&r, 6))
        {
            rel.columns.push(ColInfo {
                attnum,
                name,
                type_oid: num(&r, 7).unwrap_or(0),
                type_name: text(&r, 8).unwrap_or_default(),
            });
        }
        if let Some(def) = text(&r, 9) {
            *defs.last_mut().expect("pushed") = Some(def);
        }
    }
    Ok((rels, defs))
}

pub(super) enum SampleError {
    Denied,
    Failed(String),
    Io(String),
}

/// Reads up to `rows` rows of the table's columns as text, in a read-only transaction with a
/// statement timeout, and judges each column.
pub(super) async fn sample_table(
    io: &mut BoxIo,
    engine: &MaskingEngine,
    rel: &RelInfo,
    cfg: &crate::inspect::masking::SamplingConfig,
) -> Result<Vec<(String, DetectorKind)>, SampleError> {
    let cols: Vec<&ColInfo> = rel
        .columns
        .iter()
        .filter(|c| !rel.sensitive.contains_key(&c.name))
        .take(MAX_SAMPLED_COLUMNS)
        .collect();
    if cols.is_empty() {
        return Ok(Vec::new());
    }
    let exprs: Vec<String> = cols
        .iter()
        .map(|c| {
            let id = quote_ident(&c.name);
            if c.type_oid == 17 {
                format!("left(encode({id}, 'escape'), {SAMPLE_VALUE_BYTES})")
            } else {
                format!("left(CAST({id} AS text), {SAMPLE_VALUE_BYTES})")
            }
        })
        .collect();
    let sql = format!(
        "BEGIN READ ONLY; SET LOCAL statement_timeout = {}; SELECT {} FROM {}.{} LIMIT {}; COMMIT",
        cfg.timeout_ms.max(1),
        exprs.join(", "),
        quote_ident(&rel.schema),
        quote_ident(&rel.name),
        cfg.rows
    );
    let budget = Duration::from_millis(cfg.timeout_ms.max(1)) + Duration::from_secs(1);
    let rows = match simple_query(io, &sql, budget).await {
        Ok(rows) => rows,
        Err(QueryError::Server { code, message }) if code == "42501" => {
            let _ = message;
            return Err(SampleError::Denied);
        }
        Err(QueryError::Server { code, message }) => {
            return Err(SampleError::Failed(format!("{code}: {message}")));
        }
        Err(e) => return Err(SampleError::Io(e.to_string())),
    };
    let share = cfg.min_share_percent;
    Ok(cols
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let values = rows
                .iter()
                .filter_map(|r| r.get(i).and_then(|v| v.as_deref()).map(str::as_bytes));
            judge_sample(engine, values, share).map(|k| (c.name.clone(), k))
        })
        .collect())
}

pub(super) fn join_numbers(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// A string literal (the catalog session runs with `standard_conforming_strings = on`).
pub(super) fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\0', "").replace('\'', "''"))
}

pub(super) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('\0', "").replace('"', "\"\""))
}

pub(super) type Row = Vec<Option<String>>;

pub(super) fn text(r: &Row, i: usize) -> Option<String> {
    r.get(i).cloned().flatten()
}

pub(super) fn num(r: &Row, i: usize) -> Option<u32> {
    text(r, i).and_then(|v| v.parse().ok())
}

pub(super) fn byte(r: &Row, i: usize) -> u8 {
    text(r, i)
        .and_then(|v| v.as_bytes().first().copied())
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub(super) enum QueryError {
    #[error("{code}: {message}")]
    Server { code: String, message: String },
    #[error("{0}")]
    Io(String),
}

/// Runs a simple query and returns the rows of every result set (text format), or the first
/// error once the server is ready again.
pub(super) async fn simple_query(
    io: &mut BoxIo,
    sql: &str,
    timeout: Duration,
) -> Result<Vec<Row>, QueryError> {
    let run = async {
        let mut buf = BytesMut::new();
        postgres_protocol::message::frontend::query(sql, &mut buf)
            .map_err(|e| QueryError::Io(e.to_string()))?;
        io.write_all(&buf)
            .await
            .map_err(|e| QueryError::Io(e.to_string()))?;
        io.flush()
            .await
            .map_err(|e| QueryError::Io(e.to_string()))?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let m = codec::read_message(io, 64 << 20, "upstream")
                .await
                .map_err(|e| QueryError::Io(e.to_string()))?
                .ok_or_else(|| QueryError::Io("the database closed the connection".into()))?;
            match m.tag {
                b'D' => {
                    let body = m.body();
                    let fields =
                        codec::data_row_fields(body).map_err(|e| QueryError::Io(e.to_string()))?;
                    rows.push(
                        fields
                            .into_iter()
                            .map(|f| f.map(|r| String::from_utf8_lossy(&body[r]).into_owned()))
                            .collect(),
                    );
                }
                b'E' if error.is_none() => {
                    let f = codec::notice_fields(m.body());
                    let get = |t: u8| {
                        f.iter()
                            .find(|(k, _)| *k == t)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    };
                    error = Some(QueryError::Server {
                        code: get(b'C'),
                        message: get(b'M'),
                    });
                }
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| QueryError::Io("the catalog query took too long".into()))?
}
