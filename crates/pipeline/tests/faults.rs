//! Faults inside a run, on a tiny synthetic model written by the test (no assets
//! needed): NaN in the calibration activations stops the run with a one-line message
//! naming the layer and block, and leaves no finished-looking output; what was finished
//! before the fault stays checkpointed for `--resume`.

use sparseswaps_pipeline::checkpoint::{read_manifest, staging_dir};
use sparseswaps_pipeline::{run, PipelineConfig, RunOptions};
use sparseswaps_testkit::tiny;
use std::path::Path;

/// A tiny two-block Llama with a NaN in one weight of `nan_in` (when given), a
/// calibration text, and a config pruning both blocks to 50%.
fn setup(dir: &Path, nan_in: Option<&str>) -> (PipelineConfig, std::path::PathBuf) {
    setup_with(dir, nan_in, "")
}

/// [`setup`] with the extra config sections `extra`.
fn setup_with(
    dir: &Path,
    nan_in: Option<&str>,
    extra: &str,
) -> (PipelineConfig, std::path::PathBuf) {
    let mut w = tiny::weights(7, false, true);
    if let Some(name) = nan_in {
        w.get_mut(name).expect("weight name").1[3] = f32::NAN;
    }
    let mdir = dir.join("model");
    tiny::write_hf(&mdir, "LlamaForCausalLM", &w, true, 1);
    let text = "the tiny test talks to the tiny model about tiny things. ".repeat(20);
    std::fs::write(dir.join("calib.txt"), text).unwrap();
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
[pattern]
sparsity = 0.5
[warm_start]
name = "magnitude"
{extra}
[output]
dir = "{d}/out"
plot = false
"#,
        d = dir.display()
    );
    std::fs::write(&cfg_path, &toml).unwrap();
    (
        PipelineConfig::from_toml(&cfg_path, &toml).unwrap(),
        cfg_path,
    )
}

/// The one-line error of a run that must fail.
fn run_err(cfg: &PipelineConfig, cfg_path: &Path, opts: &RunOptions) -> String {
    run(cfg, cfg_path, opts, &|_| {}).unwrap_err().to_string()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn nan_in_block_1_activations_names_the_layer_and_keeps_block_0() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, p) = setup(dir.path(), Some("model.layers.1.self_attn.q_proj.weight"));
    let err = run_err(&cfg, &p, &RunOptions::default());
    // q_proj's NaN reaches the attention output: the input of o_proj.
    assert!(
        err.contains("input of model.layers.1.self_attn.o_proj") && err.contains("non-finite"),
        "{err}"
    );
    assert!(
        err.contains("1 of 2 blocks are checkpointed") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = dir.path().join("out");
    assert!(!out.exists(), "a failed run left {}", out.display());
    // Only the clearly partial staging directory, holding block 0.
    let staging = staging_dir(&out);
    assert_eq!(
        entries(dir.path()),
        ["calib.txt", "model", "p.toml", ".out.partial"]
            .map(String::from)
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    let m = read_manifest(&staging).unwrap().expect("manifest");
    assert_eq!((m.blocks_done, m.blocks), (1, 2));
    assert_eq!(m.layers.len(), 7);
    assert!(!staging.join("masks.safetensors").exists());
    assert!(!staging.join("report.json").exists());

    // Resuming hits the same NaN again, with the same message, and keeps block 0.
    let opts = RunOptions {
        resume: true,
        ..RunOptions::default()
    };
    let again = run_err(&cfg, &p, &opts);
    assert!(
        again.contains("input of model.layers.1.self_attn.o_proj"),
        "{again}"
    );
    assert!(!out.exists());
    assert_eq!(read_manifest(&staging).unwrap().unwrap().blocks_done, 1);
}

#[test]
fn nan_in_block_0_activations_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, p) = setup(dir.path(), Some("model.layers.0.mlp.gate_proj.weight"));
    let err = run_err(&cfg, &p, &RunOptions::default());
    assert!(
        err.contains("input of model.layers.0.mlp.down_proj") && err.contains("non-finite"),
        "{err}"
    );
    assert!(!err.contains("--resume"), "nothing to resume: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // No output and no staging directory: nothing was finished.
    assert_eq!(entries(dir.path()), ["calib.txt", "model", "p.toml"]);
}

#[test]
fn stopped_tiny_run_resumes_to_the_same_bytes_and_force_starts_over() {
    // The same model without NaN: a full run, then a run stopped by a fault injected
    // after block 0 (its checkpoint edited to look like a kill), resumed.
    let dir = tempfile::tempdir().unwrap();
    let (cfg, p) = setup(dir.path(), None);
    let full = run(&cfg, &p, &RunOptions::default(), &|_| {}).unwrap();
    let out = dir.path().join("out");
    let masks = std::fs::read(out.join("masks.safetensors")).unwrap();
    let model = std::fs::read(out.join("model/model.safetensors")).unwrap();
    assert!(
        !out.join("checkpoint").exists(),
        "checkpoint left in output"
    );
    assert!(!staging_dir(&out).exists());
    std::fs::rename(&out, dir.path().join("full")).unwrap();

    // Stop after block 0: an event handler that panics is the in-process "kill".
    let stop_after_block_0 = |opts: &RunOptions| {
        let stop = std::panic::catch_unwind(|| {
            run(&cfg, &p, opts, &|ev| {
                if let sparseswaps_pipeline::Event::BlockDone { index: 0 } = ev {
                    panic!("stop after block 0");
                }
            })
        });
        assert!(stop.is_err());
    };
    stop_after_block_0(&RunOptions::default());
    assert!(!out.exists());
    let staging = staging_dir(&out);
    let manifest = staging.join("checkpoint/manifest.json");
    assert_eq!(read_manifest(&staging).unwrap().unwrap().blocks_done, 1);

    // Without --resume the leftover is refused, and left as it is.
    let saved = std::fs::read(&manifest).unwrap();
    let e = run_err(&cfg, &p, &RunOptions::default());
    assert!(
        e.contains("holds an unfinished run") && e.contains("1 of 2 blocks checkpointed"),
        "{e}"
    );
    // A checkpoint of another version is refused, naming both versions.
    let text = String::from_utf8(saved.clone()).unwrap();
    let v = env!("CARGO_PKG_VERSION");
    std::fs::write(
        &manifest,
        text.replace(&format!("\"version\": \"{v}\""), "\"version\": \"0.0.1\""),
    )
    .unwrap();
    let resume = RunOptions {
        resume: true,
        ..RunOptions::default()
    };
    let e = run_err(&cfg, &p, &resume);
    assert!(
        e.contains("resume refused: the checkpoint was written by sparseswaps 0.0.1")
            && e.contains(&format!("this is {v}")),
        "{e}"
    );
    std::fs::write(&manifest, &saved).unwrap();
    assert!(!out.exists());

    let resumed_from = std::sync::Mutex::new(None);
    let resumed = run(&cfg, &p, &resume, &|ev| {
        if let sparseswaps_pipeline::Event::Resumed { from_block, .. } = ev {
            *resumed_from.lock().unwrap() = Some(from_block);
        }
    })
    .unwrap();
    assert_eq!(*resumed_from.lock().unwrap(), Some(1));
    assert_eq!(std::fs::read(out.join("masks.safetensors")).unwrap(), masks);
    assert_eq!(
        std::fs::read(out.join("model/model.safetensors")).unwrap(),
        model
    );
    assert_eq!(resumed.layers.len(), full.layers.len());
    for (a, b) in resumed.layers.iter().zip(&full.layers) {
        let strip = |l: &sparseswaps_pipeline::LayerReport| {
            let mut l = l.clone();
            l.seconds = 0.0;
            l
        };
        assert_eq!(strip(a), strip(b));
    }
    assert!(!staging.exists());

    // A --force run over the finished output, stopped: the old output stays whole until
    // the resumed run (forced, as the run it continues) replaces it.
    let force = RunOptions {
        force: true,
        ..RunOptions::default()
    };
    std::fs::write(out.join("marker"), b"old output").unwrap();
    stop_after_block_0(&force);
    assert!(out.join("marker").is_file() && out.join("report.json").is_file());
    run(&cfg, &p, &resume, &|_| {}).unwrap();
    assert!(
        !out.join("marker").exists(),
        "the old output was not replaced"
    );
    assert_eq!(std::fs::read(out.join("masks.safetensors")).unwrap(), masks);
    assert!(!staging.exists());

    // --force discards a leftover checkpoint and starts over.
    stop_after_block_0(&force);
    let fresh = std::sync::Mutex::new(true);
    run(&cfg, &p, &force, &|ev| {
        if let sparseswaps_pipeline::Event::Resumed { .. } = ev {
            *fresh.lock().unwrap() = false;
        }
    })
    .unwrap();
    assert!(
        *fresh.lock().unwrap(),
        "--force resumed instead of starting over"
    );
    assert_eq!(std::fs::read(out.join("masks.safetensors")).unwrap(), masks);
    assert!(!staging.exists());
}

/// `refine.objective = "refit"`: a run stopped after block 0 and resumed gives the
/// uninterrupted run's masks, re-fitted model and report rows (refit figures included).
#[test]
fn stopped_refit_run_resumes_to_the_same_masks() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, p) = setup_with(dir.path(), None, "[refine]\nobjective = \"refit\"\n");
    let full = run(&cfg, &p, &RunOptions::default(), &|_| {}).unwrap();
    let out = dir.path().join("out");
    let masks = std::fs::read(out.join("masks.safetensors")).unwrap();
    let model = std::fs::read(out.join("model/model.safetensors")).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    let stop = std::panic::catch_unwind(|| {
        run(&cfg, &p, &RunOptions::default(), &|ev| {
            if let sparseswaps_pipeline::Event::BlockDone { index: 0 } = ev {
                panic!("stop after block 0");
            }
        })
    });
    assert!(stop.is_err());
    let staging = staging_dir(&out);
    assert_eq!(read_manifest(&staging).unwrap().unwrap().blocks_done, 1);
    let resume = RunOptions {
        resume: true,
        ..RunOptions::default()
    };
    let resumed = run(&cfg, &p, &resume, &|_| {}).unwrap();
    assert_eq!(std::fs::read(out.join("masks.safetensors")).unwrap(), masks);
    assert_eq!(
        std::fs::read(out.join("model/model.safetensors")).unwrap(),
        model
    );
    assert_eq!(resumed.mean_refit_reduction, full.mean_refit_reduction);
    let strip = |l: &sparseswaps_pipeline::LayerReport| {
        let mut l = l.clone();
        l.seconds = 0.0;
        l.budget
            .refit
            .as_mut()
            .expect("refit figures")
            .refit_seconds = 0.0;
        l
    };
    assert_eq!(resumed.layers.len(), full.layers.len());
    for (a, b) in resumed.layers.iter().zip(&full.layers) {
        assert_eq!(strip(a), strip(b));
    }
}
