//! The SmolLM2 GGUF through this crate against candle-transformers' `quantized_llama`.
//!
//! One test in its own binary: it sets `CANDLE_DEQUANTIZE_ALL` (read per thread by
//! candle) so the reference multiplies with the same dequantized f32 weights instead of
//! quantizing its activations to 8 bits; with that the two forwards differ only by f32
//! rounding and operation order. Tolerance: max |Δlogit| ≤ 1e-3 (measured 5e-5) (logits are O(10)).

mod common;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use sparseswaps_model::load;

const TOL: f32 = 1e-3;

#[test]
fn smollm2_gguf_logits_match_candle_quantized_llama_and_know_paris() {
    let Some(a) = common::assets() else { return };
    std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1");
    let model = load(&a.gguf).unwrap();
    let cfg = model.config();
    assert_eq!(
        (
            cfg.num_hidden_layers,
            cfg.hidden_size,
            cfg.num_key_value_heads
        ),
        (30, 576, 3)
    );
    assert!(cfg.tie_word_embeddings);

    let mut file = std::fs::File::open(&a.gguf).unwrap();
    let ct = gguf_file::Content::read(&mut file).unwrap();
    let mut reference = ModelWeights::from_gguf(ct, &mut file, &Device::Cpu).unwrap();

    for prompt in [
        "The capital of France is",
        "In 1851, Herman Melville wrote 42 chapters",
    ] {
        let ids = model.encode(prompt).unwrap();
        let ours = model.forward(&ids, 1).unwrap();
        let n = ids.len();
        let ours: Vec<f32> = ours
            .narrow(1, n - 1, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let input = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        reference.clear_kv_cache();
        let theirs: Vec<f32> = reference
            .forward(&input, 0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(ours.len(), theirs.len());
        let diff = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{prompt:?}: {n} tokens, max |Δlogit| = {diff:.2e}");
        assert!(diff <= TOL, "{prompt:?}: max |Δlogit| = {diff} > {TOL}");
    }

    let prompt = model.encode("The capital of France is").unwrap();
    let cont = model.generate_greedy(&prompt, 3).unwrap();
    let text = model.decode(&cont).unwrap();
    eprintln!("greedy continuation: {text:?}");
    assert!(text.starts_with(" Paris"), "greedy continuation {text:?}");
}
