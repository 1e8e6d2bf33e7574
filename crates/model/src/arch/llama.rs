//! Llama (2, 3, 3.1, 3.2; SmolLM): the shared block as it is. Pre-norms `· w`, SwiGLU,
//! optional biases, no sliding window (`LlamaForCausalLM` has none, whatever its config
//! says).

use super::json::activation_name;
use super::spec::{Family, FamilyConfig, ReadCtx, WriteCtx, LLAMA_DEFAULTS};
use crate::error::Result;
use serde_json::{json, Map, Value};

pub(crate) const FAMILY: Family = Family {
    hf_class: "LlamaForCausalLM",
    model_type: "llama",
    defaults: LLAMA_DEFAULTS,
    read,
    write,
};

fn read(c: &ReadCtx<'_>) -> Result<FamilyConfig> {
    check_silu(c)?;
    Ok(FamilyConfig::default())
}

fn write(_: &WriteCtx<'_>, obj: &mut Map<String, Value>) {
    write_silu(obj);
}

/// `hidden_act` of the SwiGLU families: SiLU (`swish` is its other name).
pub(crate) fn check_silu(c: &ReadCtx<'_>) -> Result<()> {
    activation_name(c.path, c.obj, "hidden_act", "silu", &["silu", "swish"]).map(|_| ())
}

/// Writes `hidden_act: silu`.
pub(crate) fn write_silu(obj: &mut Map<String, Value>) {
    obj.insert("hidden_act".into(), json!("silu"));
}
