//! Every pipeline in `examples/` and `benches/synth-runs/` parses and validates, so the
//! files the README and docs point at stay runnable as the config grows.

use sparseswaps_pipeline::PipelineConfig;
use std::path::{Path, PathBuf};

/// Parses every `.toml` in `dir` (relative to the repository root), panicking with the
/// first error; returns how many there were and the directory.
fn validate_all(dir: &str) -> (usize, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir);
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            PipelineConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    (seen, dir)
}

#[test]
fn every_example_pipeline_is_valid() {
    let (seen, dir) = validate_all("examples");
    assert!(
        seen >= 5,
        "only {seen} example pipelines in {}",
        dir.display()
    );
}

#[test]
fn every_synthetic_shape_pipeline_is_valid() {
    let (seen, dir) = validate_all("benches/synth-runs");
    assert_eq!(
        seen,
        3,
        "expected the 1B, 8B and 70B pipelines in {}",
        dir.display()
    );
}
