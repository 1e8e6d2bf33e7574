//! The tensor operations of the decoder forward, on `candle` tensors.

use crate::arch::{Activation, BlockSpec, NormForm};
use candle_core::{Tensor, D};

pub(super) fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let var = x.sqr()?.mean_keepdim(D::Minus1)?;
    let inv = (var + eps)?.sqrt()?.recip()?;
    x.broadcast_mul(&inv)?.broadcast_mul(w)
}

/// An RMSNorm over the last dimension in the family's form: `· w`, or `· (1 + w)`
/// (computed as transformers' Gemma does, the normalised `x` times `1 + w`).
pub(super) fn norm(
    x: &Tensor,
    w: &Tensor,
    spec: &BlockSpec,
    eps: f64,
) -> candle_core::Result<Tensor> {
    match spec.norm {
        NormForm::Weight => rms_norm(x, w, eps),
        NormForm::OnePlusWeight => rms_norm(x, &(w + 1.0)?, eps),
    }
}

/// The MLP activation.
pub(super) fn activation(x: &Tensor, spec: &BlockSpec) -> candle_core::Result<Tensor> {
    match spec.activation {
        Activation::Silu => x.silu(),
        Activation::GeluTanh => x.gelu(),
    }
}

/// `cap · tanh(x / cap)` when there is a cap.
pub(super) fn softcap(x: Tensor, cap: Option<f64>) -> candle_core::Result<Tensor> {
    match cap {
        Some(c) => (x / c)?.tanh()? * c,
        None => Ok(x),
    }
}

/// `x [n, d_in] · wᵀ + b`.
pub(super) fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let y = x.matmul(&w.t()?)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

pub(super) fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?;
    let e = x.broadcast_sub(&m)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&s)
}

/// `[b, s, n·d] -> [b, n, s, d]`.
pub(super) fn heads(
    x: &Tensor,
    b: usize,
    s: usize,
    n: usize,
    d: usize,
) -> candle_core::Result<Tensor> {
    x.reshape((b, s, n, d))?.transpose(1, 2)?.contiguous()
}

/// Repeats each key/value head `n_rep` times (head `h` uses kv head `h / n_rep`, as
/// transformers' `repeat_kv`).
pub(super) fn repeat_kv(x: Tensor, n_rep: usize) -> candle_core::Result<Tensor> {
    if n_rep == 1 {
        return Ok(x);
    }
    let (b, n_kv, s, d) = x.dims4()?;
    Tensor::cat(&vec![&x; n_rep], 2)?.reshape((b, n_kv * n_rep, s, d))
}
