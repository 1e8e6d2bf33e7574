//! Sliding-window attention: which blocks use it and how wide it is, read from a
//! `config.json` by transformers' rules for each family.
//!
//! - Mistral: `sliding_window` applies to every block; a missing key means transformers'
//!   default, 4096, and `null` means none. `layer_types` is ignored, as
//!   `MistralForCausalLM` ignores it.
//! - Qwen2: `sliding_window` counts only with `use_sliding_window: true` (as
//!   `Qwen2Config` sets it to `None` otherwise; missing means 4096). The blocks that use it
//!   are those `layer_types` marks `"sliding_attention"` when that key is present
//!   (transformers 5 writes it), else blocks `max_window_layers` (default 28) onward.
//!   A block marked sliding without a window is refused, as transformers fails on it.
//! - Llama: none (`LlamaForCausalLM` has no sliding window).
//! - Qwen3: Qwen2's rule. Phi-3: Mistral's, with no window when the key is absent.
//! - Gemma 2 and 3: `layer_types`, else every other block (Gemma 2: even blocks) or all
//!   but every `sliding_window_pattern`-th (Gemma 3); missing `sliding_window` is 4096.
//!
//! Each family's file in [`crate::arch`] picks its rule.

use crate::error::{ModelError, Result};
use serde_json::{json, Map, Value};
use std::path::Path;

/// transformers' default `sliding_window` for Mistral and Qwen2 when the key is absent.
pub(crate) const DEFAULT_WINDOW: usize = 4096;
/// transformers' default `max_window_layers` for Qwen2.
const DEFAULT_MAX_WINDOW_LAYERS: usize = 28;

/// Sliding-window attention: in the blocks that use it, the query at position `q` sees
/// the keys at positions `k` with `q − size < k ≤ q` (itself and the `size − 1` before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlidingWindow {
    /// The window (transformers' `sliding_window`), at least 1.
    pub size: usize,
    /// One entry per block: whether it uses the window (the others see every earlier key).
    pub layers: Vec<bool>,
}

impl SlidingWindow {
    /// The window of block `layer`, if it uses one.
    pub fn of_layer(&self, layer: usize) -> Option<usize> {
        self.layers
            .get(layer)
            .copied()
            .unwrap_or(false)
            .then_some(self.size)
    }
}

fn json_err(path: &Path, reason: String) -> ModelError {
    ModelError::Json {
        path: path.into(),
        reason,
    }
}

/// The `sliding_window` key: absent (transformers' default), `null` (none) or a
/// positive integer.
fn window_key(path: &Path, obj: &Map<String, Value>) -> Result<Option<usize>> {
    window_key_or(path, obj, Some(DEFAULT_WINDOW))
}

/// The `sliding_window` key: absent gives `default` (the family's config class default),
/// `null` none, else a positive integer.
pub(crate) fn window_key_or(
    path: &Path,
    obj: &Map<String, Value>,
    default: Option<usize>,
) -> Result<Option<usize>> {
    match obj.get("sliding_window") {
        None => Ok(default),
        Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(w) if w >= 1 => Ok(Some(usize::try_from(w).unwrap_or(usize::MAX))),
            _ => Err(json_err(
                path,
                format!("key 'sliding_window' must be a positive integer or null, got {v}"),
            )),
        },
    }
}

/// `layer_types`: per block, whether it is a sliding-window block.
pub(crate) fn layer_types(path: &Path, v: &Value, num_layers: usize) -> Result<Vec<bool>> {
    let list = v.as_array().ok_or_else(|| {
        json_err(
            path,
            format!("key 'layer_types' must be a list of strings, got {v}"),
        )
    })?;
    if list.len() != num_layers {
        return Err(json_err(
            path,
            format!(
                "key 'layer_types' has {} entries, num_hidden_layers is {num_layers}",
                list.len()
            ),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, t)| match t.as_str() {
            // "attention" is the legacy name transformers remaps to "full_attention".
            Some("full_attention" | "attention") => Ok(false),
            Some("sliding_attention") => Ok(true),
            _ => Err(ModelError::Unsupported {
                path: path.into(),
                what: format!(
                    "layer type {t} in layer_types[{i}] (supported: full_attention, sliding_attention)"
                ),
            }),
        })
        .collect()
}

/// Mistral's rule: `sliding_window` (missing: 4096, `null`: none) in each of the
/// `num_layers` blocks.
pub(crate) fn every_block(
    path: &Path,
    obj: &Map<String, Value>,
    num_layers: usize,
) -> Result<Option<SlidingWindow>> {
    every_block_or(path, obj, num_layers, Some(DEFAULT_WINDOW))
}

/// Mistral's rule with another default for an absent `sliding_window` (Phi-3: none).
pub(crate) fn every_block_or(
    path: &Path,
    obj: &Map<String, Value>,
    num_layers: usize,
    default: Option<usize>,
) -> Result<Option<SlidingWindow>> {
    Ok(finish(
        window_key_or(path, obj, default)?,
        vec![true; num_layers],
    ))
}

/// Qwen2's rule (see the module docs) for a model of `num_layers` blocks.
pub(crate) fn qwen2(
    path: &Path,
    obj: &Map<String, Value>,
    num_layers: usize,
) -> Result<Option<SlidingWindow>> {
    let use_sw = match obj.get("use_sliding_window") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(json_err(
                path,
                format!("key 'use_sliding_window' must be true or false, got {v}"),
            ))
        }
    };
    let size = if use_sw { window_key(path, obj)? } else { None };
    let has_types = obj.get("layer_types").is_some_and(|v| !v.is_null());
    let first = match obj
        .get("max_window_layers")
        .filter(|v| !v.is_null() && !has_types)
    {
        None => DEFAULT_MAX_WINDOW_LAYERS,
        Some(v) => v.as_u64().map(|x| x as usize).ok_or_else(|| {
            json_err(
                path,
                format!("key 'max_window_layers' must be a non-negative integer, got {v}"),
            )
        })?,
    };
    by_layer_types(
        path,
        obj,
        num_layers,
        size,
        |i| size.is_some() && i >= first,
        "use_sliding_window is not true or sliding_window is null",
    )
}

/// The blocks `layer_types` marks sliding when that key is present, else those
/// `fallback` selects, with a window of `size`; a block marked sliding without a window
/// is refused (`why` says why there is none).
pub(crate) fn by_layer_types(
    path: &Path,
    obj: &Map<String, Value>,
    num_layers: usize,
    size: Option<usize>,
    fallback: impl Fn(usize) -> bool,
    why: &str,
) -> Result<Option<SlidingWindow>> {
    let layers = match obj.get("layer_types").filter(|v| !v.is_null()) {
        Some(v) => layer_types(path, v, num_layers)?,
        None => (0..num_layers).map(fallback).collect(),
    };
    if let (None, Some(i)) = (size, layers.iter().position(|&s| s)) {
        return Err(json_err(
            path,
            format!(
                "layer_types[{i}] is 'sliding_attention' but there is no sliding window ({why})"
            ),
        ));
    }
    Ok(finish(size, layers))
}

/// `None` unless a window exists and some block uses it.
fn finish(size: Option<usize>, layers: Vec<bool>) -> Option<SlidingWindow> {
    match size {
        Some(size) if layers.iter().any(|&s| s) => Some(SlidingWindow { size, layers }),
        _ => None,
    }
}

/// Writes Mistral's key into a `config.json` object that has none from a source (a
/// model read from GGUF): `null` must be explicit, transformers' default is a window.
pub(crate) fn write_every_block(obj: &mut Map<String, Value>, w: Option<&SlidingWindow>) {
    obj.insert(
        "sliding_window".into(),
        w.map(|w| json!(w.size)).unwrap_or(Value::Null),
    );
}

/// Writes Qwen2's keys (`use_sliding_window`, `sliding_window`, `layer_types`) into a
/// `config.json` object that has none from a source.
pub(crate) fn write_qwen2(obj: &mut Map<String, Value>, w: Option<&SlidingWindow>) {
    obj.insert("use_sliding_window".into(), json!(w.is_some()));
    write_every_block(obj, w);
    write_layer_types(obj, w);
}

/// Writes `layer_types` when some block uses a window.
pub(crate) fn write_layer_types(obj: &mut Map<String, Value>, w: Option<&SlidingWindow>) {
    if let Some(w) = w {
        let types: Vec<&str> = w
            .layers
            .iter()
            .map(|&s| {
                if s {
                    "sliding_attention"
                } else {
                    "full_attention"
                }
            })
            .collect();
        obj.insert("layer_types".into(), json!(types));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy)]
    enum Rule {
        Mistral,
        Qwen2,
    }

    fn parse(rule: Rule, j: Value, n: usize) -> Result<Option<SlidingWindow>> {
        let (p, obj) = (Path::new("config.json"), j.as_object().unwrap());
        match rule {
            Rule::Mistral => every_block(p, obj, n),
            Rule::Qwen2 => qwen2(p, obj, n),
        }
    }

    #[test]
    fn mistral_default_null_and_value() {
        let m = Rule::Mistral;
        assert_eq!(
            parse(m, json!({}), 2).unwrap().unwrap(),
            SlidingWindow {
                size: 4096,
                layers: vec![true, true]
            }
        );
        assert_eq!(parse(m, json!({"sliding_window": null}), 2).unwrap(), None);
        let w = parse(m, json!({"sliding_window": 16, "layer_types": ["x"]}), 3).unwrap();
        assert_eq!(w.unwrap().of_layer(2), Some(16));
        let e = parse(m, json!({"sliding_window": 0}), 2).unwrap_err();
        assert!(
            e.to_string()
                .contains("'sliding_window' must be a positive"),
            "{e}"
        );
    }

    #[test]
    fn qwen2_rules() {
        let q = Rule::Qwen2;
        // Qwen2.5 as shipped: a window is named but not used.
        let off =
            json!({"use_sliding_window": false, "sliding_window": 32768, "max_window_layers": 21});
        assert_eq!(parse(q, off, 24).unwrap(), None);
        let on = json!({"use_sliding_window": true, "sliding_window": 8, "max_window_layers": 1});
        let w = parse(q, on, 3).unwrap().unwrap();
        assert_eq!(w.layers, vec![false, true, true]);
        assert_eq!((w.of_layer(0), w.of_layer(1)), (None, Some(8)));
        // layer_types wins over max_window_layers.
        let lt = json!({"use_sliding_window": true, "sliding_window": 8, "max_window_layers": 0,
            "layer_types": ["sliding_attention", "attention"]});
        assert_eq!(parse(q, lt, 2).unwrap().unwrap().layers, vec![true, false]);
        let all_full =
            json!({"use_sliding_window": true, "sliding_window": 8, "max_window_layers": 5});
        assert_eq!(parse(q, all_full, 2).unwrap(), None);
        let bad = json!({"use_sliding_window": false, "layer_types": ["full_attention", "sliding_attention"]});
        let e = parse(q, bad, 2).unwrap_err().to_string();
        assert!(
            e.contains("layer_types[1] is 'sliding_attention' but there is no sliding window"),
            "{e}"
        );
        let e = parse(q, json!({"layer_types": ["full_attention"]}), 2).unwrap_err();
        assert!(
            e.to_string()
                .contains("'layer_types' has 1 entries, num_hidden_layers is 2"),
            "{e}"
        );
        let e = parse(q, json!({"layer_types": ["chunked_attention"]}), 1).unwrap_err();
        assert!(
            e.to_string()
                .contains("unsupported layer type \"chunked_attention\" in layer_types[0]"),
            "{e}"
        );
    }
}
