//! The two ends of the decoder, embedding and final norm with `lm_head`, and the full
//! forward and greedy generation built from them and the blocks.

use super::ops::{linear, norm, softcap};
use super::store::Model;
use crate::error::{CandleContext, ModelError, Result};
use candle_core::{Device, Tensor};

impl Model {
    /// Embeds `ids`, `batch` sequences of `ids.len() / batch` tokens laid end to end:
    /// hidden states `[batch, seq, hidden]`, f32.
    pub fn embed(&self, ids: &[u32], batch: usize) -> Result<Tensor> {
        if batch == 0 || ids.is_empty() || ids.len() % batch != 0 {
            return Err(ModelError::InvalidArgument(format!(
                "embed: {} token ids do not split into {batch} sequences of equal length",
                ids.len()
            )));
        }
        let vocab = self.config.vocab_size;
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            return Err(ModelError::InvalidArgument(format!(
                "embed: token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let seq = ids.len() / batch;
        let f = || -> candle_core::Result<Tensor> {
            let idx = Tensor::from_slice(ids, ids.len(), &Device::Cpu)?;
            let e = self.embed_tokens.index_select(&idx, 0)?.reshape((
                batch,
                seq,
                self.config.hidden_size,
            ))?;
            match self.config.block.embed_scale {
                // Gemma: times √hidden rounded to f32, as transformers multiplies.
                Some(scale) => e * f64::from(scale as f32),
                None => Ok(e),
            }
        };
        f().ctx(|| "embedding tokens".into())
    }

    /// Final RMSNorm and `lm_head`: logits `[batch, seq, vocab]` from the last block's
    /// output `[batch, seq, hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let f = || -> candle_core::Result<Tensor> {
            let (b, s, h) = hidden.dims3()?;
            let cfg = &self.config;
            let x = norm(
                &hidden.reshape((b * s, h))?,
                &self.norm,
                &cfg.block,
                cfg.rms_norm_eps,
            )?;
            let logits = linear(&x, self.lm_head(), None)?;
            softcap(logits, cfg.block.final_softcap)?.reshape((b, s, cfg.vocab_size))
        };
        f().ctx(|| "final norm and lm_head".into())
    }

    /// Full forward: logits `[batch, seq, vocab]` for `batch` sequences of
    /// `ids.len() / batch` tokens laid end to end.
    pub fn forward(&self, ids: &[u32], batch: usize) -> Result<Tensor> {
        let mut h = self.embed(ids, batch)?;
        for layer in 0..self.blocks.len() {
            h = self.block_forward(layer, &h)?;
        }
        self.logits(&h)
    }

    /// Greedy continuation: `max_new` tokens appended to `prompt` one at a time (no
    /// KV cache: each step reruns the whole sequence; meant for short checks).
    pub fn generate_greedy(&self, prompt: &[u32], max_new: usize) -> Result<Vec<u32>> {
        let mut ids = prompt.to_vec();
        let mut out = Vec::with_capacity(max_new);
        for _ in 0..max_new {
            let logits = self.forward(&ids, 1)?;
            let n = ids.len();
            let next = logits
                .narrow(1, n - 1, 1)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.argmax(0))
                .and_then(|t| t.to_scalar::<u32>())
                .ctx(|| "greedy step".into())?;
            ids.push(next);
            out.push(next);
        }
        Ok(out)
    }
}
