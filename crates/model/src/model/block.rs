//! The forward of one decoder block, optionally capturing the input of each of its
//! linear layers.

use super::capture::{Activations, BlockCapture};
use super::kinds::LinearKind;
use super::ops::{heads, linear, repeat_kv, rms_norm, softmax_last};
use super::store::Model;
use crate::error::{CandleContext, ModelError, Result};
use crate::rope;
use candle_core::{Device, Tensor};

impl Model {
    /// Runs decoder block `layer` on `hidden` `[batch, seq, hidden]` (positions
    /// `0..seq` in every sequence, causal attention, limited to the block's sliding
    /// window if it has one): the block's output, same shape.
    pub fn block_forward(&self, layer: usize, hidden: &Tensor) -> Result<Tensor> {
        self.block_impl(layer, hidden, false).map(|(h, _)| h)
    }

    /// Like [`Model::block_forward`], and also returns the input of every linear layer
    /// of the block as `[batch · seq, d_in]` f32 matrices (rows in batch-major order).
    pub fn block_forward_capture(
        &self,
        layer: usize,
        hidden: &Tensor,
    ) -> Result<(Tensor, BlockCapture)> {
        let (h, c) = self.block_impl(layer, hidden, true)?;
        match c {
            Some(c) => Ok((h, c)),
            None => Err(ModelError::InvalidArgument("capture missing".into())),
        }
    }

    fn block_impl(
        &self,
        layer: usize,
        hidden: &Tensor,
        capture: bool,
    ) -> Result<(Tensor, Option<BlockCapture>)> {
        let w = self.block(layer)?;
        let cfg = &self.config;
        let (b, s, hsz) = hidden
            .dims3()
            .ctx(|| format!("block {layer}: hidden states must be [batch, seq, hidden]"))?;
        if hsz != cfg.hidden_size {
            return Err(ModelError::InvalidArgument(format!(
                "block {layer}: hidden states have width {hsz}, the model {}",
                cfg.hidden_size
            )));
        }
        let (cos, sin) = rope::tables(cfg, s, &Device::Cpu)?;
        let (nh, nkv, hd) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let mut caps: Vec<Tensor> = Vec::new();
        let mut f = || -> candle_core::Result<Tensor> {
            let x = hidden.reshape((b * s, hsz))?;
            // Attention.
            let xn = rms_norm(&x, &w.input_layernorm, cfg.rms_norm_eps)?;
            let lin = |t: &Tensor, k: LinearKind| linear(t, w.weight(k), w.bias(k));
            let q = heads(&lin(&xn, LinearKind::Q)?, b, s, nh, hd)?;
            let k = heads(&lin(&xn, LinearKind::K)?, b, s, nkv, hd)?;
            let v = heads(&lin(&xn, LinearKind::V)?, b, s, nkv, hd)?;
            let q = rope::apply(&q, &cos, &sin)?;
            let k = rope::apply(&k, &cos, &sin)?;
            let k = repeat_kv(k, nh / nkv)?;
            let v = repeat_kv(v, nh / nkv)?;
            let scores = (q.matmul(&k.t()?.contiguous()?)? / (hd as f64).sqrt())?;
            let window = cfg.attention_window(layer).unwrap_or(usize::MAX);
            let scores = if s > 1 {
                let mask: Vec<f32> = (0..s * s)
                    .map(|i| {
                        // Query i / s sees key i % s: causal, and within the window.
                        let (q, k) = (i / s, i % s);
                        if k > q || q - k >= window {
                            f32::NEG_INFINITY
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let mask = Tensor::from_vec(mask, (s, s), &Device::Cpu)?;
                scores.broadcast_add(&mask)?
            } else {
                scores
            };
            let probs = softmax_last(&scores)?;
            let attn = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * s, nh * hd))?;
            let o = lin(&attn, LinearKind::O)?;
            let x = (x + o)?;
            // MLP.
            let xn2 = rms_norm(&x, &w.post_attention_layernorm, cfg.rms_norm_eps)?;
            let gate = lin(&xn2, LinearKind::Gate)?;
            let up = lin(&xn2, LinearKind::Up)?;
            let act = (gate.silu()? * up)?;
            let down = lin(&act, LinearKind::Down)?;
            let out = (x + down)?.reshape((b, s, hsz))?;
            if capture {
                caps = vec![xn, attn, xn2, act];
            }
            Ok(out)
        };
        let out = f().ctx(|| format!("forward of block {layer}"))?;
        let capture = if capture {
            Some(BlockCapture {
                attn: Activations::from_tensor(&caps[0], "q/k/v input")?,
                attn_out: Activations::from_tensor(&caps[1], "o_proj input")?,
                mlp: Activations::from_tensor(&caps[2], "gate/up input")?,
                mlp_act: Activations::from_tensor(&caps[3], "down_proj input")?,
            })
        } else {
            None
        };
        Ok((out, capture))
    }
}
