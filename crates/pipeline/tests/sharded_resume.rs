//! The staged model written in shards as blocks finish, on a tiny synthetic model (no
//! assets needed): a run stopped mid-way and resumed writes every output file byte for
//! byte as an uninterrupted run; the memory plan refuses a run over its limit; the
//! report holds the plan beside the measured peaks.

use sparseswaps_pipeline::checkpoint::{read_manifest, staging_dir};
use sparseswaps_pipeline::{run, Event, PipelineConfig, RunOptions};
use sparseswaps_testkit::tiny;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A tiny two-block Llama, a text, and a config pruning both blocks to 50% with
/// re-fitted kept weights, written in bf16 in shards of 20 kB, evaluated.
fn setup(dir: &Path, extra_run: &str) -> (PipelineConfig, PathBuf) {
    let w = tiny::weights(11, false, true);
    tiny::write_hf(&dir.join("model"), "LlamaForCausalLM", &w, true, 1);
    let text = "the tiny test talks to the tiny model about tiny things. ".repeat(20);
    std::fs::write(dir.join("calib.txt"), text).unwrap();
    let cfg_path = dir.join("p.toml");
    let toml = format!(
        r#"
[model]
path = "{d}/model"
dtype = "bf16"
[calibration]
text = "{d}/calib.txt"
samples = 4
seq_len = 16
micro_batch = 2
[pattern]
sparsity = 0.5
[warm_start]
name = "magnitude"
[refine]
reconstruct = true
[eval]
text = "{d}/calib.txt"
seq_len = 16
windows = 3
[output]
dir = "{d}/out"
plot = false
shard_size = "20kB"
{extra_run}
"#,
        d = dir.display()
    );
    std::fs::write(&cfg_path, &toml).unwrap();
    (
        PipelineConfig::from_toml(&cfg_path, &toml).unwrap(),
        cfg_path,
    )
}

/// Every file under `dir` (relative path → bytes), `report.json` aside.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                if rel != "report.json" {
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    out
}

fn stop_at(cfg: &PipelineConfig, p: &Path, at: &(dyn Fn(&Event) -> bool + Sync)) {
    let stop = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(cfg, p, &RunOptions::default(), &|ev| {
            if at(&ev) {
                panic!("stopped");
            }
        })
    }));
    assert!(stop.is_err(), "the run was not stopped");
}

#[test]
fn stopped_runs_resume_to_the_same_shards_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, p) = setup(dir.path(), "");
    let full = run(&cfg, &p, &RunOptions::default(), &|_| {}).unwrap();
    let out = dir.path().join("out");
    let want = tree(&out);
    let shards: Vec<&String> = want
        .keys()
        .filter(|k| k.starts_with("model/model-"))
        .collect();
    assert!(shards.len() > 2, "{:?}", want.keys());
    assert!(want.contains_key("model/model.safetensors.index.json"));
    assert!(want.contains_key("masks.safetensors"));
    // bf16 as asked, and the model loads back with the project's loader.
    let back = sparseswaps_model::load(&out.join("model")).unwrap();
    assert_eq!(back.source().dtype, sparseswaps_model::SourceDtype::BF16);
    std::fs::rename(&out, dir.path().join("full")).unwrap();

    type Stop = Box<dyn Fn(&Event) -> bool + Sync>;
    let stops: [(&str, Stop); 3] = [
        (
            "after block 0",
            Box::new(|e| matches!(e, Event::BlockDone { index: 0 })),
        ),
        (
            "inside block 1",
            Box::new(|e| matches!(e, Event::LayerDone(r) if r.block == 1)),
        ),
        (
            "at the pruned evaluation, the model written",
            Box::new(|e| matches!(e, Event::EvalStart { label, .. } if label == "pruned")),
        ),
    ];
    for (what, at) in stops {
        stop_at(&cfg, &p, at.as_ref());
        let staging = staging_dir(&out);
        assert!(read_manifest(&staging).unwrap().is_some(), "{what}");
        // Block files hold masks only: the checkpoint does not keep the weights.
        let ck = std::fs::read(staging.join("checkpoint/block-00000.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&ck).unwrap();
        assert!(st.names().iter().all(|n| n.starts_with("mask/")), "{what}");
        let resume = RunOptions {
            resume: true,
            ..RunOptions::default()
        };
        let resumed = run(&cfg, &p, &resume, &|_| {}).unwrap();
        let got = tree(&out);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{what}"
        );
        for (k, v) in &want {
            assert!(
                got[k] == *v,
                "{what}: {k} differs from the uninterrupted run's"
            );
        }
        // The pruned evaluation sees the weights as written, resumed or not.
        assert_eq!(
            resumed.pruned_ppl.map(|p| p.ppl),
            full.pruned_ppl.map(|p| p.ppl),
            "{what}"
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn memory_plan_refuses_a_run_over_the_limit_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, p) = setup(dir.path(), "[run]\nmax_memory = \"1kB\"\n");
    let e = run(&cfg, &p, &RunOptions::default(), &|_| {})
        .unwrap_err()
        .to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("does not fit the memory limit of 0.00 GB")
            && e.contains("estimated peak memory")
            && e.contains("prune loop"),
        "{e}"
    );
    assert!(!dir.path().join("out").exists());
    assert!(!staging_dir(&dir.path().join("out")).exists());
    // --max-memory overrides the config.
    let opts = RunOptions {
        max_memory: Some(1 << 40),
        ..RunOptions::default()
    };
    let notes = std::sync::Mutex::new(Vec::new());
    let r = run(&cfg, &p, &opts, &|ev| {
        if let Event::Note(n) = ev {
            notes.lock().unwrap().push(n);
        }
    })
    .unwrap();
    assert!(
        notes
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.starts_with("estimated peak memory")),
        "no plan printed"
    );
    let m = r.memory.expect("memory in the report");
    assert!(m.plan.peak_bytes > 0 && m.plan.disk_bytes > 0);
    let phases: Vec<&str> = m.measured.iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(
        phases,
        [
            "loading",
            "dense eval",
            "prune loop",
            "writing",
            "pruned eval"
        ]
    );
    for ph in &m.measured[1..] {
        assert!(
            ph.peak_bytes.is_some() && ph.estimate_bytes.is_some(),
            "{ph:?}"
        );
    }
    assert_eq!(
        r.peak_memory_bytes,
        m.measured.iter().filter_map(|p| p.peak_bytes).max()
    );
}

/// `setup`'s config with `calibration.hidden_dtype = dtype`.
fn with_hidden_dtype(dir: &Path, dtype: &str) -> (PipelineConfig, PathBuf) {
    let (_, p) = setup(dir, "");
    let toml = std::fs::read_to_string(&p).unwrap().replace(
        "micro_batch = 2\n",
        &format!("micro_batch = 2\nhidden_dtype = \"{dtype}\"\n"),
    );
    std::fs::write(&p, &toml).unwrap();
    let cfg = PipelineConfig::from_toml(&p, &toml);
    (cfg.unwrap(), p)
}

#[test]
fn hidden_states_kept_in_bf16_halve_their_plan_and_resume_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg32, p32) = setup(dir.path(), "");
    let f32_run = run(&cfg32, &p32, &RunOptions::default(), &|_| {}).unwrap();
    std::fs::remove_dir_all(dir.path().join("out")).unwrap();
    let (cfg, p) = with_hidden_dtype(dir.path(), "bf16");
    let full = run(&cfg, &p, &RunOptions::default(), &|_| {}).unwrap();
    let hidden = |r: &sparseswaps_pipeline::report::RunReport| {
        let plan = &r.memory.as_ref().unwrap().plan;
        let prune = plan
            .phases
            .iter()
            .find(|p| p.phase == "prune loop")
            .unwrap();
        let part = prune
            .parts
            .iter()
            .find(|x| x.what.starts_with("calibration hidden"));
        part.unwrap().bytes
    };
    assert_eq!(2 * hidden(&full), hidden(&f32_run));
    // Every block after the first reads rounded inputs: its layers see other Grams.
    let err = |r: &sparseswaps_pipeline::report::RunReport| -> Vec<f64> {
        r.layers
            .iter()
            .filter(|l| l.block == 1)
            .map(|l| l.warm_error)
            .collect()
    };
    assert_ne!(err(&full), err(&f32_run));
    let out = dir.path().join("out");
    let want = tree(&out);
    std::fs::remove_dir_all(&out).unwrap();
    // The checkpoint's hidden states come back in bf16 as they were kept.
    stop_at(&cfg, &p, &|e| matches!(e, Event::BlockDone { index: 0 }));
    let resume = RunOptions {
        resume: true,
        ..RunOptions::default()
    };
    run(&cfg, &p, &resume, &|_| {}).unwrap();
    assert!(tree(&out) == want, "the resumed bf16 run wrote other files");
}

#[test]
fn an_unknown_hidden_dtype_is_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_, p) = setup(dir.path(), "");
    let toml = std::fs::read_to_string(&p).unwrap().replace(
        "micro_batch = 2\n",
        "micro_batch = 2\nhidden_dtype = \"int8\"\n",
    );
    let e = PipelineConfig::from_toml(&p, &toml)
        .unwrap_err()
        .to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("calibration.hidden_dtype = 'int8'"), "{e}");
    assert!(e.contains(&p.display().to_string()), "{e}");
}
