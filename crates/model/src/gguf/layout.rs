//! From llama.cpp's tensor layout to Hugging Face's: GGUF tensor names to HF names, and
//! Q/K rows un-permuted back from llama.cpp's interleaved-rope order.

use crate::arch::NormForm;
use crate::config::LlamaConfig;
use crate::error::{CandleContext, Result};
use candle_core::quantized::gguf_file::Content;
use candle_core::Tensor;
use std::path::Path;

/// GGUF name -> HF name, for the tensors of the model: the embedding, the final norm,
/// the output head unless tied, and per block its norms (two, or Gemma's four), its
/// linear weights (Phi-3's fused `attn_qkv` and `ffn_up`, gate then up, as
/// `qkv_proj` and `gate_up_proj`, which the assembler splits), whichever biases the file
/// has, and the q/k norms of Qwen3 and Gemma 3. Names are llama.cpp's
/// (`gguf-py/gguf/constants.py`, `tensor_mapping.py`).
pub(super) fn hf_names(ct: &Content, config: &LlamaConfig) -> Vec<(String, String)> {
    let mut names: Vec<(String, String)> = vec![
        (
            "token_embd.weight".into(),
            "model.embed_tokens.weight".into(),
        ),
        ("output_norm.weight".into(), "model.norm.weight".into()),
    ];
    if !config.tie_word_embeddings {
        names.push(("output.weight".into(), "lm_head.weight".into()));
    }
    let b = &config.block;
    type Names = &'static [(&'static str, &'static str)];
    let norms: Names = if b.sandwich_norms {
        &[
            ("attn_norm", "input_layernorm"),
            ("post_attention_norm", "post_attention_layernorm"),
            ("ffn_norm", "pre_feedforward_layernorm"),
            ("post_ffw_norm", "post_feedforward_layernorm"),
        ]
    } else {
        &[
            ("attn_norm", "input_layernorm"),
            ("ffn_norm", "post_attention_layernorm"),
        ]
    };
    let attn: Names = if b.fused_qkv {
        &[("attn_qkv", "self_attn.qkv_proj")]
    } else {
        &[
            ("attn_q", "self_attn.q_proj"),
            ("attn_k", "self_attn.k_proj"),
            ("attn_v", "self_attn.v_proj"),
        ]
    };
    let mlp: Names = if b.fused_gate_up {
        &[("ffn_up", "mlp.gate_up_proj")]
    } else {
        &[("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj")]
    };
    let per_block = norms
        .iter()
        .chain(attn)
        .chain(&[
            ("attn_output", "self_attn.o_proj"),
            ("ffn_down", "mlp.down_proj"),
        ])
        .chain(mlp);
    for l in 0..config.num_hidden_layers {
        for &(g, h) in per_block.clone() {
            names.push((
                format!("blk.{l}.{g}.weight"),
                format!("model.layers.{l}.{h}.weight"),
            ));
            let gb = format!("blk.{l}.{g}.bias");
            if ct.tensor_infos.contains_key(&gb) {
                names.push((gb, format!("model.layers.{l}.{h}.bias")));
            }
        }
        if b.qk_norm {
            for (g, h) in [
                ("attn_q_norm", "self_attn.q_norm"),
                ("attn_k_norm", "self_attn.k_norm"),
            ] {
                names.push((
                    format!("blk.{l}.{g}.weight"),
                    format!("model.layers.{l}.{h}.weight"),
                ));
            }
        }
    }
    names
}

/// Back to the checkpoint's own weight: llama.cpp's converter stores Gemma's norm weights
/// (every `*norm.weight`, q/k norms included) as `1 + w`, its graph multiplying by them
/// plainly; the block here applies `(1 + w)` as transformers does, so `1` is taken off.
/// In f32 `(1 + w) − 1` is exact, so `1 + ` it again gives the stored value bit for bit.
pub(super) fn norm_shift(config: &LlamaConfig, g: &str, t: Tensor) -> Result<Tensor> {
    if config.block.norm == NormForm::OnePlusWeight && g.ends_with("norm.weight") {
        (t - 1.0).ctx(|| format!("taking 1 off norm '{g}'"))
    } else {
        Ok(t)
    }
}

/// Whether GGUF tensor `g` is a Q or K weight or bias, the tensors llama.cpp permutes.
pub(super) fn is_permuted(g: &str) -> bool {
    g.ends_with("attn_q.weight")
        || g.ends_with("attn_k.weight")
        || g.ends_with("attn_q.bias")
        || g.ends_with("attn_k.bias")
}

/// Inverts llama.cpp's Q/K permutation for interleaved rope:
/// GGUF row `h·d + 2i + j` holds HF row `h·d + j·d/2 + i`.
fn unpermute(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let hd = out / n_head;
    w.reshape((n_head, hd / 2, 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))
}

/// Un-permutes the Q or K weight or bias `t` (GGUF name `g`) back to HF row order.
pub(super) fn unpermute_qk(
    path: &Path,
    config: &LlamaConfig,
    g: &str,
    t: &Tensor,
) -> Result<Tensor> {
    let heads = if g.contains("attn_q") {
        config.num_attention_heads
    } else {
        config.num_key_value_heads
    };
    if t.rank() == 1 {
        let n = t.dims()[0];
        unpermute(&t.reshape((n, 1)).ctx(|| g.to_string())?, heads).and_then(|t| t.reshape(n))
    } else {
        unpermute(t, heads)
    }
    .ctx(|| {
        format!(
            "{}: un-permuting tensor '{g}' ({heads} heads)",
            path.display()
        )
    })
}
