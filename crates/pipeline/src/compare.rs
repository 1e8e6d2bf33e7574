//! `sparseswaps compare`: runs side by side, one row per run directory, read from each
//! directory's `report.json`; rendered as a Markdown table (to paste into docs), CSV or
//! JSON, optionally with the per-kind breakdown of [`crate::summary`].

use crate::config::{PipelineConfig, SwapCap};
use crate::error::{io_err, PipelineError, Result};
use crate::report::RunReport;
use crate::summary::{by_kind, fmt_gib, fmt_rel, summarize, KindSummary, Stat};
use serde::Serialize;
use std::fmt::Write;
use std::path::Path;

/// Output format of `compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A Markdown pipe table, columns padded.
    Md,
    /// CSV with a header line, numbers at full precision.
    Csv,
    /// A JSON array of [`CompareRow`]s.
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "md" | "markdown" => Ok(Format::Md),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => Err(format!("unknown format '{s}' (md, csv or json)")),
        }
    }
}

/// One run, as `compare` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareRow {
    /// The run directory's name.
    pub run: String,
    /// `2:4`, or the unstructured sparsity as a percentage (`50%`).
    pub pattern: String,
    /// Warm start name.
    pub warm_start: String,
    /// `none` (`max_swaps = 0`), `swaps (cap N)` or `swaps (no cap)`.
    pub refinement: String,
    /// `row`, `band δ=…` or `layer`.
    pub budget: String,
    /// `mask` or `refit`.
    pub objective: String,
    /// Whether the kept weights were re-fitted (`reconstruct`, or objective `refit`).
    pub reconstruct: bool,
    /// Calibration seed.
    pub seed: u64,
    /// Fraction of target weights pruned, measured.
    pub sparsity: f64,
    /// Dense perplexity, when evaluated.
    pub dense_ppl: Option<f64>,
    /// Pruned perplexity, when evaluated.
    pub pruned_ppl: Option<f64>,
    /// Relative layer error of the warm start, over all layers.
    pub warm: Stat,
    /// Relative layer error after the swaps.
    pub swapped: Stat,
    /// Relative layer error after the re-fit, when there was one.
    pub refit: Option<Stat>,
    /// Wall-clock seconds of the run.
    pub total_seconds: f64,
    /// Peak resident memory in bytes, when known.
    pub peak_memory_bytes: Option<u64>,
    /// Per-kind figures (`--by-kind` only; empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<KindSummary>,
}

/// Reads `dir/report.json`; the error names the file and says what is wrong with it.
pub fn load_report(dir: &Path) -> Result<RunReport> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    serde_json::from_str(&text).map_err(|e| {
        PipelineError::Input(format!(
            "{}: not a sparseswaps run report: {e}",
            path.display()
        ))
    })
}

/// A sparsity as a percentage without trailing zeros (`0.5` → `50%`, `0.625` → `62.5%`).
fn percent(s: f64) -> String {
    let t = format!("{:.2}", 100.0 * s);
    format!("{}%", t.trim_end_matches('0').trim_end_matches('.'))
}

fn pattern(c: &PipelineConfig) -> String {
    match (&c.pattern.n_m, c.pattern.sparsity) {
        (Some(nm), _) => nm.clone(),
        (None, Some(s)) => percent(s),
        (None, None) => "-".into(),
    }
}

fn refinement(c: &PipelineConfig) -> String {
    match c.refine.max_swaps {
        SwapCap::Count(0) => "none".into(),
        SwapCap::Count(n) => format!("swaps (cap {n})"),
        SwapCap::Word(_) => "swaps (no cap)".into(),
    }
}

fn budget(c: &PipelineConfig) -> String {
    match c.refine.budget.as_str() {
        "band" => format!("band δ={}", c.refine.max_row_imbalance.unwrap_or(0.25)),
        b => b.to_string(),
    }
}

/// The row of the run `name` whose report is `r`; with `with_kinds`, its per-kind
/// figures too.
pub fn row(name: &str, r: &RunReport, with_kinds: bool) -> CompareRow {
    let s = summarize(r);
    let c = &r.config;
    CompareRow {
        run: name.to_string(),
        pattern: pattern(c),
        warm_start: c.warm_start.name.clone(),
        refinement: refinement(c),
        budget: budget(c),
        objective: c.refine.objective.clone(),
        reconstruct: c.refine.reconstruct || c.refine.objective == "refit",
        seed: r.seed,
        sparsity: r.sparsity,
        dense_ppl: s.dense_ppl,
        pruned_ppl: s.pruned_ppl,
        warm: s.all.warm,
        swapped: s.all.swapped,
        refit: s.all.refit,
        total_seconds: r.total_seconds,
        peak_memory_bytes: r.peak_memory_bytes,
        kinds: if with_kinds {
            by_kind(&r.layers)
        } else {
            Vec::new()
        },
    }
}

/// The rows of the run directories `dirs`, in the order given; the first unreadable
/// report stops it with its error.
pub fn compare_dirs<P: AsRef<Path>>(dirs: &[P], with_kinds: bool) -> Result<Vec<CompareRow>> {
    dirs.iter()
        .map(|d| {
            let d = d.as_ref();
            let report = load_report(d)?;
            let name = d
                .file_name()
                .map_or_else(|| d.display().to_string(), |n| n.to_string_lossy().into());
            Ok(row(&name, &report, with_kinds))
        })
        .collect()
}

/// Renders `rows`; the per-kind breakdown is included when the rows carry one.
pub fn render(rows: &[CompareRow], format: Format) -> String {
    match format {
        Format::Md => render_md(rows),
        Format::Csv => render_csv(rows),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".into());
            s.push('\n');
            s
        }
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

/// The run-level cells of a row for Markdown (rounded for reading).
fn md_cells(r: &CompareRow) -> Vec<String> {
    vec![
        r.run.clone(),
        r.pattern.clone(),
        r.warm_start.clone(),
        r.refinement.clone(),
        r.budget.clone(),
        r.objective.clone(),
        if r.reconstruct { "yes" } else { "no" }.into(),
        r.seed.to_string(),
        opt(r.dense_ppl, |p| format!("{p:.3}")),
        opt(r.pruned_ppl, |p| format!("{p:.3}")),
        fmt_rel(Some(r.warm.mean)),
        fmt_rel(Some(r.warm.median)),
        fmt_rel(Some(r.swapped.mean)),
        fmt_rel(Some(r.swapped.median)),
        fmt_rel(r.refit.map(|s| s.mean)),
        fmt_rel(r.refit.map(|s| s.median)),
        format!("{:.1}", r.total_seconds),
        fmt_gib(r.peak_memory_bytes),
    ]
}

const MD_HEAD: [&str; 18] = [
    "run",
    "pattern",
    "warm start",
    "refinement",
    "budget",
    "objective",
    "re-fit",
    "seed",
    "dense ppl",
    "pruned ppl",
    "warm error mean",
    "warm error median",
    "swapped error mean",
    "swapped error median",
    "re-fitted error mean",
    "re-fitted error median",
    "wall s",
    "peak GiB",
];

const KIND_HEAD: [&str; 11] = [
    "run",
    "kind",
    "layers",
    "warm error mean",
    "warm error median",
    "swapped error mean",
    "swapped error median",
    "re-fitted error mean",
    "re-fitted error median",
    "swaps",
    "seconds",
];

fn kind_cells(run: &str, k: &KindSummary) -> Vec<String> {
    vec![
        run.to_string(),
        k.kind.clone(),
        k.layers.to_string(),
        fmt_rel(Some(k.warm.mean)),
        fmt_rel(Some(k.warm.median)),
        fmt_rel(Some(k.swapped.mean)),
        fmt_rel(Some(k.swapped.median)),
        fmt_rel(k.refit.map(|s| s.mean)),
        fmt_rel(k.refit.map(|s| s.median)),
        k.swaps.to_string(),
        format!("{:.1}", k.seconds),
    ]
}

/// A Markdown pipe table with padded columns; the first `left` columns are
/// left-aligned, the others (numbers) right-aligned.
fn md_table(head: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([head[i].chars().count(), 3])
            .max()
            .unwrap_or(3)
    };
    let widths: Vec<usize> = (0..head.len()).map(width).collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < left {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut s = line(head.iter().map(|h| h.to_string()).collect());
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            if i < left {
                "-".repeat(w)
            } else {
                format!("{}:", "-".repeat(w - 1))
            }
        })
        .collect();
    let _ = writeln!(s, "| {} |", rule.join(" | "));
    for r in rows {
        s.push_str(&line(r.clone()));
    }
    s
}

fn render_md(rows: &[CompareRow]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(md_cells).collect();
    let mut s = md_table(&MD_HEAD, &cells, 7);
    if rows.iter().any(|r| !r.kinds.is_empty()) {
        let kinds: Vec<Vec<String>> = rows
            .iter()
            .flat_map(|r| r.kinds.iter().map(move |k| kind_cells(&r.run, k)))
            .collect();
        s.push('\n');
        s.push_str(&md_table(&KIND_HEAD, &kinds, 2));
    }
    s
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

/// CSV: one line per run, or with the per-kind breakdown one line per run and kind
/// (kind `all` first), the run's columns repeated so that every line stands alone.
fn render_csv(rows: &[CompareRow]) -> String {
    let kinds = rows.iter().any(|r| !r.kinds.is_empty());
    let mut head = vec![
        "run",
        "pattern",
        "warm_start",
        "refinement",
        "budget",
        "objective",
        "reconstruct",
        "seed",
        "sparsity",
        "dense_ppl",
        "pruned_ppl",
        "wall_seconds",
        "peak_memory_bytes",
    ];
    if kinds {
        head.extend(["kind", "layers", "swaps", "seconds"]);
    }
    head.extend([
        "warm_mean",
        "warm_median",
        "swapped_mean",
        "swapped_median",
        "refit_mean",
        "refit_median",
    ]);
    let mut s = head.join(",");
    s.push('\n');
    for r in rows {
        let run: Vec<String> = vec![
            csv_field(&r.run),
            csv_field(&r.pattern),
            csv_field(&r.warm_start),
            csv_field(&r.refinement),
            csv_field(&r.budget),
            csv_field(&r.objective),
            r.reconstruct.to_string(),
            r.seed.to_string(),
            r.sparsity.to_string(),
            num(r.dense_ppl),
            num(r.pruned_ppl),
            r.total_seconds.to_string(),
            r.peak_memory_bytes.map_or(String::new(), |b| b.to_string()),
        ];
        let stages = |w: Stat, sw: Stat, rf: Option<Stat>| {
            [
                w.mean.to_string(),
                w.median.to_string(),
                sw.mean.to_string(),
                sw.median.to_string(),
                num(rf.map(|x| x.mean)),
                num(rf.map(|x| x.median)),
            ]
        };
        if !kinds {
            let _ = writeln!(
                s,
                "{},{}",
                run.join(","),
                stages(r.warm, r.swapped, r.refit).join(",")
            );
            continue;
        }
        let all_layers: usize = r.kinds.iter().map(|k| k.layers).sum();
        let all_swaps: u64 = r.kinds.iter().map(|k| k.swaps).sum();
        let all_seconds: f64 = r.kinds.iter().map(|k| k.seconds).sum();
        let all = [
            "all".to_string(),
            all_layers.to_string(),
            all_swaps.to_string(),
            all_seconds.to_string(),
        ];
        let mut lines = vec![(all, stages(r.warm, r.swapped, r.refit))];
        for k in &r.kinds {
            let head = [
                csv_field(&k.kind),
                k.layers.to_string(),
                k.swaps.to_string(),
                k.seconds.to_string(),
            ];
            lines.push((head, stages(k.warm, k.swapped, k.refit)));
        }
        for (h, st) in lines {
            let _ = writeln!(s, "{},{},{}", run.join(","), h.join(","), st.join(","));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_formats() {
        assert_eq!(percent(0.5), "50%");
        assert_eq!(percent(0.6), "60%");
        assert_eq!(percent(0.625), "62.5%");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!("md".parse::<Format>(), Ok(Format::Md));
        assert!("xml"
            .parse::<Format>()
            .unwrap_err()
            .contains("md, csv or json"));
    }
}
