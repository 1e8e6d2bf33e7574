//! `run` and `refine-layer` prune a layer through one path: on the tiny synthetic model
//! (no assets needed), a run that saves every layer's weights and Gram matrix, then
//! `refine-layer` (its library call, which the command only parses arguments for) on a
//! saved layer of each block with the same options, gives the run's mask byte for byte,
//! the same refined error, and (with reconstruction) the run's pruned weights.

use sparseswaps_pipeline::refine_layer::{RefineLayerJob, SecondMoment};
use sparseswaps_pipeline::{run, PipelineConfig, RunOptions, RunReport};
use sparseswaps_tensor_io::{read_tensor_f32, read_tensor_u8, TensorSpec};
use sparseswaps_testkit::tiny;
use std::path::{Path, PathBuf};

/// The tiny two-block model and a calibration text in `dir`, and a run of it with the
/// `[pattern]`, `[warm_start]` and `[refine]` sections `sections`, saving the Gram
/// matrices, into `out-TAG`. Returns the output directory and the report.
fn tiny_run(dir: &Path, tag: &str, sections: &str) -> (PathBuf, RunReport) {
    let mdir = dir.join("model");
    if !mdir.exists() {
        tiny::write_hf(
            &mdir,
            "LlamaForCausalLM",
            &tiny::weights(7, false, true),
            true,
            1,
        );
        let text = "the tiny test talks to the tiny model about tiny things. ".repeat(20);
        std::fs::write(dir.join("calib.txt"), text).unwrap();
    }
    let out = dir.join(format!("out-{tag}"));
    let cfg_path = dir.join("p.toml");
    let toml = format!(
        r#"
[model]
path = "{d}/model"
[calibration]
text = "{d}/calib.txt"
samples = 4
seq_len = 16
micro_batch = 2
{sections}
[output]
dir = "{o}"
plot = false
save_grams = true
"#,
        d = dir.display(),
        o = out.display()
    );
    std::fs::write(&cfg_path, &toml).unwrap();
    let cfg = PipelineConfig::from_toml(&cfg_path, &toml).unwrap();
    let report = run(&cfg, &cfg_path, &RunOptions::default(), &|_| {}).unwrap();
    (out, report)
}

/// `refine-layer` on the saved layer `name` of the run in `out`, `edit` setting the
/// options; returns the mask and the weights it wrote, and the refined error.
fn refine_saved_layer(
    out: &Path,
    name: &str,
    edit: &dyn Fn(&mut RefineLayerJob),
) -> (Vec<u8>, Vec<f32>, f64) {
    let saved = out.join(format!("layers/{name}.safetensors"));
    let dir = out.parent().unwrap();
    let (mask, weights) = (dir.join("mask.safetensors"), dir.join("w.safetensors"));
    let mut job = RefineLayerJob {
        weight: format!("{}:weight", saved.display()),
        second_moment: SecondMoment::Gram(format!("{}:gram", saved.display())),
        sparsity: Some(0.5),
        pattern: None,
        warm_start: "wanda".into(),
        plugin_dirs: Vec::new(),
        plugin_options: None,
        max_swaps: Some(100),
        search: None,
        budget: "row".into(),
        max_row_imbalance: None,
        backend: "cpu".into(),
        reconstruct: false,
        damping: 1e-6,
        weights_out: Some(weights.clone()),
        out: mask.clone(),
        report: None,
    };
    edit(&mut job);
    let got = sparseswaps_pipeline::refine_layer::run(&job, &|_| {}).unwrap();
    let spec = |p: &Path, t: &str| TensorSpec::parse(&format!("{}:{t}", p.display()));
    (
        read_tensor_u8(&spec(&mask, "mask"), 2).unwrap().data,
        read_tensor_f32(&spec(&weights, "weight"), 2).unwrap().data,
        got.report.final_error,
    )
}

/// The run's mask of `name`, its pruned weights in the written model, and its refined
/// error.
fn run_layer(out: &Path, report: &RunReport, name: &str) -> (Vec<u8>, Vec<f32>, f64) {
    let masks = out.join("masks.safetensors");
    let model = out.join("model/model.safetensors");
    let mask = read_tensor_u8(
        &TensorSpec::parse(&format!("{}:{name}", masks.display())),
        2,
    )
    .unwrap()
    .data;
    let weights = read_tensor_f32(
        &TensorSpec::parse(&format!("{}:{name}.weight", model.display())),
        2,
    )
    .unwrap()
    .data;
    let row = report.layers.iter().find(|l| l.name == name).unwrap();
    (mask, weights, row.refined_error)
}

/// Layers of both blocks, the second seeing the pruned first.
const LAYERS: [&str; 3] = [
    "model.layers.0.self_attn.q_proj",
    "model.layers.1.self_attn.o_proj",
    "model.layers.1.mlp.down_proj",
];

fn same_layers(out: &Path, report: &RunReport, edit: &dyn Fn(&mut RefineLayerJob)) {
    for name in LAYERS {
        let (mask, weights, error) = refine_saved_layer(out, name, edit);
        let (run_mask, run_weights, run_error) = run_layer(out, report, name);
        assert_eq!(mask, run_mask, "{name}: masks differ");
        assert!(mask.contains(&0) && mask.contains(&1), "{name}: {mask:?}");
        assert_eq!(
            error.to_bits(),
            run_error.to_bits(),
            "{name}: {error} vs {run_error}"
        );
        let bits = |w: &[f32]| w.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&weights), bits(&run_weights), "{name}: weights differ");
    }
}

#[test]
fn refine_layer_gives_the_runs_masks_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();

    // Defaults: wanda, 100 swaps per row, row budget, the backend's search.
    let (out, report) = tiny_run(dir.path(), "row", "[pattern]\nsparsity = 0.5\n");
    assert_eq!(report.config.refine.search.as_deref(), Some("bounded"));
    same_layers(&out, &report, &|_| {});

    // Layer budget, no cap, magnitude, with reconstruction: the re-fitted weights too.
    let (out, report) = tiny_run(
        dir.path(),
        "layer",
        "[pattern]\nsparsity = 0.5\n[warm_start]\nname = \"magnitude\"\n\
         [refine]\nmax_swaps = \"none\"\nbudget = \"layer\"\nreconstruct = true\n",
    );
    let layer_budget = |j: &mut RefineLayerJob| {
        j.warm_start = "magnitude".into();
        j.max_swaps = None;
        j.budget = "layer".into();
        j.reconstruct = true;
    };
    same_layers(&out, &report, &layer_budget);
    // Reconstruction moved weights: the comparison above is not of masked weights only.
    let (_, w, _) = refine_saved_layer(&out, LAYERS[2], &layer_budget);
    let (m, _, _) = refine_saved_layer(&out, LAYERS[2], &|j| {
        layer_budget(j);
        j.reconstruct = false;
    });
    let saved = read_tensor_f32(
        &TensorSpec::parse(&format!(
            "{}:weight",
            out.join(format!("layers/{}.safetensors", LAYERS[2]))
                .display()
        )),
        2,
    )
    .unwrap()
    .data;
    assert!(
        w.iter()
            .zip(&saved)
            .zip(&m)
            .any(|((a, b), &k)| k == 1 && a != b),
        "reconstruction changed no kept weight"
    );

    // 2:4 with the exhaustive search and a cap of 3 swaps.
    let (out, report) = tiny_run(
        dir.path(),
        "nm",
        "[pattern]\nn_m = \"2:4\"\n[refine]\nsearch = \"exhaustive\"\nmax_swaps = 3\n",
    );
    same_layers(&out, &report, &|j| {
        j.sparsity = None;
        j.pattern = Some("2:4".into());
        j.search = Some("exhaustive".into());
        j.max_swaps = Some(3);
    });
}
