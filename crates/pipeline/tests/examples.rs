//! Every pipeline in `examples/` and `benches/synth-runs/` parses and validates, so the
//! files the README and docs point at stay runnable as the config grows.

use sparseswaps_pipeline::PipelineConfig;
use std::path::Path;

#[test]
fn every_example_pipeline_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            PipelineConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(
        seen >= 5,
        "only {seen} example pipelines in {}",
        dir.display()
    );
}

#[test]
fn every_synthetic_shape_pipeline_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/synth-runs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            PipelineConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        3,
        "expected the 1B, 8B and 70B pipelines in {}",
        dir.display()
    );
}
