//! Phi-3: the Llama block with q, k and v stored as one `self_attn.qkv_proj` (rows of
//! q, then k, then v) and gate and up as one `mlp.gate_up_proj` (rows of gate, then up),
//! and a sliding window in every block when `sliding_window` is set (none when absent).
//!
//! The fused matrices are split into q, k, v, gate and up at load and joined again on
//! write: each part is a pruning target of its own, and q, k and v (and gate and up)
//! share one Gram, their common input. With the same sparsity in every row (the
//! per-row problems are independent given the Gram) this prunes exactly as one fused
//! target would.

use super::llama::{check_silu, write_silu};
use super::spec::{BlockSpec, Family, FamilyConfig, ReadCtx, WriteCtx, LLAMA_DEFAULTS};
use crate::error::Result;
use crate::window;
use serde_json::{Map, Value};

pub(crate) const FAMILY: Family = Family {
    hf_class: "Phi3ForCausalLM",
    model_type: "phi3",
    defaults: LLAMA_DEFAULTS,
    read,
    write,
};

fn read(c: &ReadCtx<'_>) -> Result<FamilyConfig> {
    check_silu(c)?;
    Ok(FamilyConfig {
        block: BlockSpec {
            fused_qkv: true,
            fused_gate_up: true,
            ..BlockSpec::default()
        },
        sliding_window: window::every_block_or(c.path, c.obj, c.num_layers, None)?,
        rope: None,
    })
}

fn write(w: &WriteCtx<'_>, obj: &mut Map<String, Value>) {
    write_silu(obj);
    if w.base.is_none() {
        window::write_every_block(obj, w.sliding_window);
        // Phi3Config's default pad id (32000) is outside a smaller vocabulary, which
        // transformers refuses; none is known here, and the forward does not use it.
        obj.insert("pad_token_id".into(), Value::Null);
    }
}
