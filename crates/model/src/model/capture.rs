//! The inputs of a block's linear layers as captured during its forward.

use super::kinds::{CapturePoint, LinearKind};
use crate::error::{CandleContext, Result};
use candle_core::Tensor;

/// A captured input: `rows` tokens of `cols` features, row-major f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Activations {
    /// Tokens (batch · sequence).
    pub rows: usize,
    /// Input features of the layer (`d_in`).
    pub cols: usize,
    /// `rows · cols` values, row-major.
    pub data: Vec<f32>,
}

impl Activations {
    pub(super) fn from_tensor(t: &Tensor, what: &str) -> Result<Activations> {
        let f = || -> candle_core::Result<Activations> {
            let (rows, cols) = t.dims2()?;
            let data = t.flatten_all()?.to_vec1::<f32>()?;
            Ok(Activations { rows, cols, data })
        };
        f().ctx(|| format!("capturing {what}"))
    }
}

/// The inputs of the linear layers of one block, captured during
/// [`Model::block_forward_capture`](crate::Model::block_forward_capture).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockCapture {
    /// Input of q_proj, k_proj, v_proj: `[tokens, hidden_size]`.
    pub attn: Activations,
    /// Input of o_proj: `[tokens, heads · head_dim]`.
    pub attn_out: Activations,
    /// Input of gate_proj, up_proj: `[tokens, hidden_size]`.
    pub mlp: Activations,
    /// Input of down_proj: `[tokens, intermediate_size]`.
    pub mlp_act: Activations,
}

impl BlockCapture {
    /// The captured input of one capture point.
    pub fn get(&self, point: CapturePoint) -> &Activations {
        match point {
            CapturePoint::Attn => &self.attn,
            CapturePoint::AttnOut => &self.attn_out,
            CapturePoint::Mlp => &self.mlp,
            CapturePoint::MlpAct => &self.mlp_act,
        }
    }

    /// The captured input of a linear layer.
    pub fn input_of(&self, kind: LinearKind) -> &Activations {
        self.get(kind.input())
    }
}
