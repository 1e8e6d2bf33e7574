//! The families: one file each, saying how its `config.json` maps onto the shared
//! decoder block ([`BlockSpec`]): norm form and placement, activation, q/k norms, fused
//! projections, embedding scale, attention scale, soft-capping, sliding windows, rotary
//! bases, tied head. Biases are read wherever a checkpoint has them.
//!
//! What is pruned is the same in every family: the seven linear layers of a block
//! ([`crate::LinearKind::ALL`]), a fused matrix (Phi-3's `qkv_proj`, `gate_up_proj`)
//! being split into its parts at load and joined again on write. Layers reading the
//! same input share one Gram ([`crate::LinearKind::input`]): q, k and v; o; gate and up;
//! down.
//!
//! Adding a family: a file here with its [`Family`] record, a variant of
//! [`Architecture`], and its entry in [`Architecture::ALL`] and `family` below; then
//! parity fixtures (`scripts/parity/make_fixtures.py`).

mod gemma2;
mod gemma3;
pub(crate) mod json;
mod llama;
mod mistral;
mod phi3;
mod qwen2;
mod qwen3;
mod spec;

pub use spec::{Activation, Architecture, BlockSpec, NormForm, RopeParams, RopeScaling};
pub(crate) use spec::{Family, ReadCtx, WriteCtx};

impl Architecture {
    /// Every family, in the order error messages list them.
    pub const ALL: [Architecture; 7] = [
        Architecture::Llama,
        Architecture::Mistral,
        Architecture::Qwen2,
        Architecture::Qwen3,
        Architecture::Gemma2,
        Architecture::Gemma3,
        Architecture::Phi3,
    ];

    pub(crate) fn family(self) -> &'static Family {
        match self {
            Architecture::Llama => &llama::FAMILY,
            Architecture::Mistral => &mistral::FAMILY,
            Architecture::Qwen2 => &qwen2::FAMILY,
            Architecture::Qwen3 => &qwen3::FAMILY,
            Architecture::Gemma2 => &gemma2::FAMILY,
            Architecture::Gemma3 => &gemma3::FAMILY,
            Architecture::Phi3 => &phi3::FAMILY,
        }
    }

    /// The `architectures[0]` value of `config.json`.
    pub fn hf_class(self) -> &'static str {
        self.family().hf_class
    }

    /// The `model_type` value of `config.json`.
    pub fn model_type(self) -> &'static str {
        self.family().model_type
    }

    /// The family of an `architectures[0]` class or a `model_type`.
    pub fn from_hf(name: &str) -> Option<Architecture> {
        Architecture::ALL
            .into_iter()
            .find(|a| a.hf_class() == name || a.model_type() == name)
    }

    /// The supported classes (`LlamaForCausalLM, …`), for error messages.
    pub(crate) fn supported_classes() -> String {
        Self::ALL.map(Architecture::hf_class).join(", ")
    }

    /// The supported `model_type`s, for error messages.
    pub(crate) fn supported_model_types() -> String {
        Self::ALL.map(Architecture::model_type).join(", ")
    }
}
