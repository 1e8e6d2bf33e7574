//! # sparseswaps-tensor-io
//!
//! Reads and writes the tensors that sparseswaps exchanges with other tools:
//!
//! - [`TensorSpec`]: the `FILE[:TENSOR]` syntax of the command line (the tensor name may
//!   be left out when the file holds exactly one tensor of the wanted rank);
//! - [`read_tensor_f32`] / [`read_tensor_f64`]: a named tensor of a safetensors file,
//!   widened from f16, bf16, f32 (or narrowed from f64) with its shape;
//! - [`write_safetensors_atomic`]: a safetensors file written under a temporary name,
//!   synced and renamed into place, so a crash never leaves a file that looks whole.
//!
//! Every error is one line that names the file and, where it applies, the tensor.

#![warn(missing_docs)]

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// `s` with its control characters (newline, carriage return, tab, escape...) written as
/// Rust escapes (`\n`), so that a name or value read from a file cannot spread an error
/// message over several lines or move the terminal's cursor.
pub fn one_line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Errors of tensor reading and writing.
#[derive(Debug, Error)]
pub enum TensorIoError {
    /// The file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file is not a valid safetensors file.
    #[error("{path}: not a valid safetensors file ({})", one_line(.reason))]
    NotSafetensors {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The named tensor is absent, or no name was given and the choice is ambiguous.
    #[error("{path}: {}; tensors present: {}", one_line(.reason), one_line(.present))]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// What was asked.
        reason: String,
        /// Names present, comma-separated (with shapes).
        present: String,
    },
    /// The tensor has a dtype or rank that is not accepted here.
    #[error("{path}: tensor '{}' {}", one_line(.name), one_line(.reason))]
    BadTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The output's directory does not exist.
    #[error("{path}: output directory {dir} does not exist")]
    NoOutputDir {
        /// The output file.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, TensorIoError>;

/// A `FILE[:TENSOR]` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// The file.
    pub path: PathBuf,
    /// The tensor name, if given.
    pub name: Option<String>,
}

impl TensorSpec {
    /// Parses `FILE[:TENSOR]`. The split is at the last `:` only when what precedes it is
    /// an existing file, so paths that contain `:` still work.
    pub fn parse(s: &str) -> TensorSpec {
        if let Some((file, name)) = s.rsplit_once(':') {
            if !name.is_empty() && Path::new(file).is_file() {
                return TensorSpec {
                    path: file.into(),
                    name: Some(name.to_string()),
                };
            }
        }
        TensorSpec {
            path: s.into(),
            name: None,
        }
    }
}

impl std::fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}:{n}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

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
fn pick<'a>(
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

fn to_f64_vec(path: &Path, name: &str, v: &TensorView<'_>) -> Result<Vec<f64>> {
    let b = v.data();
    let out: Vec<f64> = match v.dtype() {
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        Dtype::U8 => b.iter().map(|&x| x as f64).collect(),
        other => {
            return Err(TensorIoError::BadTensor {
                path: path.into(),
                name: name.into(),
                reason: format!("has dtype {other:?}; expected f64, f32, f16, bf16 or u8"),
            })
        }
    };
    Ok(out)
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
    let data = to_f64_vec(path, &name, &view)?;
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

    #[test]
    fn roundtrip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.safetensors");
        write_safetensors_atomic(
            &p,
            &[
                (
                    "w".into(),
                    OwnedTensor::f32(vec![2, 2], &[1.0, 2.0, 3.0, 4.0]),
                ),
                ("v".into(), OwnedTensor::f32(vec![2], &[1.0, 2.0])),
            ],
            None,
        )
        .unwrap();
        let spec = TensorSpec::parse(p.to_str().unwrap());
        let t = read_tensor_f32(&spec, 2).unwrap();
        assert_eq!(t.name, "w");
        assert_eq!(t.data, vec![1.0, 2.0, 3.0, 4.0]);
        let spec = TensorSpec::parse(&format!("{}:nope", p.display()));
        let e = read_tensor_f32(&spec, 2).unwrap_err().to_string();
        assert!(
            e.contains("no tensor named 'nope'") && e.contains("w [2, 2]"),
            "{e}"
        );
        let e = read_tensor_f32(&TensorSpec::parse(&format!("{}:v", p.display())), 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank 1"), "{e}");
        let bad = dir.path().join("bad.safetensors");
        fs::write(&bad, b"hello").unwrap();
        let e = read_tensor_f32(&TensorSpec::parse(bad.to_str().unwrap()), 2).unwrap_err();
        assert!(e.to_string().contains("not a valid safetensors"), "{e}");
        let e = write_atomic(&dir.path().join("no/such/x"), b"x").unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
