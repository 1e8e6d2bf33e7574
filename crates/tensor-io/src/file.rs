//! Opening a safetensors file: reading it, parsing it (with a diagnosis of the commonest
//! corruptions), and picking the tensor a spec names.

use crate::error::{Result, TensorIoError};
use safetensors::tensor::{SafeTensors, TensorView};
use std::fs;
use std::path::Path;

/// Reads a whole file, mapping errors to [`TensorIoError::Io`].
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|error| TensorIoError::Io {
        path: path.to_path_buf(),
        error,
    })
}

/// Parses safetensors bytes, mapping errors to [`TensorIoError::NotSafetensors`].
///
/// The header length is checked here first so that the two commonest corruptions (a
/// truncated file, a length that is garbage) say how many bytes were claimed and present.
pub fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    let bad = |reason: String| TensorIoError::NotSafetensors {
        path: path.to_path_buf(),
        reason,
    };
    let Some(len_bytes) = bytes.first_chunk::<8>() else {
        return Err(bad(format!(
            "file is {} bytes, shorter than the 8-byte header length",
            bytes.len()
        )));
    };
    let header_len = u64::from_le_bytes(*len_bytes);
    let left = (bytes.len() - 8) as u64;
    if header_len > left {
        return Err(bad(format!(
            "header length {header_len} exceeds the {left} bytes after it (truncated file or corrupt header)"
        )));
    }
    SafeTensors::deserialize(bytes).map_err(|e| {
        // The parser's offset and shape errors do not say which tensor is at fault (or
        // why); find the first such tensor in the header to say both.
        let header = &bytes[8..8 + header_len as usize];
        let data_len = left - header_len;
        let reason = diagnose(header, data_len).unwrap_or_else(|| e.to_string());
        bad(reason)
    })
}

/// Names the first tensor of a safetensors header whose data offsets lie outside the
/// data section or disagree with its shape and dtype; `None` when none does (or the
/// header is not JSON: the parser's own message says that well).
fn diagnose(header: &[u8], data_len: u64) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(header).ok()?;
    for (name, t) in v.as_object()? {
        if name == "__metadata__" {
            continue;
        }
        let offsets: Vec<u64> = t
            .get("data_offsets")?
            .as_array()?
            .iter()
            .map(serde_json::Value::as_u64)
            .collect::<Option<_>>()?;
        let &[start, end] = offsets.as_slice() else {
            return Some(format!(
                "tensor '{name}': data_offsets {offsets:?} is not [start, end]"
            ));
        };
        if start > end || end > data_len {
            return Some(format!(
                "tensor '{name}': data_offsets [{start}, {end}] lie outside the {data_len} bytes of data"
            ));
        }
        let dtype = t.get("dtype")?.as_str()?;
        let bits: u64 = match dtype {
            "F64" | "I64" | "U64" | "C64" => 64,
            "F32" | "I32" | "U32" => 32,
            "F16" | "BF16" | "I16" | "U16" => 16,
            "U8" | "I8" | "BOOL" => 8,
            d if d.starts_with("F8") => 8,
            _ => continue,
        };
        let shape: Vec<u64> = t
            .get("shape")?
            .as_array()?
            .iter()
            .map(serde_json::Value::as_u64)
            .collect::<Option<_>>()?;
        let size = shape
            .iter()
            .try_fold(bits, |acc, &d| acc.checked_mul(d))
            .map(|b| b / 8);
        match size {
            None => {
                return Some(format!(
                    "tensor '{name}': shape {shape:?} has more elements than any file can hold"
                ))
            }
            Some(n) if n != end - start => {
                return Some(format!(
                    "tensor '{name}': shape {shape:?} of {dtype} needs {n} bytes, data_offsets [{start}, {end}] hold {}",
                    end - start
                ))
            }
            Some(_) => {}
        }
    }
    None
}

fn present(st: &SafeTensors<'_>) -> String {
    let mut names: Vec<String> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| format!("{n} {:?} {:?}", v.shape(), v.dtype()))
        .collect();
    names.sort();
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}

/// Picks the tensor named by `spec`, or the only tensor of rank `rank` when no name is given.
pub(crate) fn pick<'a>(
    path: &Path,
    st: &'a SafeTensors<'a>,
    name: Option<&str>,
    rank: usize,
) -> Result<(String, TensorView<'a>)> {
    match name {
        Some(n) => {
            st.tensor(n)
                .map(|v| (n.to_string(), v))
                .map_err(|_| TensorIoError::MissingTensor {
                    path: path.into(),
                    reason: format!("no tensor named '{n}'"),
                    present: present(st),
                })
        }
        None => {
            let mut cands: Vec<(String, TensorView<'a>)> = st
                .tensors()
                .into_iter()
                .filter(|(_, v)| v.shape().len() == rank)
                .collect();
            if cands.len() == 1 {
                Ok(cands.remove(0))
            } else {
                Err(TensorIoError::MissingTensor {
                    path: path.into(),
                    reason: format!(
                        "{} tensors of rank {rank}, name one as FILE:TENSOR",
                        if cands.is_empty() { "no" } else { "several" }
                    ),
                    present: present(st),
                })
            }
        }
    }
}
