//! Qwen2 and Qwen2.5: the Llama block with q/k/v biases (read wherever the checkpoint
//! has them), sliding windows in the blocks `use_sliding_window` with `layer_types` or
//! `max_window_layers` select ([`crate::window`]).

use super::llama::{check_silu, write_silu};
use super::spec::{Family, FamilyConfig, ReadCtx, WriteCtx, LLAMA_DEFAULTS};
use crate::error::Result;
use crate::window;
use serde_json::{Map, Value};

pub(crate) const FAMILY: Family = Family {
    hf_class: "Qwen2ForCausalLM",
    model_type: "qwen2",
    defaults: LLAMA_DEFAULTS,
    read,
    write,
};

fn read(c: &ReadCtx<'_>) -> Result<FamilyConfig> {
    check_silu(c)?;
    Ok(FamilyConfig {
        sliding_window: window::qwen2(c.path, c.obj, c.num_layers)?,
        ..FamilyConfig::default()
    })
}

/// Qwen2's keys: also Qwen3's.
pub(crate) fn write(w: &WriteCtx<'_>, obj: &mut Map<String, Value>) {
    write_silu(obj);
    if w.base.is_none() {
        window::write_qwen2(obj, w.sliding_window);
    }
}
