//! The tiny model's shape, vocabulary, tokenizer, random weights and HF config.

use serde_json::json;
use std::collections::BTreeMap;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::Tokenizer;

/// Hidden width.
pub const HIDDEN: usize = 32;
/// MLP intermediate width.
pub const INTER: usize = 48;
/// Attention heads.
pub const HEADS: usize = 4;
/// Key/value heads (grouped-query attention).
pub const KV_HEADS: usize = 2;
/// Width of one head.
pub const HEAD_DIM: usize = 8;
/// Decoder blocks.
pub const LAYERS: usize = 2;
/// RMSNorm epsilon.
pub const EPS: f64 = 1e-6;
/// RoPE base frequency.
pub const THETA: f64 = 10000.0;

/// Deterministic pseudo-random values in [-scale, scale).
pub struct Lcg(u64);
impl Lcg {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }
    /// Next value in [-1, 1).
    pub fn next_f32(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    /// `n` values in [-scale, scale).
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * scale).collect()
    }
}

/// The byte-level alphabet plus one merged token "Ġt".
pub fn vocab_tokens() -> Vec<String> {
    let mut chars: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    chars.sort();
    let mut v: Vec<String> = chars.into_iter().map(String::from).collect();
    v.push("Ġt".into());
    v
}

/// A byte-level BPE tokenizer over [`vocab_tokens`] with the one merge `Ġ t`.
pub fn tokenizer() -> Tokenizer {
    let toks = vocab_tokens();
    let vocab: Vocab = toks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, vec![("Ġ".to_string(), "t".to_string())])
        .build()
        .unwrap();
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    tok
}

/// Weights by HF name: (shape, values).
pub type Weights = BTreeMap<String, Entry>;

/// Shape and values of one tensor.
pub type Entry = (Vec<usize>, Vec<f32>);

/// Random weights; q/k/v biases when `bias`; a separate lm_head when `!tied`.
pub fn weights(seed: u64, bias: bool, tied: bool) -> Weights {
    let mut r = Lcg::new(seed);
    let mut w = Weights::new();
    // Drawn in this order: the order is part of every seed's values.
    for (name, shape, scale, offset) in tensor_plan(bias, tied) {
        let n = shape.iter().product();
        let vals = r.vec(n, scale).into_iter().map(|x| x + offset).collect();
        w.insert(name, (shape, vals));
    }
    w
}

/// Every tensor of the tiny model in draw order: name, shape, scale and offset of its
/// random values.
fn tensor_plan(bias: bool, tied: bool) -> Vec<(String, Vec<usize>, f32, f32)> {
    let v = vocab_tokens().len();
    let mut plan = vec![
        (
            "model.embed_tokens.weight".into(),
            vec![v, HIDDEN],
            1.0,
            0.0,
        ),
        ("model.norm.weight".into(), vec![HIDDEN], 0.2, 1.0),
    ];
    if !tied {
        plan.push(("lm_head.weight".into(), vec![v, HIDDEN], 0.3, 0.0));
    }
    let s = 1.0 / (HIDDEN as f32).sqrt();
    let (q, kv) = (HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        plan.extend([
            (
                format!("{p}.input_layernorm.weight"),
                vec![HIDDEN],
                0.2,
                1.0,
            ),
            (
                format!("{p}.post_attention_layernorm.weight"),
                vec![HIDDEN],
                0.2,
                1.0,
            ),
            (
                format!("{p}.self_attn.q_proj.weight"),
                vec![q, HIDDEN],
                3.0 * s,
                0.0,
            ),
            (
                format!("{p}.self_attn.k_proj.weight"),
                vec![kv, HIDDEN],
                3.0 * s,
                0.0,
            ),
            (
                format!("{p}.self_attn.v_proj.weight"),
                vec![kv, HIDDEN],
                s,
                0.0,
            ),
            (
                format!("{p}.self_attn.o_proj.weight"),
                vec![HIDDEN, q],
                s,
                0.0,
            ),
            (
                format!("{p}.mlp.gate_proj.weight"),
                vec![INTER, HIDDEN],
                s,
                0.0,
            ),
            (
                format!("{p}.mlp.up_proj.weight"),
                vec![INTER, HIDDEN],
                s,
                0.0,
            ),
            (
                format!("{p}.mlp.down_proj.weight"),
                vec![HIDDEN, INTER],
                s,
                0.0,
            ),
        ]);
        if bias {
            plan.extend([
                (format!("{p}.self_attn.q_proj.bias"), vec![q], 0.5, 0.0),
                (format!("{p}.self_attn.k_proj.bias"), vec![kv], 0.5, 0.0),
                (format!("{p}.self_attn.v_proj.bias"), vec![kv], 0.5, 0.0),
            ]);
        }
    }
    plan
}

/// The HF `config.json` of the tiny model for architecture `arch` (`LlamaForCausalLM`,
/// `Qwen2ForCausalLM`...).
pub fn config_json(arch: &str, tied: bool) -> serde_json::Value {
    json!({
        "architectures": [arch],
        "model_type": if arch.starts_with("Qwen2") { "qwen2" } else { "llama" },
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "num_hidden_layers": LAYERS,
        "rms_norm_eps": EPS,
        "rope_theta": THETA,
        "vocab_size": vocab_tokens().len(),
        "max_position_embeddings": 128,
        "tie_word_embeddings": tied,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "torch_dtype": "float32",
    })
}
