//! Widening a tensor's raw little-endian bytes to `f32` or `f64`: the one place where
//! sparseswaps turns a safetensors dtype into floats.
//!
//! Every conversion here is exact (f16, bf16 and f32 values are all representable in
//! f32 and f64, u8 in both), so where a tensor is read does not change its values.
//! Each function takes the file and tensor names only to put them in its error.
//!
//! ```
//! use safetensors::tensor::Dtype;
//! use sparseswaps_tensor_io::widen;
//! use std::path::Path;
//!
//! let bytes = half::bf16::from_f32(1.5).to_le_bytes();
//! let v = widen::to_f32(Path::new("w.safetensors"), "w", Dtype::BF16, &bytes).unwrap();
//! assert_eq!(v, vec![1.5]);
//! let e = widen::to_f32(Path::new("w.safetensors"), "w", Dtype::I32, &[0; 4]).unwrap_err();
//! assert_eq!(
//!     e.to_string(),
//!     "w.safetensors: tensor 'w' has dtype I32; expected f32, f16 or bf16"
//! );
//! ```

use crate::error::{one_line, TensorIoError};
use safetensors::tensor::Dtype;
use std::fmt;
use std::path::{Path, PathBuf};

/// The dtypes [`to_f64`] reads, in the order its error lists them.
pub const TO_F64: &[Dtype] = &[Dtype::F64, Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::U8];

/// The dtypes [`to_f32`] reads (only those it can widen exactly; f64 is not narrowed
/// here), in the order its error lists them.
pub const TO_F32: &[Dtype] = &[Dtype::F32, Dtype::F16, Dtype::BF16];

/// A tensor that cannot be widened. Its message is one line naming the file and tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WidenError {
    /// The dtype is not among those accepted.
    Dtype {
        /// The file the tensor came from.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: Dtype,
        /// The dtypes accepted where it was read.
        expected: &'static [Dtype],
    },
    /// The byte count is not a whole number of values of the dtype.
    Length {
        /// The file the tensor came from.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: Dtype,
        /// Its byte count.
        len: usize,
    },
}

impl WidenError {
    /// The file the tensor came from.
    pub fn path(&self) -> &Path {
        match self {
            WidenError::Dtype { path, .. } | WidenError::Length { path, .. } => path,
        }
    }

    /// The tensor's name.
    pub fn name(&self) -> &str {
        match self {
            WidenError::Dtype { name, .. } | WidenError::Length { name, .. } => name,
        }
    }

    /// What is wrong, without the file and tensor (`has dtype I32; expected f32, f16 or
    /// bf16`), for callers that name them in their own words.
    pub fn reason(&self) -> String {
        match self {
            WidenError::Dtype {
                dtype, expected, ..
            } => format!("has dtype {dtype:?}; expected {}", dtype_list(expected)),
            WidenError::Length { dtype, len, .. } => format!(
                "has {len} bytes, not a whole number of {dtype:?} values of {} bytes",
                dtype.bitsize() / 8
            ),
        }
    }
}

impl fmt::Display for WidenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: tensor '{}' {}",
            self.path().display(),
            one_line(self.name()),
            self.reason()
        )
    }
}

impl std::error::Error for WidenError {}

impl From<WidenError> for TensorIoError {
    fn from(e: WidenError) -> Self {
        let reason = e.reason();
        let (WidenError::Dtype { path, name, .. } | WidenError::Length { path, name, .. }) = e;
        TensorIoError::BadTensor { path, name, reason }
    }
}

/// `f64, f32 or u8`: dtypes as a reader would name them.
fn dtype_list(dtypes: &[Dtype]) -> String {
    let names: Vec<String> = dtypes
        .iter()
        .map(|d| format!("{d:?}").to_lowercase())
        .collect();
    match names.split_last() {
        None => "nothing".into(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Checks that `dtype` is one of `accepted`, for readers that take fewer dtypes than
/// [`to_f64`] or [`to_f32`] do (a saved Gram is f64 or f32 only).
pub fn require(
    path: &Path,
    name: &str,
    dtype: Dtype,
    accepted: &'static [Dtype],
) -> Result<(), WidenError> {
    if accepted.contains(&dtype) {
        Ok(())
    } else {
        Err(WidenError::Dtype {
            path: path.into(),
            name: name.into(),
            dtype,
            expected: accepted,
        })
    }
}

/// The values of `bytes` as `N`-byte little-endian chunks, or the length error.
fn chunks<'a, const N: usize>(
    path: &Path,
    name: &str,
    dtype: Dtype,
    bytes: &'a [u8],
) -> Result<impl Iterator<Item = [u8; N]> + 'a, WidenError> {
    if bytes.len() % N != 0 {
        return Err(WidenError::Length {
            path: path.into(),
            name: name.into(),
            dtype,
            len: bytes.len(),
        });
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| <[u8; N]>::try_from(c).unwrap_or([0; N])))
}

/// Widens the little-endian `bytes` of tensor `name` of file `path` (dtype `dtype`, one
/// of [`TO_F64`]) to f64.
pub fn to_f64(path: &Path, name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f64>, WidenError> {
    require(path, name, dtype, TO_F64)?;
    Ok(match dtype {
        Dtype::F64 => chunks::<8>(path, name, dtype, bytes)?
            .map(f64::from_le_bytes)
            .collect(),
        Dtype::F32 => chunks::<4>(path, name, dtype, bytes)?
            .map(|c| f32::from_le_bytes(c) as f64)
            .collect(),
        Dtype::F16 => chunks::<2>(path, name, dtype, bytes)?
            .map(|c| half::f16::from_le_bytes(c).to_f64())
            .collect(),
        Dtype::BF16 => chunks::<2>(path, name, dtype, bytes)?
            .map(|c| half::bf16::from_le_bytes(c).to_f64())
            .collect(),
        // U8, the last of TO_F64.
        _ => bytes.iter().map(|&x| x as f64).collect(),
    })
}

/// Widens the little-endian `bytes` of tensor `name` of file `path` (dtype `dtype`, one
/// of [`TO_F32`]) to f32.
pub fn to_f32(path: &Path, name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>, WidenError> {
    require(path, name, dtype, TO_F32)?;
    Ok(match dtype {
        Dtype::F32 => chunks::<4>(path, name, dtype, bytes)?
            .map(f32::from_le_bytes)
            .collect(),
        Dtype::F16 => chunks::<2>(path, name, dtype, bytes)?
            .map(|c| half::f16::from_le_bytes(c).to_f32())
            .collect(),
        // BF16, the last of TO_F32.
        _ => chunks::<2>(path, name, dtype, bytes)?
            .map(|c| half::bf16::from_le_bytes(c).to_f32())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("m.safetensors")
    }

    #[test]
    fn every_dtype_widens_exactly() {
        let vals = [1.5f32, -0.25, 3.0e-3, 65504.0];
        let f16: Vec<u8> = vals
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        let bf16: Vec<u8> = vals
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect();
        let f32b: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f64b: Vec<u8> = vals
            .iter()
            .flat_map(|&v| (v as f64).to_le_bytes())
            .collect();
        let want16: Vec<f32> = vals
            .iter()
            .map(|&v| half::f16::from_f32(v).to_f32())
            .collect();
        let wantb: Vec<f32> = vals
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_f32())
            .collect();
        let wide = |w: &[f32]| w.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        assert_eq!(to_f32(p(), "t", Dtype::F16, &f16).unwrap(), want16);
        assert_eq!(to_f32(p(), "t", Dtype::BF16, &bf16).unwrap(), wantb);
        assert_eq!(to_f32(p(), "t", Dtype::F32, &f32b).unwrap(), vals);
        assert_eq!(to_f64(p(), "t", Dtype::F16, &f16).unwrap(), wide(&want16));
        assert_eq!(to_f64(p(), "t", Dtype::BF16, &bf16).unwrap(), wide(&wantb));
        assert_eq!(to_f64(p(), "t", Dtype::F32, &f32b).unwrap(), wide(&vals));
        assert_eq!(to_f64(p(), "t", Dtype::F64, &f64b).unwrap(), wide(&vals));
        assert_eq!(
            to_f64(p(), "t", Dtype::U8, &[0, 7, 255]).unwrap(),
            [0.0, 7.0, 255.0]
        );
    }

    #[test]
    fn errors_name_file_and_tensor() {
        let e = to_f64(p(), "a\nb", Dtype::I64, &[0; 8]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.safetensors: tensor 'a\\nb' has dtype I64; expected f64, f32, f16, bf16 or u8"
        );
        let e = to_f32(p(), "w", Dtype::F64, &[0; 8]).unwrap_err();
        assert_eq!(e.reason(), "has dtype F64; expected f32, f16 or bf16");
        let e = to_f32(p(), "w", Dtype::BF16, &[0; 3]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.safetensors: tensor 'w' has 3 bytes, not a whole number of BF16 values of 2 bytes"
        );
        let e = require(p(), "g", Dtype::F16, &[Dtype::F64, Dtype::F32]).unwrap_err();
        assert_eq!(e.reason(), "has dtype F16; expected f64 or f32");
        let t: TensorIoError = e.into();
        assert_eq!(
            t.to_string(),
            "m.safetensors: tensor 'g' has dtype F16; expected f64 or f32"
        );
    }
}
