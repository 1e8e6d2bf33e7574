//! Gemma 3, the text model (`Gemma3ForCausalLM`, `model_type: gemma3_text`): Gemma 2's
//! block plus an RMSNorm `· (1 + w)` over each query and key head; no soft-capping by
//! default (`final_logit_softcapping` is applied when set; a set
//! `attn_logit_softcapping` is refused, as transformers' Gemma 3 attention does not
//! read it); sliding windows in the blocks `layer_types` marks, else all but every
//! `sliding_window_pattern`-th (6); the sliding blocks rotate with their own base,
//! `rope_local_base_freq` (10 000, unscaled), the others with `rope_theta` (1 000 000)
//! and `rope_scaling`. transformers 5 writes both as `rope_parameters` by layer type.

use super::gemma2::{gemma_block, GEMMA_DEFAULTS};
use super::json::{f64_or_null, get, opt_bool, opt_f64, opt_usize, parse_rope_scaling};
use super::spec::{Family, FamilyConfig, ReadCtx, RopeParams, WriteCtx};
use crate::error::{ModelError, Result};
use crate::window::{self, DEFAULT_WINDOW};
use serde_json::{json, Map, Value};

pub(crate) const FAMILY: Family = Family {
    hf_class: "Gemma3ForCausalLM",
    model_type: "gemma3_text",
    defaults: GEMMA_DEFAULTS,
    read,
    write,
};

fn unsupported(c: &ReadCtx<'_>, what: String) -> ModelError {
    ModelError::Unsupported {
        path: c.path.into(),
        what,
    }
}

fn read(c: &ReadCtx<'_>) -> Result<FamilyConfig> {
    if let Some(cap) = opt_f64(c.path, c.obj, "attn_logit_softcapping")? {
        return Err(unsupported(
            c,
            format!("attn_logit_softcapping = {cap} in a Gemma 3 config (transformers' Gemma 3 attention ignores it)"),
        ));
    }
    if opt_bool(c.path, c.obj, "use_bidirectional_attention")? == Some(true) {
        return Err(unsupported(
            c,
            "use_bidirectional_attention = true (only causal attention is implemented)".into(),
        ));
    }
    let final_softcap = f64_or_null(c.path, c.obj, "final_logit_softcapping", None)?;
    let (global, local) = rope(c)?;
    let size = window::window_key_or(c.path, c.obj, Some(DEFAULT_WINDOW))?;
    let pattern = match opt_usize(c.path, c.obj, "sliding_window_pattern")? {
        Some(p) => p,
        None => opt_usize(c.path, c.obj, "_sliding_window_pattern")?.unwrap_or(6),
    };
    if pattern == 0 {
        return Err(ModelError::Json {
            path: c.path.into(),
            reason: "key 'sliding_window_pattern' must be positive".into(),
        });
    }
    Ok(FamilyConfig {
        block: gemma_block(c, true, None, final_softcap, Some(local))?,
        sliding_window: window::by_layer_types(
            c.path,
            c.obj,
            c.num_layers,
            size,
            |i| (i + 1) % pattern != 0,
            "sliding_window is null",
        )?,
        rope: Some(global),
    })
}

/// The rotary parameters of the global and the local (sliding-window) blocks.
fn rope(c: &ReadCtx<'_>) -> Result<(RopeParams, RopeParams)> {
    let (path, obj, max_pos) = (c.path, c.obj, c.max_position_embeddings);
    let local_base = opt_f64(path, obj, "rope_local_base_freq")?.unwrap_or(10_000.0);
    let rp = get(obj, "rope_parameters").and_then(Value::as_object);
    let by_type = |t: &str| rp.and_then(|rp| get(rp, t)).and_then(Value::as_object);
    let params = |o: &Map<String, Value>, key: &str, theta: f64| -> Result<RopeParams> {
        Ok(RopeParams {
            theta: opt_f64(path, o, "rope_theta")?.unwrap_or(theta),
            scaling: parse_rope_scaling(path, o, key, max_pos)?,
        })
    };
    let global = match (by_type("full_attention"), rp) {
        (Some(o), _) => params(o, "rope_parameters.full_attention", 1_000_000.0)?,
        (None, Some(o)) => params(
            o,
            "rope_parameters",
            opt_f64(path, obj, "rope_theta")?.unwrap_or(1_000_000.0),
        )?,
        (None, None) => RopeParams {
            theta: opt_f64(path, obj, "rope_theta")?.unwrap_or(1_000_000.0),
            scaling: match get(obj, "rope_scaling").and_then(Value::as_object) {
                Some(rs) => parse_rope_scaling(path, rs, "rope_scaling", max_pos)?,
                None => None,
            },
        },
    };
    let local = match by_type("sliding_attention") {
        Some(o) => params(o, "rope_parameters.sliding_attention", local_base)?,
        None => RopeParams {
            theta: local_base,
            scaling: None,
        },
    };
    Ok((global, local))
}

/// Gemma 2's keys, and the rotary parameters: a source's `rope_parameters` by layer
/// type is put back as it was (the common writer replaces it by top-level keys, which
/// cannot say the local base), else `rope_local_base_freq` is written.
fn write(w: &WriteCtx<'_>, obj: &mut Map<String, Value>) {
    super::gemma2::write(w, obj);
    let base_rp = w.base.and_then(|b| b.get("rope_parameters"));
    match base_rp {
        Some(rp) if rp.get("full_attention").is_some() || rp.get("sliding_attention").is_some() => {
            obj.insert("rope_parameters".into(), rp.clone());
            for k in ["rope_theta", "rope_scaling"] {
                if w.base.is_some_and(|b| !b.contains_key(k)) {
                    obj.remove(k);
                }
            }
        }
        _ => {
            if let Some(l) = &w.block.local_rope {
                obj.insert("rope_local_base_freq".into(), json!(l.theta));
            }
        }
    }
}
