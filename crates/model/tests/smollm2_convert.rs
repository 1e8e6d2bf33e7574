//! The SmolLM2 GGUF converted to an HF directory (f32) and loaded back through the HF
//! loader gives the same logits (tolerance: exactly equal, asserted as max |Δ| ≤ 1e-6),
//! the same tokens, and the same perplexity; the written config has the keys
//! transformers' LlamaForCausalLM reads.

mod common;

use sparseswaps_model::{load, perplexity_of_file, save_hf_dir, SaveDtype, SourceDtype};

#[test]
fn smollm2_gguf_to_hf_dir_round_trip() {
    let Some(a) = common::assets() else { return };
    let gguf = load(&a.gguf).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("smollm2-hf");
    save_hf_dir(&gguf, &out, SaveDtype::Source, false).unwrap();

    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    for key in [
        "architectures",
        "model_type",
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_key_value_heads",
        "num_hidden_layers",
        "rms_norm_eps",
        "rope_theta",
        "vocab_size",
        "max_position_embeddings",
        "tie_word_embeddings",
        "bos_token_id",
        "eos_token_id",
        "torch_dtype",
    ] {
        assert!(cfg.get(key).is_some(), "config.json lacks {key}");
    }
    assert_eq!(cfg["architectures"][0], "LlamaForCausalLM");
    assert_eq!(cfg["torch_dtype"], "float32");
    assert_eq!(cfg["rope_theta"], 100000.0);
    assert_eq!(cfg["tie_word_embeddings"], true);

    let hf = load(&out).unwrap();
    assert_eq!(hf.source().dtype, SourceDtype::F32);
    assert_eq!(hf.config(), gguf.config());
    let brown = std::fs::read_to_string(&a.brown).unwrap();
    let sample: String = brown.chars().take(3000).collect();
    let ids = gguf.encode(&sample).unwrap();
    assert_eq!(ids, hf.encode(&sample).unwrap());
    // Digits are split one by one, as SmolLM2's HF pre-tokenizer does.
    assert_eq!(gguf.encode("2024").unwrap().len(), 4);
    assert_eq!(gguf.decode(&ids).unwrap(), sample);

    let ids = &ids[..96];
    let x = gguf.forward(ids, 1).unwrap();
    let y = hf.forward(ids, 1).unwrap();
    let d = common::max_abs_diff(&x, &y);
    assert!(d <= 1e-6, "max |Δlogit| = {d}");

    let p1 = perplexity_of_file(&gguf, &a.moby_dick, 64, 2, &mut |_, _| {}).unwrap();
    let p2 = perplexity_of_file(&hf, &a.moby_dick, 64, 2, &mut |_, _| {}).unwrap();
    assert_eq!(p1, p2);
    assert_eq!((p1.windows, p1.tokens), (2, 126));
    assert!(p1.ppl > 1.0 && p1.ppl < 200.0, "{p1:?}");
}
