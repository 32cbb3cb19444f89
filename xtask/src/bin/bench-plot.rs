//! PNG plots of `cargo xtask bench` results: reads the CSVs in DIR and writes a PNG next to
//! each one it knows; a missing CSV skips its plot.
//!
//! `cargo run -p xtask --features plot --bin bench-plot -- DIR`
//!
//! One file over ~700 lines on purpose: one plotting function per CSV, each read on its own.

use std::{
    collections::HashMap,
    fs, iter,
    path::{Path, PathBuf},
};

use anyhow::{Context, anyhow, bail};
use plotters::{
    coord::Shift,
    prelude::*,
    style::{
        register_font,
        text_anchor::{HPos, Pos, VPos},
    },
};

const SIZE: (u32, u32) = (1200, 800);
const FONT: &str = "sans-serif";
const FONT_DIR: &str = "/usr/share/fonts/truetype/dejavu";
/// Tableau 10: colours that stay distinct side by side.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Plot = fn(&Table, &Path) -> anyhow::Result<()>;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: bench-plot DIR")?;
    register_fonts()?;
    let plots: [(&str, &str, Plot); 6] = [
        ("postgres.csv", "postgres-tps.png", postgres_tps),
        ("postgres-bulk.csv", "postgres-bulk.png", postgres_bulk),
        ("masking.csv", "masking.png", masking),
        ("redirect.csv", "redirect.png", redirect),
        ("memory.csv", "memory.png", memory),
        ("ssh.csv", "ssh.png", ssh),
    ];
    for (csv, png, plot) in plots {
        let csv = dir.join(csv);
        let png = dir.join(png);
        if !csv.exists() {
            eprintln!(
                "[bench-plot] no {}: {} skipped",
                csv.display(),
                png.display()
            );
            continue;
        }
        let table = Table::read(&csv)?;
        if table.rows.is_empty() {
            eprintln!(
                "[bench-plot] {} has no rows: {} skipped",
                csv.display(),
                png.display()
            );
            continue;
        }
        plot(&table, &png).with_context(|| format!("plotting {}", png.display()))?;
        eprintln!("[bench-plot] wrote {}", png.display());
    }
    Ok(())
}

/// plotters' ab_glyph text needs the font bytes handed to it (no fontconfig lookup).
fn register_fonts() -> anyhow::Result<()> {
    for (style, file) in [
        (FontStyle::Normal, "DejaVuSans.ttf"),
        (FontStyle::Bold, "DejaVuSans-Bold.ttf"),
    ] {
        let path = Path::new(FONT_DIR).join(file);
        let bytes = fs::read(&path)
            .with_context(|| format!("reading {} (Debian: fonts-dejavu-core)", path.display()))?;
        // plotters keeps a 'static reference for the life of the process.
        register_font(FONT, style, Box::leak(bytes.into_boxed_slice()))
            .map_err(|_| anyhow!("{}: not a usable font", path.display()))?;
    }
    Ok(())
}

struct Table {
    rows: Vec<Row>,
}

struct Row(HashMap<String, String>);

impl Table {
    fn read(path: &Path) -> anyhow::Result<Table> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut lines = text.lines().filter(|line| !line.trim().is_empty());
        let header = split_csv(lines.next().unwrap_or_default());
        let mut rows = Vec::new();
        for line in lines {
            let fields = split_csv(line);
            if fields.len() != header.len() {
                bail!(
                    "{}: {} fields, not {}: {line}",
                    path.display(),
                    fields.len(),
                    header.len()
                );
            }
            rows.push(Row(header.iter().cloned().zip(fields).collect()));
        }
        Ok(Table { rows })
    }

    fn texts(&self, column: &str) -> anyhow::Result<Vec<&str>> {
        self.rows.iter().map(|row| row.text(column)).collect()
    }
}

impl Row {
    fn text(&self, column: &str) -> anyhow::Result<&str> {
        self.0
            .get(column)
            .map(String::as_str)
            .with_context(|| format!("no column `{column}`"))
    }

    /// An empty field (a failed measurement) is None.
    fn number(&self, column: &str) -> anyhow::Result<Option<f64>> {
        match self.text(column)? {
            "" => Ok(None),
            text => text
                .parse()
                .map(Some)
                .with_context(|| format!("`{column}` is not a number: {text:?}")),
        }
    }
}

/// One CSV line; fields may be quoted, with `""` for a quote.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("never empty");
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => field.push(c),
        }
    }
    fields
}

/// Distinct values: the known ones first, in the order given, then the rest as they appear.
fn ordered<'a>(values: impl IntoIterator<Item = &'a str>, known: &[&str]) -> Vec<String> {
    let mut seen: Vec<&str> = Vec::new();
    for value in values {
        if !seen.contains(&value) {
            seen.push(value);
        }
    }
    let rank = |v: &&str| known.iter().position(|k| k == v).unwrap_or(known.len());
    // Stable: unknown values keep their order of appearance.
    seen.sort_by_key(rank);
    seen.into_iter().map(str::to_string).collect()
}

/// A known name keeps its colour whichever others are present, across reruns.
fn colors(names: &[String], known: &[&str]) -> Vec<RGBColor> {
    let mut unknown = known.len();
    names
        .iter()
        .map(|name| {
            let slot = known.iter().position(|k| k == name).unwrap_or_else(|| {
                unknown += 1;
                unknown - 1
            });
            PALETTE[slot % PALETTE.len()]
        })
        .collect()
}

/// Values aligned with a panel's categories; None is no bar or point.
struct Series {
    name: String,
    color: RGBColor,
    values: Vec<Option<f64>>,
}

/// A value label, about 3 significant digits: 0.31, 9.80, 275, 6.1k, 30k, 1.2M.
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", one_decimal(v / 1e6))
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{}k", one_decimal(v / 1e3))
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// An axis tick: the same number of decimals along one axis, from its top value.
fn tick(v: f64, top: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else if top >= 1e6 {
        format!("{}M", one_decimal(v / 1e6))
    } else if top >= 1e3 {
        format!("{}k", one_decimal(v / 1e3))
    } else if top >= 10.0 {
        format!("{v:.0}")
    } else if top >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn one_decimal(v: f64) -> String {
    let text = format!("{v:.1}");
    text.strip_suffix(".0").unwrap_or(&text).to_string()
}

fn font(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font())
}

fn bold(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size, FontStyle::Bold).into_font())
}

/// A white image with a title and one legend for all its panels; returns the image and the
/// area below the legend.
fn figure<'a>(
    path: &'a Path,
    title: &str,
    legend: &[(String, RGBColor)],
) -> anyhow::Result<(Area<'a>, Area<'a>)> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(80);
    let center = SIZE.0 as i32 / 2;
    head.draw(&Text::new(
        title.to_string(),
        (center, 22),
        bold(26).pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    let label = font(18).pos(Pos::new(HPos::Left, VPos::Center));
    let (swatch, gap) = (18, 34);
    let widths: Vec<i32> = legend
        .iter()
        .map(|(name, _)| head.estimate_text_size(name, &label).map(|(w, _)| w as i32))
        .collect::<Result<_, _>>()?;
    let total: i32 = widths.iter().map(|w| swatch + 8 + w + gap).sum::<i32>() - gap;
    let (mut x, y) = (center - total / 2, 60);
    for ((name, color), width) in legend.iter().zip(widths) {
        head.draw(&Rectangle::new(
            [(x, y - swatch / 2), (x + swatch, y + swatch / 2)],
            color.filled(),
        ))?;
        head.draw(&Text::new(name.clone(), (x + swatch + 8, y), label.clone()))?;
        x += swatch + 8 + width + gap;
    }
    Ok((root, body))
}

fn headroom(series: &[Series]) -> f64 {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0, |a: f64, &b| a.max(b));
    // Room above the tallest bar or point for its value label.
    if max > 0.0 { max * 1.15 } else { 1.0 }
}

/// Breaks a label at `-`, `_`, ` ` or `/` into lines no wider than `width` pixels.
fn wrap(area: &Area, text: &str, style: &TextStyle, width: u32) -> Vec<String> {
    let fits = |s: &str| {
        area.estimate_text_size(s, style)
            .is_ok_and(|(w, _)| w <= width)
    };
    let mut lines = Vec::new();
    let mut line = String::new();
    for piece in text.split_inclusive(['-', '_', ' ', '/']) {
        if !line.is_empty() && !fits(&format!("{line}{piece}")) {
            lines.push(line.trim_end().to_string());
            line.clear();
        }
        line.push_str(piece);
    }
    lines.push(line.trim_end().to_string());
    lines
}

/// Category names under the x axis (plotters' own labels sit on ticks, not categories);
/// `groups` adds a second, bold row naming runs of consecutive categories.
fn category_labels(
    area: &Area,
    to_pixel: impl Fn(f64) -> (i32, i32),
    labels: &[String],
    groups: &[(String, usize)],
) -> anyhow::Result<()> {
    let (base_x, base_y) = area.get_base_pixel();
    let style = font(15).pos(Pos::new(HPos::Center, VPos::Top));
    let slot = (to_pixel(1.0).0 - to_pixel(0.0).0).max(1) as u32;
    let mut most_lines = 0;
    for (i, label) in labels.iter().enumerate() {
        let (x, y) = to_pixel(i as f64);
        let lines = wrap(area, label, &style, slot.saturating_sub(8));
        for (k, line) in lines.iter().enumerate() {
            let at = (x - base_x, y - base_y + 10 + 18 * k as i32);
            area.draw(&Text::new(line.clone(), at, style.clone()))?;
        }
        most_lines = most_lines.max(lines.len());
    }
    let group_style = bold(16).pos(Pos::new(HPos::Center, VPos::Top));
    let mut first = 0;
    for (label, count) in groups {
        let (left, y) = to_pixel(first as f64 - 0.5);
        let (right, _) = to_pixel((first + count) as f64 - 0.5);
        let at = (
            (left + right) / 2 - base_x,
            y - base_y + 16 + 18 * most_lines as i32,
        );
        area.draw(&Text::new(label.clone(), at, group_style.clone()))?;
        first += count;
    }
    Ok(())
}

/// Categorical x axis, one line with points per series.
fn line_panel(
    area: &Area,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    categories: &[String],
    series: &[Series],
) -> anyhow::Result<()> {
    let n = categories.len() as f64;
    let top = headroom(series);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, bold(19))
        .margin(12)
        .x_label_area_size(62)
        .y_label_area_size(72)
        .build_cartesian_2d(-0.4..n - 0.6, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .x_labels(0)
        .y_labels(6)
        .y_label_formatter(&|v| tick(*v, top))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(font(15))
        .axis_desc_style(font(16))
        .draw()?;
    for s in series {
        let points: Vec<(f64, f64)> = (s.values.iter().enumerate())
            .filter_map(|(i, v)| v.map(|v| (i as f64, v)))
            .collect();
        chart.draw_series(LineSeries::new(points.clone(), s.color.stroke_width(3)))?;
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 5, s.color.filled())))?;
    }
    category_labels(area, |x| chart.backend_coord(&(x, 0.0)), categories, &[])
}

/// Categorical x axis, side-by-side bars per category (only for the series that have a value
/// there), each labelled with its value.
fn bar_panel(
    area: &Area,
    caption: &str,
    y_desc: &str,
    categories: &[String],
    groups: &[(String, usize)],
    series: &[Series],
) -> anyhow::Result<()> {
    let n = categories.len();
    let top = headroom(series);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, bold(19))
        .margin(12)
        .x_label_area_size(if groups.is_empty() { 50 } else { 70 })
        .y_label_area_size(72)
        .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .x_labels(0)
        .y_labels(8)
        .y_label_formatter(&|v| tick(*v, top))
        .y_desc(y_desc)
        .label_style(font(15))
        .axis_desc_style(font(16))
        .draw()?;
    let bars_at = |i: usize| {
        series
            .iter()
            .filter_map(move |s| s.values[i].map(|v| (s, v)))
    };
    let most_bars = (0..n).map(|i| bars_at(i).count()).max().unwrap_or(0);
    let width = 0.84 / most_bars.max(1) as f64;
    let bar_pixels = chart.backend_coord(&(width, 0.0)).0 - chart.backend_coord(&(0.0, 0.0)).0;
    let value_style =
        font(if bar_pixels < 36 { 12 } else { 14 }).pos(Pos::new(HPos::Center, VPos::Bottom));
    let no_data = font(14).pos(Pos::new(HPos::Center, VPos::Bottom));
    for i in 0..n {
        let count = bars_at(i).count();
        if count == 0 {
            chart.draw_series(iter::once(Text::new(
                "no data",
                (i as f64, 0.0),
                no_data.clone(),
            )))?;
        }
        let left = i as f64 - width * count as f64 / 2.0;
        for (k, (s, v)) in bars_at(i).enumerate() {
            let x = left + k as f64 * width;
            chart.draw_series(iter::once(Rectangle::new(
                [(x + width * 0.05, 0.0), (x + width * 0.95, v)],
                s.color.filled(),
            )))?;
            chart.draw_series(iter::once(
                EmptyElement::at((x + width / 2.0, v))
                    + Text::new(short(v), (0, -3), value_style.clone()),
            ))?;
        }
    }
    // Separators between groups.
    let mut boundary = 0;
    for (_, count) in groups.iter().take(groups.len().saturating_sub(1)) {
        boundary += count;
        let x = boundary as f64 - 0.5;
        chart.draw_series(iter::once(PathElement::new(
            [(x, 0.0), (x, top)],
            BLACK.mix(0.35).stroke_width(1),
        )))?;
    }
    category_labels(area, |x| chart.backend_coord(&(x, 0.0)), categories, groups)
}

fn postgres_tps(table: &Table, path: &Path) -> anyhow::Result<()> {
    let workloads = ordered(table.texts("workload")?, &["select-only", "tpcb"]);
    let protocols = ordered(table.texts("protocol")?, &["simple", "prepared"]);
    let known_setups = ["direct", "pgbouncer", "sluice", "sluice-audited"];
    let setups = ordered(table.texts("setup")?, &known_setups);
    let mut clients: Vec<u64> = (table.rows.iter())
        .map(|r| Ok(r.number("clients")?.unwrap_or_default() as u64))
        .collect::<anyhow::Result<_>>()?;
    clients.sort();
    clients.dedup();
    let labels: Vec<String> = clients.iter().map(u64::to_string).collect();
    let palette = colors(&setups, &known_setups);
    let legend: Vec<_> = setups
        .iter()
        .cloned()
        .zip(palette.iter().copied())
        .collect();
    let (root, body) = figure(
        path,
        "pgbench throughput by concurrent clients (higher is better)",
        &legend,
    )?;
    let panels = body.split_evenly((workloads.len(), protocols.len()));
    for (w, workload) in workloads.iter().enumerate() {
        for (p, protocol) in protocols.iter().enumerate() {
            let rows: Vec<&Row> = (table.rows.iter())
                .filter(|r| {
                    r.text("workload").ok() == Some(workload)
                        && r.text("protocol").ok() == Some(protocol)
                })
                .collect();
            let mut failed = 0.0;
            for r in &rows {
                failed += r.number("failed")?.unwrap_or_default();
            }
            let mut series = Vec::new();
            for (setup, &color) in setups.iter().zip(&palette) {
                let mut values = vec![None; clients.len()];
                for r in rows.iter().filter(|r| r.text("setup").ok() == Some(setup)) {
                    let c = r.number("clients")?.unwrap_or_default() as u64;
                    let i = clients.iter().position(|&x| x == c).expect("collected");
                    values[i] = r.number("tps")?;
                }
                series.push(Series {
                    name: setup.clone(),
                    color,
                    values,
                });
            }
            let mut caption = format!("{workload}, {protocol} protocol");
            if failed > 0.0 {
                caption += &format!(" ({failed} failed transactions)");
            }
            line_panel(
                &panels[w * protocols.len() + p],
                &caption,
                "clients",
                "transactions/s",
                &labels,
                &series,
            )?;
        }
    }
    Ok(root.present()?)
}

/// `series` values by category: `value(row)` for the row whose `category_col` and
/// `series_col` match.
fn by_category(
    table: &Table,
    category_col: &str,
    categories: &[String],
    names: &[(String, RGBColor)],
    series_of: impl Fn(&Row) -> anyhow::Result<Vec<(String, Option<f64>)>>,
) -> anyhow::Result<Vec<Series>> {
    let mut series: Vec<Series> = (names.iter())
        .map(|(name, color)| Series {
            name: name.clone(),
            color: *color,
            values: vec![None; categories.len()],
        })
        .collect();
    for row in &table.rows {
        let category = row.text(category_col)?;
        let Some(i) = categories.iter().position(|c| c == category) else {
            continue;
        };
        for (name, value) in series_of(row)? {
            if let Some(s) = series.iter_mut().find(|s| s.name == name) {
                s.values[i] = value;
            }
        }
    }
    Ok(series)
}

fn postgres_bulk(table: &Table, path: &Path) -> anyhow::Result<()> {
    let whats = ordered(table.texts("what")?, &["select", "copy"]);
    let known_setups = ["direct", "pgbouncer", "sluice", "sluice-audited"];
    let setups = ordered(table.texts("setup")?, &known_setups);
    let names: Vec<_> = setups
        .iter()
        .cloned()
        .zip(colors(&setups, &known_setups))
        .collect();
    let series = by_category(table, "what", &whats, &names, |r| {
        Ok(vec![(r.text("setup")?.to_string(), r.number("mb_per_s")?)])
    })?;
    let (root, body) = figure(
        path,
        "PostgreSQL bulk transfer (MB/s, higher is better)",
        &names,
    )?;
    bar_panel(&body, "", "MB/s", &whats, &[], &series)?;
    Ok(root.present()?)
}

fn masking(table: &Table, path: &Path) -> anyhow::Result<()> {
    let datasets = ordered(table.texts("dataset")?, &["db_rows", "logs", "dense"]);
    let known_engines = [
        "sluice",
        "sluice_stream_64k",
        "sluice_per_row",
        "regex",
        "regex_per_cell",
    ];
    let engines = ordered(table.texts("engine")?, &known_engines);
    let names: Vec<_> = engines
        .iter()
        .cloned()
        .zip(colors(&engines, &known_engines))
        .collect();
    // Categories are (dataset, detector set) pairs, grouped by dataset.
    let mut keys = Vec::new();
    let mut groups = Vec::new();
    for dataset in &datasets {
        let rows = table
            .rows
            .iter()
            .filter(|r| r.text("dataset").ok() == Some(dataset));
        let detectors = rows
            .map(|r| r.text("detectors"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let detectors = ordered(detectors, &["all", "pii", "pci", "secrets"]);
        groups.push((dataset.clone(), detectors.len()));
        keys.extend(detectors.into_iter().map(|d| (dataset.clone(), d)));
    }
    let mut series: Vec<Series> = (names.iter())
        .map(|(name, color)| Series {
            name: name.clone(),
            color: *color,
            values: vec![None; keys.len()],
        })
        .collect();
    for r in &table.rows {
        let key = (
            r.text("dataset")?.to_string(),
            r.text("detectors")?.to_string(),
        );
        let i = keys.iter().position(|k| *k == key).expect("collected");
        let s = (series.iter_mut())
            .find(|s| s.name == r.text("engine").unwrap_or_default())
            .expect("collected");
        s.values[i] = r.number("gb_per_s")?;
    }
    let labels: Vec<String> = keys.into_iter().map(|(_, detectors)| detectors).collect();
    let (root, body) = figure(
        path,
        "Masking throughput by dataset and detector set (GB/s, higher is better)",
        &names,
    )?;
    bar_panel(&body, "", "GB/s (median)", &labels, &groups, &series)?;
    Ok(root.present()?)
}

fn redirect(table: &Table, path: &Path) -> anyhow::Result<()> {
    let setups = ordered(table.texts("setup")?, &[]);
    let latency: &[(&str, &str)] = &[("median", "connect_median_us"), ("p99", "connect_p99_us")];
    let rate: &[(&str, &str)] = &[("1 client", "conn_per_s"), ("8 clients", "conn_per_s_8")];
    let names: Vec<(String, RGBColor)> = (latency.iter().chain(rate))
        .zip(PALETTE)
        .map(|((name, _), color)| (name.to_string(), color))
        .collect();
    let columns = |list: &'static [(&'static str, &'static str)]| {
        move |r: &Row| -> anyhow::Result<Vec<(String, Option<f64>)>> {
            list.iter()
                .map(|(name, column)| Ok((name.to_string(), r.number(column)?)))
                .collect()
        }
    };
    let (root, body) = figure(path, "connect() through the eBPF redirect", &names)?;
    let (left, right) = body.split_horizontally(SIZE.0 / 2);
    let series = by_category(table, "setup", &setups, &names[..2], columns(latency))?;
    bar_panel(
        &left,
        "latency (µs, lower is better)",
        "µs",
        &setups,
        &[],
        &series,
    )?;
    let series = by_category(table, "setup", &setups, &names[2..], columns(rate))?;
    bar_panel(
        &right,
        "connections per second (higher is better)",
        "connections/s",
        &setups,
        &[],
        &series,
    )?;
    Ok(root.present()?)
}

fn memory(table: &Table, path: &Path) -> anyhow::Result<()> {
    let protocols = ordered(table.texts("protocol")?, &["tcp", "postgres", "ssh"]);
    let mut connections: Vec<u64> = (table.rows.iter())
        .map(|r| Ok(r.number("connections")?.unwrap_or_default() as u64))
        .collect::<anyhow::Result<_>>()?;
    connections.sort();
    connections.dedup();
    let labels: Vec<String> = connections.iter().map(u64::to_string).collect();
    let names: Vec<_> = protocols
        .iter()
        .cloned()
        .zip(colors(&protocols, &["tcp", "postgres", "ssh"]))
        .collect();
    let series_of = |column: &'static str, scale: f64| {
        move |r: &Row| -> anyhow::Result<Vec<(String, Option<f64>)>> {
            Ok(vec![(
                r.text("protocol")?.to_string(),
                r.number(column)?.map(|v| v * scale),
            )])
        }
    };
    let (root, body) = figure(path, "sluice memory by open connections", &names)?;
    let (left, right) = body.split_horizontally(SIZE.0 / 2);
    let rss = by_category(
        table,
        "connections",
        &labels,
        &names,
        series_of("rss_kib", 1.0 / 1024.0),
    )?;
    line_panel(&left, "RSS (MiB)", "connections", "MiB", &labels, &rss)?;
    let per = by_category(
        table,
        "connections",
        &labels,
        &names,
        series_of("kib_per_connection", 1.0),
    )?;
    line_panel(
        &right,
        "per connection (KiB)",
        "connections",
        "KiB",
        &labels,
        &per,
    )?;
    Ok(root.present()?)
}

fn ssh(table: &Table, path: &Path) -> anyhow::Result<()> {
    let setups = ordered(table.texts("setup")?, &["direct"]);
    let names: Vec<(String, RGBColor)> = ["throughput", "echo mean", "echo p99"]
        .into_iter()
        .zip(PALETTE)
        .map(|(name, color)| (name.to_string(), color))
        .collect();
    let metric = |r: &Row| -> anyhow::Result<Vec<(String, Option<f64>)>> {
        let name = match r.text("metric")? {
            "throughput" => "throughput",
            "echo_mean" => "echo mean",
            "echo_p99" => "echo p99",
            _ => return Ok(Vec::new()),
        };
        Ok(vec![(name.to_string(), r.number("value")?)])
    };
    let (root, body) = figure(path, "OpenSSH through sluice vs direct", &names)?;
    let (left, right) = body.split_horizontally(SIZE.0 / 2);
    let series = by_category(table, "setup", &setups, &names[..1], metric)?;
    bar_panel(
        &left,
        "`cat` throughput (MB/s, higher is better)",
        "MB/s",
        &setups,
        &[],
        &series,
    )?;
    let series = by_category(table, "setup", &setups, &names[1..], metric)?;
    bar_panel(
        &right,
        "keystroke echo (µs, lower is better)",
        "µs",
        &setups,
        &[],
        &series,
    )?;
    Ok(root.present()?)
}
