//! Snapshot tests of the run summary and of `compare` on fixed reports
//! (`tests/fixtures/reports/<run>/report.json`, trimmed from real runs or edited by hand).
//! The expected renderings are committed beside them; `UPDATE_SNAPSHOTS=1` rewrites them.

use sparseswaps_pipeline::compare::{compare_dirs, load_report, render, Format};
use sparseswaps_pipeline::compare_plot::ppl_plot_svg;
use sparseswaps_pipeline::summary::{render_summary, summarize};
use std::path::{Path, PathBuf};

const RUNS: [&str; 3] = ["wanda-50", "wanda-50-refit", "magnitude-24"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reports")
}

/// Compares `got` with the file `name` under the fixtures (or rewrites it).
fn snapshot(name: &str, got: &str) {
    let path = fixtures().join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_SNAPSHOTS=1 to write it)",
            path.display()
        )
    });
    assert_eq!(got, want, "{} differs", path.display());
}

fn dirs() -> Vec<PathBuf> {
    RUNS.iter().map(|r| fixtures().join(r)).collect()
}

#[test]
fn summaries_match_snapshots() {
    for run in RUNS {
        let r = load_report(&fixtures().join(run)).unwrap();
        let s = summarize(&r);
        // Every layer counted once, known kinds in block order, other kinds after.
        assert_eq!(
            s.kinds.iter().map(|k| k.layers).sum::<usize>(),
            r.layers.len()
        );
        assert_eq!(s.all.layers, r.layers.len());
        assert_eq!(s.kinds[0].kind, "q_proj");
        snapshot(&format!("{run}/summary.txt"), &render_summary(&s));
    }
}

#[test]
fn summary_stages_follow_the_report() {
    let plain = summarize(&load_report(&fixtures().join("wanda-50")).unwrap());
    assert!(plain.all.refit.is_none(), "no re-fit without reconstruct");
    assert!(plain.all.swapped.mean < plain.all.warm.mean);
    let refit = summarize(&load_report(&fixtures().join("wanda-50-refit")).unwrap());
    let stage = refit
        .all
        .refit
        .expect("objective refit has a re-fitted error");
    assert!(stage.mean < refit.all.swapped.mean);
    let warm = summarize(&load_report(&fixtures().join("magnitude-24")).unwrap());
    assert_eq!(warm.all.swaps, 0);
    assert_eq!(warm.all.warm, warm.all.swapped);
    assert_eq!(warm.kinds.last().map(|k| k.kind.as_str()), Some("lm_head"));
}

#[test]
fn compare_matches_snapshots() {
    for (by_kind, stem) in [(false, "compare"), (true, "compare-by-kind")] {
        let rows = compare_dirs(&dirs(), by_kind).unwrap();
        assert_eq!(rows.len(), RUNS.len());
        for (fmt, ext) in [
            (Format::Md, "md"),
            (Format::Csv, "csv"),
            (Format::Json, "json"),
        ] {
            snapshot(&format!("{stem}.{ext}"), &render(&rows, fmt));
        }
    }
}

#[test]
fn compare_columns() {
    let rows = compare_dirs(&dirs(), false).unwrap();
    let r: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.run.as_str(),
                r.pattern.as_str(),
                r.refinement.as_str(),
                r.budget.as_str(),
            )
        })
        .collect();
    assert_eq!(
        r,
        [
            ("wanda-50", "50%", "swaps (cap 100)", "row"),
            ("wanda-50-refit", "50%", "swaps (cap 100)", "band δ=0.1"),
            ("magnitude-24", "2:4", "none", "row"),
        ]
    );
    assert!(rows[1].reconstruct && !rows[0].reconstruct);
    // Every Markdown line has the same number of cells as the header.
    let md = render(&rows, Format::Md);
    let cells: Vec<usize> = md.lines().map(|l| l.matches(" | ").count()).collect();
    assert!(cells.iter().all(|&c| c == cells[0]), "{md}");
    // The JSON parses back with a row per run.
    let json: serde_json::Value = serde_json::from_str(&render(&rows, Format::Json)).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(3));
}

#[test]
fn bad_reports_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_report(dir.path()).unwrap_err().to_string();
    assert!(e.contains("report.json"), "{e}");
    std::fs::write(dir.path().join("report.json"), "{\"version\": 1}").unwrap();
    let e = load_report(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("report.json") && e.contains("not a sparseswaps run report"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn perplexity_plot_names_runs_and_methods() {
    let rows = compare_dirs(&dirs(), false).unwrap();
    let svg = ppl_plot_svg(&rows).expect("two runs have a perplexity");
    assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
    for needle in [
        "wanda-50-refit",
        "dense",
        "objective refit",
        "Perplexity against sparsity",
    ] {
        assert!(svg.contains(needle), "{needle} missing from the plot");
    }
    // The warm-start-only run has no perplexity: no point, no legend entry.
    assert!(!svg.contains("magnitude-24"));
    assert!(ppl_plot_svg(&rows[2..]).is_none());
}
