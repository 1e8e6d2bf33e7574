//! The bounded GGUF header reader: magic, version, metadata and tensor infos, every
//! length checked against the file before anything is sized by it.

use super::meta::gguf_err;
use super::quant::ggml_dtype;
use crate::error::{io_err, Result};
use candle_core::quantized::gguf_file::{Content, TensorInfo, Value, VersionedMagic};
use candle_core::quantized::GgmlDType;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The most dimensions a GGUF tensor may have (`GGML_MAX_DIMS` of ggml).
const MAX_DIMS: u32 = 4;
/// How deep metadata arrays may nest. llama.cpp writes flat arrays; the cap keeps a
/// hostile file from recursing the reader off the stack.
const MAX_ARRAY_DEPTH: usize = 8;

/// A bounds-checked reader over a GGUF header: every length read from the file is
/// checked against the bytes left *before* anything is allocated for it, so a header
/// that claims 10^18 entries is an error, not an out-of-memory abort.
struct HeaderReader<'a, R> {
    path: &'a Path,
    r: &'a mut R,
    pos: u64,
    len: u64,
    /// Length prefixes are u32 in GGUF v1, u64 from v2 on.
    wide: bool,
}

impl<R: Read> HeaderReader<'_, R> {
    fn left(&self) -> u64 {
        self.len - self.pos
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        if n > self.left() {
            return Err(gguf_err(
                self.path,
                format!(
                    "{what} needs {n} bytes at offset {}, only {} left in the file",
                    self.pos,
                    self.left()
                ),
            ));
        }
        let mut buf = vec![0u8; n as usize];
        self.r.read_exact(&mut buf).map_err(io_err(self.path))?;
        self.pos += n;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let b = self.bytes(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&b);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn length(&mut self, what: &str) -> Result<u64> {
        if self.wide {
            self.u64(what)
        } else {
            self.u32(what).map(u64::from)
        }
    }

    /// Checks that `count` items of at least `min_size` bytes each can fit in the rest of
    /// the file, before a loop or a vector is sized by `count`.
    fn check_count(&self, count: u64, min_size: u64, what: &str) -> Result<()> {
        let needed = count.saturating_mul(min_size);
        if needed > self.left() {
            return Err(gguf_err(
                self.path,
                format!(
                    "{what} count {count} needs at least {needed} bytes, only {} left in the file",
                    self.left()
                ),
            ));
        }
        Ok(())
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.length(what)?;
        let mut v = self.bytes(n, what)?;
        // Strings are not NUL-terminated in GGUF, but some writers add one.
        while v.last() == Some(&0) {
            v.pop();
        }
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    /// Smallest encoded size of a value of type `ty` (to bound array lengths).
    fn min_size(&self, ty: u32) -> u64 {
        let prefix = if self.wide { 8 } else { 4 };
        match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 => prefix,
            9 => 4 + prefix,
            _ => 8,
        }
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>(key)?[0]),
            1 => Value::I8(self.array::<1>(key)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array(key)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(key)?)),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(i32::from_le_bytes(self.array(key)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(gguf_err(
                        self.path,
                        format!("metadata '{key}': bool byte {b} is neither 0 nor 1"),
                    ))
                }
            },
            8 => Value::String(self.string(key)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(gguf_err(
                        self.path,
                        format!("metadata '{key}': arrays nested deeper than {MAX_ARRAY_DEPTH}"),
                    ));
                }
                let elem = self.u32(key)?;
                let n = self.length(key)?;
                self.check_count(n, self.min_size(elem), &format!("metadata '{key}' array"))?;
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(self.value(elem, key, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(i64::from_le_bytes(self.array(key)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(key)?)),
            other => {
                return Err(gguf_err(
                    self.path,
                    format!("metadata '{key}' has unknown value type {other}"),
                ))
            }
        })
    }
}

/// One tensor info as read, before its data offset is placed and checked.
struct RawTensor {
    name: String,
    dims: Vec<usize>,
    dtype: GgmlDType,
    offset: u64,
    bytes: u64,
}

impl<R: Read> HeaderReader<'_, R> {
    /// Reads the magic and the version, and sets the width of length prefixes.
    fn magic(&mut self) -> Result<VersionedMagic> {
        let path = self.path;
        let magic: [u8; 4] = self
            .array("magic")
            .map_err(|_| gguf_err(path, "file shorter than the 4-byte magic"))?;
        if &magic != b"GGUF" {
            return Err(gguf_err(
                path,
                format!(
                    "wrong magic {:?} (expected \"GGUF\"); not a GGUF file",
                    String::from_utf8_lossy(&magic)
                ),
            ));
        }
        let version = self.u32("version")?;
        let magic = match version {
            1 => VersionedMagic::GgufV1,
            2 => VersionedMagic::GgufV2,
            3 => VersionedMagic::GgufV3,
            other => {
                return Err(gguf_err(
                    path,
                    format!("unsupported GGUF version {other} (supported: 1, 2, 3)"),
                ))
            }
        };
        self.wide = version >= 2;
        Ok(magic)
    }

    /// Reads `kv_count` metadata entries (already checked against the file's size).
    fn metadata(&mut self, kv_count: u64) -> Result<HashMap<String, Value>> {
        let mut metadata = HashMap::new();
        for _ in 0..kv_count {
            let key = self.string("metadata key")?;
            let ty = self.u32(&key)?;
            let value = self.value(ty, &key, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(gguf_err(
                    self.path,
                    format!("metadata key '{key}' appears twice"),
                ));
            }
        }
        Ok(metadata)
    }

    /// Reads one tensor info and checks its rank, type and element count.
    fn tensor_info(&mut self) -> Result<RawTensor> {
        let path = self.path;
        let len = self.len;
        let name = self.string("tensor name")?;
        let bad = |reason: String| gguf_err(path, format!("tensor '{name}': {reason}"));
        let n_dims = self.u32(&name)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(bad(format!(
                "{n_dims} dimensions (expected 1 to {MAX_DIMS})"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = if self.wide {
                self.u64(&name)?
            } else {
                u64::from(self.u32(&name)?)
            };
            dims.push(d);
        }
        let type_id = self.u32(&name)?;
        let offset = self.u64(&name)?;
        let dtype = ggml_dtype(type_id).map_err(|e| bad(format!("unsupported {e}")))?;
        // GGUF lists dimensions innermost first; candle's shapes are outermost first.
        dims.reverse();
        // Zero-sized tensors are refused: no model tensor is empty, and an empty buffer
        // would reach candle's block casts with a dangling pointer.
        let elems = dims
            .iter()
            .try_fold(
                1u64,
                |acc, &d| if d == 0 { None } else { acc.checked_mul(d) },
            )
            .filter(|&e| e <= len.saturating_mul(8))
            .ok_or_else(|| {
                bad(format!(
                    "shape {dims:?} has a zero dimension or more elements than the file can hold"
                ))
            })?;
        let block = dtype.block_size() as u64;
        if elems % block != 0 {
            return Err(bad(format!(
                "{elems} elements are not a multiple of the {dtype:?} block size {block}"
            )));
        }
        let bytes = elems / block * dtype.type_size() as u64;
        Ok(RawTensor {
            name,
            dims: dims.iter().map(|&d| d as usize).collect(),
            dtype,
            offset,
            bytes,
        })
    }
}

/// The data alignment: `general.alignment` (a u32 power of two), 32 by default.
fn alignment(path: &Path, metadata: &HashMap<String, Value>) -> Result<u64> {
    match metadata.get("general.alignment") {
        None => Ok(32),
        Some(Value::U32(a)) if a.is_power_of_two() => Ok(u64::from(*a)),
        Some(other) => Err(gguf_err(
            path,
            format!("metadata 'general.alignment' = {other:?}: expected a u32 power of two"),
        )),
    }
}

/// Places each tensor's data after `data_offset`, checks it lies inside a file of `len`
/// bytes, and refuses a name that appears twice.
fn place(
    path: &Path,
    raws: Vec<RawTensor>,
    data_offset: u64,
    len: u64,
) -> Result<HashMap<String, TensorInfo>> {
    let mut tensor_infos = HashMap::new();
    for raw in raws {
        let start = data_offset.checked_add(raw.offset);
        let end = start.and_then(|s| s.checked_add(raw.bytes));
        match end {
            Some(end) if end <= len => {}
            _ => {
                return Err(gguf_err(
                    path,
                    format!(
                        "tensor '{}': needs {} bytes at offset {}, only {} remaining in file",
                        raw.name,
                        raw.bytes,
                        data_offset.saturating_add(raw.offset),
                        len.saturating_sub(data_offset.saturating_add(raw.offset))
                    ),
                ))
            }
        }
        let info = TensorInfo {
            ggml_dtype: raw.dtype,
            shape: raw.dims.into(),
            offset: raw.offset,
        };
        if tensor_infos.insert(raw.name.clone(), info).is_some() {
            return Err(gguf_err(
                path,
                format!("tensor '{}' appears twice", raw.name),
            ));
        }
    }
    Ok(tensor_infos)
}

/// Reads and checks the header of a GGUF file: magic, version, metadata and tensor
/// infos. `path` is only used in messages.
///
/// Everything the rest of the loader relies on is checked here, before any tensor is
/// read: counts and lengths against the bytes the file has (nothing is allocated from an
/// unchecked size), GGML types this loader can dequantize, at most 4 non-zero
/// dimensions whose element count fits in memory arithmetic, the alignment (a power of
/// two), and every tensor's data lying inside the file. So reading the tensors
/// afterwards (`Content::tensor`) cannot fail on a bound or overflow.
pub fn read_gguf_header<R: Read + Seek>(path: &Path, reader: &mut R) -> Result<Content> {
    let len = reader.seek(SeekFrom::End(0)).map_err(io_err(path))?;
    reader.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
    let mut h = HeaderReader {
        path,
        r: reader,
        pos: 0,
        len,
        wide: true,
    };
    let magic = h.magic()?;
    let tensor_count = h.length("tensor count")?;
    let kv_count = h.length("metadata count")?;
    let prefix = if h.wide { 8 } else { 4 };
    // Smallest possible entries: a key and a type and one byte; a name, the dimension
    // count, one dimension, the type and the offset.
    h.check_count(kv_count, prefix + 4 + 1, "metadata entry")?;
    h.check_count(tensor_count, prefix + 4 + 4 + 4 + 8, "tensor")?;
    let metadata = h.metadata(kv_count)?;
    let mut raws: Vec<RawTensor> = Vec::with_capacity(tensor_count as usize);
    for _ in 0..tensor_count {
        raws.push(h.tensor_info()?);
    }
    let alignment = alignment(path, &metadata)?;
    let data_offset = h.pos.div_ceil(alignment) * alignment;
    let tensor_infos = place(path, raws, data_offset, len)?;
    Ok(Content {
        magic,
        metadata,
        tensor_infos,
        tensor_data_offset: data_offset,
    })
}
