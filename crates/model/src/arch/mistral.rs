//! Mistral: the Llama block with a sliding window in every block (`sliding_window`,
//! 4096 when absent, none when `null`).

use super::llama::{check_silu, write_silu};
use super::spec::{Family, FamilyConfig, ReadCtx, WriteCtx, LLAMA_DEFAULTS};
use crate::error::Result;
use crate::window;
use serde_json::{Map, Value};

pub(crate) const FAMILY: Family = Family {
    hf_class: "MistralForCausalLM",
    model_type: "mistral",
    defaults: LLAMA_DEFAULTS,
    read,
    write,
};

fn read(c: &ReadCtx<'_>) -> Result<FamilyConfig> {
    check_silu(c)?;
    Ok(FamilyConfig {
        sliding_window: window::every_block(c.path, c.obj, c.num_layers)?,
        ..FamilyConfig::default()
    })
}

fn write(w: &WriteCtx<'_>, obj: &mut Map<String, Value>) {
    write_silu(obj);
    if w.base.is_none() {
        window::write_every_block(obj, w.sliding_window);
    }
}
