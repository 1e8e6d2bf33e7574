//! The forward of one decoder block, optionally capturing the input of each of its
//! linear layers.

use super::capture::{Activations, BlockCapture};
use super::kinds::LinearKind;
use super::ops::{activation, heads, linear, norm, repeat_kv, softcap, softmax_last};
use super::store::{BlockWeights, Model};
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
        let live = self.block(layer)?;
        let w: &super::store::BlockWeights = &live;
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
        let (cos, sin) = rope::layer_tables(cfg, layer, s, &Device::Cpu)?;
        let spec = &cfg.block;
        let eps = cfg.rms_norm_eps;
        let mut caps: Vec<Tensor> = Vec::new();
        let mut f = || -> candle_core::Result<Tensor> {
            let x = hidden.reshape((b * s, hsz))?;
            let lin = |t: &Tensor, k: LinearKind| linear(t, w.weight(k), w.bias(k));
            // Attention.
            let xn = norm(&x, &w.input_layernorm, spec, eps)?;
            let attn = self.attention(layer, w, &xn, (b, s), (&cos, &sin))?;
            let o = lin(&attn, LinearKind::O)?;
            // Gemma normalises each sub-layer's output too, and reads the MLP input
            // through a norm of its own.
            let (x, mlp_norm) = match &w.pre_feedforward_layernorm {
                Some(pre) if spec.sandwich_norms => {
                    let o = norm(&o, &w.post_attention_layernorm, spec, eps)?;
                    ((x + o)?, pre)
                }
                _ => ((x + o)?, &w.post_attention_layernorm),
            };
            // MLP.
            let xn2 = norm(&x, mlp_norm, spec, eps)?;
            let gate = lin(&xn2, LinearKind::Gate)?;
            let up = lin(&xn2, LinearKind::Up)?;
            let act = (activation(&gate, spec)? * up)?;
            let down = lin(&act, LinearKind::Down)?;
            let down = match &w.post_feedforward_layernorm {
                Some(post) if spec.sandwich_norms => norm(&down, post, spec, eps)?,
                _ => down,
            };
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

    /// Self-attention of block `layer` on its normed input `xn` `[b · s, hidden]`:
    /// the heads' outputs `[b · s, heads · head_dim]`, the input of `o_proj`.
    fn attention(
        &self,
        layer: usize,
        w: &BlockWeights,
        xn: &Tensor,
        (b, s): (usize, usize),
        (cos, sin): (&Tensor, &Tensor),
    ) -> candle_core::Result<Tensor> {
        let cfg = &self.config;
        let spec = &cfg.block;
        let (nh, nkv, hd) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let lin = |t: &Tensor, k: LinearKind| linear(t, w.weight(k), w.bias(k));
        let mut q = heads(&lin(xn, LinearKind::Q)?, b, s, nh, hd)?;
        let mut k = heads(&lin(xn, LinearKind::K)?, b, s, nkv, hd)?;
        let v = heads(&lin(xn, LinearKind::V)?, b, s, nkv, hd)?;
        if let (Some(qn), Some(kn)) = (&w.q_norm, &w.k_norm) {
            q = norm(&q, qn, spec, cfg.rms_norm_eps)?;
            k = norm(&k, kn, spec, cfg.rms_norm_eps)?;
        }
        let q = rope::apply(&q, cos, sin)?;
        let k = rope::apply(&k, cos, sin)?;
        let k = repeat_kv(k, nh / nkv)?;
        let v = repeat_kv(v, nh / nkv)?;
        let scores = q.matmul(&k.t()?.contiguous()?)?;
        let scores = match spec.query_pre_attn_scalar {
            Some(a) => (scores * a.powf(-0.5))?,
            None => (scores / (hd as f64).sqrt())?,
        };
        let scores = softcap(scores, spec.attn_softcap)?;
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
        probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * s, nh * hd))
    }
}
