//! Writing a model as a Hugging Face directory that transformers' `*ForCausalLM` and
//! this crate's loader read back: `layout` (the checkpoint's tensors from the config,
//! in transformers' order), `incremental` ([`ModelWriter`], part by part into shards);
//! this file has the dtype, the whole-model [`save_hf_dir`] and the side files
//! (config, tokenizer).

mod incremental;
mod layout;

pub use incremental::ModelWriter;
pub use layout::{block_layout, block_tensors, hf_layout, linear_shape};
pub use sparseswaps_tensor_io::shards::DEFAULT_SHARD_SIZE;

use crate::error::{io_err, ModelError, Result};
use crate::model::{Model, SourceDtype};
use candle_core::Tensor;
use safetensors::tensor::Dtype;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};

/// Element type of the written weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveDtype {
    /// 32-bit float (exact).
    F32,
    /// IEEE half (rounded to nearest even).
    F16,
    /// bfloat16 (rounded to nearest even).
    BF16,
    /// The dtype of the source files; f32 for a GGUF source (its quantized types have no
    /// safetensors equivalent).
    Source,
}

impl std::str::FromStr for SaveDtype {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<SaveDtype> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(SaveDtype::F32),
            "f16" | "float16" => Ok(SaveDtype::F16),
            "bf16" | "bfloat16" => Ok(SaveDtype::BF16),
            "source" => Ok(SaveDtype::Source),
            _ => Err(ModelError::InvalidArgument(format!(
                "dtype '{s}': expected f32, f16, bf16 or source"
            ))),
        }
    }
}

/// `dtype` with [`SaveDtype::Source`] replaced by the source's dtype.
pub(crate) fn resolve(dtype: SaveDtype, source: &SourceDtype) -> SaveDtype {
    match (dtype, source) {
        (SaveDtype::Source, SourceDtype::F16) => SaveDtype::F16,
        (SaveDtype::Source, SourceDtype::BF16) => SaveDtype::BF16,
        (SaveDtype::Source, _) => SaveDtype::F32,
        (d, _) => d,
    }
}

/// The little-endian bytes of `t` in `dtype` (resolved).
pub(crate) fn encode(name: &str, t: &Tensor, dtype: SaveDtype) -> Result<Vec<u8>> {
    let data = t
        .to_dtype(candle_core::DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|source| ModelError::Candle {
            context: format!("reading tensor '{name}' for writing"),
            source,
        })?;
    Ok(match layout::st_dtype(dtype) {
        Dtype::F16 => data
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        Dtype::BF16 => data
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
        _ => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
    })
}

/// Files of a source HF directory copied as they are (they configure generation and the
/// tokenizer's Python class, which this crate does not model).
const AUX_FILES: [&str; 4] = [
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
];

/// Writes `model` as a Hugging Face directory at `out`: `config.json`,
/// `model.safetensors` (sharded as transformers shards at its default 5 GB:
/// `model-0000i-of-0000N.safetensors` and `model.safetensors.index.json`),
/// `tokenizer.json` (and, from an HF source, its tokenizer and generation configs).
/// Everything is written into a temporary directory beside `out`, which is then renamed
/// into place: a failure leaves no partial `out`. An existing `out` is an error unless
/// `overwrite`.
pub fn save_hf_dir(model: &Model, out: &Path, dtype: SaveDtype, overwrite: bool) -> Result<()> {
    save_hf_dir_sharded(model, out, dtype, overwrite, DEFAULT_SHARD_SIZE)
}

/// [`save_hf_dir`] with shards of at most `shard_size` bytes of tensor data (a tensor
/// larger than that alone in its shard).
pub fn save_hf_dir_sharded(
    model: &Model,
    out: &Path,
    dtype: SaveDtype,
    overwrite: bool,
    shard_size: u64,
) -> Result<()> {
    if out.exists() && !overwrite {
        return Err(ModelError::OutputExists { path: out.into() });
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(ModelError::NotFound { path: parent });
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            ModelError::InvalidArgument(format!("{}: not a directory name", out.display()))
        })?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    fs::create_dir(&tmp).map_err(io_err(&tmp))?;
    let res = write_into(model, &tmp, dtype, shard_size).and_then(|()| {
        if out.exists() {
            // Replace: move the old one aside first so a failed rename loses nothing.
            let old = parent.join(format!(".{name}.old-{}", std::process::id()));
            fs::rename(out, &old).map_err(io_err(out))?;
            fs::rename(&tmp, out).map_err(io_err(out))?;
            if old.is_dir() {
                fs::remove_dir_all(&old).map_err(io_err(&old))
            } else {
                fs::remove_file(&old).map_err(io_err(&old))
            }
        } else {
            fs::rename(&tmp, out).map_err(io_err(out))
        }
    });
    if res.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    res
}

fn write_into(model: &Model, dir: &Path, dtype: SaveDtype, shard_size: u64) -> Result<()> {
    let mut w = ModelWriter::begin(model, dir, dtype, shard_size)?;
    w.write_embedding(&model.embed_tokens()?)?;
    for l in 0..model.num_layers() {
        let b = model.block(l)?;
        w.write_block(l, &b)?;
    }
    let head = match model.config().tie_word_embeddings {
        true => None,
        false => Some(model.lm_head()?),
    };
    w.write_head(model.final_norm(), head.as_ref())?;
    w.finish(model)
}

/// `config.json`, the tokenizer and the copied side files of a checkpoint in `dtype`
/// (resolved).
pub(crate) fn write_side_files(model: &Model, dir: &Path, dtype: SaveDtype) -> Result<()> {
    let src = model.source();
    let torch_dtype = match dtype {
        SaveDtype::F16 => "float16",
        SaveDtype::BF16 => "bfloat16",
        _ => "float32",
    };
    let cfg = model.config();
    // config.json.
    let config = cfg.to_hf_json(torch_dtype, src.hf_config.as_ref());
    write_json(&dir.join("config.json"), &config)?;

    // Tokenizer: the source file verbatim when there is one.
    let tok_path = dir.join("tokenizer.json");
    match &src.tokenizer_json {
        Some(bytes) => fs::write(&tok_path, bytes).map_err(io_err(&tok_path))?,
        None => {
            let s = model
                .tokenizer()
                .to_string(false)
                .map_err(|e| ModelError::Tokenizer {
                    path: tok_path.clone(),
                    reason: e.to_string(),
                })?;
            fs::write(&tok_path, s).map_err(io_err(&tok_path))?;
        }
    }
    let mut copied_tok_config = false;
    if src.path.is_dir() {
        for f in AUX_FILES {
            let from = src.path.join(f);
            if from.is_file() {
                fs::copy(&from, dir.join(f)).map_err(io_err(&from))?;
                copied_tok_config |= f == "tokenizer_config.json";
            }
        }
    }
    if !copied_tok_config {
        // Without it transformers would pick LlamaTokenizerFast from model_type, which
        // adds a BOS the source tokenizer does not.
        let tok = |id: Option<u32>| {
            id.and_then(|i| model.tokenizer().id_to_token(i))
                .map(serde_json::Value::from)
                .unwrap_or(serde_json::Value::Null)
        };
        let tc = json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": tok(cfg.bos_token_id),
            "eos_token": tok(cfg.eos_token_id.first().copied()),
            "add_bos_token": false,
            "clean_up_tokenization_spaces": false,
            "model_max_length": cfg.max_position_embeddings,
        });
        write_json(&dir.join("tokenizer_config.json"), &tc)?;
    }
    Ok(())
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| ModelError::Json {
        path: path.into(),
        reason: e.to_string(),
    })?;
    fs::write(path, s + "\n").map_err(io_err(path))
}
