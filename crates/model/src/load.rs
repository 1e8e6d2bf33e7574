//! Loading: a Hugging Face directory (`config.json`, `*.safetensors`, `tokenizer.json`)
//! or a GGUF file ([`crate::gguf`]), chosen by what the path is.

use crate::assemble::{assemble, TensorMap};
use crate::config::LlamaConfig;
use crate::error::{io_err, CandleContext, ModelError, Result};
use crate::model::{Model, ModelSource, SourceDtype};
use candle_core::{Device, Tensor};
use safetensors::tensor::Dtype;
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

/// Loads a model: a directory is read as a Hugging Face model, a file as GGUF.
pub fn load(path: &Path) -> Result<Model> {
    if path.is_dir() {
        load_hf_dir(path)
    } else if path.is_file() {
        crate::gguf::load_gguf(path)
    } else {
        Err(ModelError::NotFound { path: path.into() })
    }
}

/// Names of the shards of a HF directory: the files of the index's `weight_map` when
/// `model.safetensors.index.json` exists, else every `*.safetensors` file, sorted.
fn shard_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = fs::read_to_string(&index).map_err(io_err(&index))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Json {
            path: index.clone(),
            reason: format!("not valid JSON: {e}"),
        })?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| ModelError::MissingKey {
                path: index.clone(),
                key: "weight_map".into(),
            })?;
        let mut files = BTreeSet::new();
        for (name, file) in map {
            let f = file.as_str().ok_or_else(|| ModelError::Json {
                path: index.clone(),
                reason: format!("weight_map entry '{name}' is not a file name"),
            })?;
            // A shard name is a plain file name inside the directory: refuse paths that
            // would read elsewhere.
            if f.contains('/') || f.contains('\\') || f == ".." {
                return Err(ModelError::Json {
                    path: index.clone(),
                    reason: format!(
                        "weight_map entry '{name}' names '{f}', not a file of the directory"
                    ),
                });
            }
            files.insert(f.to_string());
        }
        let files: Vec<PathBuf> = files.into_iter().map(|f| dir.join(f)).collect();
        for f in &files {
            if !f.is_file() {
                return Err(ModelError::NotFound { path: f.clone() });
            }
        }
        return Ok(files);
    }
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ModelError::NotFound {
            path: dir.join("model.safetensors"),
        });
    }
    Ok(files)
}

/// Widens a safetensors tensor to f32 (through tensor-io's `widen`, the one home of dtype
/// widening).
fn to_f32(path: &Path, name: &str, dtype: Dtype, shape: &[usize], b: &[u8]) -> Result<Tensor> {
    let data = sparseswaps_tensor_io::widen::to_f32(path, name, dtype, b).map_err(|e| {
        ModelError::BadTensor {
            name: name.into(),
            reason: format!("in {} {}", path.display(), e.reason()),
        }
    })?;
    Tensor::from_vec(data, shape, &Device::Cpu)
        .ctx(|| format!("{}: tensor '{name}'", path.display()))
}

/// Loads a Hugging Face model directory.
pub fn load_hf_dir(dir: &Path) -> Result<Model> {
    if !dir.is_dir() {
        return Err(ModelError::NotFound { path: dir.into() });
    }
    let cfg_path = dir.join("config.json");
    let cfg_text = fs::read_to_string(&cfg_path).map_err(io_err(&cfg_path))?;
    let config = LlamaConfig::from_hf_json(&cfg_path, &cfg_text)?;
    let hf_config: serde_json::Value =
        serde_json::from_str(&cfg_text).map_err(|e| ModelError::Json {
            path: cfg_path.clone(),
            reason: e.to_string(),
        })?;
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.is_file() {
        return Err(ModelError::MissingTokenizer { path: dir.into() });
    }
    let tok_bytes = fs::read(&tok_path).map_err(io_err(&tok_path))?;
    let tokenizer = Tokenizer::from_bytes(&tok_bytes).map_err(|e| ModelError::Tokenizer {
        path: tok_path.clone(),
        reason: e.to_string(),
    })?;

    let mut tensors = HashMap::new();
    // Counted by debug name: safetensors' Dtype is not hashable.
    let mut dtypes: HashMap<String, (Dtype, usize)> = HashMap::new();
    for shard in shard_files(dir)? {
        let file = fs::File::open(&shard).map_err(io_err(&shard))?;
        // SAFETY: the map is read-only and dropped before this function returns; a file
        // changed underneath while loading is the caller's race, as with any reader.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(&shard))?;
        let st =
            sparseswaps_tensor_io::parse(&shard, &mmap).map_err(|e| ModelError::Safetensors {
                path: shard.clone(),
                reason: match e {
                    sparseswaps_tensor_io::TensorIoError::NotSafetensors { reason, .. } => reason,
                    other => other.to_string(),
                },
            })?;
        for (name, view) in st.tensors() {
            // Buffers such as `rotary_emb.inv_freq` are recomputed, not loaded.
            if name.ends_with("rotary_emb.inv_freq") {
                continue;
            }
            if name.ends_with(".weight") && name.contains("_proj") {
                dtypes
                    .entry(format!("{:?}", view.dtype()))
                    .or_insert((view.dtype(), 0))
                    .1 += 1;
            }
            let t = to_f32(&shard, &name, view.dtype(), view.shape(), view.data())?;
            tensors.insert(name, t);
        }
    }
    // The dtype most linear weights have is the one a writer reproduces.
    let dtype = match dtypes.into_values().max_by_key(|(_, n)| *n).map(|(d, _)| d) {
        Some(Dtype::F16) => SourceDtype::F16,
        Some(Dtype::BF16) => SourceDtype::BF16,
        _ => SourceDtype::F32,
    };
    let (embed_tokens, blocks, norm, lm_head) = assemble(
        &config,
        TensorMap {
            root: dir.into(),
            tensors,
        },
    )?;
    // What the weights are, not what the config claimed: the writer keys on it.
    let mut config = config;
    config.tie_word_embeddings = lm_head.is_none();
    Ok(Model {
        config,
        embed_tokens,
        blocks,
        norm,
        lm_head,
        tokenizer,
        source: ModelSource {
            path: dir.into(),
            dtype,
            hf_config: Some(hf_config),
            tokenizer_json: Some(tok_bytes),
        },
    })
}
