//! The named real shapes and the `config.json` / `generation_config.json` they imply.

use serde_json::{json, Value};

/// Vocabulary of every Llama 3 model: 128000 byte-level BPE tokens and 256 special ones.
pub const LLAMA3_VOCAB: usize = 128_256;
/// Special tokens at the top of the vocabulary (`<|begin_of_text|>` first).
pub const SPECIAL_TOKENS: usize = 256;
/// Standard deviation of the random linears and embeddings: transformers initialises
/// Llama with `initializer_range` 0.02, which every shape here declares.
pub const INIT_STD: f32 = 0.02;

/// The widths of a Llama-family decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// Name given on the command line.
    pub name: &'static str,
    /// Hugging Face repository the widths come from (for the README).
    pub source: &'static str,
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub layers: usize,
    pub vocab: usize,
    pub max_position_embeddings: usize,
    /// `rope_scaling.factor` of the llama3 scaling.
    pub rope_factor: f64,
    pub tie_word_embeddings: bool,
}

/// Looks a shape up by its command-line name.
///
/// Sources, each the model's `config.json` on the Hugging Face Hub:
/// - llama-3.2-1b: <https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json>
///   hidden 2048, intermediate 8192, 32 heads, 8 KV heads, head_dim 64, 16 layers,
///   rope llama3 factor 32 (low 1, high 4, original 8192), tie_word_embeddings true;
/// - llama-3.1-8b: <https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json>
///   hidden 4096, intermediate 14336, 32 heads, 8 KV heads, 32 layers, factor 8, untied;
/// - llama-3.1-70b: <https://huggingface.co/meta-llama/Llama-3.1-70B/blob/main/config.json>
///   hidden 8192, intermediate 28672, 64 heads, 8 KV heads, 80 layers, factor 8, untied.
///
/// All three: vocab 128256, rope_theta 500000, rms_norm_eps 1e-5,
/// max_position_embeddings 131072, bos 128000, eos 128001 (the base models).
/// `tiny` and `tiny-tied` are test shapes (not real models).
pub fn shape(name: &str) -> Option<Shape> {
    let llama3 = |name, source, hidden, intermediate, heads, layers, rope_factor, tie| Shape {
        name,
        source,
        hidden,
        intermediate,
        heads,
        kv_heads: 8,
        head_dim: 128,
        layers,
        vocab: LLAMA3_VOCAB,
        max_position_embeddings: 131_072,
        rope_factor,
        tie_word_embeddings: tie,
    };
    let tiny = |name, tie| Shape {
        name,
        source: "none (a test shape)",
        hidden: 64,
        intermediate: 160,
        heads: 4,
        kv_heads: 2,
        head_dim: 16,
        layers: 3,
        vocab: 1024,
        max_position_embeddings: 2048,
        rope_factor: 8.0,
        tie_word_embeddings: tie,
    };
    Some(match name {
        "llama-3.2-1b" => Shape {
            head_dim: 64,
            ..llama3(
                "llama-3.2-1b",
                "meta-llama/Llama-3.2-1B",
                2048,
                8192,
                32,
                16,
                32.0,
                true,
            )
        },
        "llama-3.1-8b" => llama3(
            "llama-3.1-8b",
            "meta-llama/Llama-3.1-8B",
            4096,
            14336,
            32,
            32,
            8.0,
            false,
        ),
        "llama-3.1-70b" => llama3(
            "llama-3.1-70b",
            "meta-llama/Llama-3.1-70B",
            8192,
            28672,
            64,
            80,
            8.0,
            false,
        ),
        "tiny" => tiny("tiny", false),
        "tiny-tied" => tiny("tiny-tied", true),
        _ => return None,
    })
}

/// How a tensor's values are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Normal-ish with standard deviation [`INIT_STD`].
    Normal,
    /// All ones (RMSNorm weights as initialised).
    Ones,
}

/// One tensor of the checkpoint.
#[derive(Debug, Clone)]
pub struct TensorPlan {
    pub name: String,
    pub dims: Vec<usize>,
    pub init: Init,
}

impl TensorPlan {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }
}

impl Shape {
    /// `<|begin_of_text|>`: the first special token.
    pub fn bos(&self) -> usize {
        self.vocab - SPECIAL_TOKENS
    }

    /// The tensors of a checkpoint with `blocks` decoder blocks, in the order transformers'
    /// `state_dict` lists them (embedding, blocks, final norm, head).
    pub fn tensors(&self, blocks: usize) -> Vec<TensorPlan> {
        let (h, i) = (self.hidden, self.intermediate);
        let (q, kv) = (self.heads * self.head_dim, self.kv_heads * self.head_dim);
        let t = |name: String, dims: Vec<usize>, init| TensorPlan { name, dims, init };
        let mut out = vec![t(
            "model.embed_tokens.weight".into(),
            vec![self.vocab, h],
            Init::Normal,
        )];
        for l in 0..blocks {
            let p = format!("model.layers.{l}");
            out.push(t(
                format!("{p}.self_attn.q_proj.weight"),
                vec![q, h],
                Init::Normal,
            ));
            out.push(t(
                format!("{p}.self_attn.k_proj.weight"),
                vec![kv, h],
                Init::Normal,
            ));
            out.push(t(
                format!("{p}.self_attn.v_proj.weight"),
                vec![kv, h],
                Init::Normal,
            ));
            out.push(t(
                format!("{p}.self_attn.o_proj.weight"),
                vec![h, q],
                Init::Normal,
            ));
            out.push(t(
                format!("{p}.mlp.gate_proj.weight"),
                vec![i, h],
                Init::Normal,
            ));
            out.push(t(
                format!("{p}.mlp.up_proj.weight"),
                vec![i, h],
                Init::Normal,
            ));
            out.push(t(
                format!("{p}.mlp.down_proj.weight"),
                vec![h, i],
                Init::Normal,
            ));
            out.push(t(
                format!("{p}.input_layernorm.weight"),
                vec![h],
                Init::Ones,
            ));
            out.push(t(
                format!("{p}.post_attention_layernorm.weight"),
                vec![h],
                Init::Ones,
            ));
        }
        out.push(t("model.norm.weight".into(), vec![h], Init::Ones));
        if !self.tie_word_embeddings {
            out.push(t(
                "lm_head.weight".into(),
                vec![self.vocab, h],
                Init::Normal,
            ));
        }
        out
    }

    /// `config.json` as the real model has it, with `num_hidden_layers = blocks`.
    pub fn config_json(&self, blocks: usize, torch_dtype: &str) -> Value {
        json!({
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": false,
            "attention_dropout": 0.0,
            "bos_token_id": self.bos(),
            "eos_token_id": self.bos() + 1,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "hidden_size": self.hidden,
            "initializer_range": INIT_STD,
            "intermediate_size": self.intermediate,
            "max_position_embeddings": self.max_position_embeddings,
            "mlp_bias": false,
            "model_type": "llama",
            "num_attention_heads": self.heads,
            "num_hidden_layers": blocks,
            "num_key_value_heads": self.kv_heads,
            "pretraining_tp": 1,
            "rms_norm_eps": 1e-5,
            "rope_scaling": {
                "factor": self.rope_factor,
                "high_freq_factor": 4.0,
                "low_freq_factor": 1.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3"
            },
            "rope_theta": 500000.0,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": torch_dtype,
            "transformers_version": "4.45.0",
            "use_cache": true,
            "vocab_size": self.vocab
        })
    }

    /// `generation_config.json` of the base models.
    pub fn generation_config_json(&self) -> Value {
        json!({
            "bos_token_id": self.bos(),
            "do_sample": true,
            "eos_token_id": self.bos() + 1,
            "temperature": 0.6,
            "top_p": 0.9,
            "transformers_version": "4.45.0"
        })
    }
}
