//! `sparseswaps compare`: the fixed reports of the pipeline's snapshot tests give the
//! committed tables, and a run directory without a readable report is one line and a
//! non-zero exit.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline/tests/fixtures/reports")
}

fn compare(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_sparseswaps"))
        .arg("compare")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn runs() -> Vec<String> {
    ["wanda-50", "wanda-50-refit", "magnitude-24"]
        .iter()
        .map(|r| fixtures().join(r).to_string_lossy().into_owned())
        .collect()
}

#[test]
fn compare_prints_the_committed_tables() {
    let dirs = runs();
    let args: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let (ok, out, err) = compare(&args);
    assert!(ok, "{err}");
    let want = std::fs::read_to_string(fixtures().join("compare.md")).unwrap();
    assert_eq!(out, want);

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("table.csv");
    let mut with = args.clone();
    with.extend([
        "--format",
        "csv",
        "--by-kind",
        "--out",
        file.to_str().unwrap(),
    ]);
    let plot = tmp.path().join("ppl.svg");
    with.extend(["--plot", plot.to_str().unwrap()]);
    let (ok, out, err) = compare(&with);
    assert!(ok, "{err}");
    assert!(out.is_empty(), "--out writes nothing to stdout: {out}");
    let want = std::fs::read_to_string(fixtures().join("compare-by-kind.csv")).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), want);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("wanda-50"),
        "{svg:.80}"
    );
}

#[test]
fn bad_run_dirs_are_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty-run");
    std::fs::create_dir(&empty).unwrap();
    let garbage = tmp.path().join("garbage-run");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("report.json"), "not json").unwrap();
    let good = &runs()[0];
    for (dir, needle) in [
        (&empty, "empty-run/report.json"),
        (&garbage, "not a sparseswaps run report"),
    ] {
        let (ok, out, err) = compare(&[good, dir.to_str().unwrap()]);
        assert!(!ok, "expected failure for {}", dir.display());
        assert!(out.is_empty(), "no partial table: {out}");
        assert!(err.contains(needle), "'{needle}' not in: {err}");
        assert!(err.contains("report.json"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    let (ok, _, err) = compare(&[good, "--format", "xml"]);
    assert!(!ok && err.contains("md, csv or json"), "{err}");
}
