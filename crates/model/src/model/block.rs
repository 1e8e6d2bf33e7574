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
        // Each captured input is copied out as soon as the forward is done with it, so
        // that at most one is held twice (as a tensor and as its copy) at a time.
        let mut caps: Vec<Activations> = Vec::new();
        let mut keep = |t: Tensor, what: &str| -> Result<()> {
            if capture {
                caps.push(Activations::from_tensor(&t, what)?);
            }
            Ok(())
        };
        let x = hidden
            .reshape((b * s, hsz))
            .ctx(|| format!("forward of block {layer}"))?;
        let lin = |t: &Tensor, k: LinearKind| linear(t, w.weight(k), w.bias(k));
        let fwd = || format!("forward of block {layer}");
        // Attention.
        let xn = norm(&x, &w.input_layernorm, spec, eps).ctx(fwd)?;
        let attn = self
            .attention(layer, w, &xn, (b, s), (&cos, &sin))
            .ctx(fwd)?;
        keep(xn, "q/k/v input")?;
        let o = lin(&attn, LinearKind::O).ctx(fwd)?;
        keep(attn, "o_proj input")?;
        // Gemma normalises each sub-layer's output too, and reads the MLP input
        // through a norm of its own.
        let (x, mlp_norm) = match &w.pre_feedforward_layernorm {
            Some(pre) if spec.sandwich_norms => {
                let o = norm(&o, &w.post_attention_layernorm, spec, eps).ctx(fwd)?;
                ((x + o).ctx(fwd)?, pre)
            }
            _ => ((x + o).ctx(fwd)?, &w.post_attention_layernorm),
        };
        // MLP. The `[tokens, intermediate]` products are the block's largest
        // activations: each is dropped as soon as the next is made.
        let xn2 = norm(&x, mlp_norm, spec, eps).ctx(fwd)?;
        let act = {
            let gate = activation(&lin(&xn2, LinearKind::Gate).ctx(fwd)?, spec).ctx(fwd)?;
            let up = lin(&xn2, LinearKind::Up).ctx(fwd)?;
            (gate * up).ctx(fwd)?
        };
        keep(xn2, "gate/up input")?;
        let down = lin(&act, LinearKind::Down).ctx(fwd)?;
        keep(act, "down_proj input")?;
        let down = match &w.post_feedforward_layernorm {
            Some(post) if spec.sandwich_norms => norm(&down, post, spec, eps).ctx(fwd)?,
            _ => down,
        };
        let out = (x + down).and_then(|o| o.reshape((b, s, hsz))).ctx(fwd)?;
        let capture = if capture {
            let mut it = caps.into_iter();
            match (it.next(), it.next(), it.next(), it.next()) {
                (Some(attn), Some(attn_out), Some(mlp), Some(mlp_act)) => Some(BlockCapture {
                    attn,
                    attn_out,
                    mlp,
                    mlp_act,
                }),
                _ => return Err(ModelError::InvalidArgument("capture missing".into())),
            }
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
        let kt = k.t()?.contiguous()?;
        let window = cfg.attention_window(layer).unwrap_or(usize::MAX);
        let mask = if s > 1 {
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
            Some(Tensor::from_vec(mask, (s, s), &Device::Cpu)?)
        } else {
            None
        };
        // One sequence at a time: the scores of every head of every sequence at once
        // are `b · heads · s²` floats (268 MB for Llama-3.2-1B at 8 × 512 tokens, and
        // the softmax holds several such), the largest transient of a block's forward.
        // Each sequence's products are their own GEMMs either way: the values are
        // the same.
        let mut outs = Vec::with_capacity(b);
        for i in 0..b {
            let scores = q.narrow(0, i, 1)?.matmul(&kt.narrow(0, i, 1)?)?;
            let scores = match spec.query_pre_attn_scalar {
                Some(a) => (scores * a.powf(-0.5))?,
                None => (scores / (hd as f64).sqrt())?,
            };
            let scores = softcap(scores, spec.attn_softcap)?;
            let scores = match &mask {
                Some(m) => scores.broadcast_add(m)?,
                None => scores,
            };
            let probs = softmax_last(&scores)?;
            drop(scores);
            outs.push(probs.matmul(&v.narrow(0, i, 1)?)?);
        }
        Tensor::cat(&outs, 0)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * s, nh * hd))
    }
}
