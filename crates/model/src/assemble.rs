//! Model weights from tensors by Hugging Face name: the one place both loaders (HF
//! directories and GGUF files) check shapes against the config and build the blocks.

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::model::{BlockWeights, LinearKind};
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Tensors by HF name, with the file each came from.
pub(crate) struct TensorMap {
    pub(crate) root: PathBuf,
    pub(crate) tensors: HashMap<String, Tensor>,
}

impl TensorMap {
    /// Takes a tensor out and checks its shape.
    pub(crate) fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .tensors
            .remove(name)
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.root.clone(),
                name: name.into(),
            })?;
        check_shape(&self.root, name, &t, shape)?;
        Ok(t)
    }

    /// Takes an optional tensor out (a bias) and checks its shape.
    pub(crate) fn take_opt(&mut self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        if self.tensors.contains_key(name) {
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

/// Builds the block and head weights from HF-named tensors.
pub(crate) fn assemble(
    cfg: &LlamaConfig,
    mut map: TensorMap,
) -> Result<(Tensor, Vec<BlockWeights>, Tensor, Option<Tensor>)> {
    let h = cfg.hidden_size;
    let q_out = cfg.num_attention_heads * cfg.head_dim;
    let kv_out = cfg.num_key_value_heads * cfg.head_dim;
    let i = cfg.intermediate_size;
    let embed = map.take("model.embed_tokens.weight", &[cfg.vocab_size, h])?;
    let norm = map.take("model.norm.weight", &[h])?;
    let lm_head = if cfg.tie_word_embeddings {
        None
    } else {
        Some(map.take("lm_head.weight", &[cfg.vocab_size, h])?)
    };
    let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
    for l in 0..cfg.num_hidden_layers {
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
        blocks.push(BlockWeights {
            input_layernorm: map.take(&format!("model.layers.{l}.input_layernorm.weight"), &[h])?,
            post_attention_layernorm: map.take(
                &format!("model.layers.{l}.post_attention_layernorm.weight"),
                &[h],
            )?,
            linear,
            bias,
        });
    }
    Ok((embed, blocks, norm, lm_head))
}
