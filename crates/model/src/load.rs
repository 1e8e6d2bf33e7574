//! Loading: a Hugging Face directory (`config.json`, `*.safetensors`, `tokenizer.json`)
//! or a GGUF file ([`crate::gguf`]), chosen by what the path is.
//!
//! Loading reads headers, the config, the tokenizer and the head (embedding, final norm,
//! `lm_head`); block weights stay in the files until a block is used (see
//! [`Model`]).

use crate::config::LlamaConfig;
use crate::error::{io_err, ModelError, Result};
use crate::model::{Model, ModelSource, SourceDtype};
use crate::source::{model_from_source, WeightSource};
use crate::st_index::SafetensorsIndex;
use safetensors::tensor::Dtype;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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

/// Loads a Hugging Face model directory for streaming (headers, config, tokenizer and
/// head now; blocks when used).
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

    let index = SafetensorsIndex::open(dir, &shard_files(dir)?)?;
    // The dtype most linear weights have is the one a writer reproduces.
    let dtype = match index
        .linear_dtypes()
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(d, _)| d)
    {
        Some(Dtype::F16) => SourceDtype::F16,
        Some(Dtype::BF16) => SourceDtype::BF16,
        _ => SourceDtype::F32,
    };
    model_from_source(
        config,
        tokenizer,
        ModelSource {
            path: dir.into(),
            dtype,
            hf_config: Some(hf_config),
            tokenizer_json: Some(tok_bytes),
        },
        Arc::new(index) as Arc<dyn WeightSource>,
    )
}
