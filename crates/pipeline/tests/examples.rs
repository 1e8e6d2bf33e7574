//! Every pipeline in `examples/` parses and validates, so the files the README points at
//! stay runnable as the config grows.

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
