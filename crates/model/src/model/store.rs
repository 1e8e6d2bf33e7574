//! The model as loaded: config, tokenizer, the head in its stored dtype, and the blocks
//! as slots read from the source when used; weights read and replaced by Hugging Face
//! name.

use super::kinds::LinearKind;
use super::slots::{Blocks, LiveBlock};
use super::tables::Tables;
use crate::config::LlamaConfig;
use crate::error::{CandleContext, ModelError, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
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

/// A Llama-family causal language model on the CPU, its weights streamed from its files.
///
/// Kept in memory: the config, the tokenizer and the final norm (f32). The embedding and
/// `lm_head` are held in their stored dtype (bf16, f16 or f32; a quantized GGUF table
/// dequantized to f32) from their first use until [`Model::release_tables`]; a tied
/// `lm_head` is the embedding tensor. Each decoder block is read
/// from the files (widened to f32) when it is used and dropped when the next one is read,
/// unless it is *resident*: a block whose weights were changed with
/// [`Model::set_weight`] stays in memory until [`Model::release_block`].
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) config: LlamaConfig,
    /// Embedding and `lm_head`, stored dtype.
    pub(crate) tables: Tables,
    pub(crate) blocks: Blocks<BlockWeights>,
    /// f32.
    pub(crate) norm: Tensor,
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

    /// The f32 weights of block `layer`: the resident block, or the block read from the
    /// files (kept until another block is read; see [`Model::drop_cached_block`]).
    pub fn block(&self, layer: usize) -> Result<Arc<LiveBlock<BlockWeights>>> {
        self.blocks.get(layer)
    }

    /// Block `layer`'s tensors with their names and shapes but no weights read (each a
    /// single broadcast zero): what a checkpoint plan needs, at no memory cost.
    pub fn block_shapes(&self, layer: usize) -> Result<BlockWeights> {
        self.blocks.shapes_only(layer)
    }

    /// Drops block `layer`'s resident weights: it is read from the files again when next
    /// used. **Changes made with [`Model::set_weight`] are discarded**: write the block
    /// out first. A layer out of range does nothing.
    pub fn release_block(&mut self, layer: usize) {
        self.blocks.release(layer);
    }

    /// How many blocks are resident (changed and not yet released).
    pub fn resident_blocks(&self) -> usize {
        self.blocks.resident()
    }

    /// Drops the block kept from the last read from the files, so that no block's
    /// weights stay in memory between walks (resident blocks are kept).
    pub fn drop_cached_block(&self) {
        self.blocks.drop_cached();
    }

    /// The embedding matrix `[vocab, hidden]`, in its stored dtype: read from the files
    /// unless it is held (see [`Model::release_tables`]).
    pub fn embed_tokens(&self) -> Result<Tensor> {
        self.tables.embed()
    }

    /// The final RMSNorm weight `[hidden]` (f32).
    pub fn final_norm(&self) -> &Tensor {
        &self.norm
    }

    /// The output projection `[vocab, hidden]` (the embedding when tied), in its stored
    /// dtype: read from the files unless it is held.
    pub fn lm_head(&self) -> Result<Tensor> {
        self.tables.head()
    }

    /// Drops the embedding and `lm_head` tables from memory (tensors handed out earlier
    /// stay valid); they are read from the files again when next used. A pruning run
    /// holds them only while it embeds windows or computes logits.
    pub fn release_tables(&self) {
        self.tables.release();
    }

    /// Whether the embedding or `lm_head` table is held in memory now.
    pub fn tables_held(&self) -> bool {
        self.tables.held()
    }

    /// Tokenizes `text` without adding special tokens: the ids of one `encode` of the
    /// whole text, computed in pieces when it is long (see [`crate::tokenize`]).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        crate::tokenize::encode_long(&self.tokenizer, text).map_err(|e| ModelError::Tokenizer {
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
    /// (`model.layers.{i}.self_attn.q_proj.weight`, … `mlp.down_proj.weight`). Reads the
    /// block from the files unless it is resident or the last one read.
    pub fn weight(&self, name: &str) -> Result<Tensor> {
        let (layer, kind) = self.resolve(name)?;
        Ok(self.block(layer)?.weight(kind).clone())
    }

    /// The shape `[d_out, d_in]` of a linear layer's weight, without reading it.
    pub fn weight_shape(&self, name: &str) -> Result<Vec<usize>> {
        let (layer, kind) = self.resolve(name)?;
        Ok(self.blocks.shape(layer, BlockWeights::idx(kind))?.to_vec())
    }

    /// Replaces a linear layer's weight (same shape; converted to f32). Its block becomes
    /// resident until [`Model::release_block`].
    pub fn set_weight(&mut self, name: &str, w: Tensor) -> Result<()> {
        let (layer, kind) = self.resolve(name)?;
        let shape = self.blocks.shape(layer, BlockWeights::idx(kind))?;
        if shape != w.dims() {
            return Err(ModelError::BadTensor {
                name: name.into(),
                reason: format!("new weight has shape {:?}, expected {shape:?}", w.dims(),),
            });
        }
        let w = w
            .to_dtype(DType::F32)
            .and_then(|w| w.contiguous())
            .ctx(|| format!("converting the new weight '{name}' to f32"))?;
        self.blocks.resident_mut(layer)?.linear[BlockWeights::idx(kind)] = w;
        Ok(())
    }

    /// Replaces a linear layer's weight from row-major f32 values (block made resident
    /// as by [`Model::set_weight`]).
    pub fn set_weight_f32(&mut self, name: &str, data: Vec<f32>) -> Result<()> {
        let shape = self.weight_shape(name)?;
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
