//! Durable audit appends: one committed (fsynced) record per command, as the gateway writes
//! them, and the verification of a chain.

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::services::audit::chain::{Chain, load_or_create_key, verify};

fn appends(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("sluice-audit-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = load_or_create_key(&dir.join("audit.key")).unwrap();
    let db = dir.join("audit.db");
    let mut chain = Chain::open(&db, "bench", key).unwrap();
    let body = r#"{"sql":"UPDATE accounts SET balance = balance + 1 WHERE id = 3","verdict":"allow","rule":"writes","rows":1,"elapsed_us":412}"#;
    c.bench_function("audit append (durable, one per commit)", |b| {
        b.iter(|| {
            chain
                .append("2026-11-23T10:00:00Z", "command", Some("s1"), body)
                .unwrap()
        })
    });
    chain.checkpoint("2026-11-23T10:00:00Z").unwrap();
    let public = chain.verifying_key();
    c.bench_function("audit verify (whole chain)", |b| {
        b.iter(|| verify(&db, "bench", &public).unwrap())
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, appends);
criterion_main!(benches);
