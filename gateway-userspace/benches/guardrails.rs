//! Cost of the SQL guardrails per statement: a cold parse (what every new statement text pays)
//! and a cache hit (what a repeated text pays through `SqlAnalyzer`), either of the exact text or
//! of its shape (the same statement with new literals, as the simple query protocol sends it).
//! Also the shell guardrails per command line (always a cold parse: no cache).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::inspect::guardrails::{SqlAnalyzer, analyze, shell::analyze_shell};

/// About 150 bytes, the size the dependency notes measured.
const SELECT: &str = "SELECT c.id, c.name, c.email, o.total FROM customers c \
                      JOIN orders o ON o.customer_id = c.id \
                      WHERE c.created_at > now() - interval '30 days' AND o.total > 100 LIMIT 50";
const UPDATE: &str = "UPDATE orders SET status = 'shipped', shipped_at = now() \
                      WHERE id = 42 AND status = 'paid' RETURNING id, status";
const DANGEROUS: &str = "WITH d AS (DELETE FROM sessions RETURNING *) \
                         SELECT pg_read_file('/etc/passwd'), count(*) FROM d WHERE 1 = 1";
const DO_BLOCK: &str = "SELECT 1; DO $$ BEGIN DELETE FROM t; END $$";

/// The statements here are PostgreSQL.
const PG: sluice::inspect::Dialect = sluice::inspect::Dialect::Postgres;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("guardrails");
    for (name, sql) in [
        ("select", SELECT),
        ("update", UPDATE),
        ("dangerous", DANGEROUS),
        ("do_fallback", DO_BLOCK),
    ] {
        g.throughput(Throughput::Bytes(sql.len() as u64));
        g.bench_function(format!("cold/{name}"), |b| {
            b.iter(|| analyze(black_box(sql), PG))
        });
        let an = SqlAnalyzer::new(10_000);
        an.analyze(sql, PG);
        g.bench_function(format!("cached/{name}"), |b| {
            b.iter(|| an.analyze(black_box(sql), PG))
        });
        // Another literal each time: `42` becomes 10..99 in turn (same length, so the
        // throughput figure holds). Text building is included: about 50 ns.
        if sql.contains("42") {
            let mut n = 10u32;
            g.bench_function(format!("new_literals/{name}"), |b| {
                b.iter(|| {
                    n = 10 + (n - 9) % 90;
                    an.analyze(black_box(&sql.replace("42", &n.to_string())), PG)
                })
            });
        }
    }
    // Over 8 KiB the analysis runs on its own big-stack thread: thread start-up included.
    let big = format!(
        "SELECT * FROM t WHERE {}",
        (0..1500)
            .map(|i| format!("id = {i}"))
            .collect::<Vec<_>>()
            .join(" OR ")
    );
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("cold/or_chain_16k", |b| {
        b.iter(|| analyze(black_box(&big), PG))
    });
    g.finish();

    let mut g = c.benchmark_group("shell_guardrails");
    for (name, line) in [
        ("simple", "ls -la /var/log | grep -i error | tail -n 50"),
        (
            "wrapped",
            "sudo -u app env FOO=1 timeout 30 nice -n 5 rm -rf /tmp/build",
        ),
        (
            "nested",
            "bash -c \"find . -name '*.o' -exec rm {} + && echo $(date) >> /tmp/log\"",
        ),
        (
            "psql",
            "psql -h db -U app orders -c \"UPDATE orders SET status = 'x' WHERE id = 1\"",
        ),
    ] {
        g.throughput(Throughput::Bytes(line.len() as u64));
        g.bench_function(format!("cold/{name}"), |b| {
            b.iter(|| analyze_shell(black_box(line)))
        });
    }
    // Over 256 bytes the analysis runs on its own big-stack thread: thread start-up included.
    let long = format!("{} && echo done", "ls -la /tmp/x | wc -l; ".repeat(20));
    g.throughput(Throughput::Bytes(long.len() as u64));
    g.bench_function("cold/long_line", |b| {
        b.iter(|| analyze_shell(black_box(&long)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
