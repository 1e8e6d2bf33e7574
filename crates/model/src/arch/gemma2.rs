//! Gemma 2: embeddings times `√hidden_size`; every RMSNorm `· (1 + w)`; four norms per
//! block (`input_layernorm` before attention, `post_attention_layernorm` on its output
//! before the residual add, `pre_feedforward_layernorm` before the MLP,
//! `post_feedforward_layernorm` on its output); GeGLU with GELU-tanh; attention scaled
//! by `query_pre_attn_scalar^(-1/2)` and soft-capped (`attn_logit_softcapping`, 50 when
//! absent), final logits soft-capped (`final_logit_softcapping`, 30); sliding windows in
//! the blocks `layer_types` marks, else the even blocks; tied head unless the config
//! says otherwise. Defaults are `Gemma2Config`'s.

use super::json::{activation_name, f64_or_null, opt_f64};
use super::spec::{
    Activation, BlockSpec, Defaults, Family, FamilyConfig, NormForm, ReadCtx, RopeParams, WriteCtx,
};
use crate::error::{ModelError, Result};
use crate::window::{self, DEFAULT_WINDOW};
use serde_json::{json, Map, Value};

pub(crate) const FAMILY: Family = Family {
    hf_class: "Gemma2ForCausalLM",
    model_type: "gemma2",
    defaults: GEMMA_DEFAULTS,
    read,
    write,
};

/// `head_dim` and `tie_word_embeddings` of the Gemma config classes.
pub(crate) const GEMMA_DEFAULTS: Defaults = Defaults {
    head_dim: Some(256),
    tie_word_embeddings: true,
};

fn read(c: &ReadCtx<'_>) -> Result<FamilyConfig> {
    let size = window::window_key_or(c.path, c.obj, Some(DEFAULT_WINDOW))?;
    let attn_softcap = f64_or_null(c.path, c.obj, "attn_logit_softcapping", Some(50.0))?;
    let final_softcap = f64_or_null(c.path, c.obj, "final_logit_softcapping", Some(30.0))?;
    Ok(FamilyConfig {
        block: gemma_block(c, false, attn_softcap, final_softcap, None)?,
        sliding_window: window::by_layer_types(
            c.path,
            c.obj,
            c.num_layers,
            size,
            |i| i % 2 == 0,
            "sliding_window is null",
        )?,
        rope: None,
    })
}

/// The block both Gemma generations share.
pub(crate) fn gemma_block(
    c: &ReadCtx<'_>,
    qk_norm: bool,
    attn_softcap: Option<f64>,
    final_softcap: Option<f64>,
    local_rope: Option<RopeParams>,
) -> Result<BlockSpec> {
    activation_name(
        c.path,
        c.obj,
        "hidden_activation",
        "gelu_pytorch_tanh",
        &["gelu_pytorch_tanh"],
    )?;
    for (key, v) in [
        ("attn_logit_softcapping", attn_softcap),
        ("final_logit_softcapping", final_softcap),
    ] {
        if let Some(v) = v.filter(|v| !(*v > 0.0 && v.is_finite())) {
            return Err(ModelError::Json {
                path: c.path.into(),
                reason: format!("key '{key}' must be a positive number or null, got {v}"),
            });
        }
    }
    let scalar = opt_f64(c.path, c.obj, "query_pre_attn_scalar")?.unwrap_or(256.0);
    if !(scalar > 0.0 && scalar.is_finite()) {
        return Err(ModelError::Json {
            path: c.path.into(),
            reason: format!("key 'query_pre_attn_scalar' must be a positive number, got {scalar}"),
        });
    }
    Ok(BlockSpec {
        norm: NormForm::OnePlusWeight,
        sandwich_norms: true,
        activation: Activation::GeluTanh,
        qk_norm,
        fused_qkv: false,
        fused_gate_up: false,
        embed_scale: Some((c.hidden_size as f64).sqrt()),
        query_pre_attn_scalar: Some(scalar),
        attn_softcap,
        final_softcap,
        local_rope,
    })
}

/// Gemma's keys: the activation always; without a source config also the window, the
/// attention scale and the soft-capping, which have non-null defaults.
pub(crate) fn write(w: &WriteCtx<'_>, obj: &mut Map<String, Value>) {
    obj.insert("hidden_activation".into(), json!("gelu_pytorch_tanh"));
    if w.base.is_some() {
        return;
    }
    obj.remove("hidden_act");
    window::write_every_block(obj, w.sliding_window);
    let layers = obj
        .get("num_hidden_layers")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    let types: Vec<&str> = (0..layers)
        .map(|l| match w.sliding_window.and_then(|s| s.of_layer(l)) {
            Some(_) => "sliding_attention",
            None => "full_attention",
        })
        .collect();
    obj.insert("layer_types".into(), json!(types));
    let b = w.block;
    // transformers 5 types the scalar as an integer: a whole value is written as one.
    let scalar = match b.query_pre_attn_scalar {
        Some(v) if v.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&v) => json!(v as u64),
        other => json!(other),
    };
    obj.insert("query_pre_attn_scalar".into(), scalar);
    obj.insert("attn_logit_softcapping".into(), json!(b.attn_softcap));
    obj.insert("final_logit_softcapping".into(), json!(b.final_softcap));
}
