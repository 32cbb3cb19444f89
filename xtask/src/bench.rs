//! `cargo xtask bench [--out DIR] [WHAT...]`: runs the benchmarks, turns criterion's JSON into
//! CSV, describes the machine in MACHINE.md and has `bench-plot` draw PNGs from the CSVs.
//!
//! The scripts' contract: `scripts/bench-WHAT.sh` writes the fixed-name CSVs of
//! [`Bench::csvs`] into `$OUT`, with the release binaries taken from `$BIN`.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, bail};
use clap::ValueEnum;
use serde_json::Value;

use crate::{cargo, root, run, setup};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Bench {
    Masking,
    Guardrails,
    Postgres,
    Redirect,
    Containment,
    Memory,
    Ssh,
}

impl Bench {
    fn name(self) -> &'static str {
        match self {
            Bench::Masking => "masking",
            Bench::Guardrails => "guardrails",
            Bench::Postgres => "postgres",
            Bench::Redirect => "redirect",
            Bench::Containment => "containment",
            Bench::Memory => "memory",
            Bench::Ssh => "ssh",
        }
    }

    /// The CSVs one run (re)writes in the results directory.
    fn csvs(self) -> &'static [&'static str] {
        match self {
            Bench::Masking => &["masking.csv"],
            Bench::Guardrails => &["guardrails.csv"],
            Bench::Postgres => &["postgres.csv", "postgres-bulk.csv"],
            Bench::Redirect => &["redirect.csv"],
            Bench::Containment => &["containment.csv"],
            Bench::Memory => &["memory.csv"],
            Bench::Ssh => &["ssh.csv"],
        }
    }
}

impl fmt::Display for Bench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub fn bench(out: &Path, what: &[Bench]) -> anyhow::Result<()> {
    let benches: Vec<Bench> = Bench::value_variants()
        .iter()
        .copied()
        .filter(|b| what.is_empty() || what.contains(b))
        .collect();
    // Before anything is written: the commit of the code being measured, as it was.
    let commit = commit();
    let started = fact("date -u '+%Y-%m-%d %H:%M UTC'");
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    setup()?;
    run(cargo().args(["build", "--release", "--workspace", "--bins"]))?;
    let target = target_dir();
    let criterion_home = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("criterion"));

    let mut ran = Vec::new();
    for &b in &benches {
        // File times come from a coarse kernel clock that can lag SystemTime::now() by a tick.
        let since = SystemTime::now() - Duration::from_secs(1);
        let timer = Instant::now();
        let result = match b {
            Bench::Masking | Bench::Guardrails => run(cargo()
                .env("CRITERION_HOME", &criterion_home)
                .args(["bench", "-p", "gateway-userspace", "--bench", b.name()])
                .args(["--", "--warm-up-time", "1", "--measurement-time", "3"]))
            .and_then(|()| criterion_csv(b, &criterion_home, since, out)),
            _ => {
                let script = format!("scripts/bench-{b}.sh");
                if !root().join(&script).exists() {
                    bail!("{script} does not exist: cannot run bench {b}");
                }
                run(Command::new("bash")
                    .arg(&script)
                    .env("OUT", out)
                    .env("BIN", target.join("release"))
                    // Already built above (bench-ssh.sh would rebuild with other features).
                    .env("BUILD", "0"))
            }
        };
        result.with_context(|| format!("bench {b} failed: stopped before plotting"))?;
        for csv in b.csvs() {
            let path = out.join(csv);
            if !written_since(&path, since) {
                bail!("bench {b} finished but did not write {}", path.display());
            }
        }
        ran.push((b, timer.elapsed()));
    }

    let machine = machine_md(out, &ran, &commit, &started);
    fs::write(out.join("MACHINE.md"), machine)?;
    plot(out)?;
    eprintln!("[xtask] results in {}", out.display());
    Ok(())
}

/// A separate binary, so that plotters is only built when plotting (not for `cargo xtask test`).
fn plot(out: &Path) -> anyhow::Result<()> {
    run(cargo()
        .args([
            "run",
            "-p",
            "xtask",
            "--features",
            "plot",
            "--bin",
            "bench-plot",
            "--",
        ])
        .arg(out))
}

/// Where cargo puts build output: CARGO_TARGET_DIR (relative to the workspace root, where
/// our cargo commands run), else target/.
fn target_dir() -> PathBuf {
    root().join(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into()))
}

fn written_since(path: &Path, since: SystemTime) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since)
}

/// One criterion result: `id` is the part of the full id after the group.
struct Measurement {
    group: String,
    id: String,
    bytes: Option<u64>,
    median_ns: f64,
}

/// The results of `group` written since `since`: criterion keeps the directories of renamed
/// or removed benches, and those must not be reported as this run's.
fn criterion_results(
    home: &Path,
    group: &str,
    since: SystemTime,
) -> anyhow::Result<Vec<Measurement>> {
    let mut files = Vec::new();
    find_new_benchmark_files(&home.join(group), &mut files)?;
    let mut results = Vec::new();
    for file in files {
        if !written_since(&file, since) {
            continue;
        }
        let id = read_json(&file)?;
        let estimates = read_json(&file.with_file_name("estimates.json"))?;
        let (Some(group_id), Some(full_id), Some(median_ns)) = (
            id["group_id"].as_str(),
            id["full_id"].as_str(),
            estimates["median"]["point_estimate"].as_f64(),
        ) else {
            bail!("{}: not criterion's benchmark.json layout", file.display());
        };
        if group_id != group {
            continue;
        }
        let throughput = &id["throughput"];
        results.push(Measurement {
            group: group.to_string(),
            id: full_id
                .strip_prefix(&format!("{group}/"))
                .unwrap_or(full_id)
                .to_string(),
            bytes: throughput["Bytes"]
                .as_u64()
                .or(throughput["BytesDecimal"].as_u64()),
            median_ns,
        });
    }
    Ok(results)
}

/// Criterion's layout: `<home>/<group>/<function>[/<value>]/new/benchmark.json`; `base/` and
/// `change/` hold the previous run and comparisons.
fn find_new_benchmark_files(dir: &Path, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let file = path.join("benchmark.json");
            if file.is_file() {
                found.push(file);
            }
        } else {
            find_new_benchmark_files(&path, found)?;
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn criterion_csv(b: Bench, home: &Path, since: SystemTime, out: &Path) -> anyhow::Result<()> {
    let groups: &[&str] = match b {
        Bench::Masking => &["masking"],
        _ => &["guardrails", "shell_guardrails"],
    };
    let mut results = Vec::new();
    for group in groups {
        results.extend(criterion_results(home, group, since)?);
    }
    if results.is_empty() {
        bail!(
            "no results of this run for {groups:?} under {}",
            home.display()
        );
    }
    let mut rows = Vec::new();
    let header: &[&str] = if b == Bench::Masking {
        for m in &results {
            // DATASET/ENGINE is the older form of DATASET/DETECTORS/ENGINE, with every detector.
            let (dataset, detectors, engine) = match m.id.split('/').collect::<Vec<_>>()[..] {
                [dataset, engine] => (dataset, "all", engine),
                [dataset, detectors, engine] => (dataset, detectors, engine),
                _ => bail!("masking/{}: expected DATASET/DETECTORS/ENGINE", m.id),
            };
            let bytes = m
                .bytes
                .with_context(|| format!("masking/{}: no Throughput::Bytes", m.id))?;
            rows.push(vec![
                dataset.to_string(),
                detectors.to_string(),
                engine.to_string(),
                bytes.to_string(),
                format!("{:.1}", m.median_ns),
                // Bytes per nanosecond are GB/s.
                format!("{:.4}", bytes as f64 / m.median_ns),
            ]);
        }
        &[
            "dataset",
            "detectors",
            "engine",
            "bytes",
            "ns_per_iter",
            "gb_per_s",
        ]
    } else {
        for m in &results {
            rows.push(vec![
                m.group.clone(),
                m.id.clone(),
                format!("{:.1}", m.median_ns),
            ]);
        }
        &["group", "bench", "ns_per_iter"]
    };
    // Directory order is arbitrary: sorted, reruns give comparable files.
    rows.sort();
    write_csv(&out.join(b.csvs()[0]), header, &rows)
}

fn write_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut text = header.join(",") + "\n";
    for row in rows {
        let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        text += &(fields.join(",") + "\n");
    }
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// A shell command's output (stdout, trimmed), or None if it failed.
fn output(command: &str) -> Option<String> {
    let out = Command::new("bash")
        .args(["-c", command])
        .current_dir(root())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    out.status.success().then_some(text)
}

/// The first line of a command's output: a missing tool is "unknown", not a failed bench.
fn fact(command: &str) -> String {
    output(command)
        .and_then(|text| text.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn commit() -> String {
    let state = match output("git status --porcelain --untracked-files=no").as_deref() {
        Some("") => "",
        Some(_) => " with uncommitted changes",
        None => " (working tree state unknown)",
    };
    format!("{}{state}", fact("git rev-parse --short HEAD"))
}

const MACHINE_FACTS: &[(&str, &str)] = &[
    ("CPU", "lscpu | sed -n 's/^Model name: *//p'"),
    ("CPUs", "nproc --all"),
    (
        "Hypervisor",
        "lscpu | sed -n 's/^Hypervisor vendor: *//p' | grep . || echo none",
    ),
    (
        "Memory",
        "awk '/^MemTotal:/ { printf \"%.1f GiB\", $2 / 1048576 }' /proc/meminfo",
    ),
    ("Kernel", "uname -r"),
    ("Distribution", ". /etc/os-release && echo \"$PRETTY_NAME\""),
    ("rustc", "rustc --version"),
    // The server the scripts start (lib-pg.sh picks its version).
    (
        "PostgreSQL",
        ". scripts/lib-pg.sh && \"$PG_BIN/postgres\" --version",
    ),
    ("pgbouncer", "pgbouncer --version"),
    ("OpenSSH", "ssh -V 2>&1"),
    (
        "Hyperscan",
        "dpkg-query -W -f '${Package} ${Version}' libhyperscan5",
    ),
];

fn machine_md(out: &Path, ran: &[(Bench, Duration)], commit: &str, started: &str) -> String {
    let command: Vec<String> = std::env::args().skip(1).collect();
    let mut md = format!(
        "# Benchmark machine\n\n`cargo xtask {}`, started {started}.\n\n",
        command.join(" ")
    );
    for (name, command) in MACHINE_FACTS {
        md += &format!("- {name}: {}\n", fact(command));
    }
    md += &format!("- Commit: {commit}\n\n| bench | duration | results |\n|---|---|---|\n");
    let mut written = vec!["MACHINE.md"];
    for (b, took) in ran {
        md += &format!(
            "| {b} | {} | {} |\n",
            human_duration(*took),
            b.csvs().join(", ")
        );
        written.extend(b.csvs());
    }
    let mut older: Vec<String> = fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".csv") && !written.contains(&name.as_str()))
        .collect();
    older.sort();
    if !older.is_empty() {
        let dated: Vec<String> = older
            .iter()
            .map(|name| {
                let age = fs::metadata(out.join(name))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok());
                match age {
                    Some(age) => format!("{name} ({} old)", human_duration(age)),
                    None => name.clone(),
                }
            })
            .collect();
        md += &format!("\nFrom earlier runs, not this one: {}.\n", dated.join(", "));
    }
    md
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        3600..172_800 => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
        _ => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_result(home: &Path, dir: &str, full_id: &str, bytes: u64, median_ns: f64) -> PathBuf {
        let new = home.join(dir).join("new");
        fs::create_dir_all(&new).unwrap();
        let (group, function) = full_id.split_once('/').unwrap();
        let id = serde_json::json!({
            "group_id": group, "function_id": function, "value_str": null,
            "throughput": { "Bytes": bytes }, "full_id": full_id,
            "directory_name": dir, "title": full_id,
        });
        let estimates = serde_json::json!({
            "mean": { "point_estimate": median_ns * 1.1 },
            "median": { "point_estimate": median_ns },
        });
        fs::write(new.join("benchmark.json"), id.to_string()).unwrap();
        fs::write(new.join("estimates.json"), estimates.to_string()).unwrap();
        new.join("benchmark.json")
    }

    #[test]
    fn masking_csv_from_criterion_skips_stale_results() {
        let home = std::env::temp_dir().join(format!("xtask-criterion-{}", std::process::id()));
        let _ = fs::remove_dir_all(&home);
        let since = SystemTime::now() - Duration::from_secs(60);
        fake_result(
            &home,
            "masking/db_rows_sluice",
            "masking/db_rows/sluice",
            3_000_000,
            1e7,
        );
        let three = "masking/logs/secrets/regex";
        fake_result(&home, "masking/logs_secrets_regex", three, 2_000_000, 4e7);
        let stale = fake_result(&home, "masking/renamed", "masking/renamed/sluice", 1, 1.0);
        let old = SystemTime::now() - Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(stale)
            .unwrap()
            .set_modified(old)
            .unwrap();

        criterion_csv(Bench::Masking, &home, since, &home).unwrap();
        let csv = fs::read_to_string(home.join("masking.csv")).unwrap();
        fs::remove_dir_all(&home).unwrap();
        assert_eq!(
            csv,
            "dataset,detectors,engine,bytes,ns_per_iter,gb_per_s\n\
             db_rows,all,sluice,3000000,10000000.0,0.3000\n\
             logs,secrets,regex,2000000,40000000.0,0.0500\n"
        );
    }
}
