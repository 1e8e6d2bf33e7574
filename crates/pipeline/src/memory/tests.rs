use super::*;
use sparseswaps_model::{LinearKind, LlamaConfig};
use std::path::Path;

/// Llama-3.2-1B's shape.
fn llama_1b() -> LlamaConfig {
    let json = r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 2048,
        "intermediate_size": 8192, "num_attention_heads": 32, "num_key_value_heads": 8,
        "num_hidden_layers": 16, "head_dim": 64, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "vocab_size": 128256, "max_position_embeddings": 131072, "tie_word_embeddings": true}"#;
    LlamaConfig::from_hf_json(Path::new("config.json"), json).unwrap()
}

fn inputs<'a>(
    cfg: &'a LlamaConfig,
    targets: &'a [[usize; 2]],
    residency: Residency,
) -> PlanInputs<'a> {
    PlanInputs {
        model: cfg,
        stored_bytes: 2,
        residency,
        calibration: (16, 512, 8),
        hidden_bytes: 4,
        eval: Some((64, 512)),
        group: &LinearKind::ALL,
        targets,
        model_disk: 2_471_645_608,
        out_bytes: 2,
        save_grams: false,
    }
}

fn part_of(p: &MemoryPlan, phase: &str, what: &str) -> u64 {
    p.phases
        .iter()
        .find(|x| x.phase == phase)
        .and_then(|x| x.parts.iter().find(|q| q.what.starts_with(what)))
        .map_or(0, |q| q.bytes)
}

#[test]
fn the_plan_counts_what_the_issue_lists() {
    let cfg = llama_1b();
    let targets = [[2048, 8192], [8192, 2048]];
    let p = plan(&inputs(&cfg, &targets, Residency::OneBlock));
    let (h, i) = (2048u64, 8192u64);
    // One Gram per capture point: hidden², hidden², (heads·head_dim)², intermediate².
    // Lower triangles of 256-wide tiles: 8 and 32 tiles a side.
    let tri = |t: u64| 8 * t * (t + 1) / 2 * 256 * 256;
    assert_eq!(
        part_of(&p, "prune loop", "Grams (f64 lower triangles, 4"),
        3 * tri(8) + tri(32)
    );
    // The capture stage (f64 Grams beside the forward) outweighs the pruning stage
    // (f32 Grams, one layer in flight): the phase counts the larger only.
    assert_eq!(part_of(&p, "prune loop", "Gram f32"), 0);
    assert_eq!(
        part_of(&p, "prune loop", "calibration hidden"),
        16 * 512 * h * 4
    );
    assert_eq!(
        part_of(&p, "prune loop", "captured activations"),
        8 * 512 * (2 * h + h + i) * 4
    );
    // Streamed, the vocabulary tables are read only to embed and for logits.
    assert_eq!(part_of(&p, "prune loop", "embedding"), 0);
    assert_eq!(
        part_of(&p, "dense eval", "lm_head (stored dtype)"),
        2 * 128_256 * h
    );
    let block = 4 * (2 * h + h * h + 2 * 512 * h + h * h + 3 * i * h);
    assert_eq!(part_of(&p, "prune loop", "block weights"), block);
    assert_eq!(
        part_of(&p, "dense eval", "evaluation hidden"),
        64 * 512 * h * 4
    );
    assert_eq!(
        part_of(&p, "dense eval", "LM-head chunk"),
        512 * 128_256 * 4
    );
    assert_eq!(p.peak_phase, "prune loop");
    assert_eq!(
        p.peak_bytes,
        p.phases.iter().map(|x| x.bytes).max().unwrap()
    );
    assert!(p.disk_bytes > 2_471_645_608);
    // Holding every weight in f32 costs the whole model instead of one block.
    let all = plan(&inputs(&cfg, &targets, Residency::AllF32));
    assert_eq!(part_of(&all, "prune loop", "block weights"), 0);
    assert_eq!(
        part_of(&all, "prune loop", "all weights"),
        4 * (128_256 * h + h + 16 * block / 4)
    );
    assert!(all.peak_bytes > p.peak_bytes);
    assert_eq!(
        part_of(&all, "pruned eval", "written model's file pages"),
        2_471_645_608
    );
    assert_eq!(part_of(&p, "pruned eval", "written model's file pages"), 0);
}

#[test]
fn over_the_limit_is_one_line_with_the_breakdown() {
    let cfg = llama_1b();
    let targets = [[2048, 8192]];
    let p = plan(&inputs(&cfg, &targets, Residency::OneBlock));
    assert!(check_limit(&p, None).is_ok());
    assert!(check_limit(&p, Some(p.peak_bytes)).is_ok());
    let e = check_limit(&p, Some(1_000_000_000))
        .unwrap_err()
        .to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.starts_with("the run does not fit the memory limit of 1.00 GB: estimated peak memory")
            && e.contains("in the prune loop (")
            && e.contains("Grams (f64 lower triangles, 4 capture points) 0.33 GB")
            && e.contains("disk to write"),
        "{e}"
    );
}
