//! The two ends of the decoder, embedding and final norm with `lm_head`, and the full
//! forward and greedy generation built from them and the blocks.
//!
//! Both tables stay in their stored dtype: the embedding gathers rows and widens only
//! those, the head is applied in chunks of vocabulary rows, each widened to f32 only
//! while it is multiplied. Widening is exact and each logit is the same dot product as
//! with the whole f32 table, so the values are those of an f32 table.

use super::ops::{linear, norm, softcap};
use super::store::Model;
use crate::error::{CandleContext, ModelError, Result};
use candle_core::{DType, Device, Tensor};

/// Values of `lm_head` widened to f32 at once (64 MiB of f32): bounds the head's
/// transient memory whatever the vocabulary.
const HEAD_CHUNK_VALUES: usize = 16 << 20;

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
        let table = self.tables.embed()?;
        let f = || -> candle_core::Result<Tensor> {
            let idx = Tensor::from_slice(ids, ids.len(), &Device::Cpu)?;
            let e = table
                .index_select(&idx, 0)?
                .to_dtype(DType::F32)?
                .reshape((batch, seq, self.config.hidden_size))?;
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
        let head = self.tables.head()?;
        let f = || -> candle_core::Result<Tensor> {
            let (b, s, h) = hidden.dims3()?;
            let cfg = &self.config;
            let x = norm(
                &hidden.reshape((b * s, h))?,
                &self.norm,
                &cfg.block,
                cfg.rms_norm_eps,
            )?;
            let vocab = cfg.vocab_size;
            let rows = (HEAD_CHUNK_VALUES / h.max(1)).clamp(1, vocab);
            let mut parts = Vec::with_capacity(vocab.div_ceil(rows));
            for start in (0..vocab).step_by(rows) {
                let n = rows.min(vocab - start);
                let w = head.narrow(0, start, n)?.to_dtype(DType::F32)?;
                parts.push(linear(&x, &w, None)?);
            }
            let logits = match parts.len() {
                1 => parts.swap_remove(0),
                _ => Tensor::cat(&parts, 1)?,
            };
            softcap(logits, cfg.block.final_softcap)?.reshape((b, s, vocab))
        };
        f().ctx(|| "final norm and lm_head".into())
    }

    /// Full forward: logits `[batch, seq, vocab]` for `batch` sequences of
    /// `ids.len() / batch` tokens laid end to end.
    pub fn forward(&self, ids: &[u32], batch: usize) -> Result<Tensor> {
        let mut h = self.embed(ids, batch)?;
        for layer in 0..self.num_layers() {
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
