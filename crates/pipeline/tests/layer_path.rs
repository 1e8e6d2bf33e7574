//! `run` and `refine-layer` prune a layer through one path: on the tiny synthetic model
//! (no assets needed), a run that saves every layer's weights and Gram matrix, then
//! `refine-layer` (its library call, which the command only parses arguments for) on a
//! saved layer of each block with the same options, gives the run's mask byte for byte,
//! the same refined error, and (with reconstruction) the run's pruned weights. With
//! `refine.objective = "refit"` too, whose re-fitted errors are never above those of
//! swaps + re-fit.

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
        objective: "mask".into(),
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

/// Every row of every layer of the run in `out` keeps half its weights (50% and 2:4
/// alike), and each group of `m` (when given) keeps `per` of them.
fn exact_counts(out: &Path, report: &RunReport, group: Option<(usize, usize)>) {
    for l in &report.layers {
        let spec = format!("{}:{}", out.join("masks.safetensors").display(), l.name);
        let mask = read_tensor_u8(&TensorSpec::parse(&spec), 2).unwrap();
        let d_in = mask.shape[1];
        for (r, row) in mask.data.chunks(d_in).enumerate() {
            let n = row.iter().filter(|&&m| m == 1).count();
            assert_eq!(n, d_in / 2, "{} row {r}: {n} kept", l.name);
            if let Some((m, per)) = group {
                for (g, grp) in row.chunks(m).enumerate() {
                    let c = grp.iter().filter(|&&x| x == 1).count();
                    assert_eq!(c, per, "{} row {r} group {g}", l.name);
                }
            }
        }
    }
}

#[test]
fn refit_objective_is_never_worse_than_swaps_and_refit_and_refine_layer_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let (_, recon) = tiny_run(
        dir.path(),
        "recon",
        "[pattern]\nsparsity = 0.5\n[refine]\nreconstruct = true\n",
    );
    // `reconstruct = false` is ignored: refit implies the re-fit.
    let (out, refit) = tiny_run(
        dir.path(),
        "refit",
        "[pattern]\nsparsity = 0.5\n[refine]\nobjective = \"refit\"\nreconstruct = false\n",
    );
    assert_eq!(refit.config.refine.objective, "refit");
    assert!(recon.mean_refit_reduction.is_none());
    let mean_refit = refit.mean_refit_reduction.expect("mean refit reduction");
    let mut swaps = 0;
    for (a, b) in refit.layers.iter().zip(&recon.layers) {
        assert_eq!(a.name, b.name);
        let f = a.budget.refit.as_ref().expect("refit figures");
        swaps += f.refit_swaps;
        let after = a.budget.reconstructed_error.unwrap();
        assert_eq!(after.to_bits(), f.refit_error_after.to_bits(), "{}", a.name);
        assert!(
            f.refit_error_after <= f.refit_error_before,
            "{}: {f:?}",
            a.name
        );
        assert_eq!(f.refit_rows_optimal + f.refit_rows_capped, a.shape[0]);
        assert!(f.refit_peak_row_bytes > 0 && f.refit_rows_in_flight > 0);
        // The refined error is the final mask's with the original weights.
        assert!(a.refined_error >= 0.0 && a.refined_relative == a.refined_error / a.energy);
        if a.block == 0 {
            // Same inputs in both runs: the refit swaps start at swaps + re-fit.
            let b_err = b.budget.reconstructed_error.unwrap();
            assert_eq!(
                f.refit_error_before.to_bits(),
                b_err.to_bits(),
                "{}",
                a.name
            );
            assert_eq!(
                f.refit_mask_error_before.to_bits(),
                b.refined_error.to_bits()
            );
        }
    }
    assert!(swaps > 0, "the refit swaps took no swap on the tiny model");
    assert!(mean_refit > 0.0, "{mean_refit}");
    let mean = |r: &RunReport| {
        r.layers
            .iter()
            .map(|l| l.budget.reconstructed_relative.unwrap())
            .sum::<f64>()
            / r.layers.len() as f64
    };
    assert!(
        mean(&refit) <= mean(&recon),
        "{} > {}",
        mean(&refit),
        mean(&recon)
    );
    exact_counts(&out, &refit, None);
    // refine-layer --objective refit on the saved layers: the run's masks, re-fitted
    // weights and refined errors, bit for bit.
    same_layers(&out, &refit, &|j| j.objective = "refit".into());

    // 2:4: swaps only inside groups.
    let (out, nm) = tiny_run(
        dir.path(),
        "refit-nm",
        "[pattern]\nn_m = \"2:4\"\n[refine]\nobjective = \"refit\"\nmax_swaps = 3\n",
    );
    exact_counts(&out, &nm, Some((4, 2)));
    same_layers(&out, &nm, &|j| {
        j.sparsity = None;
        j.pattern = Some("2:4".into());
        j.max_swaps = Some(3);
        j.objective = "refit".into();
    });
}

/// `objective = "refit"` under the layer budget moves weights between rows in re-fitted
/// form (after the ordinary phase's own moves): the layer keeps its total, the report's
/// kept counts are the mask's, the re-fitted error never rises, and `refine-layer`
/// reproduces it bit for bit.
#[test]
fn refit_objective_moves_weights_between_rows_under_the_layer_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (_, per_row) = tiny_run(
        dir.path(),
        "refit-row",
        "[pattern]\nsparsity = 0.5\n[refine]\nobjective = \"refit\"\n",
    );
    let (out, moved) = tiny_run(
        dir.path(),
        "refit-layer",
        "[pattern]\nsparsity = 0.5\n[refine]\nobjective = \"refit\"\nbudget = \"layer\"\n",
    );
    let mut moves = 0;
    for (a, b) in moved.layers.iter().zip(&per_row.layers) {
        let f = a.budget.refit.as_ref().expect("refit figures");
        moves += f.refit_cross_moves;
        assert!(f.refit_error_after <= f.refit_error_before, "{}", a.name);
        assert_eq!(a.name, b.name);
        let spec = format!("{}:{}", out.join("masks.safetensors").display(), a.name);
        let mask = read_tensor_u8(&TensorSpec::parse(&spec), 2).unwrap();
        let (d_out, d_in) = (mask.shape[0], mask.shape[1]);
        let kept = mask.data.iter().filter(|&&m| m == 1).count();
        assert_eq!(kept, d_out * (d_in / 2), "{}: layer total", a.name);
        let counts: Vec<usize> = mask
            .data
            .chunks(d_in)
            .map(|r| r.iter().filter(|&&m| m == 1).count())
            .collect();
        assert_eq!(
            a.budget.kept.min,
            *counts.iter().min().unwrap(),
            "{}",
            a.name
        );
        assert_eq!(
            a.budget.kept.max,
            *counts.iter().max().unwrap(),
            "{}",
            a.name
        );
    }
    assert!(
        moves > 0,
        "no cross-row move of the re-fitted objective on the tiny model"
    );
    same_layers(&out, &moved, &|j| {
        j.objective = "refit".into();
        j.budget = "layer".into();
    });
}
