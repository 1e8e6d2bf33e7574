//! The tensors of a checkpoint: each finished block's masks, and the hidden states the
//! last finished block hands on. (The pruned weights are in the staged model's shards.)

use crate::error::{io_err as io, PipelineError, Result};
use sparseswaps_model::{DType, Device, Tensor};
use sparseswaps_tensor_io::{write_safetensors_atomic, OwnedTensor};
use std::path::{Path, PathBuf};

fn block_path(staging: &Path, l: usize) -> PathBuf {
    staging
        .join("checkpoint")
        .join(format!("block-{l:05}.safetensors"))
}

fn hidden_path(staging: &Path, l: usize) -> PathBuf {
    staging
        .join("checkpoint")
        .join(format!("hidden-{l:05}.safetensors"))
}

/// One finished block's targets: `(layer name, mask)`.
pub type BlockTargets = Vec<(String, OwnedTensor)>;

/// Writes block `l`'s masks (atomically).
pub fn write_block(staging: &Path, l: usize, targets: &BlockTargets) -> Result<()> {
    let tensors: Vec<(String, OwnedTensor)> = targets
        .iter()
        .map(|(name, mask)| (format!("mask/{name}"), mask.clone()))
        .collect();
    write_safetensors_atomic(&block_path(staging, l), &tensors, None)?;
    Ok(())
}

/// Reads block `l`'s masks (as [`write_block`] wrote them), sorted by layer name.
pub fn read_block(staging: &Path, l: usize) -> Result<BlockTargets> {
    let p = block_path(staging, l);
    let bytes = sparseswaps_tensor_io::read_file(&p)?;
    let st = sparseswaps_tensor_io::parse(&p, &bytes)?;
    let bad = |reason: String| PipelineError::Checkpoint {
        path: p.clone(),
        reason,
    };
    let mut names: Vec<String> = st
        .names()
        .into_iter()
        .filter_map(|n| n.strip_prefix("mask/").map(str::to_string))
        .collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let m = st
            .tensor(&format!("mask/{name}"))
            .map_err(|e| bad(format!("mask/{name}: {e}")))?;
        out.push((name, OwnedTensor::u8(m.shape().to_vec(), m.data().to_vec())));
    }
    Ok(out)
}

/// Writes the hidden states that block `l` hands to the next (atomically).
pub fn write_hidden(staging: &Path, l: usize, hidden: &[Tensor]) -> Result<()> {
    let p = hidden_path(staging, l);
    let mut tensors = Vec::with_capacity(hidden.len());
    for (i, h) in hidden.iter().enumerate() {
        // Kept in bf16/f16 (`calibration.hidden_dtype`): widened exactly for the file.
        let data = h
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| PipelineError::Checkpoint {
                path: p.clone(),
                reason: format!("hidden states of micro-batch {i}: {e}"),
            })?;
        tensors.push((
            format!("h.{i:05}"),
            OwnedTensor::f32(h.dims().to_vec(), &data),
        ));
    }
    write_safetensors_atomic(&p, &tensors, None)?;
    Ok(())
}

/// Reads the hidden states that block `l` handed to the next: `micro_batches` tensors.
pub fn read_hidden(staging: &Path, l: usize, micro_batches: usize) -> Result<Vec<Tensor>> {
    let p = hidden_path(staging, l);
    let bytes = sparseswaps_tensor_io::read_file(&p)?;
    let st = sparseswaps_tensor_io::parse(&p, &bytes)?;
    let bad = |reason: String| PipelineError::Checkpoint {
        path: p.clone(),
        reason,
    };
    (0..micro_batches)
        .map(|i| {
            let v = st
                .tensor(&format!("h.{i:05}"))
                .map_err(|e| bad(format!("h.{i:05}: {e}")))?;
            if v.dtype() != safetensors::Dtype::F32 || v.shape().len() != 3 {
                return Err(bad(format!(
                    "h.{i:05}: {:?} {:?}, expected F32 [batch, seq, hidden]",
                    v.dtype(),
                    v.shape()
                )));
            }
            let data: Vec<f32> = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Tensor::from_vec(data, v.shape(), &Device::Cpu)
                .map_err(|e| bad(format!("h.{i:05}: {e}")))
        })
        .collect()
}

/// Deletes the hidden states of block `l` (superseded by a later block's).
pub fn remove_hidden(staging: &Path, l: usize) -> Result<()> {
    let p = hidden_path(staging, l);
    match std::fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&p)(e)),
        _ => Ok(()),
    }
}
