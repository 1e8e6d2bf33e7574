//! Reading a named tensor as f64, f32 or raw u8 values.

use crate::error::{Result, TensorIoError};
use crate::file::{parse, pick, read_file};
use crate::spec::TensorSpec;
use crate::widen;
use safetensors::tensor::Dtype;
use std::path::Path;

/// A tensor loaded as a flat vector with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    /// The tensor's name in the file.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<T>,
    /// The dtype it had in the file.
    pub dtype: Dtype,
}

/// Reads the tensor `name` (or the only one of rank `rank`) from safetensors `bytes` as
/// f64. The in-memory form of [`read_tensor_f64`]: `path` is only used in messages.
pub fn tensor_f64_from_bytes(
    path: &Path,
    bytes: &[u8],
    name: Option<&str>,
    rank: usize,
) -> Result<Loaded<f64>> {
    let st = parse(path, bytes)?;
    let (name, view) = pick(path, &st, name, rank)?;
    if view.shape().len() != rank {
        return Err(TensorIoError::BadTensor {
            path: path.into(),
            name,
            reason: format!(
                "has rank {} (shape {:?}), expected rank {rank}",
                view.shape().len(),
                view.shape()
            ),
        });
    }
    let data = widen::to_f64(path, &name, view.dtype(), view.data())?;
    Ok(Loaded {
        shape: view.shape().to_vec(),
        dtype: view.dtype(),
        name,
        data,
    })
}

/// Reads the tensor `name` (or the only one of rank `rank`) from safetensors `bytes` as
/// raw u8 values (masks). The in-memory form of [`read_tensor_u8`]: `path` is only used
/// in messages.
pub fn tensor_u8_from_bytes(
    path: &Path,
    bytes: &[u8],
    name: Option<&str>,
    rank: usize,
) -> Result<Loaded<u8>> {
    let st = parse(path, bytes)?;
    let (name, view) = pick(path, &st, name, rank)?;
    if view.dtype() != Dtype::U8 && view.dtype() != Dtype::BOOL {
        return Err(TensorIoError::BadTensor {
            path: path.into(),
            name,
            reason: format!("has dtype {:?}; a mask must be u8 or bool", view.dtype()),
        });
    }
    if view.shape().len() != rank {
        return Err(TensorIoError::BadTensor {
            path: path.into(),
            name,
            reason: format!("has rank {}, expected rank {rank}", view.shape().len()),
        });
    }
    Ok(Loaded {
        shape: view.shape().to_vec(),
        dtype: view.dtype(),
        name,
        data: view.data().to_vec(),
    })
}

/// Reads the tensor named by `spec` (of rank `rank`) as f64.
pub fn read_tensor_f64(spec: &TensorSpec, rank: usize) -> Result<Loaded<f64>> {
    let bytes = read_file(&spec.path)?;
    tensor_f64_from_bytes(&spec.path, &bytes, spec.name.as_deref(), rank)
}

/// Reads the tensor named by `spec` (of rank `rank`) as f32 (f64 input is narrowed).
pub fn read_tensor_f32(spec: &TensorSpec, rank: usize) -> Result<Loaded<f32>> {
    let t = read_tensor_f64(spec, rank)?;
    Ok(Loaded {
        name: t.name,
        shape: t.shape,
        dtype: t.dtype,
        data: t.data.into_iter().map(|v| v as f32).collect(),
    })
}

/// Reads the tensor named by `spec` (of rank `rank`) as raw u8 values (masks).
pub fn read_tensor_u8(spec: &TensorSpec, rank: usize) -> Result<Loaded<u8>> {
    let bytes = read_file(&spec.path)?;
    tensor_u8_from_bytes(&spec.path, &bytes, spec.name.as_deref(), rank)
}
