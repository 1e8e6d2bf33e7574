//! The GGUF architectures read, and what each one's metadata says about the shared block,
//! by llama.cpp's conventions (`convert_hf_to_gguf.py` writes the keys, `llama-model.cpp`
//! supplies the defaults of those it leaves out):
//!
//! - `llama`, `qwen2`, `qwen3`: the Llama block (Qwen3 with per-head q/k norms); a
//!   sliding window is refused (see [`refuse_sliding_window`]).
//! - `gemma2`: Gemma's block ([`gemma_block`]); `gemma2.attn_logit_softcapping` (50
//!   when absent) and `gemma2.final_logit_softcapping` (30); the window
//!   `gemma2.attention.sliding_window` in the even blocks (llama.cpp's pattern 2).
//! - `gemma3`: Gemma's block with q/k norms; `gemma3.final_logit_softcapping` when
//!   present (the converter writes it only when set; applied as transformers does, where
//!   llama.cpp's sliding-window graph skips it), no attention soft-capping; the window
//!   in all blocks but every sixth (pattern 6), which rotate with base 10 000 unscaled
//!   while the others use `gemma3.rope.freq_base` and its scaling. No window key (or 0):
//!   no window, as llama.cpp reads it.
//! - `phi3`: the Llama block with `attn_qkv` and `ffn_up` (gate then up) fused;
//!   `phi3.attention.sliding_window` (0: none) in every block, as transformers' Phi-3
//!   applies it (llama.cpp's own graph disables Phi-3's window; the file came from
//!   transformers, whose forward is the one matched); long-rope factor tensors refused.
//!
//! llama.cpp does not record Gemma's `query_pre_attn_scalar`: it implies `head_dim`, or
//! `hidden / heads` for the 27B models (46 blocks for Gemma 2, 62 for Gemma 3). Where a
//! file says otherwise with llama.cpp's general keys, they win: `{arch}.attention.scale`
//! (the factor on `q·k`, so the scalar is `scale^-2`),
//! `{arch}.attention.sliding_window_pattern` (one bool per block, or a period `n`:
//! block `i` slides when `i mod n < n − 1`) and `{arch}.rope.freq_base_swa`. llama.cpp's
//! own Gemma loaders ignore these keys, so it runs such a file with its implied values;
//! they let a file say exactly what a Hugging Face config says (the tests' fixtures use
//! them).

use super::meta::{gguf_err, Meta};
use crate::arch::{Activation, NormForm, RopeParams};
use crate::config::{Architecture, BlockSpec};
use crate::error::{ModelError, Result};
use crate::window::SlidingWindow;
use candle_core::quantized::gguf_file::{Content, Value};

/// `general.architecture` names read, their family, and whether llama.cpp stores Q and
/// K permuted for its interleaved rope (only `llama`; the others rotate halves as HF).
const ARCHS: [(&str, Architecture, bool); 6] = [
    ("llama", Architecture::Llama, true),
    ("qwen2", Architecture::Qwen2, false),
    ("qwen3", Architecture::Qwen3, false),
    ("gemma2", Architecture::Gemma2, false),
    ("gemma3", Architecture::Gemma3, false),
    ("phi3", Architecture::Phi3, false),
];

/// The architecture named by `general.architecture`, with its metadata key prefix and
/// whether its Q and K are stored permuted; an unknown one is refused, naming those read.
pub(super) fn architecture<'a>(m: &Meta<'a>) -> Result<(&'a str, Architecture, bool)> {
    let name = m.opt_str("general.architecture").unwrap_or("");
    match ARCHS.iter().find(|(n, _, _)| *n == name) {
        Some(&(_, arch, permuted)) => Ok((name, arch, permuted)),
        None => Err(ModelError::Unsupported {
            path: m.path.into(),
            what: format!(
                "GGUF architecture '{name}' (supported: {})",
                ARCHS.map(|(n, _, _)| n).join(", ")
            ),
        }),
    }
}

/// The sizes the family rules need.
pub(super) struct Dims {
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub head_dim: usize,
    pub num_layers: usize,
    /// Tensors in the file: bounds the block count before per-block lists are sized.
    pub tensors: usize,
}

/// The block options and sliding window of architecture `arch` (metadata prefix `a`).
pub(super) fn block_and_window(
    m: &Meta<'_>,
    ct: &Content,
    a: &str,
    arch: Architecture,
    d: &Dims,
) -> Result<(BlockSpec, Option<SlidingWindow>)> {
    // The families with per-block lists here (windows): bounded before they are sized.
    let listed = matches!(
        arch,
        Architecture::Gemma2 | Architecture::Gemma3 | Architecture::Phi3
    );
    if listed && d.num_layers > d.tensors {
        return Err(gguf_err(
            m.path,
            format!(
                "{a}.block_count = {} is more than the file's {} tensors",
                d.num_layers, d.tensors
            ),
        ));
    }
    match arch {
        Architecture::Gemma2 => {
            let block = BlockSpec {
                attn_softcap: Some(
                    m.opt_f64(&format!("{a}.attn_logit_softcapping"))?
                        .unwrap_or(50.0),
                ),
                final_softcap: Some(
                    m.opt_f64(&format!("{a}.final_logit_softcapping"))?
                        .unwrap_or(30.0),
                ),
                ..gemma_block(m, a, d, false, 46)?
            };
            Ok((block, window(m, a, d.num_layers, 2)?))
        }
        Architecture::Gemma3 => {
            let local = RopeParams {
                theta: m
                    .opt_f64(&format!("{a}.rope.freq_base_swa"))?
                    .unwrap_or(10_000.0),
                scaling: None,
            };
            let block = BlockSpec {
                final_softcap: m.opt_f64(&format!("{a}.final_logit_softcapping"))?,
                local_rope: Some(local),
                ..gemma_block(m, a, d, true, 62)?
            };
            Ok((block, window(m, a, d.num_layers, 6)?))
        }
        Architecture::Phi3 => {
            for t in ["rope_factors_long.weight", "rope_factors_short.weight"] {
                if ct.tensor_infos.contains_key(t) {
                    return Err(ModelError::Unsupported {
                        path: m.path.into(),
                        what: format!("tensor '{t}' (Phi-3 long-context rope factors)"),
                    });
                }
            }
            let block = BlockSpec {
                fused_qkv: true,
                fused_gate_up: true,
                ..BlockSpec::default()
            };
            let window = window_size(m, a)?.map(|size| SlidingWindow {
                size,
                layers: vec![true; d.num_layers],
            });
            Ok((block, window))
        }
        _ => {
            refuse_sliding_window(m, a)?;
            // Qwen3 departs from the Llama block by its per-head q/k norms.
            let block = BlockSpec {
                qk_norm: arch == Architecture::Qwen3,
                ..BlockSpec::default()
            };
            Ok((block, None))
        }
    }
}

/// Gemma's block: `(1 + w)` norms (the file holds `1 + w`, see
/// [`super::layout::norm_shift`]), four norms per block, GeGLU, embeddings times
/// `√hidden`, and the attention scalar (see the module docs; `big_layers` is the block
/// count of the 27B model).
fn gemma_block(
    m: &Meta<'_>,
    a: &str,
    d: &Dims,
    qk_norm: bool,
    big_layers: usize,
) -> Result<BlockSpec> {
    let key = format!("{a}.attention.scale");
    let scalar = match m.opt_f64(&key)? {
        Some(s) if s > 0.0 && s.is_finite() => {
            // Stored as f32: an integer scalar comes back within rounding of itself.
            let q = 1.0 / (s * s);
            if (q - q.round()).abs() <= 1e-4 * q {
                q.round()
            } else {
                q
            }
        }
        Some(s) => {
            return Err(gguf_err(
                m.path,
                format!("metadata '{key}' = {s} is not a positive number"),
            ))
        }
        None if d.num_layers == big_layers => (d.hidden_size / d.num_attention_heads.max(1)) as f64,
        None => d.head_dim as f64,
    };
    Ok(BlockSpec {
        norm: NormForm::OnePlusWeight,
        sandwich_norms: true,
        activation: Activation::GeluTanh,
        qk_norm,
        embed_scale: Some((d.hidden_size as f64).sqrt()),
        query_pre_attn_scalar: Some(scalar),
        ..BlockSpec::default()
    })
}

/// `{a}.attention.sliding_window`, `None` when absent or 0.
fn window_size(m: &Meta<'_>, a: &str) -> Result<Option<usize>> {
    let key = format!("{a}.attention.sliding_window");
    Ok(match m.get(&key) {
        None => None,
        Some(_) => Some(m.usize(&key)?).filter(|&w| w > 0),
    })
}

/// The window and the blocks using it: `{a}.attention.sliding_window_pattern` when
/// present, else llama.cpp's period `period` for the architecture.
fn window(m: &Meta<'_>, a: &str, n: usize, period: usize) -> Result<Option<SlidingWindow>> {
    let Some(size) = window_size(m, a)? else {
        return Ok(None);
    };
    let key = format!("{a}.attention.sliding_window_pattern");
    let by_period = |p: usize| {
        (0..n)
            .map(|i| p == 0 || i % p < p - 1)
            .collect::<Vec<bool>>()
    };
    let layers = match m.get(&key) {
        None => by_period(period),
        Some(Value::Array(v)) => {
            if v.len() != n {
                return Err(gguf_err(
                    m.path,
                    format!(
                        "metadata '{key}' has {} entries, {a}.block_count is {n}",
                        v.len()
                    ),
                ));
            }
            v.iter()
                .map(|x| match x {
                    Value::Bool(b) => Ok(*b),
                    other => Err(gguf_err(
                        m.path,
                        format!("metadata '{key}' has a non-bool element {other:?}"),
                    )),
                })
                .collect::<Result<Vec<bool>>>()?
        }
        Some(_) => by_period(m.usize(&key)?),
    };
    Ok(layers
        .iter()
        .any(|&s| s)
        .then_some(SlidingWindow { size, layers }))
}

/// `{a}.attention.sliding_window` in a `llama`, `qwen2` or `qwen3` file: llama.cpp's
/// graphs for them do not read it, while the transformers model the file came from may
/// window some blocks (which, the file does not say the way transformers does): no single
/// exact forward, so a window is refused (0, llama.cpp's "no window", is accepted).
fn refuse_sliding_window(m: &Meta<'_>, a: &str) -> Result<()> {
    let key = format!("{a}.attention.sliding_window");
    match m.opt_f64(&key)? {
        Some(w) if w != 0.0 => Err(ModelError::Unsupported {
            path: m.path.into(),
            what: format!(
                "sliding-window attention in GGUF ({key} = {w}); load the model's Hugging Face \
                 directory instead, whose config.json says which blocks use the window"
            ),
        }),
        _ => Ok(()),
    }
}
