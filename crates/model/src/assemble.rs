//! Model weights from tensors by Hugging Face name: the one place both loaders (HF
//! directories and GGUF files) check shapes against the config and build the blocks.

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::model::{BlockWeights, LinearKind};
use candle_core::Tensor;
use std::path::Path;

/// Where assembly takes its tensors from, by Hugging Face name: f32 for a block; the
/// head's may come in their stored dtype (bf16, f16).
///
/// The seam between reading and building: the streaming loader (`crate::source`) reads a
/// block's tensors only when [`assemble_block`] asks for them.
pub(crate) trait TensorSource {
    /// The file or directory the tensors come from, for error messages.
    fn root(&self) -> &Path;
    /// Whether a tensor of this name exists.
    fn has(&self, name: &str) -> bool;
    /// The tensor of this name, `None` when there is none. A source may hand each tensor
    /// out once.
    fn fetch(&mut self, name: &str) -> Result<Option<Tensor>>;

    /// Takes a tensor and checks its shape.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.fetch(name)?.ok_or_else(|| ModelError::MissingTensor {
            path: self.root().into(),
            name: name.into(),
        })?;
        check_shape(self.root(), name, &t, shape)?;
        Ok(t)
    }

    /// Takes an optional tensor (a bias) and checks its shape.
    fn take_opt(&mut self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        if self.has(name) {
            self.take(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }
}

fn check_shape(root: &Path, name: &str, t: &Tensor, shape: &[usize]) -> Result<()> {
    if t.dims() != shape {
        return Err(ModelError::BadTensor {
            name: name.into(),
            reason: format!(
                "in {} has shape {:?}, the config implies {shape:?}",
                root.display(),
                t.dims()
            ),
        });
    }
    Ok(())
}

/// Whether two tensors hold exactly the same values.
fn same_values(a: &Tensor, b: &Tensor) -> Result<bool> {
    let v = |t: &Tensor, name: &str| {
        t.to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| ModelError::BadTensor {
                name: name.into(),
                reason: e.to_string(),
            })
    };
    Ok(v(a, "model.embed_tokens.weight")? == v(b, "lm_head.weight")?)
}

/// The two ends of the decoder: the embedding, the final norm and the `lm_head` (`None`
/// when tied to the embedding).
pub(crate) fn assemble_head(
    cfg: &LlamaConfig,
    map: &mut dyn TensorSource,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let h = cfg.hidden_size;
    let vh = [cfg.vocab_size, h];
    let norm = map.take("model.norm.weight", &[h])?;
    // As transformers' `tie_weights` at load: `tie_word_embeddings` ties only what the
    // checkpoint leaves to tie. A head stored with values of its own is used (a config
    // that says tied over an untied checkpoint); a tied checkpoint that kept only
    // `lm_head.weight` shares it as the embedding.
    let (embed, lm_head) = match (
        map.take_opt("model.embed_tokens.weight", &vh)?,
        map.take_opt("lm_head.weight", &vh)?,
    ) {
        (Some(e), Some(head)) if cfg.tie_word_embeddings && same_values(&e, &head)? => (e, None),
        (Some(e), Some(head)) => (e, Some(head)),
        (Some(e), None) if cfg.tie_word_embeddings => (e, None),
        (None, Some(head)) if cfg.tie_word_embeddings => (head, None),
        (e, _) => {
            let name = if e.is_none() {
                "model.embed_tokens.weight"
            } else {
                "lm_head.weight"
            };
            return Err(ModelError::MissingTensor {
                path: map.root().into(),
                name: name.into(),
            });
        }
    };
    Ok((embed, norm, lm_head))
}

/// The weights of decoder block `l`, shapes checked against the config.
pub(crate) fn assemble_block(
    cfg: &LlamaConfig,
    l: usize,
    map: &mut dyn TensorSource,
) -> Result<BlockWeights> {
    let h = cfg.hidden_size;
    let q_out = cfg.num_attention_heads * cfg.head_dim;
    let kv_out = cfg.num_key_value_heads * cfg.head_dim;
    let i = cfg.intermediate_size;
    let shape = |k: LinearKind| -> [usize; 2] {
        match k {
            LinearKind::Q => [q_out, h],
            LinearKind::K | LinearKind::V => [kv_out, h],
            LinearKind::O => [h, q_out],
            LinearKind::Gate | LinearKind::Up => [i, h],
            LinearKind::Down => [h, i],
        }
    };
    let mut linear = Vec::with_capacity(7);
    let mut bias = Vec::with_capacity(7);
    for k in LinearKind::ALL {
        let s = shape(k);
        linear.push(map.take(&k.weight_name(l), &s)?);
        let bname = format!("model.layers.{l}.{}.bias", k.module());
        bias.push(map.take_opt(&bname, &s[..1])?);
    }
    let linear: [Tensor; 7] = linear
        .try_into()
        .map_err(|_| ModelError::InvalidArgument("seven linear layers".into()))?;
    let bias: [Option<Tensor>; 7] = bias
        .try_into()
        .map_err(|_| ModelError::InvalidArgument("seven biases".into()))?;
    Ok(BlockWeights {
        input_layernorm: map.take(&format!("model.layers.{l}.input_layernorm.weight"), &[h])?,
        post_attention_layernorm: map.take(
            &format!("model.layers.{l}.post_attention_layernorm.weight"),
            &[h],
        )?,
        linear,
        bias,
    })
}
