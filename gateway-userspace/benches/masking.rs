//! Masking throughput: sluice's engine (Hyperscan and shape prefilters + exact confirmers)
//! against a straightforward `regex`-crate implementation of the same detectors, on the same
//! generated data in the same run, per detector set.
//!
//! `cargo bench -p gateway-userspace --bench masking -- --warm-up-time 1 --measurement-time 3`
//!
//! Benchmark ids are `DATASET/DETECTORS/ENGINE` (`cargo xtask bench` turns them into
//! `docs/benchmarks/masking.csv`). Throughput is per core: every iteration runs on one thread.

use std::{hint::black_box, sync::Arc};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use regex::bytes::Regex;
use sluice::inspect::masking::{
    ColumnContext, DetectorKind, MaskingConfig, MaskingEngine, Report, StreamMasker,
    validators as v,
};

/// xorshift64*: deterministic data without a rand dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const PII: &[&str] = &[
    "jane.doe@example.com",
    "4242 4242 4242 4242",
    "5555555555554444",
    "123-45-6789",
    "GB82WEST12345698765432",
    "+44 20 7946 0958",
    "(415) 555-0132",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
];
const WORDS: &[&str] = &[
    "shipped", "pending", "refund", "the", "customer", "asked", "about", "delivery", "invoice",
    "payment", "received", "thanks", "update", "account", "status", "retry", "timeout", "ok",
];
const NAMES: &[&str] = &[
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi",
];

fn uuid(r: &mut Rng) -> String {
    let (a, b) = (r.next(), r.next());
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        a & 0xffff,
        (a >> 16) & 0xfff,
        b & 0xfff,
        b >> 16
    )
}

/// Rows of a typical orders table: (column names, cells). About 1% of rows carry PII.
fn db_rows(target: usize) -> (Vec<&'static str>, Vec<Vec<Vec<u8>>>) {
    let cols = vec![
        "id",
        "uuid",
        "customer",
        "created_at",
        "amount",
        "status",
        "order_no",
        "note",
    ];
    let mut r = Rng(0x5eed);
    let mut rows = Vec::new();
    let mut size = 0;
    while size < target {
        let note = if r.below(100) == 0 {
            format!("contact {}", r.pick(PII))
        } else {
            format!("{} {} {}", r.pick(WORDS), r.pick(WORDS), r.below(1_000_000))
        };
        let row: Vec<Vec<u8>> = [
            format!("{}", 100_000 + r.below(900_000_000)),
            uuid(&mut r),
            r.pick(NAMES).to_string(),
            format!(
                "2024-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00",
                1 + r.below(12),
                1 + r.below(28),
                r.below(24),
                r.below(60),
                r.below(60),
                r.below(1_000_000)
            ),
            format!("{}.{:02}", r.below(100_000), r.below(100)),
            r.pick(&["paid", "shipped", "refunded"]).to_string(),
            format!("ORD-2024-{:06}", r.below(1_000_000)),
            note,
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect();
        size += row.iter().map(|c| c.len() + 4).sum::<usize>() + 2;
        rows.push(row);
    }
    (cols, rows)
}

/// A Postgres DataRow payload (count, then length-prefixed cells).
fn data_row(cells: &[Vec<u8>]) -> Vec<u8> {
    let mut p = (cells.len() as u16).to_be_bytes().to_vec();
    for c in cells {
        p.extend_from_slice(&(c.len() as i32).to_be_bytes());
        p.extend_from_slice(c);
    }
    p
}

fn dense(target: usize) -> Vec<u8> {
    let mut r = Rng(0xd15e);
    let mut s = String::new();
    while s.len() < target {
        s.push_str(r.pick(PII));
        s.push_str(if r.below(2) == 0 { ", " } else { "\n" });
    }
    s.into_bytes()
}

fn logs(target: usize) -> Vec<u8> {
    let mut r = Rng(0x1095);
    let mut s = String::new();
    while s.len() < target {
        let extra = match r.below(50) {
            0 => format!(" user={}", PII[0]),
            1 => format!(" token={}", r.pick(&PII[7..])),
            _ => String::new(),
        };
        s.push_str(&format!(
            "2024-01-15T10:{:02}:{:02}.{:03}Z INFO [req {}] GET /api/v1/orders/{}?page={} status=200 bytes={} dur={}.{}ms client=10.0.{}.{} v1.2.3{extra}\n",
            r.below(60), r.below(60), r.below(1000), uuid(&mut r), r.below(100_000), r.below(10),
            r.below(100_000), r.below(100), r.below(10), r.below(255), r.below(255)
        ));
    }
    s.into_bytes()
}

/// The same detectors written the obvious way: one regex each, then the same validators.
type Rule = (Regex, DetectorKind, fn(&[u8]) -> bool);

struct RegexMasker {
    rules: Vec<Rule>,
}

fn digits(m: &[u8]) -> Vec<u8> {
    m.iter().copied().filter(u8::is_ascii_digit).collect()
}

/// Detector sets: the defaults, and the defaults split by kind of data (plus IP, off by default).
const SETS: &[(&str, &[DetectorKind])] = &[
    ("all", &[]),
    (
        "pii",
        &[DetectorKind::Email, DetectorKind::Ssn, DetectorKind::Phone],
    ),
    ("pci", &[DetectorKind::Card, DetectorKind::Iban]),
    (
        "secrets",
        &[
            DetectorKind::AwsKey,
            DetectorKind::GithubToken,
            DetectorKind::SlackToken,
            DetectorKind::StripeKey,
            DetectorKind::AnthropicKey,
            DetectorKind::OpenaiKey,
            DetectorKind::PrivateKey,
            DetectorKind::Jwt,
        ],
    ),
    ("all_with_ip", &[]),
];

/// The masking config of a set: `all` is the default; others enable only their kinds.
fn set_config(set: &str, kinds: &[DetectorKind]) -> MaskingConfig {
    let mut detectors = serde_json::Map::new();
    for k in DetectorKind::ALL {
        let on = match set {
            "all" => continue,
            "all_with_ip" => true,
            _ => kinds.contains(&k),
        };
        detectors.insert(k.name().into(), serde_json::json!({ "enabled": on }));
    }
    serde_json::from_value(serde_json::json!({ "detectors": detectors })).unwrap()
}

impl RegexMasker {
    /// The regex implementation of the detectors `config` enables.
    fn for_config(config: &MaskingConfig) -> Self {
        let mut m = Self::new();
        m.rules.retain(|r| config.detector_enabled(r.1));
        m
    }

    fn new() -> Self {
        let any: fn(&[u8]) -> bool = |_| true;
        let r = |p: &str| Regex::new(p).unwrap();
        let rules: Vec<Rule> = vec![
            (
                r(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"),
                DetectorKind::Email,
                any,
            ),
            (r(r"\b\d(?:[ \-]?\d){12,18}\b"), DetectorKind::Card, |m| {
                v::is_card_number(&digits(m))
            }),
            (r(r"\b\d{3}-\d{2}-\d{4}\b"), DetectorKind::Ssn, |m| {
                v::is_ssn(&m[..3], &m[4..6], &m[7..])
            }),
            (
                r(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"),
                DetectorKind::Iban,
                |m| v::is_iban(&m.iter().copied().filter(|b| *b != b' ').collect::<Vec<_>>()),
            ),
            (
                r(
                    r"\+[1-9](?:[ \-.]?\(?\d+\)?){1,6}|\(?\b[2-9]\d{2}\)?[\-. ]?[2-9]\d{2}[\-.]\d{4}\b",
                ),
                DetectorKind::Phone,
                |m| (8..=15).contains(&digits(m).len()) || digits(m).len() == 10,
            ),
            (
                r(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
                DetectorKind::AwsKey,
                any,
            ),
            (
                r(r"\bgh[pousr]_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{22,}"),
                DetectorKind::GithubToken,
                any,
            ),
            (
                r(r"\bxox[abprs]-[0-9A-Za-z\-]{10,}|\bxapp-\d-[0-9A-Za-z\-]{10,}"),
                DetectorKind::SlackToken,
                any,
            ),
            (
                r(r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{10,}"),
                DetectorKind::StripeKey,
                any,
            ),
            (
                r(r"\bsk-ant-[A-Za-z0-9_\-]{10,}"),
                DetectorKind::AnthropicKey,
                any,
            ),
            (r(r"\bsk-[A-Za-z0-9_\-]{20,}"), DetectorKind::OpenaiKey, any),
            (
                r(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"),
                DetectorKind::Ip,
                v::is_ipv4,
            ),
            (
                r(r"(?i)\b(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}\b"),
                DetectorKind::Ip,
                v::is_ipv6,
            ),
            (
                r(
                    r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.{0,8192}?-----END [A-Z0-9 ]*PRIVATE KEY-----",
                ),
                DetectorKind::PrivateKey,
                any,
            ),
            (
                r(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]*)?"),
                DetectorKind::Jwt,
                |m| v::is_jwt_header(m.split(|&b| b == b'.').next().unwrap_or(m)),
            ),
        ];
        Self { rules }
    }

    fn mask(&self, buf: &[u8]) -> Option<Vec<u8>> {
        let mut spans: Vec<(usize, usize, DetectorKind)> = Vec::new();
        for (re, kind, ok) in &self.rules {
            for m in re.find_iter(buf) {
                if ok(m.as_bytes()) {
                    spans.push((m.start(), m.end(), *kind));
                }
            }
        }
        if spans.is_empty() {
            return None;
        }
        spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
        let mut out = Vec::with_capacity(buf.len());
        let mut at = 0;
        for (s, e, kind) in spans {
            if s < at {
                continue;
            }
            out.extend_from_slice(&buf[at..s]);
            out.push(b'[');
            out.extend_from_slice(kind.label().as_bytes());
            out.push(b']');
            at = e;
        }
        out.extend_from_slice(&buf[at..]);
        Some(out)
    }
}

fn bench(c: &mut Criterion) {
    const SIZE: usize = 4 << 20;

    let (cols, rows) = db_rows(SIZE);
    let payloads: Vec<Vec<u8>> = rows.iter().map(|r| data_row(r)).collect();
    let mut db_text = Vec::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            db_text.extend_from_slice(cell);
            db_text.push(if i + 1 == row.len() { b'\n' } else { b'\t' });
        }
    }
    let datasets = [
        ("db_rows", db_text),
        ("dense_pii", dense(SIZE)),
        ("logs", logs(SIZE)),
    ];

    if std::env::var_os("MASK_PROFILE").is_some() {
        profile_triggers(&datasets);
    }

    let mut g = c.benchmark_group("masking");
    g.sample_size(20);
    for (set, kinds) in SETS {
        let config = set_config(set, kinds);
        let engine = Arc::new(MaskingEngine::new(config.clone()).unwrap());
        let baseline = RegexMasker::for_config(&config);
        for (name, data) in &datasets {
            let mut r = Report::default();
            engine.mask_with_report(data, &mut r).unwrap();
            let regex_out = baseline.mask(data).unwrap_or_default();
            eprintln!(
                "{name}/{set}: {} bytes, sluice findings {} {:?}; regex output {} bytes",
                data.len(),
                r.total(),
                r.findings,
                regex_out.len()
            );
            g.throughput(Throughput::Bytes(data.len() as u64));
            g.bench_function(format!("{name}/{set}/sluice"), |b| {
                b.iter(|| black_box(engine.mask(black_box(data)).unwrap()))
            });
            g.bench_function(format!("{name}/{set}/regex"), |b| {
                b.iter(|| black_box(baseline.mask(black_box(data))))
            });
            if *set != "all" {
                continue;
            }
            g.bench_function(format!("{name}/{set}/sluice_stream_64k"), |b| {
                b.iter(|| {
                    let mut s = StreamMasker::new(engine.clone());
                    let mut out = Vec::with_capacity(data.len());
                    for chunk in data.chunks(64 * 1024) {
                        s.push(chunk, &mut out).unwrap();
                    }
                    black_box(s.finish(&mut out).unwrap());
                    out
                })
            });
        }
    }

    // The Postgres path: one prefilter pass per DataRow payload; per-cell work only on hits.
    let engine = MaskingEngine::with_defaults().unwrap();
    let baseline = RegexMasker::new();
    let payload_bytes: usize = payloads.iter().map(Vec::len).sum();
    let plans: Vec<_> = cols
        .iter()
        .map(|n| {
            engine.plan_column(&ColumnContext {
                name: n,
                ..Default::default()
            })
        })
        .collect();
    g.throughput(Throughput::Bytes(payload_bytes as u64));
    g.bench_function("db_rows/all/sluice_per_row", |b| {
        b.iter(|| {
            let mut masked = 0usize;
            let mut report = Report::default();
            for (payload, row) in payloads.iter().zip(&rows) {
                if !engine.could_contain(payload).unwrap() {
                    continue;
                }
                for (plan, cell) in plans.iter().zip(row) {
                    if engine
                        .mask_cell_planned(plan, cell, &mut report)
                        .unwrap()
                        .is_some()
                    {
                        masked += 1;
                    }
                }
            }
            black_box(masked)
        })
    });
    g.bench_function("db_rows/all/regex_per_cell", |b| {
        b.iter(|| {
            let mut masked = 0usize;
            for row in &rows {
                for cell in row {
                    if baseline.mask(cell).is_some() {
                        masked += 1;
                    }
                }
            }
            black_box(masked)
        })
    });
    g.finish();
}

/// Prefilter throughput of each trigger alone (set MASK_PROFILE=1), to find expensive ones.
fn profile_triggers(datasets: &[(&str, Vec<u8>)]) {
    use hyperscan::prelude::*;
    use sluice::inspect::masking::detectors::Trigger;
    let sets: Vec<(String, Vec<String>)> = match std::env::var("MASK_EXPR") {
        Ok(v) => v
            .split(";;")
            .map(|e| (e.to_string(), e.split(";").map(String::from).collect()))
            .collect(),
        Err(_) => Trigger::ALL
            .iter()
            .map(|t| (format!("{t:?}"), t.expressions()))
            .collect(),
    };
    for (name, data) in datasets {
        for (t, exprs) in &sets {
            let pats: Vec<Pattern> = exprs
                .iter()
                .map(|e| Pattern::new(e.clone()).unwrap())
                .collect();
            let db: BlockDatabase = Patterns(pats).build().unwrap();
            let s = db.alloc_scratch().unwrap();
            let mut hits = 0u64;
            let t0 = std::time::Instant::now();
            for _ in 0..5 {
                db.scan(data, &s, |_, _, _, _| {
                    hits += 1;
                    Matching::Continue
                })
                .unwrap();
            }
            let gbs = 5.0 * data.len() as f64 / t0.elapsed().as_secs_f64() / 1e9;
            eprintln!("{name:10} {t}: {gbs:.2} GB/s, {} hits", hits / 5);
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
