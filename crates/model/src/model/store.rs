//! The model as stored: f32 block weights, head, tokenizer and source; weights read and
//! replaced by Hugging Face name.

use super::kinds::LinearKind;
use crate::config::LlamaConfig;
use crate::error::{CandleContext, ModelError, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use std::path::PathBuf;
use tokenizers::Tokenizer;

/// The weights of one decoder block, f32 on the CPU. Linear weights are `[d_out, d_in]`
/// as in PyTorch; fused checkpoint matrices (Phi-3) are held split. Norm weights are as
/// stored; the family's [`crate::BlockSpec`] says how and where each applies.
#[derive(Debug, Clone)]
pub struct BlockWeights {
    /// RMSNorm before attention, `[hidden]`.
    pub input_layernorm: Tensor,
    /// RMSNorm before the MLP, `[hidden]` (Gemma: on the attention output, before the
    /// residual add).
    pub post_attention_layernorm: Tensor,
    /// Gemma: RMSNorm before the MLP, `[hidden]`.
    pub pre_feedforward_layernorm: Option<Tensor>,
    /// Gemma: RMSNorm on the MLP output, before the residual add, `[hidden]`.
    pub post_feedforward_layernorm: Option<Tensor>,
    /// Qwen3, Gemma 3: RMSNorm over each query head, `[head_dim]`.
    pub q_norm: Option<Tensor>,
    /// Qwen3, Gemma 3: RMSNorm over each key head, `[head_dim]`.
    pub k_norm: Option<Tensor>,
    /// The seven linear weights, indexed like [`LinearKind::ALL`].
    pub linear: [Tensor; 7],
    /// Optional biases (Qwen2 has q/k/v biases), indexed like [`LinearKind::ALL`].
    pub bias: [Option<Tensor>; 7],
}

impl BlockWeights {
    pub(crate) fn idx(kind: LinearKind) -> usize {
        LinearKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_default()
    }

    /// The weight of one linear layer.
    pub fn weight(&self, kind: LinearKind) -> &Tensor {
        &self.linear[Self::idx(kind)]
    }

    /// The bias of one linear layer, if it has one.
    pub fn bias(&self, kind: LinearKind) -> Option<&Tensor> {
        self.bias[Self::idx(kind)].as_ref()
    }
}

/// Element type of the weights in the source files (what a writer saves by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceDtype {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// A GGUF quantization (its `general.file_type` name or number); saved as f32.
    Gguf(String),
}

impl SourceDtype {
    /// The `torch_dtype` string of a float dtype; `None` for a GGUF quantization.
    pub fn torch_dtype(&self) -> Option<&'static str> {
        match self {
            SourceDtype::F32 => Some("float32"),
            SourceDtype::F16 => Some("float16"),
            SourceDtype::BF16 => Some("bfloat16"),
            SourceDtype::Gguf(_) => None,
        }
    }
}

/// Where a model came from.
#[derive(Debug, Clone)]
pub struct ModelSource {
    /// The GGUF file or HF directory.
    pub path: PathBuf,
    /// Dtype of the source weights.
    pub dtype: SourceDtype,
    /// The source `config.json` (HF directories), kept so a writer preserves keys this
    /// crate does not model.
    pub hf_config: Option<Value>,
    /// `tokenizer.json` bytes as read (HF directories), written back verbatim.
    pub tokenizer_json: Option<Vec<u8>>,
}

/// A Llama-family causal language model with f32 weights on the CPU.
///
/// One copy of the weights is kept; a tied `lm_head` shares the embedding tensor.
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) config: LlamaConfig,
    pub(crate) embed_tokens: Tensor,
    pub(crate) blocks: Vec<BlockWeights>,
    pub(crate) norm: Tensor,
    /// `None` when tied to the embedding.
    pub(crate) lm_head: Option<Tensor>,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) source: ModelSource,
}

impl Model {
    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Where the model was loaded from and in which dtype.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// Number of decoder blocks.
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// The weights of block `layer`.
    pub fn block(&self, layer: usize) -> Result<&BlockWeights> {
        self.blocks.get(layer).ok_or(ModelError::LayerOutOfRange {
            index: layer,
            count: self.blocks.len(),
        })
    }

    /// The embedding matrix `[vocab, hidden]`.
    pub fn embed_tokens(&self) -> &Tensor {
        &self.embed_tokens
    }

    /// The final RMSNorm weight `[hidden]`.
    pub fn final_norm(&self) -> &Tensor {
        &self.norm
    }

    /// The output projection `[vocab, hidden]` (the embedding when tied).
    pub fn lm_head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// Tokenizes `text` without adding special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| ModelError::Tokenizer {
                path: self.source.path.clone(),
                reason: e.to_string(),
            })
    }

    /// Decodes token ids to text (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| ModelError::Tokenizer {
                path: self.source.path.clone(),
                reason: e.to_string(),
            })
    }

    /// A linear layer's weight `[d_out, d_in]` (f32) by its Hugging Face name
    /// (`model.layers.{i}.self_attn.q_proj.weight`, … `mlp.down_proj.weight`).
    pub fn weight(&self, name: &str) -> Result<&Tensor> {
        let (layer, kind) = self.resolve(name)?;
        Ok(self.blocks[layer].weight(kind))
    }

    /// Replaces a linear layer's weight (same shape; converted to f32).
    pub fn set_weight(&mut self, name: &str, w: Tensor) -> Result<()> {
        let (layer, kind) = self.resolve(name)?;
        let old = self.blocks[layer].weight(kind);
        if old.dims() != w.dims() {
            return Err(ModelError::BadTensor {
                name: name.into(),
                reason: format!(
                    "new weight has shape {:?}, expected {:?}",
                    w.dims(),
                    old.dims()
                ),
            });
        }
        let w = w
            .to_dtype(DType::F32)
            .and_then(|w| w.contiguous())
            .ctx(|| format!("converting the new weight '{name}' to f32"))?;
        self.blocks[layer].linear[BlockWeights::idx(kind)] = w;
        Ok(())
    }

    /// Replaces a linear layer's weight from row-major f32 values.
    pub fn set_weight_f32(&mut self, name: &str, data: Vec<f32>) -> Result<()> {
        let shape = self.weight(name)?.dims().to_vec();
        if data.len() != shape.iter().product::<usize>() {
            return Err(ModelError::BadTensor {
                name: name.into(),
                reason: format!(
                    "{} values given, shape {shape:?} needs {}",
                    data.len(),
                    shape.iter().product::<usize>()
                ),
            });
        }
        let t =
            Tensor::from_vec(data, shape, &Device::Cpu).ctx(|| format!("new weight '{name}'"))?;
        self.set_weight(name, t)
    }

    /// The names of all linear layers of all blocks, in forward order.
    pub fn linear_names(&self) -> Vec<String> {
        (0..self.blocks.len())
            .flat_map(|l| LinearKind::ALL.into_iter().map(move |k| k.weight_name(l)))
            .collect()
    }

    fn resolve(&self, name: &str) -> Result<(usize, LinearKind)> {
        match LinearKind::parse_weight_name(name) {
            Some((layer, kind)) if layer < self.blocks.len() => Ok((layer, kind)),
            _ => Err(ModelError::UnknownWeight { name: name.into() }),
        }
    }
}
