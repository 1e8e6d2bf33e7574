//! GGUF metadata (`{arch}.*`, `tokenizer.ggml.*` ids) to a Hugging Face style
//! [`LlamaConfig`], refusing what the decoder does not implement.

use super::family;
use super::meta::{gguf_err, Meta};
use crate::config::{LlamaConfig, RopeScaling};
use crate::error::{ModelError, Result};
use candle_core::quantized::gguf_file::Content;
use std::path::Path;

/// The model's configuration from the metadata and tensor list of `ct`, and whether Q
/// and K are stored permuted (llama.cpp's interleaved-rope layout) and must be
/// un-permuted to Hugging Face layout.
pub(super) fn config_from_meta(m: &Meta<'_>, ct: &Content) -> Result<(LlamaConfig, bool)> {
    let path = m.path;
    let (a, architecture, permuted) = family::architecture(m)?;
    let hidden_size = m.usize(&format!("{a}.embedding_length"))?;
    let num_attention_heads = m.usize(&format!("{a}.attention.head_count"))?;
    let num_key_value_heads = match m.get(&format!("{a}.attention.head_count_kv")) {
        Some(_) => m.usize(&format!("{a}.attention.head_count_kv"))?,
        None => num_attention_heads,
    };
    let head_dim = match m.get(&format!("{a}.attention.key_length")) {
        Some(_) => m.usize(&format!("{a}.attention.key_length"))?,
        None => hidden_size / num_attention_heads.max(1),
    };
    if let Some(rd) = m.opt_f64(&format!("{a}.rope.dimension_count"))? {
        if rd as usize != head_dim {
            return Err(ModelError::Unsupported {
                path: path.into(),
                what: format!("partial rotary embedding ({a}.rope.dimension_count = {rd}, head_dim = {head_dim})"),
            });
        }
    }
    if ct.tensor_infos.contains_key("rope_freqs.weight") {
        return Err(ModelError::Unsupported {
            path: path.into(),
            what: "tensor 'rope_freqs.weight' (per-frequency rope factors)".into(),
        });
    }
    let max_position_embeddings = match m.get(&format!("{a}.context_length")) {
        Some(_) => m.usize(&format!("{a}.context_length"))?,
        None => 2048,
    };
    let rope_scaling = rope_scaling(m, a)?;
    let tok_embd =
        ct.tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| ModelError::MissingTensor {
                path: path.into(),
                name: "token_embd.weight".into(),
            })?;
    let vocab_size = tok_embd.shape.dims().first().copied().unwrap_or(0);
    let tie = !ct.tensor_infos.contains_key("output.weight");
    let num_hidden_layers = m.usize(&format!("{a}.block_count"))?;
    let dims = family::Dims {
        hidden_size,
        num_attention_heads,
        head_dim,
        num_layers: num_hidden_layers,
        tensors: ct.tensor_infos.len(),
    };
    let (block, sliding_window) = family::block_and_window(m, ct, a, architecture, &dims)?;
    let config = LlamaConfig {
        architecture,
        hidden_size,
        intermediate_size: m.usize(&format!("{a}.feed_forward_length"))?,
        num_attention_heads,
        num_key_value_heads,
        num_hidden_layers,
        head_dim,
        rms_norm_eps: m
            .opt_f64(&format!("{a}.attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5),
        rope_theta: m
            .opt_f64(&format!("{a}.rope.freq_base"))?
            .unwrap_or(10000.0),
        rope_scaling,
        vocab_size,
        max_position_embeddings,
        tie_word_embeddings: tie,
        bos_token_id: m.opt_u32("tokenizer.ggml.bos_token_id")?,
        eos_token_id: m
            .opt_u32("tokenizer.ggml.eos_token_id")?
            .into_iter()
            .collect(),
        sliding_window,
        block,
    };
    config.validate(path)?;
    check_block_count(path, ct, a, &config)?;
    Ok((config, permuted))
}

/// `{a}.rope.scaling.*`: none or linear.
fn rope_scaling(m: &Meta<'_>, a: &str) -> Result<Option<RopeScaling>> {
    let path = m.path;
    Ok(match m.opt_str(&format!("{a}.rope.scaling.type")) {
        None | Some("none") => None,
        Some("linear") => Some(RopeScaling::Linear {
            factor: m
                .opt_f64(&format!("{a}.rope.scaling.factor"))?
                .unwrap_or(1.0),
        }),
        Some(other) => {
            return Err(ModelError::Unsupported {
                path: path.into(),
                what: format!("GGUF rope scaling type '{other}'"),
            })
        }
    })
}

/// Every block has at least 9 tensors (6 with fused q/k/v and gate/up): refuses a block
/// count the file cannot back before a name list is sized by it.
fn check_block_count(path: &Path, ct: &Content, a: &str, config: &LlamaConfig) -> Result<()> {
    let per_block = if config.block.fused_qkv { 6 } else { 9 };
    let min_tensors = config
        .num_hidden_layers
        .saturating_mul(per_block)
        .saturating_add(2);
    if min_tensors > ct.tensor_infos.len() {
        return Err(gguf_err(
            path,
            format!(
                "{a}.block_count = {} needs at least {min_tensors} tensors, the file has {}",
                config.num_hidden_layers,
                ct.tensor_infos.len()
            ),
        ));
    }
    Ok(())
}
