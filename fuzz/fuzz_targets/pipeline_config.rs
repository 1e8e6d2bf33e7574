//! TOML text → `PipelineConfig::from_toml` (parse + validation) and the accessors the
//! run calls on a valid config. Any input must give `Ok` or a one-line `Err`; a panic,
//! abort or hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparseswaps_pipeline::config::{expand_path, glob_match};
use sparseswaps_pipeline::PipelineConfig;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    match PipelineConfig::from_toml(path, text) {
        Ok(cfg) => {
            // A config that validated must give its pattern and mode without error.
            cfg.pattern(path).expect("validated config has a pattern");
            cfg.sequential(path).expect("validated config has a mode");
            let _ = expand_path(&cfg.model.path);
            for g in cfg.targets.include.iter().chain(&cfg.targets.exclude) {
                let _ = glob_match(g, "model.layers.3.mlp.down_proj");
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error: {msg}");
            assert!(
                msg.contains("fuzz.toml"),
                "error does not name the file: {msg}"
            );
        }
    }
});
