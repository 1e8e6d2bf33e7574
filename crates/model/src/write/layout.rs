//! The tensors of a Hugging Face checkpoint of a model, by name, shape and dtype, in the
//! order transformers' `state_dict` lists them (which decides its shards), computed from
//! the config without reading any block.

use super::SaveDtype;
use crate::config::LlamaConfig;
use crate::error::Result;
use crate::model::{BlockWeights, LinearKind};
use candle_core::Tensor;
use safetensors::tensor::Dtype;
use sparseswaps_tensor_io::shards::PlannedTensor;

/// The safetensors dtype of a resolved [`SaveDtype`].
pub(crate) fn st_dtype(d: SaveDtype) -> Dtype {
    match d {
        SaveDtype::F16 => Dtype::F16,
        SaveDtype::BF16 => Dtype::BF16,
        _ => Dtype::F32,
    }
}

/// The `[d_out, d_in]` of a linear layer, from the config.
pub fn linear_shape(cfg: &LlamaConfig, kind: LinearKind) -> [usize; 2] {
    let h = cfg.hidden_size;
    let q = cfg.num_attention_heads * cfg.head_dim;
    let kv = cfg.num_key_value_heads * cfg.head_dim;
    let i = cfg.intermediate_size;
    match kind {
        LinearKind::Q => [q, h],
        LinearKind::K | LinearKind::V => [kv, h],
        LinearKind::O => [h, q],
        LinearKind::Gate | LinearKind::Up => [i, h],
        LinearKind::Down => [h, i],
    }
}

/// Block `l`'s tensors by checkpoint name, in the family's own names and layout (fused
/// matrices joined again, extra norms included): [`crate::assemble::block_tensors`], the
/// inverse of how the loader reads a block.
pub fn block_tensors(
    cfg: &LlamaConfig,
    l: usize,
    b: &BlockWeights,
) -> Result<Vec<(String, Tensor)>> {
    crate::assemble::block_tensors(cfg, l, b)
}

/// Names and shapes of block `l`'s tensors, in the order of [`block_tensors`], from a
/// template block (block 0): every supported family has the same tensors in every block,
/// so the checkpoint is planned without reading the other blocks; a block that differs
/// is refused when it is written.
pub fn block_layout(
    cfg: &LlamaConfig,
    l: usize,
    template: &BlockWeights,
) -> Result<Vec<(String, Vec<usize>)>> {
    let prefix = "model.layers.0.";
    block_tensors(cfg, 0, template).map(|v| {
        v.into_iter()
            .map(|(name, t)| {
                let rest = name.strip_prefix(prefix).unwrap_or(&name);
                (format!("model.layers.{l}.{rest}"), t.dims().to_vec())
            })
            .collect()
    })
}

/// Every tensor of the checkpoint of a model of config `cfg` (its blocks laid out as
/// `template`, block 0, is: see [`block_layout`]), written as `dtype` (resolved: not
/// [`SaveDtype::Source`]), in transformers' order of the parts: embedding, blocks, final
/// norm, `lm_head` when untied.
pub fn hf_layout(
    cfg: &LlamaConfig,
    template: Option<&BlockWeights>,
    dtype: SaveDtype,
) -> Result<Vec<PlannedTensor>> {
    let dt = st_dtype(dtype);
    let h = cfg.hidden_size;
    let mut v = vec![PlannedTensor::new(
        "model.embed_tokens.weight",
        dt,
        vec![cfg.vocab_size, h],
    )];
    if let Some(template) = template {
        for l in 0..cfg.num_hidden_layers {
            v.extend(
                block_layout(cfg, l, template)?
                    .into_iter()
                    .map(|(n, s)| PlannedTensor::new(n, dt, s)),
            );
        }
    }
    v.push(PlannedTensor::new("model.norm.weight", dt, vec![h]));
    if !cfg.tie_word_embeddings {
        v.push(PlannedTensor::new(
            "lm_head.weight",
            dt,
            vec![cfg.vocab_size, h],
        ));
    }
    Ok(v)
}
