//! The tensors of a Hugging Face checkpoint of a model, by name, shape and dtype, in the
//! order transformers' `state_dict` lists them (which decides its shards), computed from
//! the config without reading any block.

use super::SaveDtype;
use crate::config::LlamaConfig;
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

/// Names and shapes of block `l`'s tensors in transformers' order (attention q, k, v, o
/// with their biases, MLP gate, up, down, then the two norms). `bias[k]` says whether
/// linear layer `k` (in [`LinearKind::ALL`] order) has a bias.
pub fn block_layout(cfg: &LlamaConfig, l: usize, bias: [bool; 7]) -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::with_capacity(16);
    for (k, has_bias) in LinearKind::ALL.into_iter().zip(bias) {
        let [d_out, d_in] = linear_shape(cfg, k);
        v.push((k.weight_name(l), vec![d_out, d_in]));
        if has_bias {
            v.push((bias_name(l, k), vec![d_out]));
        }
    }
    for norm in ["input_layernorm", "post_attention_layernorm"] {
        v.push((
            format!("model.layers.{l}.{norm}.weight"),
            vec![cfg.hidden_size],
        ));
    }
    v
}

/// The tensors of `b` (block `l`) by name, in the order of [`block_layout`].
pub fn block_tensors(l: usize, b: &BlockWeights) -> Vec<(String, &Tensor)> {
    let mut v = Vec::with_capacity(16);
    for k in LinearKind::ALL {
        v.push((k.weight_name(l), b.weight(k)));
        if let Some(bias) = b.bias(k) {
            v.push((bias_name(l, k), bias));
        }
    }
    v.push((
        format!("model.layers.{l}.input_layernorm.weight"),
        &b.input_layernorm,
    ));
    v.push((
        format!("model.layers.{l}.post_attention_layernorm.weight"),
        &b.post_attention_layernorm,
    ));
    v
}

fn bias_name(l: usize, k: LinearKind) -> String {
    format!("model.layers.{l}.{}.bias", k.module())
}

/// Which linear layers of `b` have a bias, in [`LinearKind::ALL`] order.
pub fn biases_of(b: &BlockWeights) -> [bool; 7] {
    LinearKind::ALL.map(|k| b.bias(k).is_some())
}

/// Every tensor of the checkpoint of a model of config `cfg` (its blocks' biases as
/// `bias` says), written as `dtype` (resolved: not [`SaveDtype::Source`]), in
/// transformers' order: embedding, blocks, final norm, `lm_head` when untied.
pub fn hf_layout(cfg: &LlamaConfig, bias: [bool; 7], dtype: SaveDtype) -> Vec<PlannedTensor> {
    let dt = st_dtype(dtype);
    let h = cfg.hidden_size;
    let mut v = vec![PlannedTensor::new(
        "model.embed_tokens.weight",
        dt,
        vec![cfg.vocab_size, h],
    )];
    for l in 0..cfg.num_hidden_layers {
        v.extend(
            block_layout(cfg, l, bias)
                .into_iter()
                .map(|(n, s)| PlannedTensor::new(n, dt, s)),
        );
    }
    v.push(PlannedTensor::new("model.norm.weight", dt, vec![h]));
    if !cfg.tie_word_embeddings {
        v.push(PlannedTensor::new(
            "lm_head.weight",
            dt,
            vec![cfg.vocab_size, h],
        ));
    }
    v
}
