//! Writing tensors: safetensors serialisation with sorted metadata, and atomic file writes.

use crate::error::{Result, TensorIoError};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An owned tensor to write.
#[derive(Debug, Clone)]
pub struct OwnedTensor {
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Little-endian bytes.
    pub bytes: Vec<u8>,
}

impl OwnedTensor {
    /// A u8 tensor.
    pub fn u8(shape: Vec<usize>, data: Vec<u8>) -> Self {
        OwnedTensor {
            dtype: Dtype::U8,
            shape,
            bytes: data,
        }
    }

    /// An f32 tensor.
    pub fn f32(shape: Vec<usize>, data: &[f32]) -> Self {
        OwnedTensor {
            dtype: Dtype::F32,
            shape,
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// An f64 tensor.
    pub fn f64(shape: Vec<usize>, data: &[f64]) -> Self {
        OwnedTensor {
            dtype: Dtype::F64,
            shape,
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// Checks that the directory of `path` exists (so a failure is reported before any work).
pub fn check_output_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(TensorIoError::NoOutputDir {
            path: path.into(),
            dir,
        })
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync,
/// rename. On failure nothing is left at `path` or under the temporary name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    check_output_dir(path)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let io = |error| TensorIoError::Io {
        path: path.into(),
        error,
    };
    let res = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

/// Serialises tensors (sorted by name) with string metadata and writes them atomically.
pub fn write_safetensors_atomic(
    path: &Path,
    tensors: &[(String, OwnedTensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, t)| {
            TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (n.clone(), v))
                .map_err(|e| TensorIoError::BadTensor {
                    path: path.into(),
                    name: n.clone(),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, metadata).map_err(|e| TensorIoError::BadTensor {
        path: path.into(),
        name: "(all)".into(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &sorted_metadata(bytes))
}

/// The same safetensors bytes with the `__metadata__` entries in name order.
///
/// `safetensors::serialize` takes the metadata as a `HashMap` and writes it in that map's
/// iteration order, which changes from one process to the next: the same tensors would
/// give different file bytes. Sorting makes the file a function of its contents alone.
fn sorted_metadata(bytes: Vec<u8>) -> Vec<u8> {
    let Some(n) = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
    else {
        return bytes;
    };
    let Some(Ok(serde_json::Value::Object(header))) = bytes
        .get(8..8 + n)
        .map(serde_json::from_slice::<serde_json::Value>)
    else {
        return bytes;
    };
    let Some(serde_json::Value::Object(meta)) = header.get("__metadata__") else {
        return bytes;
    };
    let mut entries: Vec<(&String, &serde_json::Value)> = meta.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut sorted = serde_json::Map::new();
    for (k, v) in entries {
        sorted.insert(k.clone(), v.clone());
    }
    // `__metadata__` first, then the tensors in the order safetensors wrote them.
    let mut out = serde_json::Map::new();
    out.insert("__metadata__".into(), serde_json::Value::Object(sorted));
    for (k, v) in &header {
        if k != "__metadata__" {
            out.insert(k.clone(), v.clone());
        }
    }
    let Ok(mut text) = serde_json::to_string(&serde_json::Value::Object(out)) else {
        return bytes;
    };
    // Same entries, so the same length; pad as safetensors does (spaces, 8-byte
    // alignment of the data).
    if text.len() > n {
        return bytes;
    }
    text.extend(std::iter::repeat_n(' ', n - text.len()));
    let mut fixed = Vec::with_capacity(bytes.len());
    fixed.extend_from_slice(&bytes[..8]);
    fixed.extend_from_slice(text.as_bytes());
    fixed.extend_from_slice(&bytes[8 + n..]);
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::SafeTensors;

    #[test]
    fn metadata_order_does_not_change_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let write = |i: usize| {
            // A fresh map each time: a new random iteration order.
            let meta: HashMap<String, String> = (0..8)
                .map(|k| (format!("key{k}"), format!("value {k}")))
                .collect();
            let p = dir.path().join(format!("m{i}.safetensors"));
            write_safetensors_atomic(
                &p,
                &[("t".into(), OwnedTensor::u8(vec![2], vec![1, 0]))],
                Some(meta),
            )
            .unwrap();
            fs::read(p).unwrap()
        };
        let first = write(0);
        for i in 1..16 {
            assert_eq!(write(i), first, "file {i} differs from file 0");
        }
        let st = SafeTensors::deserialize(&first).unwrap();
        assert_eq!(st.tensor("t").unwrap().data(), &[1, 0]);
        let (_, meta) = SafeTensors::read_metadata(&first).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["key3"], "value 3");
    }
}
