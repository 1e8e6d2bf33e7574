//! The pipeline end to end on SmolLM2-135M at a reduced size (8 x 256 calibration
//! tokens, 50%, 10 swaps per row): what CI can afford on 2 cores.

use sparseswaps_pipeline::{run, PipelineConfig, RunOptions, RunReport};
use std::path::{Path, PathBuf};

/// The folder of the fetched assets; `None` (a recorded skip) only when the registries
/// cannot be reached outside CI (see `sparseswaps_testkit::assets`).
fn assets() -> Option<PathBuf> {
    sparseswaps_testkit::assets().map(|a| a.dir().to_path_buf())
}

fn config(assets: &Path, out: &Path, extra: &str) -> String {
    format!(
        r#"
[model]
path = "{a}/smollm2-135m-instruct-q4_1.gguf"
[calibration]
text = "{a}/brown.txt"
samples = 8
seq_len = 256
seed = 1
[pattern]
sparsity = 0.5
[refine]
max_swaps = 10
backend = "auto"
[output]
dir = "{o}"
plot = true
[eval]
text = "{a}/moby-dick.txt"
seq_len = 256
windows = 4
{extra}
"#,
        a = assets.display(),
        o = out.display()
    )
}

/// The config of a smaller run (4 x 128 calibration tokens): `sections` stand between
/// `[calibration]` and `[output]`, and `output_opts` follow the output's `dir`.
fn small_run_config(assets: &Path, out: &Path, sections: &str, output_opts: &str) -> String {
    format!(
        r#"
[model]
path = "{a}/smollm2-135m-instruct-q4_1.gguf"
[calibration]
text = "{a}/brown.txt"
samples = 4
seq_len = 128
{sections}[output]
dir = "{o}"
{output_opts}"#,
        a = assets.display(),
        o = out.display()
    )
}

/// Writes the config `text` to `cfg_path`, parses it and runs the pipeline to success.
fn write_and_run(cfg_path: &Path, text: &str) -> (PipelineConfig, RunReport) {
    std::fs::write(cfg_path, text).unwrap();
    let cfg = PipelineConfig::from_toml(cfg_path, text).unwrap();
    let report = run(&cfg, cfg_path, &RunOptions::default(), &|_| {}).unwrap();
    (cfg, report)
}

#[test]
fn prunes_smollm2_end_to_end() {
    let Some(assets) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let cfg_path = dir.path().join("p.toml");
    let (cfg, report) = write_and_run(&cfg_path, &config(&assets, &out, ""));

    assert_eq!(
        report.layers.len(),
        30 * 7,
        "every linear layer of every block"
    );
    for l in &report.layers {
        assert!(
            l.refined_error <= l.warm_error * (1.0 + 1e-9),
            "{}: refined {} > warm {}",
            l.name,
            l.refined_error,
            l.warm_error
        );
        assert_eq!(l.sparsity, 0.5, "{}: measured sparsity", l.name);
    }
    assert!(report.mean_reduction > 0.0);
    // The masks on disk: exact per-row counts.
    let masks = std::fs::read(out.join("masks.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&masks).unwrap();
    assert_eq!(st.names().len(), 210);
    for (name, view) in st.tensors() {
        let cols = view.shape()[1];
        for row in view.data().chunks(cols) {
            assert_eq!(row.iter().filter(|&&v| v == 1).count(), cols / 2, "{name}");
        }
    }
    // The report parses.
    let parsed: RunReport =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(parsed.layers.len(), 210);
    let pruned = parsed.pruned_ppl.expect("pruned perplexity");
    let dense = parsed.dense_ppl.expect("dense perplexity");
    assert!(pruned.ppl > dense.ppl, "pruning should cost perplexity");
    assert!(out.join("error.svg").is_file());
    assert!(out.join("error.png").is_file());
    // The written model reloads through our loader and reproduces the perplexity.
    let model = sparseswaps_model::load(&out.join("model")).unwrap();
    let ids = model
        .encode(&sparseswaps_model::read_text(&assets.join("moby-dick.txt")).unwrap())
        .unwrap();
    let p = sparseswaps_model::perplexity(&model, &ids, 256, 4, &mut |_, _| {}).unwrap();
    assert!(
        (p.ppl - pruned.ppl).abs() <= 1e-3 * pruned.ppl,
        "reloaded {} vs reported {}",
        p.ppl,
        pruned.ppl
    );
    // Zeros where the masks say so.
    let w = model
        .weight("model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    let w = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let m = st.tensor("model.layers.0.self_attn.q_proj").unwrap();
    assert!(w.iter().zip(m.data()).all(|(&x, &k)| k == 1 || x == 0.0));

    // An existing output is refused without --force, and nothing is changed.
    let e = run(&cfg, &cfg_path, &RunOptions::default(), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("exists") && e.contains("--force"), "{e}");
    assert!(out.join("report.json").is_file());
}

#[test]
fn bad_pipeline_inputs_fail_cleanly() {
    let Some(assets) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let p = dir.path().join("bad.toml");
    let check = |extra: &str, edit: &dyn Fn(String) -> String, needle: &str| {
        let text = edit(config(&assets, &out, extra));
        std::fs::write(&p, &text).unwrap();
        let err = PipelineConfig::from_toml(&p, &text)
            .and_then(|cfg| run(&cfg, &p, &RunOptions::default(), &|_| {}))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "expected '{needle}' in: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!out.exists(), "output left behind for '{needle}'");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().contains("partial"))
            .collect();
        assert!(left.is_empty(), "staging left: {left:?}");
    };
    let id = |s: String| s;
    check("[bogus]\nx = 1", &id, "unknown field `bogus`");
    check(
        "",
        &|s| s.replace("max_swaps = 10", "max_swaps = 10\nspeed = 3"),
        "unknown field `speed`",
    );
    check(
        "",
        &|s| s.replace("sparsity = 0.5", "n_m = \"2:7\""),
        "does not divide",
    );
    check(
        "[targets]\ninclude = [\"model.layers.*.attn.nothing\"]",
        &id,
        "matches no linear layer",
    );
    check(
        "",
        &|s| s.replace("samples = 8", "samples = 100000"),
        "too short for 100000 samples",
    );
    check("[warm_start]\nname = \"nosuchplugin\"", &id, "nosuchplugin");
    check("", &|s| s.replace("brown.txt", "absent.txt"), "absent.txt");
}

/// Sublayer mode with an N:M pattern, a magnitude warm start, no swap cap, an exclude
/// glob, and no model written: every refined error is at most its warm start, masks keep
/// 2 of every 4, and excluded layers are left out.
#[test]
fn sublayer_two_of_four_on_two_blocks() {
    let Some(assets) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let p = dir.path().join("sub.toml");
    let text = small_run_config(
        &assets,
        &out,
        r#"[targets]
include = ["model.layers.0.*", "model.layers.1.*"]
exclude = ["*.k_proj"]
[pattern]
n_m = "2:4"
[warm_start]
name = "magnitude"
[refine]
sequential = "sublayer"
max_swaps = "none"
"#,
        "model = false\n",
    );
    let (_, report) = write_and_run(&p, &text);
    assert_eq!(report.layers.len(), 12);
    assert!(report.layers.iter().all(|l| !l.name.ends_with("k_proj")));
    for l in &report.layers {
        assert!(l.refined_error <= l.warm_error * (1.0 + 1e-9), "{}", l.name);
        assert_eq!(
            l.rows_capped, 0,
            "{}: no cap, every row ends 1-swap optimal",
            l.name
        );
    }
    let masks = std::fs::read(out.join("masks.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&masks).unwrap();
    for (name, view) in st.tensors() {
        for g in view.data().chunks(4) {
            assert_eq!(g.iter().filter(|&&v| v == 1).count(), 2, "{name}");
        }
    }
    assert!(!out.join("model").exists());
}

/// The layer budget with reconstruction on one block: masks keep exactly half of every
/// layer (the report's kept-count distribution is the mask's), the written model carries the re-fitted kept weights (zeros
/// where pruned), the report carries the new figures, and no layer's reconstructed
/// error exceeds its mask error.
#[test]
fn layer_budget_with_reconstruction_on_one_block() {
    let Some(assets) = assets() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let p = dir.path().join("budget.toml");
    let text = small_run_config(
        &assets,
        &out,
        r#"[targets]
include = ["model.layers.0.*"]
[pattern]
sparsity = 0.5
[refine]
max_swaps = 20
budget = "layer"
reconstruct = true
"#,
        "plot = false\n",
    );
    let (_, report) = write_and_run(&p, &text);
    assert_eq!(report.layers.len(), 7);
    let mut moves = 0;
    for l in &report.layers {
        let b = &l.budget;
        assert_eq!(b.budget, sparseswaps_core::Budget::Layer, "{}", l.name);
        assert!(l.refined_error <= b.row_budget_error.unwrap() * (1.0 + 1e-12));
        let rec = b.reconstructed_error.expect("reconstructed error");
        assert!(
            rec <= l.refined_error,
            "{}: {rec} > {}",
            l.name,
            l.refined_error
        );
        assert!(b.kept.min >= 1 && (b.kept.mean - l.shape[1] as f64 / 2.0).abs() < 1e-9);
        moves += b.cross_moves;
    }
    assert!(moves > 0, "no cross-row move on any layer");
    let masks = std::fs::read(out.join("masks.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&masks).unwrap();
    let dense = sparseswaps_model::load(&assets.join("smollm2-135m-instruct-q4_1.gguf")).unwrap();
    let pruned = sparseswaps_model::load(&out.join("model")).unwrap();
    let f32s = |m: &sparseswaps_model::Model, n: &str| {
        m.weight(n)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    for (name, view) in st.tensors() {
        let cols = view.shape()[1];
        let kept = view.data().iter().filter(|&&v| v == 1).count();
        assert_eq!(kept * 2, view.data().len(), "{name}: layer total");
        let w = f32s(&pruned, &format!("{name}.weight"));
        let d = f32s(&dense, &format!("{name}.weight"));
        assert!(
            w.iter().zip(view.data()).all(|(&x, &k)| k == 1 || x == 0.0),
            "{name}"
        );
        // Re-fitted: kept weights are not the dense ones.
        let changed = w
            .iter()
            .zip(&d)
            .zip(view.data())
            .filter(|((a, b), &k)| k == 1 && a != b)
            .count();
        assert!(
            changed > kept / 2,
            "{name}: only {changed} of {kept} kept weights re-fitted"
        );
        let rows: Vec<usize> = view
            .data()
            .chunks(cols)
            .map(|r| r.iter().filter(|&&v| v == 1).count())
            .collect();
        // The report's distribution is the mask's.
        let l = report.layers.iter().find(|l| l.name == name).unwrap();
        let (lo, hi) = (rows.iter().min().unwrap(), rows.iter().max().unwrap());
        assert_eq!((l.budget.kept.min, l.budget.kept.max), (*lo, *hi), "{name}");
        assert!(*lo >= 1, "{name}");
    }
    let json = std::fs::read_to_string(out.join("report.json")).unwrap();
    assert!(json.contains("\"reconstructed_error\"") && json.contains("\"kept\""));
}
