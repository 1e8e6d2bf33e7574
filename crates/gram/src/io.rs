//! Saving and loading a Gram as safetensors.

use crate::accumulator::GramAccumulator;
use crate::error::{GramError, Result};
use safetensors::tensor::{Dtype, SafeTensors};
use sparseswaps_tensor_io::{widen, write_safetensors_atomic, OwnedTensor, TensorSpec};
use std::collections::HashMap;
use std::path::Path;

/// Value of the `format` metadata key of a saved Gram.
pub const FORMAT: &str = "sparseswaps-gram";

/// Default tensor name of a saved Gram.
pub const TENSOR_NAME: &str = "gram";

/// Element type of a saved Gram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GramDtype {
    /// Full precision of the accumulator (default; `d_in² · 8` bytes).
    F64,
    /// Half the size; what the engine computes with anyway.
    F32,
}

impl GramDtype {
    fn as_str(self) -> &'static str {
        match self {
            GramDtype::F64 => "f64",
            GramDtype::F32 => "f32",
        }
    }
}

impl GramAccumulator {
    /// Saves `G` (full symmetric, tensor [`TENSOR_NAME`]) as safetensors, written
    /// atomically, with metadata `format` = [`FORMAT`], `tokens`, `batches`, `dtype`
    /// and `d_in`.
    pub fn save(&self, path: &Path, dtype: GramDtype) -> Result<()> {
        let d = self.d_in();
        let g = self.to_f64();
        let tensor = match dtype {
            GramDtype::F64 => OwnedTensor::f64(vec![d, d], &g),
            GramDtype::F32 => {
                let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
                OwnedTensor::f32(vec![d, d], &g32)
            }
        };
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("tokens".to_string(), self.tokens().to_string()),
            ("batches".to_string(), self.batches().to_string()),
            ("dtype".to_string(), dtype.as_str().to_string()),
            ("d_in".to_string(), d.to_string()),
        ]);
        write_safetensors_atomic(path, &[(TENSOR_NAME.to_string(), tensor)], Some(meta))?;
        Ok(())
    }

    /// Loads a Gram saved by [`Self::save`] (`FILE[:TENSOR]`; the tensor defaults to
    /// [`TENSOR_NAME`]). The token count comes from the `tokens` metadata, which must be
    /// present; the matrix must be square, f32 or f64, finite and symmetric.
    pub fn load(spec: &TensorSpec) -> Result<Self> {
        let path = &spec.path;
        let bad = |reason: String| GramError::BadFile {
            path: path.clone(),
            reason,
        };
        let bytes = sparseswaps_tensor_io::read_file(path)?;
        let st = sparseswaps_tensor_io::parse(path, &bytes)?;
        let (tokens, batches) = counts(&bytes).map_err(bad)?;
        let name = spec.name.as_deref().unwrap_or(TENSOR_NAME);
        let view = st.tensor(name).map_err(|_| {
            let mut present: Vec<String> = st.names().into_iter().map(String::from).collect();
            present.sort();
            bad(format!(
                "no tensor named '{name}'; tensors present: {}",
                present.join(", ")
            ))
        })?;
        let shape = view.shape().to_vec();
        if shape.len() != 2 || shape[0] != shape[1] {
            return Err(bad(format!(
                "tensor '{name}' has shape {shape:?}, a Gram matrix is square"
            )));
        }
        let d = shape[0];
        let data = widen::require(path, name, view.dtype(), SAVED_DTYPES)
            .and_then(|()| widen::to_f64(path, name, view.dtype(), view.data()))
            .map_err(|e| bad(format!("tensor '{name}' {}", e.reason())))?;
        check_values(name, &data, d).map_err(bad)?;
        let mut acc = GramAccumulator::from_full(d, &data, tokens)?;
        acc.batches = batches;
        Ok(acc)
    }
}

/// The dtypes a saved Gram may have (those of [`GramDtype`]).
const SAVED_DTYPES: &[Dtype] = &[Dtype::F64, Dtype::F32];

/// The `tokens` (required) and `batches` (0 when absent) metadata of a saved Gram.
fn counts(bytes: &[u8]) -> std::result::Result<(u64, u64), String> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a valid safetensors file ({e})"))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let tokens: u64 = meta
        .get("tokens")
        .ok_or_else(|| "no 'tokens' metadata: not a Gram saved by sparseswaps-gram".to_string())?
        .parse()
        .map_err(|_| format!("metadata tokens = '{}' is not a count", meta["tokens"]))?;
    let batches: u64 = meta
        .get("batches")
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    Ok((tokens, batches))
}

/// Checks that the `d x d` matrix `data` (tensor `name`) is finite and symmetric (to
/// `1e-6` of the Cauchy–Schwarz scale, what an f32 save keeps).
fn check_values(name: &str, data: &[f64], d: usize) -> std::result::Result<(), String> {
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "tensor '{name}' has a non-finite value {} at [{}, {}]",
            data[i],
            i / d,
            i % d
        ));
    }
    for i in 0..d {
        for j in 0..i {
            let (a, b) = (data[i * d + j], data[j * d + i]);
            if a != b && (a - b).abs() > 1e-6 * (data[i * d + i] * data[j * d + j]).sqrt() {
                return Err(format!(
                    "tensor '{name}' is not symmetric: [{i}, {j}] = {a}, [{j}, {i}] = {b}"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gram_of_another_dtype_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.safetensors");
        let meta = HashMap::from([("tokens".to_string(), "3".to_string())]);
        let t = OwnedTensor {
            dtype: Dtype::F16,
            shape: vec![1, 1],
            bytes: vec![0, 0x3c],
        };
        write_safetensors_atomic(&p, &[(TENSOR_NAME.into(), t)], Some(meta)).unwrap();
        let e = GramAccumulator::load(&TensorSpec::parse(p.to_str().unwrap()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{}: tensor 'gram' has dtype F16; expected f64 or f32",
                p.display()
            )
        );
    }
}
