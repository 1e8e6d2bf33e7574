//! Model weights from tensors by Hugging Face name: the one place both loaders (HF
//! directories and GGUF files) check shapes against the config and build the blocks.

use crate::config::LlamaConfig;
use crate::error::{CandleContext, ModelError, Result};
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

/// The weights of decoder block `l`, shapes checked against the config; the family's
/// [`crate::BlockSpec`] says which norms it has and which matrices are stored fused.
pub(crate) fn assemble_block(
    cfg: &LlamaConfig,
    l: usize,
    map: &mut dyn TensorSource,
) -> Result<BlockWeights> {
    let spec = &cfg.block;
    let h = cfg.hidden_size;
    let p = |m: &str| format!("model.layers.{l}.{m}");
    let mut linear: [Option<Tensor>; 7] = Default::default();
    let mut bias: [Option<Tensor>; 7] = Default::default();
    for group in groups(cfg) {
        let parts: Vec<(usize, [usize; 2])> = group
            .kinds
            .iter()
            .map(|&k| (BlockWeights::idx(k), shape(cfg, k)))
            .collect();
        if let Some(module) = group.fused {
            let rows: Vec<usize> = parts.iter().map(|(_, s)| s[0]).collect();
            let (ws, bs) = take_fused(map, &p(module), group.labels, &rows, parts[0].1[1])?;
            for (((i, _), w), b) in parts.iter().zip(ws).zip(bs) {
                linear[*i] = Some(w);
                bias[*i] = b;
            }
        } else {
            for (&k, (i, s)) in group.kinds.iter().zip(&parts) {
                linear[*i] = Some(map.take(&k.weight_name(l), s)?);
                bias[*i] = map.take_opt(&p(&format!("{}.bias", k.module())), &s[..1])?;
            }
        }
    }
    let linear = linear.map(|w| {
        w.ok_or_else(|| ModelError::InvalidArgument("a linear layer not assembled".into()))
    });
    let [q, k, v, o, g, u, d] = linear;
    let mut norm = |name: &str, len: usize| map.take(&p(&format!("{name}.weight")), &[len]);
    let input_layernorm = norm("input_layernorm", h)?;
    let post_attention_layernorm = norm("post_attention_layernorm", h)?;
    let (pre_feedforward_layernorm, post_feedforward_layernorm) = if spec.sandwich_norms {
        (
            Some(norm("pre_feedforward_layernorm", h)?),
            Some(norm("post_feedforward_layernorm", h)?),
        )
    } else {
        (None, None)
    };
    let (q_norm, k_norm) = if spec.qk_norm {
        (
            Some(norm("self_attn.q_norm", cfg.head_dim)?),
            Some(norm("self_attn.k_norm", cfg.head_dim)?),
        )
    } else {
        (None, None)
    };
    Ok(BlockWeights {
        input_layernorm,
        post_attention_layernorm,
        pre_feedforward_layernorm,
        post_feedforward_layernorm,
        q_norm,
        k_norm,
        linear: [q?, k?, v?, o?, g?, u?, d?],
        bias,
    })
}

/// The shape `[d_out, d_in]` of a linear layer.
fn shape(cfg: &LlamaConfig, k: LinearKind) -> [usize; 2] {
    let h = cfg.hidden_size;
    let q_out = cfg.num_attention_heads * cfg.head_dim;
    let kv_out = cfg.num_key_value_heads * cfg.head_dim;
    let i = cfg.intermediate_size;
    match k {
        LinearKind::Q => [q_out, h],
        LinearKind::K | LinearKind::V => [kv_out, h],
        LinearKind::O => [h, q_out],
        LinearKind::Gate | LinearKind::Up => [i, h],
        LinearKind::Down => [h, i],
    }
}

/// Linear layers as a checkpoint stores them: alone, or fused in one matrix whose rows
/// are theirs in order.
struct Stored {
    kinds: &'static [LinearKind],
    /// The fused module (`self_attn.qkv_proj`), `None` when stored one by one.
    fused: Option<&'static str>,
    /// Short names of the parts, for errors.
    labels: &'static [&'static str],
}

/// How the family stores the seven linear layers, in [`LinearKind::ALL`] order.
fn groups(cfg: &LlamaConfig) -> [Stored; 4] {
    use LinearKind::*;
    let fused = |on: bool, m: &'static str| on.then_some(m);
    [
        Stored {
            kinds: &[Q, K, V],
            fused: fused(cfg.block.fused_qkv, "self_attn.qkv_proj"),
            labels: &["q", "k", "v"],
        },
        Stored {
            kinds: &[O],
            fused: None,
            labels: &["o"],
        },
        Stored {
            kinds: &[Gate, Up],
            fused: fused(cfg.block.fused_gate_up, "mlp.gate_up_proj"),
            labels: &["gate", "up"],
        },
        Stored {
            kinds: &[Down],
            fused: None,
            labels: &["down"],
        },
    ]
}

/// Takes fused matrix `module` (and its bias, if any) and splits its rows into parts of
/// `rows` each; a matrix with a slice missing or extra is refused, naming the parts.
fn take_fused(
    map: &mut dyn TensorSource,
    module: &str,
    labels: &[&str],
    rows: &[usize],
    d_in: usize,
) -> Result<(Vec<Tensor>, Vec<Option<Tensor>>)> {
    let name = format!("{module}.weight");
    let total: usize = rows.iter().sum();
    let w = map.fetch(&name)?.ok_or_else(|| ModelError::MissingTensor {
        path: map.root().into(),
        name: name.clone(),
    })?;
    if w.dims() != [total, d_in] {
        let parts: Vec<String> = labels
            .iter()
            .zip(rows)
            .map(|(l, r)| format!("{l} {r}"))
            .collect();
        return Err(ModelError::BadTensor {
            name,
            reason: format!(
                "in {} has shape {:?}, the config implies [{total}, {d_in}] (rows of {})",
                map.root().display(),
                w.dims(),
                parts.join(" + ")
            ),
        });
    }
    let bname = format!("{module}.bias");
    let b = map.take_opt(&bname, &[total])?;
    let split = |t: &Tensor, name: &str| -> Result<Vec<Tensor>> {
        let mut at = 0;
        rows.iter()
            .map(|&r| {
                let part = t.narrow(0, at, r).and_then(|p| p.contiguous());
                at += r;
                part.ctx(|| format!("splitting tensor '{name}'"))
            })
            .collect()
    };
    let ws = split(&w, &name)?;
    let bs = match &b {
        Some(b) => split(b, &bname)?.into_iter().map(Some).collect(),
        None => vec![None; rows.len()],
    };
    Ok((ws, bs))
}

/// The tensors of block `l` by the names the family's checkpoints use, fused matrices
/// joined again: what a writer saves.
pub(crate) fn block_tensors(
    cfg: &LlamaConfig,
    l: usize,
    b: &BlockWeights,
) -> Result<Vec<(String, Tensor)>> {
    let p = |m: &str| format!("model.layers.{l}.{m}");
    let mut out = vec![
        (p("input_layernorm.weight"), b.input_layernorm.clone()),
        (
            p("post_attention_layernorm.weight"),
            b.post_attention_layernorm.clone(),
        ),
    ];
    for (name, t) in [
        ("pre_feedforward_layernorm", &b.pre_feedforward_layernorm),
        ("post_feedforward_layernorm", &b.post_feedforward_layernorm),
        ("self_attn.q_norm", &b.q_norm),
        ("self_attn.k_norm", &b.k_norm),
    ] {
        if let Some(t) = t {
            out.push((p(&format!("{name}.weight")), t.clone()));
        }
    }
    for group in groups(cfg) {
        match group.fused {
            Some(module) => {
                let ws: Vec<&Tensor> = group.kinds.iter().map(|&k| b.weight(k)).collect();
                let w = Tensor::cat(&ws, 0).ctx(|| format!("joining {}", p(module)))?;
                out.push((p(&format!("{module}.weight")), w));
                let bs: Option<Vec<&Tensor>> = group.kinds.iter().map(|&k| b.bias(k)).collect();
                if let Some(bs) = bs {
                    let bias = Tensor::cat(&bs, 0).ctx(|| format!("joining {}", p(module)))?;
                    out.push((p(&format!("{module}.bias")), bias));
                }
            }
            None => {
                for &k in group.kinds {
                    out.push((k.weight_name(l), b.weight(k).clone()));
                    if let Some(bias) = b.bias(k) {
                        out.push((p(&format!("{}.bias", k.module())), bias.clone()));
                    }
                }
            }
        }
    }
    Ok(out)
}
