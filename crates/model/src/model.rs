//! The in-memory model: f32 weights, the decoder forward, and the block-level interface
//! the pruning pipeline drives.

use crate::config::LlamaConfig;
use crate::error::{CandleContext, ModelError, Result};
use crate::rope;
use candle_core::{DType, Device, Tensor, D};
use serde_json::Value;
use std::path::PathBuf;
use tokenizers::Tokenizer;

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
    fn from_tensor(t: &Tensor, what: &str) -> Result<Activations> {
        let f = || -> candle_core::Result<Activations> {
            let (rows, cols) = t.dims2()?;
            let data = t.flatten_all()?.to_vec1::<f32>()?;
            Ok(Activations { rows, cols, data })
        };
        f().ctx(|| format!("capturing {what}"))
    }
}

/// The inputs of the linear layers of one block, captured during
/// [`Model::block_forward_capture`].
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
    fn idx(kind: LinearKind) -> usize {
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

/// Element type of the weights in the source files (what a writer saves by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceDtype {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// A GGUF quantization (its `general.file_type` name or number); saved as f32.
    Gguf(String),
}

impl SourceDtype {
    /// The `torch_dtype` string of a float dtype; `None` for a GGUF quantization.
    pub fn torch_dtype(&self) -> Option<&'static str> {
        match self {
            SourceDtype::F32 => Some("float32"),
            SourceDtype::F16 => Some("float16"),
            SourceDtype::BF16 => Some("bfloat16"),
            SourceDtype::Gguf(_) => None,
        }
    }
}

/// Where a model came from.
#[derive(Debug, Clone)]
pub struct ModelSource {
    /// The GGUF file or HF directory.
    pub path: PathBuf,
    /// Dtype of the source weights.
    pub dtype: SourceDtype,
    /// The source `config.json` (HF directories), kept so a writer preserves keys this
    /// crate does not model.
    pub hf_config: Option<Value>,
    /// `tokenizer.json` bytes as read (HF directories), written back verbatim.
    pub tokenizer_json: Option<Vec<u8>>,
}

/// A Llama-family causal language model with f32 weights on the CPU.
///
/// One copy of the weights is kept; a tied `lm_head` shares the embedding tensor.
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) config: LlamaConfig,
    pub(crate) embed_tokens: Tensor,
    pub(crate) blocks: Vec<BlockWeights>,
    pub(crate) norm: Tensor,
    /// `None` when tied to the embedding.
    pub(crate) lm_head: Option<Tensor>,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) source: ModelSource,
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let var = x.sqr()?.mean_keepdim(D::Minus1)?;
    let inv = (var + eps)?.sqrt()?.recip()?;
    x.broadcast_mul(&inv)?.broadcast_mul(w)
}

/// `x [n, d_in] · wᵀ + b`.
fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let y = x.matmul(&w.t()?)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?;
    let e = x.broadcast_sub(&m)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&s)
}

/// `[b, s, n·d] -> [b, n, s, d]`.
fn heads(x: &Tensor, b: usize, s: usize, n: usize, d: usize) -> candle_core::Result<Tensor> {
    x.reshape((b, s, n, d))?.transpose(1, 2)?.contiguous()
}

/// Repeats each key/value head `n_rep` times (head `h` uses kv head `h / n_rep`, as
/// transformers' `repeat_kv`).
fn repeat_kv(x: Tensor, n_rep: usize) -> candle_core::Result<Tensor> {
    if n_rep == 1 {
        return Ok(x);
    }
    let (b, n_kv, s, d) = x.dims4()?;
    Tensor::cat(&vec![&x; n_rep], 2)?.reshape((b, n_kv * n_rep, s, d))
}

impl Model {
    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Where the model was loaded from and in which dtype.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// Number of decoder blocks.
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// The weights of block `layer`.
    pub fn block(&self, layer: usize) -> Result<&BlockWeights> {
        self.blocks.get(layer).ok_or(ModelError::LayerOutOfRange {
            index: layer,
            count: self.blocks.len(),
        })
    }

    /// The embedding matrix `[vocab, hidden]`.
    pub fn embed_tokens(&self) -> &Tensor {
        &self.embed_tokens
    }

    /// The final RMSNorm weight `[hidden]`.
    pub fn final_norm(&self) -> &Tensor {
        &self.norm
    }

    /// The output projection `[vocab, hidden]` (the embedding when tied).
    pub fn lm_head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// Tokenizes `text` without adding special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| ModelError::Tokenizer {
                path: self.source.path.clone(),
                reason: e.to_string(),
            })
    }

    /// Decodes token ids to text (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| ModelError::Tokenizer {
                path: self.source.path.clone(),
                reason: e.to_string(),
            })
    }

    /// Embeds `ids`, `batch` sequences of `ids.len() / batch` tokens laid end to end:
    /// hidden states `[batch, seq, hidden]`, f32.
    pub fn embed(&self, ids: &[u32], batch: usize) -> Result<Tensor> {
        if batch == 0 || ids.is_empty() || ids.len() % batch != 0 {
            return Err(ModelError::InvalidArgument(format!(
                "embed: {} token ids do not split into {batch} sequences of equal length",
                ids.len()
            )));
        }
        let vocab = self.config.vocab_size;
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            return Err(ModelError::InvalidArgument(format!(
                "embed: token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let seq = ids.len() / batch;
        let f = || -> candle_core::Result<Tensor> {
            let idx = Tensor::from_slice(ids, ids.len(), &Device::Cpu)?;
            self.embed_tokens
                .index_select(&idx, 0)?
                .reshape((batch, seq, self.config.hidden_size))
        };
        f().ctx(|| "embedding tokens".into())
    }

    /// Runs decoder block `layer` on `hidden` `[batch, seq, hidden]` (positions
    /// `0..seq` in every sequence, causal attention): the block's output, same shape.
    pub fn block_forward(&self, layer: usize, hidden: &Tensor) -> Result<Tensor> {
        self.block_impl(layer, hidden, false).map(|(h, _)| h)
    }

    /// Like [`Model::block_forward`], and also returns the input of every linear layer
    /// of the block as `[batch · seq, d_in]` f32 matrices (rows in batch-major order).
    pub fn block_forward_capture(
        &self,
        layer: usize,
        hidden: &Tensor,
    ) -> Result<(Tensor, BlockCapture)> {
        let (h, c) = self.block_impl(layer, hidden, true)?;
        match c {
            Some(c) => Ok((h, c)),
            None => Err(ModelError::InvalidArgument("capture missing".into())),
        }
    }

    fn block_impl(
        &self,
        layer: usize,
        hidden: &Tensor,
        capture: bool,
    ) -> Result<(Tensor, Option<BlockCapture>)> {
        let w = self.block(layer)?;
        let cfg = &self.config;
        let (b, s, hsz) = hidden
            .dims3()
            .ctx(|| format!("block {layer}: hidden states must be [batch, seq, hidden]"))?;
        if hsz != cfg.hidden_size {
            return Err(ModelError::InvalidArgument(format!(
                "block {layer}: hidden states have width {hsz}, the model {}",
                cfg.hidden_size
            )));
        }
        let (cos, sin) = rope::tables(cfg, s, &Device::Cpu)?;
        let (nh, nkv, hd) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let mut caps: Vec<Tensor> = Vec::new();
        let mut f = || -> candle_core::Result<Tensor> {
            let x = hidden.reshape((b * s, hsz))?;
            // Attention.
            let xn = rms_norm(&x, &w.input_layernorm, cfg.rms_norm_eps)?;
            let lin = |t: &Tensor, k: LinearKind| linear(t, w.weight(k), w.bias(k));
            let q = heads(&lin(&xn, LinearKind::Q)?, b, s, nh, hd)?;
            let k = heads(&lin(&xn, LinearKind::K)?, b, s, nkv, hd)?;
            let v = heads(&lin(&xn, LinearKind::V)?, b, s, nkv, hd)?;
            let q = rope::apply(&q, &cos, &sin)?;
            let k = rope::apply(&k, &cos, &sin)?;
            let k = repeat_kv(k, nh / nkv)?;
            let v = repeat_kv(v, nh / nkv)?;
            let scores = (q.matmul(&k.t()?.contiguous()?)? / (hd as f64).sqrt())?;
            let scores = if s > 1 {
                let mask: Vec<f32> = (0..s * s)
                    .map(|i| {
                        if i % s > i / s {
                            f32::NEG_INFINITY
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let mask = Tensor::from_vec(mask, (s, s), &Device::Cpu)?;
                scores.broadcast_add(&mask)?
            } else {
                scores
            };
            let probs = softmax_last(&scores)?;
            let attn = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * s, nh * hd))?;
            let o = lin(&attn, LinearKind::O)?;
            let x = (x + o)?;
            // MLP.
            let xn2 = rms_norm(&x, &w.post_attention_layernorm, cfg.rms_norm_eps)?;
            let gate = lin(&xn2, LinearKind::Gate)?;
            let up = lin(&xn2, LinearKind::Up)?;
            let act = (gate.silu()? * up)?;
            let down = lin(&act, LinearKind::Down)?;
            let out = (x + down)?.reshape((b, s, hsz))?;
            if capture {
                caps = vec![xn, attn, xn2, act];
            }
            Ok(out)
        };
        let out = f().ctx(|| format!("forward of block {layer}"))?;
        let capture = if capture {
            Some(BlockCapture {
                attn: Activations::from_tensor(&caps[0], "q/k/v input")?,
                attn_out: Activations::from_tensor(&caps[1], "o_proj input")?,
                mlp: Activations::from_tensor(&caps[2], "gate/up input")?,
                mlp_act: Activations::from_tensor(&caps[3], "down_proj input")?,
            })
        } else {
            None
        };
        Ok((out, capture))
    }

    /// Final RMSNorm and `lm_head`: logits `[batch, seq, vocab]` from the last block's
    /// output `[batch, seq, hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let f = || -> candle_core::Result<Tensor> {
            let (b, s, h) = hidden.dims3()?;
            let x = rms_norm(
                &hidden.reshape((b * s, h))?,
                &self.norm,
                self.config.rms_norm_eps,
            )?;
            linear(&x, self.lm_head(), None)?.reshape((b, s, self.config.vocab_size))
        };
        f().ctx(|| "final norm and lm_head".into())
    }

    /// Full forward: logits `[batch, seq, vocab]` for `batch` sequences of
    /// `ids.len() / batch` tokens laid end to end.
    pub fn forward(&self, ids: &[u32], batch: usize) -> Result<Tensor> {
        let mut h = self.embed(ids, batch)?;
        for layer in 0..self.blocks.len() {
            h = self.block_forward(layer, &h)?;
        }
        self.logits(&h)
    }

    /// Greedy continuation: `max_new` tokens appended to `prompt` one at a time (no
    /// KV cache: each step reruns the whole sequence; meant for short checks).
    pub fn generate_greedy(&self, prompt: &[u32], max_new: usize) -> Result<Vec<u32>> {
        let mut ids = prompt.to_vec();
        let mut out = Vec::with_capacity(max_new);
        for _ in 0..max_new {
            let logits = self.forward(&ids, 1)?;
            let n = ids.len();
            let next = logits
                .narrow(1, n - 1, 1)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.argmax(0))
                .and_then(|t| t.to_scalar::<u32>())
                .ctx(|| "greedy step".into())?;
            ids.push(next);
            out.push(next);
        }
        Ok(out)
    }

    /// A linear layer's weight `[d_out, d_in]` (f32) by its Hugging Face name
    /// (`model.layers.{i}.self_attn.q_proj.weight`, … `mlp.down_proj.weight`).
    pub fn weight(&self, name: &str) -> Result<&Tensor> {
        let (layer, kind) = self.resolve(name)?;
        Ok(self.blocks[layer].weight(kind))
    }

    /// Replaces a linear layer's weight (same shape; converted to f32).
    pub fn set_weight(&mut self, name: &str, w: Tensor) -> Result<()> {
        let (layer, kind) = self.resolve(name)?;
        let old = self.blocks[layer].weight(kind);
        if old.dims() != w.dims() {
            return Err(ModelError::BadTensor {
                name: name.into(),
                reason: format!(
                    "new weight has shape {:?}, expected {:?}",
                    w.dims(),
                    old.dims()
                ),
            });
        }
        let w = w
            .to_dtype(DType::F32)
            .and_then(|w| w.contiguous())
            .ctx(|| format!("converting the new weight '{name}' to f32"))?;
        self.blocks[layer].linear[BlockWeights::idx(kind)] = w;
        Ok(())
    }

    /// Replaces a linear layer's weight from row-major f32 values.
    pub fn set_weight_f32(&mut self, name: &str, data: Vec<f32>) -> Result<()> {
        let shape = self.weight(name)?.dims().to_vec();
        if data.len() != shape.iter().product::<usize>() {
            return Err(ModelError::BadTensor {
                name: name.into(),
                reason: format!(
                    "{} values given, shape {shape:?} needs {}",
                    data.len(),
                    shape.iter().product::<usize>()
                ),
            });
        }
        let t =
            Tensor::from_vec(data, shape, &Device::Cpu).ctx(|| format!("new weight '{name}'"))?;
        self.set_weight(name, t)
    }

    /// The names of all linear layers of all blocks, in forward order.
    pub fn linear_names(&self) -> Vec<String> {
        (0..self.blocks.len())
            .flat_map(|l| LinearKind::ALL.into_iter().map(move |k| k.weight_name(l)))
            .collect()
    }

    fn resolve(&self, name: &str) -> Result<(usize, LinearKind)> {
        match LinearKind::parse_weight_name(name) {
            Some((layer, kind)) if layer < self.blocks.len() => Ok((layer, kind)),
            _ => Err(ModelError::UnknownWeight { name: name.into() }),
        }
    }
}
