//! Rotary position embeddings in the Hugging Face "rotate half" convention: the first
//! and second halves of each head are the two coordinates of each rotated pair.

use crate::arch::RopeParams;
use crate::config::{LlamaConfig, RopeScaling};
use crate::error::{CandleContext, Result};
use candle_core::{Device, Tensor};

/// The inverse frequencies `1 / theta^(2i / d)` of one head, scaled as the config says,
/// for a sequence of `seq_len` positions (dynamic NTK depends on it).
pub fn inv_freq(cfg: &LlamaConfig, seq_len: usize) -> Vec<f64> {
    inv_freq_of(cfg, cfg.rope_theta, cfg.rope_scaling.as_ref(), seq_len)
}

/// [`inv_freq`] with the base `theta` and scaling `scaling` in place of the config's.
fn inv_freq_of(
    cfg: &LlamaConfig,
    theta: f64,
    scaling: Option<&RopeScaling>,
    seq_len: usize,
) -> Vec<f64> {
    let d = cfg.head_dim;
    let mut base = theta;
    if let Some(&RopeScaling::Dynamic { factor }) = scaling {
        // transformers' `_compute_dynamic_ntk_parameters`: the base grows only once the
        // sequence is longer than the trained context.
        let max_pos = cfg.max_position_embeddings as f64;
        let s = (seq_len as f64).max(max_pos);
        base *= ((factor * s / max_pos) - (factor - 1.0)).powf(d as f64 / (d as f64 - 2.0));
    }
    let plain = (0..d / 2).map(|i| 1.0 / base.powf((2 * i) as f64 / d as f64));
    match scaling.cloned() {
        None | Some(RopeScaling::Dynamic { .. }) => plain.collect(),
        Some(RopeScaling::Linear { factor }) => plain.map(|f| f / factor).collect(),
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => {
            // transformers' `_compute_llama3_parameters`.
            let old = original_max_position_embeddings as f64;
            let low_wavelen = old / low_freq_factor;
            let high_wavelen = old / high_freq_factor;
            plain
                .map(|f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
    }
}

/// `cos` and `sin` tables `[seq_len, head_dim]` (each half repeated, as HF does), f32.
pub fn tables(cfg: &LlamaConfig, seq_len: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    tables_of(cfg, &inv_freq(cfg, seq_len), seq_len, device)
}

/// [`tables`] for block `layer`: a sliding-window block of a family with a rotary base
/// of its own for them (Gemma 3's local base) uses that one.
pub fn layer_tables(
    cfg: &LlamaConfig,
    layer: usize,
    seq_len: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    match (&cfg.block.local_rope, cfg.attention_window(layer)) {
        (Some(RopeParams { theta, scaling }), Some(_)) => {
            let inv = inv_freq_of(cfg, *theta, scaling.as_ref(), seq_len);
            tables_of(cfg, &inv, seq_len, device)
        }
        _ => tables(cfg, seq_len, device),
    }
}

fn tables_of(
    cfg: &LlamaConfig,
    inv: &[f64],
    seq_len: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let d = cfg.head_dim;
    let mut cos = Vec::with_capacity(seq_len * d);
    let mut sin = Vec::with_capacity(seq_len * d);
    for p in 0..seq_len {
        // Angles in f64: exact enough at any position; stored as f32 like the activations.
        for _half in 0..2 {
            for f in inv {
                let a = p as f64 * f;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
    }
    let cos = Tensor::from_vec(cos, (seq_len, d), device).ctx(|| "rope cos table".into())?;
    let sin = Tensor::from_vec(sin, (seq_len, d), device).ctx(|| "rope sin table".into())?;
    Ok((cos, sin))
}

/// Applies the rotation to `x` `[batch, heads, seq, head_dim]`:
/// `x * cos + rotate_half(x) * sin`, `rotate_half([a, b]) = [-b, a]`.
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let f = || -> candle_core::Result<Tensor> {
        let d = x.dim(3)?;
        let a = x.narrow(3, 0, d / 2)?;
        let b = x.narrow(3, d / 2, d / 2)?;
        let rot = Tensor::cat(&[&b.neg()?, &a], 3)?;
        x.broadcast_mul(cos)?.add(&rot.broadcast_mul(sin)?)
    };
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Architecture;

    fn cfg(scaling: Option<RopeScaling>) -> LlamaConfig {
        LlamaConfig {
            architecture: Architecture::Llama,
            hidden_size: 128,
            intermediate_size: 256,
            num_attention_heads: 1,
            num_key_value_heads: 1,
            num_hidden_layers: 1,
            head_dim: 128,
            rms_norm_eps: 1e-5,
            rope_theta: 500000.0,
            rope_scaling: scaling,
            vocab_size: 10,
            max_position_embeddings: 8192,
            tie_word_embeddings: true,
            bos_token_id: None,
            eos_token_id: vec![],
            sliding_window: None,
            block: Default::default(),
        }
    }

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let plain = inv_freq(&cfg(None), 16);
        let s = inv_freq(
            &cfg(Some(RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192,
            })),
            16,
        );
        assert_eq!(s[0], plain[0]);
        assert!((s[63] - plain[63] / 8.0).abs() < 1e-18);
        let lin = inv_freq(&cfg(Some(RopeScaling::Linear { factor: 2.0 })), 16);
        assert!((lin[5] - plain[5] / 2.0).abs() < 1e-15);
        // Dynamic NTK changes nothing within the trained context.
        let dy = inv_freq(&cfg(Some(RopeScaling::Dynamic { factor: 2.0 })), 16);
        assert!((dy[5] - plain[5]).abs() < 1e-15);
        let dy = inv_freq(&cfg(Some(RopeScaling::Dynamic { factor: 2.0 })), 3 * 8192);
        assert!(dy[5] < plain[5]);
    }
}
