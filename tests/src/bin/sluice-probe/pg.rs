//! `pg`: a tokio-postgres client (simple, extended and pipelined queries, cancel, many
//! sessions), printing rows and errors as JSON.

use std::time::Duration;

use serde_json::json;

use crate::print;

/// A tokio-postgres client: `pg CONNINFO simple|extended|pipeline|cancel SQL...`.
pub(crate) fn pg(args: &[String]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let conninfo = args.first().expect("conninfo").clone();
    let mode = args.get(1).expect("mode").clone();
    let sqls: Vec<String> = args[2..].to_vec();
    // `pg CONNINFO hold-many N SQL`: N sessions; prints `connected` once all are open, waits
    // for a line on stdin, then sends SQL on every one at once and waits for all answers.
    if mode == "hold-many" {
        let n: usize = sqls[0].parse().expect("N");
        let sql = sqls[1].clone();
        let out = rt.block_on(hold_many(conninfo, n, sql));
        print(out);
        return;
    }
    let out = rt.block_on(async move {
        let (client, conn) = match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
            Ok(c) => c,
            Err(e) => return pg_error(&e),
        };
        tokio::spawn(conn);
        let mut results = Vec::new();
        match mode.as_str() {
            "simple" => {
                for sql in &sqls {
                    results.push(match client.simple_query(sql).await {
                        Ok(msgs) => json!({"ok": true, "rows": msgs.iter().filter_map(|m| match m {
                            tokio_postgres::SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect::<Vec<_>>()),
                            _ => None }).collect::<Vec<_>>()}),
                        Err(e) => pg_error(&e),
                    });
                }
            }
            "extended" => {
                for sql in &sqls {
                    results.push(extended(&client, sql).await);
                }
            }
            // One statement with text parameters: `params SQL P1 P2 ...`.
            "params" => {
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = sqls[1..]
                    .iter()
                    .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                results.push(match client.query(&sqls[0], &params).await {
                    Ok(rows) => json!({"ok": true, "rows": rows.iter().map(|r| (0..r.len()).map(|i| cell(r, i)).collect::<Vec<_>>()).collect::<Vec<_>>()}),
                    Err(e) => pg_error(&e),
                });
            }
            // All statements in flight at once: tokio-postgres pipelines them on one connection.
            "pipeline" => {
                let futs = sqls.iter().map(|sql| extended(&client, sql));
                results = futures_util::future::join_all(futs).await;
            }
            "cancel" => {
                let token = client.cancel_token();
                let started = std::time::Instant::now();
                let query = client.simple_query(&sqls[0]);
                let cancel = async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    token.cancel_query(tokio_postgres::NoTls).await
                };
                let (q, c) = tokio::join!(query, cancel);
                results.push(json!({"query": q.err().map(|e| pg_error(&e)), "cancel_ok": c.is_ok(),
                                    "elapsed_ms": started.elapsed().as_millis() as u64}));
            }
            _ => return json!({"ok": false, "error": "unknown mode"}),
        }
        json!({"ok": true, "results": results})
    });
    print(out);
}

pub(crate) async fn hold_many(conninfo: String, n: usize, sql: String) -> serde_json::Value {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                clients.push(client);
            }
            Err(e) => return pg_error(&e),
        }
    }
    println!("connected");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let started = std::time::Instant::now();
    let results =
        futures_util::future::join_all(clients.iter().map(|c| c.simple_query(&sql))).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let first_error = results.iter().find_map(|r| r.as_ref().err().map(pg_error));
    json!({"ok": true, "sessions": n, "succeeded": ok, "first_error": first_error, "elapsed_ms": started.elapsed().as_millis() as u64})
}

pub(crate) async fn extended(client: &tokio_postgres::Client, sql: &str) -> serde_json::Value {
    match client.query(sql, &[]).await {
        Ok(rows) => {
            json!({"ok": true, "rows": rows.iter().map(|r| (0..r.len()).map(|i| cell(r, i)).collect::<Vec<_>>()).collect::<Vec<_>>()})
        }
        Err(e) => pg_error(&e),
    }
}

/// A cell as text, for the column types the tests use.
pub(crate) fn cell(row: &tokio_postgres::Row, i: usize) -> serde_json::Value {
    use tokio_postgres::types::Type;
    let t = row.columns()[i].type_().clone();
    if t == Type::INT4 {
        json!(row.get::<_, Option<i32>>(i))
    } else if t == Type::INT8 {
        json!(row.get::<_, Option<i64>>(i))
    } else if t == Type::BOOL {
        json!(row.get::<_, Option<bool>>(i))
    } else {
        json!(row.try_get::<_, Option<String>>(i).unwrap_or(None))
    }
}

pub(crate) fn pg_error(e: &tokio_postgres::Error) -> serde_json::Value {
    let db = e.as_db_error();
    json!({"ok": false, "code": db.map(|d| d.code().code().to_string()), "message": db.map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()),
           "detail": db.and_then(|d| d.detail().map(str::to_string))})
}
