//! What a family is made of: the shared block's options ([`BlockSpec`]), rotary
//! parameters, and the [`Family`] record each family file fills in.

use crate::error::Result;
use crate::window::SlidingWindow;
use serde_json::{json, Map, Value};
use std::path::Path;

/// The families this crate runs. Each one is a file of [`crate::arch`] saying how its
/// `config.json` maps onto the shared decoder block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// `LlamaForCausalLM` (Llama 2/3/3.1/3.2, SmolLM).
    Llama,
    /// `MistralForCausalLM` (sliding-window attention in every block).
    Mistral,
    /// `Qwen2ForCausalLM` (Qwen2, Qwen2.5: q/k/v projections with bias; sliding-window
    /// attention in the blocks `use_sliding_window` and `max_window_layers` or
    /// `layer_types` select).
    Qwen2,
    /// `Qwen3ForCausalLM` (RMSNorm of each query and key head, no biases).
    Qwen3,
    /// `Gemma2ForCausalLM` (`(1 + w)` norms around attention and MLP, GeGLU, soft-capping,
    /// alternating sliding-window blocks).
    Gemma2,
    /// `Gemma3ForCausalLM`, the text model (as Gemma 2, plus q/k norms and a rotary base
    /// of its own for the sliding-window blocks).
    Gemma3,
    /// `Phi3ForCausalLM` (fused `qkv_proj` and `gate_up_proj`).
    Phi3,
}

/// Rotary-embedding frequency scaling (the `rope_scaling` / `rope_parameters` forms of
/// transformers).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// `linear`: positions divided by `factor` (frequencies divided by it).
    Linear {
        /// The scaling factor.
        factor: f64,
    },
    /// `dynamic` (dynamic NTK): when a sequence is longer than
    /// `max_position_embeddings`, the base grows as in transformers'
    /// `_compute_dynamic_ntk_parameters`.
    Dynamic {
        /// The scaling factor.
        factor: f64,
    },
    /// `llama3` (Llama 3.1): long wavelengths divided by `factor`, short ones kept, a
    /// smooth blend between.
    Llama3 {
        /// The scaling factor.
        factor: f64,
        /// `low_freq_factor`.
        low_freq_factor: f64,
        /// `high_freq_factor`.
        high_freq_factor: f64,
        /// `original_max_position_embeddings`.
        original_max_position_embeddings: usize,
    },
}

impl RopeScaling {
    /// The `rope_scaling` object of `config.json`.
    pub fn to_json(&self) -> Value {
        match self {
            RopeScaling::Linear { factor } => {
                json!({"rope_type": "linear", "type": "linear", "factor": factor})
            }
            RopeScaling::Dynamic { factor } => {
                json!({"rope_type": "dynamic", "type": "dynamic", "factor": factor})
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => json!({
                "rope_type": "llama3",
                "factor": factor,
                "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor,
                "original_max_position_embeddings": original_max_position_embeddings,
            }),
        }
    }
}

/// A rotary base and its scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeParams {
    /// The base (`rope_theta`).
    pub theta: f64,
    /// Its scaling, if any.
    pub scaling: Option<RopeScaling>,
}

/// How an RMSNorm applies its weight `w` after `x / rms(x)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NormForm {
    /// `· w` (Llama, Mistral, Qwen, Phi-3).
    #[default]
    Weight,
    /// `· (1 + w)` (Gemma: the stored weight is centred on 0).
    OnePlusWeight,
}

/// The activation of the gated MLP, `down(act(gate(x)) · up(x))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// SiLU (SwiGLU).
    #[default]
    Silu,
    /// GELU, tanh approximation (`gelu_pytorch_tanh`: GeGLU of Gemma).
    GeluTanh,
}

/// The options of the shared decoder block and its two ends. The default is the Llama
/// block: pre-norms `x / rms(x) · w`, SwiGLU, attention scaled by `1 / √head_dim`, no
/// soft-capping, one rotary base.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BlockSpec {
    /// Form of every RMSNorm (blocks, q/k norms, final norm).
    pub norm: NormForm,
    /// Gemma's four norms per block: `post_attention_layernorm` normalises the attention
    /// output before the residual add, `pre_feedforward_layernorm` is the MLP's input norm
    /// and `post_feedforward_layernorm` normalises the MLP output before its residual
    /// add. Without it `post_attention_layernorm` is the MLP's input norm.
    pub sandwich_norms: bool,
    /// The MLP activation.
    pub activation: Activation,
    /// An RMSNorm over each query and key head (`self_attn.q_norm`, `self_attn.k_norm`,
    /// `[head_dim]`), before the rotary embedding.
    pub qk_norm: bool,
    /// Q, K and V stored as one `self_attn.qkv_proj` (rows of q, then k, then v).
    pub fused_qkv: bool,
    /// Gate and up stored as one `mlp.gate_up_proj` (rows of gate, then up).
    pub fused_gate_up: bool,
    /// Factor on the embeddings (Gemma: `√hidden_size`, rounded to f32).
    pub embed_scale: Option<f64>,
    /// Attention scores scaled by `query_pre_attn_scalar^(-1/2)` instead of
    /// `head_dim^(-1/2)`.
    pub query_pre_attn_scalar: Option<f64>,
    /// Attention scores soft-capped: `cap · tanh(scores / cap)`, before the mask.
    pub attn_softcap: Option<f64>,
    /// Final logits soft-capped: `cap · tanh(logits / cap)`.
    pub final_softcap: Option<f64>,
    /// Rotary parameters of the sliding-window blocks, when they differ from the others
    /// (Gemma 3's `rope_local_base_freq`).
    pub local_rope: Option<RopeParams>,
}

/// Defaults a family's config class has for keys a `config.json` may leave out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    /// `head_dim` when absent (`None`: `hidden_size / num_attention_heads`).
    pub head_dim: Option<usize>,
    /// `tie_word_embeddings` when absent.
    pub tie_word_embeddings: bool,
}

/// What a family reads from its `config.json`, with the keys common to all already
/// parsed.
pub(crate) struct ReadCtx<'a> {
    /// The `config.json` path, for errors.
    pub path: &'a Path,
    /// Its top-level object.
    pub obj: &'a Map<String, Value>,
    /// `num_hidden_layers`.
    pub num_layers: usize,
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `max_position_embeddings`.
    pub max_position_embeddings: usize,
}

/// A family's reading of its `config.json`.
#[derive(Default)]
pub(crate) struct FamilyConfig {
    /// The block's options.
    pub block: BlockSpec,
    /// Sliding-window attention, if some block uses it.
    pub sliding_window: Option<SlidingWindow>,
    /// Rotary parameters of the blocks, overriding the top-level ones (Gemma 3's
    /// per-layer-type `rope_parameters`).
    pub rope: Option<RopeParams>,
}

/// What a family writes into a `config.json`.
pub(crate) struct WriteCtx<'a> {
    /// The block's options.
    pub block: &'a BlockSpec,
    /// The sliding window.
    pub sliding_window: Option<&'a SlidingWindow>,
    /// The source `config.json`, when the model came from one: its keys are already in
    /// the object and are kept unless the family must rewrite them.
    pub base: Option<&'a Map<String, Value>>,
}

/// One family: its names, defaults, and how its `config.json` maps onto the shared
/// block. Which linear layers are pruning targets and which share a Gram follow from
/// the block ([`crate::LinearKind::ALL`], [`crate::LinearKind::input`]): every family has
/// the seven, a fused matrix being split into them at load and joined again on write.
pub(crate) struct Family {
    /// The `architectures[0]` class of `config.json`.
    pub hf_class: &'static str,
    /// The `model_type` of `config.json`.
    pub model_type: &'static str,
    /// Defaults of its config class.
    pub defaults: Defaults,
    /// Reads the family's keys.
    pub read: fn(&ReadCtx<'_>) -> Result<FamilyConfig>,
    /// Writes the family's keys (activation, sliding window, soft-capping, …).
    pub write: fn(&WriteCtx<'_>, &mut Map<String, Value>),
}

/// The defaults of the Llama-like families.
pub(crate) const LLAMA_DEFAULTS: Defaults = Defaults {
    head_dim: None,
    tie_word_embeddings: false,
};
