//! GGUF loading: metadata to config, tensors dequantized to f32 and renamed to Hugging
//! Face names (Q and K un-permuted back to HF layout), tokenizer built from the
//! `tokenizer.ggml.*` metadata.

use crate::config::{Architecture, LlamaConfig, RopeScaling};
use crate::error::{io_err, CandleContext, ModelError, Result};
use crate::load::{assemble, TensorMap};
use crate::model::{Model, ModelSource, SourceDtype};
use candle_core::quantized::gguf_file::{Content, TensorInfo, Value, VersionedMagic};
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::fs;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::byte_level::ByteLevel as ByteLevelProcessor;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

fn gguf_err(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Gguf {
        path: path.into(),
        reason: reason.into(),
    }
}

struct Meta<'a> {
    path: &'a Path,
    md: &'a HashMap<String, Value>,
}

impl<'a> Meta<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.md.get(key)
    }
    fn req(&self, key: &str) -> Result<&'a Value> {
        self.get(key).ok_or_else(|| ModelError::MissingKey {
            path: self.path.into(),
            key: key.into(),
        })
    }
    fn num(&self, v: &Value, key: &str) -> Result<f64> {
        Ok(match v {
            Value::U8(x) => *x as f64,
            Value::I8(x) => *x as f64,
            Value::U16(x) => *x as f64,
            Value::I16(x) => *x as f64,
            Value::U32(x) => *x as f64,
            Value::I32(x) => *x as f64,
            Value::U64(x) => *x as f64,
            Value::I64(x) => *x as f64,
            Value::F32(x) => *x as f64,
            Value::F64(x) => *x,
            other => {
                return Err(gguf_err(
                    self.path,
                    format!("metadata '{key}' should be a number, is {other:?}"),
                ))
            }
        })
    }
    fn usize(&self, key: &str) -> Result<usize> {
        let v = self.num(self.req(key)?, key)?;
        if v < 0.0 || v.fract() != 0.0 {
            return Err(gguf_err(
                self.path,
                format!("metadata '{key}' = {v} is not a count"),
            ));
        }
        Ok(v as usize)
    }
    fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.get(key).map(|v| self.num(v, key)).transpose()
    }
    fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        Ok(self.opt_f64(key)?.map(|v| v as u32))
    }
    fn opt_str(&self, key: &str) -> Option<&'a str> {
        self.get(key)
            .and_then(|v| v.to_string().ok())
            .map(|s| s.as_str())
    }
    fn strings(&self, key: &str) -> Result<Vec<&'a str>> {
        let arr = self
            .req(key)?
            .to_vec()
            .map_err(|_| gguf_err(self.path, format!("metadata '{key}' is not an array")))?;
        arr.iter()
            .map(|v| {
                v.to_string().map(|s| s.as_str()).map_err(|_| {
                    gguf_err(
                        self.path,
                        format!("metadata '{key}' has a non-string element"),
                    )
                })
            })
            .collect()
    }
}

/// Inverts llama.cpp's Q/K permutation for interleaved rope:
/// GGUF row `h·d + 2i + j` holds HF row `h·d + j·d/2 + i`.
fn unpermute(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let hd = out / n_head;
    w.reshape((n_head, hd / 2, 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))
}

/// The most dimensions a GGUF tensor may have (`GGML_MAX_DIMS` of ggml).
const MAX_DIMS: u32 = 4;
/// How deep metadata arrays may nest. llama.cpp writes flat arrays; the cap keeps a
/// hostile file from recursing the reader off the stack.
const MAX_ARRAY_DEPTH: usize = 8;

/// GGML type ids this loader dequantizes, with their names (ggml's `ggml_type`).
fn ggml_dtype(id: u32) -> std::result::Result<GgmlDType, String> {
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
    let magic: [u8; 4] = h
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
    let version = h.u32("version")?;
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
    h.wide = version >= 2;
    let tensor_count = h.length("tensor count")?;
    let kv_count = h.length("metadata count")?;
    let prefix = if h.wide { 8 } else { 4 };
    // Smallest possible entries: a key and a type and one byte; a name, the dimension
    // count, one dimension, the type and the offset.
    h.check_count(kv_count, prefix + 4 + 1, "metadata entry")?;
    h.check_count(tensor_count, prefix + 4 + 4 + 4 + 8, "tensor")?;
    let mut metadata = HashMap::new();
    for _ in 0..kv_count {
        let key = h.string("metadata key")?;
        let ty = h.u32(&key)?;
        let value = h.value(ty, &key, 0)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(gguf_err(
                path,
                format!("metadata key '{key}' appears twice"),
            ));
        }
    }
    struct Raw {
        name: String,
        dims: Vec<usize>,
        dtype: GgmlDType,
        offset: u64,
        bytes: u64,
    }
    let mut raws: Vec<Raw> = Vec::with_capacity(tensor_count as usize);
    for _ in 0..tensor_count {
        let name = h.string("tensor name")?;
        let bad = |reason: String| gguf_err(path, format!("tensor '{name}': {reason}"));
        let n_dims = h.u32(&name)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(bad(format!(
                "{n_dims} dimensions (expected 1 to {MAX_DIMS})"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = if h.wide {
                h.u64(&name)?
            } else {
                u64::from(h.u32(&name)?)
            };
            dims.push(d);
        }
        let type_id = h.u32(&name)?;
        let offset = h.u64(&name)?;
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
        raws.push(Raw {
            name,
            dims: dims.iter().map(|&d| d as usize).collect(),
            dtype,
            offset,
            bytes,
        });
    }
    let alignment = match metadata.get("general.alignment") {
        None => 32,
        Some(Value::U32(a)) if a.is_power_of_two() => u64::from(*a),
        Some(other) => {
            return Err(gguf_err(
                path,
                format!("metadata 'general.alignment' = {other:?}: expected a u32 power of two"),
            ))
        }
    };
    let data_offset = h.pos.div_ceil(alignment) * alignment;
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
    Ok(Content {
        magic,
        metadata,
        tensor_infos,
        tensor_data_offset: data_offset,
    })
}

/// Loads a GGUF file (architectures `llama` and `qwen2`), dequantized to f32.
pub fn load_gguf(path: &Path) -> Result<Model> {
    if !path.exists() {
        return Err(ModelError::NotFound { path: path.into() });
    }
    let file = fs::File::open(path).map_err(io_err(path))?;
    load_gguf_from(path, BufReader::new(file))
}

/// Loads a GGUF model from any seekable reader (a file, or bytes in memory in tests and
/// fuzzing); `path` is only used in messages.
pub fn load_gguf_from<R: Read + Seek>(path: &Path, mut reader: R) -> Result<Model> {
    let ct = read_gguf_header(path, &mut reader)?;
    let m = Meta {
        path,
        md: &ct.metadata,
    };
    let arch_name = m.opt_str("general.architecture").unwrap_or("");
    let (architecture, permuted) = match arch_name {
        // llama.cpp's convert permutes Q and K of `llama` models for its interleaved rope.
        "llama" => (Architecture::Llama, true),
        "qwen2" => (Architecture::Qwen2, false),
        other => {
            return Err(ModelError::Unsupported {
                path: path.into(),
                what: format!("GGUF architecture '{other}' (supported: llama, qwen2)"),
            })
        }
    };
    let a = arch_name;
    let hidden_size = m.usize(&format!("{a}.embedding_length"))?;
    let num_attention_heads = m.usize(&format!("{a}.attention.head_count"))?;
    let num_key_value_heads = match m.get(&format!("{a}.attention.head_count_kv")) {
        Some(_) => m.usize(&format!("{a}.attention.head_count_kv"))?,
        None => num_attention_heads,
    };
    let head_dim = match m.get(&format!("{a}.attention.key_length")) {
        Some(_) => m.usize(&format!("{a}.attention.key_length"))?,
        None => hidden_size / num_attention_heads.max(1),
    };
    if let Some(rd) = m.opt_f64(&format!("{a}.rope.dimension_count"))? {
        if rd as usize != head_dim {
            return Err(ModelError::Unsupported {
                path: path.into(),
                what: format!("partial rotary embedding ({a}.rope.dimension_count = {rd}, head_dim = {head_dim})"),
            });
        }
    }
    if ct.tensor_infos.contains_key("rope_freqs.weight") {
        return Err(ModelError::Unsupported {
            path: path.into(),
            what: "tensor 'rope_freqs.weight' (per-frequency rope factors)".into(),
        });
    }
    let max_position_embeddings = match m.get(&format!("{a}.context_length")) {
        Some(_) => m.usize(&format!("{a}.context_length"))?,
        None => 2048,
    };
    let rope_scaling = match m.opt_str(&format!("{a}.rope.scaling.type")) {
        None | Some("none") => None,
        Some("linear") => Some(RopeScaling::Linear {
            factor: m
                .opt_f64(&format!("{a}.rope.scaling.factor"))?
                .unwrap_or(1.0),
        }),
        Some(other) => {
            return Err(ModelError::Unsupported {
                path: path.into(),
                what: format!("GGUF rope scaling type '{other}'"),
            })
        }
    };
    let tok_embd =
        ct.tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| ModelError::MissingTensor {
                path: path.into(),
                name: "token_embd.weight".into(),
            })?;
    let vocab_size = tok_embd.shape.dims().first().copied().unwrap_or(0);
    let tie = !ct.tensor_infos.contains_key("output.weight");
    let config = LlamaConfig {
        architecture,
        hidden_size,
        intermediate_size: m.usize(&format!("{a}.feed_forward_length"))?,
        num_attention_heads,
        num_key_value_heads,
        num_hidden_layers: m.usize(&format!("{a}.block_count"))?,
        head_dim,
        rms_norm_eps: m
            .opt_f64(&format!("{a}.attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5),
        rope_theta: m
            .opt_f64(&format!("{a}.rope.freq_base"))?
            .unwrap_or(10000.0),
        rope_scaling,
        vocab_size,
        max_position_embeddings,
        tie_word_embeddings: tie,
        bos_token_id: m.opt_u32("tokenizer.ggml.bos_token_id")?,
        eos_token_id: m
            .opt_u32("tokenizer.ggml.eos_token_id")?
            .into_iter()
            .collect(),
    };
    config.validate(path)?;
    // Every block has at least 9 tensors: refuse a block count the file cannot back
    // before building a name list sized by it.
    let min_tensors = config.num_hidden_layers.saturating_mul(9).saturating_add(2);
    if min_tensors > ct.tensor_infos.len() {
        return Err(gguf_err(
            path,
            format!(
                "{a}.block_count = {} needs at least {min_tensors} tensors, the file has {}",
                config.num_hidden_layers,
                ct.tensor_infos.len()
            ),
        ));
    }

    // GGUF name -> HF name, for the tensors of the model.
    let mut names: Vec<(String, String)> = vec![
        (
            "token_embd.weight".into(),
            "model.embed_tokens.weight".into(),
        ),
        ("output_norm.weight".into(), "model.norm.weight".into()),
    ];
    if !tie {
        names.push(("output.weight".into(), "lm_head.weight".into()));
    }
    for l in 0..config.num_hidden_layers {
        for (g, h) in [
            ("attn_norm", "input_layernorm"),
            ("ffn_norm", "post_attention_layernorm"),
            ("attn_q", "self_attn.q_proj"),
            ("attn_k", "self_attn.k_proj"),
            ("attn_v", "self_attn.v_proj"),
            ("attn_output", "self_attn.o_proj"),
            ("ffn_gate", "mlp.gate_proj"),
            ("ffn_up", "mlp.up_proj"),
            ("ffn_down", "mlp.down_proj"),
        ] {
            names.push((
                format!("blk.{l}.{g}.weight"),
                format!("model.layers.{l}.{h}.weight"),
            ));
            let gb = format!("blk.{l}.{g}.bias");
            if ct.tensor_infos.contains_key(&gb) {
                names.push((gb, format!("model.layers.{l}.{h}.bias")));
            }
        }
    }
    let mut tensors = HashMap::new();
    let mut quant = None;
    for (g, h) in names {
        let info = ct
            .tensor_infos
            .get(&g)
            .ok_or_else(|| ModelError::MissingTensor {
                path: path.into(),
                name: g.clone(),
            })?;
        if g.ends_with("attn_q.weight") && quant.is_none() {
            quant = Some(format!("{:?}", info.ggml_dtype));
        }
        let q = ct
            .tensor(&mut reader, &g, &Device::Cpu)
            .map_err(|e| gguf_err(path, format!("tensor '{g}': {e}")))?;
        let mut t = q
            .dequantize(&Device::Cpu)
            .ctx(|| format!("{}: dequantizing tensor '{g}'", path.display()))?;
        if permuted
            && (g.ends_with("attn_q.weight")
                || g.ends_with("attn_k.weight")
                || g.ends_with("attn_q.bias")
                || g.ends_with("attn_k.bias"))
        {
            let heads = if g.contains("attn_q") {
                config.num_attention_heads
            } else {
                config.num_key_value_heads
            };
            t = if t.rank() == 1 {
                let n = t.dims()[0];
                unpermute(&t.reshape((n, 1)).ctx(|| g.clone())?, heads).and_then(|t| t.reshape(n))
            } else {
                unpermute(&t, heads)
            }
            .ctx(|| {
                format!(
                    "{}: un-permuting tensor '{g}' ({heads} heads)",
                    path.display()
                )
            })?;
        }
        tensors.insert(h, t);
    }
    let tokenizer = tokenizer_from_gguf(&m)?;
    let (embed_tokens, blocks, norm, lm_head) = assemble(
        &config,
        TensorMap {
            root: path.into(),
            tensors,
        },
    )?;
    Ok(Model {
        config,
        embed_tokens,
        blocks,
        norm,
        lm_head,
        tokenizer,
        source: ModelSource {
            path: path.into(),
            dtype: SourceDtype::Gguf(quant.unwrap_or_else(|| "unknown".into())),
            hf_config: None,
            tokenizer_json: None,
        },
    })
}

/// The pre-tokenizer regexes of the tokenizers llama.cpp labels `llama-bpe` (Llama 3)
/// and `qwen2`, as written in their `tokenizer.json` files.
const REGEX_LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const REGEX_QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn split(path: &Path, regex: &str) -> Result<PreTokenizerWrapper> {
    Split::new(
        SplitPattern::Regex(regex.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map(Into::into)
    .map_err(|e| ModelError::Tokenizer {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// Builds a byte-level BPE tokenizer from `tokenizer.ggml.*`, set up as the model's
/// Hugging Face `tokenizer.json` is for the pre-tokenizers llama.cpp knows by name
/// (`tokenizer.ggml.pre`): `smollm` (and the StarCoder family) split digits one by one
/// before GPT-2's byte-level regex; `gpt2` uses the byte-level regex alone; `llama-bpe`
/// and `qwen2` use their own split regexes. No BOS is added on encoding unless
/// `tokenizer.ggml.add_bos_token` says so.
fn tokenizer_from_gguf(m: &Meta<'_>) -> Result<Tokenizer> {
    let path = m.path;
    let terr = |e: tokenizers::Error| ModelError::Tokenizer {
        path: path.into(),
        reason: e.to_string(),
    };
    let kind = m.opt_str("tokenizer.ggml.model").unwrap_or("");
    if kind != "gpt2" {
        return Err(ModelError::Unsupported {
            path: path.into(),
            what: format!("tokenizer model '{kind}' in tokenizer.ggml.model (supported: gpt2, byte-level BPE)"),
        });
    }
    let tokens = m.strings("tokenizer.ggml.tokens")?;
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i as u32))
        .collect();
    let merges = m
        .strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|s| {
            s.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| {
                    gguf_err(
                        path,
                        format!("tokenizer.ggml.merges entry '{s}' has no space"),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let pre = m.opt_str("tokenizer.ggml.pre").unwrap_or("gpt2");
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        // Llama 3's tokenizer.json sets ignore_merges: whole-word vocabulary hits win.
        .ignore_merges(pre == "llama-bpe" || pre == "llama3")
        .build()
        .map_err(terr)?;
    let mut tok = Tokenizer::new(bpe);
    let pre_tok: PreTokenizerWrapper = match pre {
        "smollm" | "starcoder" | "refact" | "codeshell" => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into(),
        "gpt2" | "default" => ByteLevel::new(false, true, true).into(),
        "llama-bpe" | "llama3" => Sequence::new(vec![
            split(path, REGEX_LLAMA3)?,
            ByteLevel::new(false, true, false).into(),
        ])
        .into(),
        "qwen2" => {
            tok.with_normalizer(Some(NFC)).map_err(terr)?;
            Sequence::new(vec![
                split(path, REGEX_QWEN2)?,
                ByteLevel::new(false, false, false).into(),
            ])
            .into()
        }
        other => {
            return Err(ModelError::Unsupported {
                path: path.into(),
                what: format!("pre-tokenizer '{other}' in tokenizer.ggml.pre (supported: smollm, starcoder, gpt2, llama-bpe, qwen2)"),
            })
        }
    };
    tok.with_pre_tokenizer(Some(pre_tok));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    tok.with_post_processor(Some(ByteLevelProcessor::new(true, false, true)));

    // Control (3) and user-defined (4) tokens are matched whole before BPE, as HF's
    // added tokens are; control tokens are special (skipped by decode when asked).
    if let Some(types) = m.get("tokenizer.ggml.token_type") {
        let types = types
            .to_vec()
            .map_err(|_| gguf_err(path, "metadata 'tokenizer.ggml.token_type' is not an array"))?;
        let mut added = Vec::new();
        for (i, v) in types.iter().enumerate() {
            let ty = m.num(v, "tokenizer.ggml.token_type")? as u32;
            if ty == 3 || ty == 4 {
                if let Some(t) = tokens.get(i) {
                    added.push(AddedToken::from(t.to_string(), ty == 3));
                }
            }
        }
        let (special, normal): (Vec<_>, Vec<_>) = added.into_iter().partition(|t| t.special);
        tok.add_special_tokens(special).map_err(terr)?;
        tok.add_tokens(normal).map_err(terr)?;
    }
    if m.get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false)
    {
        if let Some(bos) = m
            .opt_u32("tokenizer.ggml.bos_token_id")?
            .and_then(|i| tokens.get(i as usize))
        {
            let tp = tokenizers::processors::template::TemplateProcessing::builder()
                .try_single(format!("{bos} $A"))
                .and_then(|b| b.try_pair(format!("{bos} $A {bos} $B")))
                .map_err(|e| gguf_err(path, format!("BOS template: {e}")))?
                .special_tokens(vec![(
                    bos.to_string(),
                    m.opt_u32("tokenizer.ggml.bos_token_id")?.unwrap_or(0),
                )])
                .build()
                .map_err(|e| gguf_err(path, format!("BOS template: {e}")))?;
            tok.with_post_processor(Some(tp));
        }
    }
    Ok(tok)
}
