//! The GGML tensor types this loader reads, and dequantization of one tensor (its
//! quantized blocks) to f32 through candle's GGML kernels.

use super::meta::gguf_err;
use crate::error::{CandleContext, Result};
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use std::io::{Read, Seek};
use std::path::Path;

/// GGML type ids this loader dequantizes, with their names (ggml's `ggml_type`).
pub(super) fn ggml_dtype(id: u32) -> std::result::Result<GgmlDType, String> {
    Ok(match id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        other => {
            let name = match other {
                4 | 5 => "Q4_2/Q4_3 (removed from ggml)",
                9 => "Q8_1",
                16..=23 | 29 => "an IQ quantization",
                24 => "I8",
                25 => "I16",
                26 => "I32",
                27 => "I64",
                28 => "F64",
                34 | 35 => "TQ1_0/TQ2_0",
                39 => "MXFP4",
                _ => "unknown",
            };
            return Err(format!(
                "GGML type {other} ({name}); supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q8_K"
            ));
        }
    })
}

/// Reads tensor `name` of `ct` from `reader` and dequantizes it to f32. The header
/// checks of [`super::read_gguf_header`] guarantee the data lies inside the file.
pub(super) fn dequantize<R: Read + Seek>(
    path: &Path,
    ct: &Content,
    reader: &mut R,
    name: &str,
) -> Result<Tensor> {
    let q = ct
        .tensor(reader, name, &Device::Cpu)
        .map_err(|e| gguf_err(path, format!("tensor '{name}': {e}")))?;
    q.dequantize(&Device::Cpu)
        .ctx(|| format!("{}: dequantizing tensor '{name}'", path.display()))
}
