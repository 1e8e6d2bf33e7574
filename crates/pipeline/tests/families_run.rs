//! `sparseswaps run` at 50% on the tiny transformers-made model of every family
//! (`crates/model/tests/fixtures/parity`): the written model keeps the family's class and
//! tensor names, and its own perplexity, re-loaded from disk, equals the report's.

use safetensors::SafeTensors;
use sparseswaps_pipeline::{run, PipelineConfig, RunOptions};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const FAMILIES: [&str; 9] = [
    "llama",
    "mistral",
    "qwen2",
    "qwen2_head",
    "qwen2_sliding",
    "qwen3",
    "gemma2",
    "gemma3",
    "phi3",
];

fn fixture(family: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures/parity")
        .join(family)
        .join("model")
}

/// Tensor names of every `*.safetensors` file in `dir`.
fn tensor_names(dir: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            let bytes = std::fs::read(&p).unwrap();
            let st = SafeTensors::deserialize(&bytes).unwrap();
            names.extend(st.names().into_iter().map(|n| n.to_string()));
        }
    }
    names
}

fn architectures(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["architectures"].clone()
}

#[test]
fn every_family_runs_at_50_percent_and_its_written_model_has_the_reported_perplexity() {
    for family in FAMILIES {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = fixture(family);
        let calib = "Pruning keeps the weights that matter most, and swaps fix the rest. ";
        std::fs::write(d.join("calib.txt"), calib.repeat(30)).unwrap();
        let eval = "Every family is exact against transformers, window after window. ";
        std::fs::write(d.join("eval.txt"), eval.repeat(12)).unwrap();
        let toml = format!(
            r#"
[model]
path = "{src}"
[calibration]
text = "{d}/calib.txt"
samples = 4
seq_len = 32
micro_batch = 2
[pattern]
sparsity = 0.5
[warm_start]
name = "wanda"
[refine]
max_swaps = 20
[output]
dir = "{d}/out"
plot = false
[eval]
text = "{d}/eval.txt"
seq_len = 40
windows = 4
"#,
            src = src.display(),
            d = d.display()
        );
        let cfg_path = d.join("p.toml");
        std::fs::write(&cfg_path, &toml).unwrap();
        let cfg = PipelineConfig::from_toml(&cfg_path, &toml).unwrap();
        let report = run(&cfg, &cfg_path, &RunOptions::default(), &|_| {})
            .unwrap_or_else(|e| panic!("{family}: {e}"));
        assert!(
            (report.sparsity - 0.5).abs() < 1e-9,
            "{family}: sparsity {}",
            report.sparsity
        );
        let reported = report.pruned_ppl.expect("an evaluation was asked for").ppl;
        let written = d.join("out/model");
        assert_eq!(
            architectures(&written),
            architectures(&src),
            "{family}: the written model changed class"
        );
        assert_eq!(
            tensor_names(&written),
            tensor_names(&src),
            "{family}: the written model changed tensor names"
        );
        let model = sparseswaps_model::load(&written).unwrap();
        let ppl = sparseswaps_model::perplexity_of_file(
            &model,
            &d.join("eval.txt"),
            40,
            4,
            &mut |_, _| {},
        )
        .unwrap()
        .ppl;
        let rel = (ppl - reported).abs() / reported;
        assert!(
            rel < 1e-9,
            "{family}: re-loaded perplexity {ppl} against the report's {reported}"
        );
        let dense = report.dense_ppl.expect("dense evaluation").ppl;
        assert!(
            (ppl - dense).abs() > 1e-6 * dense,
            "{family}: pruning changed nothing ({ppl})"
        );
    }
}
