//! The f32 weights of one decoder block.

use super::kinds::LinearKind;
use candle_core::Tensor;

/// The weights of one decoder block, f32 on the CPU. Linear weights are `[d_out, d_in]`
/// as in PyTorch.
#[derive(Debug, Clone)]
pub struct BlockWeights {
    /// RMSNorm before attention, `[hidden]`.
    pub input_layernorm: Tensor,
    /// RMSNorm before the MLP, `[hidden]`.
    pub post_attention_layernorm: Tensor,
    /// The seven linear weights, indexed like [`LinearKind::ALL`].
    pub linear: [Tensor; 7],
    /// Optional biases (Qwen2 has q/k/v biases), indexed like [`LinearKind::ALL`].
    pub bias: [Option<Tensor>; 7],
}

impl BlockWeights {
    pub(crate) fn idx(kind: LinearKind) -> usize {
        LinearKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_default()
    }

    /// The weight of one linear layer.
    pub fn weight(&self, kind: LinearKind) -> &Tensor {
        &self.linear[Self::idx(kind)]
    }

    /// The bias of one linear layer, if it has one.
    pub fn bias(&self, kind: LinearKind) -> Option<&Tensor> {
        self.bias[Self::idx(kind)].as_ref()
    }
}
