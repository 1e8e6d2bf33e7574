//! Streaming weights: blocks read from the files one at a time, perplexity walked block
//! by block with the values of a forward of each window, the head kept in its stored
//! dtype, and resident blocks released back to the files.
//!
//! The live-block count is process-wide, so every test of this binary that loads a
//! model holds `SERIAL` while it runs.

mod common;

use common::{max_abs_diff, tiny};
use sparseswaps_model::{
    live_f32_blocks, load, peak_live_f32_blocks, perplexity, reset_peak_live_f32_blocks,
    save_hf_dir, DType, LinearKind, Model, SaveDtype, Tensor,
};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A tiny model of `2 · copies` blocks (the tiny model's two blocks drawn `copies` times
/// with different seeds), written as a 3-shard HF directory.
fn tiny_deep(dir: &Path, copies: usize) {
    let mut w = tiny::weights(11, false, false);
    for c in 1..copies {
        let extra = tiny::weights(11 + c as u64, false, false);
        for (name, entry) in extra {
            if let Some(rest) = name.strip_prefix("model.layers.") {
                let (l, tail) = rest.split_once('.').unwrap();
                let l: usize = l.parse().unwrap();
                w.insert(
                    format!("model.layers.{}.{tail}", l + c * tiny::LAYERS),
                    entry,
                );
            }
        }
    }
    tiny::write_hf(dir, "LlamaForCausalLM", &w, false, 3);
    let cfg_path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["num_hidden_layers"] = (copies * tiny::LAYERS).into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
}

/// Perplexity as it was computed before streaming: a full forward of each window alone,
/// `-log p` of each target from the whole logits row, summed in f64 window by window.
fn ppl_by_forward(model: &Model, ids: &[u32], seq_len: usize, windows: usize) -> (f64, f64) {
    let windows = windows.min(ids.len() / seq_len);
    let mut total = 0f64;
    for w in 0..windows {
        let win = &ids[w * seq_len..(w + 1) * seq_len];
        let x = model.forward(win, 1).unwrap().squeeze(0).unwrap();
        let x = x.narrow(0, 0, seq_len - 1).unwrap();
        let m = x.max_keepdim(1).unwrap();
        let lse = (x
            .broadcast_sub(&m)
            .unwrap()
            .exp()
            .unwrap()
            .sum_keepdim(1)
            .unwrap()
            .log()
            .unwrap()
            + &m)
            .unwrap();
        let t = Tensor::from_slice(&win[1..], (seq_len - 1, 1), x.device()).unwrap();
        let picked = x.gather(&t, 1).unwrap();
        let v: Vec<f32> = (lse - picked)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        total += v.iter().map(|&x| x as f64).sum::<f64>();
    }
    let mean = total / (windows * (seq_len - 1)) as f64;
    (mean.exp(), mean)
}

fn assert_same_ppl(model: &Model, ids: &[u32], seq_len: usize, windows: usize) {
    let mut steps = Vec::new();
    let p = perplexity(model, ids, seq_len, windows, &mut |d, t| steps.push((d, t))).unwrap();
    let (ppl, mean) = ppl_by_forward(model, ids, seq_len, windows);
    assert_eq!(
        p.mean_nll, mean,
        "block-wise mean NLL differs from the forward's"
    );
    assert_eq!(p.ppl, ppl);
    // Progress: one step per window and block, and per window through the head.
    let total = p.windows * (model.num_layers() + 1);
    assert_eq!(steps.len(), total);
    assert_eq!(steps.last(), Some(&(total, total)));
}

fn text_ids(model: &Model) -> Vec<u32> {
    model
        .encode(&"the tiny text that the test reads twice, ".repeat(30))
        .unwrap()
}

#[test]
fn blockwise_perplexity_equals_the_forward_on_a_tiny_model() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    tiny_deep(dir.path(), 2);
    let model = load(dir.path()).unwrap();
    assert_eq!(model.num_layers(), 4);
    let ids = text_ids(&model);
    assert_same_ppl(&model, &ids, 48, 5);
}

#[test]
fn at_most_one_block_is_live_in_perplexity_and_capture_walks() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    tiny_deep(dir.path(), 3);
    let mut model = load(dir.path()).unwrap();
    assert_eq!(model.num_layers(), 6);
    // Loading reads no block.
    assert_eq!(live_f32_blocks(), 0);
    let ids = text_ids(&model);

    reset_peak_live_f32_blocks();
    perplexity(&model, &ids, 32, 6, &mut |_, _| {}).unwrap();
    assert_eq!(
        peak_live_f32_blocks(),
        1,
        "perplexity held more than one block"
    );
    assert_eq!(live_f32_blocks(), 0, "perplexity left a block in memory");

    // A calibration walk: two micro-batches captured, then carried to the next block.
    let mut hidden: Vec<Tensor> = ids[..256]
        .chunks(128)
        .map(|c| model.embed(c, 4).unwrap())
        .collect();
    reset_peak_live_f32_blocks();
    for l in 0..model.num_layers() {
        for h in &hidden {
            let (_, cap) = model.block_forward_capture(l, h).unwrap();
            assert_eq!(cap.attn.rows, 128);
        }
        for h in hidden.iter_mut() {
            *h = model.block_forward(l, h).unwrap();
        }
        assert!(live_f32_blocks() <= 1);
    }
    assert_eq!(
        peak_live_f32_blocks(),
        1,
        "the capture walk held more than one block"
    );

    // The pruning handoff: block 0 changed (resident) while block 1 is read for its
    // capture makes two, until block 0 is written out and released.
    model.drop_cached_block();
    reset_peak_live_f32_blocks();
    let q0 = LinearKind::Q.weight_name(0);
    let w = model.weight(&q0).unwrap();
    model.set_weight(&q0, (w * 0.5).unwrap()).unwrap();
    assert_eq!((model.resident_blocks(), live_f32_blocks()), (1, 1));
    model.block_forward_capture(1, &hidden[0]).unwrap();
    assert_eq!(live_f32_blocks(), 2);
    model.release_block(0);
    assert_eq!((model.resident_blocks(), live_f32_blocks()), (0, 1));
    assert_eq!(peak_live_f32_blocks(), 2);
    drop(model);
    assert_eq!(live_f32_blocks(), 0);
}

#[test]
fn release_discards_changes_and_reads_the_files_again() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    tiny_deep(dir.path(), 1);
    let mut model = load(dir.path()).unwrap();
    let ids = text_ids(&model);
    let h = model.embed(&ids[..64], 2).unwrap();
    let dense = model.block_forward(1, &h).unwrap();

    let name = LinearKind::Up.weight_name(1);
    let shape = model.weight_shape(&name).unwrap();
    assert_eq!(shape, vec![tiny::INTER, tiny::HIDDEN]);
    model
        .set_weight_f32(&name, vec![0.0; shape.iter().product()])
        .unwrap();
    assert_eq!(model.resident_blocks(), 1);
    // The change is seen by the forward, and survives reading another block.
    let changed = model.block_forward(1, &h).unwrap();
    assert!(max_abs_diff(&changed, &dense) > 1e-3);
    model.block_forward(0, &h).unwrap();
    assert_eq!(
        model
            .block_forward(1, &h)
            .unwrap()
            .to_vec3::<f32>()
            .unwrap(),
        changed.to_vec3::<f32>().unwrap()
    );

    model.release_block(1);
    assert_eq!(model.resident_blocks(), 0);
    let again = model.block_forward(1, &h).unwrap();
    assert_eq!(
        again.to_vec3::<f32>().unwrap(),
        dense.to_vec3::<f32>().unwrap(),
        "a released block must be read from the files again"
    );
    // Out of range: nothing happens.
    model.release_block(99);
}

#[test]
fn bf16_head_stays_bf16_and_gives_the_values_of_its_f32_widening() {
    let _g = serial();
    let src = tempfile::tempdir().unwrap();
    tiny_deep(src.path(), 1);
    let out = tempfile::tempdir().unwrap();
    let bf = out.path().join("bf16");
    let f32_dir = out.path().join("f32");
    save_hf_dir(&load(src.path()).unwrap(), &bf, SaveDtype::BF16, false).unwrap();
    let bf16 = load(&bf).unwrap();
    assert_eq!(bf16.embed_tokens().unwrap().dtype(), DType::BF16);
    assert_eq!(bf16.lm_head().unwrap().dtype(), DType::BF16);
    assert_eq!(bf16.final_norm().dtype(), DType::F32);
    // The same values widened to f32 on disk: the same logits, bit for bit.
    save_hf_dir(&bf16, &f32_dir, SaveDtype::F32, false).unwrap();
    let wide = load(&f32_dir).unwrap();
    assert_eq!(wide.embed_tokens().unwrap().dtype(), DType::F32);
    let ids = text_ids(&bf16);
    let a = bf16.forward(&ids[..40], 1).unwrap();
    let b = wide.forward(&ids[..40], 1).unwrap();
    assert_eq!(a.to_vec3::<f32>().unwrap(), b.to_vec3::<f32>().unwrap());
}

#[test]
fn smollm2_gguf_blockwise_perplexity_and_chunked_head() {
    let Some(a) = common::assets() else { return };
    let _g = serial();
    let model = load(&a.gguf).unwrap();
    let text = sparseswaps_model::read_text(&a.moby_dick).unwrap();
    let head: String = text.chars().take(20_000).collect();
    let ids = model.encode(&head).unwrap();

    // The head in chunks of vocabulary rows gives the logits of the whole table.
    let h = model.embed(&ids[..16], 1).unwrap();
    let chunked = model.logits(&h).unwrap();
    let eps = model.config().rms_norm_eps;
    let x = h.squeeze(0).unwrap();
    let var = x.sqr().unwrap().mean_keepdim(1).unwrap();
    let inv = (var + eps).unwrap().sqrt().unwrap().recip().unwrap();
    let xn = x
        .broadcast_mul(&inv)
        .unwrap()
        .broadcast_mul(model.final_norm())
        .unwrap();
    let table = model.lm_head().unwrap().to_dtype(DType::F32).unwrap();
    let whole = xn.matmul(&table.t().unwrap()).unwrap();
    assert_eq!(
        chunked.squeeze(0).unwrap().to_vec2::<f32>().unwrap(),
        whole.to_vec2::<f32>().unwrap()
    );

    reset_peak_live_f32_blocks();
    assert_same_ppl(&model, &ids, 64, 3);
    assert_eq!(peak_live_f32_blocks(), 1);
}

#[test]
fn released_tables_are_read_again_with_the_same_values() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    tiny_deep(dir.path(), 1);
    let model = load(dir.path()).unwrap();
    let ids = text_ids(&model);
    let before = model.forward(&ids[..24], 1).unwrap();
    // Perplexity lets go of the embedding and head once it is done with each.
    assert!(model.tables_held());
    perplexity(&model, &ids, 16, 2, &mut |_, _| {}).unwrap();
    assert!(!model.tables_held(), "perplexity left the tables in memory");
    // Read again on first use: the same logits, bit for bit.
    let after = model.forward(&ids[..24], 1).unwrap();
    assert!(model.tables_held());
    assert_eq!(
        before.to_vec3::<f32>().unwrap(),
        after.to_vec3::<f32>().unwrap()
    );
    // A table handed out stays valid after a release.
    let table = model.embed_tokens().unwrap();
    model.release_tables();
    assert!(!model.tables_held());
    assert_eq!(table.dims()[0], model.config().vocab_size);
}
