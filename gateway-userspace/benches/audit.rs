//! Durable audit appends, against a baseline measured in the same run: a plain SQLite insert
//! committed (fsynced) on its own, which is the floor for "one durable record per command".
//!
//! - `baseline`: INSERT into a plain table, WAL + synchronous=FULL, one commit each;
//! - `chain append`: the same with the hash chain (what a lone session pays per command);
//! - `gateway writer, 64 sessions`: 64 concurrent `AuditLog::durable` calls, group-committed
//!   by the writer thread (what a busy gateway pays per command);
//! - `verify`: the whole chain, per record.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::services::audit::{
    AuditLog,
    chain::{Chain, load_or_create_key, verify},
    settings::{AuditSettings, StoreSettings},
    sqlite::SqliteStore,
};

const BODY: &str = r#"{"n":17,"protocol":"simple","text":"UPDATE accounts SET balance = balance + 1 WHERE id = 3","sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","action":"allow","rule":"writes","reason":""}"#;

fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("sluice-audit-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn baseline_db(path: &Path) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(path).unwrap();
    db.pragma_update(None, "journal_mode", "WAL").unwrap();
    db.pragma_update(None, "synchronous", "FULL").unwrap();
    db.execute_batch("CREATE TABLE plain (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .unwrap();
    db
}

fn appends(c: &mut Criterion) {
    let dir = fresh_dir("appends");
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(1));

    let plain = baseline_db(&dir.join("plain.db"));
    group.bench_function("baseline: sqlite insert, one fsynced commit each", |b| {
        b.iter(|| {
            plain
                .execute("INSERT INTO plain (body) VALUES (?1)", [BODY])
                .unwrap()
        })
    });

    let key = load_or_create_key(&dir.join("audit.key")).unwrap();
    let db = dir.join("audit.db");
    let store = Box::new(SqliteStore::open(&db).unwrap());
    let mut chain = Chain::open(store, "bench", key).unwrap();
    group.bench_function("chain append, one durable record per commit", |b| {
        b.iter(|| {
            chain
                .append("2026-11-23T10:00:00.000Z", "command", Some("s1"), BODY)
                .unwrap()
        })
    });
    chain.checkpoint("2026-11-23T10:00:00.000Z").unwrap();
    let public = chain.verifying_key();
    drop(chain);

    let mut reader = SqliteStore::open_read_only(&db).unwrap();
    let records = verify(&mut reader, "bench", &public, None).unwrap().records;
    group.throughput(Throughput::Elements(records));
    group.bench_function("verify the whole chain (per record)", |b| {
        b.iter(|| verify(&mut reader, "bench", &public, None).unwrap())
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn gateway_writer(c: &mut Criterion) {
    const SESSIONS: u64 = 64;
    let dir = fresh_dir("writer");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut settings = AuditSettings::defaults(&dir);
    settings.store = StoreSettings::Sqlite(dir.join("audit.db"));
    let log = std::sync::Arc::new(
        rt.block_on(async { AuditLog::open(&settings, None) })
            .unwrap(),
    );
    let body: serde_json::Value = serde_json::from_str(BODY).unwrap();
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(SESSIONS));
    group.bench_function(
        "gateway writer, 64 sessions each awaiting a durable record",
        |b| {
            b.iter(|| {
                rt.block_on(async {
                    let waits: Vec<_> = (0..SESSIONS)
                        .map(|_| {
                            let log = log.clone();
                            let body = body.clone();
                            tokio::spawn(async move {
                                log.durable("command", Some("s"), &body).await.unwrap()
                            })
                        })
                        .collect();
                    for w in waits {
                        w.await.unwrap();
                    }
                })
            })
        },
    );
    group.finish();
    rt.block_on(log.close());
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, appends, gateway_writer);
criterion_main!(benches);
