//! Qwen3: Qwen2's block without biases (`attention_bias`, false in the released
//! models, only adds them) and with an RMSNorm `· w` over each query and key head
//! (`self_attn.q_norm`, `self_attn.k_norm`) before the rotary embedding. Sliding windows
//! as Qwen2.

use super::llama::check_silu;
use super::spec::{BlockSpec, Family, FamilyConfig, ReadCtx, LLAMA_DEFAULTS};
use crate::error::Result;
use crate::window;

pub(crate) const FAMILY: Family = Family {
    hf_class: "Qwen3ForCausalLM",
    model_type: "qwen3",
    defaults: LLAMA_DEFAULTS,
    read,
    write: super::qwen2::write,
};

fn read(c: &ReadCtx<'_>) -> Result<FamilyConfig> {
    check_silu(c)?;
    Ok(FamilyConfig {
        block: BlockSpec {
            qk_norm: true,
            ..BlockSpec::default()
        },
        sliding_window: window::qwen2(c.path, c.obj, c.num_layers)?,
        rope: None,
    })
}
