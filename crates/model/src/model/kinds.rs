//! Names of the parts of a decoder block: its seven linear layers and the four inputs
//! they read.
//!
//! Every family has the seven. Phi-3 stores q, k and v as one `self_attn.qkv_proj` and
//! gate and up as one `mlp.gate_up_proj`; the model holds them split, under the names
//! below (`self_attn.q_proj`, …, as the pruning targets and [`crate::Model::weight`] know
//! them), and the writer joins them again. Layers that read one input share its Gram:
//! q, k, v (one fused target's rows, for Phi-3) and gate, up.

/// The seven linear layers of a decoder block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinearKind {
    /// `self_attn.q_proj`.
    Q,
    /// `self_attn.k_proj`.
    K,
    /// `self_attn.v_proj`.
    V,
    /// `self_attn.o_proj`.
    O,
    /// `mlp.gate_proj`.
    Gate,
    /// `mlp.up_proj`.
    Up,
    /// `mlp.down_proj`.
    Down,
}

impl LinearKind {
    /// All seven, in the order of the forward.
    pub const ALL: [LinearKind; 7] = [
        LinearKind::Q,
        LinearKind::K,
        LinearKind::V,
        LinearKind::O,
        LinearKind::Gate,
        LinearKind::Up,
        LinearKind::Down,
    ];

    /// The module path inside a block (`self_attn.q_proj`).
    pub fn module(self) -> &'static str {
        match self {
            LinearKind::Q => "self_attn.q_proj",
            LinearKind::K => "self_attn.k_proj",
            LinearKind::V => "self_attn.v_proj",
            LinearKind::O => "self_attn.o_proj",
            LinearKind::Gate => "mlp.gate_proj",
            LinearKind::Up => "mlp.up_proj",
            LinearKind::Down => "mlp.down_proj",
        }
    }

    /// The Hugging Face weight name of this layer in block `layer`
    /// (`model.layers.3.self_attn.q_proj.weight`).
    pub fn weight_name(self, layer: usize) -> String {
        format!("model.layers.{layer}.{}.weight", self.module())
    }

    /// Which captured input feeds this layer.
    pub fn input(self) -> CapturePoint {
        match self {
            LinearKind::Q | LinearKind::K | LinearKind::V => CapturePoint::Attn,
            LinearKind::O => CapturePoint::AttnOut,
            LinearKind::Gate | LinearKind::Up => CapturePoint::Mlp,
            LinearKind::Down => CapturePoint::MlpAct,
        }
    }

    /// Parses `model.layers.{i}.{module}.weight` into the layer index and kind.
    pub fn parse_weight_name(name: &str) -> Option<(usize, LinearKind)> {
        let rest = name.strip_prefix("model.layers.")?;
        let (idx, rest) = rest.split_once('.')?;
        let module = rest.strip_suffix(".weight")?;
        let layer = idx.parse().ok()?;
        let kind = LinearKind::ALL.into_iter().find(|k| k.module() == module)?;
        Some((layer, kind))
    }
}

/// The four distinct inputs of a block's linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapturePoint {
    /// The normed hidden state that q, k and v read (`d_in = hidden_size`).
    Attn,
    /// The attention output that o_proj reads (`d_in = heads · head_dim`).
    AttnOut,
    /// The normed hidden state that gate and up read (`d_in = hidden_size`).
    Mlp,
    /// `silu(gate) · up`, which down_proj reads (`d_in = intermediate_size`).
    MlpAct,
}
