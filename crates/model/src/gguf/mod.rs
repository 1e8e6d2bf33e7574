//! GGUF loading: metadata to config, tensors renamed to Hugging Face names and
//! dequantized to f32 one at a time when a block needs them (Q and K un-permuted back to
//! HF layout), tokenizer built from the `tokenizer.ggml.*` metadata.
//!
//! One job per module, each used only by the ones after it: `meta` (typed metadata
//! access), `quant` (the GGML types read and their dequantization), `header` (the
//! bounded header reader), `config` (metadata to [`LlamaConfig`]), `layout` (GGUF names
//! and Q/K order to Hugging Face's), `source` (the file read tensor by tensor),
//! `tokenizer`; this file drives them.

mod config;
mod family;
mod header;
mod layout;
mod meta;
mod quant;
mod source;
mod tokenizer;

pub use header::read_gguf_header;

use crate::config::LlamaConfig;
use crate::error::{io_err, ModelError, Result};
use crate::model::{Model, ModelSource, SourceDtype};
use crate::source::{model_from_source, MemorySource, WeightSource};
use candle_core::quantized::gguf_file::Content;
use candle_core::Tensor;
use std::collections::HashMap;
use std::fs;
use std::io::{BufReader, Read, Seek};
use std::path::Path;
use std::sync::Arc;

/// Loads a GGUF file (architectures `llama`, `qwen2`, `qwen3`, `gemma2`, `gemma3` and
/// `phi3`) for streaming: the header, config and tokenizer are read now, the embedding
/// and final norm dequantized to f32; each block's tensors are read and dequantized only
/// when the block is used.
pub fn load_gguf(path: &Path) -> Result<Model> {
    if !path.exists() {
        return Err(ModelError::NotFound { path: path.into() });
    }
    let file = fs::File::open(path).map_err(io_err(path))?;
    let ct = read_gguf_header(path, &mut BufReader::new(file))?;
    let m = meta::Meta {
        path,
        md: &ct.metadata,
    };
    let (config, permuted) = config::config_from_meta(&m, &ct)?;
    let tokenizer = tokenizer::tokenizer_from_gguf(&m)?;
    let quant = check_names(path, &ct, &config)?;
    let src = source::GgufSource::new(path, ct, config.clone(), permuted)?;
    model_from_source(
        config,
        tokenizer,
        gguf_source(path, quant),
        Arc::new(src) as Arc<dyn WeightSource>,
    )
}

/// Loads a GGUF model from any seekable reader (a file, or bytes in memory in tests and
/// fuzzing); `path` is only used in messages. Unlike [`load_gguf`] it dequantizes every
/// tensor now and keeps them (f32) in memory: a reader cannot be kept for later reads.
pub fn load_gguf_from<R: Read + Seek>(path: &Path, mut reader: R) -> Result<Model> {
    let ct = read_gguf_header(path, &mut reader)?;
    let m = meta::Meta {
        path,
        md: &ct.metadata,
    };
    let (config, permuted) = config::config_from_meta(&m, &ct)?;
    let quant = check_names(path, &ct, &config)?;
    let tensors = read_tensors(path, &ct, &mut reader, &config, permuted)?;
    let tokenizer = tokenizer::tokenizer_from_gguf(&m)?;
    let src = MemorySource {
        root: path.into(),
        tensors,
    };
    model_from_source(
        config,
        tokenizer,
        gguf_source(path, quant),
        Arc::new(src) as Arc<dyn WeightSource>,
    )
}

fn gguf_source(path: &Path, quant: Option<String>) -> ModelSource {
    ModelSource {
        path: path.into(),
        dtype: SourceDtype::Gguf(quant.unwrap_or_else(|| "unknown".into())),
        hf_config: None,
        tokenizer_json: None,
    }
}

/// Checks that the file has every tensor the model needs, and returns the GGML type of
/// the first Q weight (the file's quantization as a writer reports it).
fn check_names(path: &Path, ct: &Content, config: &LlamaConfig) -> Result<Option<String>> {
    let mut quant = None;
    for (g, _) in layout::hf_names(ct, config) {
        let info = ct
            .tensor_infos
            .get(&g)
            .ok_or_else(|| ModelError::MissingTensor {
                path: path.into(),
                name: g.clone(),
            })?;
        if (g.ends_with("attn_q.weight") || g.ends_with("attn_qkv.weight")) && quant.is_none() {
            quant = Some(format!("{:?}", info.ggml_dtype));
        }
    }
    Ok(quant)
}

/// Reads the model's tensors dequantized to f32, by HF name and in HF layout (Q and K
/// un-permuted when `permuted`).
fn read_tensors<R: Read + Seek>(
    path: &Path,
    ct: &Content,
    reader: &mut R,
    config: &LlamaConfig,
    permuted: bool,
) -> Result<HashMap<String, Tensor>> {
    let mut tensors = HashMap::new();
    for (g, h) in layout::hf_names(ct, config) {
        let mut t = quant::dequantize(path, ct, reader, &g)?;
        if permuted && layout::is_permuted(&g) {
            t = layout::unpermute_qk(path, config, &g, &t)?;
        }
        t = layout::norm_shift(config, &g, t)?;
        tensors.insert(h, t);
    }
    Ok(tensors)
}
