//! The model configuration: parsed from a Hugging Face `config.json` or from GGUF
//! metadata, and written back as a `config.json` that transformers loads.

use crate::arch::json::{get, opt_f64, opt_usize, parse_rope_scaling, req_usize, token_ids};
pub use crate::arch::{Architecture, BlockSpec, RopeScaling};
use crate::arch::{ReadCtx, WriteCtx};
use crate::error::{ModelError, Result};
use crate::window::SlidingWindow;
use serde_json::{json, Map, Value};
use std::path::Path;

/// Largest accepted width, head count or vocabulary size (2^24): products of two such
/// values stay far below `usize::MAX`.
const MAX_DIM: usize = 1 << 24;
/// Largest accepted number of decoder blocks.
const MAX_LAYERS: usize = 1 << 16;

/// The hyper-parameters of a decoder of one of the families of [`crate::arch`].
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Which architecture (config class) this is.
    pub architecture: Architecture,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than query heads).
    pub num_key_value_heads: usize,
    /// Decoder blocks.
    pub num_hidden_layers: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Rotary base.
    pub rope_theta: f64,
    /// Rotary scaling, if any.
    pub rope_scaling: Option<RopeScaling>,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Context length the model was trained for.
    pub max_position_embeddings: usize,
    /// Whether `lm_head` shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token id(s) (Llama 3 lists several).
    pub eos_token_id: Vec<u32>,
    /// Sliding-window attention, when some block uses it (see [`crate::window`] for how
    /// each family's `config.json` says so).
    pub sliding_window: Option<SlidingWindow>,
    /// The family's options of the shared block (the default is Llama's).
    pub block: BlockSpec,
}

/// A rotary embedding over part of each head (`partial_rotary_factor` below 1, as
/// Phi-4-mini) is not implemented: refused rather than run wrong.
fn refuse_partial_rotary(path: &Path, obj: &Map<String, Value>) -> Result<()> {
    let rp = get(obj, "rope_parameters").and_then(|r| r.as_object());
    let factor = match rp {
        Some(rp) if get(rp, "partial_rotary_factor").is_some() => {
            opt_f64(path, rp, "partial_rotary_factor")?
        }
        _ => opt_f64(path, obj, "partial_rotary_factor")?,
    };
    match factor {
        Some(f) if f != 1.0 => Err(ModelError::Unsupported {
            path: path.into(),
            what: format!("partial_rotary_factor {f} (only 1.0, a rotation of the whole head)"),
        }),
        _ => Ok(()),
    }
}

impl LlamaConfig {
    /// Parses a Hugging Face `config.json` (its text `text`, read from `path`).
    pub fn from_hf_json(path: &Path, text: &str) -> Result<LlamaConfig> {
        let v: Value = serde_json::from_str(text).map_err(|e| ModelError::Json {
            path: path.into(),
            reason: format!("not valid JSON: {e}"),
        })?;
        let obj = v.as_object().ok_or_else(|| ModelError::Json {
            path: path.into(),
            reason: "config.json is not a JSON object".into(),
        })?;
        let arch_name = get(obj, "architectures")
            .and_then(|a| a.as_array())
            .and_then(|a| a.first())
            .and_then(|a| a.as_str())
            .map(str::to_string);
        let model_type = get(obj, "model_type").and_then(|m| m.as_str());
        let architecture = match (&arch_name, model_type) {
            (Some(a), _) => Architecture::from_hf(a).ok_or_else(|| ModelError::Unsupported {
                path: path.into(),
                what: format!(
                    "architecture '{a}' (supported: {})",
                    Architecture::supported_classes()
                ),
            })?,
            (None, Some(m)) => Architecture::from_hf(m).ok_or_else(|| ModelError::Unsupported {
                path: path.into(),
                what: format!(
                    "model_type '{m}' (supported: {})",
                    Architecture::supported_model_types()
                ),
            })?,
            (None, None) => {
                return Err(ModelError::MissingKey {
                    path: path.into(),
                    key: "architectures".into(),
                })
            }
        };
        let family = architecture.family();
        let hidden_size = req_usize(path, obj, "hidden_size")?;
        let num_attention_heads = req_usize(path, obj, "num_attention_heads")?;
        let num_key_value_heads =
            opt_usize(path, obj, "num_key_value_heads")?.unwrap_or(num_attention_heads);
        let max_position_embeddings =
            opt_usize(path, obj, "max_position_embeddings")?.unwrap_or(2048);
        // transformers v5 moved rope_theta and the scaling into `rope_parameters`; older
        // configs have `rope_theta` and `rope_scaling` at the top level.
        let (rope_theta, rope_scaling) =
            match get(obj, "rope_parameters").and_then(|r| r.as_object()) {
                Some(rp) => (
                    opt_f64(path, rp, "rope_theta")?
                        .or(opt_f64(path, obj, "rope_theta")?)
                        .unwrap_or(10000.0),
                    parse_rope_scaling(path, rp, "rope_parameters", max_position_embeddings)?,
                ),
                None => (
                    opt_f64(path, obj, "rope_theta")?.unwrap_or(10000.0),
                    match get(obj, "rope_scaling").and_then(|r| r.as_object()) {
                        Some(rs) => {
                            parse_rope_scaling(path, rs, "rope_scaling", max_position_embeddings)?
                        }
                        None => None,
                    },
                ),
            };
        refuse_partial_rotary(path, obj)?;
        let num_hidden_layers = req_usize(path, obj, "num_hidden_layers")?;
        let fam = (family.read)(&ReadCtx {
            path,
            obj,
            num_layers: num_hidden_layers,
            hidden_size,
            max_position_embeddings,
        })?;
        let (rope_theta, rope_scaling) = match fam.rope {
            Some(r) => (r.theta, r.scaling),
            None => (rope_theta, rope_scaling),
        };
        let cfg = LlamaConfig {
            architecture,
            hidden_size,
            intermediate_size: req_usize(path, obj, "intermediate_size")?,
            num_attention_heads,
            num_key_value_heads,
            num_hidden_layers,
            head_dim: opt_usize(path, obj, "head_dim")?.unwrap_or(
                family
                    .defaults
                    .head_dim
                    .unwrap_or(hidden_size / num_attention_heads.max(1)),
            ),
            rms_norm_eps: opt_f64(path, obj, "rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            vocab_size: req_usize(path, obj, "vocab_size")?,
            max_position_embeddings,
            tie_word_embeddings: get(obj, "tie_word_embeddings")
                .and_then(|t| t.as_bool())
                .unwrap_or(family.defaults.tie_word_embeddings),
            bos_token_id: token_ids(path, obj, "bos_token_id")?.first().copied(),
            eos_token_id: token_ids(path, obj, "eos_token_id")?,
            sliding_window: fam.sliding_window,
            block: fam.block,
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The sliding window of block `layer`, if it uses one: its query at position `q`
    /// sees only the keys at `k > q − window`.
    pub fn attention_window(&self, layer: usize) -> Option<usize> {
        self.sliding_window.as_ref()?.of_layer(layer)
    }

    /// Checks the head arithmetic.
    pub(crate) fn validate(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| ModelError::Json {
            path: path.into(),
            reason,
        };
        // Sizes come from untrusted files (GGUF metadata, config.json): bound them so the
        // shape products computed from them (heads x head_dim, vocab x hidden) cannot
        // overflow. The bounds are far above any real model (Llama 3 405B: hidden 16384,
        // intermediate 53248, vocab 128256, 126 layers).
        for (key, v, max) in [
            ("hidden_size", self.hidden_size, MAX_DIM),
            ("intermediate_size", self.intermediate_size, MAX_DIM),
            ("num_attention_heads", self.num_attention_heads, MAX_DIM),
            ("num_key_value_heads", self.num_key_value_heads, MAX_DIM),
            ("head_dim", self.head_dim, MAX_DIM),
            ("vocab_size", self.vocab_size, MAX_DIM),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
        ] {
            if v > max {
                return Err(bad(format!("{key} = {v} is larger than {max}")));
            }
        }
        if self.num_attention_heads == 0 || self.num_key_value_heads == 0 || self.head_dim == 0 {
            return Err(bad(
                "num_attention_heads, num_key_value_heads and head_dim must be positive".into(),
            ));
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            return Err(bad(format!(
                "num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            )));
        }
        if self.head_dim % 2 != 0 {
            return Err(bad(format!(
                "head_dim ({}) must be even for rotary embeddings",
                self.head_dim
            )));
        }
        Ok(())
    }

    /// A `config.json` object for transformers' `*ForCausalLM` with `torch_dtype`.
    /// `base` (the source `config.json`, when the model came from one) supplies keys this
    /// crate does not model, so they survive a round trip; its sliding-window keys are
    /// kept as they are (without a base they are written from
    /// [`LlamaConfig::sliding_window`]).
    pub fn to_hf_json(&self, torch_dtype: &str, base: Option<&Value>) -> Value {
        let mut obj = base
            .and_then(|b| b.as_object())
            .cloned()
            .unwrap_or_default();
        let mut set = |k: &str, v: Value| {
            obj.insert(k.to_string(), v);
        };
        set("architectures", json!([self.architecture.hf_class()]));
        set("model_type", json!(self.architecture.model_type()));
        set("hidden_size", json!(self.hidden_size));
        set("intermediate_size", json!(self.intermediate_size));
        set("num_attention_heads", json!(self.num_attention_heads));
        set("num_key_value_heads", json!(self.num_key_value_heads));
        set("num_hidden_layers", json!(self.num_hidden_layers));
        set("head_dim", json!(self.head_dim));
        set("rms_norm_eps", json!(self.rms_norm_eps));
        set("rope_theta", json!(self.rope_theta));
        set(
            "rope_scaling",
            self.rope_scaling
                .as_ref()
                .map(RopeScaling::to_json)
                .unwrap_or(Value::Null),
        );
        set("vocab_size", json!(self.vocab_size));
        set(
            "max_position_embeddings",
            json!(self.max_position_embeddings),
        );
        set("tie_word_embeddings", json!(self.tie_word_embeddings));
        set(
            "bos_token_id",
            self.bos_token_id.map(|b| json!(b)).unwrap_or(Value::Null),
        );
        set(
            "eos_token_id",
            match self.eos_token_id.as_slice() {
                [] => Value::Null,
                [one] => json!(one),
                many => json!(many),
            },
        );
        set("torch_dtype", json!(torch_dtype));
        // The v5 form would now disagree with the keys above; the top-level keys win.
        obj.remove("rope_parameters");
        let ctx = WriteCtx {
            block: &self.block,
            sliding_window: self.sliding_window.as_ref(),
            base: base.and_then(|b| b.as_object()),
        };
        (self.architecture.family().write)(&ctx, &mut obj);
        Value::Object(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rope_forms() {
        let p = Path::new("config.json");
        let base = r#"{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,
            "num_attention_heads":4,"num_key_value_heads":2,"num_hidden_layers":2,"vocab_size":100,
            "rms_norm_eps":1e-5,"max_position_embeddings":256"#;
        let c = LlamaConfig::from_hf_json(p, &format!("{base},\"rope_theta\":500000.0,\"rope_scaling\":{{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}}}}")).unwrap();
        assert_eq!(c.rope_theta, 500000.0);
        assert!(matches!(
            c.rope_scaling,
            Some(RopeScaling::Llama3 {
                original_max_position_embeddings: 8192,
                ..
            })
        ));
        assert_eq!(c.head_dim, 16);
        let c = LlamaConfig::from_hf_json(p, &format!("{base},\"rope_parameters\":{{\"rope_type\":\"linear\",\"factor\":2.0,\"rope_theta\":1000.0}}}}")).unwrap();
        assert_eq!(c.rope_theta, 1000.0);
        assert_eq!(c.rope_scaling, Some(RopeScaling::Linear { factor: 2.0 }));
        let e = LlamaConfig::from_hf_json(
            p,
            &format!("{base},\"rope_scaling\":{{\"type\":\"yarn\",\"factor\":2.0}}}}"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("rope type 'yarn'"), "{e}");
        let j = c.to_hf_json("bfloat16", None);
        let back = LlamaConfig::from_hf_json(p, &j.to_string()).unwrap();
        assert_eq!(back, c);
    }
}
